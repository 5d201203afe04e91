"""Judge calibration: how well each judge node tells a right answer from a wrong one, measured.

On evaluation items with known answers, the swarm's answerers reply once (through the completion
cache, so a rerun makes no model calls); for every item where one answer is right and another wrong,
each judge compares the two in both orders, in the judging style asked for — Fortytwo's "compare,
don't re-solve" or reference-guided (the judge solves first). Where no answerer was right the gold
answer stands in as "The answer is X."; where none was wrong the item is skipped. Per judge:

* ``p_right`` — P(prefers the right answer) over all its verdicts (ties count half): its
  discrimination, the quantity the regime map is drawn over;
* ``both_right`` — share of pairs it got right in *both* orders (a coin scores 1/4);
* ``consistency`` — share of pairs with the same pick in both orders (a coin: 1/2; always "A": 0);
* ``says_first`` — share of verdicts for the answer shown first (0.5: no position bias);
* ``kappa`` — ``2·p_right − 1``, the discrimination ``swarmrank.reliability`` estimates without
  the truth; and the simulated gain of peer-rank over majority for three judges of this
  discrimination (the regime map's row for it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from swarmrank.errors import ConfigError
from swarmrank.eval.cache import CacheStats, with_cache
from swarmrank.nodes.base import Node
from swarmrank.protocols import PeerRank
from swarmrank.round import RoundContext
from swarmrank.schedule import JUDGE_STYLES, Comparison
from swarmrank.swarm import Swarm

__all__ = ["JudgeCalibration", "PairTrial", "calibrate", "simulated_gain"]


@dataclass(frozen=True)
class PairTrial:
    item: str
    judge: str
    style: str
    right_first: str     # verdict with the right answer shown as A
    wrong_first: str     # verdict with the wrong answer shown as A
    gold_stand_in: bool  # no answerer was right: the right side is "The answer is <gold>."

    @property
    def right_picks(self) -> float:
        """Verdicts for the right answer, of two (a tie counts half)."""
        score = {"A": 1.0, "B": 0.0, "U": 0.5}
        return score[self.right_first] + (1.0 - score[self.wrong_first])


@dataclass
class JudgeCalibration:
    judge: str
    style: str
    trials: list[PairTrial] = field(default_factory=list)
    failed: int = 0      # judge calls that failed (not counted)
    calls: int = 0
    tokens: int = 0
    seconds: float = 0.0
    gain: float | None = None         # simulated peer-rank − majority at this discrimination (points)
    gain_low: float | None = None
    gain_high: float | None = None

    @property
    def pairs(self) -> int:
        return len(self.trials)

    @property
    def p_right(self) -> float | None:
        return sum(t.right_picks for t in self.trials) / (2 * self.pairs) if self.pairs else None

    @property
    def both_right(self) -> float | None:
        return sum(1 for t in self.trials if t.right_first == "A" and t.wrong_first == "B") / self.pairs \
            if self.pairs else None

    @property
    def consistency(self) -> float | None:
        same = sum(1 for t in self.trials if {t.right_first, t.wrong_first} == {"A", "B"})
        return same / self.pairs if self.pairs else None

    @property
    def says_first(self) -> float | None:
        if not self.pairs:
            return None
        first = sum(int(t.right_first == "A") + int(t.wrong_first == "A") for t in self.trials)
        return first / (2 * self.pairs)

    @property
    def kappa(self) -> float | None:
        p = self.p_right
        return None if p is None else 2.0 * p - 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"judge": self.judge, "style": self.style, "pairs": self.pairs, "p_right": self.p_right,
                "both_right": self.both_right, "consistency": self.consistency, "says_first": self.says_first,
                "kappa": self.kappa, "failed": self.failed, "calls": self.calls, "tokens": self.tokens,
                "seconds": round(self.seconds, 3), "simulated_gain": self.gain,
                "simulated_gain_ci": None if self.gain is None else [self.gain_low, self.gain_high]}


def simulated_gain(p_right: float, *, questions: int = 300, seed: int = 0) -> tuple[float, float, float]:
    """Peer-rank minus majority, in points with a 95% interval, for a simulated swarm of 7 answerers
    (accuracy 0.5 ± 0.1, half of their errors on one popular wrong answer) and three judges that each
    prefer the right answer with probability ``p_right``: where a judge of this quality sits on the
    regime map."""
    from swarmrank.eval.simulate import SimParams, parse_judges, simulate

    d = min(1.0, max(0.0, float(p_right)))
    params = SimParams(questions=questions, seed=seed, correlated_errors=0.5, judges=parse_judges(f"3x{d:.3f}"))
    result = simulate(params)
    t = result.difference("peer-rank", "majority")
    return 100 * t.diff, 100 * t.low, 100 * t.high


async def calibrate(swarm: Swarm, items: Sequence[Any], *, store: Any, judges: Sequence[str] | None = None,
                    styles: Sequence[str] = ("compare",), on_progress: Callable[[int, int], None] | None = None,
                    stats: CacheStats | None = None) -> list[JudgeCalibration]:
    """Calibrate ``judges`` (default: every node with the judge role) on ``items`` (``EvalItem``-like:
    id, prompt, task_type, gold, score), in each of ``styles``."""
    for style in styles:
        if style not in JUDGE_STYLES:
            raise ConfigError(f"unknown judging style {style!r} (known: {', '.join(JUDGE_STYLES)})")
    if store is None:
        raise ConfigError("calibration needs a store (its completion cache lives there)")
    names = list(judges) if judges else [n.id for n in swarm.nodes if n.judges]
    by_id = {n.id: n for n in swarm.nodes}
    unknown = [j for j in names if j not in by_id]
    if unknown:
        raise ConfigError(f"no node {unknown[0]!r} in swarm {swarm.name!r}")
    if not names:
        raise ConfigError(f"swarm {swarm.name!r} has no node with the judge role to calibrate")
    if not any(n.answers for n in swarm.nodes):
        raise ConfigError(f"swarm {swarm.name!r} has no answerer to produce answers to judge")
    stats = stats if stats is not None else CacheStats()
    nodes = with_cache(swarm.nodes, store, stats)
    cached = Swarm(nodes, options=swarm.options, name=swarm.name, store=None)
    judge_nodes = [n for n in nodes if n.id in names]
    results = {(j, s): JudgeCalibration(j, s) for s in styles for j in names}
    protocol = PeerRank()
    total, done = len(items), 0
    for item in items:
        round_ = await cached.ask(item.prompt, protocol="majority", task_type=item.task_type, save=False)
        right = next((a for a in round_.answers if a.value is not None and item.score(a.value)), None)
        wrong = next((a for a in round_.answers if a.value is not None and not item.score(a.value)), None)
        done += 1
        if wrong is not None:
            right_text = right.text if right is not None else f"The answer is {item.gold}."
            texts = [right_text, wrong.text]
            for style in styles:
                await _judge_pair(protocol, cached, judge_nodes, item, texts, style, right is None, results,
                                  round_.answers)
        if on_progress is not None:
            on_progress(done, total)
    return [results[(j, s)] for s in styles for j in names]


async def _judge_pair(protocol: PeerRank, swarm: Swarm, judges: Sequence[Node], item: Any, texts: list[str],
                      style: str, stand_in: bool, results: dict[tuple[str, str], JudgeCalibration],
                      answers: Sequence[Any]) -> None:
    task = item.task()
    options = replace(swarm.options, judge_style=style)
    ctx = RoundContext(task, judges, options, protocol="calibrate", truth=item.gold)
    values = [task.extract(t) for t in texts]
    # reference-guided: a judge that answered the item uses its own answer, the others solve it first
    references = await protocol._references(ctx, answers, [j.id for j in judges])
    own = {a.node for a in answers if a.text}
    for judge in judges:
        start = time.monotonic()
        verdicts = await asyncio.gather(*(protocol._judge(ctx, Comparison(judge.id, a, b), texts, values, references)
                                          for a, b in ((0, 1), (1, 0))))
        record = results[(judge.id, style)]
        record.seconds += time.monotonic() - start
        record.calls += 2 + sum(int(v.retried) for v in verdicts) + int(style == "reference" and judge.id not in own)
        record.tokens += sum(v.prompt_tokens + v.completion_tokens for v in verdicts)
        if any(v.failed for v in verdicts):
            record.failed += sum(int(v.failed) for v in verdicts)
            continue
        record.trials.append(PairTrial(item.id, judge.id, style, verdicts[0].verdict, verdicts[1].verdict, stand_in))
