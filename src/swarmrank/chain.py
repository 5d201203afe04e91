"""The rules of a valid ledger chain, with no database: what :mod:`swarmrank.ledger` checks when it
verifies, follows or imports a ledger, and what an export line must look like.

:class:`Chain` takes an entry's stored columns (:class:`Row`) one at a time, in order, keeping only
the previous hash and the keys: the seq, the chain link, the hash over the canonical content, the
signature by the signer's registered key, the per-node signatures inside a round entry and, with
a :class:`SignerPolicy`, whether the signer may write the entry at all. ``docs/ledger.md`` states
the same rules for anyone verifying an export without this code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, TextIO, TypeGuard

from swarmrank.errors import LedgerError
from swarmrank.wire import canonical, verify_bytes
from swarmrank.wire import digest as hex_digest

__all__ = ["COLUMNS", "GENESIS", "KINDS", "TEXT_COLUMNS", "TRUST_KINDS", "Chain", "Row", "SignerPolicy",
           "entry_hash", "is_hex", "loads", "read_export", "signed_by"]

KINDS = ("key", "round", "reputation", "stake", "slash", "admission", "spot-check")
"""Every kind of entry; ``key`` entries are written by :meth:`swarmrank.ledger.Ledger.register_key` only."""

TRUST_KINDS = frozenset(KINDS) - {"key"}
"""The kinds that move trust (or record what did): only a trust authority may write them."""

GENESIS = "0" * 64
"""The ``prev_hash`` of entry 1."""

COLUMNS = ("seq", "created_at", "kind", "payload", "signer", "prev_hash", "hash", "signature")
TEXT_COLUMNS = COLUMNS[1:]
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class SignerPolicy:
    """Who may write trust entries: the Ed25519 public keys (hex) of the trust authority.

    Authority is a key, not a node id (anyone who can write to the database can register a key
    under a new id). Only entries of :data:`TRUST_KINDS` need it; ``key`` entries are anyone's.
    """

    authorities: frozenset[str]

    @classmethod
    def of(cls, keys: Iterable[str]) -> SignerPolicy:
        """A policy from public keys (64 hex digits each); a :class:`LedgerError` for anything else."""
        found = set()
        for key in keys:
            public = key.strip().lower() if isinstance(key, str) else key
            if not is_hex(public, 64):
                raise LedgerError(f"a trust authority must be an Ed25519 public key (64 hex digits), not {key!r}")
            found.add(public)
        if not found:
            raise LedgerError("a signer policy needs at least one trust authority key")
        return cls(frozenset(found))

    def allows(self, public_hex: str) -> bool:
        return public_hex in self.authorities


# -- the encoding ---------------------------------------------------------------------------------


def entry_hash(seq: int, created_at: str, kind: str, payload: dict[str, Any], signer: str, prev_hash: str) -> str:
    """The hex SHA-256 of an entry's content (everything but its hash and signature)."""
    content = {"seq": seq, "created_at": created_at, "kind": kind, "payload": payload, "signer": signer,
               "prev_hash": prev_hash}
    return hex_digest(content)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999: valid JSON that Python reads as infinity
        raise ValueError(f"{literal[:20]} is not a finite number")
    return value


def loads(text_: str) -> Any:
    """Strict JSON: NaN, Infinity and numbers too large for a float (1e999), which Python's json
    accepts or reads as infinity, are refused."""
    return json.loads(text_, parse_constant=_reject_constant, parse_float=_finite)


def is_hex(value: object, length: int) -> TypeGuard[str]:
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX


# -- the rules of a valid chain -------------------------------------------------------------------


class Row(NamedTuple):
    """An entry's stored columns, unparsed (text columns are ``bytes`` when not valid UTF-8)."""

    seq: Any
    created_at: Any
    kind: Any
    payload: Any
    signer: Any
    prev_hash: Any
    hash: Any
    signature: Any


class Chain:
    """Checks entries one at a time, in order; holds only the previous hash and the keys.

    With a ``policy``, an entry that extends the chain but whose signer is not allowed to write
    it is *refused*: the chain moves on, ``refused`` says why (None for an allowed entry), and
    the entry neither countersigns a key nor moves trust.
    """

    def __init__(self, policy: SignerPolicy | None = None) -> None:
        self.policy = policy
        self.count = 0
        self.last_seq = 0
        self.head: str | None = None
        self.keys: dict[str, tuple[str, int]] = {}  # node id -> (public key hex, seq of its key entry)
        self.countersigned: dict[str, tuple[str, int]] = {}  # node id -> (key, seq of the admission)
        self.refused: str | None = None
        self.payload: Any = None  # the last entry's payload, parsed (valid once check passes)

    def check(self, row: Row) -> tuple[int, str] | None:
        """None if ``row`` extends the chain (and the chain moves on), else (bad seq, reason)."""
        self.refused = None
        expected = self.last_seq + 1
        seq = row.seq
        if not isinstance(seq, int) or isinstance(seq, bool):
            return expected, f"seq {seq!r} is not an integer"
        if seq != expected:
            if seq < expected:
                return expected, f"found entry {seq} where entry {expected} should be"
            if expected == 1:
                return 1, f"entry 1 missing: the ledger starts at entry {seq}"
            return expected, f"entry {expected} missing: found {seq} after {expected - 1}"
        reason = self._content(row)
        if reason is not None:
            return seq, reason
        self.count += 1
        self.last_seq = seq
        self.head = row.hash
        return None

    def _content(self, row: Row) -> str | None:
        for name in TEXT_COLUMNS:
            if not isinstance(getattr(row, name), str):
                return f"{name} is not valid UTF-8 text (modified?)"
        if row.prev_hash != (self.head or GENESIS):
            if row.seq == 1:
                return "prev_hash is not the genesis hash (0…0)"
            return f"prev_hash does not match entry {row.seq - 1}'s hash (reordered, inserted or removed?)"
        try:
            payload = self.payload = loads(row.payload)
        except (ValueError, RecursionError):
            return "payload is not valid JSON (modified?)"
        try:
            digest = entry_hash(row.seq, row.created_at, row.kind, payload, row.signer, row.prev_hash)
        except (ValueError, TypeError, RecursionError):
            return "payload cannot be encoded canonically (modified?)"
        if digest != row.hash:
            return "hash does not match the entry's content (modified?)"
        if canonical(payload).decode() != row.payload:
            return "payload is not stored in canonical form (modified?)"
        if row.kind not in KINDS:
            return f"unknown kind {row.kind!r}"
        if not isinstance(payload, dict):
            return "payload is not a JSON object"
        if row.kind == "key":
            return self._key_entry(row, payload)
        registered = self.keys.get(row.signer)
        if registered is None:
            return f"signer {row.signer!r} has no key registered by an earlier entry"
        if not signed_by(registered[0], row):
            return f"signature is not {row.signer!r}'s (registered at entry {registered[1]}) over this entry"
        if self.policy is not None and not self.policy.allows(registered[0]):
            self.refused = (f"entry {row.seq} ({row.kind}) is signed by {row.signer!r}, "
                            f"whose key {registered[0][:12]}… is not a trust authority")
            return None
        if row.kind == "admission":
            return self._countersign(payload, row.seq)
        if row.kind == "round":
            return self._node_signatures(payload)
        return None

    def _countersign(self, payload: dict[str, Any], seq: int) -> str | None:
        """An allowed admission binds its node to the key it names (``public_key``); one written
        before admissions named keys binds the key the node had registered by then."""
        node, public = payload.get("node"), payload.get("public_key")
        if not isinstance(node, str):
            return None
        if public is not None:
            if not is_hex(public, 64):
                return f"admission of {node!r} names public_key {public!r}, which is not an Ed25519 key"
            self.countersigned[node] = (public, seq)
        elif node in self.keys and node not in self.countersigned:
            self.countersigned[node] = (self.keys[node][0], seq)
        return None

    def _node_signatures(self, payload: dict[str, Any]) -> str | None:
        """A round outcome's per-node signatures (``nodes: {id: {digest, signature}}``, written by
        :meth:`swarmrank.registry.Registry.record`) must verify against each node's key: the key
        an authority countersigned when a policy is in force, else the key it registered."""
        nodes = payload.get("nodes")
        if not isinstance(nodes, dict):
            return None
        keys = self.countersigned if self.policy is not None else self.keys
        for node, signed in sorted(nodes.items()):
            if not isinstance(signed, dict) or signed.get("signature") is None:
                continue  # a node without a key (scripted, in-memory) signs nothing
            registered = keys.get(node)
            if registered is None and self.policy is not None:
                return f"node {node!r} signed its part of the round but no admission countersigned a key for it"
            if registered is None:
                return f"node {node!r} signed its part of the round but has no key registered by an earlier entry"
            digest, signature = signed.get("digest"), signed.get("signature")
            if not (is_hex(digest, 64) and is_hex(signature, 128)) or not verify_bytes(
                    registered[0], bytes.fromhex(digest), signature):
                return f"node {node!r}'s signature over its answers and verdicts does not verify"
        return None

    def _key_entry(self, row: Row, payload: dict[str, Any]) -> str | None:
        public = payload.get("public_key")
        if set(payload) != {"node", "public_key"} or payload["node"] != row.signer or not is_hex(public, 64):
            return "a key entry's payload must be exactly {node: <its signer>, public_key: <64 hex digits>}"
        if not signed_by(public, row):
            return f"key entry for {row.signer!r} is not signed by the key it registers"
        registered = self.keys.get(row.signer)
        if registered is not None and registered[0] != public:
            return (f"second key entry for node {row.signer!r} with a different key "
                    f"(its key was registered at entry {registered[1]}; keys cannot be replaced)")
        self.keys.setdefault(row.signer, (public, row.seq))
        return None


def signed_by(public_hex: str, row: Row) -> bool:
    if not is_hex(row.signature, 128):
        return False
    try:
        return verify_bytes(public_hex, bytes.fromhex(row.hash), row.signature)
    except ValueError:  # a hash that is not hex
        return False


# -- export lines ---------------------------------------------------------------------------------


def read_export(fh: TextIO) -> Iterator[tuple[int, Row]]:
    """(line number, row) for each non-blank line of a JSON Lines export; LedgerError on a bad line."""
    line_no = 0
    try:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                yield line_no, _parse_line(line, line_no)
    except UnicodeDecodeError as exc:
        raise LedgerError(f"import: line {line_no + 1}: not UTF-8 text ({exc.reason}); nothing imported") from None


def _parse_line(line: str, line_no: int) -> Row:
    def bad(problem: str) -> LedgerError:
        return LedgerError(f"import: line {line_no}: {problem}; nothing imported")

    try:
        data = loads(line.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        raise bad(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise bad(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise bad("not a JSON object")
    missing = [name for name in COLUMNS if name not in data]
    unknown = sorted(set(data) - set(COLUMNS))
    if missing or unknown:
        raise bad("missing field(s) " + ", ".join(missing) if missing else "unknown field(s) " + ", ".join(unknown))
    if not isinstance(data["seq"], int) or isinstance(data["seq"], bool):
        raise bad("seq is not an integer")
    for name in TEXT_COLUMNS:
        if name != "payload" and not isinstance(data[name], str):
            raise bad(f"{name} is not a string")
    if not isinstance(data["payload"], dict):
        raise bad("payload is not a JSON object")
    return Row(**{**data, "payload": canonical(data["payload"]).decode()})
