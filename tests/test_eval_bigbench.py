"""Tests for swarmrank.eval.bigbench: BIG-bench items read from the bigbench package's task files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from fractions import Fraction

import pytest

from swarmrank.errors import ConfigError
from swarmrank.eval import bigbench, datasets
from swarmrank.eval.datasets import EvalItem, load, suite, suite_specs
from swarmrank.tasks import Task, TaskType, detect_task_type, mc_options

_TASKS = ("truthful_qa", "strategyqa", "logical_deduction/three_objects", "logical_deduction/five_objects",
          "logical_deduction/seven_objects", "arithmetic/2_digit_addition", "arithmetic/3_digit_multiplication",
          "arithmetic/4_digit_division")
_OPTION = re.compile(r"^([A-J])\) (.*)$", re.MULTILINE)


def _task_file(relative: str) -> dict:
    return json.loads((bigbench.tasks_root() / relative).read_text(encoding="utf-8"))


def _options(item: EvalItem) -> dict[str, str]:
    return dict(_OPTION.findall(item.prompt))


def _ws(text: str) -> str:
    """Whitespace collapsed, as the loader writes option lines (the files have a few double spaces)."""
    return " ".join(text.split())


def _index(item: EvalItem) -> int:
    return int(item.id.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def pools() -> dict[str, list[EvalItem]]:
    """Every usable item of each task (the whole file, in a seeded order)."""
    return {name: load(f"bb:{name}:{len(bigbench._usable(name))}") for name in _TASKS}


# --- locating the package ---------------------------------------------------------------------------

def test_a_fresh_process_with_another_hash_seed_gets_the_same_items_without_importing_bigbench():
    # the task files are read as data: neither bigbench's code nor TensorFlow is imported
    code = ("import json, sys\nfrom swarmrank.eval.datasets import load\n"
            "items = [[i.id, i.prompt, i.gold] for n in _NAMES for i in load(f'bb:{n}:10')]\n"
            "mods = sorted(m for m in sys.modules if m.split('.')[0] in ('bigbench', 'tensorflow'))\n"
            "print(json.dumps([items, mods]))").replace("_NAMES", repr(_TASKS))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                          env={**os.environ, "PYTHONHASHSEED": "777"})
    items, modules = json.loads(proc.stdout)
    assert modules == []
    assert items == [[i.id, i.prompt, i.gold] for n in _TASKS for i in load(f"bb:{n}:10")]
    assert (bigbench.tasks_root() / "truthful_qa" / "task_mc.json").is_file()


def test_missing_task_files_are_a_one_line_config_error_saying_how_to_get_them(monkeypatch, tmp_path):
    real = bigbench.importlib.util.find_spec
    monkeypatch.delenv("SWARMRANK_BIGBENCH_DIR", raising=False)
    monkeypatch.setattr(bigbench.sys, "prefix", str(tmp_path))  # no extracted task files there
    monkeypatch.setattr(bigbench.importlib.util, "find_spec",
                        lambda name, *a: None if name == "bigbench" else real(name, *a))
    bigbench._usable.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"run scripts/setup") as info:
            load("bb:strategyqa:2")
    finally:
        bigbench._usable.cache_clear()
    assert "\n" not in str(info.value)


def test_the_task_folder_can_be_given_by_environment(monkeypatch, tmp_path):
    real_root = bigbench.tasks_root()
    monkeypatch.setenv("SWARMRANK_BIGBENCH_DIR", str(real_root))
    assert bigbench.tasks_root() == real_root
    monkeypatch.setenv("SWARMRANK_BIGBENCH_DIR", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="SWARMRANK_BIGBENCH_DIR=.* is not a folder"):
        bigbench.tasks_root()


def test_another_installed_bigbench_version_is_refused(monkeypatch, tmp_path):
    import importlib.metadata
    import types

    (tmp_path / "pkg" / "benchmark_tasks").mkdir(parents=True)
    monkeypatch.delenv("SWARMRANK_BIGBENCH_DIR", raising=False)
    monkeypatch.setattr(bigbench.sys, "prefix", str(tmp_path))
    fake = types.SimpleNamespace(submodule_search_locations=[str(tmp_path / "pkg")])
    real = bigbench.importlib.util.find_spec
    monkeypatch.setattr(bigbench.importlib.util, "find_spec",
                        lambda name, *a: fake if name == "bigbench" else real(name, *a))
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9")
    with pytest.raises(ConfigError, match=r"9\.9\.9.*1\.0\.0"):
        bigbench.tasks_root()


# --- determinism and ids ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", _TASKS)
def test_loading_twice_gives_the_same_items_and_a_smaller_count_is_a_prefix(name):
    assert load(f"bb:{name}:8") == load(f"bb:{name}:8")
    assert load(f"bb:{name}:3") == load(f"bb:{name}:8")[:3]


def test_ids_name_the_task_and_the_example_index_and_are_unique(pools):
    for name, items in pools.items():
        assert len({i.id for i in items}) == len(items)
        assert len({i.prompt for i in items}) == len(items)
        for item in items:
            assert re.fullmatch(rf"bb/{re.escape(name)}/\d+", item.id), item.id
            assert item.source == f"bigbench/{name}"
            assert item.difficulty in ("easy", "medium", "hard")


def test_a_seed_draws_other_items_but_an_id_always_names_the_same_prompt():
    default, seeded = load("bb:truthful_qa:10"), load("bb:truthful_qa:10:7")
    assert [i.id for i in default] != [i.id for i in seeded]
    everything = {i.id: i for i in load("bb:truthful_qa:299")}
    assert all(everything[i.id] == i for i in default + seeded)


def test_loading_prints_and_warns_nothing(capfd):
    bigbench._usable.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in _TASKS:
            load(f"bb:{name}:2")
    assert (*capfd.readouterr(), caught) == ("", "", [])


# --- gold answers ----------------------------------------------------------------------------------------

def test_mc_prompts_are_detected_as_mc_with_the_gold_letter_among_the_options(pools):
    for items in pools.values():
        for item in (i for i in items if i.task_type == "mc"):
            assert detect_task_type(item.prompt) is TaskType.MC, item.id
            options = mc_options(item.prompt)
            assert options == list("ABCDEFGHIJ"[: len(options)]) and len(options) == len(_options(item))
            assert item.gold in options
            assert Task.create(item.prompt, "mc").extract(f"Answer: {item.gold}") == item.gold


def test_truthful_qa_gold_text_is_the_option_with_score_1_in_task_mc_json(pools):
    examples = _task_file("truthful_qa/task_mc.json")["examples"]
    items = pools["truthful_qa"]
    assert len(items) == len(examples) == 299
    for item in items:
        example = examples[_index(item)]
        assert item.prompt.startswith(example["input"].strip() + "\n")
        (best,) = [text for text, score in example["target_scores"].items() if score == 1]
        assert _options(item)[item.gold] == _ws(best)
        assert sorted(_options(item).values()) == sorted(map(_ws, example["target_scores"]))


def test_truthful_qa_options_are_shuffled_so_the_gold_letter_varies(pools):
    golds = [i.gold for i in pools["truthful_qa"]]
    assert golds.count("A") < 0.5 * len(golds)
    assert {"A", "B", "C", "D"} <= set(golds)


def test_strategyqa_is_yes_or_no_with_the_file_labels(pools):
    examples = _task_file("strategyqa/task.json")["examples"]
    items = pools["strategyqa"]
    assert len(items) >= 2280
    for item in items:
        example = examples[_index(item)]
        assert item.prompt == f"{example['input'].strip()}\nA) Yes\nB) No"
        assert item.gold == ("A" if example["target_scores"]["Yes"] == 1 else "B")
    golds = [i.gold for i in items]
    assert 0.4 < golds.count("A") / len(golds) < 0.6


@pytest.mark.parametrize(("name", "objects"), [("logical_deduction/three_objects", 3),
                                               ("logical_deduction/five_objects", 5),
                                               ("logical_deduction/seven_objects", 7)])
def test_logical_deduction_keeps_the_files_options_and_gold(pools, name, objects):
    examples = _task_file(f"{name}/task.json")["examples"]
    for item in pools[name]:
        example = examples[_index(item)]
        assert example["input"].strip() in item.prompt and "Which of the following is true?" in item.prompt
        assert list(_options(item).values()) == [_ws(t) for t in example["target_scores"]]
        assert {_ws(t): v for t, v in example["target_scores"].items()}[_options(item)[item.gold]] == 1
        assert len(_options(item)) == objects
    assert {i.gold for i in pools[name]} == set("ABCDEFG"[:objects])


_OPS = {"plus": lambda a, b: Fraction(a + b), "minus": lambda a, b: Fraction(a - b),
        "times": lambda a, b: Fraction(a * b), "divided by": lambda a, b: Fraction(a, b)}


@pytest.mark.parametrize("name", ["arithmetic/2_digit_addition", "arithmetic/3_digit_multiplication",
                                  "arithmetic/4_digit_division"])
def test_arithmetic_golds_are_the_recomputed_value(pools, name):
    items = pools[name]
    assert len(items) >= 200
    for item in items:
        assert item.task_type == "number"
        a, op, b = re.fullmatch(r"What is (-?\d+) (plus|minus|times|divided by) (-?\d+)\?", item.prompt).groups()
        assert _OPS[op](int(a), int(b)) == Fraction(item.gold), item.id
        assert item.score(f"So the answer is {item.gold}.") and not item.score(f"Answer: {int(item.gold) + 1}")


def test_arithmetic_skips_a_target_that_does_not_recompute():
    assert bigbench._arithmetic({}, {"input": "What is 2 plus 2?", "target": "5"}, "x") is None
    assert bigbench._arithmetic({}, {"input": "What is 7 divided by 2?", "target": "3"}, "x") is None
    kept = bigbench._arithmetic({}, {"input": "What is 12 minus 20?", "target": "-8"}, "x")
    assert kept == ("What is 12 minus 20?", "-8")


def test_mc_scoring_accepts_the_gold_option_line_and_rejects_other_letters(pools):
    for items in pools.values():
        for item in (i for i in items if i.task_type == "mc"):
            line = next(ln for ln in item.prompt.splitlines() if ln.startswith(f"{item.gold}) "))
            assert item.score(line) and item.score(f"Answer: {item.gold}"), item.id
            assert not any(item.score(f"Answer: {other}") for other in _options(item) if other != item.gold)


# --- specs --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [
    "bb:", "bb:truthful_qa", "bb:nope:3", "bb:truthful_qa:0", "bb:truthful_qa:lots", "bb:truthful_qa:-1",
    "bb:truthful_qa:3:x", "bb:truthful_qa:3:4:5", "bb:truthful_qa:300", "bb:truthful_qa:999999",
    "bb:logical_deduction:3", "bb:arithmetic:3", "bb:multistep_arithmetic:3", "bb:../strategyqa:3",
])
def test_a_bad_spec_is_a_one_line_config_error(spec):
    with pytest.raises(ConfigError) as info:
        load(spec)
    assert "\n" not in str(info.value)


def test_the_bb_loader_is_registered_and_lists_its_tasks():
    assert "bb" in datasets.loader_names()
    assert {"truthful_qa", "strategyqa", "logical_deduction/three_objects",
            "arithmetic/2_digit_addition"} <= set(bigbench.bb_tasks())


# --- suites ------------------------------------------------------------------------------------------------

def test_every_suite_includes_bigbench_specs_whose_items_are_deterministic_and_unique():
    for name in ("tiny", "small", "full"):
        specs = [spec for spec in suite_specs(name) if spec.startswith("bb:")]
        assert {spec.split(":")[1] for spec in specs} >= {"truthful_qa", "strategyqa",
                                                          "logical_deduction/three_objects",
                                                          "arithmetic/2_digit_addition"}
        items = [item for spec in specs for item in load(spec)]
        assert [item for spec in specs for item in load(spec)] == items
        assert len({i.id for i in items}) == len(items)
        if name == "tiny":
            assert all(1 <= int(spec.rsplit(":", 1)[1]) <= 2 for spec in specs)


def test_the_tiny_suite_interleaves_bigbench_items_with_reasoning_gym_ones():
    items = suite("tiny")
    assert suite("tiny") == items
    bb = [i for i in items if i.id.startswith("bb/")]
    assert 4 <= len(bb) <= 2 * len(bigbench.bb_tasks()) and len(bb) < len(items)
    assert len({i.id for i in items}) == len(items)
