"""Small things a new user trips over, one test each: stdin and --system for ask, brackets in --help,
the API-key hint, ask_sync inside a running loop, majority ties, exact scripted answer tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.result import RoundResult

from helpers import ask, assert_openai_error, run_cli, scripted_swarm

ECHO = """
[swarm]
name = "papercuts"
[[nodes]]
id = "a"
backend = "scripted"
answers = { "3 + 4" = "7", "13 + 4" = "17", "*" = "0" }
roles = ["answer"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "swarm.toml"
    path.write_text(ECHO)
    return path


def test_ask_dash_reads_the_question_from_stdin(config, isolated_home):
    proc = run_cli("ask", "-", "--config", str(config), "--json", "--no-save", home=isolated_home,
                   stdin="What is 13 + 4?\n", check=True)
    data = json.loads(proc.stdout)
    assert data["question"] == "What is 13 + 4?" and data["answer"] == "17"


def test_ask_dash_with_empty_stdin_is_one_line(config, isolated_home):
    proc = run_cli("ask", "-", "--config", str(config), home=isolated_home, stdin="")
    assert proc.returncode == 1 and proc.stderr.strip() == "error: the question is empty"


def test_ask_system_goes_before_the_question_and_the_type_comes_from_the_question(config, isolated_home):
    proc = run_cli("ask", "What is 3 + 4?", "--system", "Be brief. Reply like a pirate.", "--config", str(config),
                   "--json", "--no-save", home=isolated_home, check=True)
    data = json.loads(proc.stdout)
    assert data["question"] == "Be brief. Reply like a pirate.\n\nQuestion: What is 3 + 4?"
    assert data["task_type"] == "number" and data["answer"] == "7"


@pytest.mark.parametrize(("command", "words"), [
    (["node", "admit", "--help"], "[trust] deposit"),
    (["ask", "--help"], "[executor] kind"),
    (["eval", "run", "--help"], "[store]"),
    (["node", "serve", "--help"], "a [models.NAME] entry"),
    (["node", "serve", "--help"], "its [[nodes]] options"),
])
def test_help_shows_config_section_names_in_brackets(command, words, isolated_home):
    proc = run_cli(*command, home=isolated_home, check=True)
    assert words in " ".join(proc.stdout.split())
    assert "\\[" not in proc.stdout  # no escape shows


def test_a_key_from_another_database_is_refused_with_a_hint(api, store, tmp_path):
    from swarmrank.server import create_key
    from swarmrank.store import Store

    with Store(f"sqlite:///{tmp_path / 'other.db'}") as other:
        foreign = create_key(other, "elsewhere")[0]
    http = api(scripted_swarm(["42"]), store=store)
    response = http.post("/v1/chat/completions", json=ask(), headers={"Authorization": f"Bearer {foreign}"})
    error = assert_openai_error(response, 401, code="invalid_api_key")
    assert "Keys belong to one database" in error["message"] and "--config or SWARMRANK_DB" in error["message"]


def test_keys_create_says_which_database_holds_the_key(config, isolated_home):
    proc = run_cli("keys", "create", "demo", "--config", str(config), home=isolated_home, check=True)
    assert f"in sqlite:///{isolated_home}/swarmrank.db" in " ".join(proc.stderr.split())


async def test_ask_sync_works_inside_a_running_event_loop():
    swarm = scripted_swarm(["42", "42"])
    result = swarm.ask_sync("What is 40 + 2?", protocol="majority")  # a notebook cell runs inside a loop
    assert isinstance(result, RoundResult) and result.answer == "42"


def test_ask_sync_without_a_loop_still_works():
    assert scripted_swarm(["7"]).ask_sync("What is 3 + 4?", protocol="majority").answer == "7"


async def test_a_majority_tie_is_noted_and_broken_by_node_order():
    swarm = scripted_swarm(["41", "42", "42", "41"])
    result = await swarm.ask("What is 40 + 2?", protocol="majority")
    assert result.answer == "41"  # a0 gave 41 first
    assert [c.votes for c in result.candidates] == [2.0, 2.0]
    assert any(n.startswith("tie: '41', '42' have 2 vote(s) each; broken by node order for '41' (first given, by a0)")
               for n in result.notes)
    swapped = await scripted_swarm(["42", "41", "41", "42"]).ask("What is 40 + 2?", protocol="majority")
    assert swapped.answer == "42"


async def test_a_clear_majority_notes_no_tie():
    result = await scripted_swarm(["42", "42", "41"]).ask("What is 40 + 2?", protocol="majority")
    assert result.answer == "42" and not any(n.startswith("tie") for n in result.notes)


@pytest.mark.parametrize(("question", "expected"), [
    ("What is 3 + 4?", "7"), ("What is 13 + 4?", "17"), ("3 + 4", "7"), ("What is 3 + 45?", "0"),
    ("what is   3 +  4?", "7"), ("What is 23 + 4?", "0"),
])
def test_scripted_answer_tables_match_whole_words_not_substrings(question, expected):
    table = ScriptedBackend(answers={"3 + 4": "7", "13 + 4": "17", "*": "0"})
    assert table.own_answer(question) == expected


def test_a_scripted_key_equal_to_the_whole_question_wins_over_a_longer_contained_one():
    table = ScriptedBackend(answers={"What is 2 + 2? Explain.": "long", "What is 2 + 2?": "short"})
    assert table.own_answer("what is 2 + 2?") == "short"


def one_node_config(tmp_path: Path, extra: str = "") -> Path:
    """A swarm of one scripted node ``a1``, with ``extra`` lines in its entry."""
    path = tmp_path / "one.toml"
    path.write_text(f'[swarm]\nname = "s"\n[models.m]\nbackend = "scripted"\n[[nodes]]\nid = "a1"\nmodel = "m"\n{extra}\n')
    return path


@pytest.mark.parametrize("option, message", [
    ('answers = "x"', "bad scripted node option answers: Input should be a valid dictionary"),
    ('latency = "slow"', "bad scripted node option latency: Input should be a valid number"),
    ('fault_on = "answer"', "bad scripted node option fault_on: Input should be a valid list"),
    ('accuracy = "high"', "bad scripted node option accuracy: Input should be a valid number"),
])
def test_a_scripted_option_of_the_wrong_type_is_one_line_before_any_round(tmp_path, isolated_home, option, message):
    path = one_node_config(tmp_path, option)
    proc = run_cli("ask", "What is 1 + 1?", "--config", str(path), home=isolated_home)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", [["serve"], ["node", "serve", "--node", "a1"]])
def test_an_unknown_log_level_is_a_usage_error_not_a_uvicorn_traceback(isolated_home, command):
    proc = run_cli(*command, "--log-level", "nope", home=isolated_home)
    assert proc.returncode == 2 and "'nope' is not one of" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("extra", "message"), [
    ('backend = "nope"', "node 'a1': unknown backend 'nope'"),
    ('judge = "banana"', "node 'a1': scripted judge rule must be one of"),
    ("bogus = 1", "node 'a1': unknown scripted option(s): bogus"),
])
def test_config_show_rejects_what_a_round_would_reject(tmp_path, isolated_home, extra, message):
    path = one_node_config(tmp_path, extra)
    proc = run_cli("config", "show", "--config", str(path), home=isolated_home)
    assert proc.returncode == 1 and message in proc.stderr and proc.stdout == ""
    assert not (isolated_home / "keys").exists()  # a look at a config makes no key


def test_a_byte_that_is_not_utf8_on_stdin_is_named_as_such(tmp_path, isolated_home):
    path = one_node_config(tmp_path)
    env = {**os.environ, "SWARMRANK_HOME": str(isolated_home)}
    proc = subprocess.run([sys.executable, "-m", "swarmrank", "ask", "-", "--config", str(path)], env=env,
                          input=b"What is 1+1?\xff", capture_output=True)
    assert proc.returncode == 1
    assert "the byte 0xff, not UTF-8) at position 12" in proc.stderr.decode()
