"""Tests for swarmrank.eval.metrics: accuracy intervals, oracle, best node, McNemar, gap, cost."""

from __future__ import annotations

import math

import numpy as np
import pytest

from swarmrank.errors import RankingError
from swarmrank.eval import metrics
from swarmrank.eval.metrics import (
    Accuracy,
    CostPerQuestion,
    PairedTest,
    accuracy,
    best_single,
    cost_per_question,
    gap_closed,
    oracle,
    paired_difference,
    wilson_interval,
)


def _vector(k: int, n: int) -> np.ndarray:
    """k correct items followed by n - k wrong ones."""
    return np.array([True] * k + [False] * (n - k))


# --------------------------------------------------------------------------------------------
# accuracy and wilson_interval
# --------------------------------------------------------------------------------------------


def test_accuracy_counts_and_mean_are_exact():
    acc = accuracy([True, True, False, True])
    assert isinstance(acc, Accuracy)
    assert (acc.correct, acc.total, acc.mean) == (3, 4, 0.75)
    assert acc.method.startswith("percentile bootstrap")


def test_accuracy_accepts_zero_one_integers_like_booleans():
    assert accuracy(np.array([1, 0, 1, 1, 0])) == accuracy([True, False, True, True, False])


def test_bootstrap_interval_contains_the_mean_and_stays_in_unit_range():
    acc = accuracy(_vector(37, 50))
    assert 0.0 <= acc.low < acc.mean == 0.74 < acc.high <= 1.0


def test_bootstrap_is_reproducible_with_the_seed_and_ignores_global_random_state():
    x = _vector(70, 100)
    np.random.seed(123)
    first = accuracy(x, seed=7)
    np.random.seed(999)
    second = accuracy(x, seed=7)
    assert first == second


def test_bootstrap_gives_the_same_resamples_when_drawn_in_blocks(monkeypatch):
    x = _vector(33, 57)
    whole = accuracy(x, n_boot=500, seed=3)
    monkeypatch.setattr(metrics, "_MAX_BLOCK_ENTRIES", 57 * 7)  # 7 resample rows per block
    assert accuracy(x, n_boot=500, seed=3) == whole


def test_bootstrap_interval_narrows_as_items_grow():
    intervals = [accuracy(_vector(int(0.7 * n), n)) for n in (20, 200, 2000)]
    widths = [acc.high - acc.low for acc in intervals]
    assert widths[0] > widths[1] > widths[2]
    # the width shrinks like 1/sqrt(n): 2 * 1.96 * sqrt(0.21 / n) is 0.040 at n = 2000
    assert widths[2] == pytest.approx(0.040, abs=0.006)


def test_bootstrap_interval_matches_wilson_for_n200_p07():
    acc = accuracy(_vector(140, 200))
    low, high = wilson_interval(140, 200)
    assert abs(acc.low - low) < 0.02
    assert abs(acc.high - high) < 0.02


def test_all_correct_collapses_interval_at_one_and_all_wrong_at_zero():
    top = accuracy([True] * 12)
    assert (top.mean, top.low, top.high) == (1.0, 1.0, 1.0)
    bottom = accuracy([False] * 12)
    assert (bottom.mean, bottom.low, bottom.high) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [  # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (Wilson score)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_published_values(k, n, low, high):
    got = wilson_interval(k, n)
    assert got == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def test_wilson_interval_ends_are_exact_at_zero_and_n():
    z2 = 1.959963984540054**2
    assert wilson_interval(0, 10) == (0.0, pytest.approx(z2 / (10 + z2)))
    assert wilson_interval(10, 10) == (pytest.approx(10 / (10 + z2)), 1.0)


def test_wilson_interval_widens_with_confidence():
    narrow = wilson_interval(140, 200, 0.80)
    wide = wilson_interval(140, 200, 0.99)
    assert wide[0] < narrow[0] < 0.7 < narrow[1] < wide[1]


def test_accuracy_wilson_method_uses_the_closed_form():
    acc = accuracy(_vector(140, 200), method="wilson")
    assert (acc.low, acc.high) == wilson_interval(140, 200)
    assert acc.method == "wilson score"


@pytest.mark.parametrize(
    "bad",
    [[], np.array([], dtype=bool), [0.5, 1.0], ["yes", "no"], [2, 0, 1], [[True, False], [True, True]]],
)
def test_accuracy_rejects_empty_non_boolean_or_two_dimensional_input(bad):
    with pytest.raises(RankingError) as err:
        accuracy(bad)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs", [{"confidence": 1.0}, {"confidence": 0.0}, {"n_boot": 0}, {"method": "wald"}])
def test_accuracy_rejects_bad_options(kwargs):
    with pytest.raises(RankingError):
        accuracy([True, False], **kwargs)


@pytest.mark.parametrize(("k", "n"), [(0, 0), (5, 4), (-1, 4)])
def test_wilson_interval_rejects_impossible_counts(k, n):
    with pytest.raises(RankingError):
        wilson_interval(k, n)


# --------------------------------------------------------------------------------------------
# oracle and best_single
# --------------------------------------------------------------------------------------------

TABLE = {
    "n1": [True, False, False, True, False],
    "n2": [False, False, True, True, False],
    "n3": [False, False, False, False, True],
}


def test_oracle_marks_items_any_node_got_right():
    got = oracle(TABLE)
    assert got.dtype == np.bool_
    assert got.tolist() == [True, False, True, True, True]
    assert accuracy(got).mean == 0.8


def test_oracle_of_one_node_is_that_node():
    assert oracle({"only": [True, False, True]}).tolist() == [True, False, True]


def test_best_single_picks_highest_accuracy():
    assert best_single({"a": [True, False, False], "b": [True, True, False]}) == ("b", pytest.approx(2 / 3))


def test_best_single_breaks_ties_by_sorted_name_not_mapping_order():
    assert best_single(TABLE) == ("n1", 0.4)
    tied = {"zeta": [True, True, False], "alpha": [False, True, True], "mid": [True, False, False]}
    assert best_single(tied) == ("alpha", pytest.approx(2 / 3))


def test_oracle_and_best_single_reject_length_mismatch_and_empty_tables():
    mismatched = {"a": [True, False], "b": [True, False, True]}
    for fn in (oracle, best_single):
        with pytest.raises(RankingError, match="different numbers of items"):
            fn(mismatched)
        with pytest.raises(RankingError, match="no nodes"):
            fn({})
        with pytest.raises(RankingError, match="no items"):
            fn({"a": []})


# --------------------------------------------------------------------------------------------
# paired_difference (McNemar 1947)
# --------------------------------------------------------------------------------------------

# 20 items: 7 only a right, 1 only b right, 10 both right, 2 both wrong
A = [True] * 7 + [False] * 1 + [True] * 10 + [False] * 2
B = [False] * 7 + [True] * 1 + [True] * 10 + [False] * 2


def test_paired_difference_on_a_hand_computed_table():
    test = paired_difference(A, B)
    assert isinstance(test, PairedTest)
    assert (test.a_only, test.b_only, test.n) == (7, 1, 20)
    assert test.diff == pytest.approx(0.3)  # 17/20 - 11/20
    # exact McNemar: 2 * P(X <= 1 | n=8, p=1/2) = 2 * (1 + 8) / 256
    assert test.p_value == pytest.approx(2 * (math.comb(8, 0) + math.comb(8, 1)) / 2**8)
    assert test.p_value == pytest.approx(0.0703125)
    assert test.low < test.diff < test.high
    # the paired bootstrap's standard error is sqrt(0.31 / 20) = 0.124, so the interval is about +-0.25
    assert test.high - test.low == pytest.approx(2 * 1.96 * math.sqrt(0.31 / 20), abs=0.05)


def test_paired_difference_is_antisymmetric_in_its_arguments():
    ab, ba = paired_difference(A, B), paired_difference(B, A)
    assert ba.diff == pytest.approx(-ab.diff)
    assert (ba.a_only, ba.b_only) == (ab.b_only, ab.a_only)
    assert ba.p_value == ab.p_value


def test_paired_difference_of_identical_vectors_is_zero_with_p_one():
    test = paired_difference(A, A)
    assert (test.diff, test.low, test.high, test.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert (test.a_only, test.b_only) == (0, 0)


def test_paired_difference_balanced_discordance_gives_p_one():
    a = [True, True, False, False, True]
    b = [False, False, True, True, True]
    test = paired_difference(a, b)
    assert (test.a_only, test.b_only, test.diff, test.p_value) == (2, 2, 0.0, 1.0)


def test_paired_difference_all_discordant_one_way_is_significant():
    test = paired_difference([True] * 10, [False] * 10)
    assert test.p_value == pytest.approx(2 / 2**10)
    assert (test.diff, test.low, test.high) == (1.0, 1.0, 1.0)


def test_paired_difference_is_reproducible_with_the_seed():
    assert paired_difference(A, B, seed=5) == paired_difference(A, B, seed=5)


def test_paired_difference_rejects_length_mismatch_and_empty_input():
    with pytest.raises(RankingError, match="different numbers of items"):
        paired_difference([True, False], [True])
    with pytest.raises(RankingError, match="no items"):
        paired_difference([], [])


# --------------------------------------------------------------------------------------------
# gap_closed
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "majority", "oracle_acc", "expected"),
    [
        (0.75, 0.6, 0.9, 0.5),
        (0.6, 0.6, 0.9, 0.0),
        (0.9, 0.6, 0.9, 1.0),
        (0.5, 0.6, 0.8, -0.5),
        (0.85, 0.5, 0.75, 1.4),
    ],
)
def test_gap_closed_hand_cases(protocol, majority, oracle_acc, expected):
    assert gap_closed(protocol, majority, oracle_acc) == pytest.approx(expected)


def test_gap_closed_is_none_when_oracle_equals_majority():
    assert gap_closed(0.7, 0.6, 0.6) is None
    assert gap_closed(0.6, 0.6, 0.6) is None


@pytest.mark.parametrize(("args"), [(0.7, 0.8, 0.6), (1.2, 0.5, 0.9), (0.5, -0.1, 0.9), (0.5, 0.5, math.nan)])
def test_gap_closed_rejects_impossible_accuracies(args):
    with pytest.raises(RankingError):
        gap_closed(*args)


# --------------------------------------------------------------------------------------------
# cost_per_question
# --------------------------------------------------------------------------------------------


def test_cost_per_question_averages_each_column():
    cost = cost_per_question([3, 5, 4], [100, 200, 300], [10, 20, 60], [1.5, 2.5, 2.0])
    assert cost == CostPerQuestion(
        n=3, calls=4.0, prompt_tokens=200.0, completion_tokens=30.0, total_tokens=230.0, seconds=2.0
    )


@pytest.mark.parametrize(
    "columns",
    [
        ([1, 2], [1, 2], [1, 2], [1.0]),  # length mismatch
        ([], [], [], []),  # empty
        ([1, -2], [1, 2], [1, 2], [1.0, 1.0]),  # negative
        ([1, 2], [1, 2], [1, 2], [1.0, math.inf]),  # not finite
        ([1, 2], ["a", "b"], [1, 2], [1.0, 1.0]),  # not numeric
    ],
)
def test_cost_per_question_rejects_bad_columns(columns):
    with pytest.raises(RankingError):
        cost_per_question(*columns)
