"""The audit of stored rounds against the ledger: what ``swarmrank ledger verify`` checks beyond the chain.

A round saved under ``[trust]`` is written in the transaction that writes its ledger entries
(:meth:`swarmrank.registry.Registry.record`): a ``round`` entry with the round's digest, and a
``reputation`` entry per node that took part. :func:`audit_rounds` checks that this held, both ways:

* every stored round marked trusted has a ``round`` entry (from a trust authority), and a
  ``reputation`` entry for every node the ``round`` entry scores;
* every ``round`` entry that says its round was stored (``stored: true``) names a round that is in
  the rounds table, and that round's record still has the digest the entry committed to — an
  edited or deleted round shows.

Entries refused by the signer policy (``skip``) record nothing. Memory stays bounded by the number
of ``round`` entries (a few hundred bytes each); stored rounds are read in batches.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from swarmrank.ledger import Entry, Ledger
from swarmrank.store import Store
from swarmrank.wire import digest

__all__ = ["RoundAudit", "audit_rounds"]

PAGE = 1000
"""Ledger entries read per query."""


@dataclass(frozen=True)
class RoundAudit:
    """What :func:`audit_rounds` found: how many trusted rounds and ``round`` entries it checked,
    and one line per problem (empty when every round has its record)."""

    rounds: int
    recorded: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


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


def audit_rounds(store: Store, ledger: Ledger, *, skip: Iterable[int] = ()) -> RoundAudit:
    """Check the rounds in ``store`` against the ``round`` and ``reputation`` entries of ``ledger``
    (the same database), leaving out the entries whose seq is in ``skip``."""
    refused = set(skip)
    recorded: dict[str, _Recorded] = {}
    for entry in _entries(ledger, "round"):
        p = entry.payload
        round_id = p.get("round_id")
        if entry.seq in refused or not isinstance(round_id, str) or round_id in recorded:
            continue
        scored = {str(n) for part in ("answerers", "judges") if isinstance(p.get(part), dict) for n in p[part]}
        recorded[round_id] = _Recorded(entry.seq, p.get("digest"), p.get("stored") is True, scored)
    reputation: dict[str, set[str]] = defaultdict(set)
    for entry in _entries(ledger, "reputation"):
        round_id = entry.payload.get("round_id")
        if entry.seq not in refused and isinstance(round_id, str) and round_id in recorded:
            reputation[round_id].add(str(entry.payload.get("node")))

    problems: list[str] = []
    rounds = 0
    for round_id, text in store.trusted_rounds():
        rounds += 1
        record = recorded.get(round_id)
        if record is None:
            problems.append(f"round {round_id}: saved under trust, but no ledger entry records it")
            continue
        record.found = True
        try:
            stored_digest = digest(json.loads(text))
        except ValueError:
            stored_digest = None
        if stored_digest != record.digest:
            problems.append(f"round {round_id}: its stored record does not match the digest ledger entry "
                            f"{record.seq} committed to (edited after it was recorded?)")
        missing = sorted(record.scored - reputation[round_id])
        if missing:
            problems.append(f"round {round_id}: ledger entry {record.seq} scores {', '.join(missing)} but no "
                            "reputation entry follows from it")
    for round_id, record in recorded.items():
        if record.stored and not record.found:
            problems.append(f"round {round_id}: ledger entry {record.seq} records it as stored, but it is not "
                            "among the stored rounds saved under trust (deleted?)")
    return RoundAudit(rounds, len(recorded), problems)
