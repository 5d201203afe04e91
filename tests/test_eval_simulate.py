"""Tests for swarmrank.eval.simulate: synthetic nodes through real rounds, sweeps and the regime map."""

from __future__ import annotations

import asyncio
import math

import pytest

from swarmrank.errors import ConfigError
from swarmrank.eval.simulate import (
    SimJudge,
    SimParams,
    World,
    regime_grid,
    regime_map,
    simulate,
    size_curve,
    size_table,
    sweep,
)
from swarmrank.nodes.base import CompletionRequest, Message
from swarmrank.reliability import BOOK_BATCH


def _judge_verdict(judge: SimJudge, world: World, q: int, first: str, second: str) -> str:
    request = CompletionRequest(
        messages=(Message("user", "compare"),), purpose="judge",
        context={"question": world.questions[q], "first_value": first, "second_value": second,
                 "truth": world.truths[q]})
    text = asyncio.run(judge.complete(request)).text
    return text.rsplit("Verdict:", 1)[1].strip()


def test_same_seed_gives_identical_results_and_another_seed_differs():
    params = SimParams(questions=50, seed=3)
    first, second = simulate(params), simulate(params)
    for name in params.protocols:
        assert first[name].correct == second[name].correct
        assert first[name].judge_calls == second[name].judge_calls
    assert first.node_accuracy == second.node_accuracy
    assert first.configured_accuracy == second.configured_accuracy
    other = simulate(SimParams(questions=50, seed=4))
    assert other.configured_accuracy != first.configured_accuracy
    assert other["majority"].correct != first["majority"].correct


def test_question_answers_do_not_depend_on_how_many_questions_run():
    short = World(SimParams(questions=20, seed=1))
    long = World(SimParams(questions=120, seed=1))
    assert long.answers[:20] == short.answers


def test_perfect_judges_with_correlated_errors_beat_majority_and_reach_the_oracle():
    result = simulate(SimParams(judge_discrimination=1.0, correlated_errors=0.9, accuracy_mean=0.35, questions=200))
    diff = result.difference("peer-rank", "majority")
    assert diff.diff >= 0.15
    assert diff.low > 0.0 and diff.p_value < 0.001
    # a perfect judge always prefers the truth: once the swarm has seen its judges agree and stay
    # consistent (the first learning batch), peer-rank is right exactly where some node was
    assert result["peer-rank"].correct[BOOK_BATCH:] == result.oracle_correct[BOOK_BATCH:]
    assert result["peer-rank"].accuracy.mean >= result.oracle.mean - 0.02
    assert result["majority"].accuracy.mean < 0.5


def test_coin_flip_judges_are_no_better_than_majority():
    result = simulate(SimParams(judge_discrimination=0.5, correlated_errors=0.0, questions=200))
    diff = result.difference("peer-rank", "majority")
    assert diff.low <= 0.0  # never significantly better
    assert diff.diff <= 0.02


def test_nodes_that_are_always_right_make_every_protocol_perfect_without_judging():
    result = simulate(SimParams(node_accuracies=(1.0,) * 7, questions=50,
                                protocols=("peer-rank", "majority", "council")))
    for name in ("peer-rank", "majority", "council"):
        assert result[name].accuracy.mean == 1.0
        assert result[name].judge_calls == 0.0  # one candidate: nothing to compare
    assert result.oracle.mean == 1.0 and result.single == 1.0


def test_adversaries_raise_majority_error():
    honest = simulate(SimParams(adversary_fraction=0.0, questions=120))
    attacked = simulate(SimParams(adversary_fraction=0.43, questions=120))
    assert attacked.params.n_adversaries == 3 and attacked.params.n_adversary_judges == 1
    assert attacked["majority"].accuracy.mean <= honest["majority"].accuracy.mean - 0.2
    # the colluders are the last answerers and are never right; the honest ones keep their draws
    assert attacked.node_accuracy[-3:] == (0.0, 0.0, 0.0)
    assert attacked.configured_accuracy[:4] == honest.configured_accuracy[:4]
    assert attacked.node_accuracy[:4] == honest.node_accuracy[:4]


def test_colluding_judge_always_prefers_the_popular_wrong_answer():
    world = World(SimParams(questions=5, adversary_fraction=1.0, n_judges=1))
    judge = SimJudge(world, 0, adversary=True)
    for q in range(5):
        assert _judge_verdict(judge, world, q, world.truths[q], world.popular[q]) == "B"
        assert _judge_verdict(judge, world, q, world.popular[q], world.truths[q]) == "A"


def test_judge_prefers_the_right_answer_at_the_configured_rate():
    world = World(SimParams(questions=600, judge_discrimination=0.7))
    judge = SimJudge(world, 0)
    verdicts = [_judge_verdict(judge, world, q, world.truths[q], world.popular[q]) for q in range(600)]
    rate = verdicts.count("A") / len(verdicts)
    assert abs(rate - 0.7) < 3 * math.sqrt(0.7 * 0.3 / 600)
    assert _judge_verdict(judge, world, 0, world.popular[0], world.popular[0]) == "U"


def test_realised_node_accuracy_matches_the_configured_accuracy():
    params = SimParams(accuracy_mean=0.6, accuracy_spread=0.3, questions=400, n_answerers=9,
                       protocols=("majority",))
    result = simulate(params)
    for configured in result.configured_accuracy:
        assert 0.45 - 1e-9 <= configured <= 0.75 + 1e-9
    for configured, realised in zip(result.configured_accuracy, result.node_accuracy):
        assert abs(realised - configured) < 4 * math.sqrt(configured * (1 - configured) / 400)
    assert abs(result.single - 0.6) < 0.06
    assert abs(sum(result.configured_accuracy) / 9 - 0.6) < 0.06


def test_accuracies_are_clipped_to_the_open_range():
    world = World(SimParams(accuracy_mean=1.0, accuracy_spread=0.5, questions=1))
    assert all(0.02 <= a <= 0.98 for a in world.accuracies)
    assert max(world.accuracies) == 0.98


def test_judge_calls_are_counted_per_protocol():
    result = simulate(SimParams(questions=60))
    assert result["majority"].judge_calls == 0.0
    assert result["majority"].calls == 7.0
    assert result["peer-rank"].judge_calls > 0.0
    assert result["peer-rank"].calls == pytest.approx(7.0 + result["peer-rank"].judge_calls)


def test_other_protocols_run_on_the_simulated_nodes():
    result = simulate(SimParams(questions=40, judge_discrimination=1.0,
                                protocols=("council", "debate", "blender", "majority")))
    assert result["council"].accuracy.mean == pytest.approx(result.oracle.mean)
    assert result["blender"].accuracy.mean == pytest.approx(result.oracle.mean)
    assert result["debate"].correct == result["majority"].correct  # stubborn nodes never revise
    assert all(result[n].no_answer == 0 for n in result.protocols)


def test_sweep_returns_one_result_per_grid_cell_in_product_order():
    base = SimParams(questions=30)
    results = sweep(base, judge_discrimination=[0.5, 1.0], correlated_errors=[0.0, 0.5, 0.9])
    assert len(results) == 6
    cells = [(p.judge_discrimination, p.correlated_errors) for p, _ in results]
    assert cells == [(0.5, 0.0), (0.5, 0.5), (0.5, 0.9), (1.0, 0.0), (1.0, 0.5), (1.0, 0.9)]
    for params, result in results:
        assert result.params == params and params.questions == 30
    with pytest.raises(ConfigError):
        sweep(base, not_a_parameter=[1])


def test_regime_map_marks_the_significant_cell():
    base = SimParams(accuracy_mean=0.35, questions=100)
    results = sweep(base, judge_discrimination=[0.5, 1.0], correlated_errors=[0.0, 0.9])
    grid = regime_grid(results, "judge_discrimination", "correlated_errors")
    assert grid.xs == (0.5, 1.0) and grid.ys == (0.0, 0.9)
    assert grid.significant[1][1] and grid.diff[1][1] >= 0.15  # perfect judges, correlated errors
    # coin-flip judges, independent errors: their estimated discrimination falls to ~0 and the
    # votes decide (the Bradley–Terry aggregation of 0.1 lost 10+ points here)
    assert abs(grid.diff[0][0]) <= 0.02
    table = regime_map(results, "judge_discrimination", "correlated_errors")
    rows = [line for line in table.splitlines() if line.startswith("| 0.9 ")]
    assert len(rows) == 1
    cell = rows[0].split("|")[3].strip()
    assert cell.startswith("+") and cell.endswith("*")
    assert "correlated_errors \\ judge_discrimination" in table.splitlines()[0]


def test_regime_map_rejects_a_sweep_with_more_than_two_dimensions():
    results = sweep(SimParams(questions=10), judge_discrimination=[0.5, 1.0], n_answerers=[3, 5])
    with pytest.raises(ConfigError):
        regime_map(results, "judge_discrimination", "correlated_errors")


def test_size_curve_keeps_existing_nodes_and_raises_the_oracle():
    results = size_curve(SimParams(questions=60), [3, 7, 11])
    assert [p.n_answerers for p, _ in results] == [3, 7, 11]
    small, mid, large = (r for _, r in results)
    assert large.configured_accuracy[:3] == small.configured_accuracy
    assert small.oracle.mean <= mid.oracle.mean <= large.oracle.mean
    table = size_table(results)
    assert len(table.splitlines()) == 2 + 3
    assert "peer-rank judge calls" in table.splitlines()[0]


@pytest.mark.parametrize("bad", [
    {"judge_discrimination": 1.5}, {"correlated_errors": -0.1}, {"n_answerers": 0}, {"questions": 0},
    {"protocols": ("no-such-protocol",)}, {"schedule": "nope"}, {"node_accuracies": (1.0, 1.0)},
])
def test_invalid_parameters_are_rejected(bad):
    with pytest.raises(ConfigError):
        SimParams(**bad)


def test_round_options_reach_the_rounds():
    params = SimParams(questions=40, round_options={"max_full_pairs": 2})
    assert params.round_options == (("max_full_pairs", 2),)
    full = simulate(SimParams(questions=40))
    sparse = simulate(params)  # beyond 2 candidates only adjacent + cross pairs are judged
    assert sparse["peer-rank"].judge_calls < full["peer-rank"].judge_calls
    assert sparse["majority"].correct == full["majority"].correct
    with pytest.raises(ConfigError):
        SimParams(round_options={"no_such_option": 1})
    with pytest.raises(ConfigError):
        SimParams(round_options={"schedule": "fortytwo"})
