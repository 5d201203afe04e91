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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Table, func, insert, select
from sqlalchemy.engine import Connection

from swarmrank.errors import AmbiguousRoundId, RoundNotFound, StorageError
from swarmrank.result import Answer, Candidate, Judgment, RoundResult
from swarmrank.store.engine import Database
from swarmrank.store.schema import AnswerRow, CandidateRow, JudgmentRow, RoundRow

__all__ = ["MIN_PREFIX", "RoundSummary", "Store", "storable"]

MIN_PREFIX = 4
"""The shortest round-id prefix :meth:`Store.get_round` accepts (like git's short hashes)."""

_ANSWERS: Table = AnswerRow.__table__  # type: ignore[assignment]
_JUDGMENTS: Table = JudgmentRow.__table__  # type: ignore[assignment]


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
        query = select(
            RoundRow.id, RoundRow.created_at, RoundRow.protocol, RoundRow.question, RoundRow.answer,
            RoundRow.confidence, RoundRow.calls, RoundRow.wall_seconds,
        )
        query = _filtered(query, protocol=protocol, swarm=swarm)
        query = query.order_by(RoundRow.created_at.desc(), RoundRow.id.desc()).limit(limit)
        with self.read("list rounds") as conn:
            return [RoundSummary(*row) for row in conn.execute(query)]

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


def _round_row(result: RoundResult) -> dict[str, Any]:
    cost = result.cost
    try:
        result_json = result.model_dump_json()
    except ValueError as exc:  # pydantic's serialisation error: text that is not Unicode (a lone surrogate)
        raise StorageError(f"round {result.round_id} cannot be stored: {str(exc).splitlines()[0]}") from None
    return _storable({
        "id": result.round_id, "created_at": result.created_at, "swarm": result.swarm,
        "question": result.question, "task_type": result.task_type, "protocol": result.protocol,
        "schedule": result.schedule, "answer": result.answer, "confidence": result.confidence,
        "winner": result.winner, "wall_seconds": cost.wall_seconds, "calls": cost.calls,
        "prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens,
        "schema_version": result.schema_version, "result_json": result_json,
    })


def _fields(model: Answer | Judgment, table: Table) -> dict[str, Any]:
    """The model's fields that have a column (any others live only in ``result_json``)."""
    return {k: v for k, v in model.model_dump().items() if k in table.c}


def _answer_row(round_id: str, position: int, a: Answer) -> dict[str, Any]:
    return _storable({**_fields(a, _ANSWERS), "round_id": round_id, "position": position})


def _candidate_row(round_id: str, position: int, c: Candidate) -> dict[str, Any]:
    return _storable({
        "round_id": round_id, "position": position, "answer": c.answer, "strength": c.strength,
        "log_strength": c.log_strength, "stderr": c.stderr, "votes": c.votes, "mean_rank": c.mean_rank,
        "nodes": json.dumps(c.nodes),
    })


def _judgment_row(round_id: str, position: int, j: Judgment) -> dict[str, Any]:
    return _storable({**_fields(j, _JUDGMENTS), "round_id": round_id, "position": position})


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
