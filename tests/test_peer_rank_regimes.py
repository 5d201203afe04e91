"""Peer-rank's three regimes on scripted swarms, in both set-ups, over a stream of questions.

* a correct minority that some reliable judges can see beats a wrong bloc (majority does not);
* judges that are all coin flips or position-biased cost (almost) nothing against majority;
* unanimous reliable judges are followed.

Set-ups: separate judges, and every node answering and judging. A swarm learns its judges'
reliability across rounds (the judge book), so each regime runs a stream of questions through one
swarm and the assertions read the stream after a short warm-up. Every draw is seeded.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from swarmrank.nodes.base import Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm

QUESTIONS = 40
WARM_UP = 10
WRONG = "0"


def question(i: int) -> tuple[str, str]:
    return f"What is {i + 11} + {i + 3}?", str(2 * i + 14)


def node(node_id: str, *, right: bool | None = None, judge: str | None = None, seed: int = 0) -> Node:
    """``right``: answers the truth (True), the bloc's wrong answer (False), or does not answer (None).
    ``judge``: 'reliable' (prefers the truth with p = 0.95 per verdict), 'coin', 'first', or None."""
    rule = {"reliable": "truth", "coin": "random", "first": "first", None: "truth"}[judge]
    backend = ScriptedBackend(accuracy=None if right is None else (1.0 if right else 0.0), wrong=WRONG,
                              judge=rule, judge_accuracy=0.95 if judge == "reliable" else None, seed=seed)
    roles = ({"answer"} if right is not None else set()) | ({"judge"} if judge is not None else set())
    return Node(node_id, backend, Persona(seed=seed), roles=frozenset(roles))


def separate(answers: Sequence[bool], judges: Sequence[str]) -> list[Node]:
    return ([node(f"a{i}", right=r, seed=i) for i, r in enumerate(answers)]
            + [node(f"j{k}", judge=kind, seed=100 + k) for k, kind in enumerate(judges)])


def together(spec: Sequence[tuple[bool, str]]) -> list[Node]:
    return [node(f"n{i}", right=r, judge=kind, seed=i) for i, (r, kind) in enumerate(spec)]


def stream(nodes: list[Node], **options: object) -> tuple[list[bool], list[bool], Swarm]:
    """Ask QUESTIONS questions of one swarm under peer-rank and majority: who was right, and the swarm."""
    swarm = Swarm(nodes, options=RoundOptions(**options), store=None)  # type: ignore[arg-type]
    ranked, voted, rounds = [], [], []
    for i in range(QUESTIONS):
        text, truth = question(i)
        result = swarm.ask_sync(text, truth=truth, task_type="number", save=False)
        ranked.append(result.answer == truth)
        rounds.append(result)
        voted.append(swarm.ask_sync(text, truth=truth, task_type="number", protocol="majority",
                                    save=False).answer == truth)
    swarm.rounds = rounds  # type: ignore[attr-defined]
    return ranked, voted, swarm


MINORITY = [True, True, False, False, False, False, False]   # 2 right against a bloc of 5
MIXED = ["reliable", "reliable", "coin", "coin", "coin", "coin", "coin", "first", "first", "first"]
USELESS = ["coin", "coin", "coin", "coin", "coin", "first", "first", "first"]


@pytest.mark.parametrize("schedule", ["cluster", "adaptive"])
def test_separate_judges_a_correct_minority_that_reliable_judges_see_beats_the_wrong_bloc(schedule):
    ranked, voted, swarm = stream(separate(MINORITY, MIXED), judges_per_pair=len(MIXED), schedule=schedule)
    assert not any(voted)  # the bloc outvotes the truth every time
    assert sum(ranked[WARM_UP:]) >= QUESTIONS - WARM_UP - 1
    book = swarm.judge_book
    # the estimator found the two reliable judges without being told
    assert min(book.posterior(j)[0] for j in ("j0", "j1")) > 0.6
    assert max(book.posterior(f"j{k}")[0] for k in range(2, len(MIXED))) < 0.2


def test_separate_judges_all_uninformative_cost_nothing_against_majority():
    # a right majority (4 of 7) and, on the same swarm, the judges are coins or always say "A"
    answers = [True, True, True, True, False, False, False]
    ranked, voted, swarm = stream(separate(answers, USELESS), judges_per_pair=len(USELESS))
    assert all(voted)
    assert sum(ranked) >= QUESTIONS - 1
    kappas = [swarm.judge_book.posterior(f"j{k}")[0] for k in range(len(USELESS))]
    assert max(kappas) < 0.3 and sum(kappas) / len(kappas) < 0.15


def test_separate_judges_unanimous_reliable_judges_are_followed():
    ranked, voted, _ = stream(separate(MINORITY, ["reliable"] * 3), judges_per_pair=3)
    assert not any(voted)
    assert sum(ranked[WARM_UP:]) >= QUESTIONS - WARM_UP - 1


# every node answers and judges: a reliable judge in the wrong bloc concedes, at full weight
TOGETHER_MIXED = [(True, "reliable"), (True, "coin"),
                  (False, "reliable"), (False, "reliable"), (False, "coin"), (False, "coin"), (False, "first")]
TOGETHER_USELESS = [(True, "coin"), (True, "first"), (True, "coin"), (True, "coin"),
                    (False, "coin"), (False, "first"), (False, "coin")]
TOGETHER_RELIABLE = [(r, "reliable") for r in MINORITY]


@pytest.mark.parametrize("schedule", ["cluster", "adaptive"])
def test_answering_judges_a_correct_minority_wins_and_every_contested_pair_is_judged(schedule):
    ranked, voted, swarm = stream(together(TOGETHER_MIXED), judges_per_pair=7, schedule=schedule)
    assert not any(voted)
    assert sum(ranked[WARM_UP:]) >= QUESTIONS - WARM_UP - 1
    for result in swarm.rounds:
        assert result.judgments, "a contested pair went unjudged"
        assert not any("votes alone" in n for n in result.notes)
        assert all(p.interested == p.judges for p in result.pair_reports)  # only interested judges exist


def test_answering_judges_all_uninformative_cost_nothing_against_majority():
    ranked, voted, _ = stream(together(TOGETHER_USELESS), judges_per_pair=7)
    assert all(voted)
    assert sum(ranked) >= QUESTIONS - 1


def test_answering_judges_unanimous_reliable_judges_are_followed():
    ranked, voted, _ = stream(together(TOGETHER_RELIABLE), judges_per_pair=7)
    assert not any(voted)
    assert sum(ranked[WARM_UP:]) >= QUESTIONS - WARM_UP - 1


def test_with_interested_judges_never_used_a_swarm_of_answering_judges_says_votes_decided():
    swarm = Swarm(together(TOGETHER_MIXED), options=RoundOptions(interested_judges="never"), store=None)
    text, truth = question(0)
    result = swarm.ask_sync(text, truth=truth, task_type="number", save=False)
    assert result.judgments == [] and result.answer == WRONG
    assert any("no eligible judge for any pair" in n and "decided by votes alone" in n for n in result.notes)


def test_a_swarm_without_judges_says_peer_rank_was_decided_by_votes():
    swarm = Swarm(separate(MINORITY, []), store=None)
    text, truth = question(0)
    result = swarm.ask_sync(text, truth=truth, task_type="number", save=False)
    assert result.answer == WRONG and result.judgments == []
    assert "this swarm has no judge: peer-rank decided by votes alone" in result.notes


@pytest.mark.parametrize("pool", ["1x0,2x0.95", "2x0.95,1x0"])
def test_a_known_liar_among_judges_does_not_drag_the_honest_ones_down_with_it(pool):
    """A judge shown to be a liar counts as what it is in the consensus the others are scored by (it was
    floored at κ = 0.3 like an unproven judge, which made two 0.95 judges look like coins: +0 over majority)."""
    from swarmrank.eval.simulate import SimParams, parse_judges, simulate

    params = SimParams(questions=100, seed=10, correlated_errors=0.7, accuracy_mean=0.4, judges=parse_judges(pool),
                       n_judges=0, judges_per_pair=3, protocols=("peer-rank", "majority"))
    result = simulate(params)
    assert result["peer-rank"].accuracy.mean >= result["majority"].accuracy.mean + 0.30
