"""The round store: every :class:`~swarmrank.result.RoundResult` in a SQL database.

Any SQLAlchemy URL works; the default is a SQLite file in the swarmrank home directory
(``sqlite:///$SWARMRANK_HOME/swarmrank.db``, see :mod:`swarmrank.settings`). Postgres needs the
``postgres`` extra (``psycopg``).

Each round is one row of ``rounds`` holding the full ``RoundResult`` JSON (the source of truth
that :meth:`Store.get_round` rebuilds from) plus the columns worth querying, and one row per
answer, candidate and judgment in ``answers``, ``candidates`` and ``judgments``, so that later
work (node reputation) can query by node or judge in SQL. :class:`RoundRow` and friends map
those tables for such queries.

The schema is versioned in the style of ``simonw/llm``'s ``migrations.py``: :data:`MIGRATIONS`
is an ordered list of named functions, the ``_migrations`` table records which have run, and
:func:`migrate` applies the missing ones in one transaction. A migration is never edited once
released; a schema change is a new migration (and a matching change to the mapped classes).

Nothing here touches a database or a file at import time: :class:`Store` connects, creates the
SQLite file's directory and migrates on first use. Every database failure comes out as a
:class:`~swarmrank.errors.StorageError` whose one-line message names the database (password
hidden).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from swarmrank.errors import StorageError
from swarmrank.result import Answer, Candidate, Judgment, RoundResult
from swarmrank.settings import Settings

__all__ = [
    "MIGRATIONS",
    "MIN_PREFIX",
    "AnswerRow",
    "Base",
    "CandidateRow",
    "JudgmentRow",
    "LedgerRow",
    "RoundRow",
    "RoundSummary",
    "Store",
    "make_engine",
    "migrate",
    "safe_url",
]

MIN_PREFIX = 4
"""The shortest round-id prefix :meth:`Store.get_round` accepts (like git's short hashes)."""

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite connection waits for another writer's lock before failing."""

_WRITE = "swarmrank_write"  # execution option: this connection's transaction will write


# -- column types ---------------------------------------------------------------------------------


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC; naive values are taken to be UTC already.

    SQLite keeps no offset, so values are normalised to UTC on the way in and get ``tzinfo=UTC``
    back on the way out; on Postgres this is ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _as_utc(value)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


# -- the current schema, mapped for queries ------------------------------------------------------


class Base(DeclarativeBase):
    """Declarative base of the store's tables (the schema as of the newest migration)."""


class RoundRow(Base):
    """One round; ``result_json`` is the full :class:`RoundResult`."""

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
    status: Mapped[str] = mapped_column(String(32))  # "running" | "done"

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


class LedgerRow(Base):
    """One entry of the signed, hash-chained ledger (see :mod:`swarmrank.ledger`).

    ``created_at`` and ``payload`` are TEXT, not a timestamp and a JSON type: the entry's hash is
    computed over exactly these stored strings.
    """

    __tablename__ = "ledger"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=False)
    created_at: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    signer: Mapped[str] = mapped_column(String(200))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))

    __table_args__ = (Index("ix_ledger_kind", "kind"), Index("ix_ledger_hash", "hash"))


_ANSWERS: Table = AnswerRow.__table__  # type: ignore[assignment]
_JUDGMENTS: Table = JudgmentRow.__table__  # type: ignore[assignment]


# -- migrations -----------------------------------------------------------------------------------

Migration = Callable[[Connection], None]

MIGRATIONS: list[Migration] = []
"""Every migration, oldest first; each is recorded in ``_migrations`` under its function name."""

_migrations_meta = MetaData()
_migrations_table = Table(
    "_migrations",
    _migrations_meta,
    Column("name", String(200), primary_key=True),
    Column("applied_at", UTCDateTime, nullable=False),
)


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration. Never rename, reorder or edit a released one."""
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(conn: Connection) -> None:
    """The rounds, answers, candidates and judgments tables.

    The tables are spelled out here, not taken from the mapped classes, so that this migration
    keeps creating the version-1 schema whatever later migrations change.
    """
    meta = MetaData()
    round_id = String(64)

    def child(name: str, *columns: Column[Any]) -> Table:
        return Table(
            name, meta,
            Column("round_id", round_id, ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True),
            Column("position", Integer, primary_key=True),
            *columns,
        )

    Table(
        "rounds", meta,
        Column("id", round_id, primary_key=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("swarm", String(200), nullable=False),
        Column("question", Text, nullable=False),
        Column("task_type", String(32), nullable=False),
        Column("protocol", String(64), nullable=False),
        Column("schedule", String(64)),
        Column("answer", Text),
        Column("confidence", Float, nullable=False),
        Column("winner", Integer),
        Column("wall_seconds", Float, nullable=False),
        Column("calls", Integer, nullable=False),
        Column("prompt_tokens", Integer, nullable=False),
        Column("completion_tokens", Integer, nullable=False),
        Column("schema_version", Integer, nullable=False),
        Column("result_json", Text, nullable=False),
        Index("ix_rounds_created_at", "created_at"),
    )
    child(
        "answers",
        Column("node", String(200), nullable=False),
        Column("text", Text, nullable=False),
        Column("value", Text),
        Column("excluded", Text),
        Column("candidate", Integer),
        Column("confidence", Float),
        Column("step", Integer, nullable=False),
        Column("sample", Integer, nullable=False),
        Column("prompt_tokens", Integer, nullable=False),
        Column("completion_tokens", Integer, nullable=False),
        Column("seconds", Float, nullable=False),
        Index("ix_answers_node", "node"),
    )
    child(
        "candidates",
        Column("answer", Text, nullable=False),
        Column("strength", Float, nullable=False),
        Column("log_strength", Float),
        Column("stderr", Float),
        Column("votes", Float),
        Column("mean_rank", Float),
        Column("nodes", Text, nullable=False),
    )
    child(
        "judgments",
        Column("judge", String(200), nullable=False),
        Column("first", Integer, nullable=False),
        Column("second", Integer, nullable=False),
        Column("verdict", String(1), nullable=False),
        Column("reasoning", Text, nullable=False),
        Column("probability", Float),
        Column("weight", Float, nullable=False),
        Column("retried", Boolean, nullable=False),
        Column("prompt_tokens", Integer, nullable=False),
        Column("completion_tokens", Integer, nullable=False),
        Column("seconds", Float, nullable=False),
        Index("ix_judgments_judge", "judge"),
    )
    meta.create_all(conn)


@migration
def m002_eval(conn: Connection) -> None:
    """The completion cache and the evaluation runs and their per-item results."""
    meta = MetaData()
    Table(
        "completion_cache", meta,
        Column("key", String(64), primary_key=True),
        Column("node", String(200), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("completion_json", Text, nullable=False),
    )
    Table(
        "eval_runs", meta,
        Column("id", String(64), primary_key=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("suite", String(200), nullable=False),
        Column("swarm", String(200), nullable=False),
        Column("protocols", Text, nullable=False),
        Column("items", Integer, nullable=False),
        Column("status", String(32), nullable=False),
        Index("ix_eval_runs_created_at", "created_at"),
    )
    Table(
        "eval_results", meta,
        Column("run_id", String(64), ForeignKey("eval_runs.id", ondelete="CASCADE"), primary_key=True),
        Column("item_id", String(300), primary_key=True),
        Column("system", String(200), primary_key=True),
        Column("gold", Text, nullable=False),
        Column("answer", Text),
        Column("correct", Boolean, nullable=False),
        Column("calls", Integer, nullable=False),
        Column("judge_calls", Integer, nullable=False),
        Column("prompt_tokens", Integer, nullable=False),
        Column("completion_tokens", Integer, nullable=False),
        Column("seconds", Float, nullable=False),
        Column("round_id", String(64)),
    )
    meta.create_all(conn)


@migration
def m003_ledger(conn: Connection) -> None:
    """The signed, hash-chained ledger: one row per entry, ``seq`` 1, 2, 3, ... as the key.

    On SQLite ``seq`` is ``INTEGER PRIMARY KEY`` (the rowid); elsewhere a BIGINT. ``created_at``
    and ``payload`` are TEXT because the entry hash covers their exact stored strings.
    """
    meta = MetaData()
    Table(
        "ledger", meta,
        Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
        Column("created_at", String(64), nullable=False),
        Column("kind", String(32), nullable=False),
        Column("payload", Text, nullable=False),
        Column("signer", String(200), nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        Column("signature", String(128), nullable=False),
        Index("ix_ledger_kind", "kind"),
        Index("ix_ledger_hash", "hash"),
    )
    meta.create_all(conn)


@migration
def m004_api_keys(conn: Connection) -> None:
    """API keys for ``swarmrank serve``: a name and a SHA-256 hash per key, never the key itself."""
    meta = MetaData()
    Table(
        "api_keys", meta,
        Column("id", String(32), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("key_hash", String(64), nullable=False, unique=True),
        Column("prefix", String(16), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("revoked_at", UTCDateTime),
        Index("ix_api_keys_name", "name"),
    )
    meta.create_all(conn)


def migrate(engine: Engine) -> list[str]:
    """Apply the migrations ``engine``'s database lacks, in order, in one transaction.

    Returns the names applied (empty when the schema is current). Safe to call any number of
    times. Use an engine from :func:`make_engine`: it makes SQLite DDL transactional.
    """
    with _storage_errors("migrate the schema", engine.url), _writing(engine) as conn:
        _migrations_table.create(conn, checkfirst=True)
        done = set(conn.scalars(select(_migrations_table.c.name)))
        applied: list[str] = []
        for step in MIGRATIONS:
            if step.__name__ in done:
                continue
            step(conn)
            conn.execute(insert(_migrations_table).values(name=step.__name__, applied_at=datetime.now(timezone.utc)))
            applied.append(step.__name__)
        return applied


# -- engines, URLs and errors ---------------------------------------------------------------------


def safe_url(url: str | URL) -> str:
    """``url`` as a string with any password replaced by ``***`` (fit for messages and logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _parse_url(url: str | URL) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StorageError(f"not a database URL: {url!r} (expected e.g. sqlite:///path/to/file.db)") from exc


def _sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names, or None for other databases and in-memory SQLite."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(database).expanduser()


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url`` (no connection yet), with swarmrank's SQLite settings.

    For a SQLite file the parent directory is created, and every connection gets WAL journal
    mode, ``foreign_keys=ON`` and a busy timeout; pysqlite's implicit transactions are replaced
    by explicit ``BEGIN`` (``BEGIN IMMEDIATE`` for writes) so DDL is transactional too.
    """
    parsed = _parse_url(url)
    path = _sqlite_file(parsed)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the directory for database {safe_url(parsed)}: {exc}") from exc
    try:
        engine = create_engine(parsed)
    except ImportError as exc:
        raise StorageError(
            f"the driver for database {safe_url(parsed)} is not installed ({exc.name or exc}); "
            "for Postgres install swarmrank[postgres]"
        ) from exc
    except (SQLAlchemyError, ValueError, TypeError) as exc:
        raise StorageError(f"cannot use database {safe_url(parsed)}: {_reason(exc)}") from exc
    if parsed.get_backend_name() == "sqlite" and engine.dialect.driver == "pysqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock up front, so that two writers queue on the
        # busy timeout instead of one failing when it upgrades a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def _connect(engine: Engine) -> Connection:
    """A new connection; failing to open the database is a :class:`StorageError` that says so."""
    with _storage_errors("connect", engine.url):
        return engine.connect()


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
    """A connection inside a write transaction, committed on success and rolled back on error."""
    with _connect(engine) as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


def _reason(exc: BaseException) -> str:
    """The first line of what the database (or SQLAlchemy) said, without SQL or links."""
    source: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(source).splitlines() if line.strip()]
    return lines[0] if lines else type(source).__name__


@contextmanager
def _storage_errors(action: str, url: URL) -> Iterator[None]:
    """Turn any SQLAlchemy failure inside the block into a one-line :class:`StorageError`."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageError(f"database {safe_url(url)}: could not {action}: {_reason(exc)}") from exc


# -- rows from a RoundResult ----------------------------------------------------------------------


def _round_row(result: RoundResult) -> dict[str, Any]:
    cost = result.cost
    return {
        "id": result.round_id, "created_at": result.created_at, "swarm": result.swarm,
        "question": result.question, "task_type": result.task_type, "protocol": result.protocol,
        "schedule": result.schedule, "answer": result.answer, "confidence": result.confidence,
        "winner": result.winner, "wall_seconds": cost.wall_seconds, "calls": cost.calls,
        "prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens,
        "schema_version": result.schema_version, "result_json": result.model_dump_json(),
    }


def _fields(model: Answer | Judgment, table: Table) -> dict[str, Any]:
    """The model's fields that have a column (any others live only in ``result_json``)."""
    return {k: v for k, v in model.model_dump().items() if k in table.c}


def _answer_row(round_id: str, position: int, a: Answer) -> dict[str, Any]:
    return {**_fields(a, _ANSWERS), "round_id": round_id, "position": position}


def _candidate_row(round_id: str, position: int, c: Candidate) -> dict[str, Any]:
    return {
        "round_id": round_id, "position": position, "answer": c.answer, "strength": c.strength,
        "log_strength": c.log_strength, "stderr": c.stderr, "votes": c.votes, "mean_rank": c.mean_rank,
        "nodes": json.dumps(c.nodes),
    }


def _judgment_row(round_id: str, position: int, j: Judgment) -> dict[str, Any]:
    return {**_fields(j, _JUDGMENTS), "round_id": round_id, "position": position}


def _insert_round(conn: Connection, result: RoundResult) -> None:
    conn.execute(insert(RoundRow), [_round_row(result)])


def _insert_answers(conn: Connection, result: RoundResult) -> None:
    rows = [_answer_row(result.round_id, i, a) for i, a in enumerate(result.answers)]
    if rows:
        conn.execute(insert(AnswerRow), rows)


def _insert_candidates(conn: Connection, result: RoundResult) -> None:
    rows = [_candidate_row(result.round_id, i, c) for i, c in enumerate(result.candidates)]
    if rows:
        conn.execute(insert(CandidateRow), rows)


def _insert_judgments(conn: Connection, result: RoundResult) -> None:
    rows = [_judgment_row(result.round_id, i, j) for i, j in enumerate(result.judgments)]
    if rows:
        conn.execute(insert(JudgmentRow), rows)


# -- the store ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundSummary:
    """One line of ``swarmrank history``: the columns of a round, without its answers."""

    round_id: str
    created_at: datetime
    protocol: str
    question: str
    answer: str | None
    confidence: float
    calls: int
    wall_seconds: float


class Store:
    """Rounds in the database at ``url`` (any SQLAlchemy URL).

    Cheap to construct: the URL is checked at once, but the engine is made, the SQLite file's
    directory created and the schema migrated on first use. ``close()`` disposes of the engine
    (a later call opens it again). Usable as a context manager.
    """

    def __init__(self, url: str) -> None:
        self._url: URL = _parse_url(url)
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, config_url: str | None = None) -> Store:
        """The store to use: ``SWARMRANK_DB`` (``settings.db_url``), else the config's URL, else the default file."""
        return cls(settings.db_url or config_url or settings.default_db_url())

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return safe_url(self._url)

    @property
    def engine(self) -> Engine:
        """The engine, made and the schema migrated on first access (raises :class:`StorageError`)."""
        with self._lock:
            if self._engine is None:
                engine = make_engine(self._url)
                try:
                    migrate(engine)
                except BaseException:
                    engine.dispose()
                    raise
                self._engine = engine
            return self._engine

    def close(self) -> None:
        """Dispose of the engine and its pooled connections."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def save_round(self, result: RoundResult) -> None:
        """Write ``result`` and all its answers, candidates and judgments in one transaction.

        All or nothing: on any failure nothing of the round is left. Saving a ``round_id`` that
        is already stored raises :class:`StorageError` and leaves the stored copy untouched.
        """
        engine = self.engine
        with self._errors(f"save round {result.round_id}"), _writing(engine) as conn:
            if conn.scalar(select(RoundRow.id).where(RoundRow.id == result.round_id)) is not None:
                raise StorageError(f"round {result.round_id} is already saved in database {self.url}")
            _insert_round(conn, result)
            _insert_answers(conn, result)
            _insert_candidates(conn, result)
            _insert_judgments(conn, result)

    def get_round(self, round_id_or_prefix: str) -> RoundResult:
        """The round with this id, or with the only id that starts with this prefix (≥ 4 characters)."""
        key = round_id_or_prefix.strip()
        engine = self.engine
        with self._errors(f"read round {key}"), _connect(engine) as conn:
            round_id = self._resolve(conn, key)
            text = conn.scalar(select(RoundRow.result_json).where(RoundRow.id == round_id))
        if text is None:  # deleted between the two reads
            raise StorageError(f"no round {key} in database {self.url}")
        try:
            return RoundResult.model_validate_json(text)
        except ValidationError as exc:
            raise StorageError(
                f"round {round_id} in database {self.url} cannot be read: "
                f"{exc.error_count()} invalid field(s), first: {_first_error(exc)}"
            ) from exc

    def _resolve(self, conn: Connection, key: str) -> str:
        """The full round id for ``key`` (an id or a unique prefix of one)."""
        if conn.scalar(select(RoundRow.id).where(RoundRow.id == key)) is not None:
            return key
        if len(key) < MIN_PREFIX:
            hint = f" (a prefix needs at least {MIN_PREFIX} characters)" if key else ""
            raise StorageError(f"no round {key or repr(key)} in database {self.url}{hint}")
        # substr, not LIKE: exact and case-sensitive on every backend, no wildcards to escape.
        matching = func.substr(RoundRow.id, 1, len(key)) == key
        count = conn.scalar(select(func.count()).select_from(RoundRow).where(matching)) or 0
        if count == 0:
            raise StorageError(f"no round {key} in database {self.url}")
        if count > 1:
            raise StorageError(
                f"round prefix {key} is ambiguous: {count} rounds in database {self.url} match; give more characters"
            )
        return str(conn.scalar(select(RoundRow.id).where(matching)))

    def list_rounds(self, limit: int = 20, protocol: str | None = None, swarm: str | None = None) -> list[RoundSummary]:
        """Up to ``limit`` rounds, newest first, optionally only those of one protocol and/or swarm."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        query = select(
            RoundRow.id, RoundRow.created_at, RoundRow.protocol, RoundRow.question, RoundRow.answer,
            RoundRow.confidence, RoundRow.calls, RoundRow.wall_seconds,
        )
        query = _filtered(query, protocol=protocol, swarm=swarm)
        query = query.order_by(RoundRow.created_at.desc(), RoundRow.id.desc()).limit(limit)
        engine = self.engine
        with self._errors("list rounds"), _connect(engine) as conn:
            return [RoundSummary(*row) for row in conn.execute(query)]

    def judge_history(self, swarm: str, limit: int) -> list[dict[str, Any]]:
        """The swarm's latest ``limit`` peer-rank rounds that judged anything, oldest first, each as
        ``{"judge_reports": [...], "votes": [...], "evidence_low": [...]}`` (what
        :class:`~swarmrank.reliability.JudgeBook` is rebuilt from)."""
        query = select(RoundRow.result_json).where(RoundRow.swarm == swarm, RoundRow.protocol == "peer-rank")
        query = query.order_by(RoundRow.created_at.desc(), RoundRow.id.desc()).limit(limit)
        engine = self.engine
        out: list[dict[str, Any]] = []
        with self._errors("read judge reports"), _connect(engine) as conn:
            for (text,) in conn.execute(query):
                try:
                    data = json.loads(text)
                    reports = data.get("judge_reports") or []
                    candidates = data.get("candidates") or []
                    entry = {"judge_reports": reports, "votes": [c.get("votes") for c in candidates],
                             "evidence_low": data.get("evidence_low") or []}
                except (ValueError, AttributeError, TypeError):
                    continue  # an unreadable round teaches nothing; get_round reports it when asked
                if reports:
                    out.append(entry)
        return out[::-1]

    def count_rounds(self, protocol: str | None = None, swarm: str | None = None) -> int:
        """How many rounds are stored (optionally of one protocol and/or swarm)."""
        query = _filtered(select(func.count()).select_from(RoundRow), protocol=protocol, swarm=swarm)
        engine = self.engine
        with self._errors("count rounds"), _connect(engine) as conn:
            return int(conn.scalar(query) or 0)

    # -- the completion cache (evaluation) ----------------------------------------------------

    def cache_get(self, key: str) -> str | None:
        """The cached completion JSON under ``key``, or None."""
        with self._errors("read the completion cache"), _connect(self.engine) as conn:
            return conn.scalar(select(CompletionCacheRow.completion_json).where(CompletionCacheRow.key == key))

    def cache_put(self, key: str, node: str, completion_json: str) -> None:
        """Store a completion under ``key``; an existing entry is kept (the first answer stands)."""
        with self._errors("write the completion cache"), _writing(self.engine) as conn:
            if conn.scalar(select(CompletionCacheRow.key).where(CompletionCacheRow.key == key)) is None:
                conn.execute(insert(CompletionCacheRow).values(
                    key=key, node=node, created_at=datetime.now(timezone.utc), completion_json=completion_json))

    # -- evaluation runs ------------------------------------------------------------------------

    def create_eval_run(self, run_id: str, *, suite: str, swarm: str, protocols: list[str], items: int) -> None:
        with self._errors(f"create eval run {run_id}"), _writing(self.engine) as conn:
            conn.execute(insert(EvalRunRow).values(
                id=run_id, created_at=datetime.now(timezone.utc), suite=suite, swarm=swarm,
                protocols=json.dumps(protocols), items=items, status="running"))

    def finish_eval_run(self, run_id: str) -> None:
        from sqlalchemy import update

        with self._errors(f"finish eval run {run_id}"), _writing(self.engine) as conn:
            conn.execute(update(EvalRunRow).where(EvalRunRow.id == run_id).values(status="done"))

    def save_eval_results(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Write one item's results for every system in one transaction (all or nothing)."""
        with self._errors(f"save results of eval run {run_id}"), _writing(self.engine) as conn:
            conn.execute(insert(EvalResultRow), [{"run_id": run_id, **row} for row in rows])

    def eval_results(self, run_id: str) -> list[dict[str, Any]]:
        columns = [c for c in EvalResultRow.__table__.columns if c.name != "run_id"]  # type: ignore[attr-defined]
        with self._errors(f"read eval run {run_id}"), _connect(self.engine) as conn:
            rows = conn.execute(select(*columns).where(EvalResultRow.run_id == run_id)
                                .order_by(EvalResultRow.item_id, EvalResultRow.system))
            return [dict(row._mapping) for row in rows]

    def get_eval_run(self, run_id_or_prefix: str) -> dict[str, Any]:
        key = run_id_or_prefix.strip()
        with self._errors(f"read eval run {key}"), _connect(self.engine) as conn:
            matching = func.substr(EvalRunRow.id, 1, len(key)) == key
            table = EvalRunRow.__table__
            rows = conn.execute(select(table).where(matching).limit(2)).mappings().all() if key else []
        if len(rows) != 1:
            problem = "ambiguous" if rows else "unknown"
            raise StorageError(f"{problem} eval run {key or repr(key)} in database {self.url}")
        return _run_dict(rows[0])

    def list_eval_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._errors("list eval runs"), _connect(self.engine) as conn:
            rows = conn.execute(select(EvalRunRow.__table__).order_by(EvalRunRow.created_at.desc())
                                .limit(limit)).mappings().all()
        return [_run_dict(r) for r in rows]

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return _storage_errors(action, self._url)

    # -- API keys (the HTTP server) --------------------------------------------------------------

    def create_api_key(self, name: str, key_hash: str, prefix: str) -> dict[str, Any]:
        """Record a key under ``name`` by its hash; a name has at most one active (unrevoked) key."""
        import uuid

        from swarmrank.errors import ConfigError

        keys = self._api_keys()
        row = {"id": uuid.uuid4().hex, "name": name, "key_hash": key_hash, "prefix": prefix,
               "created_at": datetime.now(timezone.utc), "revoked_at": None}
        with self._errors(f"create API key {name}"), _writing(self.engine) as conn:
            active = select(keys.c.id).where(keys.c.name == name, keys.c.revoked_at.is_(None))
            if conn.scalar(active) is not None:
                raise ConfigError(f"an active API key named {name!r} exists; revoke it first or pick another name")
            conn.execute(insert(keys).values(**row))
        return {k: v for k, v in row.items() if k != "key_hash"}

    def list_api_keys(self) -> list[dict[str, Any]]:
        """Every API key (revoked ones too), oldest first, without hashes."""
        keys = self._api_keys()
        query = select(keys.c.id, keys.c.name, keys.c.prefix, keys.c.created_at, keys.c.revoked_at)
        with self._errors("list API keys"), _connect(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(keys.c.created_at, keys.c.id))]

    def revoke_api_key(self, name: str) -> dict[str, Any]:
        """Revoke the active key named ``name`` (raises ConfigError when there is none)."""
        from sqlalchemy import update

        from swarmrank.errors import ConfigError

        keys = self._api_keys()
        now = datetime.now(timezone.utc)
        with self._errors(f"revoke API key {name}"), _writing(self.engine) as conn:
            key_id = conn.scalar(select(keys.c.id).where(keys.c.name == name, keys.c.revoked_at.is_(None)))
            if key_id is None:
                raise ConfigError(f"no active API key named {name!r}")
            conn.execute(update(keys).where(keys.c.id == key_id).values(revoked_at=now))
        return {"id": key_id, "name": name, "revoked_at": now}

    def find_api_key(self, key_hash: str) -> dict[str, Any] | None:
        """The active key with this hash (``id``, ``name``, ``prefix``), or None."""
        keys = self._api_keys()
        query = select(keys.c.id, keys.c.name, keys.c.prefix).where(keys.c.key_hash == key_hash,
                                                                    keys.c.revoked_at.is_(None))
        with self._errors("check an API key"), _connect(self.engine) as conn:
            row = conn.execute(query).first()
        return None if row is None else dict(row._mapping)

    @staticmethod
    def _api_keys() -> Any:
        """The ``api_keys`` table of migration m004, for Core queries."""
        from sqlalchemy import column, table

        return table("api_keys", column("id", String), column("name", String), column("key_hash", String),
                     column("prefix", String), column("created_at", UTCDateTime), column("revoked_at", UTCDateTime))


def _run_dict(row: Any) -> dict[str, Any]:
    return {"run_id": row["id"], "created_at": _as_utc(row["created_at"]), "suite": row["suite"],
            "swarm": row["swarm"], "protocols": json.loads(row["protocols"]), "items": row["items"],
            "status": row["status"]}


def _filtered(query: Any, *, protocol: str | None, swarm: str | None) -> Any:
    if protocol is not None:
        query = query.where(RoundRow.protocol == protocol)
    if swarm is not None:
        query = query.where(RoundRow.swarm == swarm)
    return query


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
    return f"{where}: {err.get('msg', '')}"
