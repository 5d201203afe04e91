"""Trust you can audit (issue 10): only trust authorities move trust, trust state is built from
verified entries only, and a stored round always has its ledger entries — on SQLite and PostgreSQL.

Each test here reproduces one way the ledger was bought, forged or left incomplete before, as an
attacker with write access to the database but no swarmrank key, a client, or a crash would.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

import swarmrank.ledger
import swarmrank.store.rounds
from swarmrank.audit import audit_rounds
from swarmrank.errors import LedgerBroken, LedgerError, RoundNotSavedError
from swarmrank.identity import Identity, load_or_create
from swarmrank.ledger import Ledger, SignerPolicy
from swarmrank.nodes.base import Node
from swarmrank.registry import Registry
from swarmrank.round import RoundOptions
from swarmrank.server import create_key
from swarmrank.store import Store
from swarmrank.swarm import Swarm

from helpers import TRUSTED, assert_openai_error, node, run_cli

QUESTION = "What is 2 + 2?"


# -- a trusted swarm in a real database -------------------------------------------------------------


@pytest.fixture
def db(db_url: str) -> Iterator[Store]:
    with Store(db_url) as store:
        yield store


def keyed(n: Node, keys: Path) -> Node:
    """``n`` with a key pair of its own, as `swarmrank` gives every local node."""
    ident = load_or_create(keys, n.id)
    n.public_key, n.signer = ident.public_hex, ident.sign
    return n


HONEST = ("a0", "a1", "j0", "j1")
COLLUDERS = ("c0", "c1", "c2")


def trusted_swarm(store: Store, keys: Path) -> Swarm:
    """Honest answerers (4) and judges that know 4 is right; three colluders that answer 5 and
    judge for it. Only the honest nodes are admitted (by the coordinator, in the ledger)."""
    nodes = [node("a0", {"answer"}, answers={"*": "4"}), node("a1", {"answer"}, answers={"*": "4"}),
             node("j0", {"judge"}, judge="truth", truth="4"), node("j1", {"judge"}, judge="truth", truth="4")]
    nodes += [node(c, {"answer", "judge"}, answers={"*": "5"}, judge="prefer", prefer="5") for c in COLLUDERS]
    nodes = [keyed(n, keys) for n in nodes]
    registry = Registry(Ledger(store), load_or_create(keys, "swarmrank-coordinator"))
    registry.register(nodes)
    for n in nodes:
        if n.id in HONEST:
            registry.admit(n.id, passed=True, report={"seed": 1})
    return Swarm(nodes, options=RoundOptions(judges_per_pair=2), name="trusted", store=store, registry=registry)


def forge(ledger: Ledger, attacker: Identity) -> list[int]:
    """What an attacker who can write to the database appends with a key of its own: the honest
    nodes slashed to nothing, the colluders admitted with the most stake and a high reputation
    (a reputation entry carries its own rate and decay, so any value replays). Returns the seqs."""
    entries = [ledger.append("slash", {"node": n, "amount": 10.0, "reason": "forged"}, attacker) for n in HONEST]
    for c in COLLUDERS:
        entries.append(ledger.append("admission", {"node": c, "passed": True}, attacker))
        entries.append(ledger.append("stake", {"node": c, "amount": 20.0, "reason": "forged"}, attacker))
        entries.append(ledger.append("reputation", {"node": c, "round_id": "forged", "score": 1.0, "truth": True,
                                                    "before": 0.0, "after": 40.0, "rate": 40.0, "decay": 0.0},
                                     attacker))
    return [e.seq for e in entries]


# -- 1. only trust authorities move trust ------------------------------------------------------------


def test_entries_from_a_forged_signer_move_no_trust_and_are_named_and_refused(db: Store, tmp_path: Path,
                                                                              api) -> None:
    swarm = trusted_swarm(db, tmp_path / "keys")
    assert swarm.ask_sync(QUESTION).answer == "4"
    ledger = Ledger(db)
    kept_head = ledger.head()
    assert kept_head is not None

    forged = forge(ledger, load_or_create(tmp_path / "attacker", "auditor"))

    # the next round: the honest nodes still count, the colluders still do not
    result = swarm.ask_sync(QUESTION)
    assert result.answer == "4"
    assert {a.node for a in result.answers} == {"a0", "a1"}
    assert any(note.startswith(f"ledger: ignored {len(forged)} entries") and "'auditor'" in note
               for note in result.notes), result.notes
    state = swarm.registry.state()
    assert all(state.nodes[n].stake == 10.0 for n in HONEST)
    assert not any(state.eligible(c) for c in COLLUDERS)
    # a registry starting afresh on this database (another process, a restart) agrees
    fresh = Registry(Ledger(db), swarm.registry.coordinator)
    assert {n: v.stake for n, v in fresh.state().nodes.items()} == {n: v.stake for n, v in state.nodes.items()}
    # nor does the dashboard draw the forged reputations
    shown = api(swarm, store=db, auth=False).get("/v1/reputation").json()
    assert shown["enabled"] and not {n["node"] for n in shown["nodes"]} & set(COLLUDERS)

    policy = swarm.registry.policy
    report = ledger.verify(policy=policy)
    assert not report.ok and report.bad_seq is None  # the chain is intact; its signers are not
    assert [seq for seq, _ in report.unauthorised] == forged
    assert all("'auditor'" in why and "not a trust authority" in why for _, why in report.unauthorised)
    assert not ledger.verify(expected_head=kept_head.hash, policy=policy).ok
    assert ledger.verify().ok  # without a policy only the chain is checked: this is what was missed before

    export = io.StringIO()
    ledger.export(export)
    with Store(f"sqlite:///{tmp_path / 'copy.db'}") as copy:
        with pytest.raises(LedgerError, match=f"entry {forged[0]} \\(slash\\) is signed by 'auditor'"):
            Ledger(copy).import_(io.StringIO(export.getvalue()), policy=policy)
        assert Ledger(copy).head() is None


def test_a_node_key_counts_only_as_the_admission_countersigned_it(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'keys.db'}") as store:
        swarm = trusted_swarm(store, tmp_path / "keys")
        registry = swarm.registry
        a0 = swarm.node("a0")
        registry.admit("a0", passed=True, report={}, public_key=a0.public_key)  # countersigned explicitly
        # the same node id now answering with another key (a replaced key file, another agent) is left out
        a0.public_key = load_or_create(tmp_path / "elsewhere", "a0").public_hex
        counted, _, left_out = registry.weigh(swarm.nodes, swarm.options)
        assert "a0" not in {n.id for n in counted}
        assert any(line.startswith("a0: its key") and "admit it again" in line for line in left_out)
        with pytest.raises(Exception, match="Ed25519 public key"):
            registry.admit("a1", passed=True, report={}, public_key="not-a-key")


def test_a_round_entry_with_a_node_signature_from_an_uncountersigned_key_fails_verification(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'sig.db'}") as store:
        keys = tmp_path / "keys"
        coordinator = load_or_create(keys, "swarmrank-coordinator")
        ledger = Ledger(store)
        stranger = load_or_create(keys, "stranger")
        ledger.register_key(stranger)  # a key entry of its own: proof of possession, no standing
        digest = "ab" * 32
        ledger.append("round", {"round_id": "r1", "nodes": {"stranger": {
            "digest": digest, "signature": stranger.sign(bytes.fromhex(digest)).hex()}}}, coordinator)
        policy = SignerPolicy.of([coordinator.public_hex])
        report = ledger.verify(policy=policy)
        assert report.bad_seq == 3 and "no admission countersigned a key for it" in (report.reason or "")
        assert ledger.verify().ok  # chain-only: the registered key is enough


def test_the_coordinator_must_be_a_pinned_authority_and_pinned_keys_are_used(tmp_path: Path,
                                                                            isolated_home: Path) -> None:
    other = load_or_create(tmp_path / "other", "other").public_hex
    config = tmp_path / "swarm.toml"
    config.write_text(TRUSTED.replace("enabled = true\n", f'enabled = true\nauthorities = ["{other}"]\n'))
    proc = run_cli("ask", QUESTION, "--config", str(config), home=isolated_home)
    assert proc.returncode == 1 and "is not among [trust] authorities" in proc.stderr
    assert "Traceback" not in proc.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(TRUSTED.replace("enabled = true\n", 'enabled = true\nauthorities = ["nope"]\n'))
    proc = run_cli("ask", QUESTION, "--config", str(bad), home=isolated_home)
    assert proc.returncode == 1 and "trust.authorities" in proc.stderr


# -- 2. trust state is built from verified entries only ---------------------------------------------


def test_an_sql_edit_of_a_stake_is_refused_naming_the_entry_not_acted_on(db: Store, tmp_path: Path, api) -> None:
    swarm = trusted_swarm(db, tmp_path / "keys")
    assert swarm.ask_sync(QUESTION).answer == "4"
    seq = next(e.seq for e in Ledger(db).entries(kind="stake") if e.payload["node"] == "a0")
    with db.engine.begin() as conn:  # the deposit made negative, not re-hashed
        conn.execute(text("UPDATE ledger SET payload = replace(payload, :was, :now) WHERE seq = :seq"),
                     {"was": '"amount":10.0', "now": '"amount":-100.0', "seq": seq})

    # a coordinator starting now (the CLI, a restarted server) refuses every trusted round
    restarted = Swarm(swarm.nodes, options=swarm.options, name="trusted", store=db,
                      registry=Registry(Ledger(db), swarm.registry.coordinator))
    with pytest.raises(LedgerBroken, match=f"ledger entry {seq} fails verification: hash does not match"):
        restarted.ask_sync(QUESTION)
    assert db.count_rounds() == 1
    client = api(restarted, store=db, auth=False)
    response = client.post("/v1/chat/completions", json={"model": "swarmrank",
                                                         "messages": [{"role": "user", "content": QUESTION}]})
    error = assert_openai_error(response, 503, code="ledger_broken")
    assert f"ledger entry {seq}" in error["message"]
    # the running one built its state from the entry as it was verified, and goes on with it
    assert swarm.registry.state().nodes["a0"].stake == 10.0


def test_the_follower_reads_only_new_entries_and_notices_a_rewritten_or_cut_tail(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'follow.db'}") as store:
        ledger = Ledger(store)
        me = load_or_create(tmp_path / "keys", "coord")
        follower = ledger.follow(SignerPolicy.of([me.public_hex]))
        for i in range(5):
            ledger.append("stake", {"node": "n", "amount": float(i)}, me)
        assert [e.seq for e in follower.read().entries] == [1, 2, 3, 4, 5, 6]  # the key entry, then five
        assert follower.read().entries == []
        ledger.append("stake", {"node": "n", "amount": 9.0}, me)
        assert [e.seq for e in follower.read().entries] == [7]

        with store.engine.begin() as conn:
            conn.execute(text("UPDATE ledger SET payload = replace(payload, '9.0', '90.0') WHERE seq = 7"))
        found = follower.read()
        assert found.entries == [] and found.broken is not None and found.broken.seq == 7
        kept = found.broken.kept_head
        assert kept is not None and str(found.broken).startswith(
            f"ledger entry 7 changed since this process verified it (its hash was {kept})")
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM ledger WHERE seq = 7"))
        assert str(follower.read().broken).startswith(f"the ledger was cut after entry 6: entry 7 is gone, though "
                                                      f"this process had verified the ledger up to entry 7 (hash {kept})")

        fresh = ledger.follow(SignerPolicy.of([me.public_hex]))
        with store.engine.begin() as conn:  # an entry mid-chain edited: the entries before it still count
            conn.execute(text("UPDATE ledger SET kind = 'slash' WHERE seq = 4"))
        found = fresh.read()
        assert [e.seq for e in found.entries] == [1, 2, 3] and found.broken is not None
        assert str(found.broken) == "ledger entry 4 fails verification: hash does not match the entry's content " \
                                    "(modified?)"


# -- 3. a round and its ledger entries commit together ------------------------------------------------


def recorded(store: Store) -> tuple[int, int]:
    """(rounds stored, rounds the ledger records)."""
    return store.count_rounds(), len(Ledger(store).entries(kind="round"))


def test_a_ledger_write_that_fails_leaves_neither_the_round_nor_its_entries(db: Store, tmp_path: Path,
                                                                           monkeypatch) -> None:
    swarm = trusted_swarm(db, tmp_path / "keys")

    def disk_full(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("INSERT INTO ledger", {}, Exception("disk I/O error"))

    monkeypatch.setattr(swarmrank.ledger, "_append", disk_full)
    with pytest.raises(RoundNotSavedError, match="disk I/O error") as caught:
        swarm.ask_sync(QUESTION)
    assert caught.value.result.answer == "4"  # type: ignore[attr-defined]
    assert recorded(db) == (0, 0)
    monkeypatch.undo()
    swarm.ask_sync(QUESTION)
    assert recorded(db) == (1, 1)
    assert audit_rounds(db, Ledger(db)).ok


KILLED = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_trust_audit import trusted_swarm
from swarmrank.store import Store

store = Store({url!r})
swarm = trusted_swarm(store, Path({keys!r}))
coordinator = swarm.registry.coordinator
real_sign = coordinator.sign

class Slow:  # signs the round's entries slowly: the process is killed while the round is being recorded
    node_id, public_hex = coordinator.node_id, coordinator.public_hex
    def sign(self, payload):
        Path({cue!r}).touch()
        time.sleep(60)
        return real_sign(payload)

swarm.registry.coordinator = Slow()
swarm.ask_sync("What is 2 + 2?")
"""


def test_kill_9_while_a_round_is_recorded_leaves_no_round_without_its_entries(db_url: str, tmp_path: Path) -> None:
    cue = tmp_path / "signing"
    script = tmp_path / "killed.py"
    script.write_text(KILLED.format(tests=str(Path(__file__).parent), url=db_url, keys=str(tmp_path / "keys"),
                                    cue=str(cue)))
    process = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not cue.exists():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the round never reached its ledger write"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    with Store(db_url) as store:
        assert recorded(store) == (0, 0)  # before: the round was stored, its entries never were
        assert Ledger(store).verify().ok


def test_a_client_that_hangs_up_while_its_round_is_stored_leaves_it_recorded_or_absent(tmp_path: Path, start,
                                                                                      monkeypatch) -> None:
    store = Store(f"sqlite:///{tmp_path / 'hangup.db'}")
    key = create_key(store, "client")[0]
    swarm = trusted_swarm(store, tmp_path / "keys")
    writing, release = threading.Event(), threading.Event()
    insert_round = swarmrank.store.rounds._insert_round

    def slow_insert(*args: Any, **kwargs: Any) -> None:
        writing.set()
        release.wait(10)
        insert_round(*args, **kwargs)

    monkeypatch.setattr(swarmrank.store.rounds, "_insert_round", slow_insert)
    url = start(swarm, store=store, keepalive_seconds=0.1)
    with httpx.stream("POST", f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "swarmrank", "stream": True,
                            "messages": [{"role": "user", "content": QUESTION}]}) as response:
        for _ in response.iter_lines():
            if writing.is_set():
                break  # the round is being stored: hang up now
    time.sleep(0.5)  # the server notices (its next keep-alive fails) and cancels the request
    release.set()
    deadline = time.monotonic() + 10
    while recorded(store) != (1, 1) and time.monotonic() < deadline:
        time.sleep(0.05)  # the write finishes in its thread, whatever happened to the request
    assert recorded(store) == (1, 1)  # before: the round was stored, and the request's end cancelled its entries
    assert audit_rounds(store, Ledger(store)).ok
    store.close()





def test_ledger_verify_reports_rounds_without_their_entries_and_edited_rounds(tmp_path: Path,
                                                                             isolated_home: Path) -> None:
    config = tmp_path / "swarm.toml"
    config.write_text(TRUSTED)
    cfg = ["--config", str(config)]
    for n in ("alice", "carol"):
        run_cli("node", "admit", n, *cfg, home=isolated_home, check=True)
    asked = [json.loads(run_cli("ask", "What is 6 × 7?", *cfg, "--json", home=isolated_home,
                                check=True).stdout)["round_id"] for _ in range(3)]
    ok = run_cli("ledger", "verify", *cfg, home=isolated_home, check=True)
    assert ok.stdout.endswith("; every trust entry signed by the trust authority; 3 trusted round(s) recorded\n")

    with Store(f"sqlite:///{isolated_home / 'swarmrank.db'}") as store:
        result = store.get_round(asked[0])
        orphan = result.model_copy(update={"round_id": "orphan0000"})
        with store.write("plant an orphan") as conn:  # a trusted round stored without its entries
            store.round_writer(orphan, trusted=True)(conn)
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM rounds WHERE id = :id"), {"id": asked[1]})
            conn.execute(text("UPDATE rounds SET result_json = replace(result_json, :was, :now) WHERE id = :id"),
                         {"was": '"42"', "now": '"41"', "id": asked[2]})
    bad = run_cli("ledger", "verify", *cfg, home=isolated_home)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    # the result_json edit left its answer column behind: that is a problem of its own
    assert bad.stderr == "error: 4 problem(s) with the rounds the ledger records (above); the chain itself is intact\n"
    lines = bad.stdout.splitlines()
    assert f"round {asked[2]}: columns that disagree with its stored record (result_json): answer, answers[0].value, " \
           "candidates[0].answer (edited in SQL?)" in lines
    assert "round orphan0000: saved under trust, but no ledger entry records it" in lines
    assert any(line.startswith(f"round {asked[2]}: its stored record does not match the digest") for line in lines)
    assert any(line.startswith(f"round {asked[1]}: ledger entry") and "(deleted?)" in line for line in lines)
    report = json.loads(run_cli("ledger", "verify", *cfg, "--json", home=isolated_home).stdout)
    assert report["ok"] is False and report["rounds"]["rounds"] == 3 and len(report["rounds"]["problems"]) == 4


def test_a_remote_agents_key_is_countersigned_at_admission(tmp_path: Path, isolated_home: Path) -> None:
    from swarmrank.agent import agent_from_config
    from swarmrank.agent.app import create_agent_app
    from swarmrank.config import parse_config
    from swarmrank.settings import Settings

    from helpers import Server

    agent = agent_from_config(parse_config({"nodes": [{"id": "far", "backend": "scripted", "answer": "4"}]}),
                              node="far", settings=Settings(home=tmp_path / "agent-home"))
    server = Server(create_agent_app(agent))
    try:
        config = tmp_path / "remote.toml"
        config.write_text(f'[trust]\nenabled = true\n[[nodes]]\nid = "far"\nbackend = "remote"\n'
                          f'url = "{server.url}"\nroles = ["answer"]\n')
        proc = run_cli("node", "admit", "far", "--config", str(config), "--items", "2", home=isolated_home)
        assert proc.returncode == 1 and "refused" in proc.stdout  # it answers 4 to everything
    finally:
        server.stop()
    with Store(f"sqlite:///{isolated_home / 'swarmrank.db'}") as store:
        [admission] = Ledger(store).entries(kind="admission")
    # no key entry could be written for it (its key is on the agent's machine); the admission binds it
    assert admission.payload["public_key"] == agent.identity.public_hex


# -- 4 and 5. text a database cannot store; papercuts -------------------------------------------------


def test_a_nul_in_a_message_is_stored_and_recorded_exactly(db: Store, tmp_path: Path, api) -> None:
    swarm = trusted_swarm(db, tmp_path / "keys")
    client = api(swarm, store=db, auth=False)
    asked = "What is 2 + 2?\x00 (and a NUL)"
    response = client.post("/v1/chat/completions", json={"model": "swarmrank",
                                                         "messages": [{"role": "user", "content": asked}]})
    assert response.status_code == 200, response.text
    info = response.json()["swarmrank"]
    assert info["stored"] is True and info["answer"] == "4"
    stored = client.get(info["round_url"]).json()
    assert stored["question"] == asked  # kept exactly in the record
    assert [e.payload["round_id"] for e in Ledger(db).entries(kind="round")] == [info["round_id"]]
    [listed] = client.get("/v1/rounds").json()["data"]
    assert listed["question"] == asked.replace("\x00", "\u2400")  # the SQL column holds a visible stand-in
    assert audit_rounds(db, Ledger(db)).ok


def test_a_nul_in_a_filter_or_round_id_finds_nothing_instead_of_failing(db: Store, tmp_path: Path, api) -> None:
    client = api(trusted_swarm(db, tmp_path / "keys"), store=db, auth=False)
    for path in ("/v1/rounds?protocol=%00", "/v1/rounds?protocol=peer%00rank"):
        response = client.get(path)
        assert response.status_code == 200 and response.json()["data"] == [], response.text
    assert_openai_error(client.get("/v1/rounds/abcd%00"), 404, code="round_not_found")
    assert db.list_rounds(swarm="\x00") == [] and db.count_rounds(protocol="\x00") == 0


def test_a_question_that_is_not_unicode_is_refused_before_any_node_is_asked(db: Store, tmp_path: Path) -> None:
    swarm = trusted_swarm(db, tmp_path / "keys")
    with pytest.raises(Exception, match="unpaired surrogate"):
        swarm.ask_sync("What is 2 + 2?\ud800")
    assert recorded(db) == (0, 0)


def test_stream_must_be_a_boolean(db: Store, tmp_path: Path, api) -> None:
    client = api(trusted_swarm(db, tmp_path / "keys"), store=db, auth=False)
    for value in ("yes", 1, "true"):
        response = client.post("/v1/chat/completions", json={
            "model": "swarmrank", "stream": value, "messages": [{"role": "user", "content": QUESTION}]})
        error = assert_openai_error(response, 400, code="invalid_value")
        assert error["param"] == "stream"
    assert recorded(db) == (0, 0)


def test_ledger_import_and_export_of_a_number_beyond_a_float_are_one_line_errors(tmp_path: Path,
                                                                               isolated_home: Path) -> None:
    me = load_or_create(isolated_home / "keys", "swarmrank-coordinator")
    with Store(f"sqlite:///{isolated_home / 'swarmrank.db'}") as store:
        Ledger(store).append("stake", {"node": "n", "amount": 1.5}, me)
    export = run_cli("ledger", "export", "-", home=isolated_home, check=True).stdout
    huge = tmp_path / "huge.jsonl"
    huge.write_text(export.replace('"amount": 1.5', '"amount": 1e999'))
    assert "1e999" in huge.read_text()
    proc = run_cli("ledger", "import", str(huge), home=isolated_home)  # the file is read before anything else
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: import: line 2: not valid JSON (1e999 is not a finite number)")
    with Store(f"sqlite:///{isolated_home / 'swarmrank.db'}") as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE ledger SET payload = replace(payload, '1.5', '1e999') WHERE seq = 2"))
    for args in (("export", "-"), ("show",)):
        proc = run_cli("ledger", *args, home=isolated_home)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr == "error: ledger entry 2 has a payload that is not a JSON object; " \
                              "run `swarmrank ledger verify`\n"


def test_the_trust_cli_test_exam_is_deterministic() -> None:
    """The adversary of tests/test_trust_cli.py answers 41 to everything; its exam uses seed 7, none of
    whose 20 answer items (nor 20 judging items) has 41 for an answer, so it is refused every time."""
    from swarmrank.admission import exam_items

    assert all(item.gold != "41" for item in exam_items(20, seed=7, level="medium"))


# -- 6. what the ledger's database shows beside the ledger (review of issue 10) ------------------------


def plain_swarm(trusted: Swarm, store: Store) -> Swarm:
    """The same nodes without trust, storing its rounds in the same database (trust turned off)."""
    return Swarm(trusted.nodes, options=trusted.options, name="plain", store=store)


def test_verify_names_rounds_whose_columns_disagree_with_their_record_and_listings_show_the_record(
        db: Store, tmp_path: Path, api) -> None:
    swarm = trusted_swarm(db, tmp_path / "keys")
    forged = swarm.ask_sync("What is 6 × 7?").round_id
    edited = swarm.ask_sync(QUESTION).round_id
    nul = swarm.ask_sync("What is 2 + 2?\x00 (a NUL the columns hold as a stand-in)").round_id
    ledger = Ledger(db)
    assert audit_rounds(db, ledger).ok  # the stand-ins agree with the record they stand in for

    with db.engine.begin() as conn:  # what the listing shows, edited beside the record (which is left alone)
        conn.execute(text("UPDATE rounds SET answer = '43', confidence = 0.99, question = 'What is 6 × 8?' "
                          "WHERE id = :id"), {"id": forged})
        conn.execute(text("UPDATE answers SET text = 'forged' WHERE round_id = :id AND position = 0"), {"id": edited})
        conn.execute(text("UPDATE rounds SET created_at = '2001-01-01 00:00:00.000000' WHERE id = :id"), {"id": nul})
    audit = audit_rounds(db, ledger)
    assert not audit.ok and audit.stored == 3
    assert audit.problems == [f"round {rid}: columns that disagree with its stored record (result_json): {cols} "
                              "(edited in SQL?)" for rid, cols in sorted([
                                  (forged, "question, answer, confidence"), (edited, "answers[0].text"),
                                  (nul, "created_at")])]
    assert ledger.verify(policy=swarm.registry.policy).ok  # the chain is intact: only the audit sees it

    # the list reads the record, which the ledger's digest covers, not the copies beside it
    listed = {r["round_id"]: r for r in api(swarm, store=db, auth=False).get("/v1/rounds").json()["data"]}
    assert (listed[forged]["question"], listed[forged]["answer"]) == ("What is 6 × 7?", "4")
    assert listed[forged]["confidence"] == db.get_round(forged).confidence
    assert listed[nul]["question"] == "What is 2 + 2?\u2400 (a NUL the columns hold as a stand-in)"

    if db.engine.dialect.name == "sqlite":  # not even a timestamp (SQLite holds anything): reported, no traceback
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE rounds SET created_at = 'garbage' WHERE id = :id"), {"id": nul})
        assert f"round {nul}: columns that disagree with its stored record (result_json): created_at " \
               "(edited in SQL?)" in audit_rounds(db, ledger).problems
        assert nul in {r.round_id for r in db.list_rounds()}


def test_a_round_stored_since_trust_began_without_a_ledger_record_fails_verify_unless_allowed(
        db: Store, tmp_path: Path) -> None:
    swarm = trusted_swarm(db, tmp_path / "keys")
    before = plain_swarm(swarm, db).ask_sync(QUESTION).round_id  # trust off: before trust began
    asked = [swarm.ask_sync(QUESTION).round_id for _ in range(3)]
    ledger = Ledger(db)
    audit = audit_rounds(db, ledger)
    assert audit.ok and (audit.rounds, audit.stored, audit.unrecorded) == (3, 4, 0)
    assert audit.trust_began is not None

    # a fabricated round, consistent in every column and unmarked, created with the first trusted round
    first = db.get_round(asked[0])
    fake = first.model_copy(update={"round_id": "f" * 32, "answer": "666"})
    with db.write("plant a round") as conn:
        db.round_writer(fake, trusted=False)(conn)
    audit = audit_rounds(db, ledger)
    assert not audit.ok and not audit.problems and (audit.unrecorded, audit.unrecorded_ids) == (1, ["f" * 32])
    assert audit_rounds(db, ledger, allow_untrusted=True).ok
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM rounds WHERE id = :id"), {"id": "f" * 32})
    assert audit_rounds(db, ledger).ok

    # the last round's entries cut off the end, and its mark cleared: the ledger alone verifies
    seq = next(e.seq for e in ledger.entries(kind="round") if e.payload["round_id"] == asked[-1])
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger WHERE seq >= :seq"), {"seq": seq})
        conn.execute(text("UPDATE rounds SET trusted = :no WHERE id = :id"), {"no": False, "id": asked[-1]})
    assert ledger.verify(policy=swarm.registry.policy).ok
    audit = audit_rounds(db, ledger)
    assert not audit.ok and not audit.problems and audit.unrecorded_ids == [asked[-1]]
    assert before not in audit.unrecorded_ids

    # trust legitimately turned off for a while: the same finding, which the operator may allow
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM rounds WHERE id = :id"), {"id": asked[-1]})
    assert audit_rounds(db, ledger).ok
    later = plain_swarm(swarm, db).ask_sync(QUESTION).round_id
    audit = audit_rounds(db, ledger)
    assert not audit.ok and audit.unrecorded_ids == [later]
    allowed = audit_rounds(db, ledger, allow_untrusted=True)
    assert allowed.ok and allowed.unrecorded == 1


def test_ledger_verify_allow_untrusted_rounds(tmp_path: Path, isolated_home: Path) -> None:
    config = tmp_path / "swarm.toml"
    config.write_text(TRUSTED)
    cfg = ["--config", str(config)]
    for n in ("alice", "carol"):
        run_cli("node", "admit", n, *cfg, home=isolated_home, check=True)
    asked = [json.loads(run_cli("ask", "What is 6 × 7?", *cfg, "--json", home=isolated_home,
                                check=True).stdout)["round_id"] for _ in range(2)]
    with Store(f"sqlite:///{isolated_home / 'swarmrank.db'}") as store:
        ledger = Ledger(store)
        seq = next(e.seq for e in ledger.entries(kind="round") if e.payload["round_id"] == asked[-1])
        with store.engine.begin() as conn:  # the reviewer's attack: the last round's entries cut, its mark cleared
            conn.execute(text("DELETE FROM ledger WHERE seq >= :seq"), {"seq": seq})
            conn.execute(text("UPDATE rounds SET trusted = 0 WHERE id = :id"), {"id": asked[-1]})
    bad = run_cli("ledger", "verify", *cfg, home=isolated_home)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stdout.startswith(f"round {asked[-1]}: stored without a ledger record since trust began at ")
    assert bad.stderr.startswith("error: 1 round stored without a ledger record since trust began (above)")
    assert "--allow-untrusted-rounds" in bad.stderr
    allowed = run_cli("ledger", "verify", *cfg, "--allow-untrusted-rounds", home=isolated_home, check=True)
    assert allowed.stdout.endswith("; 1 trusted round(s) recorded; 1 round stored without a ledger record since "
                                   "trust began (allowed by --allow-untrusted-rounds)\n")
    report = json.loads(run_cli("ledger", "verify", *cfg, "--json", home=isolated_home).stdout)
    assert report["ok"] is False and report["rounds"]["unrecorded_ids"] == [asked[-1]]


def test_a_tail_cut_under_a_running_server_is_reported_with_the_head_that_proves_it(db: Store, tmp_path: Path,
                                                                                   api) -> None:
    swarm = trusted_swarm(db, tmp_path / "keys")
    client = api(swarm, store=db, auth=False)
    ask = {"model": "swarmrank", "messages": [{"role": "user", "content": QUESTION}]}
    assert client.post("/v1/chat/completions", json=ask).status_code == 200
    ledger = Ledger(db)
    head = ledger.head()
    assert head is not None
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger WHERE seq >= :seq"), {"seq": head.seq - 1})
    error = assert_openai_error(client.post("/v1/chat/completions", json=ask), 503, code="ledger_broken")
    assert error["message"].startswith(
        f"the ledger was cut after entry {head.seq - 2}: entries {head.seq - 1}–{head.seq} are gone, though this "
        f"process had verified the ledger up to entry {head.seq} (hash {head.hash})")
    assert f"`swarmrank ledger verify --head {head.hash}` shows it" in error["message"]
    assert "lists every problem" not in error["message"]  # it does not: the shorter chain verifies on its own
    policy = swarm.registry.policy
    assert ledger.verify(policy=policy).ok
    assert not ledger.verify(expected_head=head.hash, policy=policy).ok  # what the message says to run
