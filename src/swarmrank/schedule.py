"""Pair schedules: which judge compares which pair of items, in which order.

``fortytwo``  (Fortytwo node client) items are individual answers. Every judge that did not answer
              this round compares adjacent pairs (i, i+1) and cross pairs (i, i+⌊n/2⌋) of the
              answers it graded GOOD, each in both orders: 2(n−1)+2⌊n/2⌋ ≈ 3n comparisons a judge.
``cluster``   (ours) items are distinct candidates. Each unordered pair is shown in both orders to
              ``judges_per_pair`` judges; beyond ``max_full`` candidates the adjacent + cross pattern
              replaces all pairs. One candidate means no judging at all.

A judge never compares a pair containing its own answer. Under ``fortytwo`` a judge that answered
sits the round out, unless every judge answered (then only the own-answer rule applies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from swarmrank.errors import ConfigError

SCHEDULES = ("cluster", "fortytwo")


def check_schedule(name: str) -> str:
    """``name`` if it is a known schedule, else a :class:`ConfigError` listing the known ones.

    The one check of a schedule name: :class:`~swarmrank.round.RoundOptions` validates its
    ``schedule`` with it, and so does every caller that takes a schedule name apart from options.
    """
    if name not in SCHEDULES:
        raise ConfigError(f"unknown schedule {name!r} (known: {', '.join(SCHEDULES)})")
    return name


@dataclass(frozen=True)
class Comparison:
    judge: str
    first: int
    second: int


def adjacent_cross_pairs(n: int) -> list[tuple[int, int]]:
    """Unordered adjacent (i, i+1) and cross (i, i+⌊n/2⌋) pairs, without repeats."""
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    half = n // 2

    def add(i: int, j: int) -> None:
        key = (min(i, j), max(i, j))
        if i != j and key not in seen:
            seen.add(key)
            pairs.append((i, j))

    for i in range(n - 1):
        add(i, i + 1)
    if half:
        for i in range(half):
            add(i, i + half)
    return pairs


def all_pairs(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def both_orders(pairs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    return [order for i, j in pairs for order in ((i, j), (j, i))]


def fortytwo_schedule(
    item_nodes: Sequence[Sequence[str]],
    judges: Sequence[str],
    *,
    good: Mapping[str, Sequence[int]] | None = None,
) -> list[Comparison]:
    """Every eligible judge compares adjacent + cross pairs of the answers it graded GOOD."""
    answered = {node for nodes in item_nodes for node in nodes}
    eligible = [j for j in judges if j not in answered] or list(judges)
    schedule: list[Comparison] = []
    for judge in eligible:
        items = list(good[judge]) if good is not None and judge in good else list(range(len(item_nodes)))
        for a, b in both_orders(adjacent_cross_pairs(len(items))):
            first, second = items[a], items[b]
            if judge in item_nodes[first] or judge in item_nodes[second]:
                continue
            schedule.append(Comparison(judge, first, second))
    return schedule


def cluster_schedule(
    item_nodes: Sequence[Sequence[str]],
    judges: Sequence[str],
    *,
    judges_per_pair: int = 2,
    max_full: int = 8,
) -> list[Comparison]:
    """Each distinct pair of candidates, both orders, to ``judges_per_pair`` judges in rotation."""
    if judges_per_pair < 1:
        raise ConfigError("judges_per_pair must be at least 1")
    n = len(item_nodes)
    pairs = all_pairs(n) if n <= max_full else adjacent_cross_pairs(n)
    schedule: list[Comparison] = []
    cursor = 0
    for i, j in pairs:
        own = set(item_nodes[i]) | set(item_nodes[j])
        eligible = [judge for judge in judges if judge not in own]
        if not eligible:
            continue
        chosen = [eligible[(cursor + k) % len(eligible)] for k in range(min(judges_per_pair, len(eligible)))]
        cursor += 1
        for judge in chosen:
            schedule.append(Comparison(judge, i, j))
            schedule.append(Comparison(judge, j, i))
    return schedule
