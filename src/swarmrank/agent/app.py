"""``create_agent_app``: one node agent over HTTP (``swarmrank node serve``).

    app = create_agent_app(agent_from_config(load_config("swarm.toml"), node="alice"))
    uvicorn.run(app, port=9101)

Routes: ``POST /v1/node/complete`` and ``GET /v1/node/identity`` (wire format in
:mod:`swarmrank.wire`). Every error is JSON in the server's shape (``{"error": {...}}``):
400 for a body that is not a valid request, 403 for a role the node lacks, 409 for a request meant
for another node, 413 for a body over the limit, 502 when the backend fails, 504 when it runs past
the request's timeout. Never a traceback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from swarmrank.agent.core import NodeAgent
from swarmrank.errors import NodeError, NodeTimeoutError, RequestRefused, WireError
from swarmrank.server.errors import ERROR_RESPONSES, APIError, install_handlers
from swarmrank.server.limits import BodyLimit
from swarmrank.wire import CompleteReply, CompleteRequest, IdentityReply, parse_object, request_digest

DEFAULT_MAX_BODY = 1024 * 1024

router = APIRouter(prefix="/v1/node")


def get_agent(request: Request) -> NodeAgent:
    agent: NodeAgent = request.app.state.agent
    return agent


AgentDep = Annotated[NodeAgent, Depends(get_agent)]


def _invalid(exc: ValidationError) -> APIError:
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return APIError(400, f"invalid request: {where}: {first['msg']}{more}", param=where, code="invalid_value")


@router.post("/complete", response_model=CompleteReply,
             responses={s: ERROR_RESPONSES.get(s, {"description": d}) for s, d in {
                 400: "", 403: "the node lacks the role the purpose needs", 409: "the request names another node",
                 413: "", 502: "the node's backend failed", 504: "the call ran past the request's timeout"}.items()})
async def complete(request: Request, agent: AgentDep) -> CompleteReply:
    """Complete one request (a ``CompleteRequest`` JSON object) and sign the result."""
    try:
        data = parse_object(await request.body())
        digest = request_digest(data)
    except WireError as exc:
        raise APIError(400, str(exc), code="invalid_json") from None
    try:
        wire = CompleteRequest.model_validate(data, strict=True)
    except ValidationError as exc:
        raise _invalid(exc) from None
    return await agent.complete(wire, digest)


@router.get("/identity", response_model=IdentityReply)
async def identity(agent: AgentDep) -> IdentityReply:
    """The node id, public key, roles and backend (unsigned: each signed reply proves the key)."""
    return agent.describe()


def create_agent_app(agent: NodeAgent, *, max_body_bytes: int = DEFAULT_MAX_BODY) -> FastAPI:
    """An ASGI app serving ``agent``; the backend is closed when the app shuts down."""
    from swarmrank import __version__

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await agent.aclose()

    app = FastAPI(title=f"swarmrank node {agent.node_id}", version=__version__, lifespan=lifespan,
                  description="One swarmrank node: signed completions for a coordinator (docs/node-agent.md).")
    app.state.agent = agent
    install_handlers(app)

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestRefused)
        status, code = (409, "wrong_node") if exc.kind == "wrong_node" else (403, "missing_role")
        return APIError(status, str(exc), code=code).response()

    async def node_failed(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, NodeError)
        if isinstance(exc, NodeTimeoutError):
            return APIError(504, str(exc), type="timeout_error", code="node_timeout").response()
        return APIError(502, str(exc), type="server_error", code="node_error").response()

    app.add_exception_handler(RequestRefused, refused)
    app.add_exception_handler(NodeError, node_failed)
    app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app
