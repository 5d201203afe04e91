"""Node agents over real loopback HTTP: signed completions, forgers rejected, a killed agent, bad input.

Agents run in background threads (uvicorn) or as `swarmrank node serve` subprocesses, each with its
own SWARMRANK_HOME (so its own key); the coordinator reaches them through `backend = "remote"`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from swarmrank.agent import NodeAgent, agent_from_config
from swarmrank.agent.app import create_agent_app
from swarmrank.config import parse_config
from swarmrank.errors import ConfigError
from swarmrank.identity import load_or_create
from swarmrank.nodes.base import Backend, BuildContext, Completion, CompletionRequest, create_backend
from swarmrank.nodes.remote import KNOWN_NODES_FILE, SignedCompletion
from swarmrank.settings import Settings
from swarmrank.store import Store
from swarmrank.swarm import Swarm
from swarmrank.wire import CompleteRequest, reply_content, request_digest, signing_hash

from helpers import Server

QUESTION = "What is 6 x 7?"


# -- agents and coordinators ----------------------------------------------------------------------

class Recording(Backend):
    """Wraps a backend and keeps every request and completion that went through it."""

    def __init__(self, inner: Backend, entered: threading.Event | None = None) -> None:
        self.inner, self.entered = inner, entered
        self.requests: list[CompletionRequest] = []
        self.completions: list[Completion] = []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        if self.entered is not None:
            self.entered.set()
        completion = await self.inner.complete(request)
        self.completions.append(completion)
        return completion

    async def close(self) -> None:
        await self.inner.close()

    def describe(self) -> str:
        return self.inner.describe()


def make_agent(home: Path, node: dict[str, Any]) -> NodeAgent:
    """An agent for one scripted [[nodes]] entry, with its key in its own ``home``."""
    config = parse_config({"nodes": [{"backend": "scripted", **node}]})
    return agent_from_config(config, node=node["id"], settings=Settings(home=home))


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., tuple[Server, NodeAgent]]]:
    """serve(id=..., answer=..., roles=[...], ...) → (running server, its agent)."""
    running: list[Server] = []

    def _serve(*, port: int = 0, home: str | None = None, record: bool = False, max_body: int = 1024 * 1024,
               **node: Any) -> tuple[Server, NodeAgent]:
        agent = make_agent(tmp_path / (home or f"agent-{node['id']}"), node)
        if record:
            agent.backend = Recording(agent.backend)
        server = Server(create_agent_app(agent, max_body_bytes=max_body), port=port)
        running.append(server)
        return server, agent

    yield _serve
    for server in running:
        server.stop()


def remote(node_id: str, url: str, roles: list[str], **options: Any) -> dict[str, Any]:
    return {"id": node_id, "backend": "remote", "url": url, "node": node_id, "roles": roles, **options}


def coordinator(nodes: list[dict[str, Any]], store: Any = None, **round_options: Any) -> Swarm:
    config = parse_config({"swarm": {"name": "coordinator"}, "round": {"node_timeout": 10, **round_options},
                           "nodes": nodes})
    return Swarm.from_config(config, store=store)


def record(swarm: Swarm) -> dict[str, Recording]:
    """Wrap every node's backend in a Recording, by node id."""
    recorders = {}
    for node in swarm.nodes:
        node.backend = recorders[node.id] = Recording(node.backend)
    return recorders


def canonical(obj: Any) -> bytes:  # written from docs/node-agent.md, not imported, to check the document
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def signed_by(completion: Completion, public_key: str) -> bool:
    """The documented check of one signed completion, done independently of swarmrank's code."""
    assert isinstance(completion, SignedCompletion) and completion.signature is not None
    sig = completion.signature
    content = {"protocol": "swarmrank-node/1", "node": sig.node, "nonce": sig.nonce, "request": sig.request,
               "text": completion.text, "prompt_tokens": completion.prompt_tokens,
               "completion_tokens": completion.completion_tokens, "cached_tokens": completion.cached_tokens,
               "finish_reason": completion.finish_reason, "choice_probs": completion.choice_probs}
    digest = hashlib.sha256(canonical(content)).digest()
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(bytes.fromhex(sig.signature), digest)
    except Exception:
        return False
    return sig.public_key == public_key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a round through agents -----------------------------------------------------------------------

def test_a_peer_rank_round_through_three_agents_is_decided_on_signed_answers_and_verdicts(serve, isolated_home):
    alice, alice_agent = serve(id="alice", answer="42", roles=["answer"])
    bob, bob_agent = serve(id="bob", answer="7", roles=["answer"])
    carol, carol_agent = serve(id="carol", judge="truth", truth="42", roles=["judge"], record=True)
    swarm = coordinator([remote("alice", alice.url, ["answer"], public_key=alice_agent.identity.public_hex),
                         remote("bob", bob.url, ["answer"]),  # trusted on first use
                         remote("carol", carol.url, ["judge"])])
    recorders = record(swarm)

    result = swarm.ask_sync(QUESTION, protocol="peer-rank", truth="42")

    assert result.answer == "42" and result.winning_nodes == ["alice"]
    assert [(a.node, a.value, a.excluded) for a in result.answers] == [("alice", "42", None), ("bob", "7", None)]
    assert len(result.judgments) == 2 and {j.judge for j in result.judgments} == {"carol"}
    assert not any(j.failed for j in result.judgments)
    keys = {"alice": alice_agent.identity.public_hex, "bob": bob_agent.identity.public_hex,
            "carol": carol_agent.identity.public_hex}
    for answer in result.answers:  # every answer the round used is one its node signed
        [completion] = [c for c in recorders[answer.node].completions if c.text == answer.text]
        assert signed_by(completion, keys[answer.node]) and completion.signature.node == answer.node
    verdicts = recorders["carol"].completions
    assert len(verdicts) == 2 and all(signed_by(c, keys["carol"]) for c in verdicts)
    # the round record keeps each agent's signature beside the answer or verdict it covers
    for answer in result.answers:
        assert answer.signature is not None and answer.signature["node"] == answer.node
        assert answer.signature["public_key"] == keys[answer.node]
    sigs = sorted(c.signature.signature for c in verdicts)
    assert sorted(j.signature["signature"] for j in result.judgments) == sigs
    # the coordinator made no key in a remote node's name: the agent holds it
    assert swarm.created_keys == [] and not (isolated_home / "keys" / "bob.pem").exists()
    assert swarm.node("alice").public_key == keys["alice"] and swarm.node("alice").signer is None
    assert sorted(j.reasoning for j in result.judgments) == sorted(c.text.strip() for c in verdicts)
    # the coordinator's ground truth never leaves it: carol judged by her own truth
    assert all("truth" not in r.context for r in carol_agent.backend.requests)
    assert {r.context["first_value"] for r in carol_agent.backend.requests} == {"42", "7"}
    known = json.loads((isolated_home / KNOWN_NODES_FILE).read_text())
    assert {url: (e["node"], e["public_key"]) for url, e in known.items()} == {
        bob.url: ("bob", keys["bob"]), carol.url: ("carol", keys["carol"])}  # alice is pinned in the config


def test_nodes_check_and_describe_go_through_the_agent(serve):
    alice, agent = serve(id="alice", answer="42", roles=["answer"])
    swarm = coordinator([remote("alice", alice.url, ["answer"])])
    [check] = asyncio.run(swarm.check())
    assert check.ok and check.detail == "Let me think. The answer is 42."
    assert swarm.nodes[0].backend.describe() == f"remote(alice @ {alice.url})"
    identity = httpx.get(f"{alice.url}/v1/node/identity").json()
    assert identity == {"protocol": "swarmrank-node/1", "node": "alice", "public_key": agent.identity.public_hex,
                        "roles": ["answer"], "backend": "scripted(judge=truth)"}


# -- forgers --------------------------------------------------------------------------------------

def forging_app(honest: NodeAgent, mode: str, home: Path) -> FastAPI:
    """An agent that computes dave's honest reply, then forges it as ``mode`` says."""
    evil = load_or_create(home / "keys", "mallory")
    first: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/v1/node/complete")
    async def complete(request: Request) -> JSONResponse:
        data = json.loads(await request.body())
        wire = CompleteRequest.model_validate({**data, "node": None})
        reply = await honest.complete(wire, request_digest(data))
        out = reply.model_dump()
        if mode == "unsigned":
            out.update(signature=None, public_key=None)
        elif mode in ("other key", "bad signature", "other node"):
            node = "mallory" if mode == "other node" else reply.node
            content = reply_content(reply, node=node, nonce=reply.nonce, request=reply.request)
            out.update(node=node, signature=evil.sign(signing_hash(content)).hex(),
                       public_key=honest.identity.public_hex if mode == "bad signature" else evil.public_hex)
        elif mode == "tampered":
            out.update(text="Let me think. The answer is 8.")
        elif mode == "replay":
            first.append(out)
            out = first[0]
        return JSONResponse(out)

    return app


FORGERIES = {
    "unsigned": "it is not signed",
    "other key": "but node 'dave' is pinned to key",
    "bad signature": "its signature does not verify",
    "other node": "it is signed as node 'mallory', not 'dave'",
    "tampered": "its signature does not verify",
    "replay": "it answers another request",
}


@pytest.mark.parametrize("mode", list(FORGERIES))
def test_a_forged_answer_is_excluded_with_the_reason_and_the_honest_nodes_decide(serve, tmp_path, mode):
    alice, _ = serve(id="alice", answer="42", roles=["answer"])
    dave = make_agent(tmp_path / "dave", {"id": "dave", "answer": "7", "roles": ["answer"]})
    forger = Server(forging_app(dave, mode, tmp_path / "evil"))
    try:
        swarm = coordinator([remote("alice", alice.url, ["answer"]),
                             remote("dave", forger.url, ["answer"], public_key=dave.identity.public_hex)])
        if mode == "replay":  # dave's first reply is genuine: the health check accepts it
            assert [c.ok for c in asyncio.run(swarm.check())] == [True, True]
        result = swarm.ask_sync(QUESTION)
    finally:
        forger.stop()
    assert result.answer == "42" and [c.answer for c in result.candidates] == ["42"]
    [forged] = [a for a in result.answers if a.node == "dave"]
    assert forged.value is None and forged.candidate is None
    assert forged.excluded.startswith(f"error: rejected the reply of the agent at {forger.url}: ")
    assert FORGERIES[mode] in forged.excluded
    assert result.cost.phases["answer"].failures == 1


def test_forged_verdicts_are_recorded_as_failed_and_not_counted(serve, tmp_path):
    alice, _ = serve(id="alice", answer="42", roles=["answer"])
    bob, _ = serve(id="bob", answer="7", roles=["answer"])
    carol, _ = serve(id="carol", judge="truth", truth="42", roles=["judge"])
    dave = make_agent(tmp_path / "dave", {"id": "dave", "judge": "prefer", "prefer": "7", "roles": ["judge"]})
    forger = Server(forging_app(dave, "bad signature", tmp_path / "evil"))
    try:
        swarm = coordinator([remote("alice", alice.url, ["answer"]), remote("bob", bob.url, ["answer"]),
                             remote("carol", carol.url, ["judge"]),
                             remote("dave", forger.url, ["judge"], public_key=dave.identity.public_hex)])
        result = swarm.ask_sync(QUESTION)
    finally:
        forger.stop()
    assert result.answer == "42"
    forged = [j for j in result.judgments if j.judge == "dave"]
    assert len(forged) == 2 and all(j.failed and j.verdict == "U" for j in forged)
    assert all("its signature does not verify" in j.reasoning for j in forged)
    assert all(not j.failed for j in result.judgments if j.judge == "carol")


def test_a_key_first_seen_at_a_url_is_kept_across_coordinators(serve, isolated_home):
    erin, _ = serve(id="erin", answer="42", roles=["answer"], home="erin-1")
    nodes = [remote("erin", erin.url, ["answer"])]
    assert coordinator(nodes).ask_sync(QUESTION).answer == "42"
    erin.stop()
    serve(id="erin", answer="42", roles=["answer"], home="erin-2", port=erin.port)  # same id, new key

    result = coordinator(nodes).ask_sync(QUESTION)  # a new coordinator: the key is on file, not in memory

    assert result.answer is None
    assert "but node 'erin' is pinned to key" in result.answers[0].excluded
    (isolated_home / KNOWN_NODES_FILE).unlink()  # the documented way to accept a node's new key
    assert coordinator(nodes).ask_sync(QUESTION).answer == "42"


# -- failures -------------------------------------------------------------------------------------

def test_failing_and_unreachable_agents_are_excluded_with_the_reason(serve):
    alice, _ = serve(id="alice", answer="42", roles=["answer"])
    crash, _ = serve(id="crash", fault="crash", roles=["answer"])
    slow, _ = serve(id="slow", latency=5, roles=["answer"])
    swarm = coordinator([remote("alice", alice.url, ["answer"]), remote("crash", crash.url, ["answer"]),
                         remote("slow", slow.url, ["answer"], timeout=0.5),
                         remote("gone", f"http://127.0.0.1:{free_port()}", ["answer"])])
    result = swarm.ask_sync(QUESTION)
    assert result.answer == "42"
    excluded = {a.node: a.excluded for a in result.answers}
    assert excluded["alice"] is None
    assert excluded["crash"] == f"error: the agent at {crash.url} answered 502: scripted crash"
    assert excluded["slow"] == f"error: the agent at {slow.url} answered 504: node 'slow' did not finish within 0.5s"
    assert excluded["gone"].startswith("error: cannot reach the agent at http://127.0.0.1:")


def test_an_agent_killed_mid_round_leaves_a_complete_stored_round(serve, tmp_path):
    config = tmp_path / "slow.toml"
    config.write_text('[[nodes]]\nid = "slow"\nbackend = "scripted"\nanswer = "7"\nlatency = 8\nroles = ["answer"]\n')
    home, port = tmp_path / "slow-home", free_port()
    env = {**os.environ, "SWARMRANK_HOME": str(home)}
    env.pop("SWARMRANK_DB", None)
    proc = subprocess.Popen([sys.executable, "-m", "swarmrank", "node", "serve", "--config", str(config),
                             "--node", "slow", "--port", str(port), "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                identity = httpx.get(f"{url}/v1/node/identity").json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "swarmrank node serve did not come up"
                time.sleep(0.1)
        key = load_or_create(home / "keys", "slow").public_hex  # the key the agent created for itself
        assert identity["node"] == "slow" and identity["public_key"] == key
        alice, _ = serve(id="alice", answer="42", roles=["answer"])
        store = Store(f"sqlite:///{tmp_path / 'rounds.db'}")
        swarm = coordinator([remote("alice", alice.url, ["answer"]),
                             remote("slow", url, ["answer"], public_key=key)], store=store)
        entered = threading.Event()
        swarm.nodes[1].backend = Recording(swarm.nodes[1].backend, entered)
        results: list[Any] = []
        asker = threading.Thread(target=lambda: results.append(swarm.ask_sync(QUESTION)))
        asker.start()
        assert entered.wait(10)
        time.sleep(0.5)  # the request is at the agent, which sleeps 8 s before answering
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        asker.join(15)
        assert not asker.is_alive() and time.monotonic() - killed < 5
    finally:
        proc.kill()
        _, stderr = proc.communicate(timeout=10)
    assert f"node slow (scripted(judge=truth); roles answer) at {url}" in stderr
    assert f'public_key = "{key}"' in stderr
    [result] = results
    assert result.answer == "42"
    [slow] = [a for a in result.answers if a.node == "slow"]
    assert slow.excluded.startswith(f"error: the agent at {url} closed the connection before answering")
    stored = store.get_round(result.round_id)
    assert stored.model_dump() == result.model_dump()
    assert [r.round_id for r in store.list_rounds()] == [result.round_id]
    store.close()


def test_an_agent_serves_a_model_or_a_node_of_a_config_and_says_what_is_missing(tmp_path):
    config = parse_config({"models": {"sim": {"backend": "scripted", "answer": "5"}},
                           "nodes": [{"id": "alice", "backend": "scripted", "answer": "42", "roles": ["judge"]},
                                     {"id": "bob", "model": "sim", "judge": "first"}]})
    settings = Settings(home=tmp_path)
    by_model = agent_from_config(config, model="sim", settings=settings)
    assert (by_model.node_id, by_model.roles, by_model.backend.describe()) == (
        "sim", {"answer", "judge"}, "scripted(judge=truth)")
    bob = agent_from_config(config, model="sim", node="bob", settings=settings)  # the node's own options apply
    assert (bob.node_id, bob.backend.describe()) == ("bob", "scripted(judge=first)")
    alice = agent_from_config(config, node="alice", settings=settings)
    assert alice.roles == {"judge"}
    assert alice.identity.public_hex == load_or_create(tmp_path / "keys", "alice").public_hex
    for kwargs, message in (({}, "give --model NAME"),
                            ({"model": "nope"}, "no [models.nope] in the config (known: sim)"),
                            ({"node": "carol"}, "no node 'carol' in the config (known: alice, bob)"),
                            ({"model": "sim", "node": "bad id"}, "bad node id")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            agent_from_config(config, settings=settings, **kwargs)


# -- bad input to the agent -----------------------------------------------------------------------

NONCE = "0123456789abcdef" * 2
GOOD = {"nonce": NONCE, "messages": [{"role": "user", "content": QUESTION}], "context": {"question": QUESTION}}

BAD_BODIES: list[tuple[bytes, int, str, str]] = [
    (b"{not json", 400, "invalid_json", "not valid JSON"),
    (b"", 400, "invalid_json", "empty"),
    (b"[1, 2]", 400, "invalid_json", "must be a JSON object, not list"),
    (b'{"nonce": NaN}', 400, "invalid_json", "NaN is not a JSON number"),
    (b'{"nonce": "\xff\xfe"}', 400, "invalid_json", "not valid JSON"),
    (b"[" * 200_000 + b"]" * 200_000, 400, "invalid_json", "nested too deeply"),
    (json.dumps({**GOOD, "messages": [{"role": "user", "content": "\ud800"}]}).encode(), 400, "invalid_json",
     "canonical JSON"),
    (json.dumps({**GOOD, "temperature": "hot"}).encode(), 400, "invalid_value", "temperature"),
    (json.dumps({**GOOD, "max_tokens": True}).encode(), 400, "invalid_value", "max_tokens"),
    (json.dumps({**GOOD, "seed": 1.5}).encode(), 400, "invalid_value", "seed"),
    (json.dumps({**GOOD, "messages": "hi"}).encode(), 400, "invalid_value", "messages"),
    (json.dumps({**GOOD, "messages": [{"role": "robot", "content": "x"}]}).encode(), 400, "invalid_value", "role"),
    (json.dumps({**GOOD, "context": [1]}).encode(), 400, "invalid_value", "context"),
    (json.dumps({**GOOD, "nonce": "abc"}).encode(), 400, "invalid_value", "nonce"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "nonce"}).encode(), 400, "invalid_value", "nonce"),
    (json.dumps({**GOOD, "evil": 1}).encode(), 400, "invalid_value", "evil"),
    (json.dumps({**GOOD, "context": {"blob": "x" * 2_000_000}}).encode(), 413, "request_too_large", "limit"),
    (json.dumps({**GOOD, "node": "bob"}).encode(), 409, "wrong_node", "this agent is node 'alice', not 'bob'"),
    (json.dumps({**GOOD, "purpose": "judge"}).encode(), 403, "missing_role", "does not have the 'judge' role"),
]


def test_bad_requests_get_a_json_4xx_never_a_traceback(serve):
    alice, _ = serve(id="alice", answer="42", roles=["answer"])
    with httpx.Client(base_url=alice.url, timeout=10) as client:
        ok = client.post("/v1/node/complete", json=GOOD)
        assert ok.status_code == 200 and ok.json()["text"] == "Let me think. The answer is 42."
        for body, status, code, fragment in BAD_BODIES:
            resp = client.post("/v1/node/complete", content=body, headers={"content-type": "application/json"})
            assert resp.status_code == status, (body[:80], resp.text)
            error = resp.json()["error"]
            assert error["code"] == code and fragment in error["message"], (body[:80], error)
            assert "Traceback" not in resp.text
        for method, path, status in (("GET", "/v1/node/complete", 405), ("GET", "/v1/nope", 404),
                                     ("POST", "/v1/node/identity", 405)):
            resp = client.request(method, path)
            assert resp.status_code == status and set(resp.json()) == {"error"}


def test_backend_failures_at_the_agent_are_502_and_504(serve):
    crash, _ = serve(id="crash", fault="crash", roles=["answer"])
    slow, _ = serve(id="slow", latency=5, roles=["answer"])
    crashed = httpx.post(f"{crash.url}/v1/node/complete", json=GOOD)
    assert crashed.status_code == 502 and crashed.json()["error"]["message"] == "scripted crash"
    late = httpx.post(f"{slow.url}/v1/node/complete", json={**GOOD, "timeout": 0.2})
    assert late.status_code == 504 and late.json()["error"]["code"] == "node_timeout"
    assert late.json()["error"]["message"] == "node 'slow' did not finish within 0.2s"


def test_remote_options_are_checked_when_the_swarm_is_built():
    ctx = BuildContext()
    for options, message in (({}, "needs 'url'"), ({"url": "ftp://x"}, "needs 'url'"),
                             ({"url": "http://x", "public_key": "zz"}, "64 lowercase hex digits"),
                             ({"url": "http://x", "node": "no spaces"}, "bad node id"),
                             ({"url": "http://x", "timeout": 0}, "positive"),
                             ({"url": "http://x", "api_key": "k"}, "unknown remote option(s): api_key")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            create_backend("remote", options, ctx)
    backend = create_backend("remote", {"url": "http://127.0.0.1:9101/", "node": "alice"}, ctx)
    assert backend.describe() == "remote(alice @ http://127.0.0.1:9101)"


def test_a_remote_node_gets_the_rounds_sampling_and_json_schema(serve):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    erin, agent = serve(id="erin", answer='{"answer": 42}', roles=["answer"], record=True)
    swarm = coordinator([remote("erin", erin.url, ["answer"])], answer_top_p=0.5, answer_presence_penalty=0.25,
                        answer_schema=schema)
    result = swarm.ask_sync(QUESTION, protocol="majority", task_type="json")
    assert result.answer == '{"answer":42}'
    (request,) = agent.backend.requests
    assert (request.top_p, request.presence_penalty, request.response_format) == (0.5, 0.25, "json")
    assert request.json_schema == schema
    plain = coordinator([remote("erin", erin.url, ["answer"])])
    plain.ask_sync(QUESTION, protocol="majority", task_type="free")
    assert agent.backend.requests[-1].response_format == "text" and agent.backend.requests[-1].top_p is None
