"""Tests for swarmrank.aggregate: Bradley–Terry, vote shares, ahead-by-k and mean rank."""

from __future__ import annotations

import math

import choix
import numpy as np
import pytest
import scipy.optimize as optimize
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmrank.aggregate import (
    AheadByK,
    BTFit,
    bradley_terry,
    comparisons_from_verdicts,
    council_order,
    majority,
    mean_rank,
    reconcile_bin,
    weighted_vote,
)
from swarmrank.errors import RankingError


def _simulate(n: int, n_comparisons: int, seed: int, spread: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Random pairs with outcomes drawn from a Bradley–Terry model with random true strengths."""
    rng = np.random.default_rng(seed)
    true = rng.normal(scale=spread, size=n)
    a = rng.integers(0, n, n_comparisons)
    b = (a + rng.integers(1, n, n_comparisons)) % n  # never equal to a
    a_wins = rng.random(n_comparisons) < 1.0 / (1.0 + np.exp(-(true[a] - true[b])))
    return np.where(a_wins, a, b), np.where(a_wins, b, a)


def _centred(x: np.ndarray) -> np.ndarray:
    return np.asarray(x - x.mean(), dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Bradley–Terry: agreement with choix and closed forms
# --------------------------------------------------------------------------------------------


def test_maximum_likelihood_matches_choix_on_random_strongly_connected_data() -> None:
    for seed in range(3):
        winners, losers = _simulate(12, 400, seed)
        fit = bradley_terry(12, winners, losers, prior=0.0)
        assert fit.converged
        data = list(zip(winners.tolist(), losers.tolist(), strict=True))
        reference = choix.ilsr_pairwise(12, data, alpha=0.0, tol=1e-12, max_iter=1000)
        np.testing.assert_allclose(_centred(fit.log_strengths), _centred(reference), atol=1e-4)


def test_map_with_prior_matches_direct_optimisation_of_the_same_objective() -> None:
    winners, losers = _simulate(6, 40, seed=7)
    prior = 0.5

    def negative_log_posterior(theta: np.ndarray) -> float:
        d = theta[winners] - theta[losers]
        return float(
            np.sum(np.logaddexp(0.0, -d)) + prior * np.sum(np.logaddexp(0.0, -theta) + np.logaddexp(0.0, theta))
        )

    reference = optimize.minimize(negative_log_posterior, np.zeros(6), method="BFGS", options={"gtol": 1e-10}).x
    fit = bradley_terry(6, winners, losers, prior=prior)
    np.testing.assert_allclose(fit.log_strengths, reference, atol=1e-5)


def test_three_cycle_gives_equal_strengths() -> None:
    fit = bradley_terry(3, [0, 1, 2], [1, 2, 0], prior=0.0)
    np.testing.assert_allclose(fit.strengths, [1 / 3, 1 / 3, 1 / 3], atol=1e-12)
    np.testing.assert_array_equal(fit.ranking(), [0, 1, 2])  # exact tie: lower index first


def test_two_items_weighted_closed_form_log_odds() -> None:
    a, b = 3.5, 1.25
    fit = bradley_terry(2, [0, 1], [1, 0], [a, b], prior=0.0)
    assert fit.log_strengths[0] - fit.log_strengths[1] == pytest.approx(math.log(a / b), abs=1e-10)
    assert fit.strengths[0] == pytest.approx(a / (a + b), abs=1e-10)
    # theta is centred when prior == 0
    assert fit.log_strengths.sum() == pytest.approx(0.0, abs=1e-12)


def test_integer_weights_equal_duplicated_comparisons() -> None:
    winners, losers = _simulate(7, 30, seed=3)
    weights = np.arange(1, 31) % 4 + 1
    weighted = bradley_terry(7, winners, losers, weights)
    duplicated = bradley_terry(7, np.repeat(winners, weights), np.repeat(losers, weights))
    np.testing.assert_allclose(weighted.log_strengths, duplicated.log_strengths, atol=1e-10)
    np.testing.assert_allclose(weighted.stderr, duplicated.stderr, atol=1e-10)


def test_tie_equals_half_a_win_each_way() -> None:
    winners, losers, weights = comparisons_from_verdicts([(0, 1), (1, 2), (2, 0)], ["A", "U", "B"])
    np.testing.assert_array_equal(winners, [0, 0, 1, 2])
    np.testing.assert_array_equal(losers, [1, 2, 2, 1])
    np.testing.assert_allclose(weights, [1.0, 1.0, 0.5, 0.5])

    via_verdicts = bradley_terry(3, winners, losers, weights)
    by_hand = bradley_terry(3, [0, 0, 1, 2], [1, 2, 2, 1], [1.0, 1.0, 0.5, 0.5])
    np.testing.assert_allclose(via_verdicts.log_strengths, by_hand.log_strengths, atol=1e-12)
    # a pure tie between two items leaves them level
    tie = bradley_terry(2, *comparisons_from_verdicts([(0, 1)], ["U"]), prior=0.0)
    np.testing.assert_allclose(tie.strengths, [0.5, 0.5], atol=1e-12)


def test_verdict_weights_are_split_for_ties_only() -> None:
    winners, losers, weights = comparisons_from_verdicts([(3, 4), (4, 3)], ["B", "U"], [2.0, 3.0])
    np.testing.assert_array_equal(winners, [4, 4, 3])
    np.testing.assert_array_equal(losers, [3, 3, 4])
    np.testing.assert_allclose(weights, [2.0, 1.5, 1.5])


def test_unknown_verdict_is_rejected() -> None:
    with pytest.raises(RankingError, match="verdict"):
        comparisons_from_verdicts([(0, 1)], ["C"])


# --------------------------------------------------------------------------------------------
# Bradley–Terry: the prior, existence of the MLE, standard errors
# --------------------------------------------------------------------------------------------


def test_zero_win_item_stays_finite_and_below_the_others_with_prior() -> None:
    # item 2 loses every comparison; 0 and 1 split their games
    fit = bradley_terry(3, [0, 1, 0, 1, 0, 1], [1, 0, 2, 2, 2, 2], prior=0.1)
    assert fit.converged
    assert np.all(np.isfinite(fit.log_strengths))
    assert np.all(np.isfinite(fit.stderr))
    assert fit.log_strengths[2] < min(fit.log_strengths[0], fit.log_strengths[1])
    assert fit.ranking()[-1] == 2


def test_disconnected_components_are_finite_with_prior() -> None:
    # {0, 1} and {2, 3} never meet; 0 beats 1 and 2 beats 3
    fit = bradley_terry(4, [0, 0, 2, 2, 1, 3], [1, 1, 3, 3, 0, 2], prior=0.1)
    assert fit.converged
    assert np.all(np.isfinite(fit.log_strengths))
    assert fit.strengths.sum() == pytest.approx(1.0)
    # symmetric components get mirrored strengths through the shared reference item
    assert fit.log_strengths[0] == pytest.approx(fit.log_strengths[2], abs=1e-10)
    assert fit.log_strengths[1] == pytest.approx(fit.log_strengths[3], abs=1e-10)
    assert fit.log_strengths[0] > 0 > fit.log_strengths[1]


def test_prior_zero_on_not_strongly_connected_graph_raises() -> None:
    # 0 beats 1, 1 beats 2, 2 never beats anyone: no MLE
    with pytest.raises(RankingError, match="strongly connected"):
        bradley_terry(3, [0, 1, 1], [1, 2, 0], prior=0.0)
    # no comparisons at all between two items
    with pytest.raises(RankingError, match="does not exist"):
        bradley_terry(2, [], [], prior=0.0)


def test_zero_weight_comparison_does_not_count_as_an_edge() -> None:
    with pytest.raises(RankingError, match="strongly connected"):
        bradley_terry(2, [0, 1], [1, 0], [1.0, 0.0], prior=0.0)
    with pytest.raises(RankingError, match="strongly connected"):
        bradley_terry(2, [0, 1], [1, 0], [0.0, 1.0], prior=0.0)


def test_stderr_shrinks_as_comparisons_grow() -> None:
    winners = np.array([0, 1, 2, 0, 2, 1])
    losers = np.array([1, 2, 0, 2, 1, 0])
    errors = [bradley_terry(3, np.tile(winners, reps), np.tile(losers, reps), prior=0.1).stderr for reps in (1, 4, 16)]
    assert np.all(errors[1] < errors[0])
    assert np.all(errors[2] < errors[1])


def test_stderr_matches_closed_form_for_two_items() -> None:
    # prior=0: theta_0 - theta_1 has variance 1 / (N p (1 - p)); centred thetas carry half of it
    a, b = 6.0, 2.0
    fit = bradley_terry(2, [0, 1], [1, 0], [a, b], prior=0.0)
    p = a / (a + b)
    expected = 0.5 * math.sqrt(1.0 / ((a + b) * p * (1 - p)))
    np.testing.assert_allclose(fit.stderr, [expected, expected], rtol=1e-8)


def test_no_comparisons_with_prior_gives_equal_strengths() -> None:
    fit = bradley_terry(4, [], [])
    np.testing.assert_allclose(fit.strengths, np.full(4, 0.25))
    np.testing.assert_allclose(fit.log_strengths, np.zeros(4))
    assert fit.converged


def test_single_item_has_strength_one() -> None:
    for prior in (0.0, 0.1):
        fit = bradley_terry(1, [], [], prior=prior)
        np.testing.assert_array_equal(fit.strengths, [1.0])
        np.testing.assert_array_equal(fit.win_prob, [1.0])


def test_fit_fields_are_consistent_and_read_only() -> None:
    winners, losers = _simulate(5, 50, seed=11)
    fit = bradley_terry(5, winners, losers)
    assert isinstance(fit, BTFit)
    assert fit.strengths.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(fit.strengths, np.exp(fit.log_strengths) / np.exp(fit.log_strengths).sum())
    np.testing.assert_array_equal(fit.win_prob, fit.strengths)
    np.testing.assert_array_equal(fit.ranking(), np.argsort(-fit.strengths))
    assert 1 <= fit.iterations <= 100
    with pytest.raises(ValueError):
        fit.strengths[0] = 0.5


def test_max_iter_exhaustion_is_reported_not_raised() -> None:
    winners, losers = _simulate(8, 80, seed=5, spread=2.0)
    fit = bradley_terry(8, winners, losers, max_iter=1)
    assert fit.iterations == 1
    assert not fit.converged
    assert np.all(np.isfinite(fit.strengths))


def test_extreme_weights_and_tiny_prior_still_converge_to_finite_strengths() -> None:
    # weights up to 1e8 and priors down to 1e-8 leave some items almost undetermined: Newton
    # must damp the enormous steps and stop at floating-point precision instead of cycling
    rng = np.random.default_rng(2024)
    for _ in range(15):
        n = int(rng.integers(2, 12))
        m = int(rng.integers(5, 40))
        prior = float(10 ** rng.uniform(-8, -5))
        winners = rng.integers(0, n, m)
        losers = (winners + rng.integers(1, n, m)) % n
        weights = rng.exponential(size=m) * rng.integers(0, 2, m) * 10 ** rng.uniform(3, 8)
        fit = bradley_terry(n, winners, losers, weights, prior=prior)
        assert fit.converged
        assert np.all(np.isfinite(fit.log_strengths)) and np.all(np.isfinite(fit.stderr))
        assert fit.strengths.sum() == pytest.approx(1.0)


def test_huge_weights_keep_closed_form_accuracy() -> None:
    # 1e12 : 1 -> theta_0 - theta_1 = log(1e12); naive W - N * p would cancel catastrophically
    fit = bradley_terry(2, [0, 1], [1, 0], [1e12, 1.0], prior=0.0)
    assert fit.converged
    assert fit.log_strengths[0] - fit.log_strengths[1] == pytest.approx(math.log(1e12), rel=1e-12)


@pytest.mark.parametrize(
    ("n_items", "winners", "losers", "weights", "message"),
    [
        (0, [], [], None, "n_items"),
        (3, [0, 1], [1], None, "length"),
        (3, [0, 3], [1, 2], None, "outside"),
        (3, [0, -1], [1, 2], None, "outside"),
        (3, [0, 1], [1, 1], None, "both winner and loser"),
        (3, [0, 1], [1, 2], [1.0, -0.5], "negative"),
        (3, [0, 1], [1, 2], [1.0, float("nan")], "NaN"),
        (3, [0.0, float("nan")], [1, 2], None, "NaN"),
        (3, [0, 1], [1, 2], [1.0], "length"),
        (3, [0.5, 1], [1, 2], None, "integer"),
    ],
)
def test_invalid_comparison_input_raises_ranking_error(
    n_items: int, winners: list[float], losers: list[int], weights: list[float] | None, message: str
) -> None:
    with pytest.raises(RankingError, match=message):
        bradley_terry(n_items, winners, losers, weights)


def test_invalid_solver_options_raise_ranking_error() -> None:
    with pytest.raises(RankingError, match="prior"):
        bradley_terry(2, [0], [1], prior=-1.0)
    with pytest.raises(RankingError, match="prior"):
        bradley_terry(2, [0], [1], prior=float("nan"))
    with pytest.raises(RankingError, match="max_iter"):
        bradley_terry(2, [0], [1], max_iter=0)
    with pytest.raises(RankingError, match="tol"):
        bradley_terry(2, [0], [1], tol=0.0)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    n_comparisons=st.integers(0, 60),
    prior=st.floats(0.01, 5.0),
)
def test_strengths_always_finite_and_sum_to_one_with_prior(
    n: int, seed: int, n_comparisons: int, prior: float
) -> None:
    rng = np.random.default_rng(seed)
    if n == 1:
        winners = losers = np.zeros(0, dtype=int)
    else:
        winners = rng.integers(0, n, n_comparisons)
        losers = (winners + rng.integers(1, n, n_comparisons)) % n
    weights = rng.exponential(size=winners.size) * rng.integers(0, 2, winners.size)
    fit = bradley_terry(n, winners, losers, weights, prior=prior)
    assert fit.converged
    assert np.all(np.isfinite(fit.log_strengths))
    assert np.all(np.isfinite(fit.stderr))
    # errors are of contrasts against the field: one item alone has none
    assert np.all(fit.stderr > 0) if n > 1 else fit.stderr.tolist() == [0.0]
    assert np.all(fit.strengths > 0)
    assert fit.strengths.sum() == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# Voting
# --------------------------------------------------------------------------------------------


def test_majority_gives_vote_shares() -> None:
    np.testing.assert_allclose(majority(3, [0, 2, 2, 2]), [0.25, 0.0, 0.75])
    np.testing.assert_allclose(majority(2, [0, 1, 1], [3.0, 1.0, 1.0]), [0.6, 0.4])


def test_majority_without_positive_weight_raises() -> None:
    with pytest.raises(RankingError, match="no votes"):
        majority(3, [])
    with pytest.raises(RankingError, match="no votes"):
        majority(3, [1], [0.0])
    with pytest.raises(RankingError, match="outside"):
        majority(3, [3])


@pytest.mark.parametrize(
    ("confidence", "weight"),
    [
        (0.0, 0.1),
        (0.6, 0.1),
        (0.6000001, 0.3),
        (0.79, 0.3),
        (0.8, 0.5),
        (0.89, 0.5),
        (0.9, 0.8),
        (0.999, 0.8),
        (1.0, 1.0),
        (1.7, 1.0),  # clamped
        (-0.2, 0.1),  # clamped
        (float("nan"), 0.1),
    ],
)
def test_reconcile_bin_boundaries(confidence: float, weight: float) -> None:
    assert reconcile_bin(confidence) == weight


def test_weighted_vote_uses_reconcile_bins() -> None:
    # two votes at 0.6 (0.1 each) lose to one vote at 0.9 (0.8)
    shares = weighted_vote(2, [0, 0, 1], [0.6, 0.6, 0.9])
    np.testing.assert_allclose(shares, [0.2, 0.8])
    shares = weighted_vote(3, [0, 1, 2], [1.0, 0.8, 0.7])
    np.testing.assert_allclose(shares, np.array([1.0, 0.5, 0.3]) / 1.8)


def test_weighted_vote_rejects_mismatched_lengths_and_non_numbers() -> None:
    with pytest.raises(RankingError, match="length"):
        weighted_vote(2, [0, 1], [0.9])
    with pytest.raises(RankingError, match="number"):
        weighted_vote(2, [0], ["high"])
    with pytest.raises(RankingError, match="number"):
        reconcile_bin("high")  # type: ignore[arg-type]


def test_ahead_by_k_decides_exactly_when_lead_reaches_k() -> None:
    race = AheadByK(2)
    assert [race.add(key) for key in "aba"] == [False, False, False]
    assert not race.decided
    assert race.add("a") is True  # a: 3, b: 1 -> lead 2 on the 4th vote
    assert race.decided
    assert race.leader == "a"
    assert race.counts == {"a": 3, "b": 1}
    assert race.total == 4


def test_ahead_by_k_is_a_lead_not_an_absolute_count() -> None:
    race = AheadByK(2)
    for key in "abab":  # each reaches 2 votes, but nobody leads
        assert race.add(key) is False
    assert not race.decided
    assert race.counts == {"a": 2, "b": 2}
    assert race.leader == "a"  # tie: first voted for


def test_ahead_by_k_single_candidate_and_k_one() -> None:
    race = AheadByK(1)
    assert race.leader is None
    assert race.add(42) is True
    assert race.leader == 42

    race3 = AheadByK(3)
    assert [race3.add("x") for _ in range(3)] == [False, False, True]


def test_ahead_by_k_rejects_votes_after_decision_and_bad_k() -> None:
    race = AheadByK(1)
    race.add("a")
    with pytest.raises(RankingError, match="decided"):
        race.add("b")
    for bad in (0, -1, True, 1.5):
        with pytest.raises(RankingError, match="k must"):
            AheadByK(bad)  # type: ignore[arg-type]


def test_ahead_by_k_counts_is_a_copy() -> None:
    race = AheadByK(3)
    race.add("a")
    race.counts["a"] = 99
    assert race.counts == {"a": 1}


# --------------------------------------------------------------------------------------------
# Mean rank (llm-council)
# --------------------------------------------------------------------------------------------


def test_mean_rank_hand_computed() -> None:
    # positions: item 0 -> 1, 2, 1 ; item 1 -> 2, 1 ; item 2 -> 3 ; item 3 never ranked
    ranks = mean_rank(4, [[0, 1, 2], [1, 0], [0]])
    np.testing.assert_allclose(ranks[:3], [4 / 3, 1.5, 3.0])
    assert ranks[3] == math.inf
    np.testing.assert_array_equal(council_order(ranks), [0, 1, 2, 3])


def test_council_order_breaks_ties_by_lower_index() -> None:
    ranks = mean_rank(3, [[2, 1], [1, 2]])
    np.testing.assert_allclose(ranks, [math.inf, 1.5, 1.5])
    np.testing.assert_array_equal(council_order(ranks), [1, 2, 0])


def test_mean_rank_with_no_rankings_is_all_infinite() -> None:
    assert np.all(np.isinf(mean_rank(3, [])))


def test_mean_rank_rejects_duplicates_and_bad_indices() -> None:
    with pytest.raises(RankingError, match="more than once"):
        mean_rank(3, [[0, 0]])
    with pytest.raises(RankingError, match="outside"):
        mean_rank(3, [[0, 3]])
    with pytest.raises(RankingError, match="NaN"):
        council_order([1.0, float("nan")])


def test_one_hot_probabilities_reproduce_hard_verdicts():
    from swarmrank.aggregate import comparisons_from_probabilities

    pairs = [(0, 1), (1, 0), (0, 2), (2, 1)]
    verdicts = ["A", "A", "U", "B"]
    onehot = [[v == "A", v == "B", v == "U"] for v in verdicts]
    hard = bradley_terry(3, *comparisons_from_verdicts(pairs, verdicts, [1, 2, 1, 1]))
    soft = bradley_terry(3, *comparisons_from_probabilities(pairs, onehot, [1, 2, 1, 1]))
    np.testing.assert_allclose(soft.strengths, hard.strengths, atol=1e-10)


def test_soft_verdicts_keep_the_preference_left_after_a_constant_position_bias():
    from swarmrank.aggregate import comparisons_from_probabilities

    # the judge always says A, but more surely when item 0 is shown first
    winners, losers, weights = comparisons_from_probabilities([(0, 1), (1, 0)], [[0.9, 0.1, 0], [0.6, 0.4, 0]])
    assert sorted(zip(winners.tolist(), losers.tolist(), np.round(weights, 6).tolist())) == [
        (0, 1, 0.4), (0, 1, 0.9), (1, 0, 0.1), (1, 0, 0.6)]
    fit = bradley_terry(2, winners, losers, weights, prior=0.01)
    assert fit.strengths[0] > fit.strengths[1]


def test_soft_verdict_rows_are_validated():
    from swarmrank.aggregate import comparisons_from_probabilities

    with pytest.raises(RankingError, match="probabilities"):
        comparisons_from_probabilities([(0, 1)], [[0.5, -0.1, 0.6]])
    with pytest.raises(RankingError, match="shape"):
        comparisons_from_probabilities([(0, 1)], [[0.5, 0.5]])


def test_stderr_measures_contrasts_not_the_prior_anchored_common_shift():
    # two items, each beat the other 50 times: the contrast is well measured even though the
    # weak prior barely pins the common level of both thetas
    fit = bradley_terry(2, [0, 1], [1, 0], [50.0, 50.0], prior=0.01)
    assert fit.stderr[0] == pytest.approx(fit.stderr[1])
    # var(theta_0 - theta_1) ≈ 1 / (N p (1 - p)) = 1/25 for N = 100 at p = 1/2; each centred theta is half of it
    assert fit.stderr[0] == pytest.approx(0.5 * (1 / 25) ** 0.5, rel=0.02)
