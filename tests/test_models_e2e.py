"""End-to-end on the real embedded GGUF models (marked ``model``; each test well under two minutes).

These load SmolLM2-135M and Gemma-3-270M from their packages and, for the OpenAI-compatible
backend, start llama-cpp-python's own OpenAI-compatible server on loopback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace

import httpx
import pytest

from swarmrank.config import load_config, parse_config
from swarmrank.eval.store import EvalRuns
from swarmrank.nodes.base import BuildContext, CompletionRequest, Message
from swarmrank.nodes.models import resolve_model
from swarmrank.nodes.openai_compat import build as build_openai
from swarmrank.protocols import protocol_names
from swarmrank.settings import Settings
from swarmrank.swarm import Swarm

pytestmark = pytest.mark.model

QUESTION = "What is 2 + 3?"


@pytest.fixture(scope="module")
def embedded() -> Swarm:
    """The embedded default swarm, with short budgets so every protocol fits in a test."""
    cfg = load_config(None)
    for node in cfg.nodes:
        node.persona = replace(node.persona, max_tokens=min(node.persona.max_tokens, 48), judge_max_tokens=32)
    swarm = Swarm.from_config(cfg, store=None)
    swarm.options = replace(swarm.options, k=2, max_samples=6, rounds=1)
    return swarm


def test_cli_ask_on_the_embedded_swarm_gives_a_real_consensus_with_judgments_in_both_orders(tmp_path):
    env = {**os.environ, "SWARMRANK_HOME": os.environ["SWARMRANK_HOME"]}
    # a question the tiny models disagree on, so judging really happens
    proc = subprocess.run([sys.executable, "-m", "swarmrank", "ask", "What is 17 + 25?", "--json"],
                          capture_output=True, text=True, env=env, timeout=110)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), f"no output; stderr: {proc.stderr!r}"
    data = json.loads(proc.stdout)
    assert data["answer"] is not None
    assert {a["node"] for a in data["answers"]} == {"smol-precise", "smol-stepwise", "gemma-precise", "gemma-creative"}
    usable = [a for a in data["answers"] if a["excluded"] is None]
    assert usable, "at least one real model must give a usable answer"
    if len(data["candidates"]) > 1:
        pairs = {(j["first"], j["second"]) for j in data["judgments"]}
        assert all((b, a) in pairs for a, b in pairs), "every pair is judged in both orders"
        assert all(j["judge"] in ("smol-judge", "gemma-judge") for j in data["judgments"])
        assert all(j["probability"] is not None and 0 < j["probability"] <= 1 for j in data["judgments"])
        assert all(j["verdict"] in ("A", "B", "U") for j in data["judgments"])
        # each judge's second call shares the system prompt and question with its first
        judge_cost = data["cost"]["phases"]["judge"]
        assert 0 < judge_cost["cached_prompt_tokens"] < judge_cost["prompt_tokens"]
    assert abs(sum(c["strength"] for c in data["candidates"]) - 1) < 1e-6
    assert data["cost"]["phases"]["answer"]["completion_tokens"] > 0
    listed = subprocess.run([sys.executable, "-m", "swarmrank", "rounds", "list", "--json"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert [r["round_id"] for r in json.loads(listed.stdout)] == [data["round_id"]]


@pytest.mark.parametrize("protocol", protocol_names())
async def test_every_protocol_runs_on_the_embedded_swarm(embedded, protocol):
    start = time.monotonic()
    result = await embedded.ask(QUESTION, protocol=protocol, save=False)
    assert time.monotonic() - start < 110
    assert result.protocol == protocol
    real = [a for a in result.answers if a.completion_tokens > 0]
    assert real, "the models really generated text"
    if result.answer is not None:
        assert result.answer in [c.answer for c in result.candidates]
        assert 0 < result.confidence <= 1
    if protocol == "peer-rank" and len(result.candidates) > 1:
        assert result.judgments and all(j.reasoning for j in result.judgments)
    if protocol == "council" and len(result.candidates) > 1:
        assert result.cost.phases["rank"].calls == 2
    if protocol in ("synthesis", "moa", "llm-council") and result.candidates:
        assert result.synthesis is not None and result.cost.phases["synthesize"].calls == 1


async def test_a_code_question_on_the_embedded_swarm_runs_every_program_in_the_sandbox(embedded):
    question = 'def double(n):\n    """Return twice n.\n    >>> double(3)\n    6\n    """'
    result = await embedded.ask(question, protocol="majority", save=False)
    assert result.task_type == "code"
    assert any(a.completion_tokens > 0 for a in result.answers)
    assert all(a.value is not None or a.excluded for a in result.answers)
    assert not any("code not run" in note for note in result.notes)


@pytest.fixture(scope="module")
def openai_server():
    path, _ = resolve_model("smollm2-135m", Settings.from_env())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "1024", "--model_alias", "smollm2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("llama-cpp-python's OpenAI-compatible server did not start")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_openai_backend_answers_and_judges_against_a_real_openai_compatible_server(openai_server):
    backend = build_openai({"base_url": openai_server, "model": "smollm2", "timeout": 60}, BuildContext())
    try:
        answer = await backend.complete(CompletionRequest(
            messages=(Message("user", "What is 2 + 3? Answer with a number."),), max_tokens=16, temperature=0.0, seed=1))
        assert answer.text.strip() and answer.completion_tokens > 0 and answer.prompt_tokens > 0
        verdict = await backend.complete(CompletionRequest(
            messages=(Message("user", "Solution A: 5\nSolution B: 7\nWhich is right for 2+3? End with 'Verdict: A' or "
                                      "'Verdict: B'."),),
            purpose="judge", max_tokens=24, temperature=0.0, seed=1, top_logprobs=5))
        assert verdict.text.strip()
        if verdict.choice_probs is not None:  # only when the reply ends on a verdict letter
            assert abs(sum(verdict.choice_probs.values()) - 1) < 1e-6
    finally:
        await backend.close()


async def test_a_swarm_mixing_an_endpoint_node_with_embedded_nodes_runs_a_round(openai_server):
    cfg = parse_config({
        "models": {"smol": {"backend": "llamacpp", "source": "smollm2-135m"}},
        "nodes": [
            {"id": "local", "model": "smol", "roles": ["answer"], "max_tokens": 32, "seed": 1},
            {"id": "remote", "backend": "openai", "base_url": openai_server, "model": "smollm2", "roles": ["answer"],
             "max_tokens": 32, "temperature": 0.9, "seed": 7},
            {"id": "judge", "model": "smol", "roles": ["judge"], "judge_max_tokens": 24},
        ],
    })
    swarm = Swarm.from_config(cfg, store=None)
    try:
        result = await swarm.ask(QUESTION, save=False)
    finally:
        await swarm.aclose_backends()
    remote = next(a for a in result.answers if a.node == "remote")
    assert remote.excluded is None or "cannot reach" not in remote.excluded
    assert remote.completion_tokens > 0


async def test_loading_two_models_at_once_leaves_stdout_where_it_was():
    # llama-cpp-python swaps fds 1 and 2 to /dev/null while loading; parallel loads once left
    # stdout on /dev/null for the rest of the process (the CLI then printed nothing).
    import asyncio

    from swarmrank.nodes.llamacpp import build as build_llamacpp

    before = os.fstat(1)
    ctx = BuildContext()
    models = [build_llamacpp({"source": s}, ctx).model for s in ("smollm2-135m", "gemma3-270m")]
    for _ in range(3):
        for m in models:
            m._llm = None
        await asyncio.gather(*(asyncio.to_thread(m.llm) for m in models))
        after = os.fstat(1)
        assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


async def test_a_timed_out_generation_is_cancelled_and_frees_the_model():
    from swarmrank.nodes.base import Node, Persona
    from swarmrank.nodes.llamacpp import build as build_llamacpp
    from swarmrank.round import RoundOptions

    backend = build_llamacpp({"source": "smollm2-135m", "n_ctx": 4096}, BuildContext())
    backend.model.llm()  # load outside the timed part
    talker = Node("talker", backend, Persona(max_tokens=2000, temperature=0.9, seed=3), frozenset({"answer"}))
    swarm = Swarm([talker], options=RoundOptions(node_timeout=0.5), store=None)
    result = await swarm.ask("Write a very long story about a dragon, then say how many words it has.",
                             protocol="majority", task_type="number", save=False)
    assert result.answers[0].excluded.startswith("timeout after 0.5s")
    start = time.monotonic()
    quick = await backend.complete(CompletionRequest(messages=(Message("user", "Say hi."),), max_tokens=4, seed=1))
    assert quick.completion_tokens > 0
    assert time.monotonic() - start < 5.0, "the cancelled generation kept the model busy"


async def test_an_eval_on_real_models_scores_every_system_and_reruns_from_the_cache(tmp_path):
    from swarmrank.eval.datasets import suite
    from swarmrank.eval.runner import run_eval
    from swarmrank.eval.summary import summarise
    from swarmrank.store import Store

    store = Store(f"sqlite:///{tmp_path / 'eval.db'}")
    cfg = load_config(None)
    for node in cfg.nodes:
        node.persona = replace(node.persona, max_tokens=min(node.persona.max_tokens, 48), judge_max_tokens=32)
    swarm = Swarm.from_config(cfg, store=store)
    items = suite("tiny")[:2]
    try:
        first = await run_eval(swarm, items, ["peer-rank"], store=store, suite="tiny[:2]")
        again = await run_eval(swarm, items, ["peer-rank"], store=store, suite="tiny[:2]")
    finally:
        await swarm.aclose_backends()
    assert first.cache.misses >= 4 * len(items)  # four real answerers per item
    assert again.cache.misses == 0
    summary = summarise(EvalRuns(store).results(first.run_id))
    systems = {s.system for s in summary.systems}
    assert {"majority", "peer-rank", "node:smol-precise", "node:gemma-precise"} <= systems
    assert all(s.accuracy.total == len(items) for s in summary.systems)
    store.close()


async def test_preset_nodes_on_a_real_llama_cpp_server_answer_json_that_matches_the_schema(openai_server):
    """The llamacpp-server preset with a concurrency cap and retries, behind swarmrank's own server,
    asked by the official client for a json_schema answer: the upstream constrains decoding to the
    schema, every candidate is validated, and the reply parses."""
    import openai

    from swarmrank.server import ServerSettings, create_app

    from helpers import Server

    cfg = parse_config({
        "models": {"srv": {"backend": "openai", "preset": "llamacpp-server", "base_url": openai_server,
                           "model": "smollm2", "max_concurrency": 1, "max_retries": 1}},
        "nodes": [{"id": "r1", "model": "srv", "roles": ["answer"], "max_tokens": 40, "seed": 1},
                  {"id": "r2", "model": "srv", "roles": ["answer"], "max_tokens": 40, "seed": 2,
                   "temperature": 0.8}],
    })
    swarm = Swarm.from_config(cfg, store=None)
    server = Server(create_app(swarm, settings=ServerSettings(auth=False)))
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    try:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=110)
        reply = client.chat.completions.create(
            model="swarmrank/majority", messages=[{"role": "user", "content": "What is 2 + 3?"}],
            response_format={"type": "json_schema", "json_schema": {"name": "sum", "schema": schema}})
    finally:
        server.stop()
    content = json.loads(reply.choices[0].message.content)
    assert isinstance(content["answer"], int)
    assert reply.usage.completion_tokens > 0
    assert reply.model_extra["swarmrank"]["calls"] == 2
