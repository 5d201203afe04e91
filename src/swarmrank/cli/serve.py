"""``swarmrank serve`` and ``swarmrank keys``: a thin Typer layer over :mod:`swarmrank.server`.

The server's dependencies (fastapi, uvicorn) are imported only when a command runs.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from swarmrank.cli._common import (
    ConfigOpt,
    LogLevel,
    LogLevelOpt,
    build_swarm,
    console,
    err,
    is_loopback,
    open_store,
)

keys_app = typer.Typer(
    rich_markup_mode=None, no_args_is_help=True, help="Create, list and revoke API keys for `swarmrank serve`.")



def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option("--host", help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535)] = 8000,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="accept requests without an API key")] = False,
    rate_limit: Annotated[float, typer.Option("--rate-limit", min=0,
                                              help="requests per minute per API key (0: no limit)")] = 60.0,
    burst: Annotated[int | None, typer.Option(
        "--burst", min=1, help="requests a key may make at once (default: a minute's worth)")] = None,
    max_body: Annotated[int, typer.Option("--max-body", min=1, help="largest request body in bytes")] = 64 * 1024,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=0.001, help="seconds a request's round may take (the round's deadline applies too)")] = 600.0,
    log_level: LogLevelOpt = LogLevel.info,
    max_rounds: Annotated[int, typer.Option(
        "--max-rounds", min=0, help="rounds running at once (0: no cap); more wait in a queue")] = 8,
    max_queue: Annotated[int, typer.Option(
        "--max-queue", min=0, help="rounds waiting for a slot; beyond them a request gets 429 with Retry-After")] = 32,
) -> None:
    """Serve the swarm as an OpenAI-compatible API: POST /v1/chat/completions, GET /v1/models, GET /v1/rounds/ID."""
    from swarmrank.config import load_config
    from swarmrank.server import ServerSettings, create_app
    from swarmrank.server.keys import list_keys

    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the installation
        from swarmrank.errors import ConfigError

        raise ConfigError(f"swarmrank serve needs fastapi and uvicorn ({exc.name} is not installed)") from None
    settings = ServerSettings(auth=not no_auth, rate_limit=rate_limit, burst=burst, max_body_bytes=max_body,
                              request_timeout=timeout, max_rounds=max_rounds, max_queued=max_queue)
    swarm = build_swarm(load_config(config), store="default")
    bind = host or "127.0.0.1"
    if no_auth:
        exposed = "" if is_loopback(bind) else f" and {bind} is not a loopback address: anyone who can reach it can"
        err.print(f"warning: authentication is off (--no-auth){exposed or ': any local process can'} use the swarm",
                  style="yellow", markup=False, highlight=False, soft_wrap=True)
    elif not any(k["revoked_at"] is None for k in list_keys(swarm.store)):
        err.print("no API keys yet: every request will be refused until you run `swarmrank keys create NAME`"
                  + (f" --config {config}" if config else ""), style="yellow", markup=False, highlight=False,
                  soft_wrap=True)
    app = create_app(swarm, settings=settings)
    err.print(f"serving swarm {swarm.name!r} ({len(swarm.nodes)} nodes, default protocol {swarm.protocol}) at "
              f"http://{bind}:{port}/v1; rounds and API keys are in {swarm.store.url}", markup=False,
              highlight=False, soft_wrap=True)
    try:
        uvicorn.run(app, host=bind, port=port, log_level=log_level.value)
    finally:
        swarm.close()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="a name for the key's holder (letters, digits, . _ @ -)")],
    config: ConfigOpt = None,
) -> None:
    """Create an API key and print it once (only its SHA-256 hash is stored)."""
    from swarmrank.server.keys import create_key

    store = open_store(config)
    try:
        key, _ = create_key(store, name)
        where = store.url
    finally:
        store.close()
    print(key)
    err.print(f"created API key {name!r} in {where}; it is shown only this once, so keep it now (a server "
              "accepts it when it stores rounds in this same database)", style="dim", markup=False,
              highlight=False, soft_wrap=True)


@keys_app.command("list")
def keys_list(config: ConfigOpt = None,
              as_json: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False) -> None:
    """List API keys (names and prefixes; the keys themselves are not stored)."""
    from swarmrank.cli.render import print_table
    from swarmrank.server.keys import list_keys

    store = open_store(config)
    try:
        keys = list_keys(store)
    finally:
        store.close()
    if as_json:
        print(json.dumps([{"name": k["name"], "prefix": k["prefix"], "created_at": k["created_at"].isoformat(),
                           "revoked_at": k["revoked_at"].isoformat() if k["revoked_at"] else None} for k in keys],
                         indent=2))
        return
    print_table(console, f"API keys ({len(keys)})", ["name", "key", "created (UTC)", "revoked (UTC)"],
                [[k["name"], k["prefix"] + "…", k["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
                  k["revoked_at"].strftime("%Y-%m-%d %H:%M:%S") if k["revoked_at"] else ""] for k in keys])


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="the name the key was created with")],
                config: ConfigOpt = None) -> None:
    """Revoke the active API key NAME; a running server refuses it from its next request."""
    from swarmrank.server.keys import revoke_key

    store = open_store(config)
    try:
        revoke_key(store, name)
    finally:
        store.close()
    err.print(f"revoked API key {name!r}", markup=False, highlight=False, soft_wrap=True)
