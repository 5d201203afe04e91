"""The code task type: programs read from replies, entry points and examples read from questions,
programs clustered by what they do in the sandbox, and crashes on the question's examples red-flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarmrank.codetask import CodeSpec, extract_program, generate_inputs, syntax_key
from swarmrank.tasks import Task, TaskType, detect_task_type

from helpers import judge, run_cli, scripted_config, scripted_swarm

QUESTION = '''from typing import List


def add_one(xs: List[int]) -> List[int]:
    """Add one to every element.
    >>> add_one([1, 2])
    [2, 3]
    >>> add_one([])
    []
    """
'''
COMPREHENSION = "Sure:\n```python\ndef add_one(xs):\n    return [x + 1 for x in xs]\n```\nThis adds one."
LOOP = ("Here is a loop version.\n\n```py\ndef add_one(xs):\n    out = []\n    for x in xs:\n"
        "        out.append(x + 1)  # one more\n    return out\n```")
MAP = "def add_one(xs):\n    return list(map(lambda v: v + 1, xs))"
WRONG = "```python\ndef add_one(xs):\n    return [x + 2 for x in xs]\n```"
CRASHES = "```python\ndef add_one(xs):\n    return [x + 1 for x in xs] + [1 // 0]\n```"


@pytest.mark.parametrize(("text", "expected"), [
    ("```python\ndef f(x):\n    return x\n```", "def f(x):\n    return x"),
    ("Explanation first.\n\n```\ndef f(x):\n    return x\n```\nThen more prose.", "def f(x):\n    return x"),
    ("def f(x):\n    return x\n\nThis returns x unchanged.", "def f(x):\n    return x"),
    ("```python\ndef helper():\n    pass\n```\n```python\ndef f(x):\n    return helper()\n```\n```python\nprint(f(1))\n```",
     "def f(x):\n    return helper()"),
    ("```python\ndef f(x):\n    return x", "def f(x):\n    return x"),  # cut off before the closing fence
    ("The answer is 42.", None),
    ("```bash\npip install numpy\n```", None),
])
def test_the_program_is_read_from_fenced_or_bare_replies(text, expected):
    assert extract_program(text, "f") == expected


def test_the_entry_point_and_the_examples_come_from_the_question():
    spec = CodeSpec.from_question(QUESTION)
    assert spec.entry == "add_one"
    assert spec.examples == ("([1, 2],)", "([],)")
    assert spec.imports == "from typing import List"
    inline = CodeSpec.from_question("Write a function called double that doubles a number: "
                                    "double(2) == 4 and double(-1) ➞ -2.")
    assert inline.entry == "double"
    assert inline.examples == ("(2,)", "(-1,)")


def test_generated_inputs_are_new_deterministic_and_typed_by_the_examples():
    spec = CodeSpec.from_question(QUESTION)
    inputs = generate_inputs(spec, 8, seed="q")
    assert len(inputs) == 8
    assert inputs == generate_inputs(spec, 8, seed="q")
    assert not set(inputs) & set(spec.examples)
    assert all(inp.startswith("([") for inp in inputs)  # one list argument, as in the examples
    hinted = CodeSpec.from_question("def f(n: int, s: str) -> str:\n    '''Repeat s n times.'''\n")
    assert hinted.examples == ()
    assert len(generate_inputs(hinted, 5, seed="q")) == 5


def test_a_body_only_reply_is_put_under_the_questions_signature():
    spec = CodeSpec.from_question(QUESTION)
    program = spec.complete("return [x + 1 for x in xs]")
    assert program.startswith("from typing import List")
    assert "def add_one(xs: List[int]) -> List[int]:" in program


@pytest.mark.parametrize(("question", "kind"), [
    ("Write a Python function that reverses a string.", TaskType.CODE),
    ("Implement a function is_prime(n) returning True for primes.", TaskType.CODE),
    (QUESTION, TaskType.CODE),
    ("What is the function of the liver?", TaskType.SHORT),
    ("What is 17 + 25?", TaskType.NUMBER),
])
def test_questions_that_ask_for_a_function_go_to_code(question, kind):
    assert detect_task_type(question) is kind


def test_formatting_and_comments_do_not_change_the_syntax_key():
    a = "def f(x):\n    '''Doc.'''\n    return x + 1  # add"
    b = "def f(x):\n\n    return (x+1)\n"
    assert syntax_key(a) == syntax_key(b)
    assert syntax_key(a) != syntax_key("def f(x):\n    return x + 2")


def test_equivalent_programs_with_different_text_are_one_cluster_and_a_crash_is_red_flagged():
    swarm = scripted_swarm([COMPREHENSION, LOOP, MAP, WRONG, CRASHES], [judge("j", "first")])
    result = swarm.ask_sync(QUESTION, protocol="majority")
    assert result.task_type == "code"
    assert [sorted(c.nodes) for c in result.candidates] == [["a0", "a1", "a2"], ["a3"]]
    assert result.answer == "def add_one(xs):\n    return [x + 1 for x in xs]"
    flagged = {a.node: a.excluded for a in result.answers}
    assert flagged["a4"] is not None and flagged["a4"].startswith("crashes on the question's example add_one([1, 2])")
    assert "ZeroDivisionError" in flagged["a4"]
    assert all(flagged[n] is None for n in ("a0", "a1", "a2", "a3"))


def test_judges_compare_programs_of_different_clusters_only():
    right = Task.create(QUESTION).extract(COMPREHENSION)
    swarm = scripted_swarm([COMPREHENSION, LOOP, WRONG], [judge("j", "truth", truth=right)])
    result = swarm.ask_sync(QUESTION, protocol="peer-rank")
    assert len(result.candidates) == 2
    assert {(j.first, j.second) for j in result.judgments} == {(0, 1), (1, 0)}
    assert result.answer == right


def test_without_an_entry_point_programs_cluster_by_syntax_tree():
    question = "Write a Python program that prints hello."
    a, b = "```python\nprint('hello')  # greet\n```", "```python\nprint( 'hello' )\n```"
    result = scripted_swarm([a, b, "```python\nprint('bye')\n```"]).ask_sync(question, protocol="majority")
    assert [len(c.nodes) for c in result.candidates] == [2, 1]
    assert any("syntax tree" in note for note in result.notes)


def test_ask_type_code_from_the_cli(tmp_path: Path, isolated_home):
    config = scripted_config(tmp_path / "swarm.toml", [COMPREHENSION, LOOP, WRONG])
    proc = run_cli("ask", QUESTION, "--type", "code", "--protocol", "majority", "--config", str(config), "--json",
                   home=isolated_home, check=True)
    data = json.loads(proc.stdout)
    assert data["task_type"] == "code"
    assert [c["nodes"] for c in data["candidates"]] == [["n0", "n1"], ["n2"]]


def test_the_rich_view_shows_code_as_written_not_as_markup(tmp_path: Path, isolated_home):
    config = scripted_config(tmp_path / "swarm.toml", [COMPREHENSION])
    proc = run_cli("ask", QUESTION, "--protocol", "majority", "--config", str(config), home=isolated_home,
                   check=True)
    assert "[x + 1 for x in xs]" in proc.stdout


def test_without_a_sandbox_programs_are_not_run_and_the_round_says_so(monkeypatch):
    from swarmrank import sandbox

    monkeypatch.setattr(sandbox, "_bwrap", lambda: None)
    result = scripted_swarm([COMPREHENSION, LOOP, CRASHES]).ask_sync(QUESTION, protocol="majority")
    assert len(result.candidates) == 3  # by syntax tree: nothing ran, so nothing merged or red-flagged
    assert all(a.excluded is None for a in result.answers)
    assert sum("code not run" in note and "bubblewrap" in note for note in result.notes) == 1
