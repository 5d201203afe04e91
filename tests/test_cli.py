"""The CLI as a user runs it: a real process, real files, one-line errors and exit codes."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from helpers import run_cli

SCRIPTED = """
[swarm]
name = "cli-test"
[round]
schedule = "cluster"
judge_priors = { judge1 = 0.9 }   # a judge known to be reliable: trusted from the first round
[[nodes]]
id = "right"
backend = "scripted"
answer = "42"
roles = ["answer"]
[[nodes]]
id = "wrong1"
backend = "scripted"
answer = "41"
roles = ["answer"]
[[nodes]]
id = "wrong2"
backend = "scripted"
answer = "41"
roles = ["answer"]
[[nodes]]
id = "judge1"
backend = "scripted"
judge = "truth"
truth = "42"
roles = ["judge"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "swarm.toml"
    path.write_text(SCRIPTED)
    return path


def test_ask_json_has_the_documented_fields_and_the_round_is_stored(config, isolated_home):
    proc = run_cli("ask", "What is 17 + 25?", "--config", str(config), "--json", home=isolated_home, check=True)
    data = json.loads(proc.stdout)
    assert data["answer"] == "42"
    assert data["protocol"] == "peer-rank"
    assert {a["node"] for a in data["answers"]} == {"right", "wrong1", "wrong2"}
    assert all(set(a) >= {"node", "text", "excluded"} for a in data["answers"])
    assert [c["answer"] for c in data["candidates"]] == ["42", "41"]
    assert all(set(c) >= {"answer", "nodes", "strength"} for c in data["candidates"])
    assert {(j["first"], j["second"]) for j in data["judgments"]} == {(0, 1), (1, 0)}
    assert all(set(j) >= {"judge", "first", "second", "verdict", "reasoning"} for j in data["judgments"])
    assert data["cost"]["phases"]["answer"]["calls"] == 3
    assert data["cost"]["phases"]["judge"]["calls"] == 2

    listed = run_cli("rounds", "list", "--json", home=isolated_home, check=True)
    rounds = json.loads(listed.stdout)
    assert [r["round_id"] for r in rounds] == [data["round_id"]]
    shown = run_cli("rounds", "show", data["round_id"][:8], "--json", home=isolated_home, check=True)
    assert json.loads(shown.stdout) == data


def test_ask_rich_view_shows_answer_candidates_judgments_and_cost(config, isolated_home):
    proc = run_cli("ask", "What is 17 + 25?", "--config", str(config), "--protocol", "majority", home=isolated_home,
               check=True)
    out = proc.stdout
    assert "Answer: 41" in out
    for heading in ("Candidates", "Answers", "Cost"):
        assert heading in out
    assert "wrong1, wrong2" in out


def test_config_show_prints_the_embedded_default_as_valid_toml(isolated_home):
    proc = run_cli("config", "show", home=isolated_home, check=True)
    data = tomllib.loads(proc.stdout)
    assert data["swarm"]["protocol"] == "peer-rank"
    assert len(data["nodes"]) == 6


def test_nodes_checks_every_node_and_shows_its_key(config, isolated_home):
    proc = run_cli("nodes", "--config", str(config), "--json", home=isolated_home, check=True)
    rows = json.loads(proc.stdout)
    assert [r["id"] for r in rows] == ["right", "wrong1", "wrong2", "judge1"]
    assert all(r["check"]["ok"] for r in rows)
    keys = {r["id"]: r["key"] for r in rows}
    again = json.loads(run_cli("nodes", "--config", str(config), "--json", "--no-check", home=isolated_home,
                           check=True).stdout)
    assert {r["id"]: r["key"] for r in again} == keys  # identities are stable across processes


def test_nodes_exits_non_zero_when_a_node_fails_its_check(tmp_path, isolated_home):
    path = tmp_path / "bad.toml"
    path.write_text('[[nodes]]\nid = "dead"\nbackend = "scripted"\nfault = "crash"\n')
    proc = run_cli("nodes", "--config", str(path), home=isolated_home)
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["ask", "hi", "--protocol", "nope"], "unknown protocol 'nope'"),
    (["ask", "hi", "--config", "/does/not/exist.toml"], "does not exist"),
    (["ask", "  "], "the question is empty"),
    (["ask", "hi", "--type", "poem"], "unknown task type 'poem'"),
    (["rounds", "show", "ffffffffff"], "no round"),
])
def test_bad_input_gives_one_clear_line_and_exit_1(args, message, isolated_home, config):
    args = [a if a != "CONFIG" else str(config) for a in args]
    proc = run_cli(*args, home=isolated_home)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_broken_config_names_the_file_and_field(tmp_path, isolated_home):
    path = tmp_path / "broken.toml"
    path.write_text('[[nodes]]\nid = "x"\nbackend = "scripted"\ntemperature = 9\n')
    proc = run_cli("ask", "hi", "--config", str(path), home=isolated_home)
    assert proc.returncode == 1
    assert str(path) in proc.stderr and "temperature" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_endpoint_is_reported_per_node_not_as_a_crash(tmp_path, isolated_home):
    path = tmp_path / "remote.toml"
    path.write_text('[[nodes]]\nid = "remote"\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
                    'model = "m"\ntimeout = 2\n')
    proc = run_cli("ask", "What is 2 + 2?", "--config", str(path), "--json", home=isolated_home)
    assert proc.returncode == 1  # no usable answer
    # the error names the stored round, so that its full record can be looked up
    stored_id = json.loads(proc.stdout)["round_id"]
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: no node produced a usable answer (round {stored_id} (stored): error: cannot reach")
    assert run_cli("rounds", "show", stored_id, "--json", home=isolated_home, check=True)
    data = json.loads(proc.stdout)
    assert data["answer"] is None
    assert "cannot reach http://127.0.0.1:9/v1" in data["answers"][0]["excluded"]


def test_first_use_reports_the_keys_it_created_and_later_runs_do_not(config, isolated_home):
    first = run_cli("ask", "What is 17 + 25?", "--config", str(config), "--no-save", home=isolated_home, check=True)
    assert "created Ed25519 keys for right, wrong1, wrong2, judge1" in first.stderr
    second = run_cli("ask", "What is 17 + 25?", "--config", str(config), "--no-save", home=isolated_home, check=True)
    assert "created" not in second.stderr


def test_rounds_commands_read_the_database_a_config_names(tmp_path, isolated_home):
    db = tmp_path / "elsewhere.db"
    path = tmp_path / "swarm.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{db}"\n' + SCRIPTED)
    data = json.loads(run_cli("ask", "What is 17 + 25?", "--config", str(path), "--json", home=isolated_home,
                          check=True).stdout)
    assert db.exists()
    assert json.loads(run_cli("rounds", "list", "--json", home=isolated_home, check=True).stdout) == []
    listed = json.loads(run_cli("rounds", "list", "--config", str(path), "--json", home=isolated_home, check=True).stdout)
    assert [r["round_id"] for r in listed] == [data["round_id"]]
    shown = run_cli("rounds", "show", data["round_id"], "--config", str(path), "--json", home=isolated_home, check=True)
    assert json.loads(shown.stdout)["answer"] == "42"


EVAL_SWARM = """
[swarm]
name = "scripted-eval"
[round]
k = 2
rounds = 1
[[nodes]]
id = "a1"
backend = "scripted"
answer = "4"
roles = ["answer"]
[[nodes]]
id = "a2"
backend = "scripted"
answer = "A"
roles = ["answer"]
[[nodes]]
id = "j1"
backend = "scripted"
judge = "first"
roles = ["judge"]
"""


def test_eval_runs_a_suite_stores_it_and_a_rerun_is_answered_from_the_cache(tmp_path, isolated_home):
    path = tmp_path / "eval.toml"
    path.write_text(EVAL_SWARM)
    first = run_cli("eval", "run", "--suite", "tiny", "--protocols", "majority,peer-rank", "--config", str(path),
                "--json", home=isolated_home, check=True)
    data = json.loads(first.stdout)
    systems = {s["system"]: s for s in data["summary"]["systems"]}
    assert set(systems) == {"majority", "peer-rank", "node:a1", "node:a2"}
    from swarmrank.eval.datasets import suite

    assert all(s["accuracy"]["total"] == len(suite("tiny")) for s in systems.values())
    assert data["status"] == "done" and data["suite"] == "tiny"
    calls, hits = map(int, re.search(r"(\d+) model call\(s\), (\d+) answered from the cache", first.stderr).groups())
    assert calls > 0 and hits >= calls  # peer-rank's answers came from majority's cached fan-out
    second = run_cli("eval", "run", "--suite", "tiny", "--protocols", "majority,peer-rank", "--config", str(path),
                 "--json", home=isolated_home, check=True)
    assert "0 model call(s)" in second.stderr
    again = {s["system"]: s["accuracy"]["correct"] for s in json.loads(second.stdout)["summary"]["systems"]}
    assert again == {name: s["accuracy"]["correct"] for name, s in systems.items()}
    listed = json.loads(run_cli("eval", "list", "--json", home=isolated_home, check=True).stdout)
    assert len(listed) == 2
    shown = json.loads(run_cli("eval", "show", data["run_id"][:8], "--json", home=isolated_home, check=True).stdout)
    assert shown["summary"] == data["summary"]


def test_eval_rejects_an_unknown_suite_in_one_line(isolated_home):
    proc = run_cli("eval", "run", "--suite", "huge", home=isolated_home)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "huge" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_report_writes_markdown_and_self_contained_html_for_a_stored_run(tmp_path, isolated_home):
    path = tmp_path / "eval.toml"
    path.write_text(EVAL_SWARM)
    data = json.loads(run_cli("eval", "run", "--suite", "tiny", "--protocols", "peer-rank", "--config", str(path),
                          "--json", home=isolated_home, check=True).stdout)
    out = tmp_path / "report"
    again = run_cli("eval", "run", "--suite", "tiny", "--protocols", "peer-rank", "--config", str(path),
                "--report", str(tmp_path / "at-once"), home=isolated_home, check=True)
    at_once = (tmp_path / "at-once" / "report.md").read_text()
    assert "report.html" in again.stderr and re.search(r"^\| peer-rank \| \d+\.\d%", at_once, re.M)
    proc = run_cli("report", data["run_id"][:8], "--out", str(out), home=isolated_home, check=True)
    assert "report.html" in proc.stdout
    html = (out / "report.html").read_text()
    assert data["run_id"] in html and "peer-rank" in html and "https://" not in html
    assert (out / "report.md").read_text().count("node:a1") >= 1
    bad = run_cli("report", "zzzzzzzz", "--out", str(out), home=isolated_home)
    assert bad.returncode == 1 and "unknown eval run zzzzzzzz" in bad.stderr

    sim_out = tmp_path / "with-simulation"
    proc = run_cli("report", data["run_id"][:8], "--out", str(sim_out), "--simulate", "--sim-questions", "10",
               home=isolated_home, check=True)
    assert "(4 figures)" in proc.stdout
    md = (sim_out / "report.md").read_text()
    assert "(regime_map.png)" in md and "(size_curve.png)" in md
    assert "| correlated_errors \\ judge_discrimination | 0.5 | 0.6 | 0.7 | 0.8 | 0.9 | 1 |" in md


def test_simulate_shows_peer_rank_beating_majority_with_good_judges_and_correlated_errors(isolated_home):
    proc = run_cli("simulate", "--questions", "150", "--discrimination", "0.95", "--correlated", "0.8", "--json",
               home=isolated_home, check=True)
    data = json.loads(proc.stdout)
    peer, majority = data["protocols"]["peer-rank"], data["protocols"]["majority"]
    assert peer["accuracy"] > majority["accuracy"] + 0.15
    assert peer["judge_calls"] > 0 and majority["judge_calls"] == 0
    assert data["oracle"] >= peer["accuracy"]
    bad = run_cli("simulate", "--discrimination", "1.5", home=isolated_home)
    assert bad.returncode == 1 and bad.stderr.strip() == "error: --discrimination must be between 0 and 1, got 1.5"


def test_simulate_cluster_schedule_needs_far_fewer_judge_calls_than_fortytwo_at_equal_inputs(isolated_home):
    calls = {}
    for schedule in ("cluster", "fortytwo"):
        data = json.loads(run_cli("simulate", "-n", "60", "--correlated", "0.9", "--schedule", schedule, "--json",
                              home=isolated_home, check=True).stdout)
        calls[schedule] = data["protocols"]["peer-rank"]["judge_calls"]
    assert calls["cluster"] < calls["fortytwo"] / 5


def test_eval_resume_rebuilds_the_runs_own_suite_and_variants(tmp_path, isolated_home):
    path = tmp_path / "eval.toml"
    path.write_text(EVAL_SWARM)
    data = json.loads(run_cli("eval", "run", "--suite", "tiny", "--variants", "extraneous", "--protocols", "majority",
                          "--config", str(path), "--json", home=isolated_home, check=True).stdout)
    assert data["suite"] == "tiny|variants=extraneous"
    again = run_cli("eval", "run", "--resume", data["run_id"][:8], "--config", str(path), "--json",
                home=isolated_home, check=True)  # no --suite/--variants given: taken from the run
    assert "already done" in again.stderr
    assert json.loads(again.stdout)["summary"] == data["summary"]
    mixed = run_cli("eval", "run", "--resume", data["run_id"][:8], "--protocols", "council", "--limit", "2",
                    "--config", str(path), home=isolated_home)
    assert mixed.returncode == 1 and mixed.stderr.strip() == (
        "error: --resume finishes a run with the suite, protocols, variants and limit it began with: drop "
        "--protocols, --limit (or start a new run without --resume)")


# -- judge reliability: calibrate, show, mixed simulations ---------------------------------------------

CALIBRATION = """
[swarm]
name = "cal-test"
[[nodes]]
id = "right"
backend = "scripted"
accuracy = 1.0
roles = ["answer"]
[[nodes]]
id = "wrong"
backend = "scripted"
accuracy = 0.0
wrong = "1"
roles = ["answer"]
[[nodes]]
id = "good"
backend = "scripted"
judge = "truth"
judge_accuracy = 0.9
seed = 3
roles = ["judge"]
[[nodes]]
id = "lazy"
backend = "scripted"
judge = "first"
roles = ["judge"]
"""


def test_judges_calibrate_measures_each_judge_on_known_answers_and_a_rerun_is_free(tmp_path, isolated_home):
    path = tmp_path / "cal.toml"
    path.write_text(CALIBRATION)
    args = ("judges", "calibrate", "--config", str(path), "--suite", "rg:basic_arithmetic:easy:8", "--no-simulate")
    first = run_cli(*args, "--json", home=isolated_home, check=True)
    rows = {r["judge"]: r for r in json.loads(first.stdout)}
    assert rows["good"]["pairs"] == 8 and rows["lazy"]["pairs"] == 8
    assert rows["good"]["p_right"] >= 0.75 and rows["good"]["consistency"] >= 0.5
    assert rows["lazy"]["p_right"] == 0.5 and rows["lazy"]["consistency"] == 0.0 and rows["lazy"]["says_first"] == 1.0
    assert "model call(s), 0 from the cache" in first.stderr
    again = run_cli(*args, home=isolated_home, check=True)
    assert "0 model call(s)" in again.stderr
    assert "judge_priors = {" in again.stdout and '"good"' in again.stdout and '"lazy"' not in again.stdout.split(
        "judge_priors")[1]
    outsider = run_cli(*args, "--judge", "right", "--judge", "good", home=isolated_home, check=True)
    assert 'not a judge in this swarm: right (add "judge" to its roles' in outsider.stdout
    assert '"right"' not in outsider.stdout.split("judge_priors")[-1]


def test_judges_calibrate_refuses_bad_input_in_one_line(config, isolated_home):
    bad = run_cli("judges", "calibrate", "--config", str(config), "--style", "loud", home=isolated_home)
    assert bad.returncode == 1 and bad.stderr.strip() == ("error: unknown judging style 'loud' (known: compare, "
                                                          "reference, both)")
    missing = run_cli("judges", "calibrate", "--config", str(config), "--judge", "nobody", "--suite",
                      "rg:basic_arithmetic:easy:2", home=isolated_home)
    assert missing.returncode == 1 and "no node 'nobody'" in missing.stderr and "Traceback" not in missing.stderr


def test_judges_show_reads_what_the_swarm_learnt_from_its_stored_rounds(config, isolated_home):
    empty = json.loads(run_cli("judges", "show", "--config", str(config), "--json", home=isolated_home,
                               check=True).stdout)
    assert empty["rounds"] == 0 and empty["judges"]["judge1"]["rounds"] == 0
    for q in ("What is 17 + 25?", "What is 20 + 22?"):
        run_cli("ask", q, "--config", str(config), home=isolated_home, check=True)
    shown = json.loads(run_cli("judges", "show", "--config", str(config), "--json", home=isolated_home,
                               check=True).stdout)
    assert shown["rounds"] == 2 and shown["judges"]["judge1"]["rounds"] == pytest.approx(2, abs=0.01)
    assert shown["judges"]["judge1"]["pairs"] == pytest.approx(2, abs=0.01)
    # one judge with nobody to agree with: its declared prior (judge_priors) stands, capped by its consistency
    assert shown["judges"]["judge1"]["kappa"] == pytest.approx(empty["judges"]["judge1"]["kappa"], abs=0.05)
    assert 0 < shown["vote_prior"] <= 3


def test_simulate_takes_a_mixed_judge_pool_and_answerers_that_judge(isolated_home):
    pool = json.loads(run_cli("simulate", "-n", "80", "--judges", "2x0.95,5x0.5,3xfirst", "--judges-per-pair", "10",
                              "--correlated", "0.7", "--accuracy", "0.4", "-p", "peer-rank,peer-rank/legacy,majority",
                              "--json", home=isolated_home, check=True).stdout)
    acc = {name: p["accuracy"] for name, p in pool["protocols"].items()}
    assert acc["peer-rank"] > acc["peer-rank/legacy"] > acc["majority"]
    selfish = json.loads(run_cli("simulate", "-n", "60", "--self-judging", "--judges", "2x0.95,3x0.5,2xfirst",
                                 "--judges-per-pair", "4", "--correlated", "0.7", "--accuracy", "0.4", "--json",
                                 home=isolated_home, check=True).stdout)
    assert selfish["protocols"]["peer-rank"]["judge_calls"] > 0
    assert selfish["protocols"]["peer-rank"]["accuracy"] > selfish["protocols"]["majority"]["accuracy"]
    bad = run_cli("simulate", "--judges", "2xwise", home=isolated_home)
    assert bad.returncode == 1 and "unknown judge kind 'wise'" in bad.stderr
    wrong_count = run_cli("simulate", "--self-judging", "--judges", "2x0.9", home=isolated_home)
    assert wrong_count.returncode == 1 and "one kind per answerer" in wrong_count.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--accuracy", "2"], "--accuracy must be between 0 and 1, got 2"),
    (["--spread", "3"], "--spread must be between 0 and 2, got 3"),
    (["--correlated", "-0.1"], "--correlated must be between 0 and 1, got -0.1"),
    (["--adversaries", "1.5"], "--adversaries must be between 0 and 1, got 1.5"),
    (["--self-bias", "2"], "--self-bias must be between 0 and 1, got 2"),
    (["--judges", "2x1.5"], "--judges: judge discrimination '1.5' is outside [0, 1]"),
])
def test_simulate_errors_name_the_flag_not_the_field_it_sets(args, message, isolated_home):
    bad = run_cli("simulate", "-n", "1", *args, home=isolated_home)
    assert bad.returncode == 1 and bad.stderr.strip() == f"error: {message}"


def test_help_lists_what_the_registries_hold(isolated_home):
    """Protocols, task types and suites in --help come from their registries, so they cannot go stale."""
    from swarmrank.eval.datasets import suite_names
    from swarmrank.protocols import protocol_names
    from swarmrank.tasks import TaskType

    def words(*command: str) -> str:  # without whitespace: the help wraps lines after a hyphen too
        return "".join(run_cli(*command, "--help", home=isolated_home, check=True).stdout.split())

    def one_of(names: list[str]) -> str:
        return "".join(f"{', '.join(names[:-1])} or {names[-1]}".split())

    assert len(protocol_names()) >= 10 and {"synthesis", "moa", "llm-council"} <= set(protocol_names())
    assert {"code", "json"} <= {t.value for t in TaskType} and "humaneval" in suite_names()
    ask = words("ask")
    assert one_of(protocol_names()) in ask and one_of([t.value for t in TaskType]) in ask
    assert "{protocols}" not in ask and "{task_types}" not in ask
    for command in (("eval", "run"), ("judges", "calibrate")):
        assert one_of(suite_names()) in words(*command)
    top = words()
    assert "Bradley–Terry" not in top and "reliability" in top


def test_every_command_but_protocols_and_simulate_takes_config():
    """What the README's CLI section says."""
    import typer

    from swarmrank.cli import app

    root = typer.main.get_command(app)
    ctx = root.make_context("swarmrank", ["--help"], resilient_parsing=True)

    def commands(group, path):
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            if hasattr(sub, "list_commands"):
                yield from commands(sub, (*path, name))
            else:
                yield " ".join((*path, name)), sub

    without = {name for name, cmd in commands(root, ()) if not any("--config" in p.opts for p in cmd.params)}
    assert without == {"protocols", "simulate"}
