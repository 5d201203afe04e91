"""Faults behind the live server: nodes that hang, raise or die mid-round (mid-stream), limits that
run out, clients that hang up, a save that fails half-way.

Every request answers, or fails with a clear error, within its limit; and the store never holds
half a round: each round in it is whole (all its answers, candidates and judgments, no orphan
rows) or absent.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

import swarmrank.store.rounds
from swarmrank.errors import NodeError
from swarmrank.nodes.base import Backend, Completion, CompletionRequest, Node, Persona
from swarmrank.nodes.openai_compat import OpenAIBackend
from swarmrank.result import RoundResult
from swarmrank.round import RoundOptions
from swarmrank.server import create_key
from swarmrank.store import Store
from swarmrank.swarm import Swarm

from helpers import QUESTION, RIGHT_TEXT, assert_openai_error, free_port, node

SLACK = 3.0
"""Seconds a failing request may take beyond its limit (a busy 2-core machine, two servers)."""


def answerers(latency: float = 0.05) -> list[Node]:
    return [node("right", {"answer"}, answers={"*": "42"}, latency=latency),
            node("wrong1", {"answer"}, answers={"*": "41"}, latency=latency),
            node("wrong2", {"answer"}, answers={"*": "41"}, latency=latency)]


def swarm_of(nodes: list[Node], store: Store | None, **options: Any) -> Swarm:
    """The nodes as a swarm whose judge1 is declared reliable (trusted from the first round)."""
    options.setdefault("judge_priors", {"judge1": 0.9})
    return Swarm(nodes, options=RoundOptions(**options), name="faults", store=store)


def body(*, stream: bool = False, model: str = "swarmrank") -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": QUESTION}]}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def whole_rounds(store: Store) -> list[RoundResult]:
    """Every stored round, after checking it is whole: its answer, candidate and judgment rows are
    exactly those of its record, and no row belongs to a round that is not there."""
    with store.engine.connect() as conn:
        ids = [row[0] for row in conn.execute(text("SELECT id FROM rounds"))]
        rows = {table: dict(conn.execute(text(f"SELECT round_id, COUNT(*) FROM {table} GROUP BY round_id")).all())
                for table in ("answers", "candidates", "judgments")}
    orphans = {rid for counts in rows.values() for rid in counts} - set(ids)
    assert not orphans, f"rows of rounds that are not stored: {orphans}"
    rounds = [store.get_round(rid) for rid in ids]
    for r in rounds:
        assert rows["answers"].get(r.round_id, 0) == len(r.answers), r.round_id
        assert rows["candidates"].get(r.round_id, 0) == len(r.candidates), r.round_id
        assert rows["judgments"].get(r.round_id, 0) == len(r.judgments), r.round_id
    return rounds


def read_stream(url: str, key: str, *, on_line: Any = None, timeout: float = 30) -> tuple[list[dict[str, Any]], float]:
    """POST a streaming request; (the JSON events, seconds until ``[DONE]``). Fails if ``[DONE]`` never comes."""
    began = time.monotonic()
    events: list[dict[str, Any]] = []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body(stream=True), headers=auth(key),
                      timeout=timeout) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if on_line is not None:
                on_line(line, time.monotonic() - began)
            if line == "data: [DONE]":
                return events, time.monotonic() - began
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    raise AssertionError(f"the stream ended without [DONE] after {len(events)} events")


def streamed_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["choices"][0]["delta"].get("content", "") for e in events if e.get("choices"))


def final_result(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e["swarmrank"]["result"] for e in events if "result" in e.get("swarmrank", {}))


def progress(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["swarmrank"]["progress"] for e in events
            if "progress" in e.get("swarmrank", {}) and e["swarmrank"]["progress"]["event"] == kind]


def still_serving(url: str, key: str) -> None:
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    response = httpx.post(f"{url}/v1/chat/completions", json=body(model="majority"), headers=auth(key), timeout=30)
    assert response.status_code == 200, response.text


class Raises(Backend):
    """Answers after ``delay`` seconds by raising ``error`` (a backend bug, not a NodeError)."""

    name = "raises"

    def __init__(self, error: Exception, delay: float = 0.3) -> None:
        self.error = error
        self.delay = delay

    async def complete(self, request: CompletionRequest) -> Completion:
        await asyncio.sleep(self.delay)
        raise self.error


class Hangs(Backend):
    """Never answers; says when a call starts and whether it was cancelled (the round stopped)."""

    name = "hangs"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def complete(self, request: CompletionRequest) -> Completion:
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")


# -- a node fails after the stream started: the round still answers ---------------------------------


def test_a_judge_that_hangs_mid_stream_is_dropped_and_the_stream_still_answers(start, store, key):
    judges = [node("judge1", {"judge"}, judge="truth", truth="42"),
              node("judge2", {"judge"}, judge="truth", truth="42", fault="timeout", fault_on=("judge",))]
    url = start(swarm_of(answerers() + judges, store, node_timeout=1.0), store=store, keepalive_seconds=0.2)
    seen: list[tuple[str, float]] = []
    events, took = read_stream(url, key, on_line=lambda line, at: seen.append((line, at)))
    first_answer = next(at for line, at in seen if '"event":"answer"' in line)
    assert first_answer < 0.9  # the answers were on the wire before the judge's timeout ran out
    assert ": keep-alive" in [line for line, _ in seen]  # and the stream was kept alive while it hung
    assert 1.0 <= took < 1.0 + SLACK
    assert streamed_text(events) == RIGHT_TEXT
    result = final_result(events)
    assert result["answer"] == "42"
    [stored] = whole_rounds(store)
    assert stored.round_id == result["round_id"]
    failed = [j for j in stored.judgments if j.failed]
    assert failed and {j.judge for j in failed} == {"judge2"}
    assert any(not j.failed for j in stored.judgments)


@pytest.mark.parametrize("role,error,reason", [
    ("answer", RuntimeError("the accelerator fell off the bus"), "error: RuntimeError: the accelerator fell off"),
    ("answer", NodeError("connection reset by peer"), "error: connection reset by peer"),
    ("judge", RuntimeError("judge crashed"), None),
], ids=["answerer-bug", "answerer-node-error", "judge-bug"])
def test_a_node_that_raises_mid_stream_is_recorded_and_the_round_still_answers(start, store, key, role, error,
                                                                                 reason):
    nodes = answerers() + [node("judge1", {"judge"}, judge="truth", truth="42")]
    nodes.append(Node("flaky", Raises(error), Persona(seed=7), roles=frozenset({role})))
    url = start(swarm_of(nodes, store), store=store)
    events, took = read_stream(url, key)
    assert took < SLACK
    assert streamed_text(events) == RIGHT_TEXT
    assert not [e for e in events if "error" in e]
    [stored] = whole_rounds(store)
    assert stored.answer == "42"
    if role == "answer":
        flaky = next(a for a in stored.answers if a.node == "flaky")
        assert flaky.excluded is not None and flaky.excluded.startswith(reason)
        assert {p["node"]: p["excluded"] for p in progress(events, "answer")}["flaky"].startswith(reason)
    else:
        assert {j.judge for j in stored.judgments if j.failed} == {"flaky"}
    still_serving(url, key)


# -- every node fails: a clear error within the limit, and the round is whole or absent ------------


LIMITS = [
    # (which limit, round options, server settings, error code, is the round stored?)
    ("node timeout", {"node_timeout": 0.6}, {}, "round_timeout", True),
    ("round deadline", {"deadline": 0.6}, {}, "round_timeout", True),
    # the request timeout caps the round's deadline, so the round ends itself and is stored too
    ("request timeout", {}, {"request_timeout": 0.6}, "request_timeout", True),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("limit,options,settings,code,stored", LIMITS, ids=[x[0] for x in LIMITS])
def test_when_every_answerer_hangs_the_request_fails_with_504_within_its_limit(start, store, key, stream, limit,
                                                                                options, settings, code, stored):
    nodes = [node(f"stuck{i}", {"answer"}, fault="timeout") for i in range(3)]
    url = start(swarm_of(nodes, store, **options), store=store, keepalive_seconds=0.2, **settings)
    began = time.monotonic()
    if stream:
        events, _ = read_stream(url, key)
        error = events[-1]["error"]
        assert not streamed_text(events)  # nothing of an answer was sent
    else:
        response = httpx.post(f"{url}/v1/chat/completions", json=body(), headers=auth(key), timeout=30)
        error = assert_openai_error(response, 504, code=code)
        assert response.headers["x-should-retry"] == "false"
    took = time.monotonic() - began
    assert error["code"] == code and error["type"] == "timeout_error"
    assert 0.6 <= took < 0.6 + SLACK, f"{limit}: {took:.1f}s"
    time.sleep(0.3)  # a cancelled round must not be saved late either
    rounds = whole_rounds(store)
    assert len(rounds) == int(stored)
    if stored:
        assert rounds[0].answer is None
        assert all(a.excluded and a.excluded.startswith("timeout") for a in rounds[0].answers)
        assert rounds[0].round_id in error["message"]
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"


# -- a remote node's process dies mid-round ----------------------------------------------------------


UPSTREAM = """
[swarm]
name = "upstream"
protocol = "majority"
[[nodes]]
id = "slow"
backend = "scripted"
answer = "42"
latency = 2.0
roles = ["answer"]
"""


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`swarmrank serve` in its own process, a slow scripted swarm; its URL and the process."""
    config = tmp_path / "upstream.toml"
    config.write_text(UPSTREAM)
    port = free_port()
    env = {**os.environ, "SWARMRANK_HOME": str(tmp_path / "upstream-home")}
    env.pop("SWARMRANK_DB", None)
    process = subprocess.Popen([sys.executable, "-m", "swarmrank", "serve", "--config", str(config), "--no-auth",
                                "--port", str(port), "--log-level", "warning"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the upstream server did not come up"
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=20)


def test_a_remote_node_whose_server_is_killed_mid_stream_is_dropped_and_the_round_answers(start, store, key,
                                                                                          upstream):
    """The node is another swarmrank server reached over HTTP (an OpenAI-compatible backend); it is
    killed (SIGKILL) while it is answering, after the stream to our client has started."""
    up_url, process = upstream
    remote = Node("remote", OpenAIBackend(base_url=f"{up_url}/v1", model="majority", timeout=20),
                  Persona(seed=9), roles=frozenset({"answer"}))
    nodes = [remote] + answerers(latency=0.1) + [node("judge1", {"judge"}, judge="truth", truth="42")]
    url = start(swarm_of(nodes, store, node_timeout=20.0), store=store, keepalive_seconds=0.2)
    killed: list[float] = []

    def kill_once_answering(line: str, at: float) -> None:
        if not killed and '"phase":"answer"' in line:  # the answer phase began: the remote node is mid-call
            process.send_signal(signal.SIGKILL)
            killed.append(at)

    events, took = read_stream(url, key, on_line=kill_once_answering)
    assert killed and killed[0] < 2.0  # killed before the remote node (2 s latency) could answer
    assert took < killed[0] + SLACK + 2  # the client's one retry against a dead port is quick
    assert streamed_text(events) == RIGHT_TEXT
    [stored] = whole_rounds(store)
    dead = next(a for a in stored.answers if a.node == "remote")
    assert dead.excluded is not None and "cannot reach" in dead.excluded and up_url in dead.excluded
    assert stored.answer == "42"


# -- the client hangs up ----------------------------------------------------------------------------


def test_a_client_that_hangs_up_mid_stream_stops_the_round_and_nothing_is_stored(start, store, key):
    hangs = Hangs()
    nodes = answerers() + [Node("stuck-judge", hangs, Persona(seed=3), roles=frozenset({"judge"}))]
    url = start(swarm_of(nodes, store), store=store, keepalive_seconds=0.1)
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body(stream=True), headers=auth(key)) as response:
        for _ in response.iter_lines():
            if hangs.started.is_set():
                break  # the judge is stuck (it would be for node_timeout, 120 s): hang up
    assert hangs.cancelled.wait(5), "the round went on after its client left"
    time.sleep(0.3)
    assert whole_rounds(store) == []
    still_serving(url, key)


class SlowSave(Store):
    """A store whose save_round waits for ``release`` (the test's cue) before writing."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.saving = threading.Event()
        self.release = threading.Event()

    def save_round(self, result: RoundResult) -> None:
        self.saving.set()
        self.release.wait(10)
        super().save_round(result)


def test_a_client_that_hangs_up_while_its_round_is_being_saved_leaves_it_whole_or_absent(start, tmp_path):
    slow = SlowSave(f"sqlite:///{tmp_path / 'slow.db'}")
    slow_key = create_key(slow, "slow")[0]
    judge = node("judge1", {"judge"}, judge="truth", truth="42")
    url = start(swarm_of(answerers() + [judge], slow), store=slow, keepalive_seconds=0.1)
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body(stream=True),
                      headers=auth(slow_key)) as response:
        for _ in response.iter_lines():
            if slow.saving.is_set():
                break  # the round is done and its save has begun: hang up now
    assert slow.saving.is_set()
    time.sleep(0.5)  # the server notices (its next keep-alive fails) and cancels the request
    slow.release.set()
    time.sleep(0.5)
    assert len(whole_rounds(slow)) <= 1
    still_serving(url, slow_key)
    slow.close()


def test_a_client_that_gives_up_on_a_plain_request_leaves_the_round_whole_or_absent(start, store, key):
    url = start(swarm_of(answerers(latency=0.5) + [node("judge1", {"judge"}, judge="truth", truth="42",
                                                         latency=0.5)], store), store=store)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/chat/completions", json=body(), headers=auth(key), timeout=0.4)
    time.sleep(1.5)  # long enough for the round (0.5 s answering + 0.5 s judging) to have finished
    assert len(whole_rounds(store)) <= 1
    still_serving(url, key)


# -- the save fails half-way --------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_save_that_fails_half_way_leaves_nothing_and_the_reply_says_not_stored(start, store, key, monkeypatch,
                                                                                 stream):
    insert_judgments = swarmrank.store.rounds._insert_judgments

    def fail_after_writing(conn: Any, result: RoundResult) -> None:
        insert_judgments(conn, result)  # rounds, answers, candidates and judgments are written by now
        raise OperationalError("INSERT INTO judgments", {}, Exception("disk I/O error"))

    monkeypatch.setattr(swarmrank.store.rounds, "_insert_judgments", fail_after_writing)
    url = start(swarm_of(answerers() + [node("judge1", {"judge"}, judge="truth", truth="42")], store), store=store)
    if stream:
        events, _ = read_stream(url, key)
        assert streamed_text(events) == RIGHT_TEXT
        info = final_result(events)
    else:
        response = httpx.post(f"{url}/v1/chat/completions", json=body(), headers=auth(key), timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == RIGHT_TEXT
        info = response.json()["swarmrank"]
    assert info["stored"] is False and info["answer"] == "42"
    assert whole_rounds(store) == []
    missing = httpx.get(f"{url}{info['round_url']}", headers=auth(key))
    assert_openai_error(missing, 404, code="round_not_found")
