"""Cached node completions, so every protocol in an evaluation is scored on the same node outputs.

A :class:`CachingBackend` wraps a node's backend. The key is a hash of everything that decides a
completion — the node id, the backend's description, the messages, the sampling parameters, the
seed, the purpose and the request context — so the same request made by two protocols, or by a
rerun, is answered from the store without calling the model. Failures are not cached: a rerun
tries again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict, dataclass, field

from swarmrank.eval.store import CompletionCache
from swarmrank.nodes.base import Backend, Completion, CompletionRequest, Node
from swarmrank.store.engine import Database


def cache_key(node_id: str, backend: Backend, request: CompletionRequest) -> str:
    payload = {
        "node": node_id,
        "backend": backend.cache_identity(),
        "messages": [[m.role, m.content] for m in request.messages],
        "purpose": request.purpose,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "seed": request.seed,
        "stop": list(request.stop),
        "top_logprobs": request.top_logprobs,
        "context": request.context,
    }
    blob = json.dumps(payload, sort_keys=True, default=list, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


@dataclass
class CachingBackend(Backend):
    """Answer from the store when this exact request was made before; else call and remember."""

    inner: Backend
    node_id: str
    store: CompletionCache
    stats: CacheStats = field(default_factory=CacheStats)
    name: str = "cached"

    def __post_init__(self) -> None:
        self.queues_calls = self.inner.queues_calls

    def describe(self) -> str:
        return self.inner.describe()

    def cache_identity(self) -> str:
        return self.inner.cache_identity()

    async def complete(self, request: CompletionRequest) -> Completion:
        key = cache_key(self.node_id, self.inner, request)
        stored = await asyncio.to_thread(self.store.get, key)
        if stored is not None:
            self.stats.hits += 1
            data = json.loads(stored)
            return Completion(**data)
        self.stats.misses += 1
        completion = await self.inner.complete(request)
        await asyncio.to_thread(self.store.put, key, self.node_id, json.dumps(asdict(completion)))
        return completion

    async def close(self) -> None:
        await self.inner.close()

    def unload(self) -> None:
        self.inner.unload()


def with_cache(nodes: list[Node], store: Database, stats: CacheStats | None = None) -> list[Node]:
    """Copies of ``nodes`` whose backends answer from (and fill) the completion cache in ``store``."""
    stats = stats or CacheStats()
    cache = CompletionCache(store)
    cached: list[Node] = []
    for node in nodes:
        backend = CachingBackend(inner=node.backend, node_id=node.id, store=cache, stats=stats)
        cached.append(Node(id=node.id, backend=backend, persona=node.persona, roles=node.roles,
                           public_key=node.public_key, signer=node.signer))
    return cached
