"""Task types, answer extraction, normalisation and clustering.

A round needs to know when two replies give *the same answer*. The task type says how to read the
answer out of a reply and how to normalise it:

``mc``      a multiple-choice letter (A–J), read from "Answer: C", "(C)", "C." ...
``number``  the last number in the reply ("3 + 4 = 7" → 7), fractions and commas understood
``short``   a short text answer: the "Answer:" line, or the first line, lower-cased, without
            punctuation or articles
``free``    free text: whitespace- and case-normalised; answers cluster by meaning (sentence
            embeddings, :mod:`swarmrank.embeddings`)
``json``    one JSON object (``response_format`` json_object / json_schema): read from the reply, checked
            against the task's JSON Schema when it has one, and compared as canonical JSON (sorted keys)
``code``    a program (:mod:`swarmrank.codetask`): read from the reply's code block; programs cluster
            by what they do on the question's examples and on generated inputs, run in the sandbox

:class:`Clusterer` decides, within one round, which answers are the same: identical normalised
values always are; ``short`` answers that differ also are when their meaning is the same, ``free``
answers when their meaning is, ``code`` answers when they behave the same.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from swarmrank import codetask
from swarmrank.errors import ConfigError, ModelNotFoundError, SandboxError

if TYPE_CHECKING:
    import numpy as np

    from swarmrank.embeddings import Embedder
    from swarmrank.sandbox import Limits


class TaskType(str, Enum):
    MC = "mc"
    NUMBER = "number"
    SHORT = "short"
    FREE = "free"
    JSON = "json"
    CODE = "code"

    @classmethod
    def parse(cls, value: str | TaskType | None) -> TaskType | None:
        if value is None or isinstance(value, TaskType):
            return value
        try:
            return cls(value.lower())
        except ValueError:
            known = ", ".join(t.value for t in cls)
            raise ConfigError(f"unknown task type {value!r} (known: {known})") from None


_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[\).:]\s+\S", re.MULTILINE)
_NUMBER_HINT = re.compile(
    # an operator between numbers, but not a year range like 1940-1945
    r"((?<![\d.])(?!\d{4}\s*[-–]\s*\d{4}\b)\d+(?:\.\d+)?\s*[-+*/×÷x^]\s*\d"
    r"|\bhow (many|much)\b|\bwhat is \d|\bcompute\b|\bcalculate\b|\bsum\b|\bproduct\b)",
    re.IGNORECASE,
)


_CODE_HINT = re.compile(
    r"^[ \t]*def[ \t]+\w+[ \t]*\(|```py"
    r"|\b(?:write|implement|complete|create|define|code|give me)\b[^.?!\n]{0,60}?"
    r"\b(?:function|program|script|method|class|snippet|one-liner)\b",
    re.IGNORECASE | re.MULTILINE,
)


def detect_task_type(question: str) -> TaskType:
    """Guess the task type from the question's shape (options → mc, asks for a function → code,
    arithmetic → number)."""
    options = set(_OPTION_LINE.findall(question))
    if len(options) >= 2 and {"A", "B"} <= options:
        return TaskType.MC
    if _CODE_HINT.search(question):
        return TaskType.CODE
    if _NUMBER_HINT.search(question):
        return TaskType.NUMBER
    if len(question) < 200:
        return TaskType.SHORT
    return TaskType.FREE


def mc_options(question: str) -> list[str]:
    return sorted(set(_OPTION_LINE.findall(question)))


_ANSWER_LINE = re.compile(r"(?:final answer|answer)\s*(?:is|:|=)\s*(.+)", re.IGNORECASE)
# the words are matched in any case, the option letter only in capitals ("the answer is a bit...")
_MC_PATTERNS = (
    re.compile(r"(?i:final answer|answer)\s*(?i:is|:)?\s*\(?\**([A-J])\b\)?"),
    re.compile(r"(?i:final answer|answer)\s*:\s*\(?([a-j])\)?\.?[ \t]*$", re.MULTILINE),  # "Answer: b" alone
    re.compile(r"(?i:option|choice)\s*\(?([A-J])\b\)?"),
    re.compile(r"\(([A-J])\)"),
    re.compile(r"^\s*\**([A-J])[\).:\*]?(?:\s|$)", re.MULTILINE),
    re.compile(r"\b([A-J])\b"),
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CONFIDENCE = re.compile(r"confidence\s*(?:level|score)?\s*[:=]?\s*(\d*\.?\d+)\s*(%?)", re.IGNORECASE)


def extract_mc(text: str, options: Sequence[str] = ()) -> str | None:
    allowed = set(options) if options else set("ABCDEFGHIJ")
    for pattern in _MC_PATTERNS:
        hits = [h.upper() for h in pattern.findall(text) if h.upper() in allowed]
        if hits:  # the last one: replies end with their answer, and a self-correction comes later
            return hits[-1]
    return None


def _format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    as_float = float(value)
    if math.isclose(as_float, round(as_float, 6)):
        return f"{as_float:.6f}".rstrip("0").rstrip(".")
    return f"{value.numerator}/{value.denominator}"


def extract_number(text: str) -> str | None:
    """The answer line's number if there is one, else the last number in the reply."""
    scope = text
    lines = _ANSWER_LINE.findall(text)
    if lines and _NUMBER.search(lines[-1]):
        scope = lines[-1]
    numbers = _NUMBER.findall(scope)
    if not numbers:
        return None
    raw = numbers[0] if scope is not text else numbers[-1]
    raw = raw.replace(",", "").replace(" ", "")
    try:
        if "/" in raw:
            num, den = raw.split("/")
            if int(den) == 0:
                return None
            return _format_number(Fraction(int(num), int(den)))
        return _format_number(Fraction(raw))
    except (ValueError, ZeroDivisionError):
        return None


def normalise_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def extract_short(text: str) -> str | None:
    lines = _ANSWER_LINE.findall(text)
    chosen = lines[-1] if lines else next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    chosen = chosen.split("\n")[0]
    value = normalise_text(chosen)
    return value or None


def extract_confidence(text: str) -> float | None:
    """A self-reported confidence in [0, 1] ("Confidence: 0.8" or "Confidence: 80%")."""
    hits = _CONFIDENCE.findall(text)
    if not hits:
        return None
    number, percent = hits[-1]
    value = float(number)
    if percent or value > 1.0:
        value /= 100.0
    return min(max(value, 0.0), 1.0)


def strip_confidence(text: str) -> str:
    return _CONFIDENCE.sub("", text)


_FENCED = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL | re.IGNORECASE)


def read_json_object(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON object in ``text``, None) or (None, why there is none).

    The whole reply, else a fenced ```json block, else the first ``{`` to its matching ``}``.
    """
    body = text.strip()
    tries = [body, *(m.strip() for m in _FENCED.findall(body))]
    start = body.find("{")
    if start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(body, start)
            tries.append(json.dumps(obj))
        except ValueError:
            pass
    problem = "invalid JSON: no JSON object in the reply"
    for candidate in tries:
        try:
            obj = json.loads(candidate)
        except ValueError as exc:
            if candidate is body and body.startswith(("{", "[")):
                problem = f"invalid JSON: {exc}"
            continue
        if isinstance(obj, dict):
            return obj, None
        problem = f"invalid JSON: a JSON {type(obj).__name__.replace('list', 'array')}, not an object"
    return None, problem


#: the largest JSON Schema a task takes (its canonical JSON, in characters) and the deepest nesting
MAX_SCHEMA_CHARS = 32_768
MAX_SCHEMA_DEPTH = 48
#: reference keywords: each must resolve inside the schema itself
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


def _depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests (stops counting past ``limit``), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > limit:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


PATTERN_SECONDS = 0.05  # the most one schema pattern may take on one string


def _search(pattern: str, text: str) -> bool:
    """``re.search`` with a time limit: a client's pattern such as ``^(a+)+$`` on a string a node was steered
    to write must not freeze the server (``re`` cannot be interrupted; ``regex`` takes a timeout)."""
    import regex  # type: ignore[import-untyped]

    try:
        return regex.search(pattern, text, timeout=PATTERN_SECONDS) is not None
    except TimeoutError:
        raise _PatternTimeout(pattern) from None


class _PatternTimeout(Exception):
    def __init__(self, pattern: str) -> None:
        super().__init__(f"the schema's pattern {pattern[:60]!r} took over {PATTERN_SECONDS:g}s on this answer")


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "string"):
        return
    try:
        found = _search(pattern, instance)
    except _PatternTimeout as exc:
        yield ValidationError(str(exc))
        return
    if not found:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            try:
                matched = _search(pattern, key)
            except _PatternTimeout as exc:
                yield ValidationError(str(exc))
                return
            if matched:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _validator(schema: Mapping[str, Any]) -> Any:
    """A validator for ``schema`` that never retrieves anything: an empty registry (whose retrieve
    fails), so only references inside the schema itself (``#/...``, ``$defs``, its own ``$id`` keywords)
    resolve. jsonschema's default would fetch any other URI — http(s)://, file:// — with urlopen.
    ``pattern`` and ``patternProperties`` run with a time limit (:func:`_search`)."""
    import jsonschema
    from referencing import Registry

    base = jsonschema.validators.validator_for(schema)
    timed = jsonschema.validators.extend(base, {"pattern": _pattern, "patternProperties": _pattern_properties})
    return timed(schema, registry=Registry())


def _unresolvable_refs(schema: Mapping[str, Any]) -> str | None:
    """The first reference in ``schema`` that does not resolve inside it (with why), or None.

    Walks the schema's subschemas as its dialect defines them (a ``$ref`` inside ``const`` or
    ``enum`` is data, not a reference), each looked up where jsonschema would look it up."""
    from jsonschema.validators import validator_for
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import specification_with

    dialect = validator_for(schema).META_SCHEMA.get("$schema", "")
    root = specification_with(str(dialect)).create_resource(dict(schema))
    registry = Registry().with_resource(root.id() or "", root).crawl()
    stack = [(root, registry.resolver(base_uri=root.id() or ""))]
    while stack:
        resource, resolver = stack.pop()
        contents = resource.contents
        if isinstance(contents, dict):
            for keyword in _REF_KEYWORDS:
                ref = contents.get(keyword)
                if ref is None:
                    continue
                if not isinstance(ref, str):
                    return f"{keyword} must be a string, not {type(ref).__name__}"
                try:
                    resolver.lookup(ref)
                except Unresolvable:
                    return (f"{keyword} {ref[:200]!r} does not resolve inside the schema (only local references "
                            "such as '#/$defs/name' are followed; nothing is fetched)")
        for sub in resource.subresources():
            stack.append((sub, resolver.in_subresource(sub)))
    return None


def check_schema(schema: Mapping[str, Any]) -> None:
    """Raise ConfigError when ``schema`` is not a JSON Schema a task can take: invalid by its
    meta-schema, too large or deep, with a reference that does not resolve inside the schema itself
    (remote and ``file://`` references are refused, never fetched), or one that refers to itself
    without end."""
    import jsonschema

    if not isinstance(schema, Mapping):
        raise ConfigError(f"invalid JSON Schema: a JSON Schema is an object, not {type(schema).__name__}")
    try:
        size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False))
    except (TypeError, ValueError, RecursionError):
        raise ConfigError("invalid JSON Schema: it is not JSON") from None
    if size > MAX_SCHEMA_CHARS:
        raise ConfigError(f"JSON Schema too large: {size} characters (at most {MAX_SCHEMA_CHARS})")
    if _depth(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        raise ConfigError(f"JSON Schema too deeply nested (at most {MAX_SCHEMA_DEPTH} levels)")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"invalid JSON Schema: {exc.message}") from None
    problem = _unresolvable_refs(schema)
    if problem is not None:
        raise ConfigError(f"invalid JSON Schema: {problem}")
    try:  # a reference cycle that consumes nothing ({"$ref": "#"}) never ends: found on the empty object
        jsonschema.exceptions.best_match(_validator(schema).iter_errors({}))
    except RecursionError:
        raise ConfigError("invalid JSON Schema: it refers to itself without end") from None


def schema_problem(obj: Any, schema: Mapping[str, Any]) -> str | None:
    """Why ``obj`` does not match ``schema`` (the first error, with where), or None when it does.

    References are resolved inside the schema only (:func:`_validator`); a schema that cannot be
    applied to ``obj`` (a reference cycle reached only by this object) is a problem, not an error."""
    import jsonschema
    from referencing.exceptions import Unresolvable

    try:
        error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(obj))
    except RecursionError:
        return "does not match the JSON Schema: the schema refers to itself without end"
    except Unresolvable as exc:
        return f"does not match the JSON Schema: a reference does not resolve inside the schema ({exc})"[:300]
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"does not match the JSON Schema: {error.message}" + (f" (at /{where})" if where else "")


def canonical_json(obj: Any) -> str:
    """The form JSON answers are compared in: sorted keys, no spaces, Unicode kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=256)
def _code_spec(question: str) -> codetask.CodeSpec:
    return codetask.CodeSpec.from_question(question)


@dataclass(frozen=True)
class Task:
    """A question with its type; knows how to read and compare answers."""

    question: str
    type: TaskType
    options: tuple[str, ...] = ()
    #: json tasks: the JSON Schema every answer must match (None: any JSON object)
    schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @classmethod
    def create(cls, question: str, task_type: str | TaskType | None = None, *,
               schema: Mapping[str, Any] | None = None) -> Task:
        if not question or not question.strip():
            raise ConfigError("the question is empty")
        kind = TaskType.parse(task_type) or detect_task_type(question)
        options = tuple(mc_options(question)) if kind is TaskType.MC else ()
        if schema is not None:
            if kind is not TaskType.JSON:
                raise ConfigError(f"a JSON Schema needs task type json, not {kind.value}")
            check_schema(schema)
        return cls(question=question.strip(), type=kind, options=options, schema=schema)

    def problem(self, text: str) -> str | None:
        """Why ``text`` gives no answer of this task's kind (json tasks: invalid JSON or schema), or None."""
        if self.type is not TaskType.JSON:
            return None if self.extract(text) is not None else f"malformed: no {self.type.value} answer found"
        obj, problem = read_json_object(text)
        if obj is None:
            return problem
        return schema_problem(obj, self.schema) if self.schema is not None else None

    def extract(self, text: str) -> str | None:
        """The normalised answer in ``text``, or None when there is none to read."""
        if self.type is TaskType.JSON:  # confidence lines and such are not stripped from JSON
            obj, _ = read_json_object(text)
            if obj is None or (self.schema is not None and schema_problem(obj, self.schema) is not None):
                return None
            return canonical_json(obj)
        body = strip_confidence(text)
        if self.type is TaskType.MC:
            return extract_mc(body, self.options)
        if self.type is TaskType.NUMBER:
            return extract_number(body)
        if self.type is TaskType.SHORT:
            return extract_short(body)
        if self.type is TaskType.CODE:
            return codetask.extract_program(text, self.code_spec().entry)
        value = normalise_text(body)
        return value or None

    def code_spec(self) -> codetask.CodeSpec:
        """What a code question asks for (the entry point, its examples); computed once per question."""
        return _code_spec(self.question)

    def instruction(self) -> str:
        """How a node should format its reply for this task type."""
        if self.type is TaskType.MC:
            letters = "/".join(self.options) if self.options else "A/B/C/D"
            return f"Think briefly, then end with a line 'Answer: X' where X is one letter ({letters})."
        if self.type is TaskType.NUMBER:
            return "Think briefly, then end with a line 'Answer: N' where N is a number."
        if self.type is TaskType.SHORT:
            return "Reply with a line 'Answer: ...' giving a short answer of a few words."
        if self.type is TaskType.JSON:
            if self.schema is None:
                return "Reply with one JSON object and nothing else."
            return ("Reply with one JSON object and nothing else. It must match this JSON Schema:\n"
                    + json.dumps(self.schema, ensure_ascii=False))
        if self.type is TaskType.CODE:
            spec = self.code_spec()
            name = f" `{spec.entry}`" if spec.entry else ""
            return (f"Reply with the complete Python code{name and ' of the function' + name} in one ```python "
                    "code block, with any imports it needs; no tests, no example usage.")
        return "Answer the question clearly and concisely."


def cluster(values: Sequence[str | None]) -> tuple[list[str], list[int | None]]:
    """Group identical normalised answers: (distinct values in first-seen order, index per value)."""
    distinct: list[str] = []
    index: dict[str, int] = {}
    assignment: list[int | None] = []
    for value in values:
        if value is None:
            assignment.append(None)
            continue
        if value not in index:
            index[value] = len(distinct)
            distinct.append(value)
        assignment.append(index[value])
    return distinct, assignment


class Clusterer:
    """One round's answer clusters: maps each extracted answer to its cluster's representative (the
    first answer seen in it), so that equal values then mean the same answer everywhere (grouping,
    votes, the ahead-by-k race, revision summaries).

    ``mc`` and ``number`` answers are the same only when equal. ``short`` answers that are not equal
    are the same when their embeddings' cosine similarity reaches ``same_meaning`` and they do not
    conflict (different numbers, or one negated: :func:`swarmrank.embeddings.conflicting`); ``free``
    answers likewise. ``code`` answers are the same when they behave the same on the question's examples and
    ``code_inputs`` generated inputs (or, with nothing to run them on, when their syntax trees match).
    A new answer joins the most similar representative at or above the threshold, else starts a
    cluster of its own. Without an embedding model (or a sandbox, for code) clustering falls back to
    equality (syntax trees) and says so through ``note``.
    """

    def __init__(self, task: Task, *, embeddings: str = "minilm", embeddings_model: str = "",
                 same_meaning: float | None = None, code_inputs: int = 8, limits: Limits | None = None,
                 note: Callable[[str], None] | None = None) -> None:
        self.task = task
        self.embeddings = embeddings
        self.embeddings_model = embeddings_model
        self.same_meaning = same_meaning
        self.limits = limits
        self.representatives: list[str] = []
        self._note_now = note or (lambda _text: None)
        self._pending: list[str] = []  # notes from worker threads, given out on the caller's thread
        self._vectors: dict[str, np.ndarray] = {}
        self._keys: dict[str, str] = {}
        self._behaviours: dict[str, codetask.Behaviour] = {}
        self._embedder: Embedder | None = None
        self._semantic = task.type in (TaskType.SHORT, TaskType.FREE) and embeddings != "none"
        self._runnable = task.type is TaskType.CODE
        self.inputs: list[str] = []
        if task.type is TaskType.CODE:
            spec = task.code_spec()
            self.inputs = [*spec.examples, *codetask.generate_inputs(spec, code_inputs, seed=task.question)]
            if spec.entry is None or not self.inputs:
                self._runnable = False
                what = "no entry point" if spec.entry is None else f"no inputs for {spec.entry}"
                self._note(f"code: {what} in the question; programs clustered by their syntax tree")
        self._flush()

    def _note(self, text: str) -> None:
        self._pending.append(text)

    def _flush(self) -> None:
        while self._pending:
            self._note_now(self._pending.pop(0))

    # -- the expensive parts, done ahead in a worker thread -------------------------------------
    async def prepare(self, values: Sequence[str | None]) -> None:
        """Run or embed the new values (concurrently, off the event loop)."""
        fresh = list(dict.fromkeys(v for v in values if v is not None))
        if self._runnable and any(v not in self._behaviours for v in fresh):
            await asyncio.to_thread(self._run_all, fresh)
        elif self._semantic and len(set(fresh) | set(self.representatives)) > 1:
            await asyncio.to_thread(self._embed, fresh)
        self._flush()

    def _run_all(self, programs: Sequence[str]) -> None:
        todo = [p for p in programs if p not in self._behaviours]
        with ThreadPoolExecutor(max_workers=2) as pool:
            for program, result in zip(todo, pool.map(self._behaviour_or_none, todo)):
                if result is not None:
                    self._behaviours[program] = result

    def _behaviour_or_none(self, program: str) -> codetask.Behaviour | None:
        try:
            return codetask.behaviour(program, self.task.code_spec(), self.inputs, self.limits)
        except SandboxError as exc:
            if self._runnable:
                self._runnable = False
                self._note(f"code not run ({exc}); programs clustered by their syntax tree")
            return None

    def behaviour(self, program: str) -> codetask.Behaviour | None:
        """What ``program`` did on this round's inputs (None where it cannot be run)."""
        if self._runnable and program not in self._behaviours:
            self._run_all([program])
        return self._behaviours.get(program)

    def _embedder_or_none(self) -> Embedder | None:
        if self._semantic and self._embedder is None:
            from swarmrank.embeddings import embedder_for

            try:
                self._embedder = embedder_for(self.embeddings, self.embeddings_model)
            except (ModelNotFoundError, ConfigError) as exc:
                self._semantic = False
                self._note(f"answers clustered by exact text only: {exc}")
        return self._embedder if self._semantic else None

    def _embed(self, texts: Sequence[str]) -> None:
        todo = [t for t in texts if t not in self._vectors]
        embedder = self._embedder_or_none()
        if not todo or embedder is None:
            return
        try:
            vectors = embedder.embed(todo)
        except ModelNotFoundError as exc:
            self._semantic = False
            self._note(f"answers clustered by exact text only: {exc}")
            return
        self._vectors.update(zip(todo, vectors))

    # -- per answer --------------------------------------------------------------------------------
    def red_flag(self, value: str) -> str | None:
        """A code answer that crashes on the question's own examples (or does not run at all)."""
        if self.task.type is not TaskType.CODE:
            return None
        found = self.behaviour(value)
        self._flush()
        return found.crashed_on_examples if found is not None else None

    def _code_key(self, program: str) -> str:
        if program not in self._keys:
            found = self.behaviour(program)
            self._keys[program] = ("run:" + "\x1f".join(found.signature) if found is not None
                                   else "ast:" + codetask.syntax_key(program))
        return self._keys[program]

    def canonical(self, value: str) -> str:
        """The representative of ``value``'s cluster (``value`` itself when it starts a new one)."""
        if value in self.representatives:
            return value
        match: str | None = None
        if self.task.type is TaskType.CODE:
            key = self._code_key(value)
            match = next((r for r in self.representatives if self._code_key(r) == key), None)
        elif self._semantic and self.representatives:
            self._embed([value, *self.representatives])
            if value in self._vectors and self._semantic:
                import numpy as np

                from swarmrank.embeddings import conflicting

                threshold = self.same_meaning if self.same_meaning is not None else _default_threshold()
                reps = [r for r in self.representatives if r in self._vectors and not conflicting(value, r)]
                if reps:
                    sims = np.array([float(self._vectors[value] @ self._vectors[r]) for r in reps])
                    best = int(np.argmax(sims))
                    if sims[best] >= threshold:
                        match = reps[best]
        self._flush()
        if match is None:
            self.representatives.append(value)
            return value
        return match


def _default_threshold() -> float:
    from swarmrank.embeddings import SAME_MEANING

    return SAME_MEANING
