"""Adversaries: each behaviour changes what it should, and the defences catch it."""

from __future__ import annotations

import asyncio
import tomllib

import pytest

from swarmrank.config import parse_config
from swarmrank.errors import ConfigError
from swarmrank.eval.resilience import ResilienceParams, resilience
from swarmrank.eval.simulate import SimParams
from swarmrank.nodes.adversary import INJECTION, AdversaryBackend, sybil_flood
from swarmrank.nodes.base import CompletionRequest, Message, Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm

from helpers import answerer, judge

HONEST = ScriptedBackend(answers={"*": "4"}, judge="truth", truth="4")


def request(purpose, **context):
    return CompletionRequest(messages=(Message("user", "What is 2 + 2?"),), purpose=purpose,
                             context={"question": "What is 2 + 2?", **context})


def complete(backend, purpose, **context):
    return asyncio.run(backend.complete(request(purpose, **context))).text


def test_lazy_and_clique_answer_their_value_without_calling_the_model():
    broken = ScriptedBackend(fault="crash")  # any call to it would raise
    assert complete(AdversaryBackend(broken, "lazy", value="9"), "answer") == "The answer is 9."
    assert complete(AdversaryBackend(broken, "clique", value="5"), "answer") == "The answer is 5."


def test_a_clique_judge_grader_and_ranker_favour_the_clique_answer():
    clique = AdversaryBackend(HONEST, "clique", value="5")
    assert complete(clique, "judge", first_value="4", second_value="5").endswith("Verdict: B")
    assert complete(clique, "judge", first_value="5", second_value="4").endswith("Verdict: A")
    assert complete(clique, "grade", value="4") == "BAD" and complete(clique, "grade", value="5") == "GOOD"
    assert complete(clique, "rank", candidates=["4", "3", "5"]).splitlines()[1] == "1. Response C"


def test_random_answers_vary_by_question_and_pick_option_letters_for_multiple_choice():
    rnd = AdversaryBackend(HONEST, "random", seed=3)
    values = {asyncio.run(rnd.complete(CompletionRequest(messages=(), purpose="answer",
                                                         context={"question": f"What is {i} + 1?"}))).text
              for i in range(20)}
    assert len(values) > 10
    mc = "Which is blue?\nA) sky\nB) grass\nC) blood"
    text = asyncio.run(rnd.complete(CompletionRequest(messages=(), purpose="answer", context={"question": mc}))).text
    assert text in {"The answer is A.", "The answer is B.", "The answer is C."}


def test_position_and_self_promoting_judges():
    assert complete(AdversaryBackend(HONEST, "position"), "judge", first_value="9", second_value="4").endswith("A")
    promoter = AdversaryBackend(ScriptedBackend(answers={"*": "6"}), "self-promoter")
    assert complete(promoter, "answer") == "Let me think. The answer is 6."
    assert complete(promoter, "judge", first_value="4", second_value="6").endswith("Verdict: B")
    # an honest inner judge would have preferred the truth; the wrapper never asks it
    assert complete(promoter, "judge", first_value="4", second_value="3").endswith("Verdict: U")


def test_the_injector_appends_instructions_and_the_red_flag_excludes_its_answer():
    injector = Node("inj", AdversaryBackend(HONEST, "injector"), Persona(), frozenset({"answer"}))
    nodes = [answerer("a0", "4"), answerer("a1", "5"), injector, judge("j0", truth="4")]
    result = Swarm(nodes, store=None).ask_sync("What is 2 + 2?", save=False)
    inj = next(a for a in result.answers if a.node == "inj")
    assert inj.text.endswith(INJECTION)
    assert inj.excluded == "injection: the answer addresses the judges" and inj.candidate is None
    assert all("IMPORTANT NOTE" not in c.text for c in result.candidates)


def test_a_self_promoter_judges_its_own_pair_only_to_fill_a_gap_and_is_discounted():
    promoter = Node("promo", AdversaryBackend(ScriptedBackend(answers={"*": "5"}), "self-promoter"), Persona())
    nodes = [answerer("a0", "4"), answerer("a1", "4"), promoter, judge("j0", truth="4"), judge("j1", truth="4")]
    never = Swarm(nodes, options=RoundOptions(judges_per_pair=3, interested_judges="never"), store=None)
    result = never.ask_sync("What is 2 + 2?", save=False)
    own = next(i for i, c in enumerate(result.candidates) if "promo" in c.nodes)
    assert not [j for j in result.judgments if j.judge == "promo" and own in (j.first, j.second)]
    assert result.answer == "4"
    # two neutral judges for three seats: the promoter fills the third, for itself, at a quarter weight
    filled = Swarm(nodes, options=RoundOptions(judges_per_pair=3), store=None).ask_sync("What is 2 + 2?", save=False)
    mine = [j for j in filled.judgments if j.judge == "promo"]
    assert len(mine) == 2 and filled.answer == "4"
    report = next(r for r in filled.judge_reports if r.judge == "promo")
    assert report.interested_pairs == 1
    assert filled.pair_reports[0].interested == 1 and filled.pair_reports[0].judges == 3


def test_a_config_can_wrap_any_node_in_an_adversary(tmp_path):
    config = parse_config(tomllib.loads("""
[swarm]
name = "adv"
[[nodes]]
id = "honest"
backend = "scripted"
answer = "4"
[[nodes]]
id = "bad"
backend = "scripted"
answer = "4"
adversary = "clique"
adversary_value = "8"
"""), source="test")
    swarm = Swarm.from_config(config, store=None)
    assert isinstance(swarm.node("bad").backend, AdversaryBackend)
    assert swarm.node("bad").backend.describe().startswith("clique, value=8 over scripted")
    result = swarm.ask_sync("What is 2 + 2?", protocol="majority", save=False)
    assert sorted(a.value for a in result.answers) == ["4", "8"]
    with pytest.raises(ConfigError, match="adversary must be one of"):
        AdversaryBackend(HONEST, "gremlin")


def test_a_sybil_flood_is_many_identities_of_one_node():
    flood = sybil_flood(answerer("weak", "3"), 5)
    assert [n.id for n in flood] == [f"weak-sybil{i}" for i in range(5)]
    assert len({id(n.backend) for n in flood}) == 1
    with pytest.raises(ConfigError):
        sybil_flood(answerer("weak", "3"), 0)


def test_reputation_and_spot_checks_neutralise_a_third_of_the_swarm_colluding():
    sim = SimParams(questions=260, n_answerers=9, n_judges=3, accuracy_mean=0.6, correlated_errors=0.3,
                    adversary_fraction=1 / 3)
    r = resilience(ResilienceParams(sim=sim, warmup=120))
    assert r.adversaries == ("a6", "a7", "a8", "j2")
    assert r.suspended_at is not None and r.suspended_at < 120  # every colluder stopped counting in the warm-up
    assert r.adversary_influence == 0.0
    acc = {k: v.mean for k, v in r.accuracy.items()}
    # the clique outvotes the honest nodes often; peer-rank alone resists it part of the way (the
    # colluding judge disagrees with the honest ones and loses its weight: 80% against majority's 58%,
    # with the judge rotation fair to every judge); with reputation the swarm is about as good as its
    # honest nodes
    assert acc["majority"] < acc["honest-only"] - 0.2
    assert acc["majority"] + 0.2 < acc["peer-rank"] < acc["honest-only"] - 0.03
    assert acc["peer-rank+rep"] >= acc["honest-only"] - 0.03
    assert acc["peer-rank+rep"] > max(acc["peer-rank"], acc["majority"]) + 0.1
