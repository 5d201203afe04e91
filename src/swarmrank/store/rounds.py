"""The round store: every :class:`~swarmrank.result.RoundResult`, saved and read back.

:class:`Store` is a :class:`~swarmrank.store.engine.Database` with the rounds on top: the one
way the CLI, the server, evaluation and library callers save a round (:meth:`Store.save_round`,
called by :meth:`swarmrank.swarm.Swarm.ask`; :meth:`Store.round_writer` inside the ledger's
transaction when trust is on) and read it back.

Any text can be saved. ``result_json`` keeps the round exactly (JSON escapes every control
character, NUL included); the columns beside it, copies for SQL, hold text a database may refuse
(NUL, which PostgreSQL cannot store in text; lone surrogates, which are not UTF-8) as visible
stand-ins (:func:`storable`), and filters are mapped the same way before they reach the database.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import String, Table, cast, func, insert, select
from sqlalchemy.engine import Connection

from swarmrank.errors import AmbiguousRoundId, RoundNotFound, StorageError
from swarmrank.result import Answer, Candidate, Judgment, RoundResult
from swarmrank.store.engine import Database
from swarmrank.store.schema import AnswerRow, CandidateRow, JudgmentRow, RoundRow, as_utc

__all__ = ["MIN_PREFIX", "CheckedRound", "RoundSummary", "Store", "storable"]

MIN_PREFIX = 4
"""The shortest round-id prefix :meth:`Store.get_round` accepts (like git's short hashes)."""

_ANSWERS: Table = AnswerRow.__table__  # type: ignore[assignment]
_JUDGMENTS: Table = JudgmentRow.__table__  # type: ignore[assignment]
_CANDIDATES: Table = CandidateRow.__table__  # type: ignore[assignment]
_ROUNDS: Table = RoundRow.__table__  # type: ignore[assignment]
_SUMMARY = ("created_at", "protocol", "question", "answer", "confidence", "calls", "wall_seconds")
"""The fields of a :class:`RoundSummary` after its id, as :func:`_round_values` names them."""


@dataclass(frozen=True)
class RoundSummary:
    """One line of ``swarmrank rounds list``: the columns of a round, without its answers."""

    round_id: str
    created_at: datetime
    protocol: str
    question: str
    answer: str | None
    confidence: float
    calls: int
    wall_seconds: float


@dataclass(frozen=True)
class CheckedRound:
    """One stored round as :meth:`Store.check_rounds` read it: its ``trusted`` mark, its
    ``created_at`` column, its ``result_json`` and every SQL column derived from that record which
    does not hold what the record says (``answer``, ``answers[2].text``, ``judgments: 5 rows, the
    record has 6``, or why the record cannot be read); empty when they all agree."""

    round_id: str
    trusted: bool
    created_at: datetime | None  # None: the column does not hold a timestamp (a disagreement too)
    result_json: str
    disagreements: tuple[str, ...]


class Store(Database):
    """Rounds in the database at ``url`` (any SQLAlchemy URL); see :class:`~swarmrank.store.engine.Database`."""

    def save_round(self, result: RoundResult) -> None:
        """Write ``result`` and all its answers, candidates and judgments in one transaction.

        All or nothing: on any failure nothing of the round is left. Saving a ``round_id`` that
        is already stored raises :class:`StorageError` and leaves the stored copy untouched.
        """
        write = self.round_writer(result)
        with self.write(f"save round {result.round_id}") as conn:
            write(conn)

    def round_writer(self, result: RoundResult, *, trusted: bool = False) -> Callable[[Connection], None]:
        """What :meth:`save_round` does, as a function of a connection whose transaction the caller
        holds: the ledger saves a trusted round in the transaction that writes its entries."""
        url = self.url

        def write(conn: Connection) -> None:
            if conn.scalar(select(RoundRow.id).where(RoundRow.id == result.round_id)) is not None:
                raise StorageError(f"round {result.round_id} is already saved in database {url}")
            _insert_round(conn, result, trusted=trusted)
            _insert_answers(conn, result)
            _insert_candidates(conn, result)
            _insert_judgments(conn, result)

        return write

    def trusted_rounds(self, batch: int = 200) -> Iterator[tuple[str, str]]:
        """(round id, result JSON) of every round saved under trust, oldest first, ``batch`` at a time."""
        query = select(RoundRow.id, RoundRow.result_json).where(RoundRow.trusted.is_(True)).order_by(RoundRow.id)
        last: str | None = None
        while True:
            page = query if last is None else query.where(RoundRow.id > last)
            with self.read("read trusted rounds") as conn:
                rows = [(str(i), str(j)) for i, j in conn.execute(page.limit(batch))]
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1][0]

    def check_rounds(self, batch: int = 100) -> Iterator[CheckedRound]:
        """Every stored round, by id, ``batch`` at a time, with the columns beside ``result_json``
        (in ``rounds``, ``answers``, ``candidates`` and ``judgments``) checked against it.

        ``result_json`` is the round's record (what :meth:`get_round` returns and what the ledger's
        digest covers); the columns are copies for SQL, so a column edited on its own (a listing
        showing another answer) shows here. Text is compared through :func:`storable`, as it was
        written (a column holding the text itself, from before the stand-ins, agrees too).
        """
        last: str | None = None
        while True:
            with self.read("check stored rounds") as conn:
                query = select(*(_created_at(conn) if name == "created_at" else _ROUNDS.c[name]
                                 for name in _ROUNDS.c.keys())).order_by(_ROUNDS.c.id)
                page = query if last is None else query.where(_ROUNDS.c.id > last)
                rows = [dict(r._mapping) for r in conn.execute(page.limit(batch))]
                ids = [str(r["id"]) for r in rows]
                children = {name: _child_rows(conn, table, ids) for name, table in _CHILDREN.items()}
            for row in rows:
                round_id = str(row["id"])
                text = str(row["result_json"])
                row["created_at"] = _when(row["created_at"])
                found = {name: rows_of.get(round_id, []) for name, rows_of in children.items()}
                yield CheckedRound(round_id, bool(row["trusted"]), row["created_at"], text,
                                   tuple(_disagreements(text, row, found)))
            if len(rows) < batch:
                return
            last = ids[-1]

    def stored_record(self, round_id: str) -> str | None:
        """The ``result_json`` of the round with exactly this id, None if there is none."""
        if storable(round_id) != round_id:
            return None
        with self.read(f"read round {round_id}") as conn:
            text = conn.scalar(select(RoundRow.result_json).where(RoundRow.id == round_id))
        return None if text is None else str(text)

    def get_round(self, round_id_or_prefix: str) -> RoundResult:
        """The round with this id, or with the only id that starts with this prefix (≥ 4 characters).

        Raises :class:`~swarmrank.errors.RoundNotFound` or :class:`~swarmrank.errors.AmbiguousRoundId`.
        """
        key = round_id_or_prefix.strip()
        if storable(key) != key:  # no round id holds such text (and PostgreSQL refuses NUL in a query)
            raise RoundNotFound(f"no round {key!r} in database {self.url}", key=key)
        with self.read(f"read round {key}") as conn:
            round_id = self._resolve(conn, key)
            text = conn.scalar(select(RoundRow.result_json).where(RoundRow.id == round_id))
        if text is None:  # deleted between the two reads
            raise RoundNotFound(f"no round {key} in database {self.url}", key=key)
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
            raise RoundNotFound(f"no round {key or repr(key)} in database {self.url}{hint}", key=key)
        # substr, not LIKE: exact and case-sensitive on every backend, no wildcards to escape.
        matching = func.substr(RoundRow.id, 1, len(key)) == key
        count = conn.scalar(select(func.count()).select_from(RoundRow).where(matching)) or 0
        if count == 0:
            raise RoundNotFound(f"no round {key} in database {self.url}", key=key)
        if count > 1:
            raise AmbiguousRoundId(
                f"round prefix {key} is ambiguous: {count} rounds in database {self.url} match; give more characters",
                key=key, matches=count)
        return str(conn.scalar(select(RoundRow.id).where(matching)))

    def list_rounds(self, limit: int = 20, protocol: str | None = None, swarm: str | None = None) -> list[RoundSummary]:
        """Up to ``limit`` rounds, newest first, optionally only those of one protocol and/or swarm."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        with self.read("list rounds") as conn:
            query = select(RoundRow.id, _created_at(conn), *(_ROUNDS.c[name] for name in _SUMMARY[1:]),
                           RoundRow.result_json)
            query = _filtered(query, protocol=protocol, swarm=swarm)
            query = query.order_by(RoundRow.created_at.desc(), RoundRow.id.desc()).limit(limit)
            rows = [tuple(row) for row in conn.execute(query)]
        return [self._summary(row) for row in rows]

    def _summary(self, row: tuple[Any, ...]) -> RoundSummary:
        """A listed round, from its record (``result_json``, the last value of ``row``), which the
        ledger's digest covers under trust; from its columns (the values before it) only when the
        record cannot be read."""
        round_id, created_at, *columns, text = row
        try:
            values = _storable(_round_values(RoundResult.model_validate_json(text)))
        except ValidationError:
            when = _when(created_at)
            if when is None:
                raise StorageError(f"round {round_id} in database {self.url} cannot be read: neither its record "
                                   f"nor its created_at column ({created_at!r})") from None
            return RoundSummary(round_id, when, *columns)
        return RoundSummary(round_id, as_utc(values["created_at"]), *(values[name] for name in _SUMMARY[1:]))

    def judge_history(self, swarm: str, limit: int) -> list[dict[str, Any]]:
        """The swarm's latest ``limit`` peer-rank rounds that judged anything, oldest first, each as
        ``{"judge_reports": [...], "votes": [...], "evidence_low": [...]}`` (what
        :class:`~swarmrank.reliability.JudgeBook` is rebuilt from)."""
        query = select(RoundRow.result_json).where(RoundRow.swarm == storable(swarm), RoundRow.protocol == "peer-rank")
        query = query.order_by(RoundRow.created_at.desc(), RoundRow.id.desc()).limit(limit)
        out: list[dict[str, Any]] = []
        with self.read("read judge reports") as conn:
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
        with self.read("count rounds") as conn:
            return int(conn.scalar(query) or 0)


# -- rows from a RoundResult ----------------------------------------------------------------------


def storable(text: str) -> str:
    """``text`` with what a database column may refuse replaced by a visible stand-in: NUL by
    ``␀`` (U+2400), a lone surrogate by ``�`` (U+FFFD). Other text comes back as it is."""
    if "\x00" in text:
        text = text.replace("\x00", "\u2400")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text


def _storable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: storable(v) if isinstance(v, str) else v for k, v in row.items()}


def _round_values(result: RoundResult) -> dict[str, Any]:
    """The ``rounds`` columns derived from ``result`` (all but ``result_json`` and ``trusted``),
    before :func:`storable`."""
    cost = result.cost
    return {
        "id": result.round_id, "created_at": result.created_at, "swarm": result.swarm,
        "question": result.question, "task_type": result.task_type, "protocol": result.protocol,
        "schedule": result.schedule, "answer": result.answer, "confidence": result.confidence,
        "winner": result.winner, "wall_seconds": cost.wall_seconds, "calls": cost.calls,
        "prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens,
        "schema_version": result.schema_version,
    }


def _round_row(result: RoundResult) -> dict[str, Any]:
    try:
        result_json = result.model_dump_json()
    except ValueError as exc:  # pydantic's serialisation error: text that is not Unicode (a lone surrogate)
        raise StorageError(f"round {result.round_id} cannot be stored: {str(exc).splitlines()[0]}") from None
    return _storable({**_round_values(result), "result_json": result_json})


def _fields(model: Answer | Judgment, table: Table) -> dict[str, Any]:
    """The model's fields that have a column (any others live only in ``result_json``)."""
    return {k: v for k, v in model.model_dump().items() if k in table.c}


def _answer_values(round_id: str, position: int, a: Answer) -> dict[str, Any]:
    return {**_fields(a, _ANSWERS), "round_id": round_id, "position": position}


def _candidate_values(round_id: str, position: int, c: Candidate) -> dict[str, Any]:
    return {
        "round_id": round_id, "position": position, "answer": c.answer, "strength": c.strength,
        "log_strength": c.log_strength, "stderr": c.stderr, "votes": c.votes, "mean_rank": c.mean_rank,
        "nodes": json.dumps(c.nodes),
    }


def _judgment_values(round_id: str, position: int, j: Judgment) -> dict[str, Any]:
    return {**_fields(j, _JUDGMENTS), "round_id": round_id, "position": position}


def _answer_row(round_id: str, position: int, a: Answer) -> dict[str, Any]:
    return _storable(_answer_values(round_id, position, a))


def _candidate_row(round_id: str, position: int, c: Candidate) -> dict[str, Any]:
    return _storable(_candidate_values(round_id, position, c))


def _judgment_row(round_id: str, position: int, j: Judgment) -> dict[str, Any]:
    return _storable(_judgment_values(round_id, position, j))


# -- columns checked against the record, and read from it -------------------------------------------

_CHILDREN: dict[str, Table] = {"answers": _ANSWERS, "candidates": _CANDIDATES, "judgments": _JUDGMENTS}

_SHOWN = 8
"""Disagreeing columns named per round; more are counted."""


def _child_rows(conn: Connection, table: Table, ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The rows of ``table`` for the rounds ``ids``, by round id, in position order."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if ids:
        query = select(table).where(table.c.round_id.in_(list(ids))).order_by(table.c.round_id, table.c.position)
        for row in conn.execute(query):
            found[str(row.round_id)].append(dict(row._mapping))
    return found


def _expected_children(result: RoundResult) -> dict[str, list[dict[str, Any]]]:
    rid = result.round_id
    return {
        "answers": [_answer_values(rid, i, a) for i, a in enumerate(result.answers)],
        "candidates": [_candidate_values(rid, i, c) for i, c in enumerate(result.candidates)],
        "judgments": [_judgment_values(rid, i, j) for i, j in enumerate(result.judgments)],
    }


def _agrees(expected: Any, stored: Any) -> bool:
    """Whether a column holds the value derived from the record (text as it was written, or its
    :func:`storable` stand-in; a timestamp in UTC; a number equal as a float)."""
    if isinstance(expected, str):
        return isinstance(stored, str) and (stored == storable(expected) or stored == expected)
    if expected is None or stored is None:
        return expected is None and stored is None
    if isinstance(expected, datetime):
        return isinstance(stored, datetime) and as_utc(stored) == as_utc(expected)
    if isinstance(expected, bool) or isinstance(stored, bool):
        return isinstance(stored, (bool, int)) and bool(stored) == bool(expected) and int(stored) in (0, 1)
    if isinstance(expected, (int, float)) and isinstance(stored, (int, float)):
        a, b = float(expected), float(stored)
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(expected == stored)


def _disagreements(text: str, row: dict[str, Any], children: dict[str, list[dict[str, Any]]]) -> list[str]:
    try:
        result = RoundResult.model_validate_json(text)
    except ValidationError as exc:
        return [f"result_json (the record cannot be read: {exc.error_count()} invalid field(s), "
                f"first: {_first_error(exc)})"]
    found = [name for name, value in _round_values(result).items() if not _agrees(value, row.get(name))]
    for table, expected_rows in _expected_children(result).items():
        stored_rows = children.get(table, [])
        if len(stored_rows) != len(expected_rows):
            found.append(f"{table} ({len(stored_rows)} rows, the record has {len(expected_rows)})")
            continue
        for i, (want, have) in enumerate(zip(expected_rows, stored_rows)):
            found += [f"{table}[{i}].{name}" for name, value in want.items() if not _agrees(value, have.get(name))]
    if len(found) > _SHOWN:
        found = [*found[:_SHOWN], f"… {len(found) - _SHOWN} more"]
    return found


def _created_at(conn: Connection) -> Any:
    """``rounds.created_at`` as stored: text on SQLite (whose column may hold anything; read as a
    timestamp a malformed one would raise), a timestamp elsewhere; :func:`_when` reads either."""
    if conn.dialect.name == "sqlite":
        return cast(_ROUNDS.c.created_at, String).label("created_at")
    return _ROUNDS.c.created_at


def _when(value: Any) -> datetime | None:
    """A ``created_at`` column's value as an aware UTC datetime; None if it is not a timestamp."""
    if isinstance(value, datetime):
        return as_utc(value)
    try:
        return as_utc(datetime.fromisoformat(str(value)))
    except ValueError:
        return None


def _insert_round(conn: Connection, result: RoundResult, *, trusted: bool = False) -> None:
    conn.execute(insert(RoundRow), [{**_round_row(result), "trusted": trusted}])


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


def _filtered(query: Any, *, protocol: str | None, swarm: str | None) -> Any:
    """Only rounds of ``protocol`` and/or ``swarm``, compared as the columns store them (:func:`storable`)."""
    if protocol is not None:
        query = query.where(RoundRow.protocol == storable(protocol))
    if swarm is not None:
        query = query.where(RoundRow.swarm == storable(swarm))
    return query


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
    return f"{where}: {err.get('msg', '')}"
