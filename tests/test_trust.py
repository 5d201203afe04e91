"""Reputation, stake, slashing and admission: the rule of swarmrank.trust and the registry that applies it."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace

import pytest

from swarmrank.admission import ExamParams, exam_items, run_exam
from swarmrank.errors import ConfigError, ReplayError, TrustError
from swarmrank.identity import load_or_create
from swarmrank.nodes.base import Completion, CompletionRequest, Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.registry import MemoryLedger, Registry
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm
from swarmrank.trust import TrustParams, TrustState, influence, score_round

from helpers import answerer, judge

PARAMS = TrustParams()


def run(coro):
    return asyncio.run(coro)


# -- the rule --------------------------------------------------------------------------------------

def test_influence_is_one_at_the_prior_increasing_and_bounded():
    assert influence(0.0, PARAMS) == pytest.approx(1.0)
    values = [influence(r, PARAMS) for r in (-50, -5, -1, 0, 1, 5, 50)]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert PARAMS.w_min <= values[0] < PARAMS.w_min + 1e-6
    assert PARAMS.w_max - 1e-6 < values[-1] <= PARAMS.w_max


def test_reputation_update_decays_toward_the_prior_and_stays_within_eta_over_lambda():
    state = TrustState(PARAMS)
    r = 0.0
    for _ in range(3000):  # always the best score: converges to eta / decay, never beyond
        r = state.updated_reputation("n", 1.0)
        state.node("n").reputation = r
    assert r == pytest.approx(PARAMS.eta / PARAMS.decay, rel=1e-6)
    assert state.updated_reputation("n", 0.0) == pytest.approx((1 - PARAMS.decay) * r)
    assert state.updated_reputation("n", 7.0) == state.updated_reputation("n", 1.0)  # scores are clipped
    # evidence against the truth moves reputation eta_truth / eta times as far as consensus does
    drop_truth = r - state.updated_reputation("n", -1.0, truth=True)
    drop_live = r - state.updated_reputation("n", -1.0)
    assert drop_truth - drop_live == pytest.approx(PARAMS.eta_truth - PARAMS.eta)


@pytest.mark.parametrize("bad", [dict(w_min=0.0), dict(w_max=1.0), dict(decay=1.0), dict(clear=0.5),
                                 dict(deposit=1.0, min_stake=5.0)])
def test_bad_trust_params_are_refused(bad):
    with pytest.raises(ConfigError):
        TrustParams(**bad)


def honest_swarm(extra_judges=(), answers=("4", "4", "4", "4", "5")):
    nodes = [answerer(f"a{i}", a) for i, a in enumerate(answers)]
    nodes += [judge(f"j{k}", truth="4") for k in range(5)] + list(extra_judges)
    return Swarm(nodes, options=RoundOptions(judges_per_pair=6), store=None)


def test_a_round_scores_right_answerers_and_agreeing_judges_up_and_a_contrarian_down():
    swarm = honest_swarm([judge("liar", rule="prefer", prefer="5")])
    result = swarm.ask_sync("What is 2 + 2?", save=False)
    assert result.answer == "4"
    score = score_round(result, PARAMS)
    assert score.answerers["a0"] == 1.0 and score.answerers["a4"] == -1.0
    assert all(score.judges[f"j{k}"] > 0.5 for k in range(3))
    assert score.judges["liar"] < -0.5
    # the liar preferred the loser in both orders against a clear consensus: slashed, nobody else
    assert [s.node for s in score.slashes] == ["liar"]
    assert "clear consensus" in score.slashes[0].reason


def test_known_truth_replaces_the_consensus_and_spot_checks_slash_and_reward():
    # the crowd is wrong ("5" wins) but the truth is "4"
    nodes = [answerer("a0", "4"), answerer("a1", "5"), answerer("a2", "5"), judge("fan", rule="prefer", prefer="5"),
             judge("wise", truth="4")]
    result = Swarm(nodes, options=RoundOptions(judges_per_pair=2), store=None).ask_sync("What is 2 + 2?", save=False)
    correct = {c.answer: c.answer == "4" for c in result.candidates}
    score = score_round(result, PARAMS, correct=correct, spot_check=True)
    assert score.answerers == {"a0": 1.0, "a1": -1.0, "a2": -1.0}
    assert score.judges["wise"] == 1.0 and score.judges["fan"] == -1.0
    slashed = {s.node: s.amount for s in score.slashes}
    rewarded = {s.node: s.amount for s in score.rewards}
    assert slashed == {"a1": PARAMS.slash_spot_check, "a2": PARAMS.slash_spot_check, "fan": PARAMS.slash_spot_lie}
    assert rewarded == {"a0": PARAMS.reward_spot_check, "wise": PARAMS.reward_spot_check}


def test_a_red_flagged_answer_is_slashed_and_a_timeout_only_costs_reputation():
    nodes = [answerer("a0", "4"), answerer("a1", "4"),
             Node("garbled", ScriptedBackend(fault="garbage"), Persona(), frozenset({"answer"})),
             Node("slow", ScriptedBackend(fault="timeout"), Persona(), frozenset({"answer"})), judge("j0", truth="4")]
    result = Swarm(nodes, options=RoundOptions(node_timeout=0.2), store=None).ask_sync("What is 2 + 2?", save=False)
    score = score_round(result, PARAMS)
    assert score.answerers["garbled"] == -1.0
    assert score.answerers["slow"] == PARAMS.failed_call_score
    assert [s.node for s in score.slashes] == ["garbled"] and "red-flagged" in score.slashes[0].reason


class Stopping(ScriptedBackend):
    """A scripted backend that honours stop sequences as a model server does (cut before the first)."""

    async def complete(self, request: CompletionRequest) -> Completion:
        done = await super().complete(request)
        cuts = [done.text.index(s) for s in request.stop if s in done.text]
        return replace(done, text=done.text[:min(cuts)]) if cuts else done


@pytest.mark.parametrize("limits", [
    dict(answer_max_tokens=1),                # every answer cut off before its number
    dict(answer_stop=("The answer",)),        # every answer cut before its number by a stop sequence
    dict(answer_stop=("Let",)),               # ... or before anything at all
])
def test_answers_the_rounds_own_limits_left_unreadable_are_neither_slashed_nor_scored(limits):
    nodes = [Node(f"a{i}", Stopping(answers={"*": "4"}), Persona(), frozenset({"answer"})) for i in range(2)]
    nodes.append(judge("j0", truth="4"))
    result = Swarm(nodes, options=RoundOptions(**limits), store=None).ask_sync("What is 2 + 2?", save=False)
    assert result.answer is None and all(a.excluded and a.client_caused for a in result.answers)
    score = score_round(result, PARAMS)
    assert score.slashes == [] and score.answerers == {} and score.node_scores() == {}


def test_a_cut_off_at_the_nodes_own_smaller_limit_or_a_content_red_flag_stays_the_nodes():
    rambler = Node("rambler", ScriptedBackend(answers={"*": "4"}), Persona(max_tokens=2), frozenset({"answer"}))
    refuser = Node("refuser", ScriptedBackend(fault="refuse"), Persona(), frozenset({"answer"}))
    nodes = [answerer("a0", "4"), answerer("a1", "4"), rambler, refuser, judge("j0", truth="4")]
    result = Swarm(nodes, options=RoundOptions(answer_max_tokens=50), store=None).ask_sync("What is 2 + 2?",
                                                                                          save=False)
    assert result.answer == "4"
    score = score_round(result, PARAMS)
    assert {s.node for s in score.slashes} == {"refuser"}  # the rambler ran past 2 tokens: a client gave 50
    assert score.answerers["refuser"] == -1.0 and score.answerers["a0"] == 0.0


def test_json_answers_that_break_the_rounds_schema_are_not_scored_but_invalid_json_is():
    schema = {"type": "object", "required": ["age"], "properties": {"age": {"type": "integer"}}}
    nodes = [answerer("a0", '{"age": 4}'), answerer("a1", '{"age": "four"}'), answerer("a2", "four")]
    result = Swarm(nodes, options=RoundOptions(answer_schema=schema), store=None).ask_sync(
        "How old?", task_type="json", save=False)
    caused = {a.node: a.client_caused for a in result.answers}
    assert caused == {"a0": False, "a1": True, "a2": False}
    score = score_round(result, PARAMS)
    assert "a1" not in score.answerers and score.answerers["a2"] == PARAMS.failed_call_score
    assert score.slashes == []


# -- the registry: ledger-backed state -------------------------------------------------------------

def make_registry(tmp_path, params=PARAMS):
    return Registry(MemoryLedger(), load_or_create(tmp_path / "keys", "coord"), params)


def test_only_admitted_nodes_with_stake_count_and_influence_follows_reputation(tmp_path):
    registry = make_registry(tmp_path)
    swarm = honest_swarm([judge("liar", rule="prefer", prefer="5")])
    for node in swarm.nodes:
        if node.id != "a4":
            registry.admit(node.id, passed=True, report={"seed": 1})
    counted, options, left_out = registry.weigh(swarm.nodes, swarm.options)
    assert "a4" not in {n.id for n in counted} and left_out == ["a4: not admitted"]
    assert options.influence["liar"] == pytest.approx(1.0)

    for _ in range(3):
        result = swarm.ask_sync("What is 2 + 2?", save=False)
        registry.record(result, counted)
    state = registry.state()
    assert state.nodes["liar"].reputation < 0 < state.nodes["j0"].reputation
    assert state.influence("liar") < 1.0 < state.influence("j0")
    assert state.nodes["liar"].stake == PARAMS.deposit - 3 * PARAMS.slash_contradiction
    assert state.nodes["j0"].stake == PARAMS.deposit

    # slashes take the liar below the minimum stake in exactly as many rounds as the params say
    needed = math.floor((PARAMS.deposit - PARAMS.min_stake) / PARAMS.slash_contradiction) + 1
    for _ in range(needed - 3):
        assert "liar" in {n.id for n in registry.weigh(swarm.nodes, swarm.options)[0]}
        registry.record(swarm.ask_sync("What is 2 + 2?", save=False), counted)
    counted, _, left_out = registry.weigh(swarm.nodes, swarm.options)
    assert "liar" not in {n.id for n in counted}
    stake = PARAMS.deposit - needed * PARAMS.slash_contradiction
    assert any(line.startswith(f"liar: stake {stake:g} below the minimum 5") for line in left_out)
    registry.add_stake("liar", 2.0)
    assert "liar" in {n.id for n in registry.weigh(swarm.nodes, swarm.options)[0]}


def test_replaying_the_ledger_reproduces_reputation_exactly_and_catches_a_doctored_entry(tmp_path):
    registry = make_registry(tmp_path)
    swarm = honest_swarm([judge("liar", rule="prefer", prefer="5")])
    for node in swarm.nodes:
        registry.admit(node.id, passed=True, report={})
    for q in range(4):
        registry.record(swarm.ask_sync(f"What is 2 + 2? ({q})", save=False), swarm.nodes)
    live = registry.state()
    replayed = TrustState.replay(registry.ledger.entries(), PARAMS)
    assert {k: v.reputation for k, v in replayed.nodes.items()} == {k: v.reputation for k, v in live.nodes.items()}
    assert {k: v.stake for k, v in replayed.nodes.items()} == {k: v.stake for k, v in live.nodes.items()}

    entry = next(e for e in registry.ledger.entries(kind="reputation") if e.payload["node"] == "liar")
    entry.payload["after"] += 0.5  # a coordinator that writes a reputation the rule does not give
    with pytest.raises(ReplayError, match=f"ledger entry {entry.seq}: reputation of liar"):
        TrustState.replay(registry.ledger.entries(), PARAMS)


def test_admission_deposit_must_meet_the_minimum_stake(tmp_path):
    registry = make_registry(tmp_path)
    with pytest.raises(TrustError, match="below the minimum"):
        registry.admit("n", passed=True, report={}, stake=1.0)
    registry.admit("n", passed=False, report={})
    assert not registry.state().eligible("n")


def test_record_signs_each_participants_contribution_and_the_signatures_verify(tmp_path):
    from swarmrank.identity import verify

    registry = make_registry(tmp_path)
    nodes = []
    for node in honest_swarm().nodes:
        key = load_or_create(tmp_path / "keys", node.id)
        node.public_key, node.signer = key.public_hex, key.sign
        nodes.append(node)
    swarm = Swarm(nodes, options=RoundOptions(judges_per_pair=6), store=None)
    result = swarm.ask_sync("What is 2 + 2?", save=False)
    registry.record(result, nodes)
    outcome = registry.ledger.entries(kind="round")[0].payload
    assert set(outcome["nodes"]) == {n.id for n in nodes}
    for node in nodes:
        signed = outcome["nodes"][node.id]
        assert verify(node.public_key, bytes.fromhex(signed["digest"]), bytes.fromhex(signed["signature"]))
        other = next(n for n in nodes if n.id != node.id)
        assert not verify(other.public_key, bytes.fromhex(signed["digest"]), bytes.fromhex(signed["signature"]))


def test_a_swarm_with_a_registry_leaves_out_unadmitted_nodes_and_records_every_round(tmp_path):
    registry = make_registry(tmp_path)
    swarm = honest_swarm(answers=("4", "4", "5", "5", "5"))
    swarm.registry = registry
    with pytest.raises(TrustError, match="admit nodes first"):
        swarm.ask_sync("What is 2 + 2?", save=False)
    for node in swarm.nodes:
        if node.id not in ("a2", "a3", "a4"):  # the wrong answerers (a majority) are never admitted
            registry.admit(node.id, passed=True, report={})
    swarm.store = None
    result = run(swarm.ask("What is 2 + 2?"))
    assert result.answer == "4" and {c.answer for c in result.candidates} == {"4"}
    assert "not counted: a2: not admitted" in result.notes
    assert [e.payload["round_id"] for e in registry.ledger.entries(kind="round")] == [result.round_id]


def test_spot_checks_are_scored_against_the_truth(tmp_path):
    registry = make_registry(tmp_path)
    nodes = [Node("good", ScriptedBackend(accuracy=1.0, answers={"*": "0"}), Persona(), frozenset({"answer"})),
             Node("bad", ScriptedBackend(answers={"*": "7"}), Persona(), frozenset({"answer"})),
             judge("j0"), judge("j1")]
    swarm = Swarm(nodes, store=None, registry=registry)
    for node in nodes:
        registry.admit(node.id, passed=True, report={})
    result = run(swarm.spot_check())
    state = registry.state()
    assert state.nodes["good"].stake == PARAMS.deposit + PARAMS.reward_spot_check
    assert state.nodes["bad"].stake == PARAMS.deposit - PARAMS.slash_spot_check
    assert registry.ledger.entries(kind="round")[0].payload["spot_check"] is True
    assert result.answer is not None


# -- admission --------------------------------------------------------------------------------------

def test_exam_items_are_fresh_per_seed_and_have_a_wrong_answer_that_differs():
    a, b = exam_items(20, seed=1), exam_items(20, seed=2)
    assert [i.question for i in a] != [i.question for i in b]
    assert exam_items(20, seed=1) == a
    for item in a:
        left, op, right = item.question.removeprefix("What is ").removesuffix("?").split()
        expected = {"+": int(left) + int(right), "-": int(left) - int(right), "×": int(left) * int(right)}[op]
        assert int(item.gold) == expected and item.wrong != item.gold


@pytest.mark.parametrize("node, passes", [
    (Node("skilled", ScriptedBackend(accuracy=1.0, judge="truth"), Persona()), True),
    (Node("coin-judge", ScriptedBackend(judge="random"), Persona(), frozenset({"judge"})), False),
    (Node("position-biased", ScriptedBackend(judge="first"), Persona(), frozenset({"judge"})), False),
    (Node("constant", ScriptedBackend(answers={"*": "12"}), Persona(), frozenset({"answer"})), False),
    (Node("weak", ScriptedBackend(accuracy=0.3, judge="truth"), Persona()), False),
])
def test_the_exam_passes_a_capable_node_and_refuses_weak_or_biased_ones(node, passes):
    result = run(run_exam(node, ExamParams(seed=7)))
    assert result.passed is passes
    if node.answers:
        assert result.answer_total == 20
    if node.judges:
        assert result.judge_total == 20
    if node.id == "position-biased":
        assert result.judge_correct == 0  # it picks A in both orders, so never the right one twice
    assert result.calls == (20 if node.answers else 0) + (40 if node.judges else 0)


def test_a_sybil_flood_of_weak_identities_is_refused():
    """100 identities of one weak model (right 30% of the time, a coin as a judge): at most 1% get in."""
    admitted = 0
    for i in range(100):
        node = Node(f"sybil{i}", ScriptedBackend(accuracy=0.3, judge="random", seed=i), Persona(seed=i))
        admitted += run(run_exam(node, ExamParams(seed=1000 + i))).passed
    assert admitted <= 1


def test_exam_params_are_checked():
    with pytest.raises(ConfigError, match="level"):
        ExamParams(level="impossible")
    with pytest.raises(ConfigError, match="at least one item"):
        ExamParams(answer_items=0, judge_items=0)
    assert math.isclose(ExamParams().threshold, 0.6)


# -- review fixes: concurrency, replay independence, scoring edge cases ------------------------------

def test_a_coordinator_that_lost_a_race_recomputes_its_reputation_entries(tmp_path):
    """Two registries on one database: B's write is conditioned on the head it read, so when A
    appends in between, B recomputes from A's result instead of writing stale reputation."""
    from swarmrank.ledger import Ledger, LedgerConflict
    from swarmrank.store import Store

    stores = [Store(f"sqlite:///{tmp_path / 'shared.db'}") for _ in range(2)]
    try:
        keys = tmp_path / "keys"
        a, b = (Registry(Ledger(s), load_or_create(keys, "coord"), PARAMS) for s in stores)
        swarm = honest_swarm([judge("liar", rule="prefer", prefer="5")])
        for node in swarm.nodes:
            a.admit(node.id, passed=True, report={})
        b.state()
        head = b.ledger.head().seq
        with pytest.raises(LedgerConflict):
            a.ledger.append("stake", {"node": "a0", "amount": 1.0}, a.coordinator)
            b.ledger.append_many([("stake", {"node": "a0", "amount": 1.0}, b.coordinator)], after=head)

        real_append = b.ledger.append_many
        raced = []

        def append_after_a_gets_in(items, *, after=None):
            if not raced:  # A commits a round between B's read of the ledger and B's write
                raced.append(True)
                a.record(swarm.ask_sync("What is 2 + 2? (a)", save=False), swarm.nodes)
            return real_append(items, after=after)

        b.ledger.append_many = append_after_a_gets_in
        b.record(swarm.ask_sync("What is 2 + 2? (b)", save=False), swarm.nodes)
        entries = Ledger(stores[0]).entries()
        replayed = TrustState.replay(entries, PARAMS)  # would raise ReplayError on a stale entry
        assert replayed.nodes["j0"].rounds == 2 and replayed.nodes["liar"].rounds == 2
        assert Ledger(stores[0]).verify().ok
    finally:
        for s in stores:
            s.close()


def test_replay_uses_the_constants_recorded_with_each_entry_not_todays_config(tmp_path):
    registry = make_registry(tmp_path)
    swarm = honest_swarm([judge("liar", rule="prefer", prefer="5")])
    for node in swarm.nodes:
        registry.admit(node.id, passed=True, report={})
    registry.record(swarm.ask_sync("What is 2 + 2?", save=False), swarm.nodes)
    live = registry.state()
    other = TrustParams(eta=0.2, eta_truth=0.9, decay=0.3)
    replayed = TrustState.replay(registry.ledger.entries(), other)
    assert replayed.nodes["liar"].reputation == live.nodes["liar"].reputation != 0.0


def test_equal_strengths_are_no_evidence_and_ties_share_their_rank():
    result = Swarm([answerer("a0", "4"), answerer("a1", "5")], store=None).ask_sync("What is 2 + 2?", save=False)
    assert result.candidates[0].strength == result.candidates[1].strength
    assert score_round(result, PARAMS).answerers == {"a0": 0.0, "a1": 0.0}


def test_debate_scores_each_nodes_final_answer_and_council_scores_its_rankers():
    nodes = [answerer("a0", "4"), answerer("a1", "4"), answerer("a2", "5"),
             judge("fair", truth="4"), judge("fan", rule="prefer", prefer="5")]
    debate = Swarm(nodes, options=RoundOptions(rounds=1), store=None).ask_sync("What is 2 + 2?", protocol="debate",
                                                                               save=False)
    assert set(score_round(debate, PARAMS).answerers) == {"a0", "a1", "a2"}
    council = Swarm([*nodes, judge("fair2", truth="4")], store=None).ask_sync("What is 2 + 2?", protocol="council",
                                                                           save=False)
    judges = score_round(council, PARAMS).judges
    assert judges["fair"] == judges["fair2"] > 0 > judges["fan"]


def test_passing_again_does_not_refill_slashed_stake_and_failing_again_revokes(tmp_path):
    registry = make_registry(tmp_path)
    registry.admit("n", passed=True, report={})
    registry.ledger.append("slash", {"node": "n", "amount": 4.0}, registry.coordinator)
    registry.admit("n", passed=True, report={})
    assert registry.state().nodes["n"].stake == PARAMS.deposit - 4.0
    registry.admit("n", passed=False, report={})
    assert not registry.state().nodes["n"].admitted
    with pytest.raises(TrustError, match="above the maximum"):
        registry.check_deposit(PARAMS.max_stake + 1)
    room = PARAMS.max_stake - registry.state().nodes["n"].stake
    with pytest.raises(TrustError, match=f"at most {room:g} more stake"):
        registry.add_stake("n", room + 1)
    assert registry.state().nodes["n"].stake == PARAMS.deposit - 4.0  # nothing was recorded
    for amount in (float("nan"), float("inf")):
        with pytest.raises(TrustError, match="a stake must be a finite number"):
            registry.check_deposit(amount)


def test_a_failing_spot_check_does_not_lose_the_live_round(tmp_path):
    registry = make_registry(tmp_path)
    nodes = [answerer("a0", "4"), answerer("a1", "4"), judge("j0")]
    swarm = Swarm(nodes, store=None, registry=registry, spot_check_rate=1.0)
    for node in nodes:
        registry.admit(node.id, passed=True, report={})

    async def broken(**_):
        raise TrustError("no admitted node to spot-check")

    swarm.spot_check = broken
    result = run(swarm.ask("What is 2 + 2?"))
    assert result.answer == "4"
    assert "spot check after this round failed: no admitted node to spot-check" in result.notes
    assert [e.payload["round_id"] for e in registry.ledger.entries(kind="round")] == [result.round_id]
