"""The ledger: a signed, hash-chained, append-only record of what the swarm decided.

Every entry (:class:`Entry`) has a sequence number (1, 2, 3, ...), a kind (:data:`KINDS`), a JSON
object payload and the node id of its signer. Its ``hash`` is the SHA-256 of the canonical JSON
(:func:`swarmrank.wire.canonical`) of ``{seq, created_at, kind, payload, signer, prev_hash}``, where
``prev_hash`` is the previous entry's hash (:data:`GENESIS` for entry 1), and its ``signature``
is the signer's Ed25519 signature over the 32 bytes of that hash. A node's key is itself recorded
in the ledger: a ``key`` entry, payload ``{"node": id, "public_key": hex}``, signed by that key,
written the first time the node signs anything (trust on first use; a different key for the same
node id is refused for good).

So changing, removing, inserting or reordering stored entries breaks the chain at the first
entry touched, which :meth:`Ledger.verify` reports; cutting entries off the end is found only
against a head hash kept elsewhere (``verify(expected_head=...)``). ``docs/ledger.md`` spells out
the encoding so that anyone can verify a ledger export without this code.

A valid signature proves who signed an entry, not that the signer may move trust. A
:class:`SignerPolicy` names the keys that may (the trust authority: the coordinator's key, or a
set pinned in the config); checked against one, every entry of :data:`TRUST_KINDS` by any other
key is *unauthorised* — :meth:`Ledger.verify` names each, :meth:`Ledger.import_` refuses them, and
:class:`Follower` (what the trust registry reads through) skips them. A node's own ``key`` entry
binds nothing until an authority's ``admission`` entry countersigns that key.

The ledger lives in the database's ``ledger`` table (:class:`LedgerRow`, migration ``m003_ledger``). Appends are
serialised: SQLite write transactions take the write lock up front (``BEGIN IMMEDIATE``), and on
PostgreSQL each one takes a transaction-scoped advisory lock before reading the head, so that
several coordinators writing to one database still produce one chain. An append returns once its
transaction has committed.

Errors: a refused entry, import or unreadable stored entry is a
:class:`~swarmrank.errors.LedgerError`; a database failure a
:class:`~swarmrank.errors.StorageError`. Both have one-line messages.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple, Protocol, TextIO, TypeVar

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text, cast, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from swarmrank.chain import (
    COLUMNS,
    GENESIS,
    KINDS,
    TEXT_COLUMNS,
    TRUST_KINDS,
    Chain,
    Row,
    SignerPolicy,
    entry_hash,
    is_hex,
    loads,
    read_export,
)
from swarmrank.errors import ConfigError, LedgerBroken, LedgerConflict, LedgerError, StorageError
from swarmrank.identity import check_node_id
from swarmrank.store.engine import Database, reason
from swarmrank.store.schema import Base
from swarmrank.wire import canonical, verify_bytes

__all__ = ["GENESIS", "KINDS", "TRUST_KINDS", "Entry", "Follower", "Ledger", "Signer", "SignerPolicy", "VerifyReport",
           "entry_hash"]

BATCH = 1000
"""Entries read per query when walking the whole ledger (verify, export, import)."""

WRITE_ATTEMPTS = 8
"""How often a write transaction is tried when it fails on a lock, a serialization failure or a
duplicate ``seq`` (another writer got there first); the wait doubles from 20 ms, with jitter."""

PG_LOCK_KEY = 0x73776C6564676572 & 0x7FFF_FFFF_FFFF_FFFF  # b"swledger"
"""The PostgreSQL advisory lock every append and import takes (``pg_advisory_xact_lock``)."""

_T = TypeVar("_T")


class Signer(Protocol):
    """Whoever signs an entry: :class:`swarmrank.identity.Identity` is one."""

    @property
    def node_id(self) -> str: ...  # a plain attribute will do

    @property
    def public_hex(self) -> str: ...  # the raw 32-byte Ed25519 public key, hex

    def sign(self, payload: bytes) -> bytes: ...


class LedgerRow(Base):
    """One stored entry (the ``ledger`` table, migration ``m003_ledger``).

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


@dataclass(frozen=True)
class Entry:
    """One ledger entry, as stored (``payload`` parsed back from its canonical JSON)."""

    seq: int
    created_at: str
    kind: str
    payload: dict[str, Any] = field(hash=False)
    signer: str
    prev_hash: str
    hash: str
    signature: str


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`Ledger.verify` found.

    ``entries`` counts the entries that verified (all of them when ``ok``); ``head`` is the hash
    of the last of those. When the chain breaks, ``bad_seq`` is the first position where it does
    and ``reason`` says how, in one line. ``unauthorised`` lists ``(seq, reason)`` for every
    entry (before any break) that a :class:`SignerPolicy` does not allow; ``ok`` is false when
    there is one.
    """

    ok: bool
    entries: int
    head: str | None
    bad_seq: int | None
    reason: str | None
    unauthorised: tuple[tuple[int, str], ...] = ()


# -- the encoding ---------------------------------------------------------------------------------


def _payload_text(payload: Any) -> str:
    """``payload`` as canonical JSON text, or a :class:`LedgerError` saying what is not JSON in it."""
    if not isinstance(payload, dict):
        raise LedgerError(f"a ledger payload must be a JSON object (a dict), not {type(payload).__name__}")
    _check_json(payload, "payload")
    try:
        return canonical(payload).decode()
    except (ValueError, TypeError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise LedgerError(f"payload cannot be encoded as JSON: {exc}") from None


def _check_json(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LedgerError(f"{where} is {value!r}: a ledger payload holds finite numbers only")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise LedgerError(f"{where} has the non-string key {key!r}; JSON object keys are strings")
            _check_json(item, f"{where}.{key}")
        return
    raise LedgerError(f"{where} is a {type(value).__name__}, which is not a JSON value")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# -- reading rows ---------------------------------------------------------------------------------


def _select(conn: Connection) -> Any:
    """The ledger's columns; on SQLite text comes back as bytes, so that invalid UTF-8 is reported, not raised."""
    table = LedgerRow.__table__
    if conn.dialect.name == "sqlite":
        return select(table.c.seq, *(cast(table.c[name], LargeBinary).label(name) for name in TEXT_COLUMNS))
    return select(*(table.c[name] for name in COLUMNS))


def _row(raw: Any) -> Row:
    values = list(raw)
    for i, value in enumerate(values):
        if isinstance(value, (bytes, memoryview)):
            try:
                values[i] = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                values[i] = bytes(value)
    return Row(*values)


def _entry(row: Row) -> Entry:
    """The stored row as an :class:`Entry` (a LedgerError if it cannot even be read)."""
    if not all(isinstance(getattr(row, name), str) for name in TEXT_COLUMNS):
        raise LedgerError(f"ledger entry {row.seq} holds text that is not UTF-8; run `swarmrank ledger verify`")
    try:
        payload = loads(row.payload)
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise LedgerError(f"ledger entry {row.seq} has a payload that is not a JSON object; "
                          "run `swarmrank ledger verify`")
    return Entry(row.seq, row.created_at, row.kind, payload, row.signer, row.prev_hash, row.hash, row.signature)


def _walk(conn: Connection, *, after: int | None = None) -> Iterator[Row]:
    """Every row (with ``seq > after``) in seq order (a seq below 1 too: verify reports it), read
    ``BATCH`` at a time."""
    seq = LedgerRow.__table__.c.seq
    query = _select(conn).order_by(seq).limit(BATCH)
    first = query if after is None else query.where(seq > after)
    rows = [_row(r) for r in conn.execute(first)]
    while True:
        yield from rows
        if len(rows) < BATCH:
            return
        rows = [_row(r) for r in conn.execute(query.where(seq > rows[-1].seq))]


def _head(conn: Connection) -> tuple[int, str]:
    seq = LedgerRow.__table__.c.seq
    row = conn.execute(select(seq, LedgerRow.__table__.c.hash).order_by(seq.desc()).limit(1)).first()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def _registered(conn: Connection, nodes: Iterable[str]) -> dict[str, str]:
    """The key first registered for each of ``nodes`` that has one."""
    table = LedgerRow.__table__
    query = (select(table.c.signer, table.c.payload)
             .where(table.c.kind == "key", table.c.signer.in_(sorted(set(nodes)))).order_by(table.c.seq))
    keys: dict[str, str] = {}
    for node, payload in conn.execute(query):
        try:
            public = loads(payload).get("public_key")
        except (ValueError, AttributeError, RecursionError):
            continue  # a damaged key entry; verify reports it
        if isinstance(public, str):
            keys.setdefault(node, public)
    return keys


def _lock(conn: Connection) -> None:
    """On PostgreSQL, wait for the ledger's advisory lock (released at commit or rollback)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})


def _transient(exc: SQLAlchemyError) -> bool:
    """Whether a failed write transaction can simply be tried again (it was rolled back)."""
    if isinstance(exc, IntegrityError):
        return True  # a duplicate seq: another writer appended first
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    if getattr(orig, "sqlstate", None) in ("40001", "40P01", "55P03"):  # serialization, deadlock, lock
        return True
    message = str(orig or exc).lower()
    return "database is locked" in message or "database table is locked" in message or "busy" in message


# -- the ledger -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    kind: str
    payload: str  # canonical JSON text
    signer: Signer
    public: str


class Ledger:
    """The signed, hash-chained ledger in the database ``db`` (usually a swarm's :class:`~swarmrank.store.Store`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"Ledger({self._db.url!r})"

    @property
    def db(self) -> Database:
        """The database the ledger lives in (rounds written with its entries must be in it too)."""
        return self._db

    # -- writing ----------------------------------------------------------------------------------

    def append(self, kind: str, payload: dict[str, Any], signer: Signer) -> Entry:
        """Append one entry signed by ``signer`` and return it once committed.

        Registers ``signer``'s key first (a ``key`` entry) if its node has none yet. Raises
        :class:`LedgerError` for an unknown kind, a payload that is not a JSON object of finite
        values, or a signer whose node id is registered with a different key.
        """
        return self.append_many([(kind, payload, signer)])[0]

    def append_many(self, items: Sequence[tuple[str, dict[str, Any], Signer]], *,
                    after: int | None = None, also: Callable[[Connection], None] | None = None) -> list[Entry]:
        """Append several entries in one transaction, with contiguous seqs: all of them or none.

        Returns one entry per item, in order; key entries written for new signers come right
        before their signer's first entry and are not in the returned list. With ``after``, the
        write happens only if the ledger's last entry is still ``after`` (checked under the write
        lock), else :class:`LedgerConflict`: for entries computed from the ledger's state, such as
        reputation, which another coordinator may have moved on in the meantime. ``also`` writes
        more rows in the same transaction (a stored round and the entries that record it commit
        together or not at all); it runs again if the transaction is retried.
        """
        prepared = [_prepare(kind, payload, signer) for kind, payload, signer in items]
        if not prepared:
            return []

        def work(conn: Connection) -> list[Entry]:
            if after is not None:
                head = _head(conn)[0]
                if head != after:
                    raise LedgerConflict(f"the ledger moved on: its last entry is {head}, not {after}")
            if also is not None:
                also(conn)
            return _append(conn, prepared)

        return self._write("append to the ledger", work)

    def register_key(self, signer: Signer) -> Entry | None:
        """Record ``signer``'s key (a ``key`` entry); None if it is registered already.

        Raises :class:`LedgerError` if the node id is registered with a different key.
        """
        public = _public_hex(signer)

        def work(conn: Connection) -> Entry | None:
            known = _registered(conn, [signer.node_id]).get(signer.node_id)
            if known == public:
                return None
            if known is not None:
                raise _different_key(signer.node_id)
            seq, prev = _head(conn)
            return _write_entries(conn, seq, prev, [("key", _key_payload(signer.node_id, public), signer, public)])[0]

        return self._write(f"register the key of {signer.node_id}", work)

    def import_(self, fh: TextIO, *, policy: SignerPolicy | None = None) -> int:
        """Add the entries of a JSON Lines export that this ledger lacks; returns how many.

        The file must verify on its own, and with a ``policy`` hold no entry its signer may not
        write. Into an empty ledger everything is copied; into a non-empty one only if its
        entries are exactly the file's first ones. Otherwise, or on a malformed line,
        :class:`LedgerError` says where, and nothing is written.
        """
        rows = list(read_export(fh))
        chain = Chain(policy)
        refused = []
        for line, row in rows:
            bad = chain.check(row)
            if bad is not None:
                raise LedgerError(f"import: line {line}: entry {bad[0]}: {bad[1]}; nothing imported")
            if chain.refused is not None:
                refused.append(f"line {line}: {chain.refused}")
        if refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            raise LedgerError(f"import: {refused[0]}{more}; nothing imported")
        return self._write("import into the ledger", lambda conn: _import(conn, [row for _, row in rows]))

    def _write(self, action: str, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` in a locked write transaction, retrying (bounded) when another writer got in the way."""
        delay = 0.02
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self._db.transaction(write=True) as conn:
                    _lock(conn)
                    return work(conn)
            except SQLAlchemyError as exc:
                if attempt < WRITE_ATTEMPTS and _transient(exc):
                    time.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, 1.0)
                    continue
                raise StorageError(f"database {self._db.url}: could not {action}: {reason(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reading ----------------------------------------------------------------------------------

    def entries(self, *, after: int = 0, kind: str | None = None, limit: int | None = None) -> list[Entry]:
        """Entries with ``seq > after`` in seq order, optionally only one kind and at most ``limit``."""
        query = self._query(kind, limit)
        with self._reading("read the ledger") as conn:
            table = LedgerRow.__table__
            rows = conn.execute(query(conn).where(table.c.seq > after).order_by(table.c.seq))
            return [_entry(_row(r)) for r in rows]

    def last(self, n: int, *, kind: str | None = None) -> list[Entry]:
        """The last ``n`` entries (of one kind, if given), oldest first."""
        query = self._query(kind, n)
        with self._reading("read the ledger") as conn:
            rows = conn.execute(query(conn).order_by(LedgerRow.__table__.c.seq.desc()))
            return [_entry(_row(r)) for r in reversed(rows.all())]

    def head(self) -> Entry | None:
        """The last entry, or None when the ledger is empty."""
        last = self.last(1)
        return last[0] if last else None

    def public_keys(self) -> dict[str, str]:
        """Node id -> public key hex, as first registered by each node's key entry."""
        with self._reading("read the ledger's keys") as conn:
            table = LedgerRow.__table__
            nodes = conn.scalars(select(table.c.signer).where(table.c.kind == "key").distinct()).all()
            return _registered(conn, nodes) if nodes else {}

    def verify(self, *, expected_head: str | None = None, policy: SignerPolicy | None = None) -> VerifyReport:
        """Check every entry in order and report the first bad one (see :class:`VerifyReport`).

        ``expected_head`` is an entry hash kept from earlier (``swarmrank ledger head``): the
        ledger must still contain it, which detects entries cut off the end. With a ``policy``,
        every entry its signer may not write is named too (the walk goes on past them).
        """
        expected = None if expected_head is None else expected_head.strip().lower()
        if expected is not None and not is_hex(expected, 64):
            raise LedgerError(f"expected head {expected_head!r} is not a SHA-256 hash (64 hex digits)")
        chain = Chain(policy)
        refused: list[tuple[int, str]] = []
        found = expected is None
        with self._reading("verify the ledger") as conn:
            for row in _walk(conn):
                bad = chain.check(row)
                if bad is not None:
                    return VerifyReport(False, chain.count, chain.head, bad[0], bad[1], tuple(refused))
                if chain.refused is not None:
                    refused.append((row.seq, chain.refused))
                found = found or row.hash == expected
        if not found and expected is not None:
            end = f"ends at entry {chain.last_seq}" if chain.count else "is empty"
            return VerifyReport(False, chain.count, chain.head, chain.last_seq + 1,
                                f"expected head {expected[:12]}… is not in the ledger, which {end}: "
                                "it is shorter than, or diverges from, the ledger that head was taken from",
                                tuple(refused))
        return VerifyReport(not refused, chain.count, chain.head, None, None, tuple(refused))

    def follow(self, policy: SignerPolicy | None = None) -> Follower:
        """A :class:`Follower`: this ledger's new entries, each verified before it is handed on."""
        return Follower(self, policy)

    def export(self, fh: TextIO) -> int:
        """Write every entry to ``fh`` as JSON Lines (one object per line, all fields); returns the count."""
        count = 0
        with self._reading("export the ledger") as conn:
            for row in _walk(conn):
                fh.write(json.dumps(asdict(_entry(row)), ensure_ascii=False, allow_nan=False) + "\n")
                count += 1
        return count

    def _query(self, kind: str | None, limit: int | None) -> Callable[[Connection], Any]:
        if kind is not None and kind not in KINDS:
            raise LedgerError(f"unknown ledger entry kind {kind!r} (known: {', '.join(KINDS)})")
        if limit is not None and limit < 0:
            raise LedgerError(f"limit must be >= 0, not {limit}")

        def query(conn: Connection) -> Any:
            q = _select(conn)
            if kind is not None:
                q = q.where(LedgerRow.__table__.c.kind == kind)
            return q if limit is None else q.limit(limit)

        return query

    def _reading(self, action: str) -> AbstractContextManager[Connection]:
        return self._db.read(action)


class Follower:
    """Reads a ledger incrementally and hands on only entries that verify.

    Each :meth:`read` fetches the entries after the last one it has seen and checks each — seq,
    chain link, hash, signature, and with a ``policy`` whether its signer may write it — before
    handing it on, so a caller building state from the ledger (the trust registry) pays only for
    the new entries and never acts on an edited, forged or reordered one. It also re-reads the
    last entry it had verified: one that changed or vanished since (a rewritten or truncated
    ledger) breaks the chain too. After a break it hands on nothing more, and every read reports
    the break again, until the ledger is repaired.
    """

    def __init__(self, ledger: Ledger, policy: SignerPolicy | None = None) -> None:
        self._ledger = ledger
        self._chain = Chain(policy)
        self._last: Row | None = None  # the last entry verified, every column as read

    @property
    def position(self) -> int:
        """The seq of the last entry read and verified (0 before the first)."""
        return self._chain.last_seq

    def countersigned(self) -> dict[str, str]:
        """Node id -> the key an allowed admission bound it to, as of :attr:`position`."""
        return {node: key for node, (key, _) in self._chain.countersigned.items()}

    def read(self) -> FollowedEntries:
        """The entries written since the last read that verify, those a policy refused, and the
        first break (a :class:`~swarmrank.errors.LedgerBroken`, not raised) if there is one."""
        chain = self._chain
        table = LedgerRow.__table__
        good: list[Entry] = []
        refused: list[tuple[int, str]] = []
        with self._ledger._reading("read the ledger") as conn:
            if self._last is not None:
                last = conn.execute(_select(conn).where(table.c.seq == chain.last_seq)).first()
                if last is None or _row(last) != self._last:
                    return FollowedEntries([], [], _lost(chain.last_seq, self._last.hash, _head(conn)[0],
                                                         gone=last is None))
            for row in _walk(conn, after=chain.last_seq):
                bad = chain.check(row)
                if bad is not None:
                    return FollowedEntries(good, refused, LedgerBroken(
                        f"ledger entry {bad[0]} fails verification: {bad[1]}", seq=bad[0]))
                self._last = row
                if chain.refused is not None:
                    refused.append((row.seq, chain.refused))
                else:
                    good.append(Entry(row.seq, row.created_at, row.kind, chain.payload, row.signer,
                                      row.prev_hash, row.hash, row.signature))
        return FollowedEntries(good, refused, None)


def _lost(seq: int, kept: str, now: int, *, gone: bool) -> LedgerBroken:
    """The break a :class:`Follower` finds when entry ``seq``, which it verified with hash ``kept``,
    is gone (the ledger now ends at entry ``now``) or changed since. A cut or rewritten tail can
    leave a chain that verifies on its own: only the kept hash shows it."""
    if gone and now < seq:
        cut = f"entries {now + 1}–{seq} are" if now + 1 < seq else f"entry {seq} is"
        what = (f"the ledger was cut after entry {now}: {cut} gone, though this process had verified "
                f"the ledger up to entry {seq} (hash {kept})")
    elif gone:
        what = f"ledger entry {seq} is gone, though this process had verified it (hash {kept})"
    else:
        what = f"ledger entry {seq} changed since this process verified it (its hash was {kept})"
    return LedgerBroken(f"{what}; the shorter or rewritten chain may still verify on its own, so plain "
                        f"`swarmrank ledger verify` can say ok: `swarmrank ledger verify --head {kept}` shows it",
                        seq=seq, kept_head=kept)


class FollowedEntries(NamedTuple):
    """What one :meth:`Follower.read` found."""

    entries: list[Entry]               # verified and allowed, in seq order
    refused: list[tuple[int, str]]     # (seq, why) of verified entries the policy does not allow
    broken: LedgerBroken | None        # the first entry that fails verification, if any


# -- appending and importing (inside the locked transaction) ----------------------------------------


def _public_hex(signer: Signer) -> str:
    try:
        check_node_id(signer.node_id)
    except ConfigError as exc:
        raise LedgerError(f"cannot sign ledger entries as {signer.node_id!r}: {exc}") from None
    public = signer.public_hex
    public = public.lower() if isinstance(public, str) else public
    if not is_hex(public, 64):
        raise LedgerError(f"signer {signer.node_id!r} has no Ed25519 public key (64 hex digits): {public!r}")
    return public


def _prepare(kind: str, payload: dict[str, Any], signer: Signer) -> _Item:
    if kind == "key":
        raise LedgerError("key entries are written by Ledger.register_key, not appended directly")
    if kind not in KINDS:
        raise LedgerError(f"unknown ledger entry kind {kind!r} (known: {', '.join(KINDS)})")
    return _Item(kind, _payload_text(payload), signer, _public_hex(signer))


def _key_payload(node: str, public: str) -> str:
    return canonical({"node": node, "public_key": public}).decode()


def _different_key(node: str) -> LedgerError:
    return LedgerError(f"node {node!r} is registered in the ledger with a different key; "
                       "refusing to sign with this one (keys cannot be replaced)")


def _append(conn: Connection, items: list[_Item]) -> list[Entry]:
    keys = _registered(conn, [item.signer.node_id for item in items])
    planned: list[tuple[str, str, Signer, str]] = []
    mine: list[int] = []  # positions in `planned` of the caller's entries
    for item in items:
        node = item.signer.node_id
        known = keys.get(node)
        if known is None:
            keys[node] = item.public
            planned.append(("key", _key_payload(node, item.public), item.signer, item.public))
        elif known != item.public:
            raise _different_key(node)
        mine.append(len(planned))
        planned.append((item.kind, item.payload, item.signer, item.public))
    seq, prev = _head(conn)
    written = _write_entries(conn, seq, prev, planned)
    return [written[i] for i in mine]


def _write_entries(conn: Connection, seq: int, prev: str, planned: list[tuple[str, str, Signer, str]]) -> list[Entry]:
    """Hash, sign and insert ``planned`` (kind, payload text, signer, its public key) after entry ``seq``."""
    entries = []
    for kind, payload_text, signer, public in planned:
        seq += 1
        created_at = _now()
        payload = json.loads(payload_text)
        digest = entry_hash(seq, created_at, kind, payload, signer.node_id, prev)
        signature = signer.sign(bytes.fromhex(digest))
        if not isinstance(signature, bytes) or not verify_bytes(public, bytes.fromhex(digest), signature):
            raise LedgerError(f"signer {signer.node_id!r} produced a signature that its public key does not verify")
        entries.append(Entry(seq, created_at, kind, payload, signer.node_id, prev, digest, signature.hex()))
        prev = digest
    conn.execute(insert(LedgerRow), [_stored(e) for e in entries])
    return entries


def _stored(entry: Entry) -> dict[str, Any]:
    return {**asdict(entry), "payload": canonical(entry.payload).decode()}


def _import(conn: Connection, rows: list[Row]) -> int:
    """Check the stored entries are the first of ``rows`` and insert the rest; returns how many."""
    have = 0
    for stored in _walk(conn):
        if have >= len(rows):
            raise LedgerError(f"the ledger has entry {stored.seq} but the file ends at entry {len(rows)}: "
                              "the file is not an extension of this ledger; nothing imported")
        if stored != rows[have]:
            raise LedgerError(f"the ledger and the file differ at entry {have + 1}: "
                              "the file is not an extension of this ledger; nothing imported")
        have += 1
    rest = [row._asdict() for row in rows[have:]]
    for start in range(0, len(rest), BATCH):
        conn.execute(insert(LedgerRow), rest[start:start + BATCH])
    return len(rest)

