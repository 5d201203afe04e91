"""Trust end to end, as a user runs it: admit nodes, ask with [trust] enabled, read reputation and the ledger."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from swarmrank.config import load_config
from swarmrank.ledger import Ledger
from swarmrank.store import Store
from swarmrank.trust import TrustState

from helpers import TRUSTED, run_cli


@pytest.fixture
def trusted(tmp_path: Path) -> Path:
    path = tmp_path / "swarm.toml"
    path.write_text(TRUSTED)
    return path


def test_admit_ask_and_replay_with_trust_enabled(trusted, isolated_home):
    cfg = ["--config", str(trusted)]
    refused = run_cli("ask", "What is 6 × 7?", *cfg, home=isolated_home)
    assert refused.returncode == 1 and "admit nodes first" in refused.stderr and "Traceback" not in refused.stderr

    for node in ("alice", "bob", "carol", "dave"):
        proc = run_cli("node", "admit", node, *cfg, "--json", home=isolated_home, check=True)
        data = json.loads(proc.stdout)
        assert data["passed"] and data["admitted"] and data["stake"] == 10
    # a fixed exam: mallory always answers 41, which is none of this seed's 20 golds
    bad = run_cli("node", "admit", "mallory", *cfg, "--seed", "7", home=isolated_home)
    assert bad.returncode == 1 and "refused" in bad.stdout and "answers 0/20 (0%)" in bad.stdout

    proc = run_cli("ask", "What is 6 × 7?", *cfg, "--json", home=isolated_home, check=True)
    result = json.loads(proc.stdout)
    assert result["answer"] == "42"
    assert "not counted: mallory: not admitted" in result["notes"]
    assert all(a["node"] != "mallory" for a in result["answers"])

    nodes = json.loads(run_cli("nodes", *cfg, "--no-check", "--json", home=isolated_home, check=True).stdout)
    trust = {n["id"]: n["trust"] for n in nodes}
    assert trust["alice"]["rounds"] == 1 and trust["alice"]["eligible"]
    assert trust["mallory"]["admitted"] is False and trust["mallory"]["influence"] == 1.0
    table = run_cli("nodes", *cfg, "--no-check", home=isolated_home, check=True).stdout
    assert "reputation" in table and "not admitted" in table

    verify = run_cli("ledger", "verify", *cfg, home=isolated_home, check=True)
    assert verify.stdout.startswith("ledger ok: ")
    # the ledger alone reproduces what `nodes` showed
    store = Store(f"sqlite:///{isolated_home / 'swarmrank.db'}")
    try:
        entries = Ledger(store).entries()
    finally:
        store.close()
    state = TrustState.replay(entries, load_config(trusted).trust.params)
    assert state.nodes["alice"].reputation == trust["alice"]["reputation"]
    kinds = [e.kind for e in entries]
    assert kinds.count("admission") == 5 and kinds.count("round") == 1
    assert {e.payload["node"] for e in entries if e.kind == "key"} >= {"alice", "bob", "carol", "dave", "mallory"}


def test_stake_top_up_and_clear_errors(trusted, isolated_home):
    cfg = ["--config", str(trusted)]
    run_cli("node", "admit", "alice", *cfg, home=isolated_home, check=True)
    proc = run_cli("node", "stake", "alice", "2.5", *cfg, home=isolated_home, check=True)
    assert "alice: stake 12.5 (counts)" in proc.stdout
    for args, message in ((("node", "stake", "zed", "1"), "no node 'zed'"),
                          (("node", "stake", "alice", "0"), "positive amount"),
                          (("node", "stake", "alice", "-5"), "a deposit must be a positive amount, got -5"),
                          (("node", "stake", "alice", "-0.5"), "a deposit must be a positive amount, got -0.5"),
                          (("node", "admit", "zed"), "no node 'zed'"),
                          (("node", "admit", "alice", "--level", "galactic"), "exam level must be one of")):
        bad = run_cli(*args, *cfg, home=isolated_home)
        assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1  # a negative amount is not taken for an unknown option


def test_a_doctored_reputation_entry_breaks_the_chain(trusted, isolated_home):
    cfg = ["--config", str(trusted)]
    for node in ("alice", "bob", "carol", "dave"):
        run_cli("node", "admit", node, *cfg, home=isolated_home, check=True)
    run_cli("ask", "What is 6 × 7?", *cfg, home=isolated_home, check=True)
    db = sqlite3.connect(isolated_home / "swarmrank.db")
    try:
        seq, payload = db.execute("SELECT seq, payload FROM ledger WHERE kind = 'reputation' LIMIT 1").fetchone()
        db.execute("UPDATE ledger SET payload = ? WHERE seq = ?", (payload.replace('"after":', '"after":1'), seq))
        db.commit()
    finally:
        db.close()
    bad = run_cli("ledger", "verify", *cfg, home=isolated_home)
    assert bad.returncode == 1 and f"entry {seq}" in bad.stderr and "Traceback" not in bad.stderr


def test_verify_checks_each_nodes_signature_inside_a_round_entry(trusted, isolated_home):
    from swarmrank.identity import load_or_create
    from swarmrank.ledger import Ledger

    cfg = ["--config", str(trusted)]
    for node in ("alice", "bob", "carol", "dave"):
        run_cli("node", "admit", node, *cfg, home=isolated_home, check=True)
    run_cli("ask", "What is 6 × 7?", *cfg, home=isolated_home, check=True)
    store = Store(f"sqlite:///{isolated_home / 'swarmrank.db'}")
    try:
        ledger = Ledger(store)
        outcome = ledger.entries(kind="round")[0].payload
        assert set(outcome["nodes"]) == {"alice", "bob"}  # both answered 42: no judging was needed
        assert ledger.verify().ok
        # a coordinator that forges bob's signature on a round (a correctly chained, coordinator-signed entry)
        forged = dict(outcome, round_id="forged", nodes={**outcome["nodes"], "bob": {
            "digest": outcome["nodes"]["bob"]["digest"], "signature": outcome["nodes"]["alice"]["signature"]}})
        coordinator = load_or_create(isolated_home / "keys", "swarmrank-coordinator")
        entry = ledger.append("round", forged, coordinator)
        report = ledger.verify()
        assert not report.ok and report.bad_seq == entry.seq
        assert "node 'bob'" in report.reason and "does not verify" in report.reason
    finally:
        store.close()
