"""The ``openai`` backend against a local fake upstream on a real socket: retries with backoff that honour
Retry-After, 5xx, the concurrency cap, extra headers/query/body, JSON modes, and every provider preset
as docs/providers.md configures it."""

from __future__ import annotations

import asyncio
import json
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from swarmrank.config import parse_config
from swarmrank.errors import ConfigError, EndpointError
from swarmrank.nodes.base import BuildContext, CompletionRequest, Message, create_backend
from swarmrank.nodes.openai_compat import OpenAIBackend, build
from swarmrank.nodes.presets import resolve_preset
from swarmrank.swarm import Swarm

from helpers import Server

DOCS = Path(__file__).resolve().parents[1] / "docs" / "providers.md"


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


@dataclass
class Upstream:
    """An OpenAI-compatible fake: answers ``reply``, after failing with each status in ``failures`` first."""

    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    reply: str = "The answer is 42."
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def anything(path: str, request: Request) -> JSONResponse:
            self.seen.append(Seen("/" + path, dict(request.query_params), {k.lower(): v for k, v in request.headers.items()},
                                  await request.json(), time.monotonic()))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                if self.delay:
                    await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            if self.failures:
                status, headers = self.failures.pop(0)
                return JSONResponse({"error": {"message": f"fake {status}", "type": "x", "param": None,
                                               "code": None}}, status_code=status, headers=headers)
            return JSONResponse({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": self.reply},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16,
                          "prompt_tokens_details": {"cached_tokens": 3}}})

        return app


@pytest.fixture
def upstream():
    fake = Upstream()
    server = Server(fake.app())
    fake.url = server.url  # type: ignore[attr-defined]
    yield fake
    server.stop()


def request(**kw: Any) -> CompletionRequest:
    return CompletionRequest(messages=(Message("user", "What is 40 + 2?"),), **kw)


def backend(upstream: Upstream, **options: Any) -> OpenAIBackend:
    return build({"base_url": f"{upstream.url}/v1", "model": "m", "backoff_base": 0.01, **options},  # type: ignore[attr-defined]
                 BuildContext())


async def complete(b: OpenAIBackend, req: CompletionRequest | None = None) -> Any:
    try:
        return await b.complete(req or request())
    finally:
        await b.close()


# -- retries ---------------------------------------------------------------------------------------


async def test_two_429s_are_retried_and_retry_after_ms_is_honoured(upstream):
    upstream.failures = [(429, {"retry-after-ms": "300"}), (429, {"retry-after-ms": "300"})]
    completion = await complete(backend(upstream, max_retries=2))
    assert completion.text == "The answer is 42." and completion.cached_tokens == 3
    assert len(upstream.seen) == 3
    gaps = [b.at - a.at for a, b in zip(upstream.seen, upstream.seen[1:])]
    assert all(gap >= 0.29 for gap in gaps), gaps


async def test_retry_after_in_seconds_is_honoured(upstream):
    upstream.failures = [(503, {"retry-after": "1"})]
    await complete(backend(upstream))
    assert upstream.seen[1].at - upstream.seen[0].at >= 0.99


async def test_more_429s_than_retries_fail_the_call_with_the_count(upstream):
    upstream.failures = [(429, {})] * 3
    with pytest.raises(EndpointError, match=r"answered 429: .*fake 429.*\(after 2 tries\)"):
        await complete(backend(upstream, max_retries=1))
    assert len(upstream.seen) == 2


async def test_5xx_is_retried_with_exponential_backoff_and_jitter(upstream):
    upstream.failures = [(500, {}), (502, {}), (503, {})]
    await complete(backend(upstream, max_retries=3, backoff_base=0.1, backoff_max=5))
    gaps = [b.at - a.at for a, b in zip(upstream.seen, upstream.seen[1:])]
    # try n waits base·2^(n-1) plus up to base of jitter
    for n, gap in enumerate(gaps, 1):
        assert 0.1 * 2 ** (n - 1) - 0.01 <= gap <= 0.1 * 2 ** (n - 1) + 0.1 + 0.15, gaps


async def test_backoff_max_caps_the_wait(upstream):
    upstream.failures = [(500, {})] * 3
    await complete(backend(upstream, max_retries=3, backoff_base=0.2, backoff_max=0.25))
    gaps = [b.at - a.at for a, b in zip(upstream.seen, upstream.seen[1:])]
    assert all(gap <= 0.25 + 0.15 for gap in gaps), gaps


@pytest.mark.parametrize(("status", "headers"), [(400, {}), (401, {}), (404, {}), (500, {"x-should-retry": "false"})])
async def test_errors_that_another_try_cannot_fix_are_not_retried(upstream, status, headers):
    upstream.failures = [(status, headers)]
    with pytest.raises(EndpointError, match=f"answered {status}"):
        await complete(backend(upstream))
    assert len(upstream.seen) == 1


async def test_a_round_survives_a_rate_limited_upstream(upstream):
    upstream.failures = [(429, {"retry-after-ms": "50"})] * 2
    cfg = parse_config({"nodes": [
        {"id": "n1", "backend": "openai", "base_url": f"{upstream.url}/v1", "model": "m", "roles": ["answer"]},
        {"id": "n2", "backend": "openai", "base_url": f"{upstream.url}/v1", "model": "m", "roles": ["answer"]}]})
    swarm = Swarm.from_config(cfg, store=None)
    result = await swarm.ask("What is 40 + 2?", protocol="majority")
    await swarm.aclose_backends()
    assert result.answer == "42" and all(a.excluded is None for a in result.answers)
    assert len(upstream.seen) == 4


# -- concurrency, headers, body ------------------------------------------------------------------------


async def test_max_concurrency_caps_calls_in_flight(upstream):
    upstream.delay = 0.15
    b = backend(upstream, max_concurrency=2)
    assert b.queues_calls  # the round then times a call from when it starts
    try:
        await asyncio.gather(*(b.complete(request(timeout=5)) for _ in range(6)))
    finally:
        await b.close()
    assert len(upstream.seen) == 6 and upstream.most_in_flight == 2


async def test_without_a_cap_calls_go_out_together(upstream):
    upstream.delay = 0.15
    b = backend(upstream)
    try:
        await asyncio.gather(*(b.complete(request()) for _ in range(4)))
    finally:
        await b.close()
    assert upstream.most_in_flight == 4


async def test_extra_headers_query_and_body_reach_the_upstream(upstream):
    b = backend(upstream, headers={"X-Team": "blue"}, query={"tier": "gold"}, extra_body={"top_k": 20, "min_p": 0.1})
    await complete(b, request(temperature=0.5, top_p=0.9, seed=3, stop=("###",), presence_penalty=0.1,
                              frequency_penalty=-0.1, max_tokens=33))
    seen = upstream.seen[0]
    assert seen.path == "/v1/chat/completions" and seen.query == {"tier": "gold"} and seen.headers["x-team"] == "blue"
    body = seen.body
    assert body["top_k"] == 20 and body["min_p"] == 0.1
    assert (body["temperature"], body["top_p"], body["seed"], body["stop"], body["max_tokens"]) == (0.5, 0.9, 3,
                                                                                                 ["###"], 33)
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.1, -0.1)


@pytest.mark.parametrize(("schema", "expected"), [
    (None, {"type": "json_object"}),
    ({"type": "object", "properties": {"a": {"type": "integer"}}},
     {"type": "json_schema", "json_schema": {"name": "answer",
                                             "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}),
])
async def test_json_answers_ask_the_upstream_for_json(upstream, schema, expected):
    await complete(backend(upstream), request(response_format="json", json_schema=schema))
    assert upstream.seen[0].body["response_format"] == expected


@pytest.mark.parametrize(("options", "words"), [
    ({"max_concurrency": 0}, "max_concurrency' must be a whole number >= 1"),
    ({"max_retries": -1}, "max_retries' must be a whole number >= 0"),
    ({"backoff_base": "fast"}, "backoff_base' must be a number"),
    ({"headers": "X-A: 1"}, "'headers' must be a table"),
    ({"headers": {"X-A": 1}}, "'headers' takes string values only"),
    ({"preset": "bedrock"}, "unknown openai preset 'bedrock' (known: ollama, vllm, llamacpp-server, openrouter, "
                            "anthropic, azure)"),
    ({"deployment": "d"}, "deployment: only for preset = \"azure\""),
])
def test_bad_backend_options_are_one_line(options, words):
    with pytest.raises(ConfigError) as info:
        build({"base_url": "http://127.0.0.1:1/v1", "model": "m", **options}, BuildContext())
    assert words in str(info.value)


# -- presets, as docs/providers.md configures them ------------------------------------------------------


def documented_configs() -> dict[str, dict[str, Any]]:
    """preset → the [models.NAME] table of its TOML example in docs/providers.md."""
    out = {}
    for block in re.findall(r"```toml\n(.*?)```", DOCS.read_text(), re.S):
        data = tomllib.loads(block)
        for model in data.get("models", {}).values():
            if "preset" in model:
                out[model["preset"]] = model
    return out


def test_docs_have_a_config_for_every_preset():
    from swarmrank.nodes.presets import preset_names

    assert set(documented_configs()) == set(preset_names())


KEYS = {"VLLM_API_KEY": "vllm-key", "OPENROUTER_API_KEY": "or-key", "ANTHROPIC_API_KEY": "ant-key",
        "AZURE_OPENAI_API_KEY": "az-key"}


@pytest.mark.parametrize(("preset", "path", "auth", "header", "logprobs"), [
    ("ollama", "/v1/chat/completions", ("authorization", "Bearer not-needed"), None, False),
    ("vllm", "/v1/chat/completions", ("authorization", "Bearer vllm-key"), None, True),
    ("llamacpp-server", "/v1/chat/completions", ("authorization", "Bearer not-needed"), None, True),
    ("openrouter", "/api/v1/chat/completions", ("authorization", "Bearer or-key"), ("x-title", "swarmrank"), True),
    ("anthropic", "/v1/chat/completions", ("authorization", "Bearer ant-key"), None, False),
    ("azure", "/openai/deployments/gpt-4o-mini/chat/completions", ("api-key", "az-key"), None, True),
])
async def test_each_documented_preset_talks_to_its_provider_as_it_expects(upstream, monkeypatch, preset, path, auth,
                                                                         header, logprobs):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    options = dict(documented_configs()[preset])
    backend_name = options.pop("backend")
    documented_url = (options.get("base_url") or options.get("endpoint") or resolve_preset(preset).base_url
                      or f"https://{options.get('resource')}.openai.azure.com")
    # the documented endpoint, moved onto the fake (same path)
    path_part = re.sub(r"^https?://[^/]+", "", documented_url)
    options.pop("resource", None)
    options["endpoint" if preset == "azure" else "base_url"] = upstream.url + path_part  # type: ignore[attr-defined]
    b = create_backend(backend_name, options, BuildContext())
    try:
        await b.complete(request(purpose="judge", top_logprobs=5, temperature=1.5))
    finally:
        await b.close()
    seen = upstream.seen[0]
    assert seen.path == path
    assert seen.headers.get(auth[0]) == auth[1]
    if header:
        assert seen.headers.get(header[0]) == header[1]
    assert ("logprobs" in seen.body) == logprobs
    assert seen.body["temperature"] == (1.0 if preset == "anthropic" else 1.5)
    if preset == "azure":
        assert seen.query == {"api-version": options["api_version"]}


@pytest.mark.parametrize(("preset", "variable"), [("openrouter", "OPENROUTER_API_KEY"),
                                                  ("anthropic", "ANTHROPIC_API_KEY"),
                                                  ("azure", "AZURE_OPENAI_API_KEY")])
def test_hosted_presets_need_their_key(monkeypatch, preset, variable):
    monkeypatch.delenv(variable, raising=False)
    options = dict(documented_configs()[preset])
    options.pop("backend")
    with pytest.raises(ConfigError, match=f"environment variable {variable} \\(api_key_env\\) is not set"):
        build(options, BuildContext())


def test_presets_default_their_endpoints(monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    urls = {p: build({"preset": p, "model": "m"}, BuildContext()).base_url for p in ("ollama", "vllm",
                                                                                    "llamacpp-server")}
    assert urls == {"ollama": "http://localhost:11434/v1", "vllm": "http://localhost:8000/v1",
                    "llamacpp-server": "http://localhost:8080/v1"}
    azure = build({"preset": "azure", "model": "m", "resource": "acme", "deployment": "d", "api_version": "v",
                   "api_key_env": "HOME"}, BuildContext())
    assert azure.base_url == "https://acme.openai.azure.com"
    with pytest.raises(ConfigError, match="needs 'resource'"):
        build({"preset": "azure", "model": "m", "api_key_env": "HOME"}, BuildContext())


def test_the_price_table_gives_each_round_its_cost_in_dollars(upstream):
    cfg = parse_config({
        "models": {"gpt": {"backend": "openai", "base_url": f"{upstream.url}/v1", "model": "gpt-x"}},  # type: ignore[attr-defined]
        "nodes": [{"id": "n1", "model": "gpt", "roles": ["answer"]},
                  {"id": "n2", "backend": "openai", "base_url": f"{upstream.url}/v1", "model": "other",  # type: ignore[attr-defined]
                   "roles": ["answer"]},
                  {"id": "n3", "backend": "scripted", "roles": ["answer"], "answer": "42"}],
        "prices": {"gpt": {"input": 2.0, "output": 8.0, "cached_input": 0.5}, "other": {"input": 1.0, "output": 1.0}},
    })
    swarm = Swarm.from_config(cfg, store=None)
    result = swarm.ask_sync("What is 40 + 2?", protocol="majority")
    nodes = result.cost.nodes
    # the fake reports 11 prompt tokens (3 cached) and 5 completion tokens per call
    assert nodes["n1"].dollars == pytest.approx((8 * 2.0 + 3 * 0.5 + 5 * 8.0) / 1e6)
    assert nodes["n2"].dollars == pytest.approx((11 * 1.0 + 5 * 1.0) / 1e6)
    assert nodes["n3"].dollars is None  # no price: left out of the sum
    assert result.cost.dollars == pytest.approx(nodes["n1"].dollars + nodes["n2"].dollars)
    assert json.loads(result.model_dump_json())["cost"]["dollars"] == pytest.approx(result.cost.dollars)


def test_a_price_for_no_model_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\[prices\] names 'gpt-9'"):
        parse_config({"nodes": [{"id": "n", "backend": "scripted"}], "prices": {"gpt-9": {"input": 1, "output": 1}}})
    with pytest.raises(ConfigError, match="prices.x.input"):
        parse_config({"models": {"x": {"backend": "scripted"}}, "nodes": [{"id": "n", "model": "x"}],
                      "prices": {"x": {"input": -1, "output": 1}}})


async def test_llamacpp_servers_get_the_schema_inside_a_json_object_format(upstream):
    schema = {"type": "object"}
    await complete(backend(upstream, preset="llamacpp-server"), request(response_format="json", json_schema=schema))
    assert upstream.seen[0].body["response_format"] == {"type": "json_object", "schema": schema}
