"""``GET /v1/models``: one model per protocol, plus ``swarmrank`` for the swarm's default protocol."""

from __future__ import annotations

from fastapi import APIRouter

from swarmrank.protocols import get_protocol, protocol_names
from swarmrank.server.deps import CallerDep, ServerState, StateDep
from swarmrank.server.errors import ERROR_RESPONSES, APIError
from swarmrank.server.routes.chat import MODEL_NAMESPACE, resolve_model
from swarmrank.server.schemas import ModelCard, ModelList

router = APIRouter(tags=["models"])


def model_cards(state: ServerState) -> list[ModelCard]:
    default = state.swarm.protocol
    cards = [ModelCard(id=MODEL_NAMESPACE, created=state.started,
                       description=f"swarm {state.swarm.name!r} with its default protocol, {default}")]
    cards += [ModelCard(id=f"{MODEL_NAMESPACE}/{name}", created=state.started, description=get_protocol(name).summary)
              for name in protocol_names()]
    return cards


@router.get("/v1/models", response_model=ModelList, responses={401: ERROR_RESPONSES[401], 429: ERROR_RESPONSES[429]})
async def list_models(state: StateDep, caller: CallerDep) -> ModelList:
    """The models this server answers to: ``swarmrank`` and ``swarmrank/<protocol>`` for each protocol."""
    return ModelList(data=model_cards(state))


@router.get("/v1/models/{model:path}", response_model=ModelCard, responses={
    401: ERROR_RESPONSES[401], 404: ERROR_RESPONSES[404], 429: ERROR_RESPONSES[429]})
async def get_model(model: str, state: StateDep, caller: CallerDep) -> ModelCard:
    """One model; a bare protocol name is answered with its ``swarmrank/<protocol>`` card."""
    protocol = resolve_model(model, state.swarm)
    wanted = MODEL_NAMESPACE if model == MODEL_NAMESPACE else f"{MODEL_NAMESPACE}/{protocol}"
    for card in model_cards(state):
        if card.id == wanted:
            return card
    raise APIError(404, f"The model '{model}' does not exist", code="model_not_found")  # unreachable in practice
