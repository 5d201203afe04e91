"""Schema migrations, run by alembic: ``versions/`` holds one revision per schema change.

The revisions carry the names of the migrations that came before alembic (``m001_initial`` …
``m004_api_keys``, recorded then in a ``_migrations`` table): a database made by that code is
stamped at the last of them it had applied, its ``_migrations`` table dropped, and upgraded from
there like any other. A released revision is never edited; a schema change is a new revision
(``alembic revision -m "..."`` from the repository root, where ``pyproject.toml`` points alembic
here) and a matching change to the mapped classes.

:func:`upgrade` applies what a database lacks on a connection the caller has opened inside a
transaction (so a failing revision leaves nothing behind); :func:`swarmrank.store.engine.migrate`
is the usual way in.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

__all__ = ["LEGACY_TABLE", "alembic_config", "revisions", "upgrade"]

LEGACY_TABLE = "_migrations"
"""Where migrations were recorded before alembic (one row per applied migration name)."""

HERE = Path(__file__).parent


def alembic_config(**attributes: Any) -> Config:
    """An alembic configuration for these migrations (no ini file needed)."""
    config = Config(attributes=attributes)
    config.set_main_option("script_location", str(HERE))
    return config


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    return [r.revision for r in reversed(list(_script().walk_revisions()))]


def upgrade(conn: Connection) -> list[str]:
    """Apply the revisions ``conn``'s database lacks, in order, inside ``conn``'s open transaction;
    returns their ids (empty when the schema is current)."""
    script = _script()
    context = MigrationContext.configure(conn)
    if set(context.get_current_heads()) == set(script.get_heads()):
        return []
    if not context.get_current_heads() and inspect(conn).has_table(LEGACY_TABLE):
        _adopt_legacy(conn, context, script)
    applied: list[str] = []

    def on_apply(*, step: Any, **_: Any) -> None:
        if step.is_upgrade:
            applied.append(step.up_revision_id)

    on_version_apply: Callable[..., None] = on_apply
    command.upgrade(alembic_config(connection=conn, on_version_apply=on_version_apply), "head")
    return applied


def _adopt_legacy(conn: Connection, context: MigrationContext, script: ScriptDirectory) -> None:
    """Stamp a database migrated by the pre-alembic runner at the last revision it had applied."""
    done = set(conn.execute(text(f"SELECT name FROM {LEGACY_TABLE}")).scalars())
    last = None
    for revision in revisions():
        if revision not in done:
            break
        last = revision
    if last is not None:
        context.stamp(script, last)
    conn.execute(text(f"DROP TABLE {LEGACY_TABLE}"))
