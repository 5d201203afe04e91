"""``GET /v1/rounds/{id}``: a stored round's full record (by id or a unique prefix of ≥ 4 characters)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from swarmrank.errors import AmbiguousRoundId, RoundNotFound, StorageError
from swarmrank.result import RoundResult
from swarmrank.server.deps import CallerDep, StateDep
from swarmrank.server.errors import ERROR_RESPONSES, APIError, from_swarm_error, round_lookup_error
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
    except (RoundNotFound, AmbiguousRoundId) as exc:  # answered without the store's message: it names the database
        raise round_lookup_error(exc, round_id) from None
    except StorageError as exc:
        raise from_swarm_error(exc) from None
