"""Dependencies shared by the routes, as ``Annotated`` aliases: the server state and the caller."""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from swarmrank.server.errors import APIError
from swarmrank.server.keys import find_key
from swarmrank.server.limits import RateLimiter, RoundGate
from swarmrank.server.settings import ServerSettings
from swarmrank.store import Store
from swarmrank.swarm import Swarm

log = logging.getLogger("swarmrank.server")


@dataclass
class ServerState:
    """What one app serves: the swarm, the store (rounds and API keys), settings and the limiter."""

    swarm: Swarm
    store: Store | None
    settings: ServerSettings
    limiter: RateLimiter
    started: int
    rounds: RoundGate


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.swarmrank
    return state


StateDep = Annotated[ServerState, Depends(get_state)]

_bearer = HTTPBearer(auto_error=False, description="an API key from `swarmrank keys create NAME`")


async def get_caller(request: Request, state: StateDep,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """Who is calling (``key:<name>``, or ``addr:<ip>`` with auth off), after the key check and the rate limit."""
    if state.settings.auth:
        if credentials is None:
            raise APIError(401, "missing API key: send the header 'Authorization: Bearer <key>' "
                                "(create a key with `swarmrank keys create NAME`)", code="invalid_api_key")
        assert state.store is not None  # create_app refuses auth without a store
        record = await asyncio.to_thread(find_key, state.store, credentials.credentials)
        if record is None:
            log.warning("refused an API key (%s…): no active key like it in %s", credentials.credentials[:7],
                        state.store.url)
            raise APIError(401, "incorrect or revoked API key. Keys belong to one database: this server knows "
                                "only the keys of the database it stores rounds in (its start-up line names it), "
                                "so a key made by `swarmrank keys create` with another --config or SWARMRANK_DB "
                                "is unknown here", code="invalid_api_key")
        caller = f"key:{record['name']}"
    else:
        caller = f"addr:{request.client.host if request.client else 'unknown'}"
    wait = state.limiter.take(caller)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise APIError(429, f"rate limit reached ({state.limiter.per_minute:g} requests per minute); "
                            f"retry in {seconds}s", type="requests", code="rate_limit_exceeded",
                       headers={"retry-after": str(seconds)})
    return caller


CallerDep = Annotated[str, Depends(get_caller)]
