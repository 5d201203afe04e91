"""Code answers: read the program out of a reply, find what the question asks for, and run it.

Two programs are *the same answer* when they behave the same (CodeT, Chen et al. 2022; AlphaCode's
clustering, Li et al. 2022): each is called, in the sandbox (:mod:`swarmrank.sandbox`), on the
inputs of the question's own examples and on inputs generated from them, and programs with identical
outcomes (return values, or the exception raised, or a timeout) form one cluster.

- :func:`extract_program`: the code in a reply: the fenced block that defines the entry point (else
  the last one that parses), or the longest stretch of the bare reply that parses as Python.
- :func:`CodeSpec.from_question`: the entry point (the question's last ``def``, or "a function called
  ``name``"), its signature, the imports the question shows and its examples (doctest ``>>> f(x)``
  lines, and ``f(x) == y`` / ``f(x) ➞ y`` lines).
- :func:`generate_inputs`: inputs made from the examples' arguments by small, seeded mutations (or,
  with no examples, from the signature's type hints).
- :func:`behaviour`: one sandboxed run of a program on every input; its :class:`Behaviour` carries the
  signature that clustering compares and the crashes on the question's examples that red-flag it.

A question without an entry point (a script, say) clusters programs by their syntax tree, so that
formatting and comments do not split them.
"""

from __future__ import annotations

import ast
import doctest
import hashlib
import random
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from swarmrank import sandbox

__all__ = ["Behaviour", "CodeSpec", "behaviour", "extract_program", "generate_inputs", "syntax_key"]

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_START = re.compile(r"^(?:def |class |import |from \S+ import |@|async def )")
_DEF = re.compile(r"^[ \t]*def[ \t]+([A-Za-z_]\w*)[ \t]*\(", re.MULTILINE)
_NAMED = re.compile(r"\b(?:function|method)\s+(?:called|named)\s+`?([A-Za-z_]\w*)`?", re.IGNORECASE)
_NOT_PYTHON = {"bash", "sh", "shell", "console", "text", "txt", "json", "output", "js", "javascript", "java", "c",
               "cpp", "c++", "rust", "go", "sql"}
_MAX_MUTATIONS = 400


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


def _tidy(source: str) -> str:
    lines = [line.rstrip() for line in textwrap.dedent(source.expandtabs(4)).splitlines()]
    return "\n".join(lines).strip("\n")


def _defines(source: str, name: str) -> bool:
    return re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", source, re.MULTILINE) is not None


def _bare(text: str) -> str | None:
    """The longest stretch of ``text`` that starts like code and parses."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _CODE_START.match(line.lstrip() if i else line)]
    best: str | None = None
    for start in starts[:8]:
        for end in range(len(lines), start, -1):
            chunk = _tidy("\n".join(lines[start:end]))
            if chunk and _parses(chunk) and (best is None or len(chunk) > len(best)):
                best = chunk
                break
    return best


def extract_program(text: str, entry: str | None = None) -> str | None:
    """The program in a reply, tidied (dedented, no trailing blanks); None if no Python parses."""
    blocks = [(lang.lower(), _tidy(body)) for lang, body in _FENCE.findall(text)]
    code = [body for lang, body in blocks if lang not in _NOT_PYTHON and body and _parses(body)]
    if code:
        if entry:
            defining = [body for body in code if _defines(body, entry)]
            if defining:
                return defining[-1]
        return code[-1]
    if blocks:  # fenced, but nothing parses as Python: no program
        return None
    whole = _tidy(text)
    if whole and _parses(whole) and _CODE_START.match(whole):
        return whole
    return _bare(text) or _body(whole)


def _body(text: str) -> str | None:
    """A reply that only continues a function (its body, with a ``return``), as base models write."""
    try:
        tree = ast.parse("def _body():\n" + textwrap.indent(text, "    "))
    except (SyntaxError, ValueError):
        return None
    body = tree.body[0].body  # type: ignore[attr-defined]
    return text if any(isinstance(node, ast.Return) for node in body) else None


def syntax_key(program: str) -> str:
    """The program's syntax tree without formatting or comments (docstrings dropped too)."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return program
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree, annotate_fields=False)


# -- what the question asks for -------------------------------------------------------------------

def _call_args(source: str, entry: str) -> str | None:
    """``"(1, [2])"``: the literal arguments of a call ``entry(...)`` as a tuple's repr, else None."""
    try:
        node = ast.parse(source.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        node = node.left
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry) or node.keywords:
        return None
    try:
        args = tuple(ast.literal_eval(arg) for arg in node.args)
    except (ValueError, SyntaxError, TypeError, RecursionError):
        return None
    return repr(args)


def _calls_in_text(text: str, entry: str) -> list[str]:
    """``entry(...)`` calls written inline (``f(3) == 6``, ``f(3) ➞ 6``), arguments balanced."""
    found = []
    for match in re.finditer(rf"(?<![\w.]){re.escape(entry)}\(", text):
        depth, i = 0, match.end() - 1
        while i < len(text):
            if text[i] in "([{":
                depth += 1
            elif text[i] in ")]}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        args = _call_args(text[match.start(): i + 1], entry)
        if args is not None and args != "()":  # "write a function f() that ..." names it, calls nothing
            found.append(args)
    return found


@dataclass(frozen=True)
class CodeSpec:
    """What a code question asks for: the entry point, the imports it shows, its example inputs."""

    entry: str | None
    header: str = ""  # the question's own code: imports, helper functions and the entry's signature
    imports: str = ""
    examples: tuple[str, ...] = ()  # argument tuples (repr), from the question's examples
    annotations: tuple[str, ...] = ()  # the entry's parameter annotations, for inputs without examples

    @classmethod
    def from_question(cls, question: str) -> CodeSpec:
        names = _DEF.findall(question)
        entry = names[-1] if names else None
        if entry is None:
            named = _NAMED.search(question)
            entry = named.group(1) if named else None
        if entry is None:
            return cls(entry=None)
        examples: list[str] = []
        try:
            parsed = doctest.DocTestParser().get_examples(question)
        except ValueError:
            parsed = []
        for example in parsed:
            args = _call_args(example.source, entry)
            if args is not None:
                examples.append(args)
        examples.extend(_calls_in_text(question, entry))
        header, imports, annotations = "", "", tuple[str, ...]()
        if names:
            header = _header(question, entry)
            imports = "\n".join(line for line in question.splitlines()
                                if re.match(r"^(?:import \w|from \S+ import )", line))
            annotations = _annotations(header, entry)
        return cls(entry=entry, header=header, imports=imports, examples=tuple(dict.fromkeys(examples)),
                   annotations=annotations)

    def complete(self, program: str) -> str:
        """The program as it will run: the question's imports first; a bare function body (a reply that
        only continues the question's code) is put under the question's signature."""
        if self.entry and not _defines(program, self.entry) and self.header and _defines(self.header, self.entry):
            body = textwrap.indent(program, "    ") if not program.startswith((" ", "\t")) else program
            candidate = f"{self.header.rstrip()}\n{body}"
            if _parses(candidate):
                program = candidate
        return f"{self.imports}\n{program}".strip("\n") if self.imports else program


def _header(question: str, entry: str) -> str:
    """The question's code that defines ``entry``: its fenced block, else everything from its first
    code line on."""
    for _, body in _FENCE.findall(question):
        if _defines(body, entry):
            return _tidy(body)
    match = re.search(r"^(?:from \S+ import |import \w|def )", question, re.MULTILINE)
    return _tidy(question[match.start():] if match else question)


def _annotations(header: str, entry: str) -> tuple[str, ...]:
    source = header
    for _ in range(3):  # the header ends mid-function (a docstring, no body): give it one
        try:
            tree = ast.parse(source)
            break
        except SyntaxError:
            source += "\n    pass\n"
    else:
        return ()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == entry:
            return tuple(ast.unparse(a.annotation) if a.annotation else "" for a in node.args.args)
    return ()


# -- generated inputs -----------------------------------------------------------------------------

def _mutations(value: Any, rng: random.Random) -> list[Any]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, 0, -value, value * 2 + 3, 1, rng.randint(-20, 100)]
    if isinstance(value, float):
        return [value * 1.5, -value, 0.0, value + 0.5, round(rng.uniform(-10, 10), 2)]
    if isinstance(value, str):
        return ["", value[::-1], value.upper(), value + value, value[:1], value.replace(" ", ""), value + " a"]
    if isinstance(value, (list, tuple)):
        kind = type(value)
        items = list(value)
        out: list[Any] = [kind(), kind(items[::-1]), kind(items[:1]), kind(items + items[:1])]
        if items:
            i = rng.randrange(len(items))
            for changed in _mutations(items[i], rng)[:3]:
                out.append(kind([*items[:i], changed, *items[i + 1:]]))
            try:
                out.append(kind(sorted(items)))
            except TypeError:
                pass
        return out
    if isinstance(value, dict):
        return [{}, dict(list(value.items())[:1])]
    return []


_BY_ANNOTATION: dict[str, list[Any]] = {
    "int": [0, 1, -3, 7, 100, 2], "float": [0.0, 1.5, -2.25, 10.0], "str": ["", "a", "hello world", "Abc", "aab"],
    "bool": [True, False], "list[int]": [[], [1], [3, 1, 2], [5, 5, -1], [0, 10, 4, 4]],
    "list[float]": [[], [1.0], [2.5, -1.0, 3.0]], "list[str]": [[], ["a"], ["abc", "b", "abc"]],
}


def generate_inputs(spec: CodeSpec, count: int, *, seed: str = "") -> list[str]:
    """Up to ``count`` argument tuples (repr) not among the examples: one argument of one example
    mutated at a time, or values picked by type hint when there are no examples. Deterministic for a
    given spec and seed."""
    if count <= 0:
        return []
    rng = random.Random(int(hashlib.sha256(f"{seed}|{spec.entry}|{spec.examples}".encode()).hexdigest()[:16], 16))
    seen = set(spec.examples)
    out: list[str] = []
    bases: list[tuple[Any, ...]] = [ast.literal_eval(e) for e in spec.examples]
    if not bases and spec.annotations:
        columns = [_BY_ANNOTATION.get(a.replace("List", "list").replace("typing.", "").replace(" ", ""), [])
                   for a in spec.annotations]
        if all(columns):
            bases = [tuple(rng.choice(col) for col in columns) for _ in range(3)]
            for args in bases:
                text = repr(args)
                if text not in seen and len(out) < count:
                    seen.add(text)
                    out.append(text)
    # generations of mutants: each round-robin over its parents, so every example contributes
    tries = 0
    while bases and len(out) < count and tries < _MAX_MUTATIONS:
        pools: list[list[tuple[Any, ...]]] = []
        for args in bases:
            variants: list[tuple[Any, ...]] = []
            for i, value in enumerate(args):
                variants.extend((*args[:i], m, *args[i + 1:]) for m in _mutations(value, rng))
            rng.shuffle(variants)
            pools.append(variants)
        children: list[tuple[Any, ...]] = []
        for rank in range(max((len(p) for p in pools), default=0)):
            for pool in pools:
                if rank < len(pool):
                    tries += 1
                    text = repr(pool[rank])
                    if text not in seen and len(text) <= 2000:
                        seen.add(text)
                        children.append(pool[rank])
                        if len(out) < count:
                            out.append(text)
        bases = children[:8]
    return out


# -- behaviour ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Behaviour:
    """What a program did on the round's inputs."""

    signature: tuple[str, ...]  # one entry per input: the value's repr, or "raise <Type>" / "timeout"
    example_failures: tuple[str, ...] = ()  # "f(0): ZeroDivisionError: ..." for the question's examples
    load_error: str | None = None
    run_status: str = "ok"
    outcomes: tuple[sandbox.Outcome, ...] = field(default=(), compare=False)

    @property
    def crashed_on_examples(self) -> str | None:
        """Why this program is red-flagged, or None."""
        if self.load_error:
            return f"the program does not run: {self.load_error}"
        if self.example_failures:
            more = f" (and {len(self.example_failures) - 1} more)" if len(self.example_failures) > 1 else ""
            return f"crashes on the question's example {self.example_failures[0]}{more}"
        return None


def _key(outcome: sandbox.Outcome) -> str:
    if outcome.kind == "value":
        return outcome.text
    if outcome.kind == "raise":
        return "raise " + outcome.text.split(":", 1)[0]
    return outcome.kind


def behaviour(program: str, spec: CodeSpec, inputs: Sequence[str], limits: sandbox.Limits | None = None) -> Behaviour:
    """Run ``program`` (as :meth:`CodeSpec.complete` makes it) on ``inputs`` (the examples first)."""
    assert spec.entry is not None
    run, outcomes = sandbox.call_each(spec.complete(program), spec.entry, inputs, limits)
    load_error = None
    if outcomes and all(o.kind == "missing" for o in outcomes):
        load_error = outcomes[0].text.removeprefix("the program failed to load: ")
    elif not inputs and run.status != "ok":
        load_error = run.detail
    failures = []
    for args, outcome in zip(inputs[: len(spec.examples)], outcomes):
        if outcome.kind in ("raise", "timeout") and load_error is None:
            shown = args[1:-1].rstrip(",") if args.startswith("(") else args
            failures.append(f"{spec.entry}({shown}): {outcome.text}")
    return Behaviour(signature=tuple(_key(o) for o in outcomes), example_failures=tuple(failures),
                     load_error=load_error, run_status=run.status, outcomes=tuple(outcomes))
