"""The server with trust on: a client's own limits never cost honest nodes stake or reputation,
``store: false`` is refused (no answer without its ledger record), and a streamed answer never
leaves before its record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from swarmrank.errors import StorageError
from swarmrank.identity import load_or_create
from swarmrank.ledger import Ledger
from swarmrank.nodes.base import Node
from swarmrank.registry import Registry
from swarmrank.round import RoundOptions
from swarmrank.store import Store
from swarmrank.swarm import Swarm
from swarmrank.trust import TrustParams

from helpers import QUESTION, ask, assert_openai_error, node

PARAMS = TrustParams()


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def trusted(tmp_path: Path, store: Store, nodes: list[Node], **options: Any) -> Swarm:
    """The nodes as a trusted swarm (ledger in ``store``), every node admitted with the default deposit."""
    registry = Registry(Ledger(store), load_or_create(tmp_path / "keys", "coordinator"), PARAMS)
    swarm = Swarm(nodes, options=RoundOptions(**options), store=store, registry=registry, name="trusted")
    for n in nodes:
        registry.admit(n.id, passed=True, report={"exam": "skipped in tests"})
    return swarm


def honest(tmp_path: Path, store: Store) -> Swarm:
    """Two answerers that both say 42 and a judge that knows it."""
    return trusted(tmp_path, store, [node("alice", {"answer"}, answers={"*": "42"}),
                                     node("bob", {"answer"}, answers={"*": "42"}),
                                     node("judge", {"judge"}, judge="truth", truth="42")])


def standing(swarm: Swarm) -> dict[str, tuple[float, float]]:
    """Each node's (stake, reputation)."""
    state = swarm.registry.state()
    return {n: (t.stake, t.reputation) for n, t in state.nodes.items()}


def test_answers_cut_off_by_the_clients_max_tokens_cost_honest_nodes_nothing(api, tmp_path, store, key):
    swarm = honest(tmp_path, store)
    http = api(swarm, store=store)
    before = standing(swarm)
    for _ in range(8):  # enough to take every node below the minimum stake, were each slashed 1
        response = http.post("/v1/chat/completions", headers=headers(key), json={**ask(), "max_tokens": 1})
        error = assert_openai_error(response, 502, code="no_usable_answer")
        assert "over-long: cut off before giving an answer" in error["message"]
    assert standing(swarm) == before
    assert Ledger(store).entries(kind="slash") == []
    stored = store.list_rounds(limit=1)[0]
    round_ = http.get(f"/v1/rounds/{stored.round_id}", headers=headers(key)).json()
    assert all(a["client_caused"] for a in round_["answers"])
    reply = http.post("/v1/chat/completions", headers=headers(key), json=ask())  # the swarm still answers
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "Let me think. The answer is 42."


def test_answers_that_cannot_meet_the_clients_json_schema_cost_nothing(api, tmp_path, store, key):
    swarm = trusted(tmp_path, store, [node("alice", {"answer"}, answers={"*": '{"name": "Ada"}'}),
                                      node("bob", {"answer"}, answers={"*": '{"name": "Ada"}'})])
    http = api(swarm, store=store)
    before = standing(swarm)
    impossible = {"type": "object", "required": ["age"], "properties": {"age": {"type": "integer"}}}
    body = {**ask(), "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": impossible}}}
    for _ in range(3):
        error = assert_openai_error(http.post("/v1/chat/completions", headers=headers(key), json=body), 502,
                                    code="no_usable_answer")
        assert "does not match the JSON Schema" in error["message"]
    assert standing(swarm) == before


def test_a_node_red_flagged_for_its_own_content_is_still_slashed(api, tmp_path, store, key):
    swarm = trusted(tmp_path, store, [node("alice", {"answer"}, answers={"*": "42"}),
                                      node("bob", {"answer"}, answers={"*": "42"}),
                                      node("mallory", {"answer"}, fault="refuse"),
                                      node("mute", {"answer"}, fault="empty"),
                                      node("judge", {"judge"}, judge="truth", truth="42")])
    http = api(swarm, store=store)
    response = http.post("/v1/chat/completions", headers=headers(key), json={**ask(), "max_tokens": 50})
    assert response.status_code == 200, response.text
    assert sorted(e.payload["node"] for e in Ledger(store).entries(kind="slash")) == ["mallory", "mute"]


@pytest.mark.parametrize("stream", [False, True])
def test_store_false_is_refused_with_trust_on(api, tmp_path, store, key, stream):
    swarm = honest(tmp_path, store)
    http = api(swarm, store=store)
    response = http.post("/v1/chat/completions", headers=headers(key), json={**ask(), "store": False, "stream": stream})
    error = assert_openai_error(response, 400, code="unsupported_parameter")
    assert error["param"] == "store" and "trust is on" in error["message"] and "ledger" in error["message"]
    assert store.list_rounds(limit=5) == [] and Ledger(store).entries(kind="round") == []
    ok = http.post("/v1/chat/completions", headers=headers(key), json={**ask(), "store": True}).json()
    assert ok["swarmrank"]["stored"] is True


def test_a_streamed_answer_never_leaves_before_its_ledger_record(api, tmp_path, store, key, monkeypatch):
    swarm = honest(tmp_path, store)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise StorageError("the ledger's database is gone")

    monkeypatch.setattr(swarm.registry, "record", broken)
    http = api(swarm, store=store)
    with http.stream("POST", "/v1/chat/completions", headers=headers(key),
                     json={**ask(content=QUESTION), "stream": True}) as response:
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[-1]["error"]["code"] == "round_not_recorded"
    progress = [c["swarmrank"]["progress"]["event"] for c in chunks if c.get("swarmrank")]
    assert "decided" in progress  # the round was decided ...
    assert not any(c["choices"][0]["delta"].get("content") for c in chunks if c.get("choices"))  # ... but not sent
