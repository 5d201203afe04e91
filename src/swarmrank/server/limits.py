"""Request limits: a token bucket per caller and a cap on request body size."""

from __future__ import annotations

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
