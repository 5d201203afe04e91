"""The audit of stored rounds against the ledger: what ``swarmrank ledger verify`` checks beyond the chain.

A round saved under ``[trust]`` is written in the transaction that writes its ledger entries
(:meth:`swarmrank.registry.Registry.record`): a ``round`` entry with the round's digest, and a
``reputation`` entry per node that took part. :func:`audit_rounds` checks that this held, both ways,
and that the rounds table shows what the records say:

* every stored round marked trusted has a ``round`` entry (from a trust authority), and a
  ``reputation`` entry for every node the ``round`` entry scores;
* every ``round`` entry that says its round was stored (``stored: true``) names a round that is in
  the rounds table, marked trusted, and that round's record still has the digest the entry
  committed to — an edited or deleted round shows;
* every stored round's SQL columns (``answer``, ``confidence``, ``question``, … and the
  ``answers``, ``candidates`` and ``judgments`` rows) agree with its record (``result_json``, what
  the digest covers): a column edited on its own shows (:meth:`swarmrank.store.Store.check_rounds`);
* once trust began — the first ``round`` entry from an authority, or the creation of the round it
  records if that is earlier — every round stored at or after it is in the ledger. The
  ``trusted`` mark lives in the database an attacker can write, so a round stored since without
  a ledger record (its entries cut off the end and its mark cleared, or a round written in SQL)
  is *unrecorded*: listed, and a failure unless the operator allows untrusted rounds (trust
  turned off for a while, a swarm without trust sharing the database).

Entries refused by the signer policy (``skip``) record nothing. Memory stays bounded by the number
of ``round`` entries (a few hundred bytes each); stored rounds are read in batches.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from swarmrank.ledger import Entry, Ledger
from swarmrank.store import Store
from swarmrank.store.schema import as_utc
from swarmrank.wire import digest

__all__ = ["RoundAudit", "audit_rounds"]

PAGE = 1000
"""Ledger entries read per query."""

UNRECORDED_LISTED = 100
"""Unrecorded rounds named in a :class:`RoundAudit` (more are counted)."""


@dataclass(frozen=True)
class RoundAudit:
    """What :func:`audit_rounds` found: how many trusted rounds and ``round`` entries it checked,
    and one line per problem (empty when every round has its record and its columns agree).

    ``stored`` counts every stored round (their columns were checked); ``trust_began`` is when
    trust began (ISO-8601, None while the ledger records no round); ``unrecorded`` counts the
    rounds stored since then that are neither marked trusted nor in the ledger, and
    ``unrecorded_ids`` names the first :data:`UNRECORDED_LISTED` of them, oldest first. They fail
    the audit unless ``untrusted_allowed``.
    """

    rounds: int
    recorded: int
    problems: list[str] = field(default_factory=list)
    stored: int = 0
    trust_began: str | None = None
    unrecorded: int = 0
    unrecorded_ids: list[str] = field(default_factory=list)
    untrusted_allowed: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and (self.untrusted_allowed or not self.unrecorded)


@dataclass
class _Recorded:
    seq: int
    digest: object
    stored: bool
    scored: set[str]
    found: bool = False


def _entries(ledger: Ledger, kind: str) -> Iterator[Entry]:
    after = 0
    while True:
        page = ledger.entries(after=after, kind=kind, limit=PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].seq


def _when(text: object) -> datetime | None:
    """An entry's ``created_at`` as an aware datetime (None if it is not ISO-8601)."""
    try:
        return as_utc(datetime.fromisoformat(str(text)))
    except ValueError:
        return None


def audit_rounds(store: Store, ledger: Ledger, *, skip: Iterable[int] = (),
                 allow_untrusted: bool = False) -> RoundAudit:
    """Check the rounds in ``store`` against the ``round`` and ``reputation`` entries of ``ledger``
    (the same database), leaving out the entries whose seq is in ``skip``; with
    ``allow_untrusted`` rounds stored without a ledger record since trust began are counted and
    named but do not fail the audit."""
    refused = set(skip)
    recorded: dict[str, _Recorded] = {}
    first: Entry | None = None  # the first round entry from an authority: trust began with it
    for entry in _entries(ledger, "round"):
        p = entry.payload
        round_id = p.get("round_id")
        if entry.seq in refused or not isinstance(round_id, str) or round_id in recorded:
            continue
        first = first or entry
        scored = {str(n) for part in ("answerers", "judges") if isinstance(p.get(part), dict) for n in p[part]}
        recorded[round_id] = _Recorded(entry.seq, p.get("digest"), p.get("stored") is True, scored)
    reputation: dict[str, set[str]] = defaultdict(set)
    for entry in _entries(ledger, "reputation"):
        round_id = entry.payload.get("round_id")
        if entry.seq not in refused and isinstance(round_id, str) and round_id in recorded:
            reputation[round_id].add(str(entry.payload.get("node")))

    began = None if first is None else _began(store, first, recorded[first.payload["round_id"]])
    problems: list[str] = []
    unmarked: set[str] = set()  # recorded rounds stored without the trusted mark
    unrecorded: list[str] = []
    unrecorded_count = rounds = stored = 0
    for checked in store.check_rounds():
        stored += 1
        round_id = checked.round_id
        if checked.disagreements:
            problems.append(f"round {round_id}: columns that disagree with its stored record (result_json): "
                            f"{', '.join(checked.disagreements)} (edited in SQL?)")
        record = recorded.get(round_id)
        if not checked.trusted:
            if record is not None:
                unmarked.add(round_id)
            elif began is not None and (checked.created_at is None or checked.created_at >= began):
                unrecorded_count += 1
                if len(unrecorded) < UNRECORDED_LISTED:
                    unrecorded.append(round_id)
            continue
        rounds += 1
        if record is None:
            problems.append(f"round {round_id}: saved under trust, but no ledger entry records it")
            continue
        record.found = True
        if _digest(checked.result_json) != record.digest:
            problems.append(f"round {round_id}: its stored record does not match the digest ledger entry "
                            f"{record.seq} committed to (edited after it was recorded?)")
        missing = sorted(record.scored - reputation[round_id])
        if missing:
            problems.append(f"round {round_id}: ledger entry {record.seq} scores {', '.join(missing)} but no "
                            "reputation entry follows from it")
    for round_id, record in recorded.items():
        if record.stored and not record.found:
            if round_id in unmarked:
                problems.append(f"round {round_id}: ledger entry {record.seq} records it as saved under trust, but "
                                "its stored round is not marked so (rounds.trusted edited?)")
            else:
                problems.append(f"round {round_id}: ledger entry {record.seq} records it as stored, but it is not "
                                "among the stored rounds saved under trust (deleted?)")
    return RoundAudit(rounds, len(recorded), problems, stored=stored,
                      trust_began=None if began is None else began.isoformat(timespec="microseconds"),
                      unrecorded=unrecorded_count, unrecorded_ids=unrecorded, untrusted_allowed=allow_untrusted)


def _digest(text: str) -> str | None:
    try:
        return digest(json.loads(text))
    except ValueError:
        return None


def _began(store: Store, first: Entry, record: _Recorded) -> datetime | None:
    """When trust began: the first ``round`` entry was written, or the round it records was
    created if that is earlier (a round is created before its entry is written) and its stored
    record still has the digest the entry committed to."""
    began = _when(first.created_at)
    text = store.stored_record(str(first.payload["round_id"]))
    if text is None or _digest(text) != record.digest:
        return began  # not stored, or edited (reported as a problem of that round)
    try:
        created = as_utc(datetime.fromisoformat(str(json.loads(text)["created_at"])))
    except (ValueError, KeyError, TypeError):
        return began
    return created if began is None or created < began else began
