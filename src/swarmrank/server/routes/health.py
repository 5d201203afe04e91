"""``GET /healthz``: the process is up and serving its swarm (no auth, no model call)."""

from __future__ import annotations

from fastapi import APIRouter

from swarmrank.server.deps import StateDep
from swarmrank.server.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz(state: StateDep) -> Health:
    return Health(swarm=state.swarm.name, nodes=len(state.swarm.nodes), default_protocol=state.swarm.protocol,
                  auth=state.settings.auth)
