"""The ledger: one signed hash chain, whatever is tampered with, however many processes append.

Hashes are recomputed here from the definition in docs/ledger.md, not with the library's own
function, so the documentation and the code are checked against each other.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from swarmrank.errors import LedgerError, StorageError
from swarmrank.identity import Identity, load_or_create
from swarmrank.ledger import GENESIS, Entry, Ledger, VerifyReport
from swarmrank.settings import Settings
from swarmrank.store import Store

PG = os.environ.get("SWARMRANK_TEST_PG")
COLUMNS = ("seq", "created_at", "kind", "payload", "signer", "prev_hash", "hash", "signature")


# -- helpers --------------------------------------------------------------------------------------


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def forge(ident: Identity, seq: int, prev_hash: str, kind: str, payload: dict[str, Any],
          signer: str | None = None) -> dict[str, Any]:
    """A stored row built by hand from the documented encoding, signed by ``ident``."""
    row = {"seq": seq, "created_at": "2026-01-01T00:00:00.000000+00:00", "kind": kind, "payload": payload,
           "signer": signer or ident.node_id, "prev_hash": prev_hash}
    digest = hashlib.sha256(canonical(row)).hexdigest()
    return {**row, "payload": canonical(payload).decode(), "hash": digest,
            "signature": ident.sign(bytes.fromhex(digest)).hex()}


def sql(store: Store, statement: str, **params: Any) -> list[Any]:
    with store.engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return result.all() if result.returns_rows else []


def stored_rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(f"SELECT {', '.join(COLUMNS)} FROM ledger ORDER BY seq"))]


def insert_row(store: Store, row: dict[str, Any]) -> None:
    sql(store, f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})", **row)


def count(store: Store) -> int:
    return sql(store, "SELECT count(*) FROM ledger")[0][0]


def fill(ledger: Ledger, n1: Identity, n2: Identity) -> list[Entry]:
    """Seven entries of several kinds from two signers (plus their two key entries)."""
    return [
        ledger.append("admission", {"node": "n2", "passed": True}, n1),
        ledger.append("stake", {"node": "n2", "amount": 10.0}, n2),
        ledger.append("round", {"round_id": "r1", "answer": "déjà vu"}, n1),
        *ledger.append_many([("reputation", {"node": "n2", "score": 0.5, "after": 0.05}, n1),
                             ("slash", {"node": "n2", "amount": 1.5}, n1)]),
        ledger.append("spot-check", {"node": "n2", "passed": False}, n1),
        ledger.append("round", {"round_id": "r2"}, n2),
    ]


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def n1(keys: Path) -> Identity:
    return load_or_create(keys, "n1")


@pytest.fixture
def n2(keys: Path) -> Identity:
    return load_or_create(keys, "n2")


@pytest.fixture
def any_store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as s:
        yield s


@pytest.fixture
def filled(store: Store, n1: Identity, n2: Identity) -> Ledger:
    ledger = Ledger(store)
    fill(ledger, n1, n2)
    return ledger


# -- appending and reading ------------------------------------------------------------------------


def test_appended_entries_form_one_signed_chain_with_keys_registered_once(any_store: Store, n1, n2) -> None:
    ledger = Ledger(any_store)
    written = fill(ledger, n1, n2)
    entries = ledger.entries()
    assert [e.seq for e in entries] == list(range(1, 10))
    assert [e.kind for e in entries] == ["key", "admission", "key", "stake", "round", "reputation", "slash",
                                         "spot-check", "round"]
    assert entries[0].payload == {"node": "n1", "public_key": n1.public_hex} and entries[0].signer == "n1"
    assert entries[2].payload == {"node": "n2", "public_key": n2.public_hex} and entries[2].signer == "n2"
    assert [e for e in entries if e.kind != "key"] == written  # append returns the stored entry
    assert entries[0].prev_hash == GENESIS
    for prev, entry in itertools.pairwise(entries):
        assert entry.prev_hash == prev.hash
    for entry in entries:  # the documented definitions, recomputed independently
        content = {k: getattr(entry, k) for k in ("seq", "created_at", "kind", "payload", "signer", "prev_hash")}
        assert entry.hash == hashlib.sha256(canonical(content)).hexdigest()
        key = n1 if entry.signer == "n1" else n2
        key.public_key.verify(bytes.fromhex(entry.signature), bytes.fromhex(entry.hash))
        assert entry.created_at.endswith("+00:00") and len(entry.created_at) == 32
    assert ledger.public_keys() == {"n1": n1.public_hex, "n2": n2.public_hex}
    assert ledger.head() == entries[-1]
    assert ledger.verify() == ledger.verify(expected_head=entries[-1].hash)
    report = ledger.verify()
    assert (report.ok, report.entries, report.head, report.bad_seq) == (True, 9, entries[-1].hash, None)
    assert ledger.register_key(n1) is None and count(any_store) == 9


def test_entries_filters_by_seq_kind_and_limit(filled: Ledger) -> None:
    assert [e.seq for e in filled.entries(after=6)] == [7, 8, 9]
    assert [e.seq for e in filled.entries(kind="round")] == [5, 9]
    assert [e.seq for e in filled.entries(after=1, limit=2)] == [2, 3]
    assert [e.seq for e in filled.last(2, kind="key")] == [1, 3]
    with pytest.raises(LedgerError, match="unknown ledger entry kind 'vote'"):
        filled.entries(kind="vote")


def test_an_empty_ledger_verifies_and_has_no_head(store: Store) -> None:
    ledger = Ledger(store)
    assert ledger.head() is None and ledger.entries() == [] and ledger.public_keys() == {}
    assert ledger.verify() == VerifyReport(True, 0, None, None, None)
    assert not ledger.verify(expected_head="ab" * 32).ok


@pytest.mark.parametrize(("kind", "payload", "message"), [
    ("vote", {}, "unknown ledger entry kind"),
    ("key", {"node": "n1", "public_key": "00" * 32}, "register_key"),
    ("round", [1, 2], "must be a JSON object"),
    ("round", {"x": float("nan")}, r"payload\.x is nan"),
    ("round", {"x": [1.0, float("inf")]}, r"payload\.x\[1\] is inf"),
    ("round", {"x": {1, 2}}, "set, which is not a JSON value"),
    ("round", {"x": {1: "a"}}, "non-string key 1"),
    ("round", {"x": "\ud800"}, "cannot be encoded"),
])
def test_bad_kinds_and_payloads_are_refused_and_nothing_is_written(store: Store, n1, kind, payload, message) -> None:
    ledger = Ledger(store)
    with pytest.raises(LedgerError, match=message):
        ledger.append_many([("round", {"ok": 1}, n1), (kind, payload, n1)])
    assert count(store) == 0


def test_a_failure_inside_the_transaction_writes_nothing(store: Store, n1, n2) -> None:
    class Liar:
        node_id = "liar"
        public_hex = n2.public_hex

        def sign(self, payload: bytes) -> bytes:
            return n1.sign(payload)  # not the key it claims

    ledger = Ledger(store)
    ledger.append("round", {"i": 0}, n1)
    with pytest.raises(LedgerError, match="'liar' produced a signature that its public key does not verify"):
        ledger.append_many([("round", {"i": 1}, n2), ("round", {"i": 2}, Liar())])
    assert count(store) == 2 and ledger.verify().ok  # n2's key entry and entry 1 rolled back too


def test_database_failures_are_one_line_storage_errors(store: Store, n1) -> None:
    ledger = Ledger(store)
    sql(store, "DROP TABLE ledger")
    for call in (lambda: ledger.append("round", {}, n1), ledger.verify, ledger.entries):
        with pytest.raises(StorageError, match=r"could not .*ledger.*: no such table: ledger") as info:
            call()
        assert "\n" not in str(info.value)


def test_a_different_key_for_a_registered_node_is_refused(store: Store, n1, tmp_path: Path) -> None:
    ledger = Ledger(store)
    ledger.append("round", {"i": 0}, n1)
    impostor = load_or_create(tmp_path / "other-keys", "n1")
    with pytest.raises(LedgerError, match="'n1' is registered in the ledger with a different key"):
        ledger.append("round", {"i": 1}, impostor)
    with pytest.raises(LedgerError, match="different key"):
        ledger.register_key(impostor)
    assert count(store) == 2


def test_a_forged_key_rotation_is_caught_by_verify(filled: Ledger, store: Store, n1, tmp_path: Path) -> None:
    head = filled.head()
    assert head is not None
    impostor = load_or_create(tmp_path / "other-keys", "n1")
    rotation = forge(impostor, head.seq + 1, head.hash, "key", {"node": "n1", "public_key": impostor.public_hex})
    insert_row(store, rotation)
    insert_row(store, forge(impostor, head.seq + 2, rotation["hash"], "round", {"forged": True}))
    report = filled.verify()
    assert not report.ok and report.bad_seq == head.seq + 1 and report.entries == head.seq
    assert report.reason is not None and "second key entry for node 'n1' with a different key" in report.reason
    assert filled.public_keys()["n1"] == n1.public_hex


# -- tampering ------------------------------------------------------------------------------------


def test_flipping_any_byte_of_any_stored_column_breaks_the_chain_at_that_entry(filled: Ledger, store: Store) -> None:
    middle = 5
    original = {r["seq"]: r for r in stored_rows(store)}[middle]
    assert "é" in original["payload"]  # a multi-byte character: some flips leave invalid UTF-8
    db = sqlite3.connect(store.url.removeprefix("sqlite:///"))
    try:
        flips = 0
        for column in COLUMNS[1:]:
            raw = original[column].encode()
            for i in range(len(raw)):
                flipped = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:]
                db.execute(f"UPDATE ledger SET {column} = CAST(? AS TEXT) WHERE seq = ?", (flipped, middle))
                db.commit()
                report = filled.verify()
                assert (report.ok, report.bad_seq, report.entries) == (False, middle, middle - 1), (column, i, report)
                db.execute(f"UPDATE ledger SET {column} = ? WHERE seq = ?", (original[column], middle))
                db.commit()
                flips += 1
        assert flips > 300 and filled.verify().ok
        for new_seq, first_bad in [(0, 1), (-7, 1), (middle ^ 0x10, middle), (middle + 1000, middle)]:
            db.execute("UPDATE ledger SET seq = ? WHERE seq = ?", (new_seq, middle))
            db.commit()
            report = filled.verify()
            assert (report.ok, report.bad_seq) == (False, first_bad), (new_seq, report)
            db.execute("UPDATE ledger SET seq = ? WHERE seq = ?", (middle, new_seq))
            db.commit()
    finally:
        db.close()
    assert filled.verify().ok


def test_tampering_on_postgres_is_caught_too(pg_url: str, n1, n2) -> None:
    with Store(pg_url) as s:
        ledger = Ledger(s)
        fill(ledger, n1, n2)
        original = {r["seq"]: r for r in stored_rows(s)}[5]
        for column in COLUMNS[1:]:
            value = original[column]
            i = min(3, len(value) - 1)
            tampered = value[:i] + chr(ord(value[i]) ^ 0x01) + value[i + 1:]
            sql(s, f"UPDATE ledger SET {column} = :v WHERE seq = 5", v=tampered)
            report = ledger.verify()
            assert (report.ok, report.bad_seq) == (False, 5), (column, report)
            sql(s, f"UPDATE ledger SET {column} = :v WHERE seq = 5", v=value)
        assert ledger.verify().ok


def test_a_deleted_entry_is_named(filled: Ledger, store: Store) -> None:
    sql(store, "DELETE FROM ledger WHERE seq = 4")
    report = filled.verify()
    assert (report.ok, report.bad_seq, report.entries) == (False, 4, 3)
    assert report.reason == "entry 4 missing: found 5 after 3"
    sql(store, "DELETE FROM ledger WHERE seq = 1")
    assert filled.verify().reason == "entry 1 missing: the ledger starts at entry 2"


def test_an_entry_appended_by_an_unregistered_signer_is_caught(filled: Ledger, store: Store, keys: Path) -> None:
    head = filled.head()
    assert head is not None
    mallory = load_or_create(keys, "mallory")
    insert_row(store, forge(mallory, head.seq + 1, head.hash, "slash", {"node": "n2", "amount": 99.0}))
    report = filled.verify()
    assert (report.ok, report.bad_seq) == (False, head.seq + 1)
    assert report.reason == "signer 'mallory' has no key registered by an earlier entry"


def test_an_entry_signed_with_the_wrong_key_is_caught(filled: Ledger, store: Store, keys: Path) -> None:
    head = filled.head()
    assert head is not None
    mallory = load_or_create(keys, "mallory")
    insert_row(store, forge(mallory, head.seq + 1, head.hash, "slash", {"node": "n2", "amount": 99.0}, signer="n1"))
    report = filled.verify()
    assert (report.ok, report.bad_seq) == (False, head.seq + 1)
    assert report.reason is not None and report.reason.startswith("signature is not 'n1''s")


def test_an_entry_inserted_mid_chain_is_caught_even_when_everything_after_is_rehashed(
        filled: Ledger, store: Store, keys: Path) -> None:
    rows = stored_rows(store)
    mallory = load_or_create(keys, "mallory")
    forged = forge(mallory, 4, rows[2]["hash"], "stake", {"node": "mallory", "amount": 1e6}, signer="n2")
    rebuilt = rows[:3] + [forged]
    for row in rows[3:]:  # renumber and re-chain the rest (old signatures kept: the forger lacks the keys)
        payload = json.loads(row["payload"])
        content = {**{k: row[k] for k in ("created_at", "kind", "signer")}, "seq": rebuilt[-1]["seq"] + 1,
                   "payload": payload, "prev_hash": rebuilt[-1]["hash"]}
        rebuilt.append({**row, **content, "payload": row["payload"],
                        "hash": hashlib.sha256(canonical(content)).hexdigest()})
    sql(store, "DELETE FROM ledger")
    for row in rebuilt:
        insert_row(store, row)
    report = filled.verify()
    assert (report.ok, report.bad_seq) == (False, 4)
    assert report.reason is not None and "signature" in report.reason


def test_swapped_entries_are_caught_at_the_first_one(filled: Ledger, store: Store) -> None:
    rows = {r["seq"]: r for r in stored_rows(store)}
    for seq, other in ((4, 7), (7, 4)):
        sets = ", ".join(f"{c} = :{c}" for c in COLUMNS[1:])
        sql(store, f"UPDATE ledger SET {sets} WHERE seq = :target", target=seq,
            **{c: rows[other][c] for c in COLUMNS[1:]})
    report = filled.verify()
    assert (report.ok, report.bad_seq) == (False, 4)
    assert report.reason == "prev_hash does not match entry 3's hash (reordered, inserted or removed?)"


def test_truncation_is_caught_only_against_a_kept_head(filled: Ledger, store: Store, n1) -> None:
    kept, earlier = filled.head(), filled.entries()[4]
    assert kept is not None
    sql(store, "DELETE FROM ledger WHERE seq >= 8")
    assert filled.verify().ok  # a shorter chain is still a valid chain
    assert filled.verify(expected_head=earlier.hash).ok
    report = filled.verify(expected_head=kept.hash.upper())
    assert (report.ok, report.entries, report.bad_seq) == (False, 7, 8)
    assert report.reason is not None and "shorter than, or diverges from" in report.reason
    filled.append("round", {"rewritten": True}, n1)
    filled.append("round", {"rewritten": True}, n1)
    assert filled.verify().ok and not filled.verify(expected_head=kept.hash).ok  # same length, diverged
    with pytest.raises(LedgerError, match="not a SHA-256 hash"):
        filled.verify(expected_head="abc")


def test_verify_walks_a_large_ledger_in_batches(store: Store, n1, monkeypatch) -> None:
    import swarmrank.ledger as ledger_mod

    monkeypatch.setattr(ledger_mod, "BATCH", 7)
    ledger = Ledger(store)
    ledger.append_many([("round", {"i": i}, n1) for i in range(40)])
    assert ledger.verify().entries == 41
    sql(store, "DELETE FROM ledger WHERE seq = 29")
    assert ledger.verify().bad_seq == 29
    out = io.StringIO()
    assert ledger.export(out) == 40


# -- export and import ----------------------------------------------------------------------------


def exported(ledger: Ledger) -> str:
    out = io.StringIO()
    ledger.export(out)
    return out.getvalue()


def test_export_then_import_into_a_fresh_database_reproduces_the_ledger(filled: Ledger, db_url: str) -> None:
    text_ = exported(filled)
    lines = text_.splitlines()
    assert len(lines) == 9 and set(json.loads(lines[0])) == set(COLUMNS)
    with Store(db_url) as other:
        copy = Ledger(other)
        assert copy.import_(io.StringIO(text_)) == 9
        assert copy.head() == filled.head() and copy.verify().ok
        assert copy.entries() == filled.entries()
        assert copy.import_(io.StringIO(text_)) == 0  # importing again adds nothing


def test_import_onto_a_prefix_appends_the_rest(filled: Ledger, tmp_path: Path) -> None:
    lines = exported(filled).splitlines(keepends=True)
    with Store(f"sqlite:///{tmp_path / 'copy.db'}") as other:
        copy = Ledger(other)
        assert copy.import_(io.StringIO("".join(lines[:4]))) == 4
        assert copy.import_(io.StringIO("".join(lines))) == 5
        assert copy.head() == filled.head() and copy.verify().ok


def test_import_onto_a_diverged_ledger_fails_naming_the_entry(filled: Ledger, tmp_path: Path, n1) -> None:
    lines = exported(filled).splitlines(keepends=True)
    with Store(f"sqlite:///{tmp_path / 'copy.db'}") as other:
        copy = Ledger(other)
        copy.import_(io.StringIO("".join(lines[:4])))
        copy.append("round", {"elsewhere": True}, n1)  # entry 5 differs from the file's
        before = exported(copy)
        with pytest.raises(LedgerError, match="the ledger and the file differ at entry 5"):
            copy.import_(io.StringIO("".join(lines)))
        with pytest.raises(LedgerError, match="the ledger has entry 5 but the file ends at entry 4"):
            copy.import_(io.StringIO("".join(lines[:4])))
        assert exported(copy) == before


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["payload"].update(amount=99.0), r"line 4: entry 4: hash does not match"),
    (lambda d: d.update(signature="00" * 64), r"line 4: entry 4: signature is not 'n2''s"),
    (lambda d: d.update(seq=40), r"line 4: entry 4: entry 4 missing: found 40 after 3"),
    (lambda d: d.pop("signer"), r"line 4: missing field\(s\) signer"),
    (lambda d: d.update(extra=1), r"line 4: unknown field\(s\) extra"),
    (lambda d: d.update(seq="4"), r"line 4: seq is not an integer"),
    (lambda d: d.update(payload="{}"), r"line 4: payload is not a JSON object"),
])
def test_a_tampered_or_malformed_file_is_refused_and_nothing_is_written(filled: Ledger, tmp_path: Path,
                                                                        edit, message) -> None:
    lines = exported(filled).splitlines()
    data = json.loads(lines[3])
    edit(data)
    lines[3] = json.dumps(data)
    with Store(f"sqlite:///{tmp_path / 'copy.db'}") as other:
        with pytest.raises(LedgerError, match=message):
            Ledger(other).import_(io.StringIO("\n".join(lines) + "\n"))
        assert count(other) == 0


@pytest.mark.parametrize(("content", "message"), [
    ('{"seq": 1,\n', r"line 1: not valid JSON"),
    ("\n[1, 2]\n", r"line 2: not a JSON object"),
    ('{"seq": NaN}\n', r"line 1: not valid JSON \(NaN is not JSON\)"),
])
def test_malformed_lines_are_named(store: Store, content: str, message: str) -> None:
    with pytest.raises(LedgerError, match=message) as info:
        Ledger(store).import_(io.StringIO(content))
    assert "\n" not in str(info.value)


# -- concurrency and crashes ----------------------------------------------------------------------

WRITER = r"""
import sys
from pathlib import Path
from swarmrank.identity import load_or_create
from swarmrank.ledger import Ledger
from swarmrank.store import Store

url, keys, name, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
me, shared = load_or_create(keys, name), load_or_create(keys, "shared")
ledger = Ledger(Store(url))
ledger.head()  # connected and migrated before the start signal
print("ready", flush=True)
sys.stdin.readline()
for i in range(n):
    entry = ledger.append("round", {"writer": name, "i": i}, shared if i % 10 == 0 else me)
    print(entry.seq, entry.hash, flush=True)  # only once append has returned, i.e. committed
"""


def start_writer(url: str, keys: Path, name: str, n: int, log: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url, str(keys), name, str(n)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("w"))
    timer = threading.Timer(60, proc.kill)  # never hang the suite
    timer.daemon = True
    timer.start()
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n", log.read_text()
    return proc


def go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def test_two_processes_appending_at_once_make_one_chain(db_url: str, keys: Path, tmp_path: Path) -> None:
    for name in ("w1", "w2", "shared"):
        load_or_create(keys, name)
    with Store(db_url) as s:
        Ledger(s).head()  # migrate once, before the writers race
    writers = [start_writer(db_url, keys, name, 100, tmp_path / f"{name}.log") for name in ("w1", "w2")]
    for proc in writers:
        go(proc)
    acked = []
    for proc, name in zip(writers, ("w1", "w2")):
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, (tmp_path / f"{name}.log").read_text()
        acked += [tuple(line.split()) for line in out.splitlines()]
    with Store(db_url) as s:
        ledger = Ledger(s)
        entries = ledger.entries()
        assert [e.seq for e in entries] == list(range(1, 204))  # 200 + the keys of w1, w2 and shared
        assert sum(e.kind == "key" for e in entries) == 3
        assert {(str(e.seq), e.hash) for e in entries if e.kind == "round"} == set(acked)
        assert ledger.verify().ok
        writers_seen = [e.payload["writer"] for e in entries if e.kind == "round"]
        assert writers_seen.count("w1") == writers_seen.count("w2") == 100


def test_every_acknowledged_entry_survives_sigkill(db_url: str, keys: Path, tmp_path: Path) -> None:
    with Store(db_url) as s:
        Ledger(s).head()
    proc = start_writer(db_url, keys, "w1", 100_000, tmp_path / "w1.log")
    go(proc)
    assert proc.stdout is not None
    acked = [proc.stdout.readline().split() for _ in range(30)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with Store(db_url) as s:
        ledger = Ledger(s)
        stored = {e.seq: e.hash for e in ledger.entries()}
        assert all(stored.get(int(seq)) == digest for seq, digest in acked), acked
        assert ledger.verify().ok and len(stored) >= 30


# -- the CLI --------------------------------------------------------------------------------------


def swarmrank(*args: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWARMRANK_HOME": str(home), "COLUMNS": "200"}
    env.pop("SWARMRANK_DB", None)
    return subprocess.run([sys.executable, "-m", "swarmrank", "ledger", *args], capture_output=True, text=True,
                          env=env, input=stdin, timeout=60)


def one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")
    assert proc.stderr.count("\n") == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr


def test_cli_verifies_shows_exports_and_imports(isolated_home: Path, tmp_path: Path, n1, n2) -> None:
    with Store.open(Settings.from_env()) as s:
        fill(Ledger(s), n1, n2)
        head = Ledger(s).head()
    assert head is not None

    # no coordinator key on this machine and none pinned: who may sign is unknown, so say so
    one_line_error(swarmrank("verify", home=isolated_home), "no trust authority", "--authority")
    proc = swarmrank("verify", "--any-signer", home=isolated_home)
    assert proc.returncode == 0 and proc.stdout == (f"ledger ok: 9 entries, head {head.hash[:12]}…; signers not "
                                                    "checked (--any-signer); 0 trusted round(s) recorded\n")
    # with n1 as the trust authority, n2's stake and round entries (4 and 9) are named
    proc = swarmrank("verify", "--authority", n1.public_hex, home=isolated_home)
    assert proc.returncode == 1 and proc.stdout.splitlines() == [
        f"entry 4 (stake) is signed by 'n2', whose key {n2.public_hex[:12]}… is not a trust authority",
        f"entry 9 (round) is signed by 'n2', whose key {n2.public_hex[:12]}… is not a trust authority"]
    assert proc.stderr == "error: 2 entries signed by keys that are not trust authorities (the first: entry 4); " \
                          "the trust registry ignores them\n"
    proc = swarmrank("verify", "--authority", n1.public_hex, "--authority", n2.public_hex, home=isolated_home)
    assert proc.returncode == 0 and "every trust entry signed by one of 2 trust authorities" in proc.stdout
    proc = swarmrank("head", home=isolated_home)
    assert proc.stdout == f"{head.seq} {head.hash}\n"
    proc = swarmrank("show", "--kind", "round", "--limit", "1", home=isolated_home)
    assert proc.returncode == 0 and '{"round_id":"r2"}' in proc.stdout and "r1" not in proc.stdout

    export = tmp_path / "ledger.jsonl"
    proc = swarmrank("export", str(export), home=isolated_home)
    assert proc.returncode == 0 and len(export.read_text().splitlines()) == 9
    other = tmp_path / "other-home"
    one_line_error(swarmrank("import", "-", "--authority", n1.public_hex, home=other, stdin=export.read_text()),
                   "import: line 4: entry 4 (stake) is signed by 'n2'", "(and 1 more); nothing imported")
    proc = swarmrank("import", "-", "--any-signer", home=other, stdin=export.read_text())
    assert proc.returncode == 0 and proc.stdout.startswith("imported 9 entries; head is entry 9")
    proc = swarmrank("verify", "--head", head.hash, "--json", "--any-signer", home=other)
    assert proc.returncode == 0 and json.loads(proc.stdout)["head"] == head.hash

    db = sqlite3.connect(Settings.from_env().default_db_url().removeprefix("sqlite:///"))
    db.execute("UPDATE ledger SET payload = replace(payload, '10.0', '100.0') WHERE seq = 4")
    db.commit()
    db.close()
    one_line_error(swarmrank("verify", "--any-signer", home=isolated_home),
                   "error: ledger broken at entry 4: hash does not match the entry's content (modified?)")
    one_line_error(swarmrank("import", str(tmp_path / "missing.jsonl"), "--any-signer", home=other), "cannot read",
                   "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(export.read_text() + "{not json\n")
    one_line_error(swarmrank("import", str(bad), "--any-signer", home=other), "line 10: not valid JSON")
