"""Synthesis: one node writes the final answer from the best candidates; the round keeps both."""

from __future__ import annotations

import pytest

from swarmrank.errors import ConfigError
from swarmrank.nodes.base import Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm

from helpers import node

QUESTION = "What is 40 + 2?"


def swarm(writes: str = "42", **options) -> Swarm:
    nodes = [node("a0", {"answer"}, answers={"*": "41"}), node("a1", {"answer"}, answers={"*": "42"}),
             node("a2", {"answer"}, answers={"*": "42"}),
             node("writer", {"judge"}, answers={"*": writes}, judge="truth", truth="42"),
             node("j", {"judge"}, judge="truth", truth="42")]
    options = {"synthesizer": "writer", "judge_priors": {"j": 0.9, "writer": 0.9}, **options}
    return Swarm(nodes, options=RoundOptions(**options), store=None)


@pytest.mark.parametrize(("protocol", "phase"), [("synthesis", "judge"), ("moa", "revise"), ("llm-council", "rank")])
def test_a_synthesising_protocol_keeps_the_selected_and_the_written_answer(protocol, phase):
    result = swarm().ask_sync(QUESTION, protocol=protocol)
    assert result.answer == "42"  # the selected candidate
    assert result.synthesis is not None
    assert (result.synthesis.node, result.synthesis.value, result.synthesis.excluded) == ("writer", "42", None)
    assert result.final_answer == "42" and result.final_text == "Having read the other answers, the answer is 42."
    assert result.synthesis.sources[0] == result.winner  # the best candidate is shown first
    assert {"answer", phase, "synthesize"} <= set(result.cost.phases)
    assert result.cost.phases["synthesize"].calls == 1


class Recording(ScriptedBackend):
    """A scripted backend that keeps the prompts it was sent."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.prompts: list[str] = []

    async def complete(self, request):
        self.prompts.append(request.messages[-1].content)
        return await super().complete(request)


def test_the_synthesizer_is_shown_the_best_k_with_their_ranks():
    backend = Recording(answers={"*": "43"})
    nodes = [node("a0", {"answer"}, answers={"*": "41"}), node("a1", {"answer"}, answers={"*": "42"}),
             node("a2", {"answer"}, answers={"*": "40"}), node("j", {"judge"}, judge="truth", truth="42"),
             Node("writer", backend, Persona(), roles=frozenset({"judge"}))]
    options = RoundOptions(synthesizer="writer", synthesis_k=2, judge_priors={"j": 0.9})
    result = Swarm(nodes, options=options, store=None).ask_sync(QUESTION, protocol="synthesis")
    assert result.synthesis is not None and len(result.synthesis.sources) == 2
    assert result.synthesis.sources[0] == result.winner
    prompt = backend.prompts[-1]
    assert QUESTION in prompt
    assert "Answer 1 (rank 1; strength" in prompt and "Answer 2 (rank 2; strength" in prompt
    assert "Answer 3" not in prompt
    assert prompt.index("answer is 42") < prompt.index("Answer 2")  # the winner is shown first


def test_synthesize_true_adds_the_step_to_any_protocol():
    result = swarm(synthesize=True).ask_sync(QUESTION, protocol="majority")
    assert result.answer == "42"
    assert result.synthesis is not None and result.synthesis.value == "42" and result.synthesis.excluded is None
    assert result.synthesis.ranked_by == "the majority protocol"
    plain = swarm().ask_sync(QUESTION, protocol="majority")
    assert plain.synthesis is None and plain.final_answer == "42"


@pytest.mark.parametrize("protocol", ["synthesis", "moa", "llm-council", "majority"])
def test_one_synthesizer_cannot_overturn_the_decided_answer(protocol):
    result = swarm("43", synthesize=protocol == "majority").ask_sync(QUESTION, protocol=protocol)
    assert result.answer == "42" and result.synthesis is not None and result.synthesis.value is None
    assert result.synthesis.excluded == ("gives '43', not the selected answer '42': a synthesis may word the "
                                         "decided answer, not overturn it")
    assert result.final_answer == "42" and result.final_text != result.synthesis.text
    assert any("the synthesis by writer cannot stand" in n for n in result.notes)


def test_a_failed_synthesis_leaves_the_selected_answer_standing():
    nodes = [node("a0", {"answer"}, answers={"*": "42"}), node("a1", {"answer"}, answers={"*": "41"}),
             node("writer", {"judge"}, fault="crash", fault_on=("revise",))]
    result = Swarm(nodes, options=RoundOptions(synthesizer="writer"), store=None).ask_sync(QUESTION,
                                                                                          protocol="llm-council")
    assert result.synthesis is not None and result.synthesis.excluded.startswith("error")
    assert result.final_answer == result.answer is not None
    assert any("cannot stand" in n for n in result.notes)


def test_an_unknown_synthesizer_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="synthesizer 'nobody' is not a node"):
        swarm(synthesizer="nobody").ask_sync(QUESTION, protocol="synthesis")


def test_the_synthesis_is_stored_with_the_round(store):
    s = swarm()
    s.store = store
    result = s.ask_sync(QUESTION, protocol="synthesis")
    loaded = store.get_round(result.round_id)
    assert loaded.synthesis == result.synthesis
    assert loaded.final_text == "Having read the other answers, the answer is 42."


def test_the_server_replies_with_the_synthesis_where_one_stands(api, store, key):
    from helpers import openai_client

    http = api(swarm(), store=store)
    resp = openai_client(http, key).chat.completions.create(model="swarmrank/synthesis",
                                                            messages=[{"role": "user", "content": QUESTION}])
    assert resp.choices[0].message.content == "Having read the other answers, the answer is 42."
    assert resp.model_extra["swarmrank"]["answer"] == "42"  # the selected answer is still reported


@pytest.mark.parametrize(("round_section", "message"), [
    ('synthesizer = "eve"', "[round] synthesizer 'eve' is not a node of this swarm (nodes: a1, j1)"),
    ('judge_priors = { zzz = 0.9 }', "[round] judge_priors names 'zzz', which is not a node of this swarm"),
])
def test_a_round_section_naming_a_node_that_does_not_exist_fails_when_the_config_loads(round_section, message):
    import tomllib

    from swarmrank.config import parse_config

    text = f"""[swarm]\nname = "s"\n[round]\n{round_section}\n[models.m]\nbackend = "scripted"
[[nodes]]\nid = "a1"\nmodel = "m"\n[[nodes]]\nid = "j1"\nmodel = "m"\nroles = ["judge"]\n"""
    with pytest.raises(ConfigError) as caught:
        parse_config(tomllib.loads(text))
    assert message in str(caught.value) and "\n" not in str(caught.value)
