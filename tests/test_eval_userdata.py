"""Your own data: ``eval run --suite FILE`` (JSONL, CSV), dataset specs on the command line, ``--limit``,
``--resume`` for all of them, Ctrl-C with a resume hint, run status in ``eval list``, and dollars."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swarmrank.errors import ConfigError
from swarmrank.eval.datasets import SuiteRef, load_file
from swarmrank.eval.injection import expand
from swarmrank.eval.store import EvalRuns
from swarmrank.store import Store

from helpers import run_cli

SWARM = """
[swarm]
name = "userdata"
[models.cheap]
backend = "scripted"
[models.dear]
backend = "scripted"
[[nodes]]
id = "a1"
model = "cheap"
answers = {{ "2 + 2" = "4", "capital of France" = "Paris", "*" = "B" }}
roles = ["answer"]
latency = {latency}
[[nodes]]
id = "a2"
model = "dear"
answers = {{ "2 + 2" = "5", "capital of France" = "Paris", "*" = "B" }}
roles = ["answer"]
latency = {latency}
[[nodes]]
id = "j1"
backend = "scripted"
judge = "first"
roles = ["judge"]
[prices.cheap]
input = 1.0
output = 2.0
[prices.dear]
input = 10.0
output = 20.0
"""

JSONL = [
    {"id": "sum", "prompt": "What is 2 + 2?", "answer": 4, "type": "number"},
    {"id": "city", "prompt": "What is the capital of France?", "answer": "Paris", "type": "short"},
    {"prompt": "Which is larger?\nA) 3\nB) 9", "answer": "B"},
]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "swarm.toml"
    path.write_text(SWARM.format(latency=0.0))
    return path


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in JSONL) + "\n\n")
    return path


def test_a_jsonl_file_becomes_typed_items_with_normalised_gold(jsonl):
    items = load_file(jsonl)
    assert [i.id for i in items] == ["mine/sum", "mine/city", "mine/3"]
    assert [(i.task_type, i.gold) for i in items] == [("number", "4"), ("short", "paris"), ("mc", "B")]
    assert items[2].score("Answer: B") and not items[2].score("A")


def test_a_csv_file_reads_the_same_columns(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('id,prompt,answer,type\nsum,What is 2 + 2?,4,number\ncity,"What is the capital of France?",'
                    'Paris,\n')
    items = load_file(path)
    assert [(i.id, i.task_type, i.gold) for i in items] == [("mine/sum", "number", "4"), ("mine/city", "short",
                                                                                         "paris")]


@pytest.mark.parametrize(("content", "words"), [
    ('{"prompt": "What is 2 + 2?"}\n', "mine.jsonl line 1: missing 'answer'"),
    ('{"answer": "4"}\n', "line 1: missing 'prompt'"),
    ('{"prompt": "What is 2 + 2?", "answer": "4"}\nnot json\n', "mine.jsonl line 2: not JSON"),
    ('[1, 2]\n', "line 1: expected a JSON object"),
    ('{"id": 1, "prompt": "a?", "answer": "x"}\n{"id": 1, "prompt": "b?", "answer": "y"}\n', "appears twice"),
    ('{"prompt": "What is 2 + 2?", "answer": "four", "type": "number"}\n', "does not read back as a number"),
    ('{"prompt": "Pick\\nA) x\\nB) y", "answer": "C", "type": "mc"}\n', "does not read back as a mc answer"),
    ('{"prompt": "What?", "answer": "x", "type": "essay"}\n', "unknown task type 'essay'"),
    ("\n\n", "has no items"),
])
def test_a_bad_data_file_is_one_line_naming_the_line(tmp_path, content, words):
    path = tmp_path / "mine.jsonl"
    path.write_text(content)
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_file(path)


def test_suite_refs_record_what_to_resume(jsonl):
    ref = SuiteRef.parse(str(jsonl), limit=2, variants=["extraneous"])
    assert ref.label().startswith(f"file:{jsonl.resolve()}@sha256=") and ref.label().endswith("|limit=2|variants=extraneous")
    again = SuiteRef.from_label(ref.label())
    assert again == ref and [i.id for i in expand(again.items(), again.variants)] == [
        "mine/sum", "mine/city", "mine/sum#extraneous", "mine/city#extraneous"]
    assert SuiteRef.from_label("tiny+extraneous") == SuiteRef("tiny", None, ("extraneous",))  # older runs
    spec = SuiteRef.parse("rg:basic_arithmetic:easy:3, rg:letter_counting:easy:2", limit=4)
    assert spec.source == "rg:basic_arithmetic:easy:3,rg:letter_counting:easy:2"
    assert [i.id.split("/")[1] for i in spec.items()] == ["basic_arithmetic", "letter_counting"] * 2
    jsonl.write_text(jsonl.read_text().replace("Paris", "Lyon"))
    with pytest.raises(ConfigError, match="changed since this run began"):
        again.items()


def test_an_unknown_suite_says_what_a_suite_can_be():
    with pytest.raises(ConfigError, match=r"unknown eval suite 'huge' \(known: tiny, small, full, humaneval.*; or a .jsonl/.csv"):
        SuiteRef.parse("huge")


def test_eval_run_on_a_file_with_limit_resume_and_dollars(config, jsonl, isolated_home):
    data = json.loads(run_cli("eval", "run", "--suite", str(jsonl), "--limit", "2", "--protocols", "majority",
                              "--config", str(config), "--json", home=isolated_home, check=True).stdout)
    systems = {s["system"]: s for s in data["summary"]["systems"]}
    assert data["items"] == 2 and systems["majority"]["accuracy"]["total"] == 2
    assert systems["node:a1"]["accuracy"]["correct"] == 2 and systems["node:a2"]["accuracy"]["correct"] == 1
    # dollars from the price table: per node by its own price, per protocol the whole round
    a1, a2, majority = systems["node:a1"], systems["node:a2"], systems["majority"]
    assert a1["dollars"] == pytest.approx((a1["prompt_tokens"] * 1 + a1["completion_tokens"] * 2) / 1e6)
    assert a2["dollars"] == pytest.approx((a2["prompt_tokens"] * 10 + a2["completion_tokens"] * 20) / 1e6)
    assert majority["dollars"] == pytest.approx(a1["dollars"] + a2["dollars"])
    assert majority["total_dollars"] == pytest.approx(2 * majority["dollars"])
    table = run_cli("eval", "show", data["run_id"][:8], "--config", str(config), home=isolated_home, check=True)
    assert "$/q" in table.stdout and "$ total" in table.stdout
    again = run_cli("eval", "run", "--resume", data["run_id"][:8], "--config", str(config), "--json",
                    home=isolated_home, check=True)
    assert "2 item(s), 2 already done" in again.stderr


def test_eval_run_takes_a_dataset_spec(config, isolated_home):
    data = json.loads(run_cli("eval", "run", "--suite", "rg:basic_arithmetic:easy:3", "--protocols", "majority",
                              "--config", str(config), "--json", home=isolated_home, check=True).stdout)
    assert data["suite"] == "rg:basic_arithmetic:easy:3" and data["summary"]["items"] == 3


def test_ctrl_c_marks_the_run_interrupted_prints_how_to_resume_and_resume_finishes_it(tmp_path, jsonl,
                                                                                     isolated_home):
    config = tmp_path / "slow.toml"
    config.write_text(SWARM.format(latency=0.4))
    many = tmp_path / "many.jsonl"
    # 40 items one at a time, each at least 0.4 s: the run cannot finish in the moment between the first
    # saved item and the signal, however loaded the machine
    many.write_text("\n".join(json.dumps({"id": i, "prompt": f"What is {i} + 0?", "answer": i}) for i in range(40)))
    env = {**os.environ, "SWARMRANK_HOME": str(isolated_home), "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "swarmrank", "eval", "run", "--suite", str(many), "--protocols",
                             "majority", "--concurrency", "1", "--config", str(config)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        done = 0
        while done < 1:  # wait until an item is saved, then press Ctrl-C
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
            db = isolated_home / "swarmrank.db"
            if db.exists():
                with Store(f"sqlite:///{db}") as store:
                    runs = EvalRuns(store).recent()
                    done = runs[0]["done"] if runs else 0
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    run_id = runs[0]["run_id"]
    lines = [line for line in stderr.splitlines() if "interrupted after" in line]
    assert len(lines) == 1 and "Traceback" not in stderr
    assert lines[0].startswith(f"eval {run_id[:12]} interrupted after ")
    assert lines[0].endswith(f"of 40 item(s); resume with: swarmrank eval run --resume {run_id[:12]} --config {config}")
    listed = json.loads(run_cli("eval", "list", "--json", home=isolated_home, check=True).stdout)
    assert listed[0]["status"] == "interrupted" and 1 <= listed[0]["done"] < 40
    table = run_cli("eval", "list", home=isolated_home, check=True).stdout
    assert "interrupted" in table and f"{listed[0]['done']}/40" in table
    config.write_text(SWARM.format(latency=0.0))  # the same swarm, faster: the cache key ignores latency
    resumed = run_cli("eval", "run", "--resume", run_id[:12], "--config", str(config), "--json", home=isolated_home,
                      check=True)
    assert json.loads(resumed.stdout)["status"] == "done"
    assert json.loads(resumed.stdout)["summary"]["items"] == 40


@pytest.mark.parametrize("text", ["rg:basic_arithmetic:easy:3,mine.jsonl", "rg:basic_arithmetic:easy:3,tiny"])
def test_a_suite_that_mixes_specs_with_a_file_or_a_name_says_so(text):
    with pytest.raises(ConfigError, match=r"mixes kinds: give one suite name, one .jsonl/.csv file, or"):
        SuiteRef.parse(text)


def test_a_directory_given_as_a_config_or_a_data_file_is_not_called_missing(tmp_path):
    from swarmrank.config import load_config

    with pytest.raises(ConfigError, match="is not a file"):
        load_config(tmp_path)
    folder = tmp_path / "data.jsonl"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is not a file"):
        load_file(folder)
