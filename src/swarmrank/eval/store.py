"""Evaluation's tables: evaluation runs with their per-item results, and the completion cache.

:class:`EvalRuns` and :class:`CompletionCache` keep their rows in a swarm's database (any
:class:`~swarmrank.store.engine.Database`, usually the :class:`~swarmrank.store.Store` rounds go
to); the tables are created by migration ``m002_eval``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, func, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from swarmrank.errors import StorageError
from swarmrank.store.engine import Database
from swarmrank.store.schema import Base, UTCDateTime, as_utc

__all__ = ["CompletionCache", "CompletionCacheRow", "EvalResultRow", "EvalRunRow", "EvalRuns"]


class CompletionCacheRow(Base):
    """One cached node completion, keyed by a hash of everything that determines it (evaluation)."""

    __tablename__ = "completion_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    node: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completion_json: Mapped[str] = mapped_column(Text)


class EvalRunRow(Base):
    """One evaluation run: a suite of items put to a swarm under several protocols."""

    __tablename__ = "eval_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    suite: Mapped[str] = mapped_column(String(200))
    swarm: Mapped[str] = mapped_column(String(200))
    protocols: Mapped[str] = mapped_column(Text)  # JSON list
    items: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))  # "running" | "done" | "interrupted" | "failed"

    __table_args__ = (Index("ix_eval_runs_created_at", "created_at"),)


class EvalResultRow(Base):
    """How one system (a protocol, or ``node:<id>`` for a single node) did on one item of a run."""

    __tablename__ = "eval_results"

    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("eval_runs.id", ondelete="CASCADE"), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    system: Mapped[str] = mapped_column(String(200), primary_key=True)
    gold: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    correct: Mapped[bool] = mapped_column(Boolean)
    calls: Mapped[int] = mapped_column(Integer)
    judge_calls: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    round_id: Mapped[str | None] = mapped_column(String(64))
    dollars: Mapped[float | None] = mapped_column(Float)  # by the price table; null without prices


class CompletionCache:
    """Node completions in ``db`` under a hash of their request (:mod:`swarmrank.eval.cache`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> str | None:
        """The cached completion JSON under ``key``, or None."""
        with self.db.read("read the completion cache") as conn:
            return conn.scalar(select(CompletionCacheRow.completion_json).where(CompletionCacheRow.key == key))

    def put(self, key: str, node: str, completion_json: str) -> None:
        """Store a completion under ``key``; an existing entry is kept (the first answer stands)."""
        with self.db.write("write the completion cache") as conn:
            if conn.scalar(select(CompletionCacheRow.key).where(CompletionCacheRow.key == key)) is None:
                conn.execute(insert(CompletionCacheRow).values(
                    key=key, node=node, created_at=datetime.now(timezone.utc), completion_json=completion_json))


class EvalRuns:
    """Evaluation runs and their per-item results in ``db`` (:mod:`swarmrank.eval.runner` writes them)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, run_id: str, *, suite: str, swarm: str, protocols: list[str], items: int) -> None:
        with self.db.write(f"create eval run {run_id}") as conn:
            conn.execute(insert(EvalRunRow).values(
                id=run_id, created_at=datetime.now(timezone.utc), suite=suite, swarm=swarm,
                protocols=json.dumps(protocols), items=items, status="running"))

    def finish(self, run_id: str, status: str = "done") -> None:
        """Record how the run ended: ``done``, ``interrupted`` (Ctrl-C) or ``failed``; ``running`` again on resume."""
        with self.db.write(f"finish eval run {run_id}") as conn:
            conn.execute(update(EvalRunRow).where(EvalRunRow.id == run_id).values(status=status))

    def save_results(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Write one item's results for every system in one transaction (all or nothing)."""
        with self.db.write(f"save results of eval run {run_id}") as conn:
            conn.execute(insert(EvalResultRow), [{"run_id": run_id, **row} for row in rows])

    def results(self, run_id: str) -> list[dict[str, Any]]:
        """Every result row of the run (item, system, answer, right or wrong, costs), by item then system."""
        columns = [c for c in EvalResultRow.__table__.columns if c.name != "run_id"]
        with self.db.read(f"read eval run {run_id}") as conn:
            rows = conn.execute(select(*columns).where(EvalResultRow.run_id == run_id)
                                .order_by(EvalResultRow.item_id, EvalResultRow.system))
            return [dict(row._mapping) for row in rows]

    def get(self, run_id_or_prefix: str) -> dict[str, Any]:
        """The run with this id or the only one that starts with this prefix."""
        key = run_id_or_prefix.strip()
        table = EvalRunRow.__table__
        with self.db.read(f"read eval run {key}") as conn:
            matching = func.substr(EvalRunRow.id, 1, len(key)) == key
            rows = conn.execute(select(table).where(matching).limit(2)).mappings().all() if key else []
        if len(rows) != 1:
            problem = "ambiguous" if rows else "unknown"
            raise StorageError(f"{problem} eval run {key or repr(key)} in database {self.db.url}")
        return _run_dict(rows[0])

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """Up to ``limit`` runs, newest first."""
        table = EvalRunRow.__table__
        done = (select(EvalResultRow.run_id, func.count(func.distinct(EvalResultRow.item_id)).label("done"))
                .group_by(EvalResultRow.run_id).subquery())
        with self.db.read("list eval runs") as conn:
            rows = conn.execute(select(table, func.coalesce(done.c.done, 0).label("done"))
                                .outerjoin(done, done.c.run_id == EvalRunRow.id)
                                .order_by(EvalRunRow.created_at.desc()).limit(limit)).mappings().all()
        return [{**_run_dict(r), "done": int(r["done"])} for r in rows]


def _run_dict(row: Any) -> dict[str, Any]:
    return {"run_id": row["id"], "created_at": as_utc(row["created_at"]), "suite": row["suite"],
            "swarm": row["swarm"], "protocols": json.loads(row["protocols"]), "items": row["items"],
            "status": row["status"]}
