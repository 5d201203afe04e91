"""Tests for swarmrank.schedule: adjacent + cross pairs, the fortytwo and cluster schedules."""

from __future__ import annotations

from collections import Counter

import pytest

from swarmrank.errors import ConfigError
from swarmrank.schedule import (
    Comparison,
    adjacent_cross_pairs,
    all_pairs,
    both_orders,
    cluster_schedule,
    fortytwo_schedule,
    pick_judges,
)


def answers(n: int) -> list[list[str]]:
    """n items, item i answered by node a<i>."""
    return [[f"a{i}"] for i in range(n)]


def triples(schedule: list[Comparison]) -> list[tuple[str, int, int]]:
    return [(c.judge, c.first, c.second) for c in schedule]


# --- pair patterns ------------------------------------------------------------------------------

def test_adjacent_cross_pairs_for_four_items():
    assert adjacent_cross_pairs(4) == [(0, 1), (1, 2), (2, 3), (0, 2), (1, 3)]


@pytest.mark.parametrize("n,expected", [
    (0, []),
    (1, []),
    (2, [(0, 1)]),                # the cross pair (0, 1) repeats the adjacent one
    (3, [(0, 1), (1, 2)]),        # the cross pair (0, 1) repeats the adjacent one
])
def test_adjacent_cross_pairs_for_small_n_have_no_duplicates(n, expected):
    assert adjacent_cross_pairs(n) == expected


@pytest.mark.parametrize("n", range(2, 20))
def test_adjacent_cross_pairs_are_distinct_unordered_pairs(n):
    pairs = adjacent_cross_pairs(n)
    keys = [frozenset(p) for p in pairs]
    assert len(keys) == len(set(keys))
    assert all(0 <= i < n and 0 <= j < n and i != j for i, j in pairs)


@pytest.mark.parametrize("n", range(4, 20))
def test_adjacent_cross_pairs_count_is_n_minus_1_plus_floor_half_once_pairs_stop_repeating(n):
    # from n = 4 the cross step ⌊n/2⌋ ≥ 2, so no cross pair repeats an adjacent one
    assert len(adjacent_cross_pairs(n)) == (n - 1) + n // 2


def test_adjacent_cross_pairs_for_five_items_use_floor_half_cross_pairs():
    assert adjacent_cross_pairs(5) == [(0, 1), (1, 2), (2, 3), (3, 4), (0, 2), (1, 3)]


def test_all_pairs_lists_each_unordered_pair_once():
    assert all_pairs(3) == [(0, 1), (0, 2), (1, 2)]
    assert all_pairs(1) == []


def test_both_orders_follows_each_pair_with_its_reverse():
    assert both_orders([(0, 1), (2, 1)]) == [(0, 1), (1, 0), (2, 1), (1, 2)]
    assert both_orders([]) == []


# --- fortytwo -----------------------------------------------------------------------------------

@pytest.mark.parametrize("n,per_judge", [(5, 12), (6, 16)])
def test_fortytwo_gives_each_outside_judge_2_n_minus_1_plus_2_floor_half_comparisons(n, per_judge):
    assert per_judge == 2 * (n - 1) + 2 * (n // 2)
    schedule = fortytwo_schedule(answers(n), ["j1", "j2"])
    counts = Counter(c.judge for c in schedule)
    assert counts == {"j1": per_judge, "j2": per_judge}
    # each judge sees every scheduled pair in both orders, and no ordered pair twice
    mine = [(c.first, c.second) for c in schedule if c.judge == "j1"]
    assert len(set(mine)) == per_judge
    assert all((b, a) in mine for a, b in mine)


@pytest.mark.parametrize("n,per_judge", [(2, 2), (3, 4)])
def test_fortytwo_small_n_counts_repeated_pairs_once(n, per_judge):
    # for n = 2, 3 the cross step is 1, so cross pairs repeat adjacent ones and are dropped
    schedule = fortytwo_schedule(answers(n), ["j"])
    assert len(schedule) == per_judge


def test_fortytwo_judge_that_answered_sits_the_round_out():
    schedule = fortytwo_schedule(answers(4), ["j1", "a0", "a2"])
    assert {c.judge for c in schedule} == {"j1"}
    assert len(schedule) == 2 * 5


def test_fortytwo_when_every_judge_answered_only_own_answer_pairs_are_skipped():
    schedule = fortytwo_schedule(answers(3), ["a0", "a1", "a2"])
    assert triples(schedule) == [("a0", 1, 2), ("a0", 2, 1), ("a2", 0, 1), ("a2", 1, 0)]


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_fortytwo_never_gives_a_judge_a_pair_containing_its_own_answer(n):
    items = answers(n)
    items[1].append("j1")   # j1 gave the same answer as a1
    schedule = fortytwo_schedule(items, ["a0", "a1", "j1"])
    assert schedule, "expected some comparisons"
    for c in schedule:
        assert c.judge not in items[c.first] and c.judge not in items[c.second]


def test_fortytwo_good_filter_restricts_a_judge_to_the_items_it_graded_good():
    schedule = fortytwo_schedule(answers(4), ["j1", "j2"], good={"j1": [0, 2, 3]})
    j1 = [(c.first, c.second) for c in schedule if c.judge == "j1"]
    # three GOOD items → local pairs (0,1), (1,2) → items (0,2), (2,3); the cross pair repeats (0,1)
    assert j1 == [(0, 2), (2, 0), (2, 3), (3, 2)]
    # a judge missing from ``good`` compares all items
    assert sum(1 for c in schedule if c.judge == "j2") == 10


def test_fortytwo_judge_with_fewer_than_two_good_items_compares_nothing():
    schedule = fortytwo_schedule(answers(4), ["j1", "j2"], good={"j1": [3], "j2": []})
    assert schedule == []


def test_fortytwo_comparisons_are_in_both_orders_per_pair():
    schedule = fortytwo_schedule(answers(2), ["j"])
    assert schedule == [Comparison("j", 0, 1), Comparison("j", 1, 0)]


# --- cluster ------------------------------------------------------------------------------------

def test_cluster_single_candidate_means_no_comparisons():
    assert cluster_schedule([["a0", "a1", "a2"]], ["j1", "j2"]) == []


def test_cluster_no_candidates_means_no_comparisons():
    assert cluster_schedule([], ["j1"]) == []


@pytest.mark.parametrize("c,jpp", [(2, 1), (3, 2), (4, 2), (5, 3)])
def test_cluster_judges_every_pair_in_both_orders_per_judge(c, jpp):
    judges = ["j1", "j2", "j3", "j4"]
    schedule = cluster_schedule(answers(c), judges, judges_per_pair=jpp)
    assert len(schedule) == c * (c - 1) // 2 * 2 * jpp
    per_ordered = Counter((x.first, x.second) for x in schedule)
    assert set(per_ordered) == {(i, j) for i in range(c) for j in range(c) if i != j}
    assert set(per_ordered.values()) == {jpp}
    # each judge that sees a pair sees it in both orders
    triple_set = set(triples(schedule))
    assert all((judge, b, a) in triple_set for judge, a, b in triple_set)


def test_cluster_judges_rotate_across_pairs():
    schedule = cluster_schedule(answers(3), ["j1", "j2", "j3", "j4"], judges_per_pair=2)
    assert triples(schedule) == [
        ("j1", 0, 1), ("j1", 1, 0), ("j2", 0, 1), ("j2", 1, 0),
        ("j2", 0, 2), ("j2", 2, 0), ("j3", 0, 2), ("j3", 2, 0),
        ("j3", 1, 2), ("j3", 2, 1), ("j4", 1, 2), ("j4", 2, 1),
    ]


def test_cluster_one_judge_per_pair_spreads_pairs_over_judges():
    schedule = cluster_schedule(answers(3), ["j1", "j2", "j3"], judges_per_pair=1)
    assert Counter(c.judge for c in schedule) == {"j1": 2, "j2": 2, "j3": 2}


def test_cluster_with_interested_never_gives_a_judge_a_pair_containing_its_own_answer():
    items = [["a0", "j1"], ["j2"], ["a3"]]
    schedule = cluster_schedule(items, ["j1", "j2", "j3"], judges_per_pair=2, interested="never")
    for c in schedule:
        assert c.judge not in items[c.first] and c.judge not in items[c.second]
    # (0, 1) excludes j1 and j2, leaving only j3; (0, 2) excludes j1; (1, 2) excludes j2
    assert {(c.first, c.second) for c in schedule if c.first < c.second} == {(0, 1), (0, 2), (1, 2)}
    assert {c.judge for c in schedule if {c.first, c.second} == {0, 1}} == {"j3"}


def test_cluster_pair_with_no_eligible_judge_is_skipped_when_interested_judges_are_never_used():
    schedule = cluster_schedule([["j1"], ["a1"], ["a2"]], ["j1"], judges_per_pair=1, interested="never")
    assert triples(schedule) == [("j1", 1, 2), ("j1", 2, 1)]


def test_cluster_fills_a_pair_without_neutral_judges_from_both_sides():
    # every node answers and judges: the only pair is contested by the two camps
    items = [["n1", "n2", "n3"], ["n4", "n5"]]
    schedule = cluster_schedule(items, ["n1", "n2", "n3", "n4", "n5"], judges_per_pair=2)
    assert triples(schedule) == [("n1", 0, 1), ("n1", 1, 0), ("n4", 0, 1), ("n4", 1, 0)]
    # one judge asked for: still one from each side, so the pair hears both
    one = cluster_schedule(items, ["n1", "n2", "n3", "n4", "n5"], judges_per_pair=1)
    assert {c.judge for c in one} == {"n1", "n4"}


def test_cluster_prefers_neutral_judges_and_fills_only_the_gap():
    items = [["a0", "j1"], ["j2"]]
    schedule = cluster_schedule(items, ["j1", "j2", "j3"], judges_per_pair=3)
    assert [c.judge for c in schedule[::2]] == ["j3", "j1", "j2"]


def test_pick_judges_skips_those_already_used_and_rejects_an_unknown_mode():
    assert pick_judges(["a"], ["b"], ["a", "b", "c", "d"], 2, exclude=["c"]) == ["d", "a"]
    with pytest.raises(ConfigError, match="interested_judges"):
        pick_judges(["a"], ["b"], ["c"], 1, interested="sometimes")


@pytest.mark.parametrize("jpp", [0, -1])
def test_cluster_judges_per_pair_below_one_is_a_config_error(jpp):
    with pytest.raises(ConfigError, match="judges_per_pair"):
        cluster_schedule(answers(2), ["j"], judges_per_pair=jpp)


def test_cluster_beyond_max_full_uses_adjacent_and_cross_pairs():
    n = 10
    schedule = cluster_schedule(answers(n), ["j"], judges_per_pair=1, max_full=8)
    assert [(c.first, c.second) for c in schedule[::2]] == adjacent_cross_pairs(n)
    assert [(c.second, c.first) for c in schedule[1::2]] == adjacent_cross_pairs(n)
    assert len(schedule) == 2 * ((n - 1) + n // 2) == 28
    assert len(schedule) < 2 * len(all_pairs(n))


def test_cluster_at_max_full_still_uses_all_pairs():
    schedule = cluster_schedule(answers(8), ["j"], judges_per_pair=1, max_full=8)
    assert [(c.first, c.second) for c in schedule[::2]] == all_pairs(8)


def test_the_judge_rotation_begins_somewhere_else_each_question_so_no_judge_is_starved():
    """It began at the first-listed judge every round: in two-candidate rounds with 2 of 3 judges per pair,
    the last-listed judge never judged, and a liar listed first judged every round (a maths review)."""
    from collections import Counter

    from swarmrank.schedule import rotation_start

    judged: Counter[str] = Counter()
    for q in range(60):
        start = rotation_start(f"What is {q} + 1?")
        assert start == rotation_start(f"What is {q} + 1?")  # reproducible
        for c in cluster_schedule([["a"], ["b"]], ["j1", "j2", "j3"], judges_per_pair=2, start=start):
            judged[c.judge] += 1
    assert set(judged) == {"j1", "j2", "j3"} and min(judged.values()) >= 60  # each about 2/3 of 60 rounds × 2
