"""Any OpenAI-compatible endpoint: vLLM, Ollama, llama.cpp's server, OpenRouter, Anthropic, Azure.

Options (on a ``[models.NAME]`` entry or a node):

=====================  ====================================================================================
``preset``             a provider's defaults (:mod:`swarmrank.nodes.presets`): ollama, vllm, llamacpp-server,
                       openrouter, anthropic, azure
``base_url``           the endpoint (required unless the preset gives it)
``model``              the upstream model id (required; for Azure, informational: the deployment decides)
``api_key_env``        the name of an environment variable holding the key (omit for local servers)
``timeout``            seconds one HTTP attempt may take (default 120; the round's node_timeout caps a call)
``api``                ``"chat"`` (default) or ``"completions"`` (a completion-style prompt, for base models)
``logprobs``           ask for top-logprobs to record verdict probabilities (default: the preset's, else true)
``max_concurrency``    calls this node has in flight at once; more wait their turn (default: no cap)
``max_retries``        retries of a failed call (429, 408, 409, 5xx, connection errors; default 2)
``backoff_base``       seconds before the first retry, doubling each time, plus up to as much jitter (0.5)
``backoff_max``        the longest wait between tries (default 30); a ``Retry-After`` (or ``retry-after-ms``)
                       header is honoured instead, up to ``max_retry_after`` (default 60)
``headers``            extra HTTP headers, e.g. ``{ "HTTP-Referer" = "https://example.org" }``
``query``              extra URL query parameters
``extra_body``         extra JSON fields merged into every request body (provider extras such as vLLM's
                       ``top_k`` or OpenRouter's ``provider`` routing)
``schema_format``      how a JSON Schema is asked for: ``json_schema`` (OpenAI's; default) or ``json_object``
                       (``{"type": "json_object", "schema": ...}``, llama.cpp's servers; the llamacpp-server preset's)
``resource``, ``endpoint``, ``deployment``, ``api_version``   Azure only
=====================  ====================================================================================

Retries use tenacity (exponential backoff with jitter) around the client, whose own retries are off.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from swarmrank.errors import ConfigError, EndpointError
from swarmrank.nodes.base import Backend, BuildContext, Completion, CompletionRequest
from swarmrank.nodes.presets import Preset, resolve_preset
from swarmrank.plugins import hookimpl

VERDICT_LETTERS = ("A", "B", "U")
#: statuses worth another try (as the official clients decide), besides connection errors and timeouts
RETRY_STATUSES = frozenset({408, 409, 429})


def verdict_probs(content: list[Any] | None) -> dict[str, float] | None:
    """Probabilities of A/B/U at the last generated token that is a verdict letter."""
    for token in reversed(content or []):
        if token.token.strip() in VERDICT_LETTERS:
            mass = {letter: 0.0 for letter in VERDICT_LETTERS}
            for alt in token.top_logprobs or [token]:
                letter = alt.token.strip()
                if letter in mass:
                    mass[letter] += math.exp(alt.logprob)
            total = sum(mass.values())
            return {k: v / total for k, v in mass.items()} if total > 0 else None
    return None


def retry_after(exc: BaseException) -> float | None:
    """The wait an upstream asked for: ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        if headers.get("retry-after-ms") is not None:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except ValueError:
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value.strip() else None
        return None if when is None else max(0.0, when.timestamp() - time.time())


def retryable(exc: BaseException) -> bool:
    """Whether a failed call is worth another try: connection errors, timeouts, 408/409/429 and 5xx,
    unless the upstream says ``x-should-retry: false``."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError is one
        return True
    if not isinstance(exc, openai.APIStatusError):
        return False
    should = exc.response.headers.get("x-should-retry")
    if should is not None:
        return should.strip().lower() == "true"
    return exc.status_code in RETRY_STATUSES or exc.status_code >= 500


@dataclass
class OpenAIBackend(Backend):
    base_url: str
    model: str
    api_key: str = "not-needed"
    timeout: float = 120.0
    api: str = "chat"
    logprobs: bool = True
    max_concurrency: int | None = None
    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 60.0
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    max_temperature: float | None = None
    azure: Mapping[str, str] | None = None  # deployment, api_version (base_url is the Azure endpoint)
    schema_format: str = "json_schema"
    preset: str | None = None
    name: str = "openai"
    _client: Any = None
    _gate: tuple[Any, asyncio.Semaphore] | None = None

    def __post_init__(self) -> None:
        # with a concurrency cap, calls wait in this backend: the node's timeout runs from when a call starts
        self.queues_calls = self.max_concurrency is not None

    def describe(self) -> str:
        return f"openai({self.model} @ {self.base_url}{f', {self.preset}' if self.preset else ''})"

    def client(self) -> Any:
        if self._client is None:
            import openai

            common: dict[str, Any] = {"api_key": self.api_key, "timeout": self.timeout, "max_retries": 0,
                                      "default_headers": dict(self.headers) or None,
                                      "default_query": dict(self.query) or None}
            if self.azure is not None:
                self._client = openai.AsyncAzureOpenAI(azure_endpoint=self.base_url,
                                                       azure_deployment=self.azure["deployment"],
                                                       api_version=self.azure["api_version"], **common)
            else:
                self._client = openai.AsyncOpenAI(base_url=self.base_url, **common)
        return self._client

    def _semaphore(self) -> asyncio.Semaphore | None:
        """The concurrency gate of the running event loop (a semaphore belongs to one loop)."""
        if self.max_concurrency is None:
            return None
        loop = asyncio.get_running_loop()
        if self._gate is None or self._gate[0] is not loop:
            self._gate = (loop, asyncio.Semaphore(self.max_concurrency))
        return self._gate[1]

    def _wait(self, state: RetryCallState) -> float:
        """Seconds before the next try: the upstream's Retry-After when it gave one, else backoff with jitter."""
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = retry_after(exc) if exc is not None else None
        if asked is not None:
            return min(asked, self.max_retry_after)
        backoff = wait_exponential_jitter(multiplier=self.backoff_base, max=self.backoff_max, jitter=self.backoff_base)
        return float(backoff(state))

    async def complete(self, request: CompletionRequest) -> Completion:
        gate = self._semaphore()
        if gate is None:
            return await self._complete(request)
        async with gate:
            if request.timeout is None:
                return await self._complete(request)
            try:
                async with asyncio.timeout(request.timeout):  # from when the call got its turn
                    return await self._complete(request)
            except TimeoutError:
                raise EndpointError(f"{self.base_url} did not answer within {request.timeout:g}s") from None

    async def _complete(self, request: CompletionRequest) -> Completion:
        import openai

        start = time.perf_counter()
        want_logprobs = self.logprobs and request.top_logprobs is not None
        tries = 0
        try:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(self.max_retries + 1), wait=self._wait,
                                               retry=retry_if_exception(retryable), reraise=True):
                with attempt:
                    tries += 1
                    try:
                        return await self._call(request, want_logprobs, start)
                    except openai.BadRequestError:
                        if not want_logprobs:
                            raise
                        want_logprobs = False  # some servers reject logprobs: ask again without
                        return await self._call(request, False, start)
        except openai.APITimeoutError:  # a subclass of APIConnectionError: catch it first
            raise EndpointError(f"{self.base_url} did not answer within {self.timeout}s"
                                f"{self._tries(tries)}") from None
        except openai.APIConnectionError as exc:
            raise EndpointError(f"cannot reach {self.base_url}: {exc}{self._tries(tries)}") from None
        except openai.APIStatusError as exc:
            raise EndpointError(f"{self.base_url} answered {exc.status_code}: {exc.message}"
                                f"{self._tries(tries)}") from None
        raise AssertionError("unreachable: tenacity returns or reraises")  # pragma: no cover

    @staticmethod
    def _tries(tries: int) -> str:
        return f" (after {tries} tries)" if tries > 1 else ""

    def _body(self, request: CompletionRequest) -> dict[str, Any]:
        temperature = request.temperature
        if self.max_temperature is not None:
            temperature = min(temperature, self.max_temperature)
        common: dict[str, Any] = {"model": self.model, "temperature": temperature, "max_tokens": request.max_tokens}
        if request.seed is not None:
            common["seed"] = request.seed
        if request.timeout is not None:
            common["timeout"] = min(self.timeout, request.timeout)
        if request.stop:
            common["stop"] = list(request.stop)[:4]
        for name in ("top_p", "presence_penalty", "frequency_penalty"):
            if getattr(request, name) is not None:
                common[name] = getattr(request, name)
        if self.extra_body:
            common["extra_body"] = dict(self.extra_body)
        return common

    async def _call(self, request: CompletionRequest, want_logprobs: bool, start: float) -> Completion:
        common = self._body(request)
        if self.api == "completions":
            from swarmrank.nodes.llamacpp import format_base_prompt

            resp = await self.client().completions.create(prompt=format_base_prompt(request.messages), **common)
            choice = resp.choices[0]
            text, probs, finish = choice.text, None, choice.finish_reason
        else:
            if want_logprobs:
                common.update(logprobs=True, top_logprobs=min(request.top_logprobs or 5, 20))
            if request.response_format == "json":
                schema = None if request.json_schema is None else dict(request.json_schema)
                if schema is None:
                    common["response_format"] = {"type": "json_object"}
                elif self.schema_format == "json_object":
                    common["response_format"] = {"type": "json_object", "schema": schema}
                else:
                    common["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer",
                                                                                        "schema": schema}}
            resp = await self.client().chat.completions.create(
                messages=[{"role": m.role, "content": m.content} for m in request.messages], **common)
            choice = resp.choices[0]
            text, finish = choice.message.content or "", choice.finish_reason
            probs = verdict_probs(choice.logprobs.content if choice.logprobs else None) if want_logprobs else None
        usage = resp.usage
        cached = 0
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        if details is not None and getattr(details, "cached_tokens", None):
            cached = int(details.cached_tokens)
        return Completion(text=text, prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0, cached_tokens=cached,
                          seconds=time.perf_counter() - start, finish_reason=finish or "stop", choice_probs=probs)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


_OPTIONS = {"preset", "base_url", "model", "api_key_env", "timeout", "api", "logprobs", "max_concurrency",
            "max_retries", "backoff_base", "backoff_max", "max_retry_after", "headers", "query", "extra_body",
            "resource", "endpoint", "deployment", "api_version", "schema_format"}
_AZURE_ONLY = ("resource", "endpoint", "deployment", "api_version")


def _table(options: Mapping[str, Any], name: str, *, strings: bool) -> dict[str, Any]:
    value = options.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"openai option {name!r} must be a table, e.g. {name} = {{ key = \"value\" }}")
    if strings and not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"openai option {name!r} takes string values only")
    return {str(k): v for k, v in value.items()}


def _number(options: Mapping[str, Any], name: str, default: float, *, low: float = 0.0) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= low:
        raise ConfigError(f"openai option {name!r} must be a number >= {low:g}, not {value!r}")
    return float(value)


def _api_key(options: Mapping[str, Any], preset: Preset | None) -> str:
    explicit = options.get("api_key_env")
    name = explicit or (preset.api_key_env if preset else None)
    if not name:
        return "not-needed"
    key = os.environ.get(str(name), "")
    if not key and (explicit or (preset is not None and preset.key_required)):
        raise ConfigError(f"environment variable {name} (api_key_env) is not set")
    return key or "not-needed"


def _azure(options: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    missing = [k for k in ("deployment", "api_version") if not options.get(k)]
    if missing or not (options.get("resource") or options.get("endpoint") or options.get("base_url")):
        raise ConfigError("an azure node needs 'resource' (or 'endpoint'), 'deployment' and 'api_version'")
    endpoint = str(options.get("endpoint") or options.get("base_url")
                   or f"https://{options['resource']}.openai.azure.com")
    return endpoint, {"deployment": str(options["deployment"]), "api_version": str(options["api_version"])}


def build(options: Mapping[str, Any], ctx: BuildContext) -> OpenAIBackend:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ConfigError(f"unknown openai option(s): {', '.join(sorted(unknown))}")
    preset = resolve_preset(options["preset"]) if "preset" in options else None
    if not options.get("model"):
        raise ConfigError("an openai node needs 'model'")
    azure = None
    if preset is not None and preset.azure:
        base_url, azure = _azure(options)
    else:
        stray = [k for k in _AZURE_ONLY if k in options]
        if stray:
            raise ConfigError(f"{', '.join(stray)}: only for preset = \"azure\"")
        base_url = str(options.get("base_url") or (preset.base_url if preset else "") or "")
        if not base_url:
            raise ConfigError("an openai node needs 'base_url' (or a preset that gives one)")
    api = str(options.get("api", "chat"))
    if api not in ("chat", "completions"):
        raise ConfigError(f"openai api must be 'chat' or 'completions', not {api!r}")
    concurrency = options.get("max_concurrency")
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)
                                    or concurrency < 1):
        raise ConfigError(f"openai option 'max_concurrency' must be a whole number >= 1, not {concurrency!r}")
    retries = options.get("max_retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"openai option 'max_retries' must be a whole number >= 0, not {retries!r}")
    headers = {**(preset.headers if preset else {}), **_table(options, "headers", strings=True)}
    schema_format = str(options.get("schema_format", preset.schema_format if preset else "json_schema"))
    if schema_format not in ("json_schema", "json_object"):
        raise ConfigError(f"openai schema_format must be 'json_schema' or 'json_object', not {schema_format!r}")
    return OpenAIBackend(
        base_url=base_url, model=str(options["model"]), api_key=_api_key(options, preset),
        timeout=_number(options, "timeout", 120.0, low=0.001), api=api,
        logprobs=bool(options.get("logprobs", preset.logprobs if preset else True)),
        max_concurrency=concurrency, max_retries=retries,
        backoff_base=_number(options, "backoff_base", 0.5), backoff_max=_number(options, "backoff_max", 30.0),
        max_retry_after=_number(options, "max_retry_after", 60.0),
        headers=headers, query=_table(options, "query", strings=True),
        extra_body=_table(options, "extra_body", strings=False),
        max_temperature=preset.max_temperature if preset else None, azure=azure, schema_format=schema_format,
        preset=preset.name if preset else None)


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register("openai", build)
