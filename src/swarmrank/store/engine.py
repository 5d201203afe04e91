"""Engines, URLs, transactions and errors: how swarmrank talks to its database.

Any SQLAlchemy URL works; the default is a SQLite file in the swarmrank home directory
(``sqlite:///$SWARMRANK_HOME/swarmrank.db``, see :mod:`swarmrank.settings`). Postgres needs the
``postgres`` extra (``psycopg``).

:class:`Database` is the public transaction API every table's code uses (rounds, the ledger,
evaluation runs, the completion cache, API keys)::

    with db.write("save round 1234") as conn:   # one write transaction; failures → StorageError
        conn.execute(...)
    with db.read("list rounds") as conn:         # one read transaction
        ...
    with db.transaction(write=True) as conn:     # the raw transaction, for callers that retry
        ...                                      # (the ledger); SQLAlchemy errors pass through

Nothing here touches a database or a file at import time: a :class:`Database` connects, creates
the SQLite file's directory and migrates (:func:`migrate`) on first use. Every database failure
comes out as a :class:`~swarmrank.errors.StorageError` whose one-line message names the database
(password hidden).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Self

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from swarmrank.errors import StorageError
from swarmrank.settings import Settings
from swarmrank.store.migrations import upgrade

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "Database",
    "make_engine",
    "migrate",
    "reason",
    "safe_url",
    "storage_errors",
    "transaction",
]

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite connection waits for another writer's lock before failing."""

_WRITE = "swarmrank_write"  # execution option: this connection's transaction will write


# -- URLs and engines -------------------------------------------------------------------------------


def safe_url(url: str | URL) -> str:
    """``url`` as a string with any password replaced by ``***`` (fit for messages and logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def parse_url(url: str | URL) -> URL:
    """``url`` parsed, or a :class:`StorageError` saying it is not a database URL."""
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
    parsed = parse_url(url)
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
        raise StorageError(f"cannot use database {safe_url(parsed)}: {reason(exc)}") from exc
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


# -- transactions and errors -------------------------------------------------------------------------


def reason(exc: BaseException) -> str:
    """The first line of what the database (or SQLAlchemy) said, without SQL or links."""
    source: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(source).splitlines() if line.strip()]
    return lines[0] if lines else type(source).__name__


@contextmanager
def storage_errors(action: str, url: str | URL) -> Iterator[None]:
    """Turn any SQLAlchemy failure inside the block into a one-line :class:`StorageError`."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageError(f"database {safe_url(url)}: could not {action}: {reason(exc)}") from exc


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """A new connection inside a transaction, committed on success and rolled back on error.

    A write transaction takes SQLite's write lock up front (``BEGIN IMMEDIATE``). Failing to
    connect is a :class:`StorageError`; other SQLAlchemy errors pass through.
    """
    with storage_errors("connect", engine.url):
        conn = engine.connect()
    with conn:
        if write:
            conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


def migrate(engine: Engine) -> list[str]:
    """Apply the migrations ``engine``'s database lacks, in order, in one transaction.

    Returns the revisions applied (empty when the schema is current). Safe to call any number of
    times. Use an engine from :func:`make_engine`: it makes SQLite DDL transactional.
    """
    with storage_errors("migrate the schema", engine.url), transaction(engine, write=True) as conn:
        return upgrade(conn)


class Database:
    """The database at ``url`` (any SQLAlchemy URL), connected and migrated on first use.

    Cheap to construct: the URL is checked at once, but the engine is made, the SQLite file's
    directory created and the schema migrated on first use. ``close()`` disposes of the engine
    (a later call opens it again). Usable as a context manager.
    """

    def __init__(self, url: str) -> None:
        self._url: URL = parse_url(url)
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, config_url: str | None = None) -> Self:
        """The database to use: ``SWARMRANK_DB`` (``settings.db_url``), else the config's URL, else the default file."""
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- the transaction API ------------------------------------------------------------------------

    def transaction(self, *, write: bool = True) -> AbstractContextManager[Connection]:
        """A raw transaction (see :func:`transaction`): for callers that handle SQLAlchemy errors
        themselves, e.g. to retry a write that lost a race."""
        return transaction(self.engine, write=write)

    def errors(self, action: str) -> AbstractContextManager[None]:
        """Turn SQLAlchemy failures inside the block into a one-line :class:`StorageError` naming
        ``action`` and this database."""
        return storage_errors(action, self._url)

    @contextmanager
    def write(self, action: str) -> Iterator[Connection]:
        """One write transaction; any database failure is a :class:`StorageError` saying it could not ``action``."""
        engine = self.engine
        with self.errors(action), transaction(engine, write=True) as conn:
            yield conn

    @contextmanager
    def read(self, action: str) -> Iterator[Connection]:
        """One read transaction; any database failure is a :class:`StorageError` saying it could not ``action``."""
        engine = self.engine
        with self.errors(action), transaction(engine, write=False) as conn:
            yield conn
