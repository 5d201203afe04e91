"""HumanEval (run in the sandbox) and the open-ended TruthfulQA items (scored by meaning) as eval sets."""

from __future__ import annotations

import pytest

from swarmrank.errors import ConfigError
from swarmrank.eval.datasets import load, suite
from swarmrank.eval.runner import run_eval
from swarmrank.eval.store import EvalRuns
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm

from helpers import node

RIGHT = ("```python\ndef has_close_elements(numbers, threshold):\n"
         "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```")
ALSO_RIGHT = ("```python\ndef has_close_elements(numbers, threshold):\n    s = sorted(numbers)\n"
              "    return any(y - x < threshold for x, y in zip(s, s[1:]))\n```")
WRONG = "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"


def test_humaneval_has_164_problems_and_fixed_seeded_slices():
    everything = load("he:all")
    assert len(everything) == 164 == len({i.id for i in everything})
    assert everything[0].id == "HumanEval/0" and everything[0].task_type == "code"
    assert [i.id for i in load("he:10")] == [i.id for i in load("he:10")]
    assert [i.id for i in load("he:4")] == [i.id for i in load("he:10")][:4]
    assert [i.id for i in suite("humaneval-tiny")] == [i.id for i in load("he:4")]
    with pytest.raises(ConfigError, match="expected 'he:all'"):
        load("he:ten")


def test_humaneval_scores_by_running_the_problems_tests():
    item = load("he:all")[0]
    assert item.score(item.gold)
    assert item.score(RIGHT) and item.score(ALSO_RIGHT)
    assert not item.score(WRONG)
    assert not item.score("I do not know.")
    # a reply that only continues the prompt's code (a function body) is run under its signature
    assert item.score("    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[:i])")


def test_every_tiny_humaneval_reference_passes_and_an_empty_function_fails():
    for item in suite("humaneval-tiny"):
        assert item.score(item.gold), item.id
        assert not item.score(f"def {item.entry}(*args):\n    return None\n"), item.id


def test_open_ended_items_are_scored_by_meaning_against_true_and_false_references():
    items = suite("open-tiny")
    assert len(items) == 4 and all(i.task_type == "free" for i in items)
    assert all(int(i.id.split("/")[1]) % 2 == 1 for i in load("tqa:50"))  # even ones calibrate thresholds
    for item in items:
        assert item.score(item.gold)
        assert item.score(item.correct[-1])
        assert not item.score(item.incorrect[0])
        assert not item.score("Bananas are rich in potassium.")  # not about the question at all
    with pytest.raises(ConfigError, match="expected 'tqa:<count>"):
        load("tqa:x")


async def test_an_eval_run_scores_protocols_on_cluster_answers_and_nodes_on_their_own_programs(store):
    item = load("he:all")[0]
    nodes = [node("right", {"answer"}, answers={"*": RIGHT}), node("also", {"answer"}, answers={"*": ALSO_RIGHT}),
             node("wrong", {"answer"}, answers={"*": WRONG})]
    swarm = Swarm(nodes, options=RoundOptions(), store=store)
    run = await run_eval(swarm, [item], ["majority"], store=store, suite="he-test")
    rows = {r["system"]: r for r in EvalRuns(store).results(run.run_id)}
    assert rows["majority"]["correct"] is True or rows["majority"]["correct"] == 1
    assert {s: bool(r["correct"]) for s, r in rows.items() if s.startswith("node:")} == {
        "node:right": True, "node:also": True, "node:wrong": False}
    assert rows["node:also"]["answer"].startswith("def has_close_elements(numbers, threshold):\n    s = sorted")


async def test_the_tiny_humaneval_slice_runs_every_protocol_kind_end_to_end(store):
    items = suite("humaneval-tiny")
    right = {item.entry: f"```python\n{item.gold}\n```" for item in items}
    stub = {item.entry: f"```python\ndef {item.entry}(*args):\n    return None\n```" for item in items}
    nodes = [node("right", {"answer"}, answers=right), node("right2", {"answer"}, answers=right),
             node("stub", {"answer"}, answers=stub),
             node("judge", {"judge"}, judge="first")]
    # the gold programs are long: room enough that a scripted reply is not cut off at its token limit
    swarm = Swarm(nodes, options=RoundOptions(synthesizer="right", answer_max_tokens=1024), store=store)
    run = await run_eval(swarm, items, ["peer-rank", "synthesis", "llm-council"], store=store,
                         suite="humaneval-tiny")
    rows = EvalRuns(store).results(run.run_id)
    by = {}
    for row in rows:
        by.setdefault(row["system"], []).append(bool(row["correct"]))
    assert by["node:right"] == [True] * 4 and by["node:stub"] == [False] * 4
    assert by["majority"] == [True] * 4  # the two right programs are one cluster: 2 votes to 1
    assert by["synthesis"] == [True] * 4  # the synthesizer rewrites the right program
    assert len(by["llm-council"]) == 4
