"""Summarise an evaluation run: accuracy with 95% bootstrap CIs, the oracle, the best single node,
peer-rank against majority (paired), and the cost per question of every system."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swarmrank.eval import metrics
from swarmrank.eval.injection import KINDS, split_id


@dataclass(frozen=True)
class SystemSummary:
    system: str
    accuracy: metrics.Accuracy
    calls: float  # per question
    judge_calls: float
    prompt_tokens: float
    completion_tokens: float
    seconds: float
    dollars: float | None = None  # per question, by the price table (null: no priced node took part)
    total_dollars: float | None = None  # over the run's base items


@dataclass(frozen=True)
class Degradation:
    """A system's accuracy on base items and on their variants of one kind (same base items)."""

    kind: str
    system: str
    items: int
    base: float
    variant: float

    @property
    def drop(self) -> float:
        return self.base - self.variant


@dataclass(frozen=True)
class Summary:
    items: int
    systems: list[SystemSummary]
    oracle: metrics.Accuracy | None
    best_node: tuple[str, float] | None
    peer_vs_majority: metrics.PairedTest | None
    gap_closed: float | None
    degradation: list[Degradation] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def acc(a: metrics.Accuracy | None) -> dict[str, Any] | None:
            return None if a is None else {"correct": a.correct, "total": a.total, "mean": a.mean,
                                           "low": a.low, "high": a.high}
        paired = self.peer_vs_majority
        return {
            "items": self.items,
            "systems": [{"system": s.system, "accuracy": acc(s.accuracy), "calls": s.calls,
                         "judge_calls": s.judge_calls, "prompt_tokens": s.prompt_tokens,
                         "completion_tokens": s.completion_tokens, "seconds": s.seconds, "dollars": s.dollars,
                         "total_dollars": s.total_dollars} for s in self.systems],
            "oracle": acc(self.oracle),
            "best_node": None if self.best_node is None else {"node": self.best_node[0], "accuracy": self.best_node[1]},
            "peer_rank_vs_majority": None if paired is None else {
                "diff": paired.diff, "low": paired.low, "high": paired.high, "peer_rank_only": paired.a_only,
                "majority_only": paired.b_only, "p_value": paired.p_value},
            "gap_closed": self.gap_closed,
            "degradation": [{"kind": d.kind, "system": d.system, "items": d.items, "base": d.base,
                             "variant": d.variant, "drop": d.drop} for d in self.degradation],
        }


def degradation(rows: Sequence[dict[str, Any]]) -> list[Degradation]:
    """Per variant kind and system: accuracy on the base items against their variants."""
    by_key = {(row["item_id"], row["system"]): bool(row["correct"]) for row in rows}
    pairs: dict[tuple[str, str], list[tuple[bool, bool]]] = defaultdict(list)
    for row in rows:
        base, kind = split_id(row["item_id"])
        if kind is not None and (base, row["system"]) in by_key:
            pairs[(kind, row["system"])].append((by_key[(base, row["system"])], bool(row["correct"])))
    out = []
    for kind in KINDS:
        for (k, system), flags in sorted(pairs.items(), key=lambda kv: (kv[0][1].startswith("node:"), kv[0][1])):
            if k == kind:
                out.append(Degradation(kind=kind, system=system, items=len(flags),
                                       base=float(np.mean([b for b, _ in flags])),
                                       variant=float(np.mean([v for _, v in flags]))))
    return out


def summarise(rows: Sequence[dict[str, Any]]) -> Summary:
    """Rows as stored by the runner (one per item and system), complete items only. The main
    table covers base items; variants (``id#kind``) only feed the degradation table."""
    variants = degradation(rows)
    rows = [row for row in rows if split_id(row["item_id"])[1] is None]
    by_system: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        by_system[row["system"]][row["item_id"]] = row
    item_ids = sorted({row["item_id"] for row in rows})
    systems = []
    order = sorted(by_system, key=lambda s: (s.startswith("node:"), s))
    correct: dict[str, list[bool]] = {}
    for system in order:
        per_item = by_system[system]
        present = [per_item[i] for i in item_ids if i in per_item]
        flags = [bool(r["correct"]) for r in present]
        correct[system] = [bool(per_item[i]["correct"]) if i in per_item else False for i in item_ids]
        mean = {k: float(np.mean([r[k] for r in present])) for k in
                ("calls", "judge_calls", "prompt_tokens", "completion_tokens", "seconds")}
        priced = [float(r["dollars"]) for r in present if r.get("dollars") is not None]
        total = float(sum(priced)) if priced else None
        systems.append(SystemSummary(system=system, accuracy=metrics.accuracy(flags), **mean,
                                     dollars=None if total is None else total / len(present), total_dollars=total))
    nodes = {s: v for s, v in correct.items() if s.startswith("node:")}
    oracle = metrics.accuracy(metrics.oracle(nodes)) if nodes else None
    best = metrics.best_single(nodes) if nodes else None
    paired = gap = None
    if "peer-rank" in correct and "majority" in correct:
        paired = metrics.paired_difference(correct["peer-rank"], correct["majority"])
        if oracle is not None:
            gap = metrics.gap_closed(float(np.mean(correct["peer-rank"])), float(np.mean(correct["majority"])),
                                     oracle.mean)
    return Summary(items=len(item_ids), systems=systems, oracle=oracle,
                   best_node=None if best is None else (best[0], float(best[1])),
                   peer_vs_majority=paired, gap_closed=gap, degradation=variants)
