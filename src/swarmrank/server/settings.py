"""The server's own settings: auth, limits and timeouts, in one object passed to ``create_app``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from swarmrank.errors import ConfigError


@dataclass(frozen=True)
class ServerSettings:
    """How ``create_app`` guards the swarm. Every field has a safe default.

    ``rate_limit`` is requests per minute per API key (per client address with auth off); 0 turns
    the limit off. ``burst`` is the token bucket's size (default: one minute's worth).
    ``request_timeout`` is a hard limit on one request's round in seconds, on top of the round's
    own ``deadline`` option. ``max_rounds`` rounds run at once (0: no cap) and ``max_queued`` more wait;
    beyond that a request gets 429 with ``Retry-After``. ``chunk_chars``: the size of streamed content pieces.
    """

    auth: bool = True
    rate_limit: float = 60.0
    burst: int | None = None
    max_body_bytes: int = 64 * 1024
    request_timeout: float = 600.0
    keepalive_seconds: float = 15.0
    chunk_chars: int = 12
    max_rounds: int = 8
    max_queued: int = 32

    def __post_init__(self) -> None:
        if not self.rate_limit >= 0:
            raise ConfigError(f"rate limit must be >= 0 requests per minute, not {self.rate_limit}")
        if self.burst is not None and self.burst < 1:
            raise ConfigError(f"burst must be at least 1, not {self.burst}")
        if self.max_body_bytes < 1:
            raise ConfigError(f"the body size limit must be at least 1 byte, not {self.max_body_bytes}")
        if not self.request_timeout > 0:
            raise ConfigError(f"the request timeout must be > 0 seconds, not {self.request_timeout}")
        if self.max_rounds < 0 or self.max_queued < 0:
            raise ConfigError(f"max_rounds and max_queued must be >= 0, not {self.max_rounds} and {self.max_queued}")
        if not self.keepalive_seconds > 0 or self.chunk_chars < 1:
            raise ConfigError("keepalive_seconds must be > 0 and chunk_chars >= 1")

    @property
    def bucket_size(self) -> int:
        return self.burst if self.burst is not None else max(1, math.ceil(self.rate_limit))
