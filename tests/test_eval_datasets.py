"""Tests for swarmrank.eval.datasets: evaluation items from reasoning-gym, suites and the loader registry."""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import warnings
from fractions import Fraction

import pytest

from swarmrank.errors import ConfigError
from swarmrank.eval import datasets
from swarmrank.eval.datasets import EvalItem, load, register_loader, suite, suite_names
from swarmrank.tasks import Task, TaskType, detect_task_type, extract_number, mc_options

_DIGEST_SCRIPT = (
    "import hashlib, json\n"
    "from swarmrank.eval.datasets import suite, suite_names\n"
    "rows = {n: [[i.id, i.prompt, i.task_type, i.gold, i.source, i.difficulty] for i in suite(n)]\n"
    "        for n in suite_names()}\n"
    "print(json.dumps({n: hashlib.sha256(json.dumps(r).encode()).hexdigest() for n, r in rows.items()}))\n"
)


def _digest(items: list[EvalItem]) -> str:
    rows = [[i.id, i.prompt, i.task_type, i.gold, i.source, i.difficulty] for i in items]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def other_process():
    """The suites' digests computed by a fresh interpreter with another hash seed (runs alongside)."""
    env = dict(os.environ, PYTHONHASHSEED="4242")
    proc = subprocess.Popen([sys.executable, "-c", _DIGEST_SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def suites(other_process) -> dict[str, list[EvalItem]]:
    return {name: suite(name) for name in suite_names()}


def _of(items: list[EvalItem], task_type: str) -> list[EvalItem]:
    chosen = [i for i in items if i.task_type == task_type]
    assert chosen, f"no {task_type} items"
    return chosen


# --- determinism, ids, sizes ----------------------------------------------------------------------

def test_named_suites_are_tiny_small_and_full_then_code_and_open_ended():
    assert suite_names() == ["tiny", "small", "full", "humaneval", "humaneval-small", "humaneval-tiny", "open",
                             "open-small", "open-tiny"]


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_loading_a_suite_twice_gives_the_same_items_in_the_same_order(suites, name):
    assert suite(name) == suites[name]


def test_suites_are_identical_in_a_fresh_process_with_another_hash_seed(suites, other_process):
    out, err = other_process.communicate(timeout=120)
    assert other_process.returncode == 0, err
    assert json.loads(out) == {name: _digest(items) for name, items in suites.items()}


@pytest.mark.parametrize(("name", "low", "high"), [("tiny", 12, 20), ("small", 60, 100), ("full", 200, 400)])
def test_each_suite_has_its_documented_size_and_unique_ids(suites, name, low, high):
    items = suites[name]
    assert low <= len(items) <= high
    assert len({i.id for i in items}) == len(items)


def test_ids_name_source_task_level_seed_and_index(suites):
    for item in (i for i in suites["full"] if i.id.startswith("rg/")):
        match = re.fullmatch(r"rg/(\w+)/(easy|medium|hard)/s\d+/\d+", item.id)
        assert match, item.id
        assert item.source == f"reasoning_gym/{match.group(1)}"
        assert item.difficulty == match.group(2)


def test_suites_mix_every_task_type_and_interleave_tasks(suites):
    assert {i.task_type for i in suites["tiny"]} == {"mc", "number", "short"}
    assert ({i.source for i in suites["small"] if i.source.startswith("reasoning_gym/")}
            == {f"reasoning_gym/{t}" for t in datasets.rg_tasks()})
    assert any(i.id.startswith("bb/") for i in suites["small"])
    first = suites["small"][:6]  # round-robin: the first items already cover several tasks
    assert len({i.source for i in first}) >= 4


def test_a_smaller_count_gives_a_prefix_of_a_larger_one():
    assert load("rg:knights_knaves:hard:3") == load("rg:knights_knaves:hard:5")[:3]


def test_the_same_spec_gives_the_same_questions_as_pinned_here():
    # guards the pinned reasoning-gym version and seeds: an id must keep naming the same question
    item = load("rg:basic_arithmetic:easy:1")[0]
    assert (item.id, item.prompt, item.gold) == ("rg/basic_arithmetic/easy/s1101/0", "Calculate -4 + 8 + -5.", "-1")


def test_a_seed_in_the_spec_gives_other_items_with_that_seed_in_their_ids():
    default, seeded = load("rg:letter_counting:easy:3"), load("rg:letter_counting:easy:3:7")
    assert all("/s7/" in i.id for i in seeded)
    assert [i.prompt for i in default] != [i.prompt for i in seeded]


def test_loading_prints_and_warns_nothing(capfd):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for spec in ("rg:zebra_puzzles:easy:2", "rg:syllogism:hard:3", "rg:gsm_symbolic:hard:2",
                     "rg:knights_knaves:easy:2", "rg:basic_arithmetic:hard:2", "rg:letter_counting:hard:2"):
            load(spec)
    out, err = capfd.readouterr()
    assert (out, err, caught) == ("", "", [])


# --- gold answers are normalised like node answers -----------------------------------------------

def test_gold_is_what_task_extract_reads_from_an_answer_line(suites):
    for item in suites["full"]:
        task = Task.create(item.prompt, item.task_type)
        assert task.extract(f"Answer: {item.gold}") == item.gold, item.id
        assert item.prompt == item.prompt.strip()


def test_number_golds_are_canonical_numbers(suites):
    for item in _of(suites["full"], "number"):
        assert extract_number(item.gold) == item.gold
        Fraction(item.gold)


def test_arithmetic_golds_are_the_exact_value_not_floor_division(suites):
    items = [i for i in suites["full"] if i.source == "reasoning_gym/basic_arithmetic"]
    assert any("/" in i.prompt for i in items)
    for item in items:
        expression = re.fullmatch(r"Calculate (.+)\.", item.prompt).group(1)
        exact = eval(re.sub(r"\d+", lambda m: f"Fraction({m.group()})", expression), {"Fraction": Fraction})
        assert exact == Fraction(item.gold), item.id


def test_prompts_end_with_the_question_not_a_format_instruction(suites):
    for item in suites["full"]:
        assert "final answer" not in item.prompt.lower()
        assert "format your answer" not in item.prompt.lower()
        assert "(Answer Yes or No)" not in item.prompt
        if item.task_type != "mc":
            assert item.prompt.endswith(("?", ".")), item.id


# --- scoring ---------------------------------------------------------------------------------------

def _wrong_number(gold: str) -> str:
    return str(Fraction(gold) + 1) if "/" not in gold else "0"


def test_number_scoring_accepts_natural_reply_forms_and_rejects_wrong_numbers(suites):
    for item in _of(suites["small"], "number"):
        g = item.gold
        for reply in (g, f"Answer: {g}", f"The answer is {g}.", f"First 3 + 4 = 7 and then the rest, so {g}",
                      f"Answer: {g}.0" if "." not in g else f"Answer: {g}0", f"Final answer: {g}\nConfidence: 0.9"):
            assert item.score(reply), (item.id, reply)
        for reply in (None, "", "I do not know.", f"Answer: {_wrong_number(g)}", f"The answer is {_wrong_number(g)}."):
            assert not item.score(reply), (item.id, reply)


def test_number_scoring_compares_numerically_within_a_small_tolerance():
    item = datasets.make_item(id="x/1", prompt="What is 1 / 3?", task_type="number", gold_text="1/3",
                              source="test", difficulty="easy")
    assert item.score("Answer: 1/3")
    assert item.score("Answer: 0.3333333333")
    assert not item.score("Answer: 0.33")
    big = datasets.make_item(id="x/2", prompt="What is 1000 * 1000?", task_type="number", gold_text="1,000,000",
                             source="test", difficulty="easy")
    assert big.gold == "1000000"
    assert big.score("It is 1,000,000.") and big.score("1e6 is 1000000.0")


def test_mc_scoring_accepts_the_gold_letter_in_natural_forms_and_rejects_other_letters(suites):
    for item in _of(suites["small"], "mc"):
        g = item.gold
        option_line = next(line for line in item.prompt.splitlines() if line.startswith(f"{g})"))
        for reply in (g, f"Answer: {g}", f"The answer is ({g}).", option_line, f"Thinking it over... Answer: {g}"):
            assert item.score(reply), (item.id, reply)
        for other in (letter for letter in mc_options(item.prompt) if letter != g):
            assert not item.score(f"Answer: {other}"), (item.id, other)
        assert not item.score(None)


def test_short_scoring_accepts_the_name_in_any_case_and_rejects_other_names(suites):
    for item in _of(suites["small"], "short"):
        name = item.gold
        for reply in (name, f"Answer: {name.title()}", f"The answer is {name.upper()}.", f"Answer: The {name}"):
            assert item.score(reply), (item.id, reply)
        names = re.search(r"unique name: (.+)", item.prompt).group(1).split(", ")
        assert name in names
        for other in (n for n in names if n != name):
            assert not item.score(f"Answer: {other.title()}")


# --- multiple choice -------------------------------------------------------------------------------

def test_mc_prompts_are_detected_as_mc_and_their_gold_is_among_the_options(suites):
    for item in _of(suites["full"], "mc"):
        assert detect_task_type(item.prompt) is TaskType.MC, item.id
        options = mc_options(item.prompt)
        assert options == list("ABCDEFGHIJ"[: len(options)])
        assert item.gold in options


def test_syllogisms_are_yes_no_questions_with_both_answers_present(suites):
    items = [i for i in suites["full"] if i.source == "reasoning_gym/syllogism"]
    for item in items:
        assert item.prompt.endswith("?\nA) Yes\nB) No")
    golds = [i.gold for i in items]
    assert 0.25 < golds.count("A") / len(golds) < 0.75


def test_knights_and_knaves_gold_letters_vary_because_options_are_shuffled(suites):
    golds = {i.gold for i in suites["full"] if i.source == "reasoning_gym/knights_knaves"}
    assert len(golds) >= 4


@pytest.mark.parametrize(("premises", "conclusion", "valid"), [
    (["All a are b", "All b are c"], "All a are c", True),           # Barbara
    (["All b are c", "Some a are b"], "Some a are c", True),         # Darii
    (["No b are c", "All a are b"], "No a are c", True),             # Celarent
    (["All a are b", "All b are c"], "Some a are c", True),          # Barbari (terms are non-empty)
    (["All a are b", "Some b are c"], "Some a are c", False),        # undistributed middle
    (["All a are b", "No c are b"], "All a are c", False),
    (["Some a are not b", "All b are c"], "Some c are not a", False),
    (["All a are b", "Some b are c"], "Some b are a", True),         # conversion of the first premise
    (["No a are b", "All b are c"], "No b are a", True),
    (["All a are b", "All b are c"], "All b are a", False),
])
def test_syllogism_gold_is_computed_by_checking_every_model(premises, conclusion, valid):
    parse = datasets._categorical
    assert datasets._follows([parse(p) for p in premises], parse(conclusion)) is valid


# --- difficulty levels ------------------------------------------------------------------------------

def _numbers(text: str) -> list[int]:
    return [abs(int(n)) for n in re.findall(r"\d+", text)]


def test_harder_arithmetic_has_more_terms_and_bigger_numbers():
    easy, hard = load("rg:basic_arithmetic:easy:10"), load("rg:basic_arithmetic:hard:10")
    assert max(n for i in easy for n in _numbers(i.prompt)) <= 9
    assert all(len(_numbers(i.prompt)) <= 3 for i in easy)
    assert all(len(_numbers(i.prompt)) >= 4 for i in hard)
    assert max(n for i in hard for n in _numbers(i.prompt)) >= 100
    assert any("*" in i.prompt for i in hard) and not any("*" in i.prompt for i in easy)


def test_harder_letter_counting_has_longer_texts():
    def words(item: EvalItem) -> int:
        return len(re.search(r'text: "(.*)"', item.prompt).group(1).split())
    easy, hard = load("rg:letter_counting:easy:8"), load("rg:letter_counting:hard:8")
    assert max(map(words, easy)) <= 5 < 12 <= min(map(words, hard))


def test_harder_word_problems_are_longer():
    easy, hard = load("rg:gsm_symbolic:easy:12"), load("rg:gsm_symbolic:hard:12")
    assert statistics.mean(len(i.prompt) for i in hard) > 1.2 * statistics.mean(len(i.prompt) for i in easy)


def test_harder_knights_and_knaves_have_more_people_and_options():
    assert {len(mc_options(i.prompt)) for i in load("rg:knights_knaves:easy:5")} == {4}
    assert {len(mc_options(i.prompt)) for i in load("rg:knights_knaves:hard:5")} == {8}


def test_harder_zebra_puzzles_have_more_houses():
    for level, houses in (("easy", 3), ("medium", 4), ("hard", 5)):
        for item in load(f"rg:zebra_puzzles:{level}:1"):
            assert f"There are {houses} houses" in item.prompt


def test_easy_syllogisms_use_only_all_and_some():
    easy, hard = load("rg:syllogism:easy:10"), load("rg:syllogism:hard:20")
    negative = re.compile(r"^\d\. (No \w+|Some \w+ are not)", re.MULTILINE)
    assert not any(negative.search(i.prompt) for i in easy)
    assert any(negative.search(i.prompt) for i in hard)


# --- errors and the registry ------------------------------------------------------------------------

def test_an_unknown_suite_is_a_one_line_config_error_listing_the_known_ones():
    with pytest.raises(ConfigError) as info:
        suite("huge")
    message = str(info.value)
    assert "\n" not in message and all(name in message for name in suite_names())


@pytest.mark.parametrize("spec", [
    "", "rg", "rg:", "nope:basic_arithmetic:easy:3", "rg:nope:easy:3", "rg:basic_arithmetic:extreme:3",
    "rg:basic_arithmetic:easy", "rg:basic_arithmetic:easy:0", "rg:basic_arithmetic:easy:lots",
    "rg:basic_arithmetic:easy:-2", "rg:basic_arithmetic:easy:3:x", "rg:basic_arithmetic:easy:3:4:5",
    "rg:basic_arithmetic:easy:999999",
])
def test_a_bad_spec_is_a_one_line_config_error(spec):
    with pytest.raises(ConfigError) as info:
        load(spec)
    assert "\n" not in str(info.value)


def test_a_missing_reasoning_gym_asks_for_the_eval_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # makes "import reasoning_gym" fail
    with pytest.raises(ConfigError, match="eval extra") as info:
        load("rg:basic_arithmetic:easy:1")
    assert "\n" not in str(info.value)
    assert info.value.__suppress_context__


def test_another_reasoning_gym_version_is_refused(monkeypatch):
    import importlib.metadata
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9")
    with pytest.raises(ConfigError, match=r"9\.9\.9.*0\.1\.25"):
        load("rg:basic_arithmetic:easy:1")


@pytest.fixture
def registry(monkeypatch):
    """Loaders a test registers are forgotten after it (the plugins' are loaded first)."""
    datasets.loader_names()
    monkeypatch.setattr(datasets, "_LOADERS", dict(datasets._LOADERS))


def test_a_registered_loader_is_reached_by_its_spec_prefix(registry):
    def toy(args: str) -> list[EvalItem]:
        return [datasets.make_item(id=f"toy/{args}/{k}", prompt=f"What is {k} + {k}?", task_type="number",
                                   gold_text=str(2 * k), source="toy", difficulty="easy") for k in range(3)]
    register_loader("toy", toy)
    items = load("toy:sums")
    assert [i.id for i in items] == ["toy/sums/0", "toy/sums/1", "toy/sums/2"]
    assert items[2].score("2 + 2 = 4") and "toy" in datasets.loader_names()


def test_registering_a_taken_name_or_a_bad_name_is_refused(registry):
    with pytest.raises(ConfigError, match="already registered"):
        register_loader("rg", lambda args: [])
    with pytest.raises(ConfigError):
        register_loader("Bad Name", lambda args: [])


def test_a_loader_returning_duplicate_ids_or_non_items_is_refused(registry):
    item = datasets.make_item(id="d/1", prompt="What is 1 + 1?", task_type="number", gold_text="2",
                              source="d", difficulty="easy")
    register_loader("dup", lambda args: [item, item])
    register_loader("junk", lambda args: ["What is 1 + 1?"])
    with pytest.raises(ConfigError, match="twice"):
        load("dup:x")
    with pytest.raises(ConfigError, match="not EvalItem"):
        load("junk:x")


def test_an_mc_gold_that_is_not_an_option_is_refused():
    with pytest.raises(ConfigError):
        datasets.make_item(id="m/1", prompt="Pick:\nA) one\nB) two", task_type="mc", gold_text="C",
                           source="m", difficulty="easy")
