"""Shared fixtures: every test gets its own SWARMRANK_HOME; stores, API keys, apps served in process
(TestClient) or on a real socket, and throwaway PostgreSQL databases. Shared helpers that are not
fixtures live in helpers.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from swarmrank.server import ServerSettings, create_app, create_key
from swarmrank.store import Store
from swarmrank.swarm import Swarm

from helpers import Server

CHROMIUM = os.environ.get("SWARMRANK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SWARMRANK_HOME", str(home))
    monkeypatch.delenv("SWARMRANK_DB", raising=False)
    return home


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A SQLite store in the test's own directory."""
    with Store(f"sqlite:///{tmp_path / 'server.db'}") as s:
        yield s


@pytest.fixture
def key(store: Store) -> str:
    """An API key in ``store``."""
    return create_key(store, "tester")[0]


@pytest.fixture
def api() -> Iterator[Callable[..., TestClient]]:
    """api(swarm, store=..., **settings) → a TestClient of the server's app, in process."""
    clients: list[TestClient] = []

    def _api(swarm: Swarm, *, store: Store | None = None, **settings: Any) -> TestClient:
        client = TestClient(create_app(swarm, store=store, settings=ServerSettings(**settings)))
        client.__enter__()  # run the app's lifespan
        clients.append(client)
        return client

    yield _api
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def start() -> Iterator[Callable[..., str]]:
    """start(swarm, store=..., **settings) → the base URL of a server on a real socket."""
    running: list[Server] = []

    def _start(swarm: Swarm, *, store: Store | None = None, **settings: Any) -> str:
        server = Server(create_app(swarm, store=store, settings=ServerSettings(**settings)))
        running.append(server)
        return server.url

    yield _start
    for server in running:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL, once on SQLite and once on PostgreSQL (``pg_url``: skipped without a server)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'parametrized.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty Postgres database for one test, dropped afterwards (scripts/with-postgres provides
    the server as SWARMRANK_TEST_PG; without one the test says it is skipped and why)."""
    base_url = os.environ.get("SWARMRANK_TEST_PG")
    if not base_url:
        pytest.skip("set SWARMRANK_TEST_PG to a Postgres URL (scripts/with-postgres does)")
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(base_url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = "swarmrank_test_" + os.urandom(6).hex()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- headless Chromium (Debian's chromium driven by Playwright's bundled driver) ---------------------


@pytest.fixture(scope="module")  # not session: Playwright's sync API holds an event loop while it runs,
def browser() -> Iterator[Any]:   # which later tests' asyncio.run() would trip over
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; CI does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (its driver only)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator[Any]:
    """A fresh page that records console errors, page errors and dialogs (asserted empty by the test)."""
    context = browser.new_context()
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    pg.dialogs = []

    def on_dialog(dialog: Any) -> None:
        pg.dialogs.append(dialog.message)
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    yield pg
    context.close()
