"""Bad input against the live server over HTTP: schemathesis fuzzing from the server's own OpenAPI
spec, then hand-made malformed requests. Whatever arrives, the answer is a 2xx or a 4xx in the
documented shape (OpenAI's ``{"error": {...}}`` for errors) — never a 5xx, never a traceback.

The fuzzing runs every operation in the spec, with a valid API key and without one, in
schemathesis's positive and negative modes, with a bounded number of examples (``FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from swarmrank.round import RoundOptions
from swarmrank.server import ServerSettings, create_app, create_key
from swarmrank.server.keys import revoke_key
from swarmrank.server.schemas import ChatCompletionChunk
from swarmrank.store import Store
from swarmrank.swarm import Swarm

from helpers import QUESTION, Server, assert_openai_error, node

FUZZ_EXAMPLES = int(os.environ.get("SWARMRANK_FUZZ_EXAMPLES", "40"))
"""Examples per operation and generation mode (raise it for a longer hunt)."""

MAX_BODY = 16 * 1024
CHAT = "/v1/chat/completions"
VALID_MODELS = ("swarmrank", "swarmrank/majority", "peer-rank")
WATCHED_LOGGERS = ("swarmrank.server", "uvicorn.error")


def any_question_swarm(store: Store | None) -> Swarm:
    """A swarm that has a usable answer for every task type, so a 5xx can only mean a server bug:
    '42' is read by number, short and free tasks, 'B' by multiple-choice ones."""
    nodes = [node("number", {"answer"}, answers={"*": "42"}),
             node("letter", {"answer"}, answers={"*": "B"}),
             node("judge", {"judge"}, judge="truth", truth="42")]
    return Swarm(nodes, options=RoundOptions(), name="fuzz", store=store)


@dataclass
class Live:
    url: str
    key: str
    store: Store
    errors: list[logging.LogRecord]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class _Collect(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server for the module: auth on, no rate limit, a small body limit, rounds stored in SQLite."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}")
    key = create_key(store, "fuzzer")[0]
    errors: list[logging.LogRecord] = []
    handler = _Collect(errors)
    for name in WATCHED_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    server = Server(create_app(any_question_swarm(store), store=store,
                               settings=ServerSettings(rate_limit=0, max_body_bytes=MAX_BODY)))
    try:
        yield Live(server.url, key, store, errors)
    finally:
        server.stop()
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        store.close()


@pytest.fixture(autouse=True)
def no_server_errors_logged(request: pytest.FixtureRequest) -> Iterator[None]:
    """The server logs an unhandled exception (or a storage error) at ERROR: none may happen."""
    if "live" not in request.fixturenames:
        yield
        return
    live: Live = request.getfixturevalue("live")
    seen = len(live.errors)
    yield
    new = [f"{r.name}: {r.getMessage()}" for r in live.errors[seen:]]
    assert not new, "the server logged errors:\n" + "\n".join(new)


@pytest.fixture(scope="module")
def api(live: Live) -> schemathesis.BaseSchema:
    """The spec as the running server serves it."""
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
STREAM_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


def aim_at_a_round(case: schemathesis.Case) -> None:
    """Random model names are all 404s and most random conversations end with a non-user turn; aim
    two thirds of the valid chat bodies at a real protocol with a user question last, so that rounds
    (and streams) get fuzzed too. Negative cases stay as generated."""
    meta = case.meta
    positive = meta is not None and meta.generation.mode == GenerationMode.POSITIVE
    body = case.body
    if case.path != CHAT or not positive or not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return
    pick = zlib.crc32(json.dumps(body, sort_keys=True, default=str).encode("utf-8", "replace")) % 3
    if pick:
        body["model"] = VALID_MODELS[pick]
        messages = body.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
            messages[-1]["role"] = "user"


def fuzz(api: schemathesis.BaseSchema, mode: GenerationMode, examples: int,
         send: Callable[[schemathesis.Case], None]) -> list[str]:
    """Run ``send`` on up to ``examples`` generated cases of every operation; the failures, one per operation.

    (schemathesis's own pytest plugin, ``from_fixture``, does not run under pytest 9, so each
    operation's strategy is driven with Hypothesis directly.)
    """
    failures = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {CHAT, "/v1/models", "/v1/models/{model}", "/v1/rounds/{round_id}"}
    for operation in operations:

        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: schemathesis.Case) -> None:
            send(case)

        try:
            run()
        except Unsatisfiable:  # nothing to vary (a negative case of GET /healthz, which takes no input)
            continue
        except Exception as exc:
            failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


def assert_no_traceback(response: Any) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text


def is_stream(response: schemathesis.Response) -> bool:
    values = response.headers.get("content-type") or [""]  # schemathesis keeps every header as a list
    return values[0].startswith("text/event-stream")


def assert_valid_stream(content: str) -> None:
    """Every ``data:`` line but the last is a chat.completion.chunk, the last is ``[DONE]``, and no
    error event (a stream's 5xx) came: this swarm always has an answer.

    (schemathesis validates each SSE *event object* — ``{"data": ..., "event": ...}``, OpenAPI 3.2's
    reading — against the spec's ``text/event-stream`` schema, which names the chunk, so its schema
    check cannot judge our streams; this does instead.)
    """
    data = [line.removeprefix("data: ") for line in content.split("\n") if line.startswith("data: ")]
    assert data and data[-1] == "[DONE]", content[-300:]
    for payload in data[:-1]:
        assert not payload.startswith('{"error"'), payload
        ChatCompletionChunk.model_validate_json(payload)


MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_fuzzed_requests_with_a_key_never_get_a_5xx_and_match_the_spec(api, live, mode):
    def send(case: schemathesis.Case) -> None:
        aim_at_a_round(case)
        response = case.call(headers=live.auth, timeout=30)
        if is_stream(response):
            case.validate_response(response, checks=STREAM_CHECKS, headers=live.auth)
            assert_valid_stream(response.text)
        else:
            case.validate_response(response, checks=CHECKS, headers=live.auth)
        assert_no_traceback(response)

    failures = fuzz(api, mode, FUZZ_EXAMPLES, send)
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_fuzzed_requests_without_a_key_are_refused_never_with_a_5xx(api, live, mode):
    def send(case: schemathesis.Case) -> None:
        response = case.call(timeout=30)
        case.validate_response(response, checks=CHECKS)
        assert_no_traceback(response)
        if case.path.startswith("/v1/"):
            # a body that is not even JSON is refused before the key is read, and a path that no route
            # matches (a newline inside a path parameter) is a 404 whoever asks; everything else needs the key
            unroutable = response.status_code == 404 and response.json()["error"]["message"].startswith("unknown path")
            assert response.status_code in (400, 401, 413) or unroutable, response.text

    failures = fuzz(api, mode, max(10, FUZZ_EXAMPLES // 2), send)
    assert not failures, "\n\n".join(failures)


# -- hand-made bad input --------------------------------------------------------------------------


def post(live: Live, body: bytes | str, *, content_type: str | None = "application/json",
         headers: dict[str, str] | None = None) -> httpx.Response:
    sent = {**live.auth, **({"content-type": content_type} if content_type else {}), **(headers or {})}
    return httpx.post(f"{live.url}{CHAT}", content=body, headers=sent, timeout=30)


def ask(**fields: Any) -> dict[str, Any]:
    return {"model": "swarmrank", "messages": [{"role": "user", "content": QUESTION}], **fields}


ANY_TEXT = st.text(max_size=40) | st.lists(st.characters() | st.characters(categories=["Cs"]), max_size=40).map("".join)
"""Any text, half the time with lone UTF-16 surrogates (JSON can spell them; ``st.text`` never makes them)."""


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(question=ANY_TEXT, system=st.none() | ANY_TEXT, model=st.sampled_from(VALID_MODELS + ("council",)),
       task_type=st.none() | st.sampled_from(["mc", "number", "short", "free"]), stream=st.booleans(),
       as_parts=st.booleans())
def test_any_text_in_a_well_formed_request_gets_an_answer_or_a_400(live, question, system, model, task_type,
                                                                    stream, as_parts):
    """Reaches the round with arbitrary text, which the spec-driven fuzzing above rarely does."""
    content: Any = [{"type": "text", "text": question}] if as_parts else question
    messages = ([{"role": "system", "content": system}] if system is not None else []) + \
        [{"role": "user", "content": content}]
    body = {"model": model, "messages": messages, "stream": stream,
            **({"swarmrank": {"task_type": task_type}} if task_type else {})}
    response = post(live, json.dumps(body))  # ensure_ascii: a lone surrogate goes out as "\\udXXX"
    assert_no_traceback(response)
    if response.status_code == 400:
        assert set(response.json()) == {"error"}
        return
    assert response.status_code == 200, response.text
    if stream:
        events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and not any(e.startswith('{"error"') for e in events), response.text[-400:]
        round_id = json.loads(events[-2])["swarmrank"]["result"]["round_id"]
    else:
        round_id = response.json()["swarmrank"]["round_id"]
    assert live.store.get_round(round_id).answer is not None


def test_the_fuzzing_server_answers_a_plain_request(live):
    response = post(live, json.dumps(ask()))
    assert response.status_code == 200, response.text
    assert response.json()["swarmrank"]["answer"] == "42"


@pytest.mark.parametrize("body,reason", [
    ('{"model": "swarmrank", "messages": [', "Expecting value"),
    ('{"model": "swarmrank"} trailing', "Extra data"),
    ("{'model': 'swarmrank'}", "Expecting property name"),
    ('{"model": "swarmrank", "messages": [], }', "Expecting property name"),
    (b'{"model": "\xff\xfe", "messages": []}', "not UTF-8"),
    ('{"messages": ' + "[" * 5_000 + "]" * 5_000 + "}", "nested too deeply"),
    ('{"model": "swarmrank", "n": ' + "9" * 5000 + ', "messages": []}', "integer string conversion"),
])
def test_malformed_json_is_a_400_invalid_json(live, body, reason):
    error = assert_openai_error(post(live, body), 400, code="invalid_json")
    assert error["message"].startswith("the request body is not valid JSON") and reason in error["message"]


@pytest.mark.parametrize("body", ["null", "[]", '"What is 40 + 2?"', "42", "true"])
def test_json_that_is_not_an_object_is_a_400(live, body):
    error = assert_openai_error(post(live, body), 400, code="invalid_value")
    assert "valid dictionary" in error["message"]


def test_an_empty_body_is_a_400_that_says_so(live):
    error = assert_openai_error(post(live, b""), 400, code="invalid_request")
    assert "the request body is empty" in error["message"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
def test_a_body_not_sent_as_json_is_a_400_naming_the_content_type(live, content_type):
    error = assert_openai_error(post(live, json.dumps(ask()), content_type=content_type), 400,
                                code="invalid_content_type")
    assert "Content-Type: application/json" in error["message"]
    assert (repr(content_type) if content_type else "the header is missing") in error["message"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.api+json"])
def test_json_content_types_with_parameters_or_suffixes_are_accepted(live, content_type):
    assert post(live, json.dumps(ask()), content_type=content_type).status_code == 200


def test_bodies_over_the_limit_are_413_and_one_at_the_limit_is_served(live):
    padding = " " * (MAX_BODY - len(json.dumps(ask())))
    at_limit = json.dumps(ask()) + padding
    assert len(at_limit.encode()) == MAX_BODY
    assert post(live, at_limit).status_code == 200
    assert_openai_error(post(live, at_limit + " "), 413, code="request_too_large")
    streamed = httpx.post(f"{live.url}{CHAT}", content=iter([at_limit.encode(), b"  "]),
                          headers={**live.auth, "content-type": "application/json"})
    assert_openai_error(streamed, 413, code="request_too_large")
    no_key = httpx.post(f"{live.url}{CHAT}", content=at_limit + " ", headers={"content-type": "application/json"})
    assert_openai_error(no_key, 413)  # the size is checked before the key


def test_a_huge_messages_array_is_refused_by_size_before_it_is_parsed(live):
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}] * 20_000
    body = json.dumps({"model": "swarmrank", "messages": turns + [{"role": "user", "content": QUESTION}]})
    assert len(body) > 1_000_000
    assert_openai_error(post(live, body), 413, code="request_too_large")


def test_a_long_conversation_under_the_limit_is_answered(live):
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}] * 150
    body = json.dumps({"model": "majority", "messages": turns + [{"role": "user", "content": QUESTION}]})
    assert len(body) < MAX_BODY
    response = post(live, body)
    assert response.status_code == 200, response.text
    stored = live.store.get_round(response.json()["swarmrank"]["round_id"])
    assert stored.question.count("User: hi") == 150


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer sr-wrong", "Bearer not-even-our-prefix", "Basic c3I6c3I=",
    "Token sr-x", "Bearer " + "sr-" + "x" * 4000,
])
def test_missing_wrong_or_malformed_keys_are_401(live, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.post(f"{live.url}{CHAT}", json=ask(), headers=headers)
    assert_openai_error(response, 401, code="invalid_api_key")
    assert_openai_error(httpx.get(f"{live.url}/v1/models", headers=headers), 401, code="invalid_api_key")


def test_a_key_with_bytes_outside_ascii_or_a_revoked_key_is_401(live):
    raw = httpx.get(f"{live.url}/v1/models", headers=[(b"authorization", b"Bearer sr-\xff\xfe")])
    assert_openai_error(raw, 401, code="invalid_api_key")
    revoked = create_key(live.store, f"gone-{uuid.uuid4().hex[:6]}")
    revoke_key(live.store, revoked[1]["name"])
    assert_openai_error(httpx.get(f"{live.url}/v1/models", headers={"Authorization": f"Bearer {revoked[0]}"}),
                        401, code="invalid_api_key")
    assert httpx.get(f"{live.url}/v1/models", headers={"Authorization": f"bearer {live.key}"}).status_code == 200


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``body`` with the field at dotted ``path`` (list indices as numbers) replaced by ``value``."""
    parts = path.split(".")
    target: Any = body
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    if isinstance(target, list):
        target[int(parts[-1])] = value
    else:
        target[parts[-1]] = value
    return body


WRONG_TYPES = [
    ("model", 7), ("model", None), ("model", ["swarmrank"]), ("model", {"id": "swarmrank"}),
    ("messages", "What is 40 + 2?"), ("messages", None), ("messages", {"role": "user"}), ("messages", []),
    ("messages.0", "What is 40 + 2?"), ("messages.0", None), ("messages.0", [1, 2]),
    ("messages.0.role", 1), ("messages.0.role", None), ("messages.0.role", "robot"),
    ("messages.0.content", 42), ("messages.0.content", {"text": "hi"}), ("messages.0.content", ["hi"]),
    ("messages.0.content", [{"text": "hi"}]), ("messages.0.content", [{"type": 3, "text": "hi"}]),
    ("messages.0.content", [{"type": "text", "text": 5}]),
    ("messages.0.name", 5), ("messages.0.name", ["me"]),
    ("stream", "maybe"), ("stream", 2), ("stream", [True]), ("stream", {"on": True}),
    ("stream_options", "yes"), ("stream_options", [1]), ("stream_options.include_usage", "maybe"),
    ("n", 2), ("n", 0), ("n", -1), ("n", 1.5), ("n", "many"), ("n", [1]),  # null is OpenAI's "default"
    ("temperature", 2.5), ("temperature", "hot"), ("top_p", -0.1), ("max_tokens", -1), ("max_tokens", 0),
    ("max_completion_tokens", "x"), ("seed", 1.5), ("stop", 3), ("stop", [1]), ("presence_penalty", 9),
    ("response_format", "json"), ("response_format.type", "yaml"), ("logit_bias", [1]), ("user", 5),
    ("metadata", "x"), ("store", "maybe"), ("colour", "blue"),
    ("swarmrank", "number"), ("swarmrank", [1]), ("swarmrank.task_type", "essay"), ("swarmrank.task_type", 3),
    ("swarmrank.content", "everything"), ("swarmrank.content", False), ("swarmrank.colour", "blue"),
]


@pytest.mark.parametrize("path,value", WRONG_TYPES, ids=[f"{p}={v!r}"[:40] for p, v in WRONG_TYPES])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_wrong_value_in_any_field_is_a_400_naming_the_field(live, path, value, stream):
    body = _set(ask(stream=stream) if path != "stream" else ask(), path, value)
    error = assert_openai_error(post(live, json.dumps(body)), 400)
    assert error["type"] == "invalid_request_error"
    named = error["param"] or ""
    assert named == path or named.startswith(path + "."), error
    assert "Traceback" not in error["message"]


@pytest.mark.parametrize("where,body", [
    ("model", ask(model="swarm\ud800rank")),
    ("messages.0.content", ask(messages=[{"role": "user", "content": "What is \udfff40 + 2?"}])),
    ("messages.0.content", ask(messages=[{"role": "user", "content": [{"type": "text", "text": "\ud83d"}]}])),
    ("messages.0.content", ask(stream=True, messages=[{"role": "system", "content": "\ud800"},
                                                      {"role": "user", "content": QUESTION}])),
])
def test_lone_surrogate_escapes_are_a_400_not_a_500(live, where, body):
    """Regression: JSON may spell an unpaired UTF-16 surrogate ("\\ud800"); no node, store or response
    can encode one, and such a question used to fail with a 500 (and an error event mid-stream)."""
    rounds = live.store.count_rounds()
    error = assert_openai_error(post(live, json.dumps(body)), 400, code="invalid_value")
    assert error["param"] == where and "unpaired surrogate" in error["message"]
    assert live.store.count_rounds() == rounds  # refused before any round ran


def test_a_surrogate_pair_spelled_in_json_is_fine(live):
    body = ask(model="majority", messages=[{"role": "user", "content": "What is 40 + 2? \ud83d\ude00"}])
    assert post(live, json.dumps(body)).status_code == 200


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/v1/chat/completions", 405), ("PUT", "/v1/models", 405), ("DELETE", "/v1/rounds/abcd", 405),
    ("GET", "/v1/nothing-here", 404), ("POST", "/v1/completions", 404), ("GET", "/v1/models/gpt-4o", 404),
    ("GET", "/v1/rounds/%00", 404), ("GET", "/v1/rounds/ab%00cd", 404), ("GET", "/v1/rounds/" + "f" * 5000, 404),
    ("GET", "/v1/rounds/%ED%A0%80abcd", 404),
])
def test_unknown_paths_methods_and_ids_are_4xx_in_openai_shape(live, method, path, status):
    assert_openai_error(httpx.request(method, f"{live.url}{path}", headers=live.auth), status)


PG = os.environ.get("SWARMRANK_TEST_PG")


@pytest.mark.skipif(not PG, reason="set SWARMRANK_TEST_PG to a Postgres URL (scripts/with-postgres does)")
def test_a_nul_in_a_round_id_is_a_404_on_postgres_too(tmp_path: Path):  # pragma: no cover - needs a server
    """Regression: PostgreSQL refuses NUL in a query parameter, so this was a 503 storage_error."""
    with Store(PG) as store:  # type: ignore[arg-type]
        key = create_key(store, f"fuzz-{uuid.uuid4().hex[:8]}")[0]
        server = Server(create_app(any_question_swarm(store), store=store, settings=ServerSettings(rate_limit=0)))
        try:
            for path in ("/v1/rounds/%00", "/v1/rounds/abcd%00"):
                response = httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {key}"})
                assert_openai_error(response, 404, code="round_not_found")
        finally:
            server.stop()

