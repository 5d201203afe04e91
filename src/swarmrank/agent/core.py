"""One node as a service: a backend, an Ed25519 identity, and a signature on every completion.

    agent = agent_from_config(load_config("swarm.toml"), node="alice")
    reply = await agent.complete(CompleteRequest.model_validate(body), request_digest(body))

The HTTP layer (:mod:`swarmrank.agent.app`) only parses, calls :meth:`NodeAgent.complete` and turns
errors into JSON; ``swarmrank node serve`` builds the agent with :func:`agent_from_config`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from swarmrank.config import NodeSection, SwarmConfig
from swarmrank.errors import ConfigError, NodeError, NodeTimeoutError, RequestRefused
from swarmrank.identity import Identity, check_node_id, load_or_create
from swarmrank.nodes.base import Backend, CompletionRequest, Message
from swarmrank.nodes.factory import build_node
from swarmrank.settings import Settings
from swarmrank.wire import CompleteReply, CompleteRequest, IdentityReply, signed_content, signing_hash

log = logging.getLogger("swarmrank.agent")

#: purposes that need the node's judge role; the others (answer, revise, probe) need answer, except probe
JUDGE_PURPOSES = frozenset({"judge", "grade", "rank"})
ANSWER_PURPOSES = frozenset({"answer", "revise"})


@dataclass
class NodeAgent:
    """A node served on its own: completes requests with ``backend`` and signs them as ``identity``."""

    identity: Identity
    backend: Backend
    roles: frozenset[str] = frozenset({"answer", "judge"})

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    def describe(self) -> IdentityReply:
        return IdentityReply(node=self.node_id, public_key=self.identity.public_hex, roles=sorted(self.roles),
                             backend=self.backend.describe())

    async def complete(self, request: CompleteRequest, digest: str) -> CompleteReply:
        """Complete ``request`` (whose canonical digest is ``digest``) and sign the result.

        Raises :class:`RequestRefused`, :class:`~swarmrank.errors.NodeTimeoutError` when the
        request's ``timeout`` passes, and :class:`~swarmrank.errors.NodeError` when the backend fails.
        """
        if request.node is not None and request.node != self.node_id:
            raise RequestRefused(f"this agent is node {self.node_id!r}, not {request.node!r}", kind="wrong_node")
        needs = ("judge" if request.purpose in JUDGE_PURPOSES
                 else "answer" if request.purpose in ANSWER_PURPOSES else None)
        if needs is not None and needs not in self.roles:
            raise RequestRefused(f"node {self.node_id!r} does not have the {needs!r} role needed to "
                                 f"{request.purpose}", kind="role")
        inner = CompletionRequest(
            messages=tuple(Message(m.role, m.content) for m in request.messages), purpose=request.purpose,
            temperature=request.temperature, max_tokens=request.max_tokens, seed=request.seed,
            stop=tuple(request.stop), top_logprobs=request.top_logprobs, timeout=request.timeout,
            context=request.context, top_p=request.top_p, presence_penalty=request.presence_penalty,
            frequency_penalty=request.frequency_penalty, response_format=request.response_format,
            json_schema=request.json_schema)
        start = time.perf_counter()
        try:
            if request.timeout is not None and not self.backend.queues_calls:
                async with asyncio.timeout(request.timeout):
                    completion = await self.backend.complete(inner)
            else:  # a queueing backend times the call itself from when it starts running
                completion = await self.backend.complete(inner)
        except TimeoutError:
            raise NodeTimeoutError(f"node {self.node_id!r} did not finish within {request.timeout:g}s",
                                   node=self.node_id) from None
        except NodeError:
            raise
        except Exception as exc:  # a backend bug is this node failing, not the agent
            log.exception("backend of node %s failed", self.node_id)
            raise NodeError(f"node {self.node_id!r} failed: {type(exc).__name__}: {exc}", node=self.node_id) from None
        probs = completion.choice_probs
        if probs is not None:
            probs = {str(k): float(v) for k, v in probs.items()}
            if not all(math.isfinite(v) for v in probs.values()):
                probs = None
        content = signed_content(node=self.node_id, nonce=request.nonce, request=digest, text=completion.text,
                                 prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                                 cached_tokens=completion.cached_tokens, finish_reason=completion.finish_reason,
                                 choice_probs=probs)
        try:
            signature = self.identity.sign(signing_hash(content)).hex()
        except ValueError as exc:  # a completion text with a lone surrogate cannot be put in canonical JSON
            raise NodeError(f"node {self.node_id!r} produced text that cannot be signed ({exc})",
                            node=self.node_id) from None
        return CompleteReply(**{k: v for k, v in content.items() if k != "protocol"},
                             public_key=self.identity.public_hex, seconds=time.perf_counter() - start,
                             signature=signature)

    async def aclose(self) -> None:
        await self.backend.close()
        self.backend.unload()


def agent_from_config(config: SwarmConfig, *, model: str | None = None, node: str | None = None,
                      settings: Settings | None = None) -> NodeAgent:
    """The agent for one node of ``config``.

    ``node`` names a ``[[nodes]]`` entry (its backend options and roles) and is the agent's node id
    (its key lives in ``SWARMRANK_HOME/keys/<node>.pem``); ``model`` names a ``[models.NAME]`` entry
    and replaces the node's model. Either alone works: a model alone serves under its own name with
    both roles. The node is built by the same factory as :meth:`~swarmrank.swarm.Swarm.from_config`'s
    (:func:`swarmrank.nodes.factory.build_node`).
    """
    if model is None and node is None:
        raise ConfigError("give --model NAME (a [models.NAME] entry) or --node ID (a [[nodes]] entry), or both")
    if model is not None and model not in config.models:
        raise ConfigError(f"no [models.{model}] in the config (known: {_names(config.models)})")
    node_id = check_node_id(node if node is not None else str(model))
    section = next((n for n in config.nodes if n.id == node_id), None)
    if section is None and model is None:
        raise ConfigError(f"no node {node_id!r} in the config (known: {_names(n.id for n in config.nodes)}); "
                          "give --model NAME to serve a [models.NAME] entry under this id")
    if section is None:  # a model alone: served under its own name, with both roles
        section = NodeSection(id=node_id, model=model)
    elif model is not None:
        section = section.model_copy(update={"model": model, "backend": None})
    settings = settings or Settings.from_env()
    built = build_node(config, section, settings=settings)
    # the agent signs every completion itself, whatever its backend
    identity = built.identity or load_or_create(settings.keys_dir, node_id)
    return NodeAgent(identity=identity, backend=built.node.backend, roles=built.node.roles)


def _names(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "none"
