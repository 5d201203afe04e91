"""Every protocol on scripted swarms: the behaviour each one is known for, and the trace it leaves."""

from __future__ import annotations

import pytest

from swarmrank.errors import ConfigError
from swarmrank.nodes.base import Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.protocols import protocol_names
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm

from helpers import answerer, judge, scripted_swarm

Q = "What is 17 + 25?"


async def test_peer_rank_with_discriminating_judges_picks_the_correct_minority_answer_majority_misses():
    swarm = scripted_swarm(["42", "41", "41", "40"], [judge("j1", truth="42"), judge("j2", truth="42")])
    ranked = await swarm.ask(Q, protocol="peer-rank")
    voted = await swarm.ask(Q, protocol="majority")
    assert ranked.answer == "42"
    assert voted.answer == "41"
    assert ranked.candidates[ranked.winner].nodes == ["a0"]
    assert ranked.confidence > 0.5


async def test_peer_rank_judges_every_distinct_pair_in_both_orders():
    swarm = scripted_swarm(["42", "41", "40"], [judge("j1", truth="42")], judges_per_pair=1)
    result = await swarm.ask(Q)
    ordered = {(j.first, j.second) for j in result.judgments}
    assert ordered == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)}
    assert result.cost.phases["judge"].calls == 6
    # the truth-judge prefers 42 whichever side it is shown on
    for j in result.judgments:
        shown_first = result.candidates[j.first].answer
        shown_second = result.candidates[j.second].answer
        if "42" in (shown_first, shown_second):
            assert j.verdict == ("A" if shown_first == "42" else "B")


async def test_cluster_schedule_makes_zero_judge_calls_when_all_answers_agree():
    swarm = scripted_swarm(["42", "42", "42"], [judge("j1"), judge("j2")])
    result = await swarm.ask(Q)
    assert result.answer == "42"
    assert result.judgments == []
    assert "judge" not in result.cost.phases or result.cost.phases["judge"].calls == 0
    assert result.confidence == pytest.approx(1.0)


async def test_fortytwo_schedule_compares_answers_and_costs_more_judge_calls_than_cluster():
    answers = ["42", "42", "41", "41", "42", "40"]
    judges_ = [judge("j1", truth="42"), judge("j2", truth="42")]
    cluster = await scripted_swarm(answers, judges_, schedule="cluster").ask(Q)
    fortytwo = await scripted_swarm(answers, judges_, schedule="fortytwo").ask(Q)
    assert cluster.answer == fortytwo.answer == "42"
    assert fortytwo.schedule == "fortytwo"
    n = 6
    per_judge = 2 * (n - 1) + 2 * (n // 2)
    assert fortytwo.cost.phases["judge"].calls == 2 * per_judge
    assert fortytwo.cost.phases["grade"].calls == 2 * n
    assert cluster.cost.phases["judge"].calls < fortytwo.cost.phases["judge"].calls
    assert sum(c.strength for c in fortytwo.candidates) == pytest.approx(1.0)


async def test_position_biased_judges_cancel_out_over_both_orders():
    swarm = scripted_swarm(["42", "41"], [judge("j1", "first"), judge("j2", "first")])
    result = await swarm.ask(Q)
    strengths = [c.strength for c in result.candidates]
    assert strengths[0] == pytest.approx(strengths[1])


async def test_judge_influence_weights_bradley_terry():
    nodes = [answerer("a0", "42"), answerer("a1", "41"),
             judge("good", truth="42"), judge("bad", "prefer", prefer="41")]
    even = await Swarm(nodes, options=RoundOptions(aggregation="bradley-terry"), store=None).ask(Q)
    trusted = await Swarm(nodes, options=RoundOptions(influence={"good": 4.0, "bad": 0.25},
                                                      aggregation="bradley-terry"), store=None).ask(Q)
    assert even.candidates[0].strength == pytest.approx(0.5, abs=1e-6)
    assert trusted.answer == "42"
    assert trusted.candidates[0].strength > 0.9


async def test_judge_influence_tempers_each_judges_evidence():
    nodes = [answerer("a0", "42"), answerer("a1", "41"),
             judge("good", truth="42"), judge("bad", "prefer", prefer="41")]
    even = await Swarm(nodes, options=RoundOptions(), store=None).ask(Q)
    trusted = await Swarm(nodes, options=RoundOptions(influence={"good": 4.0, "bad": 0.25}), store=None).ask(Q)
    assert even.candidates[0].strength == pytest.approx(0.5, abs=1e-6)  # equal and opposite judges, 1:1 votes
    assert trusted.answer == "42" and trusted.candidates[0].strength > 0.55
    assert {r.judge: r.weight for r in trusted.judge_reports} == {"good": 4.0, "bad": 0.25}


async def test_a_judge_never_compares_a_pair_containing_its_own_answer():
    nodes = [Node(f"n{i}", ScriptedBackend(answers={"*": a}, judge="own"), Persona())
             for i, a in enumerate(["42", "41", "40", "39"])]
    result = await Swarm(nodes, store=None).ask(Q)
    own = {a.node: a.candidate for a in result.answers}
    assert result.judgments
    for j in result.judgments:
        assert own[j.judge] not in (j.first, j.second)


async def test_majority_counts_votes_and_reports_shares():
    result = await scripted_swarm(["7", "7", "8"]).ask("What is 3 + 4?", protocol="majority")
    assert result.answer == "7"
    assert result.confidence == pytest.approx(2 / 3)
    assert [c.votes for c in result.candidates] == [2.0, 1.0]
    assert result.judgments == []


async def test_weighted_vote_lets_confident_minority_beat_unsure_majority():
    nodes = [Node("sure", ScriptedBackend(answers={"*": "42"}, confidence=1.0), Persona(), frozenset({"answer"})),
             Node("u1", ScriptedBackend(answers={"*": "41"}, confidence=0.5), Persona(), frozenset({"answer"})),
             Node("u2", ScriptedBackend(answers={"*": "41"}, confidence=0.55), Persona(), frozenset({"answer"}))]
    result = await Swarm(nodes, options=RoundOptions(rounds=0), store=None).ask(Q, protocol="weighted-vote")
    assert result.answer == "42"  # 1.0 beats 0.1 + 0.1 after ReConcile's binning
    assert result.candidates[result.winner].votes == pytest.approx(1.0)
    assert {a.confidence for a in result.answers} == {1.0, 0.5, 0.55}


async def test_weighted_vote_discussion_moves_followers_to_the_majority():
    nodes = [Node("a", ScriptedBackend(answers={"*": "42"}, confidence=0.9), Persona(), frozenset({"answer"})),
             Node("b", ScriptedBackend(answers={"*": "42"}, confidence=0.9), Persona(), frozenset({"answer"})),
             Node("c", ScriptedBackend(answers={"*": "41"}, confidence=0.9, revise="majority"), Persona(),
                  frozenset({"answer"}))]
    result = await Swarm(nodes, options=RoundOptions(rounds=2), store=None).ask(Q, protocol="weighted-vote")
    assert result.answer == "42"
    assert result.confidence == pytest.approx(1.0)
    assert max(a.step for a in result.answers) == 1  # unanimous after one revision round: stops early
    assert result.cost.phases["revise"].calls == 3


async def test_ahead_by_k_stops_exactly_when_the_lead_reaches_k():
    # answers cycle 42, 41, 42, 42 ... per node order: a0=42, a1=41, a2=42
    swarm = scripted_swarm(["42", "41", "42"], k=2, max_samples=50)
    result = await swarm.ask(Q, protocol="ahead-by-k")
    # votes: 42, 41, 42 (lead 1), 42 (lead 2 after the 4th sample) → stop
    assert len(result.answers) == 4
    assert result.answer == "42"
    assert result.candidates[result.winner].votes == 3
    assert result.candidates[result.winner].nodes == ["a0", "a2"]  # a0 sampled twice: two votes, one node
    assert result.winning_nodes == ["a0", "a2"]
    assert [a.sample for a in result.answers] == [0, 1, 2, 3]


async def test_ahead_by_k_discards_red_flagged_samples_and_resamples():
    nodes = [answerer("good", "42"), Node("bad", ScriptedBackend(fault="garbage"), Persona(), frozenset({"answer"}))]
    result = await Swarm(nodes, options=RoundOptions(k=3, max_samples=20), store=None).ask(Q, protocol="ahead-by-k")
    assert result.answer == "42"
    flagged = [a for a in result.answers if a.excluded]
    assert len(flagged) == 2 and all("malformed" in a.excluded for a in flagged)
    assert len(result.answers) == 5  # good, bad, good, bad, good → lead 3


async def test_ahead_by_k_gives_up_after_max_samples_and_says_so():
    swarm = scripted_swarm(["42", "41"], k=3, max_samples=6)
    result = await swarm.ask(Q, protocol="ahead-by-k")
    assert len(result.answers) == 6
    assert any("no answer led by 3" in note for note in result.notes)


async def test_council_ranks_anonymised_candidates_and_takes_the_best_mean_position():
    swarm = scripted_swarm(["41", "42", "41"], [judge("j1", truth="42"), judge("j2", truth="42"),
                                                judge("j3", "second")])
    result = await swarm.ask(Q, protocol="council")
    assert result.answer == "42"
    assert len(result.rankings) == 3
    assert result.candidates[result.winner].mean_rank == pytest.approx(1.0)
    assert result.confidence == pytest.approx(1.0)


async def test_debate_lets_nodes_converge_then_takes_the_majority():
    nodes = [answerer("a", "42"), answerer("b", "42"),
             Node("c", ScriptedBackend(answers={"*": "41"}, revise="majority"), Persona(), frozenset({"answer"})),
             Node("d", ScriptedBackend(answers={"*": "40"}, revise="majority"), Persona(), frozenset({"answer"}))]
    result = await Swarm(nodes, options=RoundOptions(rounds=3), store=None).ask(Q, protocol="debate")
    assert result.answer == "42"
    assert result.confidence == pytest.approx(1.0)
    assert result.cost.phases["revise"].calls == 4
    finals = [a for a in result.answers if a.candidate is not None]
    assert {a.node for a in finals} == {"a", "b", "c", "d"}


@pytest.mark.parametrize("protocol", ["peer-rank", "majority", "weighted-vote", "ahead-by-k", "council", "debate",
                                      "blender"])
async def test_every_protocol_returns_a_complete_trace(protocol):
    swarm = scripted_swarm(["42", "41", "42"], [judge("j1", truth="42")], k=2)
    result = await swarm.ask(Q, protocol=protocol)
    assert result.protocol == protocol
    assert result.answer == "42"
    assert result.answers and all(a.node for a in result.answers)
    assert sum(c.strength for c in result.candidates) == pytest.approx(1.0)
    assert result.cost.calls >= len(result.answers)
    assert result.cost.wall_seconds >= 0
    assert result.round_id and len(result.round_id) == 32


def test_protocol_names_are_the_documented_ten():
    assert protocol_names() == ["peer-rank", "majority", "weighted-vote", "ahead-by-k", "council", "debate", "blender",
                                "synthesis", "moa", "llm-council"]


async def test_unknown_protocol_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown protocol 'nope'"):
        await scripted_swarm(["1"]).ask(Q, protocol="nope")


async def test_peer_rank_falls_back_on_cluster_size_when_judging_cancels_out():
    # judges that always pick the answer shown first cancel out over both orders
    swarm = scripted_swarm(["40", "41", "41"], [judge("j1", "first")], aggregation="bradley-terry")
    result = await swarm.ask(Q)
    assert result.candidates[0].log_strength == pytest.approx(result.candidates[1].log_strength)
    assert [c.strength for c in result.candidates] == pytest.approx([1 / 3, 2 / 3])  # votes × equal BT strength
    assert result.answer == "41"
    unweighted = await scripted_swarm(["40", "41", "41"], [judge("j1", "first")], vote_weighted=False,
                                      aggregation="bradley-terry").ask(Q)
    assert [c.strength for c in unweighted.candidates] == pytest.approx([0.5, 0.5])
    assert unweighted.answer == "41"  # the exact tie still goes to the larger cluster


async def test_vote_weighting_keeps_a_strong_judgment_for_a_minority_answer():
    swarm = scripted_swarm(["42", "41", "41", "41"], [judge("j1", truth="42"), judge("j2", truth="42")],
                           aggregation="bradley-terry")
    result = await swarm.ask(Q)
    assert result.answer == "42" and result.candidates[0].strength > 0.9


async def test_a_judge_that_always_says_first_gives_no_evidence_and_the_votes_decide():
    swarm = scripted_swarm(["40", "41", "41"], [judge("j1", "first")])
    result = await swarm.ask(Q)
    assert result.aggregation == "evidence" and result.answer == "41"
    assert result.candidates[0].evidence == pytest.approx(result.candidates[1].evidence)
    # the posterior is the vote prior alone: twice the votes, e^γ times the odds
    assert result.candidates[1].strength > result.candidates[0].strength
    (report,) = result.judge_reports
    assert report.consistency == 0.0 and report.says_first == 1.0 and report.pairs == 1
    assert all(p.evidence == pytest.approx(0.0) for p in result.pair_reports)
    assert "pair '40' vs '41': 1 judge(s), no evidence either way" in result.notes


async def test_in_a_first_round_consistent_agreeing_judges_overturn_a_vote_in_proportion_to_their_number():
    # a fresh swarm knows nothing of its judges but what this round shows: two that agree with each
    # other and never flip with the order outweigh a 3-to-1 vote; a third makes the posterior surer;
    # one judge alone, with nobody to agree with, does not outweigh a 4-to-1 vote
    answers = ["42", "41", "41", "41"]
    two = await scripted_swarm(answers, [judge(f"j{k}", truth="42") for k in range(2)], judges_per_pair=2).ask(Q)
    three = await scripted_swarm(answers, [judge(f"j{k}", truth="42") for k in range(3)], judges_per_pair=3).ask(Q)
    assert two.answer == three.answer == "42"
    assert 0.5 < two.candidates[0].strength < three.candidates[0].strength
    assert any("the judges overturned the vote count: '42' (1 votes) over '41' (3 votes)" in n for n in two.notes)
    assert any(n.startswith("pair '42' vs '41': 2 judge(s)") for n in two.notes)
    assert {r.judge: r.consistency for r in two.judge_reports} == {"j0": 1.0, "j1": 1.0}
    alone = await scripted_swarm(["42", "41", "41", "41", "41"], [judge("j0", truth="42")]).ask(Q)
    assert alone.answer == "41" and alone.candidates[0].strength > 0.1


async def test_progress_events_report_each_phase_answer_and_verdict():
    events: list[tuple[str, dict]] = []
    swarm = scripted_swarm(["42", "41"], [judge("j1", truth="42")])
    result = await swarm.ask(Q, on_event=lambda e, d: events.append((e, d)))
    phases = [d["phase"] for e, d in events if e == "phase"]
    assert phases == ["answer", "judge"]
    assert [d["node"] for e, d in events if e == "answer"] == ["a0", "a1"]
    verdicts = [d["verdict"] for e, d in events if e == "judgment"]
    assert sorted(verdicts) == sorted(j.verdict for j in result.judgments) and len(verdicts) == 2


async def test_fortytwo_grading_lets_a_colluding_grader_drop_rivals_from_its_own_comparisons():
    honest = judge("honest", truth="42")
    colluder = judge("colluder", "prefer", prefer="40")
    swarm = scripted_swarm(["42", "41", "40"], [honest, colluder], schedule="fortytwo")
    result = await swarm.ask(Q)
    grade = result.cost.phases["grade"]
    assert grade.calls == 6 and grade.failures == 0
    by_colluder = [j for j in result.judgments if j.judge == "colluder"]
    assert by_colluder == []  # it graded everything but its favourite BAD: nothing left to compare
    assert len([j for j in result.judgments if j.judge == "honest"]) == 4  # n=3: (0,1), (1,2), both orders
    assert result.answer == "42"


class _SureWhenRight(ScriptedBackend):
    """Always answers 'A' (total position bias), but is surer when the truth is shown first."""

    async def complete(self, request):
        from swarmrank.nodes.base import Completion

        if request.purpose != "judge":
            return await super().complete(request)
        p_a = 0.9 if request.context.get("first_value") == "42" else 0.6
        return Completion(text="Verdict: A", choice_probs={"A": p_a, "B": 1 - p_a, "U": 0.0})


async def test_soft_verdicts_recover_a_preference_that_hard_verdicts_cancel_out():
    nodes = [answerer("a0", "41"), answerer("a1", "42"),
             Node("j", _SureWhenRight(), Persona(), frozenset({"judge"}))]
    bt = {"aggregation": "bradley-terry"}
    soft = await Swarm(nodes, options=RoundOptions(soft_verdicts=True, **bt), store=None).ask(Q)
    hard = await Swarm(nodes, options=RoundOptions(soft_verdicts=False, **bt), store=None).ask(Q)
    assert soft.answer == "42" and soft.confidence > 0.6
    assert hard.candidates[0].strength == pytest.approx(0.5)
    assert all(j.verdict == "A" and j.probs is not None for j in soft.judgments)
    # the evidence aggregation reads the same verdicts as a judge that flips with the order more
    # often than not: no evidence until it shows agreement with other judges
    evidence = await Swarm(nodes, store=None).ask(Q)
    (report,) = evidence.judge_reports
    assert report.says_first == pytest.approx(0.75) and report.consistency == pytest.approx(0.42)
    # flipping with the order more often than not caps what it can be worth near nothing
    assert evidence.candidates[0].strength == pytest.approx(0.5, abs=0.01)


async def test_blender_judges_the_full_matrix_and_sums_preferences():
    swarm = scripted_swarm(["41", "42", "40"], [judge("j1", truth="42"), judge("j2", truth="42")])
    result = await swarm.ask(Q, protocol="blender")
    assert result.answer == "42"
    assert result.cost.phases["judge"].calls == 3 * 2 * 2  # every ordered pair, every judge
    assert {(j.first, j.second) for j in result.judgments} == {(a, b) for a in range(3) for b in range(3) if a != b}
    scores = [c.log_strength for c in result.candidates]
    assert scores[1] == pytest.approx(8.0)  # 4 ordered pairs × 2 judges, each won by a full margin
    assert sum(c.strength for c in result.candidates) == pytest.approx(1.0)


async def test_blender_cancels_pure_position_bias():
    swarm = scripted_swarm(["41", "42", "42"], [judge("j1", "first")])
    result = await swarm.ask(Q, protocol="blender")
    assert [c.log_strength for c in result.candidates] == [0.0, 0.0]
    assert result.answer == "42"  # the tie goes to the larger cluster


# -- adaptive judging and reference-guided judging ----------------------------------------------------

async def test_adaptive_judging_stops_once_the_leader_is_sure_enough():
    swarm = scripted_swarm(["42", "41", "41", "40"], [judge(f"j{k}", truth="42") for k in range(4)],
                           schedule="adaptive", judges_per_pair=1, judge_priors={f"j{k}": 0.9 for k in range(4)})
    result = await swarm.ask(Q)
    assert result.answer == "42" and result.confidence >= 0.95
    cluster = await scripted_swarm(["42", "41", "41", "40"], [judge(f"j{k}", truth="42") for k in range(4)],
                                   judges_per_pair=4, judge_priors={f"j{k}": 0.9 for k in range(4)}).ask(Q)
    assert result.cost.phases["judge"].calls < cluster.cost.phases["judge"].calls
    assert any(n.startswith("adaptive judging:") and "reached stop_at" in n for n in result.notes)
    # the first step judged the least certain pair: the two vote leaders
    first = result.judgments[0]
    assert {result.candidates[first.first].answer, result.candidates[first.second].answer} == {"41", "42"}


async def test_adaptive_judging_respects_the_call_cap_and_says_why_it_stopped():
    swarm = scripted_swarm(["42", "41", "40"], [judge(f"j{k}", "random", seed=k) for k in range(4)],
                           schedule="adaptive", judges_per_pair=1, max_judge_calls=4)
    result = await swarm.ask(Q)
    assert result.cost.phases["judge"].calls <= 4
    assert any("the cap of 4 judge calls was reached" in n for n in result.notes)


async def test_adaptive_judging_skips_judges_the_swarm_knows_to_be_useless():
    swarm = scripted_swarm(["42", "41", "41"], [judge(f"j{k}", "first") for k in range(3)], schedule="adaptive",
                           judges_per_pair=3)
    for _ in range(6):  # judges that always say "A" flip with the order every time: the book learns it
        await swarm.ask(Q)
    result = await swarm.ask(Q)
    assert result.judgments == [] and result.answer == "41"
    assert any("every judge's estimated discrimination is ~0" in n for n in result.notes)


async def test_reference_guided_judging_shows_each_judge_its_own_solution_first():
    seen: list[str] = []

    class Recording(ScriptedBackend):
        async def complete(self, request):
            if request.purpose == "judge":
                seen.append(request.messages[-1].content)
            return await super().complete(request)

    nodes = [answerer("a0", "42"), answerer("a1", "41"),
             Node("both", Recording(answers={"*": "42"}, judge="truth", truth="42"), Persona(),
                  frozenset({"answer", "judge"})),
             Node("solo", Recording(answers={"*": "40"}, judge="truth", truth="42"), Persona(), frozenset({"judge"}))]
    result = await Swarm(nodes, options=RoundOptions(judge_style="reference", judges_per_pair=2), store=None).ask(Q)
    assert result.answer == "42"
    assert seen and all("Your own solution, written before you saw the two below" in p for p in seen)
    # the judge that answered reuses its answer; the other writes one solution first
    assert result.cost.phases["reference"].calls == 1
    assert any("The answer is 40." in p for p in seen) and any("The answer is 42." in p for p in seen)


def test_a_round_option_with_an_unknown_value_is_one_line_naming_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown aggregation 'votes' \(known: evidence, bradley-terry\)"):
        RoundOptions(aggregation="votes")
    with pytest.raises(ConfigError, match="unknown judge_style 'solve'"):
        RoundOptions(judge_style="solve")
