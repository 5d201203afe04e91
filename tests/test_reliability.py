"""The judge-reliability estimator and the evidence posterior (swarmrank.reliability)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from swarmrank.errors import RankingError
from swarmrank.eval.simulate import SimParams, World, build_nodes
from swarmrank.reliability import (
    KAPPA_MAX,
    Evidence,
    JudgeBook,
    ReliabilityParams,
    decide,
    pool_verdicts,
)
from swarmrank.round import RoundOptions
from swarmrank.store import Store
from swarmrank.swarm import Swarm

# -- pooling -------------------------------------------------------------------------------------


def test_pooling_keeps_each_order_and_measures_consistency_and_position_bias():
    rows = [("j", 0, 1, 1.0), ("j", 1, 0, 0.0),   # prefers 0 in both orders: consistent
            ("k", 0, 1, 1.0), ("k", 1, 0, 1.0),   # always "A": flips with the order
            ("j", 1, 1, 1.0)]                      # a candidate against itself: no evidence
    evidence, bias = pool_verdicts(rows)
    j, k = evidence
    assert (j.judge, j.x, j.y, j.u_xy, j.u_yx) == ("j", 0, 1, 1.0, 1.0)
    assert j.consistency == 1.0 and j.preference == 1.0
    assert (k.u_xy, k.u_yx) == (1.0, 0.0) and k.consistency == 0.0 and k.preference == 0.0
    assert bias == {"j": pytest.approx(2 / 3), "k": 1.0}


def test_pooling_marks_a_judge_whose_own_answer_is_in_the_pair():
    evidence, _ = pool_verdicts([("a", 0, 1, 0.9), ("b", 0, 1, 0.9)], own={"a": 1, "b": 2})
    assert [e.interested for e in evidence] == [1, None]
    assert evidence[0].u_yx is None and evidence[0].consistency is None


def test_a_verdict_probability_outside_zero_one_is_refused():
    with pytest.raises(RankingError, match="outside"):
        pool_verdicts([("j", 0, 1, 1.5)])


# -- the posterior -------------------------------------------------------------------------------


def test_without_verdicts_the_posterior_is_the_vote_prior():
    d = decide(3, [3, 1, 1], [], params=ReliabilityParams(vote_prior=0.5))
    expected = np.exp([1.5, 0.5, 0.5]) / np.exp([1.5, 0.5, 0.5]).sum()
    assert d.posterior == pytest.approx(expected)
    assert d.judges == () and d.pairs == ()


def test_judges_that_flip_with_the_order_leave_the_vote_prior_alone():
    evidence = [Evidence(f"j{k}", 0, 1, 1.0, 0.0, 2) for k in range(5)]  # always "A"
    d = decide(2, [2, 1], evidence)
    assert d.posterior == pytest.approx(decide(2, [2, 1], []).posterior)
    assert all(p.evidence == pytest.approx(0.0) for p in d.pairs)


def test_a_declared_reliable_judge_that_concedes_against_its_own_answer_counts_in_full():
    params = ReliabilityParams(judge_priors={"j": 0.9}, caution=0.0)
    # the judge prefers candidate 1 in both orders (P(prefers 0) is 0 whichever is shown first)
    against = decide(2, [1, 1], [Evidence("j", 0, 1, 0.0, 0.0, 2, interested=0)], params=params)
    for_own = decide(2, [1, 1], [Evidence("j", 0, 1, 0.0, 0.0, 2, interested=1)], params=params)
    neutral = decide(2, [1, 1], [Evidence("j", 0, 1, 0.0, 0.0, 2)], params=params)
    assert against.posterior[1] == pytest.approx(neutral.posterior[1])   # conceding: full weight
    assert 0.5 < for_own.posterior[1] < neutral.posterior[1]               # self-serving: discounted
    assert against.pairs[0].interested == 1 and against.pairs[0].evidence < 0


def test_bad_input_to_decide_is_a_ranking_error():
    with pytest.raises(RankingError, match="votes"):
        decide(2, [1.0], [])
    with pytest.raises(RankingError, match="two distinct candidates"):
        decide(2, [1, 1], [Evidence("j", 0, 0, 1.0, 0.0)])
    with pytest.raises(RankingError, match="judge_priors"):
        ReliabilityParams(judge_priors={"j": 1.0})


def test_no_single_verdict_can_rule_a_candidate_out():
    params = ReliabilityParams(judge_priors={"j": KAPPA_MAX}, caution=0.0)
    d = decide(2, [1, 1], [Evidence("j", 0, 1, 1.0, 1.0, 2)], params=params)
    # the likelihood ratio of one pooled verdict is at most (1 + 0.95)/(1 − 0.95) = 39
    assert d.posterior[1] >= 1 / 40 - 1e-9 and d.posterior[1] < 0.1


# -- estimating reliability ----------------------------------------------------------------------

def _stream(judges: str, questions: int, seed: int = 0, **kw: object) -> tuple[Swarm, list]:
    world = World(SimParams(questions=questions, seed=seed, judges=judges, judges_per_pair=99, **kw))
    swarm = Swarm(build_nodes(world), options=RoundOptions(judges_per_pair=99), store=None)
    rounds = [swarm.ask_sync(world.questions[q], truth=world.truths[q], task_type="short", save=False)
              for q in range(questions)]
    return swarm, rounds


def test_estimated_discrimination_tracks_the_true_one_without_ground_truth():
    discriminations = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    swarm, _ = _stream(",".join(f"1x{d}" for d in discriminations) + ",1xfirst", 120, correlated_errors=0.5)
    estimated = [swarm.judge_book.posterior(f"j{k}")[0] for k in range(len(discriminations))]
    true = [2 * d - 1 for d in discriminations]
    assert np.corrcoef(estimated, true)[0, 1] > 0.95
    assert all(abs(e - min(t, KAPPA_MAX)) < 0.2 for e, t in zip(estimated, true))
    assert swarm.judge_book.posterior("j6")[0] < 0.05  # always "A": no information


def test_a_coin_flipping_judge_loses_its_weight_by_itself():
    swarm, rounds = _stream("2x0.95,3x0.5", 60, correlated_errors=0.5)
    coins = [swarm.judge_book.posterior(f"j{k}")[0] for k in (2, 3, 4)]
    assert max(coins) < 0.2
    assert min(swarm.judge_book.posterior(f"j{k}")[0] for k in (0, 1)) > 0.7
    last = {r.judge: r for r in rounds[-1].judge_reports}
    assert all(last[f"j{k}"].consistency is not None for k in range(5))


def test_the_vote_prior_is_learnt_low_when_reliable_judges_keep_overturning_a_wrong_bloc():
    swarm, _ = _stream("3x0.95", 80, correlated_errors=0.9, accuracy_mean=0.35)
    assert swarm.judge_book.vote_prior() < 0.3
    coins, _ = _stream("3x0.5", 80, correlated_errors=0.9, accuracy_mean=0.35)
    assert coins.judge_book.vote_prior() == pytest.approx(JudgeBook().vote_prior(), abs=0.05)  # nothing learnt


# -- the book ------------------------------------------------------------------------------------

def test_a_book_copy_is_independent_and_memory_decays_old_rounds():
    book = JudgeBook(ReliabilityParams(memory=2.0))
    book.add("j", [(1.0, 0.0, 0.9, 0.05, 0)])
    copy = book.copy()
    copy.add("j", [(1.0, 0.0, 0.9, 0.05, 0)] * 5)
    assert book.posterior("j") != copy.posterior("j")
    forgetful = JudgeBook(ReliabilityParams(memory=2.0))
    for _ in range(30):
        forgetful.add("j", [(1.0, 0.0, 0.9, 0.05, 0)])
    assert forgetful.stats("j")["rounds"] == pytest.approx(2.0, abs=1e-6)  # 1 + ½ + ¼ + … → memory


def test_the_book_is_rebuilt_from_the_stored_rounds_of_the_swarm(tmp_path):
    url = f"sqlite:///{tmp_path / 'book.db'}"
    world = World(SimParams(questions=30, seed=2, judges="2x0.95,2x0.5", judges_per_pair=4))
    options = RoundOptions(judges_per_pair=4)
    with Store(url) as store:
        first = Swarm(build_nodes(world), options=options, name="book", store=store)
        for q in range(30):
            first.ask_sync(world.questions[q], truth=world.truths[q], task_type="short")
        learnt = {j: first.judge_book.posterior(j) for j in first.judge_book.judges()}
    with Store(url) as store:
        again = Swarm(build_nodes(world), options=options, name="book", store=store)
        again.ask_sync(world.questions[0] + " again?", truth=world.truths[0], task_type="short", save=False)
        # the new process rebuilt the same book before its first round (then learnt that round too)
        for judge, (mean, _) in learnt.items():
            assert math.isclose(again.judge_book.posterior(judge)[0], mean, abs_tol=0.05)
        other = Swarm(build_nodes(world), options=options, name="another-swarm", store=store)
        other.ask_sync(world.questions[1], truth=world.truths[1], task_type="short", save=False)
        assert other.judge_book.stats("j0")["rounds"] == pytest.approx(1.0)  # other swarms' rounds are not its own


@pytest.mark.parametrize("option", [{"influence": {"j0": float("inf")}}, {"vote_prior": float("inf")},
                                    {"caution": float("nan")}, {"consensus_floor": float("nan")}])
def test_an_infinite_or_nan_option_is_refused_before_any_round(option):
    """inf influence gave a NaN posterior and confidence (a maths review); every option must be finite."""
    from swarmrank.errors import ConfigError
    from swarmrank.round import RoundOptions

    with pytest.raises(ConfigError, match="Input should be a finite number"):
        RoundOptions(**option)
