"""The rounds tables as mapped classes (the schema as of the newest migration), and the shared base.

Each round is one row of ``rounds`` holding the full ``RoundResult`` JSON (the source of truth that
:meth:`~swarmrank.store.Store.get_round` rebuilds from) plus the columns worth querying, and one row
per answer, candidate and judgment in ``answers``, ``candidates`` and ``judgments``, so that later
work (node reputation) can query by node or judge in SQL.

Other parts of swarmrank map their own tables on the same :class:`Base`, next to the code that
uses them: the ledger (:mod:`swarmrank.ledger`), evaluation runs and the completion cache
(:mod:`swarmrank.eval.store`) and API keys (:mod:`swarmrank.server.keys`). Every table is created
by a migration (:mod:`swarmrank.store.migrations`), never from these classes.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, Dialect, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["AnswerRow", "Base", "CandidateRow", "JudgmentRow", "RoundRow", "UTCDateTime", "as_utc"]


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC; naive values are taken to be UTC already.

    SQLite keeps no offset, so values are normalised to UTC on the way in and get ``tzinfo=UTC``
    back on the way out; on Postgres this is ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every swarmrank table."""


class RoundRow(Base):
    """One round; ``result_json`` is the full :class:`~swarmrank.result.RoundResult`."""

    __tablename__ = "rounds"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    swarm: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    task_type: Mapped[str] = mapped_column(String(32))
    protocol: Mapped[str] = mapped_column(String(64))
    schedule: Mapped[str | None] = mapped_column(String(64))
    answer: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    winner: Mapped[int | None] = mapped_column(Integer)
    wall_seconds: Mapped[float] = mapped_column(Float)
    calls: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    schema_version: Mapped[int] = mapped_column(Integer)
    result_json: Mapped[str] = mapped_column(Text)
    #: saved under [trust] with its ledger entries (migration m005): `ledger verify` checks it has them
    trusted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    __table_args__ = (Index("ix_rounds_created_at", "created_at"),)


class AnswerRow(Base):
    """One node's answer in a round (``position`` is its index in ``RoundResult.answers``)."""

    __tablename__ = "answers"

    round_id: Mapped[str] = mapped_column(String(64), ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text)
    excluded: Mapped[str | None] = mapped_column(Text)
    candidate: Mapped[int | None] = mapped_column(Integer)
    confidence: Mapped[float | None] = mapped_column(Float)
    step: Mapped[int] = mapped_column(Integer)
    sample: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_answers_node", "node"),)


class CandidateRow(Base):
    """One distinct answer of a round; ``nodes`` is a JSON list of node ids."""

    __tablename__ = "candidates"

    round_id: Mapped[str] = mapped_column(String(64), ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    answer: Mapped[str] = mapped_column(Text)
    strength: Mapped[float] = mapped_column(Float)
    log_strength: Mapped[float | None] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float)
    votes: Mapped[float | None] = mapped_column(Float)
    mean_rank: Mapped[float | None] = mapped_column(Float)
    nodes: Mapped[str] = mapped_column(Text)


class JudgmentRow(Base):
    """One judge's verdict on an ordered pair of candidates (``first`` was shown as A)."""

    __tablename__ = "judgments"

    round_id: Mapped[str] = mapped_column(String(64), ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    judge: Mapped[str] = mapped_column(String(200))
    first: Mapped[int] = mapped_column(Integer)
    second: Mapped[int] = mapped_column(Integer)
    verdict: Mapped[str] = mapped_column(String(1))
    reasoning: Mapped[str] = mapped_column(Text)
    probability: Mapped[float | None] = mapped_column(Float)
    weight: Mapped[float] = mapped_column(Float)
    retried: Mapped[bool] = mapped_column(Boolean)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_judgments_judge", "judge"),)
