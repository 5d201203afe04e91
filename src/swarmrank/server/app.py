"""``create_app``: the OpenAI-compatible HTTP API over a :class:`~swarmrank.swarm.Swarm`.

    app = create_app(Swarm.from_config(load_config()), settings=ServerSettings(rate_limit=30))
    uvicorn.run(app)          # or: swarmrank serve

This module only wires the routers, the error handlers and the body-size limit together; each
route lives in :mod:`swarmrank.server.routes`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from swarmrank.errors import ConfigError
from swarmrank.server.deps import ServerState
from swarmrank.server.errors import install_handlers
from swarmrank.server.limits import BodyLimit, RateLimiter, RoundGate
from swarmrank.server.routes import chat, dashboard, health, models, rounds
from swarmrank.server.schemas import ChatCompletionChunk
from swarmrank.server.settings import ServerSettings
from swarmrank.store import Store
from swarmrank.swarm import Swarm

DESCRIPTION = """An OpenAI-compatible endpoint backed by a swarm: every request is one round in which
many nodes answer, judge each other and agree on the answer. The `model` names the consensus
protocol; responses carry an extra `swarmrank` field with the round id, confidence and candidates."""


def create_app(swarm: Swarm, *, store: Store | None = None, settings: ServerSettings | None = None) -> FastAPI:
    """An ASGI app serving ``swarm``.

    ``store`` holds the API keys and is where ``/v1/rounds`` reads rounds from; it defaults to the
    swarm's own store (where its rounds are saved). ``settings`` sets auth, limits and timeouts.
    Raises :class:`~swarmrank.errors.ConfigError` when auth is on but there is no store for keys.
    """
    from swarmrank import __version__

    settings = settings or ServerSettings()
    store = store if store is not None else swarm.store
    if settings.auth and store is None:
        raise ConfigError("API keys need a store: give the swarm or create_app a store, or turn auth off")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await swarm.aclose_backends()

    app = FastAPI(title="swarmrank", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.swarmrank = ServerState(swarm=swarm, store=store, settings=settings,
                                      limiter=RateLimiter(settings.rate_limit, settings.bucket_size),
                                      started=int(time.time()),
                                      rounds=RoundGate(settings.max_rounds, settings.max_queued))
    install_handlers(app)
    for module in (chat, models, rounds, health, dashboard):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _document_wire_formats(app)
    return app


def _document_wire_formats(app: FastAPI) -> None:
    """Complete the generated OpenAPI spec: the streamed chunk's schema, and 400 (not FastAPI's 422)
    for invalid requests, since every error is answered in OpenAI's shape."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            schemas = spec["components"]["schemas"]
            chunk = ChatCompletionChunk.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, schema in {**chunk.pop("$defs", {}), "ChatCompletionChunk": chunk}.items():
                schemas.setdefault(name, schema)
            for path in spec["paths"].values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
        assert app.openapi_schema is not None  # generate() keeps what it made
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
