"""The node extension point: a backend turns one request into one completion.

A :class:`Node` is an identity (id + Ed25519 key), a :class:`Persona` (system prompt and sampling)
and a :class:`Backend`. Backends come from plugins (:mod:`swarmrank.plugins`, hook
``register_backends``): the built-in ``llamacpp``, ``openai``, ``scripted`` and ``remote`` backends
register through the same hook as outside ones; :func:`register_backend` adds one at run time.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

from pydantic import Field

from swarmrank.errors import ConfigError
from swarmrank.options import options
from swarmrank.plugins import load

Purpose = Literal["answer", "grade", "judge", "rank", "revise", "probe"]


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class CompletionRequest:
    """What a node is asked to do.

    ``messages`` is the chat form. Backends whose model has no chat template (a base model) build
    a completion prompt from the same messages. ``purpose`` and ``context`` tell scripted backends
    what is being asked (the question, the two candidates being compared...); real backends ignore
    them.
    """

    messages: tuple[Message, ...]
    purpose: Purpose = "answer"
    temperature: float = 0.2
    max_tokens: int = 128
    seed: int | None = None
    stop: tuple[str, ...] = ()
    top_logprobs: int | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    #: "json": reply with one JSON object (matching ``json_schema`` when given); backends that can
    #: constrain decoding (llama.cpp grammars, OpenAI-compatible ``response_format``) do so
    response_format: Literal["text", "json"] = "text"
    json_schema: Mapping[str, Any] | None = None
    timeout: float | None = None  # seconds this call may run once it starts (the round sets it)
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str = "stop"
    cached_tokens: int = 0  # prompt tokens served from a KV cache instead of being decoded
    # probabilities of the candidate verdict letters, when the backend can give them
    choice_probs: Mapping[str, float] | None = None


class Backend(ABC):
    """How to get a completion. Implementations must be safe to call concurrently."""

    name: str = "backend"
    # True when calls wait in a queue inside the backend (one llama.cpp model serves several
    # personas) and the backend enforces ``request.timeout`` from the moment a call starts; the
    # round then applies only its deadline from outside, so queueing is not charged as slowness.
    queues_calls: bool = False

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion:
        """Return one completion or raise a :class:`~swarmrank.errors.NodeError`."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources bound to the running event loop (HTTP connection pools)."""

    def unload(self) -> None:  # noqa: B027 - optional hook
        """Release what outlives an event loop (a loaded model); the next call loads it again."""

    def describe(self) -> str:
        return self.name

    def cache_identity(self) -> str:
        """Everything about this backend that changes its completions (for the evaluation cache)."""
        return self.describe()


@options
class Persona:
    """How a node is asked: its system prompt and sampling. The persona keys of a ``[[nodes]]``
    entry in a swarm config are exactly these fields (validated, with these defaults)."""

    system: str = ""
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.2
    max_tokens: Annotated[int, Field(ge=1)] = 128
    judge_max_tokens: Annotated[int, Field(ge=1)] = 96
    seed: int = 0


@dataclass
class Node:
    """One member of the swarm."""

    id: str
    backend: Backend
    persona: Persona = field(default_factory=Persona)
    roles: frozenset[str] = frozenset({"answer", "judge"})
    public_key: str = ""
    signer: Callable[[bytes], bytes] | None = field(default=None, repr=False)

    @property
    def answers(self) -> bool:
        return "answer" in self.roles

    @property
    def judges(self) -> bool:
        return "judge" in self.roles

    def sign(self, payload: bytes) -> bytes:
        if self.signer is None:
            raise ConfigError(f"node {self.id!r} has no signing key")
        return self.signer(payload)

    async def complete(self, request: CompletionRequest) -> Completion:
        start = time.perf_counter()
        result = await self.backend.complete(request)
        if result.seconds == 0.0:
            result = replace(result, seconds=time.perf_counter() - start)
        return result


BackendFactory = Callable[[Mapping[str, Any], "BuildContext"], Backend]


@dataclass
class BuildContext:
    """Shared state while a swarm is built: models loaded once and shared between personas."""

    shared: dict[str, Any] = field(default_factory=dict)


_BACKENDS: dict[str, BackendFactory] = {}


def _registry() -> dict[str, BackendFactory]:
    """Every backend factory by name: the plugins' (:mod:`swarmrank.plugins`, the built-ins
    included), then any registered at run time."""
    load("register_backends", register_backend)
    return _BACKENDS


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``backend = "<name>"`` usable in swarm configs (replacing a backend of the same name)."""
    _registry()[name] = factory


def backend_names() -> list[str]:
    return sorted(_registry())


def create_backend(name: str, options: Mapping[str, Any], ctx: BuildContext) -> Backend:
    backends = _registry()
    try:
        factory = backends[name]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r} (known: {', '.join(sorted(backends))})") from None
    return factory(options, ctx)
