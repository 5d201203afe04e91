"""Any OpenAI-compatible endpoint: vLLM, Ollama, llama.cpp's server, hosted APIs.

Options: ``base_url`` (required), ``model`` (required), ``api_key_env`` (the name of an
environment variable holding the key; omit for local servers), ``timeout`` (seconds),
``api = "chat" | "completions"`` (``completions`` with a completion-style prompt for base models),
``logprobs`` (ask for top-logprobs to record verdict probabilities; default true).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from swarmrank.errors import ConfigError, EndpointError
from swarmrank.nodes.base import Backend, BuildContext, Completion, CompletionRequest
from swarmrank.plugins import hookimpl

VERDICT_LETTERS = ("A", "B", "U")


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


@dataclass
class OpenAIBackend(Backend):
    base_url: str
    model: str
    api_key: str = "not-needed"
    timeout: float = 120.0
    api: str = "chat"
    logprobs: bool = True
    name: str = "openai"
    _client: Any = None

    def describe(self) -> str:
        return f"openai({self.model} @ {self.base_url})"

    def client(self) -> Any:
        if self._client is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout,
                                       max_retries=1)
        return self._client

    async def complete(self, request: CompletionRequest) -> Completion:
        import openai

        start = time.perf_counter()
        want_logprobs = self.logprobs and request.top_logprobs is not None
        try:
            try:
                return await self._call(request, want_logprobs, start)
            except openai.BadRequestError:
                if not want_logprobs:
                    raise
                return await self._call(request, False, start)  # some servers reject logprobs
        except openai.APITimeoutError:  # a subclass of APIConnectionError: catch it first
            raise EndpointError(f"{self.base_url} did not answer within {self.timeout}s") from None
        except openai.APIConnectionError as exc:
            raise EndpointError(f"cannot reach {self.base_url}: {exc}") from None
        except openai.APIStatusError as exc:
            raise EndpointError(f"{self.base_url} answered {exc.status_code}: {exc.message}") from None

    async def _call(self, request: CompletionRequest, want_logprobs: bool, start: float) -> Completion:
        common: dict[str, Any] = {"model": self.model, "temperature": request.temperature,
                                  "max_tokens": request.max_tokens}
        if request.seed is not None:
            common["seed"] = request.seed
        if request.timeout is not None:
            common["timeout"] = min(self.timeout, request.timeout)
        if request.stop:
            common["stop"] = list(request.stop)[:4]
        if self.api == "completions":
            from swarmrank.nodes.llamacpp import format_base_prompt

            resp = await self.client().completions.create(prompt=format_base_prompt(request.messages), **common)
            choice = resp.choices[0]
            text, probs, finish = choice.text, None, choice.finish_reason
        else:
            if want_logprobs:
                common.update(logprobs=True, top_logprobs=min(request.top_logprobs or 5, 20))
            resp = await self.client().chat.completions.create(
                messages=[{"role": m.role, "content": m.content} for m in request.messages], **common)
            choice = resp.choices[0]
            text, finish = choice.message.content or "", choice.finish_reason
            probs = verdict_probs(choice.logprobs.content if choice.logprobs else None) if want_logprobs else None
        usage = resp.usage
        return Completion(text=text, prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0,
                          seconds=time.perf_counter() - start, finish_reason=finish or "stop", choice_probs=probs)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


_OPTIONS = {"base_url", "model", "api_key_env", "timeout", "api", "logprobs"}


def build(options: Mapping[str, Any], ctx: BuildContext) -> OpenAIBackend:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ConfigError(f"unknown openai option(s): {', '.join(sorted(unknown))}")
    for required in ("base_url", "model"):
        if not options.get(required):
            raise ConfigError(f"an openai node needs '{required}'")
    api_key = "not-needed"
    if options.get("api_key_env"):
        name = str(options["api_key_env"])
        api_key = os.environ.get(name, "")
        if not api_key:
            raise ConfigError(f"environment variable {name} (api_key_env) is not set")
    api = str(options.get("api", "chat"))
    if api not in ("chat", "completions"):
        raise ConfigError(f"openai api must be 'chat' or 'completions', not {api!r}")
    return OpenAIBackend(base_url=str(options["base_url"]), model=str(options["model"]), api_key=api_key,
                         timeout=float(options.get("timeout", 120.0)), api=api,
                         logprobs=bool(options.get("logprobs", True)))


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register("openai", build)
