"""Tamper and forgery: what `ledger verify` and the trust registry detect, on SQLite and PostgreSQL.

A trusted swarm (scripted nodes, each with its own key; a judge that lies, so there are slashes)
runs ``--rounds`` rounds through ``Swarm.ask`` into a real database. Then an attacker who can
write to the database but holds no swarmrank key tries, one attack at a time (each undone before
the next, seeded):

* **byte edits** — one character of one column of one entry (every ledger column, and the stored
  round record ``rounds.result_json`` whose digest the ledger keeps), ``--trials`` per column;
* **forged signer** — an entry of each trust kind appended with a key of the attacker's own
  (correctly chained and signed), and a key entry that claims the coordinator's node id;
* **truncation** — the last k entries cut (k from 1 to 30), checked with a head kept elsewhere,
  and without one (then only the rounds those entries recorded give it away);
* **reordering** — the contents of two entries swapped;
* **edited exports** — an export with one field changed, a line dropped, two lines swapped, a
  forged line added, or its end cut, imported into an empty database.

"Detected" by `verify` means ``Ledger.verify`` (with the signer policy, and the head when one
is kept) or the round audit (``swarmrank.audit``) reports it — what ``swarmrank ledger verify``
runs; for an export, that ``ledger import`` refuses it or ``verify --head`` fails after it.
"registry" means a registry starting on that database refuses trusted rounds (a byte edit,
truncation below what it had verified, reordering) or builds exactly the untampered state
(forged entries ignored).

Then crashes: ``swarmrank serve`` (trust on, nodes with ``--latency``) under ``--load`` concurrent
requests is killed with SIGKILL half-way, ``--kills`` times; and ``--disconnects`` streaming
clients hang up at random moments. Reported: rounds stored, rounds recorded, and stored rounds
without their ledger entries (the target is 0). Last, the cost of verifying entries: per entry
for a full ``verify``, for a follower's first read, and for a follower reading only new entries
(what a registry does before each round).

    .venv/bin/python benchmarks/bench_tamper.py                                  # SQLite only
    scripts/with-postgres .venv/bin/python benchmarks/bench_tamper.py --backend sqlite postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import swarmrank  # noqa: F401
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx
from _machine import cpu_model
from sqlalchemy import text

from swarmrank.audit import audit_rounds
from swarmrank.errors import LedgerError, SwarmError
from swarmrank.identity import Identity, load_or_create
from swarmrank.ledger import Ledger, SignerPolicy
from swarmrank.nodes.base import Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.registry import Registry
from swarmrank.round import RoundOptions
from swarmrank.store import Store
from swarmrank.swarm import COORDINATOR_ID, Swarm

COLUMNS = ("seq", "created_at", "kind", "payload", "signer", "prev_hash", "hash", "signature")
HEX = "0123456789abcdef"


# -- databases ------------------------------------------------------------------------------------


@contextlib.contextmanager
def database(backend: str, workdir: Path, name: str) -> Iterator[str]:
    """A fresh, empty database URL (a SQLite file, or a PostgreSQL database dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / (name + '.db')}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(os.environ["SWARMRANK_TEST_PG"])
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    db = f"swarmrank_bench_{name}_{os.urandom(4).hex()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        yield base.set(database=db).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def sql(store: Store, statement: str, **params: Any) -> list[Any]:
    with store.engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return result.all() if result.returns_rows else []


def rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(f"SELECT {', '.join(COLUMNS)} FROM ledger ORDER BY seq"))]


def put_back(store: Store, original: list[dict[str, Any]]) -> None:
    """The ledger exactly as ``original`` (every row rewritten: simpler than undoing each attack)."""
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger"))
        conn.execute(text(f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"),
                     original)


# -- the swarm whose ledger is attacked -------------------------------------------------------------


def keyed(n: Node, keys: Path) -> Node:
    ident = load_or_create(keys, n.id)
    n.public_key, n.signer = ident.public_hex, ident.sign
    return n


def scripted(node_id: str, roles: set[str], **kw: Any) -> Node:
    return Node(node_id, ScriptedBackend(**kw), Persona(seed=len(node_id)), roles=frozenset(roles))


def build(store: Store, keys: Path, rounds: int) -> Swarm:
    nodes = [scripted(f"a{i}", {"answer"}, answers={"*": "42"}) for i in range(3)]
    nodes += [scripted("wrong", {"answer"}, answers={"*": "41"}),
              scripted("liar", {"judge"}, judge="prefer", prefer="41")]
    nodes += [scripted(j, {"judge"}, judge="truth", truth="42") for j in ("j0", "j1")]
    nodes = [keyed(n, keys) for n in nodes]
    registry = Registry(Ledger(store), load_or_create(keys, COORDINATOR_ID))
    registry.register(nodes)
    for n in nodes:
        registry.admit(n.id, passed=True, report={"seed": 1}, public_key=n.public_key)
    swarm = Swarm(nodes, options=RoundOptions(judges_per_pair=3), name="tamper", store=store, registry=registry)
    for i in range(rounds):
        swarm.ask_sync(f"What is 40 + 2? ({i})")
    return swarm


# -- detection ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    tried: int = 0
    verify: int = 0
    registry: int | None = 0  # None: the registry does not read what was attacked

    def add(self, by_verify: bool, by_registry: bool | None) -> None:
        self.tried += 1
        self.verify += by_verify
        self.registry = None if by_registry is None else (self.registry or 0) + by_registry


class Judge:
    """Whether the ledger of ``store`` shows tampering, to `ledger verify` and to a fresh registry."""

    def __init__(self, store: Store, coordinator: Identity, anchor: str) -> None:
        self.store, self.coordinator, self.anchor = store, coordinator, anchor
        self.policy = SignerPolicy.of([coordinator.public_hex])
        self.pristine = self._state()

    def _state(self) -> dict[str, Any]:
        state = Registry(Ledger(self.store), self.coordinator).state()
        return {n: (v.reputation, v.stake, v.admitted) for n, v in state.nodes.items()}

    def verify(self, *, head: bool = True) -> bool:
        ledger = Ledger(self.store)
        report = ledger.verify(expected_head=self.anchor if head else None, policy=self.policy)
        if not report.ok:
            return True
        return not audit_rounds(self.store, ledger).ok

    def registry_refuses_or_ignores(self) -> bool:
        """True when a fresh registry refuses (a broken chain) or builds the untampered state."""
        try:
            return self._state() == self.pristine
        except SwarmError:
            return True


def byte_edit(value: Any, column: str, rng: random.Random) -> Any:
    """``value`` with one character (one byte: the texts here are ASCII) changed."""
    if column == "seq":
        return value + rng.choice([1000, 2000, -value])  # renumbered (a gap, or a duplicate-free 0)
    text_ = str(value)
    i = rng.randrange(len(text_))
    alphabet = HEX if column in ("prev_hash", "hash", "signature") else "abcdefghijklmnopqrstuvwxyz0123456789:,"
    new = rng.choice([c for c in alphabet if c != text_[i]])
    return text_[:i] + new + text_[i + 1:]


def attack_bytes(store: Store, judge: Judge, original: list[dict[str, Any]], trials: int,
                 rng: random.Random) -> dict[str, Tally]:
    out: dict[str, Tally] = {}
    for column in COLUMNS:
        tally = out[f"ledger.{column}"] = Tally()
        for _ in range(trials):
            row = rng.choice(original)
            edited = byte_edit(row[column], column, rng)
            sql(store, f"UPDATE ledger SET {column} = :new WHERE seq = :seq", new=edited, seq=row["seq"])
            tally.add(judge.verify(), judge.registry_refuses_or_ignores())
            put_back(store, original)
    tally = out["rounds.result_json"] = Tally()
    ids = [r[0] for r in sql(store, "SELECT id FROM rounds ORDER BY id")]
    for _ in range(trials):
        round_id = rng.choice(ids)
        [(record,)] = sql(store, "SELECT result_json FROM rounds WHERE id = :id", id=round_id)
        i = rng.randrange(len(record))
        new = record[:i] + rng.choice([c for c in "0123456789abcdef" if c != record[i]]) + record[i + 1:]
        sql(store, "UPDATE rounds SET result_json = :new WHERE id = :id", new=new, id=round_id)
        tally.add(judge.verify(), None)  # the registry does not read round records
        sql(store, "UPDATE rounds SET result_json = :old WHERE id = :id", old=record, id=round_id)
    return out


FORGED_KINDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "slash": lambda n: {"node": n, "amount": 10.0, "reason": "forged"},
    "stake": lambda n: {"node": n, "amount": 20.0, "reason": "forged"},
    "admission": lambda n: {"node": n, "passed": True},
    "reputation": lambda n: {"node": n, "round_id": "forged", "score": 1.0, "truth": True, "before": 0.0,
                             "after": 40.0, "rate": 40.0, "decay": 0.0},
    "round": lambda n: {"round_id": "forged", "digest": "00" * 32, "answerers": {n: 1.0}, "judges": {},
                        "nodes": {}, "stored": False},
    "spot-check": lambda n: {"node": n, "passed": True},
}


def attack_forged(store: Store, judge: Judge, original: list[dict[str, Any]], trials: int, rng: random.Random,
                  workdir: Path) -> dict[str, Tally]:
    out: dict[str, Tally] = {}
    nodes = ["a0", "a1", "j0", "liar", "newcomer"]
    for kind, payload in FORGED_KINDS.items():
        tally = out[kind] = Tally()
        for t in range(trials):
            attacker = load_or_create(workdir / "attackers", f"mallory-{kind}-{t}")
            Ledger(store).append(kind, payload(rng.choice(nodes)), attacker)
            export = io.StringIO()
            Ledger(store).export(export)
            refused = False
            with Store(f"sqlite:///{workdir / f'import-{kind}-{t}.db'}") as copy:
                try:
                    Ledger(copy).import_(io.StringIO(export.getvalue()), policy=judge.policy)
                except LedgerError:
                    refused = True
            tally.add(judge.verify(head=False) and refused, judge.registry_refuses_or_ignores())
            put_back(store, original)
    tally = out["key claiming the coordinator's id"] = Tally()
    for t in range(trials):
        impostor = load_or_create(workdir / "impostors" / str(t), COORDINATOR_ID)
        with contextlib.suppress(LedgerError):  # the ledger refuses it; the attacker writes the row by hand
            Ledger(store).register_key(impostor)
        last = original[-1]
        forged_key = forge_row(impostor, last["seq"] + 1, last["hash"], "key",
                               {"node": COORDINATOR_ID, "public_key": impostor.public_hex})
        slash = forge_row(impostor, last["seq"] + 2, forged_key["hash"], "slash", FORGED_KINDS["slash"]("a0"))
        with store.engine.begin() as conn:
            conn.execute(text(f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES "
                              f"({', '.join(':' + c for c in COLUMNS)})"), [forged_key, slash])
        tally.add(judge.verify(head=False), judge.registry_refuses_or_ignores())
        put_back(store, original)
    return out


def forge_row(ident: Identity, seq: int, prev: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    from swarmrank.ledger import entry_hash
    from swarmrank.wire import canonical

    created = "2026-01-01T00:00:00.000000+00:00"
    digest = entry_hash(seq, created, kind, payload, ident.node_id, prev)
    return {"seq": seq, "created_at": created, "kind": kind, "payload": canonical(payload).decode(),
            "signer": ident.node_id, "prev_hash": prev, "hash": digest,
            "signature": ident.sign(bytes.fromhex(digest)).hex()}


def attack_truncation(store: Store, judge: Judge, original: list[dict[str, Any]],
                      registry: Registry) -> dict[str, Tally]:
    anchored, bare = Tally(), Tally()
    registry.state()
    for k in range(1, 31):
        cut = original[-k:]
        sql(store, "DELETE FROM ledger WHERE seq >= :seq", seq=cut[0]["seq"])
        try:  # a registry that had verified the whole ledger (the running server) notices the cut
            registry.state()
            noticed = False
        except SwarmError:
            noticed = True
        anchored.add(judge.verify(head=True), noticed)
        bare.add(judge.verify(head=False), noticed)
        put_back(store, original)
        registry.state()  # whole again
    return {"with a head kept elsewhere": anchored, "without one": bare}


def attack_reorder(store: Store, judge: Judge, original: list[dict[str, Any]], trials: int,
                   rng: random.Random) -> dict[str, Tally]:
    tally = Tally()
    for _ in range(trials):
        i, j = sorted(rng.sample(range(len(original)), 2))
        a, b = original[i], original[j]
        with store.engine.begin() as conn:
            for row, other in ((a, b), (b, a)):
                conn.execute(text(f"UPDATE ledger SET {', '.join(f'{c} = :{c}' for c in COLUMNS[1:])} "
                                  "WHERE seq = :seq"), {**{c: other[c] for c in COLUMNS[1:]}, "seq": row["seq"]})
        tally.add(judge.verify(head=False), judge.registry_refuses_or_ignores())
        put_back(store, original)
    return {"two entries swapped": tally}


def attack_exports(store: Store, judge: Judge, trials: int, rng: random.Random, workdir: Path) -> dict[str, Tally]:
    export = io.StringIO()
    Ledger(store).export(export)
    lines = export.getvalue().splitlines(keepends=True)
    attacker = load_or_create(workdir / "attackers", "export-forger")

    def edit_field(ls: list[str]) -> list[str]:
        ls = list(ls)
        i = rng.randrange(len(ls))
        entry = json.loads(ls[i])
        name = rng.choice(["created_at", "kind", "signer", "prev_hash", "hash", "signature", "payload", "seq"])
        if name == "payload":
            key = rng.choice(sorted(entry["payload"]))
            value = entry["payload"][key]
            entry["payload"][key] = (value + 1 if isinstance(value, (int, float)) and not isinstance(value, bool)
                                     else not value if isinstance(value, bool) else str(value) + "x")
        elif name == "seq":
            entry["seq"] += 1
        else:
            entry[name] = byte_edit(entry[name], name, rng)
        ls[i] = json.dumps(entry, ensure_ascii=False) + "\n"
        return ls

    def drop_line(ls: list[str]) -> list[str]:
        i = rng.randrange(len(ls) - 1)  # not the last: that is the cut below
        return ls[:i] + ls[i + 1:]

    def swap_lines(ls: list[str]) -> list[str]:
        i, j = sorted(rng.sample(range(len(ls)), 2))
        ls = list(ls)
        ls[i], ls[j] = ls[j], ls[i]
        return ls

    def forged_line(ls: list[str]) -> list[str]:
        last = json.loads(ls[-1])
        key = forge_row(attacker, last["seq"] + 1, last["hash"], "key",
                        {"node": attacker.node_id, "public_key": attacker.public_hex})
        row = forge_row(attacker, last["seq"] + 2, key["hash"], "slash", FORGED_KINDS["slash"]("a0"))
        return ls + [json.dumps({**r, "payload": json.loads(r["payload"])}) + "\n" for r in (key, row)]

    def cut_end(ls: list[str]) -> list[str]:
        return ls[:-rng.randint(1, 20)]

    out: dict[str, Tally] = {}
    for label, edit in (("one field changed", edit_field), ("a line dropped", drop_line),
                        ("two lines swapped", swap_lines), ("forged entries added", forged_line),
                        ("its end cut", cut_end)):
        tally = out[label] = Tally()
        for t in range(trials):
            edited = "".join(edit(lines))
            with Store(f"sqlite:///{workdir / f'export-{label[:8]}-{t}.db'}") as copy:
                try:
                    Ledger(copy).import_(io.StringIO(edited), policy=judge.policy)
                except LedgerError:
                    tally.add(True, None)
                    continue
                report = Ledger(copy).verify(expected_head=judge.anchor, policy=judge.policy)
                tally.add(not report.ok, None)
    return out


# -- crashes: kill -9 under load, clients that hang up ----------------------------------------------


CONFIG = """
[swarm]
name = "tamper-load"
[round]
judges_per_pair = 2
[trust]
enabled = true
[models.good]
backend = "scripted"
accuracy = 1.0
judge = "truth"
answers = {{ "*" = "42" }}
latency = {latency}
{nodes}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """``swarmrank serve`` with trust on, in its own process, its nodes admitted first."""

    def __init__(self, home: Path, url: str, latency: float, src: str | None = None) -> None:
        nodes = "\n".join(f'[[nodes]]\nid = "{n}"\nmodel = "good"\nroles = ["{role}"]'
                          for n, role in (("a0", "answer"), ("a1", "answer"), ("a2", "answer"),
                                          ("j0", "judge"), ("j1", "judge")))
        home.mkdir(parents=True, exist_ok=True)
        self.config = home / "swarm.toml"
        self.config.write_text(CONFIG.format(latency=latency, nodes=nodes))
        self.env = {**os.environ, "SWARMRANK_HOME": str(home), "SWARMRANK_DB": url, "OPENBLAS_NUM_THREADS": "1"}
        if src is not None:  # another checkout's code (the code before a change, to compare)
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
        for n in ("a0", "a1", "a2", "j0", "j1"):
            self.cli("node", "admit", n, "--items", "5")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "swarmrank", "serve", "--config", str(self.config), "--port", str(self.port),
             "--no-auth", "--rate-limit", "0", "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"swarmrank serve exited: {self.process.communicate()[1][-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("swarmrank serve did not come up within 60 s")
            time.sleep(0.1)

    def cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "swarmrank", *args, "--config", str(self.config)],
                              capture_output=True, text=True, env=self.env, check=True).stdout

    def stop(self, *, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.communicate(timeout=30)


def body(i: int, stream: bool) -> dict[str, Any]:
    return {"model": "swarmrank", "stream": stream, "messages": [{"role": "user", "content": f"What is 40 + 2? #{i}"}]}


@dataclass
class Crash:
    label: str
    sent: int
    answered: int
    stored: int
    recorded: int
    without_entries: int
    problems: list[str]  # what `ledger verify` says about the rounds


def count(url: str) -> tuple[int, int, int, list[str]]:
    """(rounds stored, rounds recorded, stored rounds no round entry names, the audit's problems).
    The third does not rely on the ``trusted`` mark, so it counts for code without it too."""
    with Store(url) as store:
        ledger = Ledger(store)
        recorded = {e.payload.get("round_id") for e in ledger.entries(kind="round")}
        stored = {r[0] for r in sql(store, "SELECT id FROM rounds")}
        return len(stored), len(recorded), len(stored - recorded), audit_rounds(store, ledger).problems


async def load_then_kill(served: Served, load: int, rng: random.Random) -> tuple[int, int]:
    """``load`` requests at once; SIGKILL once about half have been answered. (sent, answered)."""
    answered = 0
    kill_at = load // 2 + rng.randint(-load // 10, load // 10)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        nonlocal answered
        with contextlib.suppress(httpx.HTTPError):
            response = await client.post(f"{served.url}/v1/chat/completions", json=body(i, False))
            if response.status_code == 200:
                answered += 1
                if answered == kill_at:
                    served.stop(kill=True)

    limits = httpx.Limits(max_connections=load)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*(one(client, i) for i in range(load)))
    if served.process.poll() is None:
        served.stop(kill=True)
    return load, answered


async def hang_ups(served: Served, clients: int, latency: float, rng: random.Random) -> tuple[int, int]:
    """``clients`` streaming requests at once, each hanging up at a random moment unless answered by then."""
    answered = 0

    async def one(client: httpx.AsyncClient, i: int, after: float) -> None:
        nonlocal answered
        with contextlib.suppress(httpx.HTTPError, asyncio.TimeoutError):
            async with asyncio.timeout(after):
                async with client.stream("POST", f"{served.url}/v1/chat/completions", json=body(i, True)) as resp:
                    async for line in resp.aiter_lines():
                        if line == "data: [DONE]":
                            answered += 1

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=clients)) as client:
        # from before the round starts to well after a lone round would end (rounds queue on the ledger's lock)
        await asyncio.gather(*(one(client, i, rng.uniform(0.0, 8 * latency)) for i in range(clients)))
    return clients, answered


def crashes(backend: str, workdir: Path, args: argparse.Namespace, rng: random.Random) -> list[Crash]:
    out = []
    for k in range(args.kills):
        with database(backend, workdir, f"kill{k}") as url:
            served = Served(workdir / f"kill-home-{k}", url, args.latency, args.server_src)
            sent, answered = asyncio.run(load_then_kill(served, args.load, rng))
            out.append(Crash(f"kill -9 under load (run {k + 1})", sent, answered, *count(url)))
    with database(backend, workdir, "hangup") as url:
        served = Served(workdir / "hangup-home", url, args.latency, args.server_src)
        sent, answered = asyncio.run(hang_ups(served, args.disconnects, args.latency, rng))
        time.sleep(8 * args.latency + 1)  # rounds whose client left finish (or stop) in the server
        served.stop()
        out.append(Crash("streaming clients hanging up", sent, answered, *count(url)))
    return out


# -- the cost of verifying --------------------------------------------------------------------------


def costs(store: Store, coordinator: Identity, extra: int, size: int) -> list[tuple[str, int, int, float]]:
    ledger = Ledger(store)
    policy = SignerPolicy.of([coordinator.public_hex])
    for start in range(len(rows(store)), size, 500):  # a ledger of ``size`` entries
        ledger.append_many([("stake", {"node": "a0", "amount": 0.0, "reason": "filler"}, coordinator)]
                           * min(500, size - start))
    ledger.verify(policy=policy)  # warm: connection, compiled statements
    n = len(rows(store))
    began = time.perf_counter()
    assert ledger.verify(policy=policy).ok
    full = time.perf_counter() - began
    follower = ledger.follow(policy)
    began = time.perf_counter()
    first = follower.read()
    first_read = time.perf_counter() - began
    assert first.broken is None
    new = 0
    incremental = 0.0
    for i in range(extra):  # what a registry pays before a round: the entries since the last one
        ledger.append_many([("stake", {"node": "a0", "amount": 0.0, "reason": f"probe {i}"}, coordinator)] * 8)
        began = time.perf_counter()
        found = follower.read()
        incremental += time.perf_counter() - began
        new += len(found.entries)
    return [("verify, whole ledger", n, 1, full), ("follower, first read", len(first.entries), 1, first_read),
            ("follower, new entries only (8 per read, as after a round)", new, extra, incremental)]


# -- the report -----------------------------------------------------------------------------------------


def table(title: str, tallies: dict[str, Tally], registry_header: str = "registry") -> None:
    print(f"\n### {title}\n")
    print(f"| attack | tried | detected by `ledger verify` | {registry_header} |")
    print("|---|---:|---:|---:|")
    for label, t in tallies.items():
        reg = "— (not read)" if t.registry is None else f"{t.registry}/{t.tried}"
        print(f"| {label} | {t.tried} | {t.verify}/{t.tried} | {reg} |")


def run(backend: str, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    print(f"\n## {backend}\n")
    with tempfile.TemporaryDirectory(prefix="bench-tamper-") as tmp:
        workdir = Path(tmp)
        if "attacks" in args.parts:
            attacks(backend, workdir, args, rng)
        if "crashes" in args.parts:
            who = f"the code in {args.server_src}" if args.server_src else "this code"
            print(f"\n### Crashes: stored rounds without their ledger entries (target 0); {who}, nodes take "
                  f"{args.latency} s\n")
            print("| what | requests | answered | rounds stored | rounds recorded | stored without entries |")
            print("|---|---:|---:|---:|---:|---:|")
            for c in crashes(backend, workdir, args, rng):
                print(f"| {c.label} | {c.sent} | {c.answered} | {c.stored} | {c.recorded} | {c.without_entries} |")
                for problem in c.problems[:3]:
                    print(f"|  ↳ `ledger verify`: {problem} | | | | | |")


def attacks(backend: str, workdir: Path, args: argparse.Namespace, rng: random.Random) -> None:
    with database(backend, workdir, "attacked") as url, Store(url) as store:
        began = time.perf_counter()
        swarm = build(store, workdir / "keys", args.rounds)
        coordinator = swarm.registry.coordinator
        original = rows(store)
        judge = Judge(store, coordinator, original[-1]["hash"])
        kinds: dict[str, int] = {}
        for r in original:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        print(f"{args.rounds} rounds → {len(original)} ledger entries "
              f"({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}), built in "
              f"{time.perf_counter() - began:.1f} s; the untampered ledger verifies: {not judge.verify()}")
        table(f"Single-character edits, {args.trials} per column",
              attack_bytes(store, judge, original, args.trials, rng), "a fresh registry refuses")
        forged = max(3, args.trials // 5)
        table(f"Forged-signer appends, {forged} per kind (verify names it and import refuses it)",
              attack_forged(store, judge, original, forged, rng, workdir), "registry state unchanged")
        table("Truncation: the last 1…30 entries cut", attack_truncation(store, judge, original, swarm.registry),
              "the running registry notices")
        table(f"Reordering, {args.trials} swaps", attack_reorder(store, judge, original, args.trials, rng),
              "a fresh registry refuses")
        table(f"Edited exports, {args.trials} each, imported into an empty database",
              attack_exports(store, judge, args.trials, rng, workdir), "registry")
        print("\n### Cost of verifying\n")
        print("| what | entries | reads | total ms | ms per read | µs per entry |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, n, reads, seconds in costs(store, coordinator, args.cost_reads, args.cost_size):
            print(f"| {label} | {n} | {reads} | {1000 * seconds:.1f} | {1000 * seconds / reads:.2f} | "
                  f"{1e6 * seconds / max(n, 1):.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", nargs="+", default=["sqlite"], choices=["sqlite", "postgres"])
    parser.add_argument("--rounds", type=int, default=20, help="rounds in the attacked ledger")
    parser.add_argument("--trials", type=int, default=25, help="attempts per column, kind or edit")
    parser.add_argument("--load", type=int, default=120, help="concurrent requests when killing")
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--disconnects", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per node call in the crash part")
    parser.add_argument("--cost-reads", type=int, default=50, help="incremental reads timed")
    parser.add_argument("--cost-size", type=int, default=5000, help="ledger entries when timing verification")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--parts", nargs="+", default=["attacks", "crashes"], choices=["attacks", "crashes"])
    parser.add_argument("--server-src", help="run the served swarm from this source tree (e.g. the code before "
                                             "a change, to compare the crash part)")
    args = parser.parse_args(argv)
    logging.getLogger("swarmrank.trust").setLevel(logging.ERROR)  # each forged entry would be logged as ignored
    if "postgres" in args.backend and not os.environ.get("SWARMRANK_TEST_PG"):
        parser.error("postgres needs SWARMRANK_TEST_PG (run under scripts/with-postgres)")
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; Python {platform.python_version()}")
    print(f"command: {' '.join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])}")
    start = time.perf_counter()
    for backend in args.backend:
        run(backend, args)
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
