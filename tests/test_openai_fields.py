"""Every chat-completions field is honoured or refused by name (docs/server.md has the table), with the
official client where it is the point: plain, streamed and json_schema (``parse`` with a pydantic model)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from swarmrank.nodes.base import Completion, CompletionRequest, Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm

from helpers import QUESTION, ask, assert_openai_error, node, openai_client, right_and_wrong


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Recording(ScriptedBackend):
    """A scripted backend that keeps every request it was sent."""

    seen: list[CompletionRequest] = field(default_factory=list)

    async def complete(self, request: CompletionRequest) -> Completion:
        self.seen.append(request)
        return await super().complete(request)


def recorded_swarm(store: Any, answers: dict[str, str] | None = None, **backend: Any) -> tuple[Swarm, list[Recording]]:
    backends = [Recording(answers=answers or {"*": "42"}, **backend) for _ in range(2)]
    nodes = [Node(f"n{i}", b, Persona(seed=10 * i, temperature=0.2, max_tokens=64), roles=frozenset({"answer"}))
             for i, b in enumerate(backends)]
    return Swarm(nodes, store=store, name="fields"), backends


# -- refused --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "param", "code", "words"), [
    ({"foo": 1}, "foo", "unknown_parameter", "Unrecognized request argument supplied: foo"),
    ({"messages": [{"role": "user", "content": "hi", "colour": "red"}]}, "messages.0.colour", "unknown_parameter",
     "Unrecognized request argument"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"}, "tools",
     "unsupported_parameter", "tools are not supported"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "unsupported_parameter", "tools"),
    ({"tool_choice": "required"}, "tool_choice", "unsupported_parameter", "no tool calling"),
    ({"functions": [{"name": "f"}]}, "functions", "unsupported_parameter", "function calling"),
    ({"logprobs": True}, "logprobs", "unsupported_parameter", "log-probabilities"),
    ({"top_logprobs": 3}, "top_logprobs", "unsupported_parameter", "top_logprobs"),
    ({"logit_bias": {"50256": -100}}, "logit_bias", "unsupported_parameter", "logit_bias"),
    ({"max_tokens": -1}, "max_tokens", "invalid_value", "greater than or equal to 1"),
    ({"max_tokens": 0}, "max_tokens", "invalid_value", "greater than or equal to 1"),
    ({"max_completion_tokens": -5}, "max_completion_tokens", "invalid_value", "greater than or equal to 1"),
    ({"temperature": 5}, "temperature", "invalid_value", "less than or equal to 2"),
    ({"top_p": 1.5}, "top_p", "invalid_value", "less than or equal to 1"),
    ({"presence_penalty": 3}, "presence_penalty", "invalid_value", "less than or equal to 2"),
    ({"seed": "x"}, "seed", "invalid_value", "integer"),
    # a boolean is not a number (true is not 1) and a string is not a boolean
    ({"max_tokens": True}, "max_tokens", "invalid_value", "valid integer"),
    ({"max_completion_tokens": False}, "max_completion_tokens", "invalid_value", "valid integer"),
    ({"n": True}, "n", "invalid_value", "valid integer"),
    ({"seed": True}, "seed", "invalid_value", "valid integer"),
    ({"max_tokens": 5.0}, "max_tokens", "invalid_value", "valid integer"),
    ({"temperature": True}, "temperature", "invalid_value", "valid number"),
    ({"top_p": "0.5"}, "top_p", "invalid_value", "valid number"),
    ({"store": "no"}, "store", "invalid_value", "valid boolean"),
    ({"logprobs": 0}, "logprobs", "invalid_value", "valid boolean"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "invalid_value", "at most 4"),
    ({"response_format": {"type": "xml"}}, "response_format.type", "invalid_value", "json_schema"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "invalid_value", "needs a"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}}},
     "response_format.json_schema.schema", "invalid_value", "invalid JSON Schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}}}},
     "response_format.json_schema.schema", "invalid_value", "does not resolve inside the schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"allOf": [{"$ref": "#"}]}}}},
     "response_format.json_schema.schema", "invalid_value", "refers to itself without end"),
    ({"modalities": ["text", "audio"]}, "modalities", "unsupported_parameter", "text"),
    ({"audio": {"voice": "alloy", "format": "wav"}}, "audio", "unsupported_parameter", "audio"),
    ({"reasoning_effort": "high"}, "reasoning_effort", "unsupported_parameter", "reasoning_effort"),
    ({"service_tier": "flex"}, "service_tier", "unsupported_parameter", "one tier"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
                   {"role": "user", "content": "hi"}]}, "messages.0.tool_calls", "unsupported_parameter", "tool"),
])
def test_a_field_that_cannot_be_honoured_is_refused_with_a_400_naming_it(api, store, key, extra, param, code, words):
    http = api(right_and_wrong(store), store=store)
    response = http.post("/v1/chat/completions", json={**ask(), **extra}, headers=headers(key))
    error = assert_openai_error(response, 400, code=code)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"]


def test_the_official_client_raises_bad_request_for_an_unknown_field(api, store, key):
    http = api(right_and_wrong(store), store=store)
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument supplied: colour"):
        openai_client(http, key).chat.completions.create(model="swarmrank", messages=[{"role": "user", "content": "hi"}],
                                                         extra_body={"colour": "red"})


@pytest.mark.parametrize("extra", [
    {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"},
    {"tool_choice": "auto"}, {"logprobs": False}, {"logit_bias": {}}, {"n": 1}, {"user": "u-1"},
    {"metadata": {"team": "a"}}, {"service_tier": "auto"}, {"modalities": ["text"]}, {"prompt_cache_key": "k"},
    {"parallel_tool_calls": True}, {"stream": False}, {"response_format": {"type": "text"}},
])
def test_fields_with_nothing_to_refuse_are_accepted(api, store, key, extra):
    http = api(right_and_wrong(store), store=store)
    response = http.post("/v1/chat/completions", json={**ask(), **extra}, headers=headers(key))
    assert response.status_code == 200, response.text


# -- honoured -------------------------------------------------------------------------------------


def test_sampling_fields_reach_every_answering_node_and_judges_keep_their_own(api, store, key):
    swarm, backends = recorded_swarm(store, answers={"*": "42"})
    judge = Recording(judge="truth", truth="42")
    swarm.nodes.append(Node("j", judge, Persona(), roles=frozenset({"judge"})))
    backends[1].answers = {"*": "41"}
    http = api(swarm, store=store)
    response = http.post("/v1/chat/completions", headers=headers(key), json={
        **ask(), "temperature": 0.7, "top_p": 0.5, "seed": 11, "presence_penalty": 0.5, "frequency_penalty": -0.5,
        "max_completion_tokens": 40, "stop": "###"})
    assert response.status_code == 200, response.text
    for i, backend in enumerate(backends):
        (request,) = [r for r in backend.seen if r.purpose == "answer"]
        assert (request.temperature, request.top_p, request.seed) == (0.7, 0.5, 11 + 10 * i)
        assert (request.presence_penalty, request.frequency_penalty) == (0.5, -0.5)
        assert request.max_tokens == 40 and request.stop == ("###",)
    judged = [r for r in judge.seen if r.purpose == "judge"]
    assert judged and all(r.temperature == 0.3 and r.top_p is None and r.stop == () for r in judged)


def test_without_sampling_fields_each_persona_keeps_its_own(api, store, key):
    swarm, backends = recorded_swarm(store)
    http = api(swarm, store=store)
    assert http.post("/v1/chat/completions", headers=headers(key), json=ask()).status_code == 200
    (request,) = [r for r in backends[1].seen if r.purpose == "answer"]
    assert (request.temperature, request.max_tokens, request.seed, request.top_p) == (0.2, 64, 10, None)


def test_max_tokens_bounds_the_message_and_finish_reason_says_length(api, store, key):
    swarm, _ = recorded_swarm(store)
    http = api(swarm, store=store)
    body = {**ask(content="Say something."), "max_tokens": 3, "swarmrank": {"task_type": "free"}}
    reply = http.post("/v1/chat/completions", headers=headers(key), json=body).json()
    message = reply["choices"][0]["message"]["content"]
    assert message == "Let me think." and len(message.split()) <= 3
    assert reply["choices"][0]["finish_reason"] == "length"
    full = http.post("/v1/chat/completions", headers=headers(key), json={**body, "max_tokens": 50}).json()
    assert full["choices"][0]["finish_reason"] == "stop"
    assert full["choices"][0]["message"]["content"] == "Let me think. The answer is 42."


def test_max_tokens_too_small_for_an_answer_red_flags_every_node_and_says_why(api, store, key):
    swarm, _ = recorded_swarm(store)
    http = api(swarm, store=store)
    response = http.post("/v1/chat/completions", headers=headers(key), json={**ask(), "max_tokens": 2})
    error = assert_openai_error(response, 502, code="no_usable_answer")
    assert "over-long: cut off before giving an answer" in error["message"]


def test_stop_cuts_the_returned_message(api, store, key):
    swarm, _ = recorded_swarm(store)
    http = api(swarm, store=store)
    reply = http.post("/v1/chat/completions", headers=headers(key), json={**ask(), "stop": ["answer is"]}).json()
    assert reply["choices"][0]["message"]["content"] == "Let me think. The "
    assert reply["choices"][0]["finish_reason"] == "stop"


def synthesising_swarm(store: Any) -> Swarm:
    """Two answerers of 7 words ("Let me think. The answer is 42.") whose synthesis has 9."""
    nodes = [node(f"a{i}", {"answer"}, answers={"*": "42"}) for i in range(2)]
    return Swarm(nodes, options=RoundOptions(synthesize=True, embeddings="none"), store=store, name="synth")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_synthesis_cut_off_by_max_tokens_says_length(api, store, key, stream):
    http = api(synthesising_swarm(store), store=store)
    body = {**ask(content="Say something."), "max_tokens": 8, "swarmrank": {"task_type": "free"}}
    if not stream:
        reply = http.post("/v1/chat/completions", headers=headers(key), json=body).json()
        message, finish = reply["choices"][0]["message"]["content"], reply["choices"][0]["finish_reason"]
    else:
        extension = body.pop("swarmrank")
        chunks = list(openai_client(http, key).chat.completions.create(**body, stream=True,
                                                                       extra_body={"swarmrank": extension}))
        body["swarmrank"] = extension
        message = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
    assert message == "Having read the other answers, the answer is"  # the synthesis, its 8 words
    assert finish == "length"
    round_id = http.get("/v1/rounds?limit=1", headers=headers(key)).json()["data"][0]["round_id"]
    stored = http.get(f"/v1/rounds/{round_id}", headers=headers(key)).json()
    assert stored["synthesis"]["finish_reason"] == "length"
    assert {a["finish_reason"] for a in stored["answers"]} == {"stop"}  # the answers themselves fit
    whole = http.post("/v1/chat/completions", headers=headers(key), json={**body, "max_tokens": 20}).json()
    assert whole["choices"][0]["finish_reason"] == "stop"


# -- response_format references are never fetched ---------------------------------------------------


@pytest.fixture
def listener() -> Any:
    """A local HTTP server that records every request it gets (and answers a schema)."""
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = b'{"type": "integer"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("where", ["http", "file", "file-pointer", "relative-to-id"])
def test_a_schema_reference_outside_the_schema_is_refused_and_never_fetched(api, store, key, listener, tmp_path,
                                                                          where):
    url, hits = listener
    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "integer", "description": "TOPSECRET-7f3a"}')
    ref = {"http": f"{url}/probe", "file": secret.as_uri(), "file-pointer": f"{secret.as_uri()}#/description",
           "relative-to-id": "probe"}[where]
    schema: dict[str, Any] = {"type": "object", "properties": {"name": {"$ref": ref}}}
    if where == "relative-to-id":
        schema["$id"] = f"{url}/root.json"
    http = api(json_swarm(store, ['{"name": "Ada"}'] * 2), store=store)
    body = {**ask(), "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}}
    response = http.post("/v1/chat/completions", headers=headers(key), json=body)
    error = assert_openai_error(response, 400, code="invalid_value")
    assert error["param"] == "response_format.json_schema.schema"
    assert "does not resolve inside the schema" in error["message"] and "nothing is fetched" in error["message"]
    assert "TOPSECRET" not in response.text
    assert hits == []
    assert http.get("/v1/rounds", headers=headers(key)).json()["data"] == []  # refused before any round


def test_a_schema_with_local_references_is_honoured(api, store, key):
    class Pet(BaseModel):
        name: str

    class Owner(BaseModel):
        name: str
        pets: list[Pet]

    schema = Owner.model_json_schema()
    assert schema["properties"]["pets"]["items"] == {"$ref": "#/$defs/Pet"}
    good, bad = '{"name": "Ada", "pets": [{"name": "Rex"}]}', '{"name": "Ada", "pets": [{"nom": "Rex"}]}'
    http = api(json_swarm(store, [good, good, bad]), store=store)
    body = {**ask(model="majority"),
            "response_format": {"type": "json_schema", "json_schema": {"name": "owner", "schema": schema}}}
    reply = http.post("/v1/chat/completions", headers=headers(key), json=body).json()
    assert json.loads(reply["choices"][0]["message"]["content"]) == json.loads(good)
    stored = http.get(reply["swarmrank"]["round_url"], headers=headers(key)).json()
    assert "'name' is a required property (at /pets/0)" in stored["answers"][2]["excluded"]


def test_store_false_runs_the_round_without_saving_it(api, store, key):
    http = api(right_and_wrong(store), store=store)
    reply = http.post("/v1/chat/completions", headers=headers(key), json={**ask(), "store": False}).json()
    assert reply["swarmrank"]["stored"] is False
    assert http.get(reply["swarmrank"]["round_url"], headers=headers(key)).status_code == 404
    kept = http.post("/v1/chat/completions", headers=headers(key), json=ask()).json()
    assert http.get(kept["swarmrank"]["round_url"], headers=headers(key)).status_code == 200


# -- JSON ---------------------------------------------------------------------------------------------


class Person(BaseModel):
    name: str
    age: int


def json_swarm(store: Any, answers: list[str], judges: bool = True) -> Swarm:
    nodes = [node(f"a{i}", {"answer"}, answers={"*": text}) for i, text in enumerate(answers)]
    if judges:
        nodes.append(node("judge", {"judge"}, judge="first"))
    return Swarm(nodes, options=RoundOptions(), store=store, name="json")


def test_json_schema_with_the_official_client_parse_returns_a_valid_object(api, store, key):
    valid = '{"name": "Ada", "age": 36}'
    http = api(json_swarm(store, [valid, '{"name": "Ada"}', "Ada is 36", valid]), store=store)
    completion = openai_client(http, key).chat.completions.parse(
        model="swarmrank/majority", messages=[{"role": "user", "content": "Who wrote the first program?"}],
        response_format=Person)
    assert completion.choices[0].message.parsed == Person(name="Ada", age=36)
    assert completion.choices[0].finish_reason == "stop"
    extra = completion.model_extra["swarmrank"]
    stored = http.get(extra["round_url"], headers=headers(key)).json()
    assert stored["task_type"] == "json"
    excluded = {a["node"]: a["excluded"] for a in stored["answers"]}
    assert excluded["a0"] is None and excluded["a3"] is None
    assert "does not match the JSON Schema" in excluded["a1"] and "'age' is a required property" in excluded["a1"]
    assert excluded["a2"].startswith("invalid JSON")


def test_nodes_are_asked_for_json_and_given_the_schema(api, store, key):
    swarm, backends = recorded_swarm(store, answers={"*": '{"name": "Ada", "age": 36}'})
    http = api(swarm, store=store)
    schema = Person.model_json_schema()
    body = {**ask(), "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}}
    assert http.post("/v1/chat/completions", headers=headers(key), json=body).status_code == 200
    (request,) = [r for r in backends[0].seen if r.purpose == "answer"]
    assert request.response_format == "json" and request.json_schema == schema
    assert "JSON Schema" in request.messages[-1].content and '"age"' in request.messages[-1].content


def test_json_object_returns_the_object_even_when_a_node_wraps_it_in_prose(api, store, key):
    http = api(json_swarm(store, ['Sure! Here it is: {"a": [1, 2]} Enjoy.', '```json\n{"a": [1, 2]}\n```']),
               store=store)
    reply = http.post("/v1/chat/completions", headers=headers(key), json={
        **ask(model="majority"), "response_format": {"type": "json_object"}}).json()
    assert json.loads(reply["choices"][0]["message"]["content"]) == {"a": [1, 2]}
    assert reply["swarmrank"]["candidates"][0]["supporters"] == ["a0", "a1"]  # the same object, compared as JSON


def test_when_no_candidate_matches_the_schema_the_answer_is_an_error_not_prose(api, store, key):
    http = api(json_swarm(store, ['{"name": "Ada"}', "forty-two", "[1, 2]"]), store=store)
    body = {**ask(), "response_format": {"type": "json_schema",
                                         "json_schema": {"name": "p", "schema": Person.model_json_schema()}}}
    error = assert_openai_error(http.post("/v1/chat/completions", headers=headers(key), json=body), 502,
                                code="no_usable_answer")
    assert "does not match the JSON Schema" in error["message"] and "array, not an object" in error["message"]


def test_json_streams_as_valid_json_content(api, store, key):
    http = api(json_swarm(store, ['{"name": "Ada", "age": 36}'] * 2), store=store)
    stream = openai_client(http, key).chat.completions.create(
        model="swarmrank", messages=[{"role": "user", "content": QUESTION}], stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": Person.model_json_schema()}})
    content = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert Person.model_validate_json(content) == Person(name="Ada", age=36)


# -- rounds in flight -------------------------------------------------------------------------------------


async def test_rounds_beyond_the_cap_queue_then_get_429_with_retry_after(start, store, key):
    import asyncio

    import httpx

    url = start(right_and_wrong(store, latency=0.4), store=store, max_rounds=1, max_queued=1)
    async with httpx.AsyncClient(base_url=url, headers=headers(key), timeout=30) as client:
        async def streamed() -> list[str]:
            lines = []
            async with client.stream("POST", "/v1/chat/completions", json={**ask(), "stream": True}) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        delta = (json.loads(line[6:]).get("choices") or [{}])[0].get("delta", {})
                        lines.append(delta.get("reasoning_content") or "")
            return lines

        first = asyncio.create_task(client.post("/v1/chat/completions", json=ask()))
        await asyncio.sleep(0.2)  # the first round is running
        second = asyncio.create_task(streamed())  # waits its turn
        await asyncio.sleep(0.2)
        third = await client.post("/v1/chat/completions", json=ask())  # nothing left: refused at once
        error = assert_openai_error(third, 429, code="too_many_rounds")
        assert "1 round(s) running and 1 waiting" in error["message"]
        assert int(third.headers["retry-after"]) >= 1
        assert (await first).status_code == 200
        lines = await second
        assert "waiting for a free slot: 1 round(s) ahead\n" in lines
    # with the queue drained, a new request runs
    again = httpx.post(f"{url}/v1/chat/completions", json=ask(), headers=headers(key), timeout=30)
    assert again.status_code == 200
