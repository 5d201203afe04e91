"""The OpenAI-compatible server with the official client and scripted swarms: in process (TestClient)
where the HTTP exchange is the point, on a real socket (uvicorn) where timing, concurrency or a
client going away is."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from swarmrank.protocols import protocol_names
from swarmrank.server import create_key
from swarmrank.server.keys import list_keys
from swarmrank.store import Store
from swarmrank.swarm import Swarm

from helpers import (
    QUESTION,
    RIGHT_TEXT,
    ask,
    assert_openai_error,
    free_port,
    node,
    right_and_wrong,
    run_cli,
)
from helpers import openai_client as client


def broken(store: Store | None) -> Swarm:
    nodes = [node(f"dead{i}", {"answer", "judge"}, fault="crash") for i in range(2)]
    return Swarm(nodes, name="broken", store=store)


@pytest.fixture
def http(api, store) -> TestClient:
    """The right-and-wrong swarm's server, in process."""
    return api(right_and_wrong(store), store=store)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- chat completions -----------------------------------------------------------------------------


def test_the_sync_client_gets_the_consensus_answer_and_the_round_behind_it(http, key):
    resp = client(http, key).chat.completions.create(model="swarmrank", messages=[{"role": "user", "content": QUESTION}])
    assert resp.object == "chat.completion"
    assert resp.model == "swarmrank/peer-rank"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == RIGHT_TEXT
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens > 0
    extra = resp.model_extra["swarmrank"]  # the client keeps the unknown field and validates the rest
    assert extra == resp.to_dict()["swarmrank"]
    assert extra["answer"] == "42" and extra["protocol"] == "peer-rank" and extra["stored"] is True
    assert [(c["answer"], c["supporters"]) for c in extra["candidates"]] == [("42", ["right"]),
                                                                             ("41", ["wrong1", "wrong2"])]
    assert extra["confidence"] == extra["candidates"][0]["strength"] > 0.5
    assert extra["calls"] == 5  # three answers and the pair judged in both orders

    stored = http.get(f"/v1/rounds/{extra['round_id'][:8]}", headers={"Authorization": f"Bearer {key}"})
    assert stored.status_code == 200
    data = stored.json()
    assert data["round_id"] == extra["round_id"] and data["question"] == QUESTION and data["answer"] == "42"
    assert {a["node"] for a in data["answers"]} == {"right", "wrong1", "wrong2"}
    assert len(data["judgments"]) == 2
    assert data["cost"]["phases"]["answer"]["prompt_tokens"] + data["cost"]["phases"]["judge"]["prompt_tokens"] == \
        resp.usage.prompt_tokens


@pytest.mark.parametrize("model,protocol,answer", [
    ("swarmrank", "peer-rank", "42"),
    ("swarmrank/majority", "majority", "41"),
    ("majority", "majority", "41"),
    ("swarmrank/council", "council", "42"),
])
def test_the_model_names_the_protocol(http, key, model, protocol, answer):
    resp = client(http, key).chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}])
    assert resp.model == f"swarmrank/{protocol}"
    assert resp.model_extra["swarmrank"]["protocol"] == protocol
    assert resp.model_extra["swarmrank"]["answer"] == answer


def test_extra_body_asks_for_the_bare_answer(http, key):
    resp = client(http, key).chat.completions.create(model="swarmrank", messages=[{"role": "user", "content": QUESTION}],
                                                    extra_body={"swarmrank": {"content": "answer"}})
    assert resp.choices[0].message.content == "42"


def test_system_messages_and_earlier_turns_are_put_before_the_question(http, key):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi! Ask me a sum."},
                {"role": "user", "content": [{"type": "text", "text": QUESTION}]}]
    resp = client(http, key).chat.completions.create(model="swarmrank", messages=messages)
    stored = http.get(f"/v1/rounds/{resp.model_extra['swarmrank']['round_id']}",
                       headers={"Authorization": f"Bearer {key}"}).json()
    assert stored["question"] == ("Be brief.\n\nEarlier in this conversation:\nUser: Hello\n"
                                  f"Assistant: Hi! Ask me a sum.\n\nQuestion: {QUESTION}")
    assert stored["task_type"] == "number"  # guessed from the last message alone


async def test_the_async_client_runs_rounds_concurrently_without_blocking_the_server(start, store, key):
    url = start(right_and_wrong(store, latency=0.4), store=store)
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as aclient:
        began = time.monotonic()
        replies = await asyncio.gather(*(aclient.chat.completions.create(
            model="swarmrank", messages=[{"role": "user", "content": QUESTION}]) for _ in range(4)))
        elapsed = time.monotonic() - began
        async with httpx.AsyncClient() as http:
            health = await http.get(f"{url}/healthz")
    assert [r.choices[0].message.content for r in replies] == [RIGHT_TEXT] * 4
    assert len({r.model_extra["swarmrank"]["round_id"] for r in replies}) == 4
    assert elapsed < 2.4, f"4 rounds of ~0.8 s each took {elapsed:.1f}s: they ran one after another"
    assert health.json()["status"] == "ok"


def test_streaming_sends_progress_then_the_answer_then_stop(http, key):
    stream = client(http, key).chat.completions.create(
        model="swarmrank", messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    with_choices = [c for c in chunks if c.choices]
    assert all(c.object == "chat.completion.chunk" and c.model == "swarmrank/peer-rank" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == RIGHT_TEXT
    assert with_choices[0].choices[0].delta.role == "assistant"
    assert with_choices[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    progress = [c.model_extra["swarmrank"]["progress"] for c in with_choices
                if c.model_extra and "progress" in c.model_extra.get("swarmrank", {})]
    assert {p["event"] for p in progress} == {"start", "phase", "call", "answer", "judgment", "note", "decided"}
    assert {p["node"] for p in progress if p["event"] == "answer"} == {"right", "wrong1", "wrong2"}
    progress_chunks = [c for c in with_choices if "progress" in (c.model_extra or {}).get("swarmrank", {})]
    assert all(c.choices[0].delta.content is None for c in progress_chunks)  # printing delta.content shows nothing
    # every progress event is a line of text in reasoning_content, which chat UIs show while the round runs
    lines = [c.choices[0].delta.model_extra.get("reasoning_content") for c in progress_chunks]
    assert all(line and line.endswith("\n") for line in lines)
    assert "right answered 42\n" in lines and "decided: 42 (confidence" in lines[-1]
    assert any(line.startswith("judge1 compared #0 (42) with #1 (41): prefers #0") for line in lines)
    # the answer follows the decision at once, before the last chunk
    decided = next(i for i, c in enumerate(with_choices) if c in progress_chunks and
                   c.model_extra["swarmrank"]["progress"]["event"] == "decided")
    assert with_choices[decided + 1].choices[0].delta.content
    result = with_choices[-1].model_extra["swarmrank"]["result"]
    assert result["answer"] == "42"
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage is not None and usage.usage.total_tokens > 0
    stored = http.get(f"/v1/rounds/{result['round_id']}", headers={"Authorization": f"Bearer {key}"})
    assert stored.json()["answer"] == "42"


def test_long_answers_stream_in_several_pieces_that_join_back_exactly(api, store, key):
    text = "The answer, after a long and careful look at every digit involved, is 42."
    swarm = Swarm([node("talker", {"answer"}, answers={"*": "42"})], store=store)
    swarm.nodes[0].backend._answer = lambda request, rng: text  # type: ignore[method-assign]
    http = api(swarm, store=store, chunk_chars=16)
    chunks = list(client(http, key).chat.completions.create(
        model="majority", messages=[{"role": "user", "content": QUESTION}], stream=True))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 4 and "".join(pieces) == text


def test_a_slow_round_keeps_the_stream_alive_with_comments_the_client_ignores(start, store, key):
    url = start(right_and_wrong(store, latency=0.3), store=store, keepalive_seconds=0.1)
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**ask(), "stream": True},
                      headers={"Authorization": f"Bearer {key}"}) as raw:
        lines = list(raw.iter_lines())
    assert ": keep-alive" in lines
    assert [line for line in lines if line][-1] == "data: [DONE]"
    chunks = list(client(url, key).chat.completions.create(
        model="swarmrank", messages=[{"role": "user", "content": QUESTION}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == RIGHT_TEXT


def test_closing_a_stream_stops_its_round(start, store, key):
    url = start(right_and_wrong(store, latency=0.5), store=store)
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**ask(), "stream": True},
                      headers={"Authorization": f"Bearer {key}"}) as raw:
        first = next(raw.iter_lines())
    assert first.startswith("data: ")
    time.sleep(1.8)  # a finished round (0.5 s answering + 0.5 s judging) would be stored by now
    assert store.count_rounds() == 0
    client(url, key).chat.completions.create(model="swarmrank", messages=[{"role": "user", "content": QUESTION}])
    assert store.count_rounds() == 1


# -- models, rounds, health, OpenAPI -------------------------------------------------------------


def test_models_lists_one_model_per_protocol_and_the_default(http, key):
    listed = client(http, key).models.list()
    ids = [m.id for m in listed.data]
    assert ids == ["swarmrank"] + [f"swarmrank/{p}" for p in protocol_names()]
    assert all(m.object == "model" and m.owned_by == "swarmrank" for m in listed.data)
    assert client(http, key).models.retrieve("majority").id == "swarmrank/majority"


def test_unknown_model_is_a_not_found_error_in_openai_shape(http, key):
    with pytest.raises(openai.NotFoundError) as caught:
        client(http, key).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    assert "gpt-4o" in caught.value.message and "swarmrank/<protocol>" in caught.value.message


def test_unknown_round_is_404_and_healthz_needs_no_key(http, key):
    missing = http.get("/v1/rounds/ffffffffffff", headers={"Authorization": f"Bearer {key}"})
    error = assert_openai_error(missing, 404, code="round_not_found")
    assert "sqlite" not in error["message"]  # the database's location stays on the server
    health = http.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "swarm": "server-test", "nodes": 4, "default_protocol": "peer-rank",
                             "auth": True}


def test_the_openapi_spec_describes_requests_responses_and_errors(http):
    spec = http.get("/openapi.json").json()
    assert set(spec["paths"]) >= {"/v1/chat/completions", "/v1/models", "/v1/rounds/{round_id}", "/healthz"}
    post = spec["paths"]["/v1/chat/completions"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChatCompletionRequest")
    ok = post["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"].endswith("/ChatCompletion")
    assert ok["text/event-stream"]["schema"]["$ref"].endswith("/ChatCompletionChunk")
    assert {"400", "401", "404", "413", "429", "502", "504"} <= set(post["responses"])
    assert "422" not in post["responses"]  # invalid requests are answered 400, as OpenAI does
    schemas = spec["components"]["schemas"]
    assert {"ChatCompletionChunk", "ErrorResponse", "RoundResult", "SwarmrankInfo", "ModelList"} <= set(schemas)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# -- auth and limits ------------------------------------------------------------------------------


def test_a_wrong_or_missing_key_is_refused(http, key):
    with pytest.raises(openai.AuthenticationError) as caught:
        client(http, "sr-not-a-real-key").chat.completions.create(model="swarmrank",
                                                                 messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.code == "invalid_api_key"
    assert_openai_error(http.post("/v1/chat/completions", json=ask()), 401, code="invalid_api_key")
    assert_openai_error(http.get("/v1/models", headers={"Authorization": "Basic abc"}), 401)
    assert_openai_error(http.get("/v1/rounds/abcd"), 401)


def test_the_rate_limit_is_per_key_and_says_when_to_retry(api, store, key):
    http = api(right_and_wrong(store), store=store, rate_limit=2)
    limited = client(http, key)
    limited.models.list()
    limited.models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        limited.models.list()
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 30
    assert caught.value.code == "rate_limit_exceeded"
    other = create_key(store, "other")[0]
    assert client(http, other).models.list().data  # another key has its own bucket


def test_without_auth_any_caller_is_served(api):
    http = api(right_and_wrong(None), auth=False)
    resp = client(http, "anything").chat.completions.create(model="majority",
                                                           messages=[{"role": "user", "content": QUESTION}])
    assert resp.model_extra["swarmrank"]["answer"] == "41"
    assert resp.model_extra["swarmrank"]["stored"] is False
    assert_openai_error(http.get(f"/v1/rounds/{resp.model_extra['swarmrank']['round_id']}"), 404)


def test_an_oversized_body_is_413_whether_declared_or_streamed(api, store, key):
    http = api(right_and_wrong(store), store=store, max_body_bytes=4096)
    headers = {"Authorization": f"Bearer {key}"}
    big = json.dumps(ask(content="x" * 5000)).encode()
    assert_openai_error(http.post("/v1/chat/completions", content=big, headers=headers), 413,
                        code="request_too_large")
    chunked = http.post("/v1/chat/completions", content=iter([big[:3000], big[3000:]]), headers=headers)
    assert "content-length" not in chunked.request.headers
    assert_openai_error(chunked, 413, code="request_too_large")
    small = http.post("/v1/chat/completions", json=ask(), headers=headers)
    assert small.status_code == 200


@pytest.mark.parametrize("body,param,words", [
    (b'{"model": "swarmrank", "messages": [', None, "not valid JSON"),
    (b'{"model": "swarmrank", "messages": "What is 40 + 2?"}', "messages", "valid list"),
    (b'{"model": 7, "messages": [{"role": "user", "content": "hi"}]}', "model", "valid string"),
    (b'{"model": "swarmrank", "messages": [{"role": "robot", "content": "hi"}]}', "messages.0.role", "robot"),
    (b'{"model": "swarmrank", "n": 2, "messages": [{"role": "user", "content": "hi"}]}', "n",
     "less than or equal to 1"),
    (b'{"model": "swarmrank", "messages": [{"role": "assistant", "content": "hi"}]}', "messages.0.role",
     "must have role 'user'"),
    (b'{"model": "swarmrank", "messages": [{"role": "user", "content": "   "}]}', None, "question is empty"),
    (b'{"model": "swarmrank", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
     "messages.0.content", "only text content"),
])
def test_bad_requests_are_400_in_openai_shape(http, key, body, param, words):
    response = http.post("/v1/chat/completions", content=body,
                          headers={"Authorization": f"Bearer {key}", "content-type": "application/json"})
    error = assert_openai_error(response, 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"]


# -- failures -------------------------------------------------------------------------------------


def test_a_round_with_no_usable_answer_is_a_clear_502_and_is_not_retried(api, store, key):
    http = api(broken(store), store=store)
    with pytest.raises(openai.InternalServerError) as caught:
        client(http, key, max_retries=2).chat.completions.create(model="swarmrank",
                                                                messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.status_code == 502
    assert caught.value.code == "no_usable_answer"
    assert "no node produced a usable answer" in caught.value.message
    assert "error: scripted crash" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert store.count_rounds() == 1  # the failed round is stored once, not rerun by the client's retries


def test_a_round_that_fails_mid_stream_ends_with_an_error_event_then_done(api, store, key):
    http = api(broken(store), store=store)
    seen = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client(http, key).chat.completions.create(
                model="swarmrank", messages=[{"role": "user", "content": QUESTION}], stream=True):
            seen.append(chunk)
    assert "no node produced a usable answer" in caught.value.message
    assert caught.value.body["code"] == "no_usable_answer"
    assert seen and all(not (c.choices and c.choices[0].delta.content) for c in seen)
    with http.stream("POST", "/v1/chat/completions", json={**ask(), "stream": True},
                      headers={"Authorization": f"Bearer {key}"}) as raw:
        assert raw.status_code == 200
        events = [line for line in raw.iter_lines() if line.startswith("data: ")]
    assert json.loads(events[-2].removeprefix("data: "))["error"]["type"] == "server_error"
    assert events[-1] == "data: [DONE]"


def test_a_round_past_the_request_timeout_is_504(api, store, key):
    http = api(right_and_wrong(store, latency=5.0), store=store, request_timeout=0.3)
    began = time.monotonic()
    response = http.post("/v1/chat/completions", json=ask(), headers={"Authorization": f"Bearer {key}"})
    error = assert_openai_error(response, 504, code="request_timeout")
    assert "request timeout of 0.3s" in error["message"]
    assert time.monotonic() - began < 3


# -- the CLI: keys and serve ----------------------------------------------------------------------

SCRIPTED = """
[swarm]
name = "cli-served"
[[nodes]]
id = "right"
backend = "scripted"
answer = "42"
roles = ["answer"]
[[nodes]]
id = "wrong"
backend = "scripted"
answer = "41"
roles = ["answer"]
[[nodes]]
id = "judge1"
backend = "scripted"
judge = "truth"
truth = "42"
roles = ["judge"]
"""


def test_keys_from_the_cli_open_the_served_swarm_until_revoked(tmp_path, isolated_home):
    config = tmp_path / "swarm.toml"
    config.write_text(SCRIPTED)
    created = run_cli("keys", "create", "alice", "--config", str(config), home=isolated_home)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("sr-") and len(key) > 40 and "shown only this once" in created.stderr
    listed = json.loads(run_cli("keys", "list", "--json", "--config", str(config), home=isolated_home).stdout)
    assert [(k["name"], k["prefix"], k["revoked_at"]) for k in listed] == [("alice", key[:7], None)]
    assert key.encode() not in (isolated_home / "swarmrank.db").read_bytes()  # only the hash is stored
    again = run_cli("keys", "create", "alice", home=isolated_home)
    assert again.returncode == 1 and "an active API key named 'alice' exists" in again.stderr

    port = free_port()
    env = {**os.environ, "SWARMRANK_HOME": str(isolated_home)}
    env.pop("SWARMRANK_DB", None)
    server = subprocess.Popen([sys.executable, "-m", "swarmrank", "serve", "--config", str(config),
                               "--port", str(port), "--log-level", "warning"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "swarmrank serve did not come up"
            time.sleep(0.1)
        resp = client(url, key).chat.completions.create(model="swarmrank",
                                                        messages=[{"role": "user", "content": QUESTION}])
        assert resp.choices[0].message.content == RIGHT_TEXT
        revoked = run_cli("keys", "revoke", "alice", home=isolated_home)
        assert revoked.returncode == 0 and "revoked API key 'alice'" in revoked.stderr
        with pytest.raises(openai.AuthenticationError):
            client(url, key).models.list()
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=20)
    assert "serving swarm 'cli-served' (3 nodes, default protocol peer-rank)" in stderr
    assert "Traceback" not in stderr
    with Store(f"sqlite:///{isolated_home / 'swarmrank.db'}") as db:  # where `swarmrank rounds` reads
        assert db.get_round(resp.model_extra["swarmrank"]["round_id"]).answer == "42"
        assert [k["revoked_at"] is not None for k in list_keys(db)] == [True]


def test_serve_without_auth_warns_and_bad_options_fail_in_one_line(tmp_path, isolated_home):
    config = tmp_path / "swarm.toml"
    config.write_text(SCRIPTED)
    bad = run_cli("keys", "create", "no spaces", home=isolated_home)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        "error: bad API key name 'no spaces': use 1-100 letters, digits, '.', '_', '@' or '-'"]
    port = free_port()
    env = {**os.environ, "SWARMRANK_HOME": str(isolated_home)}
    server = subprocess.Popen([sys.executable, "-m", "swarmrank", "serve", "--config", str(config), "--no-auth",
                               "--host", "0.0.0.0", "--port", str(port), "--log-level", "warning"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "swarmrank serve did not come up"
                time.sleep(0.1)
        assert health.json()["auth"] is False
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=20)
    assert "warning: authentication is off (--no-auth) and 0.0.0.0 is not a loopback address" in stderr


# -- the real embedded models -------------------------------------------------------------------


@pytest.mark.model
def test_the_embedded_swarm_streams_a_real_answer_through_the_official_client(start, store, key):
    from dataclasses import replace

    from swarmrank.config import load_config

    cfg = load_config(None)
    for section in cfg.nodes:
        section.persona = replace(section.persona, max_tokens=min(section.persona.max_tokens, 48))
    swarm = Swarm.from_config(cfg, store=store)
    swarm.options = replace(swarm.options, deadline=100.0)
    url = start(swarm, store=store)
    chunks = list(client(url, key, timeout=110).chat.completions.create(
        model="majority", messages=[{"role": "user", "content": "What is 2 + 3?"}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    result = chunks[-1].model_extra["swarmrank"]["result"]
    assert text.strip() and chunks[-1].choices[0].finish_reason == "stop"
    stored = store.get_round(result["round_id"])
    assert {a.node for a in stored.answers} == {"smol-precise", "smol-stepwise", "gemma-precise", "gemma-creative"}
    assert stored.answer_text == text and stored.answer == result["answer"]
