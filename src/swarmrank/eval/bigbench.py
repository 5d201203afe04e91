"""Evaluation items from `BIG-bench <https://github.com/google/BIG-bench>`_ task files.

The PyPI ``bigbench`` package (1.0.0) ships every task's data as package data under
``bigbench/benchmark_tasks/<task>[/<subtask>]/task.json``. This module reads those JSON files
directly: it never imports bigbench's own code (which needs TensorFlow and many other packages) and
never touches the network. The files are found with ``importlib.util.find_spec("bigbench")``.

Specs (registered as the ``bb`` loader by :mod:`swarmrank.eval.datasets`)::

    load("bb:truthful_qa:20")                          # 20 items, the default seed
    load("bb:logical_deduction/three_objects:10:7")    # ... drawn with seed 7 instead
    load("bb:arithmetic/2_digit_addition:5")

==================================  ======  ======================================================
task                                type    prompt and gold
==================================  ======  ======================================================
truthful_qa                         mc      the question, then its mc1 options (``task_mc.json``,
                                            where exactly one option has score 1: the gold),
                                            shuffled per item with a fixed seed; difficulty medium
strategyqa                          mc      the yes/no question, then ``A) Yes`` / ``B) No``;
                                            difficulty medium
logical_deduction/three_objects     mc      BIG-bench's task prefix, the paragraph, "Which of the
logical_deduction/five_objects              following is true?" and the options in BIG-bench's
logical_deduction/seven_objects             order (the gold position is balanced there);
                                            difficulty easy / medium / hard
arithmetic/<n>_digit_<op>           number  "What is 80 plus 29?"; n = 1..5, op = addition,
                                            subtraction, multiplication, division; the gold is
                                            the file's target, kept only where recomputing the
                                            expression gives exactly that value; difficulty easy
                                            (n ≤ 2), medium (n = 3), hard (n ≥ 4)
==================================  ======  ======================================================

An item's id is ``bb/<task>/<index>``, the example's index in the task's JSON file, so an id names
the same question (and, as mc options are shuffled by the id, the same prompt) whatever the seed.
``count`` items are the first ``count`` of a fixed permutation of the usable examples drawn with
``seed`` (a smaller count gives a prefix of a larger one). Examples whose prompt repeats an earlier
one are skipped. ``multistep_arithmetic`` is not offered: it is a programmatic task with no JSON.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmrank.errors import ConfigError
from swarmrank.eval.datasets import EvalItem, make_item, quiet
from swarmrank.plugins import hookimpl
from swarmrank.settings import Settings
from swarmrank.tasks import Task, TaskType, mc_options

__all__ = ["BB_INSTALL_HINT", "BB_SEED", "BB_VERSION", "bb_tasks", "load_bb", "tasks_root"]

#: the bigbench release whose task files the ``bb`` ids index into (the only one on PyPI)
BB_VERSION = "1.0.0"
#: how to install the task files; pip 26.3 refuses PyPI's bigbench sdist (its metadata declares a
#: ``file://`` URL dependency, bleurt), so use pip ≤ 26.2 or uv, always without dependencies
BB_INSTALL_HINT = ("run scripts/setup, which keeps BIG-bench's task files in "
                   f"<venv>/share/swarmrank/bigbench-{BB_VERSION}, or point SWARMRANK_BIGBENCH_DIR at a "
                   "bigbench/benchmark_tasks folder")
#: the default seed of the draw (a spec's fifth field overrides it)
BB_SEED = 2100
_MAX_COUNT = 5000  # strategyqa has 2289 usable examples
_LETTERS = "ABCDEFGHIJ"


# --- locating the files ---------------------------------------------------------------------------

def tasks_root() -> Path:
    """The ``benchmark_tasks`` folder: ``$SWARMRANK_BIGBENCH_DIR``, else the task files that
    scripts/setup extracted into the virtual environment, else an installed bigbench package
    (found without importing it: it imports TensorFlow)."""
    override = Settings.from_env().bigbench_dir
    if override is not None:
        if not override.is_dir():
            raise ConfigError(f"SWARMRANK_BIGBENCH_DIR={override} is not a folder")
        return override
    extracted = Path(sys.prefix) / "share" / "swarmrank" / f"bigbench-{BB_VERSION}" / "benchmark_tasks"
    if extracted.is_dir():
        return extracted
    try:
        spec = importlib.util.find_spec("bigbench")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        root = Path(location) / "benchmark_tasks"
        if root.is_dir():
            break
    else:
        raise ConfigError(f"the 'bb' eval datasets need BIG-bench's task files; {BB_INSTALL_HINT}")
    try:
        from importlib.metadata import PackageNotFoundError, version
        installed = version("bigbench")
    except PackageNotFoundError:
        installed = None  # a source checkout on the path: its files are used as they are
    if installed is not None and installed != BB_VERSION:
        raise ConfigError(f"bigbench {installed} is installed but the 'bb' eval items are pinned to {BB_VERSION}; "
                          f"{BB_INSTALL_HINT}")
    return root


def _read_json(relative: str) -> dict[str, Any]:
    path = tasks_root() / relative
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read BIG-bench file {relative} ({type(exc).__name__}: {exc}); "
                          f"{BB_INSTALL_HINT}") from None
    if not isinstance(data, dict) or not isinstance(data.get("examples"), list):
        raise ConfigError(f"BIG-bench file {relative} has no 'examples' list")
    return data


# --- converting examples --------------------------------------------------------------------------

#: (data, example, item id) → (prompt, gold text), or None to skip the example
_Convert = Callable[[dict[str, Any], dict[str, Any], str], "tuple[str, str] | None"]


@dataclass(frozen=True)
class _BbTask:
    file: str  # relative to benchmark_tasks
    task_type: TaskType
    convert: _Convert
    difficulty: str


def _gold_option(example: dict[str, Any]) -> tuple[list[str], str] | None:
    """The options (one line each) and the text of the single option with score 1."""
    scores = example.get("target_scores")
    if not isinstance(scores, dict) or not 2 <= len(scores) <= len(_LETTERS):
        return None
    options = [" ".join(str(text).split()) for text in scores]
    golds = [text for text, score in zip(options, scores.values()) if score == 1]
    if len(golds) != 1 or len(set(options)) != len(options) or not all(options):
        return None
    return options, golds[0]


def _mc_prompt(question: str, options: list[str], gold: str) -> tuple[str, str]:
    lines = "\n".join(f"{_LETTERS[i]}) {text}" for i, text in enumerate(options))
    return f"{question.strip()}\n{lines}", _LETTERS[options.index(gold)]


def _truthful_qa(data: dict[str, Any], example: dict[str, Any], item_id: str) -> tuple[str, str] | None:
    chosen = _gold_option(example)
    if chosen is None:
        return None
    options, gold = chosen
    random.Random(item_id).shuffle(options)  # the gold comes first in the file; seeded by the id: stable
    return _mc_prompt(str(example["input"]), options, gold)


def _strategyqa(data: dict[str, Any], example: dict[str, Any], item_id: str) -> tuple[str, str] | None:
    chosen = _gold_option(example)
    if chosen is None or sorted(chosen[0]) != ["No", "Yes"]:
        return None
    return _mc_prompt(str(example["input"]), ["Yes", "No"], chosen[1])


def _logical_deduction(data: dict[str, Any], example: dict[str, Any], item_id: str) -> tuple[str, str] | None:
    chosen = _gold_option(example)
    if chosen is None:
        return None
    options, gold = chosen
    prefix = str(data.get("task_prefix") or "")
    return _mc_prompt(f"{prefix}{str(example['input']).strip()}\nWhich of the following is true?", options, gold)


_ARITHMETIC_INPUT = re.compile(r"What is (-?\d+) (plus|minus|times|divided by) (-?\d+)\?")


def _arithmetic(data: dict[str, Any], example: dict[str, Any], item_id: str) -> tuple[str, str] | None:
    question, target = str(example.get("input", "")).strip(), str(example.get("target", "")).strip()
    match = _ARITHMETIC_INPUT.fullmatch(question)
    if match is None or not re.fullmatch(r"-?\d+", target):
        return None
    left, op, right = int(match.group(1)), match.group(2), int(match.group(3))
    if op == "divided by":
        if right == 0 or left % right:  # keep only exact quotients
            return None
        value = left // right
    else:
        value = {"plus": left + right, "minus": left - right, "times": left * right}[op]
    return (question, target) if value == int(target) else None


_ARITHMETIC_DIFFICULTY = {1: "easy", 2: "easy", 3: "medium", 4: "hard", 5: "hard"}

_BB_TASKS: dict[str, _BbTask] = {
    "truthful_qa": _BbTask("truthful_qa/task_mc.json", TaskType.MC, _truthful_qa, "medium"),
    "strategyqa": _BbTask("strategyqa/task.json", TaskType.MC, _strategyqa, "medium"),
    **{f"logical_deduction/{size}_objects": _BbTask(f"logical_deduction/{size}_objects/task.json", TaskType.MC,
                                                    _logical_deduction, difficulty)
       for size, difficulty in (("three", "easy"), ("five", "medium"), ("seven", "hard"))},
    **{f"arithmetic/{digits}_digit_{op}": _BbTask(f"arithmetic/{digits}_digit_{op}/task.json", TaskType.NUMBER,
                                                  _arithmetic, _ARITHMETIC_DIFFICULTY[digits])
       for digits in range(1, 6) for op in ("addition", "subtraction", "multiplication", "division")},
}


def bb_tasks() -> list[str]:
    """The BIG-bench task names the ``bb`` loader knows."""
    return list(_BB_TASKS)


@dataclass(frozen=True)
class _Usable:
    index: int
    prompt: str
    gold_text: str


def _is_clean_mc(prompt: str) -> bool:
    """The prompt reads as mc, and only the option lines we wrote look like options."""
    question = prompt.rsplit("\nA) ", 1)[0]
    return not mc_options(question) and Task.create(prompt).type is TaskType.MC


@functools.lru_cache(maxsize=64)
def _usable(name: str) -> tuple[_Usable, ...]:
    """Every usable example of a task, in file order (parsed once per process)."""
    task = _BB_TASKS[name]
    data = _read_json(task.file)
    usable: list[_Usable] = []
    seen: set[str] = set()
    for index, example in enumerate(data["examples"]):
        if not isinstance(example, dict):
            continue
        converted = task.convert(data, example, f"bb/{name}/{index}")
        if converted is None:
            continue
        prompt, gold_text = converted
        if prompt in seen:
            continue
        if task.task_type is TaskType.MC and not _is_clean_mc(prompt):
            continue
        seen.add(prompt)
        usable.append(_Usable(index, prompt, gold_text))
    return tuple(usable)


# --- the loader -----------------------------------------------------------------------------------

def _parse_int(text: str, what: str, args: str) -> int:
    if not re.fullmatch(r"\d+", text):
        raise ConfigError(f"bad {what} {text!r} in dataset spec 'bb:{args}': expected a whole number")
    return int(text)


def load_bb(args: str) -> list[EvalItem]:
    """``<task>:<count>[:<seed>]`` → ``count`` items of that BIG-bench task (see the module docstring)."""
    parts = args.split(":")
    if len(parts) not in (2, 3):
        raise ConfigError(f"bad dataset spec 'bb:{args}': expected 'bb:<task>:<count>[:<seed>]'")
    name, count_text = parts[:2]
    task = _BB_TASKS.get(name)
    if task is None:
        raise ConfigError(f"unknown BIG-bench task {name!r} (known: truthful_qa, strategyqa, "
                          f"logical_deduction/<three|five|seven>_objects, "
                          f"arithmetic/<1-5>_digit_<addition|subtraction|multiplication|division>)")
    count = _parse_int(count_text, "count", args)
    if not 1 <= count <= _MAX_COUNT:
        raise ConfigError(f"bad count {count} in dataset spec 'bb:{args}': expected 1 to {_MAX_COUNT}")
    seed = _parse_int(parts[2], "seed", args) if len(parts) == 3 else BB_SEED

    with quiet():
        pool = _usable(name)
        if count > len(pool):
            raise ConfigError(f"'bb:{args}' asks for {count} items but {name} has {len(pool)} usable ones")
        order = list(range(len(pool)))
        random.Random(f"bb:{name}:{seed}").shuffle(order)  # str seed: the same in every process
        chosen = [pool[k] for k in order[:count]]
        return [make_item(id=f"bb/{name}/{u.index}", prompt=u.prompt, task_type=task.task_type,
                          gold_text=u.gold_text, source=f"bigbench/{name}", difficulty=task.difficulty)
                for u in chosen]


@hookimpl
def register_dataset_loaders(register: Callable[[str, Callable[[str], list[EvalItem]]], None]) -> None:
    """The ``bb`` loader: BIG-bench task files (see the module docstring)."""
    register("bb", load_bb)
