"""The node registry: who may take part, with what weight — kept in the ledger, applied to rounds.

A :class:`Registry` joins a ledger (:class:`swarmrank.ledger.Ledger`, or :class:`MemoryLedger` for
simulation) to the trust rule of :mod:`swarmrank.trust`:

* :meth:`Registry.weigh` picks the nodes that count (admitted, stake at least the minimum) and
  sets their influence from reputation before a round;
* :meth:`Registry.record` writes a round's outcome, signed by the coordinator, with every
  participating node's signature over its own answers and verdicts, and the reputation, slash and
  stake entries that follow from it — all in one ledger transaction;
* :meth:`Registry.admit` and :meth:`Registry.add_stake` write admission results and deposits.

The state is never stored separately: :meth:`Registry.state` replays the ledger (incrementally), so
whatever reads the ledger gets the same reputation. It replays only what verifies: the registry
reads through a :class:`~swarmrank.ledger.Follower`, which checks each new entry's chain link,
hash and signature before it is applied, and skips entries whose signer is not a trust authority
(the coordinator's key, or ``[trust] authorities``). A broken chain stops the registry: every
trusted round is refused with a :class:`~swarmrank.errors.LedgerBroken` naming the first bad entry.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, NamedTuple

from swarmrank.chain import SignerPolicy, is_hex
from swarmrank.errors import LedgerBroken, LedgerConflict, TrustError
from swarmrank.nodes.base import Node
from swarmrank.result import RoundResult
from swarmrank.round import RoundOptions
from swarmrank.trust import RoundScore, TrustParams, TrustState, round_digest, score_round
from swarmrank.wire import digest

__all__ = ["MemoryLedger", "NodeSigner", "Registry", "contribution_digest"]

#: times a write computed from the ledger's state is recomputed when another coordinator got in first
RECORD_ATTEMPTS = 8

log = logging.getLogger("swarmrank.trust")


@dataclass(frozen=True)
class NodeSigner:
    """A :class:`~swarmrank.nodes.base.Node` as a ledger signer (its id, public key and key)."""

    node: Node

    @property
    def node_id(self) -> str:
        return self.node.id

    @property
    def public_hex(self) -> str:
        return self.node.public_key

    def sign(self, payload: bytes) -> bytes:
        return self.node.sign(payload)


def contribution_digest(result: RoundResult, node_id: str) -> str:
    """sha256 over the canonical JSON of everything ``node_id`` said in the round (answers, verdicts)."""
    data = {
        "round_id": result.round_id,
        "node": node_id,
        "answers": [a.text for a in result.answers if a.node == node_id],
        "judgments": [[j.first, j.second, j.verdict, j.reasoning] for j in result.judgments if j.judge == node_id],
        "rankings": [[r.order, r.reasoning] for r in result.rankings if r.judge == node_id],
    }
    return digest(data)


@dataclass(frozen=True)
class MemoryEntry:
    seq: int
    kind: str
    payload: dict[str, Any]
    signer: str


@dataclass
class MemoryLedger:
    """An in-memory stand-in with the ledger's append/entries interface and no hashing or
    signatures, for simulations that run thousands of rounds. Not tamper-evident."""

    items: list[MemoryEntry] = field(default_factory=list)

    def append_many(self, items: Sequence[tuple[str, dict[str, Any], Any]], *,
                    after: int | None = None) -> list[MemoryEntry]:
        if after is not None and after != len(self.items):
            raise LedgerConflict(f"the ledger moved on: its last entry is {len(self.items)}, not {after}")
        out = []
        for kind, payload, signer in items:
            entry = MemoryEntry(len(self.items) + 1, kind, json.loads(json.dumps(payload)), signer.node_id)
            self.items.append(entry)
            out.append(entry)
        return out

    def append(self, kind: str, payload: dict[str, Any], signer: Any) -> MemoryEntry:
        return self.append_many([(kind, payload, signer)])[0]

    def entries(self, *, after: int = 0, kind: str | None = None, limit: int | None = None) -> list[MemoryEntry]:
        out = [e for e in self.items[after:] if kind is None or e.kind == kind]
        return out if limit is None else out[:limit]

    def register_key(self, signer: Any) -> None:
        return None

    def follow(self, policy: SignerPolicy | None = None) -> _MemoryFollower:
        """New entries, unchecked: nothing here is signed, and only this process writes it."""
        return _MemoryFollower(self)


@dataclass
class _MemoryFollower:
    ledger: MemoryLedger
    position: int = 0

    def countersigned(self) -> dict[str, str]:
        return {}

    def read(self) -> _Found:
        new = self.ledger.items[self.position:]
        self.position = len(self.ledger.items)
        return _Found(list(new), [], None)


class _Found(NamedTuple):
    """A :class:`~swarmrank.ledger.FollowedEntries` of a memory ledger: nothing is refused or broken."""

    entries: list[MemoryEntry]
    refused: list[tuple[int, str]]
    broken: None


class Registry:
    """Admission, stake and reputation for one swarm's nodes, kept in ``ledger``.

    ``authorities``: the public keys that may write trust entries (``[trust] authorities``);
    default: the coordinator's own key. The coordinator must be one of them to write.
    """

    def __init__(self, ledger: Any, coordinator: Any, params: TrustParams | None = None, *,
                 authorities: Iterable[str] | None = None) -> None:
        self.ledger = ledger
        self.coordinator = coordinator
        self.params = params or TrustParams()
        own = getattr(coordinator, "public_hex", "")
        keys = list(authorities or ([own] if is_hex(own, 64) else []))
        #: who may write trust entries; None only for a coordinator without a key (simulations)
        self.policy = SignerPolicy.of(keys) if keys else None
        self._follower = ledger.follow(self.policy)
        self._state = TrustState(params=self.params)
        self._lock = threading.Lock()
        self._refused: list[tuple[int, str]] = []  # entries skipped as unauthorised, not yet reported

    # -- reading -------------------------------------------------------------------------------
    def state(self) -> TrustState:
        """The state replayed up to the ledger's head (only new entries are read)."""
        with self._lock:
            self._sync()
            return self._state.copy()

    def _sync(self) -> None:
        """Verify and apply the entries written since the last read (by anyone); hold ``_lock``.

        Entries from signers that are not trust authorities are skipped (and reported by
        :meth:`take_warnings`); an entry that fails verification raises
        :class:`~swarmrank.errors.LedgerBroken`, and so does every later call until it is repaired.
        """
        found = self._follower.read()
        self._state.extend(found.entries)
        self._state.seq = self._follower.position
        for seq, why in found.refused:
            log.warning("ledger entry %s ignored: %s", seq, why)
        self._refused.extend(found.refused)
        broken = found.broken
        if broken is not None and broken.kept_head is not None:  # a cut or rewritten tail: verify may not see it
            raise LedgerBroken(f"{broken}; no trusted round runs until the ledger holds entry {broken.seq} as it "
                               "was verified again (`swarmrank ledger import` an export that has it)", seq=broken.seq,
                               kept_head=broken.kept_head)
        if broken is not None:
            raise LedgerBroken(f"{broken}; no trusted round runs until the ledger is repaired "
                               "(`swarmrank ledger verify` lists every problem)", seq=broken.seq)

    def take_warnings(self) -> list[str]:
        """Lines about ledger entries skipped since the last call (unauthorised signers), once each."""
        with self._lock:
            refused, self._refused = self._refused, []
        if not refused:
            return []
        seqs = ", ".join(str(seq) for seq, _ in refused[:10]) + (", …" if len(refused) > 10 else "")
        return [f"ledger: ignored {len(refused)} entr{'y' if len(refused) == 1 else 'ies'} ({seqs}) from signers "
                f"that are not trust authorities; first: {refused[0][1]} (see `swarmrank ledger verify`)"]

    def _may_write(self) -> None:
        """Refuse to write entries that this registry's own policy would not accept."""
        own = getattr(self.coordinator, "public_hex", "")
        if self.policy is not None and not self.policy.allows(own):
            raise TrustError(f"this coordinator's key {own[:12]}… is not among the trust authorities "
                             "([trust] authorities): it may not write trust entries")

    def weigh(self, nodes: Sequence[Node], options: RoundOptions) -> tuple[list[Node], RoundOptions, list[str]]:
        """The nodes that count in a round, the options with their influence, and who was left out and why."""
        with self._lock:
            self._sync()
            state, admitted_keys = self._state.copy(), self._follower.countersigned()
        counted, left_out = [], []
        for node in nodes:
            info = state.nodes.get(node.id)
            admitted_key = admitted_keys.get(node.id)
            if info is None or not info.admitted:
                left_out.append(f"{node.id}: not admitted")
            elif node.public_key and admitted_key and node.public_key != admitted_key:
                left_out.append(f"{node.id}: its key {node.public_key[:12]}… is not the key it was admitted with "
                                f"({admitted_key[:12]}…); admit it again")
            elif not info.eligible(self.params):
                left_out.append(f"{node.id}: stake {info.stake:g} below the minimum {self.params.min_stake:g}")
            else:
                counted.append(node)
        weights = {n.id: state.influence(n.id) for n in counted}
        return counted, replace(options, influence={**options.influence, **weights}), left_out

    # -- writing -------------------------------------------------------------------------------
    def register(self, nodes: Sequence[Node]) -> None:
        """Record each node's public key (nodes without a key are skipped)."""
        for node in nodes:
            if node.public_key and node.signer is not None:
                self.ledger.register_key(NodeSigner(node))

    def record(self, result: RoundResult, nodes: Sequence[Node], *, correct: Mapping[str, bool] | None = None,
               spot_check: bool = False, store: Any = None) -> RoundScore:
        """Write the round's outcome and its consequences to the ledger in one transaction.

        With a ``store`` (a :class:`~swarmrank.store.Store`), the round itself is saved in that
        same transaction when the ledger lives in the store's database — a stored round always
        has its ledger entries, and a failure leaves neither.
        """
        self._may_write()
        score = score_round(result, self.params, correct=correct, spot_check=spot_check)
        also = self._saver(result, store)
        by_id = {n.id: n for n in nodes}
        participants = sorted(set(score.answerers) | set(score.judges))
        signatures = {}
        for node_id in participants:
            node = by_id.get(node_id)
            digest = contribution_digest(result, node_id)
            sig = node.sign(bytes.fromhex(digest)).hex() if node is not None and node.signer is not None else None
            signatures[node_id] = {"digest": digest, "signature": sig}
        outcome = {
            "round_id": result.round_id, "digest": round_digest(result), "protocol": result.protocol,
            "answer": result.answer, "confidence": result.confidence, "spot_check": spot_check,
            "truth_known": correct is not None, "answerers": score.answerers, "judges": score.judges,
            "nodes": signatures, "at": datetime.now(timezone.utc).isoformat(),
            "stored": store is not None,  # the round record is in the rounds table: `ledger verify` checks it
        }
        p = self.params
        with self._lock:
            for attempt in range(RECORD_ATTEMPTS):
                self._sync()
                state = self._state.copy()
                items: list[tuple[str, dict[str, Any], Any]] = [("round", outcome, self.coordinator)]
                for node_id, s in score.node_scores().items():
                    truth = correct is not None
                    before = state.node(node_id).reputation
                    after = state.updated_reputation(node_id, s, truth=truth)
                    # the rule's constants go with the value, so replay never depends on today's config
                    items.append(("reputation", {"node": node_id, "round_id": result.round_id, "score": s,
                                                 "truth": truth, "before": before, "after": after,
                                                 "rate": p.eta_truth if truth else p.eta, "decay": p.decay},
                                  self.coordinator))
                for slash in score.slashes:
                    items.append(("slash", {"node": slash.node, "round_id": result.round_id,
                                            "amount": slash.amount, "reason": slash.reason}, self.coordinator))
                for reward in score.rewards:
                    items.append(("stake", {"node": reward.node, "round_id": result.round_id,
                                            "amount": reward.amount, "reason": reward.reason}, self.coordinator))
                try:
                    # written only if no other coordinator appended since the state was read
                    if also is None:  # (a memory ledger, for simulations, takes no `also`)
                        self.ledger.append_many(items, after=self._state.seq)
                    else:
                        self.ledger.append_many(items, after=self._state.seq, also=also)
                except LedgerConflict:
                    if attempt + 1 == RECORD_ATTEMPTS:
                        raise
                    continue
                self._sync()
                return score
        raise AssertionError("unreachable")  # pragma: no cover

    def _saver(self, result: RoundResult, store: Any) -> Callable[[Any], None] | None:
        """What writes ``result`` inside the ledger's transaction; a store in another database
        saves it first, on its own (then a crash in between leaves the round without entries)."""
        if store is None:
            return None
        db = getattr(self.ledger, "db", None)
        if db is not None and (db is store or db.url == store.url):
            return store.round_writer(result, trusted=True)
        store.save_round(result)
        return None

    def admit(self, node_id: str, *, passed: bool, report: Mapping[str, Any], stake: float | None = None,
              public_key: str | None = None) -> None:
        """Record an admission exam's result; a pass also deposits ``stake`` (default: the params' deposit).

        ``public_key`` is the key the examined node answered with: the admission countersigns it,
        and from then on the node's signatures in round entries are checked against it.
        """
        amount = self.check_deposit(stake)
        if public_key is not None and not is_hex(public_key, 64):
            raise TrustError(f"node {node_id}: {public_key!r} is not an Ed25519 public key (64 hex digits)")
        self._may_write()
        with self._lock:
            for attempt in range(RECORD_ATTEMPTS):
                self._sync()
                current = self._state.node(node_id)
                payload = {"node": node_id, "passed": bool(passed), **dict(report)}
                if public_key is not None:
                    payload["public_key"] = public_key
                if not passed and current.admitted:
                    payload["revoke"] = True  # a failed re-exam takes the admission away
                items: list[tuple[str, dict[str, Any], Any]] = [("admission", payload, self.coordinator)]
                # the deposit comes with the first admission only: passing again does not undo slashing
                top_up = max(0.0, amount - current.stake) if passed and not current.admitted else 0.0
                if top_up > 0:
                    items.append(("stake", {"node": node_id, "amount": top_up, "reason": "deposit at admission"},
                                  self.coordinator))
                try:
                    self.ledger.append_many(items, after=self._state.seq)
                except LedgerConflict:
                    if attempt + 1 == RECORD_ATTEMPTS:
                        raise
                    continue
                self._sync()
                return

    def check_deposit(self, stake: float | None) -> float:
        """The admission deposit to use (the params' by default); refused when it is not a finite
        amount between the minimum and the maximum stake — check it before running an exam."""
        amount = self.params.deposit if stake is None else float(stake)
        if not math.isfinite(amount):
            raise TrustError(f"a stake must be a finite number, not {amount:g}")
        if amount < self.params.min_stake:
            raise TrustError(f"a stake of {amount:g} is below the minimum of {self.params.min_stake:g}")
        if amount > self.params.max_stake:
            raise TrustError(f"a stake of {amount:g} is above the maximum of {self.params.max_stake:g}")
        return amount

    def add_stake(self, node_id: str, amount: float, reason: str = "deposit") -> None:
        if not (amount > 0 and math.isfinite(amount)):
            raise TrustError("a stake must be a positive amount")
        self._may_write()
        with self._lock:
            self._sync()
            room = self.params.max_stake - self._state.node(node_id).stake
            if amount > room + 1e-9:  # the rule caps stake: refuse rather than record money that vanishes
                raise TrustError(f"{node_id} can take at most {max(room, 0.0):g} more stake "
                                  f"(maximum {self.params.max_stake:g})")
            self.ledger.append("stake", {"node": node_id, "amount": float(amount), "reason": reason},
                               self.coordinator)
            self._sync()
