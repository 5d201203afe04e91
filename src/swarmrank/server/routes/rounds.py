"""``GET /v1/rounds/{id}``: a stored round's full record (by id or a unique prefix of ≥ 4 characters)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from swarmrank.errors import StorageError
from swarmrank.result import RoundResult
from swarmrank.server.deps import CallerDep, StateDep
from swarmrank.server.errors import ERROR_RESPONSES, APIError, from_swarm_error
from swarmrank.server.schemas import ErrorResponse

router = APIRouter(tags=["rounds"])


@router.get("/v1/rounds/{round_id}", response_model=RoundResult, responses={
    400: {"model": ErrorResponse, "description": "an ambiguous id prefix"},
    401: ERROR_RESPONSES[401], 404: {"model": ErrorResponse, "description": "no such round"},
    429: ERROR_RESPONSES[429]})
async def get_round(round_id: str, state: StateDep, caller: CallerDep) -> RoundResult:
    """The full :class:`RoundResult` (``docs/round-schema.md``) of a round this server's store holds."""
    if state.store is None:
        raise APIError(404, "this server keeps no rounds (it has no store)", code="round_not_found")
    if "\x00" in round_id:  # no round id has one, and PostgreSQL refuses NUL in a query parameter (a 503)
        raise APIError(404, f"no round {round_id!r}", param="round_id", code="round_not_found")
    try:
        return await asyncio.to_thread(state.store.get_round, round_id)
    except StorageError as exc:
        # the store says which in its message; the database URL in it stays on the server
        message = str(exc)
        if message.startswith("no round"):
            raise APIError(404, f"no round {round_id!r}" + (" (a prefix needs at least 4 characters)"
                                                            if "prefix needs" in message else ""),
                           param="round_id", code="round_not_found") from None
        if "is ambiguous" in message:
            raise APIError(400, f"round prefix {round_id!r} is ambiguous; give more characters",
                           param="round_id", code="ambiguous_round_id") from None
        raise from_swarm_error(exc) from None
