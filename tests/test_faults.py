"""Fault injection: slow, crashing and garbage-returning nodes are recorded and excluded, never fatal."""

from __future__ import annotations

import time

import pytest

from swarmrank.nodes.base import Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm

from helpers import answerer, judge

Q = "What is 17 + 25?"


def faulty(node_id: str, fault: str, **kw) -> Node:
    return Node(node_id, ScriptedBackend(answers={"*": "42"}, fault=fault, **kw), Persona(), frozenset({"answer"}))


@pytest.mark.parametrize("fault,reason", [
    ("timeout", "timeout after"), ("crash", "error: scripted crash"), ("garbage", "malformed"),
    ("empty", "empty"), ("refuse", "refused"), ("long", "over-long"),
])
async def test_a_failing_node_is_excluded_with_its_reason_and_the_round_goes_on(fault, reason):
    nodes = [answerer("ok1", "42"), answerer("ok2", "41"), faulty("bad", fault), judge("j", truth="42")]
    swarm = Swarm(nodes, options=RoundOptions(node_timeout=0.3), store=None)
    result = await swarm.ask(Q)
    bad = next(a for a in result.answers if a.node == "bad")
    assert bad.excluded is not None and reason in bad.excluded
    assert bad.candidate is None
    assert result.answer == "42"
    assert "bad" not in {n for c in result.candidates for n in c.nodes}


async def test_timeouts_run_concurrently_so_the_round_takes_one_timeout_not_many():
    nodes = [answerer("ok", "42")] + [faulty(f"slow{i}", "timeout") for i in range(5)]
    start = time.monotonic()
    result = await Swarm(nodes, options=RoundOptions(node_timeout=0.5), store=None).ask(Q, protocol="majority")
    elapsed = time.monotonic() - start
    assert result.answer == "42"
    assert elapsed < 2.0
    assert result.cost.phases["answer"].failures == 5


async def test_the_round_deadline_caps_every_call():
    nodes = [answerer("ok", "42"), faulty("slow", "timeout")]
    start = time.monotonic()
    result = await Swarm(nodes, options=RoundOptions(node_timeout=60, deadline=0.4), store=None).ask(Q, protocol="majority")
    assert time.monotonic() - start < 2.0
    assert result.answer == "42"


async def test_when_every_node_fails_the_result_has_no_answer_and_says_why():
    nodes = [faulty("b1", "crash"), faulty("b2", "garbage")]
    result = await Swarm(nodes, store=None).ask(Q)
    assert result.answer is None and result.winner is None
    assert result.confidence == 0.0
    assert "no node produced a usable answer" in result.notes
    assert all(a.excluded for a in result.answers)


async def test_a_crashing_judge_costs_a_tie_not_the_round():
    nodes = [answerer("a0", "42"), answerer("a1", "41"), judge("good", truth="42"),
             Node("broken", ScriptedBackend(judge="truth", fault="crash", fault_on=("judge",)), Persona(),
                  frozenset({"judge"}))]
    result = await Swarm(nodes, store=None).ask(Q)
    assert result.answer == "42"
    broken = [j for j in result.judgments if j.judge == "broken"]
    assert broken and all(j.failed and j.verdict == "U" and "crash" in j.reasoning for j in broken)
    assert result.cost.phases["judge"].failures == len(broken)
    # a failed call is not a tie: the good judge's evidence alone decides, undiluted
    alone = await Swarm(nodes[:3], store=None).ask(Q)
    assert result.candidates[0].strength == pytest.approx(alone.candidates[0].strength)
    assert any("judge call(s) failed and were not counted" in n for n in result.notes)


async def test_when_every_judge_call_fails_the_round_falls_back_to_votes_and_says_so():
    crashing = [Node(f"j{i}", ScriptedBackend(judge="truth", truth="42", fault="crash", fault_on=("judge",)),
                     Persona(), frozenset({"judge"})) for i in range(2)]
    nodes = [answerer("a0", "41"), answerer("a1", "41"), answerer("a2", "42"), *crashing]
    result = await Swarm(nodes, store=None).ask(Q)
    assert result.answer == "41"
    assert result.candidates[0].strength > result.candidates[1].strength  # the vote prior alone
    assert result.judge_reports == [] and result.pair_reports == []
    assert "no judge gave a verdict: decided by votes alone" in result.notes


async def test_an_unreadable_verdict_is_retried_once_then_counts_as_a_tie():
    class Mumbler(ScriptedBackend):
        async def complete(self, request):
            from swarmrank.nodes.base import Completion
            if request.purpose == "judge":
                return Completion(text="Hmm, hard to say.")
            return await super().complete(request)

    nodes = [answerer("a0", "42"), answerer("a1", "41"), Node("m", Mumbler(), Persona(), frozenset({"judge"}))]
    result = await Swarm(nodes, options=RoundOptions(judges_per_pair=1), store=None).ask(Q)
    assert len(result.judgments) == 2
    assert all(j.verdict == "U" and j.retried for j in result.judgments)
    assert result.cost.phases["judge"].calls == 4  # two orders, each tried twice


async def test_a_queueing_backend_is_timed_from_when_its_call_starts_not_while_it_waits():
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from swarmrank.errors import NodeTimeoutError
    from swarmrank.nodes.base import Backend, Completion

    class OneAtATime(Backend):
        """Like a llama.cpp model shared by several personas: one worker, 0.2 s per call."""

        queues_calls = True

        def __init__(self, seconds: float) -> None:
            self.pool = ThreadPoolExecutor(max_workers=1)
            self.seconds = seconds

        def _run(self, request):
            start = time.monotonic()
            threading.Event().wait(self.seconds)
            if request.timeout is not None and time.monotonic() - start > request.timeout:
                raise NodeTimeoutError("too slow")
            return Completion(text="The answer is 42.")

        async def complete(self, request):
            return await asyncio.get_running_loop().run_in_executor(self.pool, self._run, request)

    shared = OneAtATime(0.2)
    nodes = [Node(f"p{i}", shared, Persona(), frozenset({"answer"})) for i in range(6)]
    result = await Swarm(nodes, options=RoundOptions(node_timeout=0.5), store=None).ask(Q, protocol="majority")
    assert [a.excluded for a in result.answers] == [None] * 6  # 1.2 s in all, but no call ran 0.5 s
    slow = OneAtATime(0.7)
    result = await Swarm([Node("s", slow, Persona(), frozenset({"answer"})), answerer("ok", "42")],
                         options=RoundOptions(node_timeout=0.5), store=None).ask(Q, protocol="majority")
    assert result.answers[0].excluded == "timeout after 0.5s"


async def test_a_failed_save_keeps_the_finished_round_on_the_error():
    from swarmrank.errors import RoundNotSavedError, StorageError

    class BrokenStore:
        def save_round(self, result):
            raise StorageError("database x: could not write: disk full")

    swarm = Swarm([answerer("a", "42")], store=BrokenStore())
    with pytest.raises(RoundNotSavedError, match="finished but was not saved: database x") as caught:
        await swarm.ask(Q)
    assert caught.value.result.answer == "42"


def test_an_unusable_database_fails_before_any_node_is_asked(tmp_path, monkeypatch):
    from swarmrank.config import parse_config
    from swarmrank.errors import StorageError

    (tmp_path / "dir.db").mkdir()
    monkeypatch.setenv("SWARMRANK_DB", f"sqlite:///{tmp_path / 'dir.db'}")
    cfg = parse_config({"nodes": [{"id": "a", "backend": "scripted", "answer": "42"}]})
    with pytest.raises(StorageError, match="dir.db"):
        Swarm.from_config(cfg)
