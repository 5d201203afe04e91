"""Executors: where node backends run — in this process, or as actors on a Ray cluster.

``[executor] kind = "local"`` (the default) builds every backend in the coordinator's process, as
always: personas that name one model share one loaded model and its worker thread.

``kind = "ray"`` runs each model as Ray actors, placed by Ray anywhere on the cluster: one actor
per replica holds the backend (a loaded llama.cpp model, an HTTP client, a scripted node) and
serves its ``complete`` calls. The coordinator is unchanged: each node's backend is a
:class:`RayBackend` proxy whose ``complete`` submits the request to its actor and awaits the
reply. Personas that share a model (the same backend and options) share its actors, exactly as
the local executor shares one loaded model::

    [executor]
    kind = "ray"
    address = "auto"    # a running cluster (`ray start --head`, or RAY_ADDRESS); "local" starts one
                        # in this process for the run; or "HOST:PORT", "ray://HOST:PORT"
    replicas = 1        # actors per model; a [models.NAME] or [[nodes]] entry may set its own
    num_cpus = 1        # CPUs Ray reserves for each actor (default: Ray's — 1 to place it, 0 held)

Same seeds, same results: an actor starts its calls in the order the coordinator submitted them
(Ray runs async actor tasks out of order, so calls carry a sequence number), so a llama.cpp
model sees the same prompts in the same order — and reuses the same KV-cache prefixes — as in
process. With several replicas each node is pinned to one replica (round-robin in config order),
so a node's calls still reach one model in order.

A ``remote`` node (a node agent, ``swarmrank node serve``) already runs elsewhere and its signed
replies must be verified by the coordinator itself, so its backend stays in process.

Errors raised inside an actor reach the round as the same :class:`~swarmrank.errors.NodeError`
the backend raised; an actor that dies becomes a ``NodeError`` and is started afresh on the next
call. A call's ``timeout`` runs from when it starts in its actor (waiting for an actor to boot or
for its turn is not slowness; the round's deadline still bounds it), and a timed-out or cancelled
call is cancelled inside its actor too (a llama.cpp call stops at its next token).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from swarmrank.config import ExecutorSection, SwarmConfig
from swarmrank.errors import ConfigError, NodeError, NodeTimeoutError
from swarmrank.nodes.base import Backend, BuildContext, Completion, CompletionRequest, create_backend
from swarmrank.settings import Settings

__all__ = ["EXECUTORS", "BackendActor", "Executor", "LocalExecutor", "RayBackend", "RayExecutor", "make_executor",
           "with_executor"]

EXECUTORS = ("local", "ray")
#: the option a [models.NAME] or [[nodes]] entry may carry to override ``[executor] replicas``
REPLICAS_KEY = "replicas"
#: backends the ray executor keeps in the coordinator: a node agent's signed replies are verified
#: where the round runs, not in a worker elsewhere on the cluster
IN_PROCESS = ("remote",)
PROBE_TIMEOUT = 5.0  # seconds to wait for a cluster's port before calling it unreachable


class Executor(ABC):
    """Builds the backend a node talks to (the extension point ``Swarm.from_config`` uses)."""

    kind: str = "executor"

    @abstractmethod
    def create_backend(self, name: str, options: Mapping[str, Any], ctx: BuildContext) -> Backend:
        """The backend for one node: ``name`` and ``options`` as in :func:`~swarmrank.nodes.base.create_backend`."""


def _split_replicas(options: Mapping[str, Any], default: int) -> tuple[dict[str, Any], int]:
    rest = dict(options)
    replicas = rest.pop(REPLICAS_KEY, default)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ConfigError(f"replicas must be a whole number ≥ 1, not {replicas!r}")
    return rest, replicas


class LocalExecutor(Executor):
    """Backends in this process (``replicas`` is accepted and ignored: one loaded model serves all)."""

    kind = "local"

    def create_backend(self, name: str, options: Mapping[str, Any], ctx: BuildContext) -> Backend:
        rest, _ = _split_replicas(options, 1)
        return create_backend(name, rest, ctx)


# -- the actor ---------------------------------------------------------------------------------


class BackendActor:
    """Holds one backend in a Ray worker and serves its calls, started in submission order.

    Ray runs an async actor's tasks out of order, so each call carries the sequence number its
    proxy gave it; a call starts (hands its request to the backend) only after every earlier one
    has. The backend's own queue (a llama.cpp model's one worker) then runs them in that order.
    """

    def __init__(self, name: str, options: Mapping[str, Any], settings: Settings) -> None:
        # llama.cpp's OpenMP threads spin while idle; one process per model on shared cores then
        # starves the others (a round ran 4x slower than in one process). Set before the model loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self._backend = create_backend(name, options, BuildContext(shared={"settings": settings}))
        # the proxy queues (its calls wait for the actor to start and for their turn), so the round
        # leaves ``request.timeout`` to us: a backend that does not time itself is timed here, from its start
        self._timed = not self._backend.queues_calls
        self._next = 0  # the sequence number whose call starts next
        self._turn: asyncio.Condition | None = None
        self._running: dict[int, asyncio.Future[Completion]] = {}
        self._cancelled: set[int] = set()

    async def complete(self, seq: int, request: CompletionRequest) -> Completion:
        if self._turn is None:
            self._turn = asyncio.Condition()
        async with self._turn:
            await self._turn.wait_for(lambda: self._next == seq)
            self._next += 1
            self._turn.notify_all()
            if seq in self._cancelled:
                self._cancelled.discard(seq)
                raise NodeError("cancelled before start")
            # a task starts on the loop's next pass, in creation order: calls reach the backend in turn
            task = asyncio.ensure_future(self._backend.complete(request))
            self._running[seq] = task
        try:
            if self._timed and request.timeout is not None:
                try:
                    return await asyncio.wait_for(task, request.timeout)
                except TimeoutError:
                    raise NodeTimeoutError(f"timeout after {request.timeout:.1f}s") from None
            return await task
        finally:
            self._running.pop(seq, None)

    async def cancel(self, seq: int) -> None:
        """The coordinator gave up on call ``seq`` (timeout, deadline): stop it, or skip it when its turn comes."""
        task = self._running.get(seq)
        if task is not None:
            task.cancel()
        elif seq >= self._next:
            self._cancelled.add(seq)

    def where(self) -> dict[str, Any]:
        """Which process and Ray node serve this backend."""
        import ray

        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}


# -- the coordinator's side --------------------------------------------------------------------


@dataclass(eq=False)
class _Replica:
    handle: Any
    seq: int = 0

    def next_seq(self) -> int:
        seq, self.seq = self.seq, self.seq + 1
        return seq


@dataclass(eq=False)
class _ActorPool:
    """The actors of one model (backend + options): started on first use, killed by :meth:`kill`."""

    ray: Any
    name: str
    options: dict[str, Any]
    settings: Settings
    replicas: int
    actor_options: dict[str, Any]
    _actors: list[_Replica | None] = field(default_factory=list)
    _assigned: int = 0

    def __post_init__(self) -> None:
        self._actors = [None] * self.replicas

    def assign(self) -> int:
        """The replica the next node is pinned to (round-robin)."""
        index, self._assigned = self._assigned % self.replicas, self._assigned + 1
        return index

    def replica(self, index: int) -> _Replica:
        actor = self._actors[index]
        if actor is None:
            remote = self.ray.remote(BackendActor).options(**self.actor_options)
            actor = self._actors[index] = _Replica(remote.remote(self.name, self.options, self.settings))
        return actor

    def forget(self, index: int, actor: _Replica) -> None:
        if self._actors[index] is actor:
            self._actors[index] = None

    def kill(self) -> None:
        actors, self._actors = self._actors, [None] * self.replicas
        if not self.ray.is_initialized():  # disconnected already: the cluster dropped our actors
            return
        for actor in actors:
            if actor is not None:
                self.ray.kill(actor.handle)


@dataclass(eq=False)
class RayBackend(Backend):
    """A node's backend as seen by the coordinator: each call goes to the node's actor and is awaited."""

    pool: _ActorPool
    index: int
    inner: str  # the backend's own description
    identity: str  # the backend's own cache identity: the evaluation cache is shared with the local executor
    # calls wait for the actor (its start-up, their turn); the actor enforces ``request.timeout`` from
    # the moment a call starts, so waiting is not charged as slowness (the round's deadline still applies)
    queues_calls: bool = True
    name: str = "ray"

    def describe(self) -> str:
        replica = f", replica {self.index + 1}/{self.pool.replicas}" if self.pool.replicas > 1 else ""
        return f"ray({self.inner}{replica})"

    def cache_identity(self) -> str:
        return self.identity

    async def complete(self, request: CompletionRequest) -> Completion:
        exceptions = self.pool.ray.exceptions
        actor = self.pool.replica(self.index)
        seq = actor.next_seq()
        ref = actor.handle.complete.remote(seq, request)
        try:
            return await ref
        except asyncio.CancelledError:
            actor.handle.cancel.remote(seq)  # the round stopped waiting: stop the call in the actor too
            raise
        except exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None  # the backend's own error, as the local executor would raise it
            raise NodeError(f"ray task failed: {_first_line(exc)}") from None
        except exceptions.RayActorError as exc:
            self.pool.forget(self.index, actor)  # the next call starts a fresh actor
            raise NodeError(f"the ray actor serving {self.inner} died: {_first_line(exc)}") from None
        except exceptions.RayError as exc:
            raise NodeError(f"ray: {_first_line(exc)}") from None

    async def where(self) -> dict[str, Any]:
        """The pid and Ray node id of the actor serving this node (starting it if needed)."""
        return await self.pool.replica(self.index).handle.where.remote()

    def unload(self) -> None:
        """Kill the model's actors (freeing the model wherever it was loaded); the next call starts them again."""
        self.pool.kill()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: install swarmrank[ray] (pip install 'swarmrank[ray]')") from None
    return ray


def _probe(address: str) -> None:
    """Fail fast on a cluster that is not there (ray.init would wait for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"[executor] address must be 'auto', 'local', 'HOST:PORT' or 'ray://HOST:PORT', "
                          f"not {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def _prepare_local_cluster() -> None:
    """The environment a Ray instance started for this run inherits (only what the user has not set)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry from a cluster we start
    os.environ.setdefault("RAY_worker_niceness", "0")  # Ray's workers run at nice 15; here they *are* the run
    if not any(k in os.environ for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
        # token auth with this run's own token: without it, Ray writes ~/.ray/auth_token, which every
        # later `ray start` on the machine then silently enables
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        try:
            from ray._raylet import Config  # type: ignore[attr-defined]

            Config.initialize("")  # Ray reads its settings at import; read them again (as Ray itself does)
        except Exception:  # a private hook: if it moves, Ray falls back to its own token file
            pass


def _auto_address(ray: Any) -> str | None:
    """The address "auto" would connect to (RAY_ADDRESS, else the cluster `ray start` last recorded)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address("auto")
    except Exception:  # a private helper: if it moves, let ray.init find the cluster itself
        return os.environ.get("RAY_ADDRESS") or None


class RayExecutor(Executor):
    """Backends as Ray actors (see the module docstring). Connects to the cluster when created."""

    kind = "ray"

    def __init__(self, section: ExecutorSection, settings: Settings, *, ray: Any = None) -> None:
        self.ray = ray or _import_ray()
        self.section = section
        self.settings = settings
        self._pools: dict[str, _ActorPool] = {}
        self.connect()

    def connect(self) -> None:
        """Join the configured cluster, unless this process is already connected to one (then use that)."""
        ray, address = self.ray, self.section.address
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        if address == "local":
            _prepare_local_cluster()
            kwargs |= {"address": "local", "include_dashboard": False}
        else:
            target = _auto_address(ray) if address == "auto" else address
            if address == "auto" and target is None:
                raise ConfigError("no running Ray cluster found: start one (ray start --head) or set RAY_ADDRESS, "
                                  "or set [executor] address = \"local\" to start one for this run")
            if target is not None:
                _probe(target)
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except Exception as exc:  # ConnectionError, version mismatch, a missing ray[client]...
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {_first_line(exc)}") from None

    def create_backend(self, name: str, options: Mapping[str, Any], ctx: BuildContext) -> Backend:
        rest, replicas = _split_replicas(options, self.section.replicas)
        if name in IN_PROCESS:
            return create_backend(name, rest, ctx)
        # built here too (it loads nothing): bad options fail now, and the proxy reports the same
        # description and cache identity as the in-process backend
        template = create_backend(name, rest, ctx)
        key = json.dumps([name, rest, replicas], sort_keys=True, default=str)
        pool = self._pools.get(key)
        if pool is None:
            actor_options: dict[str, Any] = {"max_restarts": 0}
            if self.section.num_cpus is not None:
                actor_options["num_cpus"] = self.section.num_cpus
            pool = self._pools[key] = _ActorPool(self.ray, name, rest, self.settings, replicas, actor_options)
        index = pool.assign()
        pool.replica(index)  # start the actor now (it loads nothing yet): it boots while the swarm is built
        return RayBackend(pool, index, template.describe(), template.cache_identity())


def make_executor(section: ExecutorSection, settings: Settings) -> Executor:
    """The executor a config's ``[executor]`` section names (connecting to Ray for ``kind = "ray"``)."""
    if section.kind == "ray":
        return RayExecutor(section, settings)
    return LocalExecutor()


def with_executor(config: SwarmConfig, kind: str | None) -> SwarmConfig:
    """``config`` with ``[executor] kind`` overridden (the CLI's ``--executor``); ``None`` keeps it."""
    if kind is None:
        return config
    if kind not in EXECUTORS:
        raise ConfigError(f"unknown executor {kind!r} (known: {', '.join(EXECUTORS)})")
    return config.model_copy(update={"executor": config.executor.model_copy(update={"kind": kind})})
