"""Shared fixtures: every test gets its own SWARMRANK_HOME, and scripted swarms are easy to build."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from swarmrank.nodes.base import Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SWARMRANK_HOME", str(home))
    monkeypatch.delenv("SWARMRANK_DB", raising=False)
    return home


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


def answerer(node_id: str, answer: str, **kw: Any) -> Node:
    return Node(node_id, ScriptedBackend(answers={"*": answer}, **kw), Persona(seed=len(node_id)), roles=frozenset({"answer"}))


def judge(node_id: str, rule: str = "truth", **kw: Any) -> Node:
    return Node(node_id, ScriptedBackend(judge=rule, **kw), Persona(), roles=frozenset({"judge"}))


def scripted_swarm(answers: Sequence[str], judges: Sequence[Node] = (), **options: Any) -> Swarm:
    nodes = [answerer(f"a{i}", a) for i, a in enumerate(answers)] + list(judges)
    return Swarm(nodes, options=RoundOptions(**options), store=None)


@dataclass(frozen=True)
class EvalTestItem:
    """A minimal evaluation item (the runner needs id, prompt, task_type, gold and score)."""

    id: str
    prompt: str
    gold: str
    task_type: str = "number"

    def score(self, value: str | None) -> bool:
        return value == self.gold
