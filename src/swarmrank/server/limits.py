"""Request limits: a token bucket per caller, a cap on request body size and a cap on rounds in flight."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from swarmrank.server.errors import APIError


class RateLimiter:
    """Token buckets per caller: ``per_minute`` tokens a minute, at most ``size`` saved up.

    Used from the event loop only (no lock). ``per_minute=0`` turns the limit off.
    """

    MAX_CALLERS = 10_000

    def __init__(self, per_minute: float, size: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.size = size
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, caller: str) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until a token is free."""
        if self.per_minute == 0:
            return 0.0
        now = self._clock()
        tokens, last = self._buckets.get(caller, (float(self.size), now))
        tokens = min(float(self.size), tokens + (now - last) * self._rate)
        if tokens >= 1.0:
            self._buckets[caller] = (tokens - 1.0, now)
            self._prune(now)
            return 0.0
        self._buckets[caller] = (tokens, now)
        return (1.0 - tokens) / self._rate

    def _prune(self, now: float) -> None:
        """Forget callers whose buckets are full again (they are indistinguishable from new ones)."""
        if len(self._buckets) <= self.MAX_CALLERS:
            return
        full_after = self.size / self._rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


class BodyLimit:
    """ASGI middleware: answer 413 to any request body over ``max_bytes`` (declared or streamed).

    The body is read here (it is small by construction) and replayed to the app.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the app expects

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = APIError(413, f"the request body is larger than the server's limit of {self.max_bytes} bytes",
                         code="request_too_large", headers={"connection": "close"})
        await error.response()(scope, receive, send)


class RoundGate:
    """A cap on rounds in flight: ``max_running`` run at once, up to ``max_queued`` more wait their turn
    (first come, first served), and any beyond are refused at once with a 429 whose ``Retry-After``
    estimates when a slot frees (from how long recent rounds took).

    ``max_running=0`` turns the cap off. Used from the event loop only.
    """

    def __init__(self, max_running: int, max_queued: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_running = max_running
        self.max_queued = max_queued
        self.admitted = 0  # running + waiting
        self._clock = clock
        self._semaphore: asyncio.Semaphore | None = None
        self._mean_seconds = 10.0  # a first guess until rounds have finished

    @property
    def waiting(self) -> int:
        return max(0, self.admitted - self.max_running)

    def admit(self) -> RoundTicket:
        """A place in line, or a 429 when the queue is full (call before any response is sent)."""
        if self.max_running and self.admitted >= self.max_running + self.max_queued:
            ahead = self.admitted - self.max_running + 1
            wait = max(1, math.ceil(self._mean_seconds * ahead / self.max_running))
            raise APIError(429, f"the swarm is busy: {self.max_running} round(s) running and {self.max_queued} "
                                f"waiting; retry in {wait}s", type="requests", code="too_many_rounds",
                           headers={"retry-after": str(wait)})
        self.admitted += 1
        return RoundTicket(self)

    def _gate(self) -> asyncio.Semaphore:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_running)
        return self._semaphore

    def _finished(self, seconds: float) -> None:
        self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * seconds


class RoundTicket:
    """One admitted request: ``async with ticket:`` waits for a slot and holds it while the round runs.
    ``release()`` (idempotent) gives the place back without running, e.g. when the client left."""

    def __init__(self, gate: RoundGate) -> None:
        self.gate = gate
        self.ahead = gate.waiting  # rounds this one waits behind when admitted
        self._released = False
        self._holding = False
        self._started = 0.0

    async def __aenter__(self) -> RoundTicket:
        if self.gate.max_running:
            await self.gate._gate().acquire()
            self._holding = True
        self._started = self.gate._clock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._holding:
            self.gate._gate().release()
            self._holding = False
            self.gate._finished(self.gate._clock() - self._started)
        self.release()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.gate.admitted -= 1
