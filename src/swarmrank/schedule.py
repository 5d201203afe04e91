"""Pair schedules: which judge compares which pair of items, in which order.

``fortytwo``  (Fortytwo node client) items are individual answers. Every judge that did not answer
              this round compares adjacent pairs (i, i+1) and cross pairs (i, i+⌊n/2⌋) of the
              answers it graded GOOD, each in both orders: 2(n−1)+2⌊n/2⌋ ≈ 3n comparisons a judge.
``cluster``   (ours) items are distinct candidates. Each unordered pair is shown in both orders to
              ``judges_per_pair`` judges; beyond ``max_full`` candidates the adjacent + cross pattern
              replaces all pairs. One candidate means no judging at all.
``adaptive``  (ours) items are distinct candidates; judges are called a few at a time on the pair the
              posterior is least sure about, most reliable judge first, until the leader's posterior
              passes ``stop_at`` (the loop lives in ``swarmrank.protocols``; :func:`pick_judges` here).

Under ``cluster`` and ``adaptive`` neutral judges (whose own answer is in neither candidate) come
first; when a pair has fewer than ``judges_per_pair`` of them, judges whose own answer *is* in the
pair fill the gap, alternating between the two sides (``interested = "fill"``, the default), so a
contested pair is always judged when any judge exists; aggregation discounts a verdict for one's own
answer. With ``interested = "never"`` such a pair goes unjudged. Under ``fortytwo`` a judge never
compares a pair containing its own answer, and a judge that answered sits the round out unless every
judge answered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from swarmrank.errors import ConfigError

SCHEDULES = ("cluster", "fortytwo", "adaptive")
INTERESTED = ("fill", "never")
JUDGE_STYLES = ("compare", "reference")


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


def pick_judges(side_a: Sequence[str], side_b: Sequence[str], judges: Sequence[str], count: int, *,
                cursor: int = 0, interested: str = "fill", exclude: Sequence[str] = ()) -> list[str]:
    """Up to ``count`` judges for the pair whose candidates were given by ``side_a`` and ``side_b``.

    Neutral judges first, in the order of ``judges`` rotated by ``cursor``; then, with
    ``interested = "fill"``, judges from the two sides (each rotated by ``cursor``) alternately
    (``side_a`` first) until ``count``
    is reached — at least one from each side when both have a judge, so a pair judged only by
    interested parties hears both. ``exclude``: judges already used on this pair.
    """
    if interested not in INTERESTED:
        raise ConfigError(f"unknown interested_judges {interested!r} (known: {', '.join(INTERESTED)})")
    taken = set(exclude)
    own = set(side_a) | set(side_b)
    neutral = [j for j in judges if j not in own and j not in taken]
    if neutral:
        c = cursor % len(neutral)
        neutral = neutral[c:] + neutral[:c]
    chosen = neutral[:count]
    if interested == "never" or len(chosen) >= count:
        return chosen
    camps = [[j for j in judges if j in side_a and j not in taken and j not in side_b],
             [j for j in judges if j in side_b and j not in taken and j not in side_a]]
    camps = [camp[cursor % len(camp):] + camp[:cursor % len(camp)] if camp else camp for camp in camps]
    need = count - len(chosen)
    if need == 1 and not chosen and camps[0] and camps[1]:
        need = 2  # a pair judged only by interested parties hears both sides
    k = 0
    while need > 0 and (camps[0] or camps[1]):
        camp = camps[k % 2] or camps[(k + 1) % 2]
        chosen.append(camp.pop(0))
        need -= 1
        k += 1
    return chosen


def rotation_start(question: str) -> int:
    """Where a round's judge rotation begins: a stable hash of its question (reproducible, and spread
    evenly over the judges across questions)."""
    return int.from_bytes(hashlib.blake2b(question.encode("utf-8", "surrogatepass"), digest_size=4).digest(), "big")


def cluster_schedule(
    item_nodes: Sequence[Sequence[str]],
    judges: Sequence[str],
    *,
    judges_per_pair: int = 2,
    max_full: int = 8,
    interested: str = "fill",
    start: int = 0,
) -> list[Comparison]:
    """Each distinct pair of candidates, both orders, to ``judges_per_pair`` judges in rotation
    (neutral judges first, then interested ones: :func:`pick_judges`), the rotation beginning at
    ``start``: a round passes its own (:func:`rotation_start`), so that the judges listed first do not
    judge the first pair of every round and the last ones none of a two-candidate round."""
    if judges_per_pair < 1:
        raise ConfigError("judges_per_pair must be at least 1")
    n = len(item_nodes)
    pairs = all_pairs(n) if n <= max_full else adjacent_cross_pairs(n)
    schedule: list[Comparison] = []
    cursor = start
    for i, j in pairs:
        chosen = pick_judges(item_nodes[i], item_nodes[j], judges, judges_per_pair, cursor=cursor,
                             interested=interested)
        if not chosen:
            continue
        cursor += 1
        for judge in chosen:
            schedule.append(Comparison(judge, i, j))
            schedule.append(Comparison(judge, j, i))
    return schedule
