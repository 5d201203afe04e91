"""Simulation: many synthetic questions through real rounds, to map where peer-rank beats voting.

Nothing here replaces the engine: every simulated question is a real :meth:`Swarm.ask` round
(answer fan-out, clustering, the judging schedule, Bradley–Terry, the cost ledger). Only the nodes
are synthetic. Their behaviour is set statistically by :class:`SimParams`:

* **answerers** — answerer *i* has an accuracy drawn once per seed, uniformly in
  ``accuracy_mean ± accuracy_spread / 2`` and clipped to [0.02, 0.98] (or set exactly with
  ``node_accuracies``). On each question it is right with that probability; when wrong it gives
  the question's shared *popular* wrong answer with probability ``correlated_errors``, and
  otherwise one of ``n_wrong_answers`` distinct wrong answers chosen uniformly. Correlated errors
  are what make majority vote fail: a popular wrong answer can outvote a scattered truth.
* **judges** (separate nodes, role ``judge`` only) — shown two different answers of which exactly
  one is right, a judge prefers the right one with probability ``judge_discrimination`` (1.0 =
  perfect, 0.5 = a coin); shown two wrong answers it flips a coin; shown equal answers it says U.
* **judge pools** — ``judges`` replaces the ``n_judges`` identical judges with a mixed pool, e.g.
  ``parse_judges("2x0.95,5x0.5,3xfirst")``: each entry is ``COUNTxKIND`` with KIND a discrimination
  in [0, 1], ``first`` / ``second`` (always prefers the answer shown first / second: pure position
  bias) or ``collude`` (prefers the popular wrong answer whenever it is shown).
* **answerers that judge** — with ``answerers_judge`` every answerer also judges (there are no
  separate judges; ``judges``, when given, lists one kind per answerer). Shown a pair that holds its
  own answer, such a node picks its own with probability ``self_bias`` and otherwise judges as usual.
* **adversaries** — ``adversary_fraction`` of the answerers (the last ones, so the honest nodes'
  draws do not change with the fraction) always give the popular wrong answer, and the same
  fraction of the judges (the last ones) always prefer the popular wrong answer when it is shown
  (otherwise they judge like honest judges).

Every draw is a hash of ``(seed, question index, node index, ...)``, so a question's answers do not
depend on how many questions are run, on the batch order, or on how many other nodes there are:
growing the swarm (:func:`size_curve`) adds nodes and keeps the existing ones' answers, and every
cell of a :func:`sweep` sees the same node accuracies (common random numbers). All protocols of one
:func:`simulate` call are scored on the same node answers, so they can be compared pairwise.

    result = simulate(SimParams(judge_discrimination=0.9, correlated_errors=0.8))
    result["peer-rank"].accuracy.mean, result["majority"].accuracy.mean, result.oracle.mean
    print(regime_map(sweep(SimParams(), judge_discrimination=[0.5, 0.75, 1.0],
                           correlated_errors=[0.0, 0.5, 0.9]), "judge_discrimination", "correlated_errors"))

A protocol name may carry options after slashes — ``peer-rank/adaptive``, ``peer-rank/bradley-terry``,
``peer-rank/fortytwo/bradley-terry`` (:func:`swarmrank.eval.systems.parse_system`) — and each named
system gets its own swarm, so a system that learns judge reliability across questions (the
default ``evidence`` aggregation) learns only from its own rounds, in question order within each
batch of questions (``swarmrank.reliability.BOOK_BATCH``). Protocols other than ``peer-rank`` and
``majority`` run too: the simulated nodes also grade
(GOOD, or BAD from a colluder for anything but the popular answer), rank (``council``: the right
answer first with probability ``judge_discrimination``) and revise (stubbornly: they keep their
answer, so ``debate`` reduces to majority). Rounds use the default :class:`RoundOptions` plus
``schedule``, ``judges_per_pair`` and any ``round_options`` (e.g. ``{"vote_weighted": False}``).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from swarmrank.errors import ConfigError
from swarmrank.eval.metrics import Accuracy, PairedTest, accuracy, paired_difference
from swarmrank.eval.systems import parse_system
from swarmrank.nodes.base import Backend, Completion, CompletionRequest, Node, Persona
from swarmrank.reliability import BOOK_BATCH, JudgeBook
from swarmrank.result import RoundResult
from swarmrank.round import RoundOptions
from swarmrank.schedule import check_schedule
from swarmrank.swarm import Swarm

__all__ = [
    "JUDGING_PHASES",
    "ProtocolOutcome",
    "RegimeGrid",
    "SimAnswerer",
    "SimJudge",
    "SimParams",
    "SimResult",
    "World",
    "build_nodes",
    "parse_judges",
    "regime_grid",
    "regime_map",
    "simulate",
    "simulate_async",
    "size_curve",
    "size_table",
    "sweep",
]

JUDGING_PHASES = ("grade", "judge", "rank")  # the phases counted as judging calls (as the eval runner does)
ACCURACY_CLIP = (0.02, 0.98)
TASK_TYPE = "short"


@dataclass(frozen=True)
class SimParams:
    """One simulated regime. Every field can be swept (:func:`sweep`)."""

    n_answerers: int = 7
    n_judges: int = 3
    accuracy_mean: float = 0.5
    accuracy_spread: float = 0.2
    judge_discrimination: float = 0.8
    correlated_errors: float = 0.0
    n_wrong_answers: int = 4
    adversary_fraction: float = 0.0
    questions: int = 200
    seed: int = 0
    protocols: tuple[str, ...] = ("peer-rank", "majority")
    schedule: str = "cluster"
    judges_per_pair: int = 2
    # exact per-answerer accuracies (no draw, no clipping); overrides accuracy_mean/spread
    node_accuracies: tuple[float, ...] | None = None
    # further RoundOptions fields for every round, e.g. {"prior": 1.0}; a mapping is stored as sorted items
    round_options: tuple[tuple[str, Any], ...] = ()
    # a mixed judge pool, ((count, kind), ...) as parse_judges gives; overrides n_judges/judge_discrimination
    judges: tuple[tuple[int, str], ...] | None = None
    answerers_judge: bool = False  # every answerer also judges (no separate judges)
    self_bias: float = 0.5         # P(a judging answerer picks its own answer when it is in the pair)

    def __post_init__(self) -> None:
        if isinstance(self.protocols, str):
            object.__setattr__(self, "protocols", (self.protocols,))
        else:
            object.__setattr__(self, "protocols", tuple(self.protocols))
        if self.node_accuracies is not None:
            object.__setattr__(self, "node_accuracies", tuple(float(a) for a in self.node_accuracies))
        if isinstance(self.judges, str):
            object.__setattr__(self, "judges", parse_judges(self.judges))
        elif self.judges is not None:
            object.__setattr__(self, "judges", tuple((int(c), str(k)) for c, k in self.judges))
            for _, kind in self.judges:
                _judge_kind(kind)
        items = self.round_options.items() if isinstance(self.round_options, Mapping) else self.round_options
        object.__setattr__(self, "round_options", tuple(sorted((str(k), v) for k, v in items)))
        known = {f.name for f in fields(RoundOptions)} - {"schedule", "judges_per_pair"}
        unknown = [k for k, _ in self.round_options if k not in known]
        if unknown:
            raise ConfigError(f"unknown round option(s) {', '.join(unknown)} (schedule and judges_per_pair are "
                              "simulation parameters)")
        if self.n_answerers < 1:
            raise ConfigError("n_answerers must be at least 1")
        if self.n_judges < 0:
            raise ConfigError("n_judges must be at least 0")
        if self.questions < 1:
            raise ConfigError("questions must be at least 1")
        if self.n_wrong_answers < 1:
            raise ConfigError("n_wrong_answers must be at least 1")
        if self.judges_per_pair < 1:
            raise ConfigError("judges_per_pair must be at least 1")
        for name in ("accuracy_mean", "judge_discrimination", "correlated_errors", "adversary_fraction"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ConfigError(f"{name} must be between 0 and 1, got {value!r}")
        if not (isinstance(self.accuracy_spread, (int, float)) and 0.0 <= self.accuracy_spread <= 2.0):
            raise ConfigError(f"accuracy_spread must be between 0 and 2, got {self.accuracy_spread!r}")
        if self.node_accuracies is not None:
            if len(self.node_accuracies) != self.n_answerers:
                raise ConfigError(f"node_accuracies has {len(self.node_accuracies)} values for "
                                  f"{self.n_answerers} answerers")
            if not all(0.0 <= a <= 1.0 for a in self.node_accuracies):
                raise ConfigError("node_accuracies must be between 0 and 1")
        if not self.protocols:
            raise ConfigError("give at least one protocol")
        for name in self.protocols:
            parse_system(name)
        if not (0.0 <= self.self_bias <= 1.0):
            raise ConfigError(f"self_bias must be between 0 and 1, got {self.self_bias!r}")
        if self.answerers_judge and self.judges is not None and self.judge_count != self.n_answerers:
            raise ConfigError(f"with answerers judging, --judges must list one kind per answerer "
                              f"({self.n_answerers}), got {self.judge_count}")
        check_schedule(self.schedule)

    @property
    def judge_count(self) -> int:
        """Judging nodes: the pool's size, else ``n_judges`` (the answerers when they judge)."""
        if self.judges is not None:
            return sum(c for c, _ in self.judges)
        return self.n_answerers if self.answerers_judge else self.n_judges

    def judge_kinds(self) -> list[str]:
        """One kind per judging node, in order: a discrimination as text, 'first', 'second' or 'collude'."""
        if self.judges is not None:
            return [kind for count, kind in self.judges for _ in range(count)]
        count = self.n_answerers if self.answerers_judge else self.n_judges
        bad = 0 if self.answerers_judge else self.n_adversary_judges
        return [repr(float(self.judge_discrimination))] * (count - bad) + ["collude"] * bad

    @property
    def n_adversaries(self) -> int:
        """Answerers replaced by colluders (the last ones)."""
        return _share(self.adversary_fraction, self.n_answerers)

    @property
    def n_adversary_judges(self) -> int:
        """Judges that collude (the last ones)."""
        return _share(self.adversary_fraction, self.n_judges)


JUDGE_KINDS = ("first", "second", "collude")


def _judge_kind(kind: str) -> str:
    if kind in JUDGE_KINDS:
        return kind
    try:
        value = float(kind)
    except ValueError:
        raise ConfigError(f"unknown judge kind {kind!r}: give a discrimination in [0, 1] or one of "
                          f"{', '.join(JUDGE_KINDS)}") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"judge discrimination {kind!r} is outside [0, 1]")
    return kind


def parse_judges(spec: str) -> tuple[tuple[int, str], ...]:
    """``"2x0.95,5x0.5,3xfirst"`` → ((2, "0.95"), (5, "0.5"), (3, "first")); a bare KIND counts once."""
    out: list[tuple[int, str]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        count_text, sep, kind = part.partition("x")
        if sep and count_text.strip().isdigit():
            count, kind = int(count_text), kind.strip()
        else:
            count, kind = 1, part
        if count < 1:
            raise ConfigError(f"judge pool entry {part!r} has no judges")
        out.append((count, _judge_kind(kind)))
    if not out:
        raise ConfigError(f"judge pool {spec!r} names no judges (example: 2x0.95,5x0.5,3xfirst)")
    return tuple(out)


def _share(fraction: float, n: int) -> int:
    return min(n, int(math.floor(fraction * n + 0.5)))


# -- deterministic draws ------------------------------------------------------------------------

def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) that depends only on ``parts`` (stable across runs and platforms)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 18446744073709551616.0  # 2**64


def _question(index: int) -> str:
    return f"Simulated question {index}: which token is the right one?"


def _truth(index: int) -> str:
    return f"right{index}"


def _popular(index: int) -> str:
    return f"popular{index}"


def _wrong(index: int, k: int) -> str:
    return f"wrong{index}n{k}"


class World:
    """The statistical model behind one simulation: node accuracies and every node's answer."""

    def __init__(self, params: SimParams) -> None:
        self.params = params
        p = params
        self.n_honest = p.n_answerers - p.n_adversaries
        if p.node_accuracies is not None:
            drawn = list(p.node_accuracies)
        else:
            low, high = ACCURACY_CLIP
            drawn = [min(high, max(low, p.accuracy_mean + p.accuracy_spread * (_unit("accuracy", p.seed, i) - 0.5)))
                     for i in range(p.n_answerers)]
        # an adversary is never right: its configured accuracy is 0
        self.accuracies: tuple[float, ...] = tuple(a if i < self.n_honest else 0.0 for i, a in enumerate(drawn))
        self.questions = [_question(q) for q in range(p.questions)]
        self.index = {text: q for q, text in enumerate(self.questions)}
        self.truths = [_truth(q) for q in range(p.questions)]
        self.popular = [_popular(q) for q in range(p.questions)]
        self.answers: list[list[str]] = [[self._draw(q, i) for i in range(p.n_answerers)] for q in range(p.questions)]
        self.correct = np.array([[a == self.truths[q] for a in row] for q, row in enumerate(self.answers)],
                                dtype=bool).reshape(p.questions, p.n_answerers)

    def _draw(self, q: int, node: int) -> str:
        p = self.params
        if node >= self.n_honest:
            return _popular(q)
        if _unit("answer", p.seed, q, node) < self.accuracies[node]:
            return _truth(q)
        if _unit("popular", p.seed, q, node) < p.correlated_errors:
            return _popular(q)
        return _wrong(q, int(_unit("which", p.seed, q, node) * p.n_wrong_answers))

    def question_of(self, request: CompletionRequest) -> int:
        try:
            return self.index[str(request.context.get("question", ""))]
        except KeyError:
            raise ConfigError("a simulated node was asked a question outside its simulation") from None


# -- simulated nodes --------------------------------------------------------------------------

def _completion(text: str, request: CompletionRequest) -> Completion:
    prompt_tokens = sum(len(m.content.split()) for m in request.messages)
    return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=len(text.split()))


@dataclass(eq=False)
class SimAnswerer(Backend):
    """Answers from the world's table: 'The answer is X.'; revises stubbornly (keeps its answer)."""

    world: World
    node: int
    name: str = "sim-answerer"
    judge: SimJudge | None = None  # set when answerers also judge

    async def complete(self, request: CompletionRequest) -> Completion:
        q = self.world.question_of(request)
        answer = self.world.answers[q][self.node]
        if request.purpose in ("answer", "probe", "revise"):
            text = f"The answer is {answer}."
            if "confidence" in request.context.get("wants", ()):
                text += f"\nAnswer: {answer}\nConfidence: {self.world.accuracies[self.node]:.2f}"
            return _completion(text, request)
        if request.purpose == "grade":
            return _completion("GOOD", request)
        if request.purpose == "judge" and self.judge is not None:
            return await self.judge.complete(request)
        raise ConfigError(f"a simulated answerer cannot {request.purpose}")

    def describe(self) -> str:
        return f"sim-answerer(accuracy={self.world.accuracies[self.node]:.2f})"


@dataclass(eq=False)
class SimJudge(Backend):
    """Judges by the truth in the request context, right with probability ``judge_discrimination``.

    A colluding judge (``adversary``) prefers the popular wrong answer whenever it is shown.
    """

    world: World
    node: int
    adversary: bool = False
    name: str = "sim-judge"
    kind: str | None = None        # a discrimination, 'first', 'second' or 'collude' (None: the params')
    answerer: int | None = None    # the answerer this judge is, when answerers judge

    @property
    def discrimination(self) -> float:
        if self.kind is None or self.kind in JUDGE_KINDS:
            return self.world.params.judge_discrimination
        return float(self.kind)

    def _prefers(self, q: int, first: str | None, second: str | None, truth: str | None) -> str:
        """The verdict letter A, B or U for first vs second."""
        if first == second:
            return "U"
        p = self.world.params
        if self.kind == "first":
            return "A"
        if self.kind == "second":
            return "B"
        popular = self.world.popular[q]
        if (self.adversary or self.kind == "collude") and popular in (first, second):
            return "A" if first == popular else "B"
        if self.answerer is not None:
            mine = self.world.answers[q][self.answerer]
            if mine in (first, second) and _unit("self", p.seed, q, self.node, first, second) < p.self_bias:
                return "A" if first == mine else "B"
        if truth is not None and (first == truth) != (second == truth):
            right = "A" if first == truth else "B"
            wrong = "B" if right == "A" else "A"
            return right if _unit("judge", p.seed, q, self.node, first, second) < self.discrimination \
                else wrong
        return "A" if _unit("coin", p.seed, q, self.node, first, second) < 0.5 else "B"

    async def complete(self, request: CompletionRequest) -> Completion:
        q = self.world.question_of(request)
        ctx = request.context
        # the round forwards the truth into judge contexts; a council ranking request does not carry
        # it, so the simulated judge falls back to the world's truth for the question
        truth = ctx.get("truth", self.world.truths[q])
        if request.purpose == "judge":
            verdict = self._prefers(q, ctx.get("first_value"), ctx.get("second_value"), truth)
            return _completion(f"Comparing the two solutions.\nVerdict: {verdict}", request)
        if request.purpose == "grade":
            bad = self.adversary and ctx.get("value") != self.world.popular[q]
            return _completion("BAD" if bad else "GOOD", request)
        if request.purpose == "rank":
            return _completion(self._rank(q, list(ctx.get("candidates", ())), truth), request)
        raise ConfigError(f"a simulated judge cannot {request.purpose}")

    def _rank(self, q: int, values: list[str], truth: str | None) -> str:
        p = self.world.params
        order = sorted(range(len(values)), key=lambda i: _unit("rank", p.seed, q, self.node, values[i]))
        favourite = self.world.popular[q] if self.adversary else truth
        if favourite in values:
            best = values.index(favourite)
            order.remove(best)
            if self.adversary or _unit("rank-top", p.seed, q, self.node) < p.judge_discrimination:
                order.insert(0, best)
            else:  # a miss: the right answer lands anywhere below the top
                slot = 1 + int(_unit("rank-slot", p.seed, q, self.node) * len(order)) if order else 0
                order.insert(min(slot, len(order)), best)
        lines = "\n".join(f"{pos + 1}. Response {chr(ord('A') + i)}" for pos, i in enumerate(order))
        return f"I compared every response.\nFINAL RANKING:\n{lines}"

    def describe(self) -> str:
        if self.adversary or self.kind == "collude":
            kind = "colluding"
        elif self.kind in ("first", "second"):
            kind = f"always {self.kind}"
        else:
            kind = f"discrimination={self.discrimination:.2f}"
        return f"sim-judge({kind})"


def build_nodes(world: World) -> list[Node]:
    """Answerers ``a0..`` (the last ``n_adversaries`` colluding) and judges ``j0..`` (the last colluding),
    or, with ``answerers_judge``, answerers that also judge."""
    p = world.params
    kinds = p.judge_kinds()
    if p.answerers_judge:
        return [Node(f"a{i}", SimAnswerer(world, i, judge=SimJudge(world, i, kind=kinds[i], answerer=i,
                                                                   adversary=i >= world.n_honest)),
                     Persona(seed=i), roles=frozenset({"answer", "judge"})) for i in range(p.n_answerers)]
    nodes = [Node(f"a{i}", SimAnswerer(world, i), Persona(seed=i), roles=frozenset({"answer"}))
             for i in range(p.n_answerers)]
    nodes += [Node(f"j{k}", SimJudge(world, k, kind=kind), Persona(seed=1000 + k), roles=frozenset({"judge"}))
              for k, kind in enumerate(kinds)]
    return nodes


# -- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProtocolOutcome:
    """One protocol over every simulated question."""

    protocol: str
    accuracy: Accuracy
    judge_calls: float  # mean grade + judge + rank calls per question
    calls: float  # mean node calls per question (answers included)
    correct: tuple[bool, ...]  # per question, in question order
    no_answer: int  # questions where the round produced no answer


@dataclass(frozen=True)
class SimResult:
    params: SimParams
    protocols: Mapping[str, ProtocolOutcome]
    oracle: Accuracy  # any answerer right: the ceiling for a protocol that selects a node's answer
    single: float  # mean single-answerer accuracy realised (adversaries included)
    node_accuracy: tuple[float, ...]  # realised accuracy per answerer
    configured_accuracy: tuple[float, ...]  # the accuracy each answerer was given (0 for adversaries)
    seconds: float
    oracle_correct: tuple[bool, ...] = field(repr=False, default=())

    def __getitem__(self, protocol: str) -> ProtocolOutcome:
        try:
            return self.protocols[protocol]
        except KeyError:
            raise KeyError(f"protocol {protocol!r} was not simulated (ran: {', '.join(self.protocols)})") from None

    def difference(self, a: str = "peer-rank", b: str = "majority", *, confidence: float = 0.95,
                   n_boot: int = 2000) -> PairedTest:
        """``a`` minus ``b`` on the same questions: paired-bootstrap CI and exact McNemar test."""
        return paired_difference(self[a].correct, self[b].correct, confidence=confidence, n_boot=n_boot,
                                 seed=self.params.seed)


def _judge_calls(result: RoundResult) -> int:
    phases = result.cost.phases
    return sum(phases[p].calls for p in JUDGING_PHASES if p in phases)


async def simulate_async(params: SimParams, *, concurrency: int = 64) -> SimResult:
    """:func:`simulate` inside a running event loop."""
    start = time.perf_counter()
    world = World(params)
    options = RoundOptions(schedule=params.schedule, judges_per_pair=params.judges_per_pair,
                           **dict(params.round_options))
    nodes = build_nodes(world)
    names = list(dict.fromkeys(params.protocols))
    swarms: dict[str, tuple[Swarm, str]] = {}
    for name in names:
        protocol, overrides = parse_system(name)
        swarms[name] = (Swarm(nodes, options=replace(options, **overrides), name="simulation", store=None), protocol)
    books = {name: JudgeBook(swarm.options.reliability_params()) for name, (swarm, _) in swarms.items()}
    # per protocol, per question: (right, judging calls, all calls, no answer)
    outcome: dict[str, dict[int, tuple[bool, int, int, bool]]] = {n: {} for n in names}
    reports: dict[str, dict[int, RoundResult]] = {n: {} for n in names}
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(q: int, name: str, book: JudgeBook) -> None:
        swarm, protocol = swarms[name]
        async with gate:
            result = await swarm.ask(world.questions[q], protocol=protocol, truth=world.truths[q],
                                     task_type=TASK_TYPE, save=False, book=book)
        outcome[name][q] = (result.answer == world.truths[q], _judge_calls(result), result.cost.calls,
                            result.answer is None)
        reports[name][q] = result

    # learning batches in question order: a batch reads each system's book as it was before the
    # batch, then folds the batch's rounds in, in question order (results do not depend on concurrency)
    for first in range(0, params.questions, BOOK_BATCH):
        batch = range(first, min(params.questions, first + BOOK_BATCH))
        snapshots = {name: books[name].copy() for name in names}
        await asyncio.gather(*(one(q, name, snapshots[name]) for q in batch for name in names))
        for name in names:
            for q in batch:
                books[name].learn(reports[name][q])
    protocols: dict[str, ProtocolOutcome] = {}
    for name in names:
        rows = [outcome[name][q] for q in range(params.questions)]
        correct = tuple(bool(r[0]) for r in rows)
        protocols[name] = ProtocolOutcome(
            protocol=name, accuracy=accuracy(correct, seed=params.seed),
            judge_calls=float(np.mean([r[1] for r in rows])), calls=float(np.mean([r[2] for r in rows])),
            correct=correct, no_answer=sum(1 for r in rows if r[3]),
        )
    any_right = np.asarray(world.correct.any(axis=1))
    per_node = world.correct.mean(axis=0)
    return SimResult(
        params=params, protocols=protocols, oracle=accuracy(any_right, seed=params.seed),
        single=float(world.correct.mean()), node_accuracy=tuple(float(x) for x in per_node),
        configured_accuracy=world.accuracies, seconds=time.perf_counter() - start,
        oracle_correct=tuple(bool(x) for x in any_right),
    )


def simulate(params: SimParams | None = None, *, concurrency: int = 64) -> SimResult:
    """Run ``params.questions`` simulated questions under every protocol in ``params.protocols``.

    All rounds run in one event loop, ``concurrency`` at a time. Call :func:`simulate_async` from
    code that already runs an event loop.
    """
    return asyncio.run(simulate_async(params or SimParams(), concurrency=concurrency))


# -- sweeps and tables ------------------------------------------------------------------------

_FIELDS = {f.name for f in fields(SimParams)}


def _simulate_cell(params: SimParams, concurrency: int) -> SimResult:
    return simulate(params, concurrency=concurrency)


def sweep(base: SimParams, *, concurrency: int = 64, workers: int = 1,
          **grid: Sequence[Any]) -> list[tuple[SimParams, SimResult]]:
    """Simulate every cell of the grid (the cartesian product of the given values, the first
    parameter varying slowest). Every cell keeps ``base.seed``, so cells share node accuracies and
    draws and differ only by the swept parameters. ``workers > 1`` runs cells in that many
    processes; the results are the same, in the same order."""
    unknown = set(grid) - _FIELDS
    if unknown:
        raise ConfigError(f"unknown simulation parameter(s): {', '.join(sorted(unknown))}")
    keys = list(grid)
    values = [list(v) for v in grid.values()]
    for key, vals in zip(keys, values):
        if not vals:
            raise ConfigError(f"no values given for {key}")
    cells = [replace(base, **dict(zip(keys, combo))) for combo in itertools.product(*values)]
    if workers > 1 and len(cells) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(cells))) as pool:
            outcomes = list(pool.map(_simulate_cell, cells, [concurrency] * len(cells)))
    else:
        outcomes = [simulate(params, concurrency=concurrency) for params in cells]
    return list(zip(cells, outcomes))


def size_curve(base: SimParams, sizes: Iterable[int], *, concurrency: int = 64,
               workers: int = 1) -> list[tuple[SimParams, SimResult]]:
    """Accuracy against the number of answerers: :func:`sweep` over ``n_answerers``.

    ``base.node_accuracies`` cannot be combined with a size curve (it fixes the size) and is dropped.
    """
    return sweep(replace(base, node_accuracies=None), concurrency=concurrency, workers=workers,
                 n_answerers=list(sizes))


def _label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class RegimeGrid:
    """``a`` minus ``b`` per cell; rows are the ``y`` values, columns the ``x`` values."""

    x: str
    y: str
    xs: tuple[Any, ...]
    ys: tuple[Any, ...]
    tests: tuple[tuple[PairedTest, ...], ...]  # tests[row][col]

    @property
    def diff(self) -> np.ndarray:
        return np.array([[t.diff for t in row] for row in self.tests], dtype=float)

    @property
    def significant(self) -> np.ndarray:
        return np.array([[t.low > 0 or t.high < 0 for t in row] for row in self.tests], dtype=bool)


def regime_grid(results: Sequence[tuple[SimParams, SimResult]], x: str, y: str, *, a: str = "peer-rank",
                b: str = "majority", confidence: float = 0.95) -> RegimeGrid:
    """The paired difference ``a - b`` for each (x, y) cell of a sweep (one result per cell)."""
    for name in (x, y):
        if name not in _FIELDS:
            raise ConfigError(f"unknown simulation parameter {name!r}")
    xs = tuple(dict.fromkeys(getattr(p, x) for p, _ in results))
    ys = tuple(dict.fromkeys(getattr(p, y) for p, _ in results))
    cells: dict[tuple[Any, Any], SimResult] = {}
    for params, result in results:
        key = (getattr(params, x), getattr(params, y))
        if key in cells:
            raise ConfigError(f"more than one result for {x}={key[0]!r}, {y}={key[1]!r}: "
                              "a regime map needs a sweep over exactly these two parameters")
        cells[key] = result
    missing = [(vx, vy) for vy in ys for vx in xs if (vx, vy) not in cells]
    if missing:
        raise ConfigError(f"the sweep has no result for {x}={missing[0][0]!r}, {y}={missing[0][1]!r}")
    tests = tuple(tuple(cells[(vx, vy)].difference(a, b, confidence=confidence) for vx in xs) for vy in ys)
    return RegimeGrid(x=x, y=y, xs=xs, ys=ys, tests=tests)


def regime_map(results: Sequence[tuple[SimParams, SimResult]], x: str, y: str, *, a: str = "peer-rank",
               b: str = "majority", confidence: float = 0.95) -> str:
    """A Markdown table of ``a`` minus ``b`` accuracy in points per (x, y) cell; ``*`` marks cells
    whose paired-bootstrap interval excludes 0."""
    grid = regime_grid(results, x, y, a=a, b=b, confidence=confidence)
    lines = [f"| {y} \\ {x} | " + " | ".join(_label(v) for v in grid.xs) + " |",
             "|---|" + "---:|" * len(grid.xs)]
    for vy, row in zip(grid.ys, grid.tests):
        cells = [f"{round(100 * t.diff, 1) + 0.0:+.1f}{'*' if (t.low > 0 or t.high < 0) else ''}" for t in row]
        lines.append(f"| {_label(vy)} | " + " | ".join(cells) + " |")
    n = results[0][1].params.questions if results else 0
    lines.append("")
    lines.append(f"{a} minus {b} accuracy in points, {n} questions per cell; * = the {100 * confidence:g}% "
                 "paired-bootstrap interval excludes 0.")
    return "\n".join(lines)


def size_table(results: Sequence[tuple[SimParams, SimResult]], *, a: str = "peer-rank", b: str = "majority") -> str:
    """Markdown: per swarm size, oracle, mean single node, each protocol's accuracy and judge calls."""
    if not results:
        return ""
    names = list(results[0][1].protocols)
    head = ["answerers", "oracle", "single"] + [f"{n} acc" for n in names]
    if a in names and b in names:
        head.append(f"{a} − {b}")
    head += [f"{n} judge calls" for n in names] + [f"{n} calls" for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for params, result in results:
        row = [str(params.n_answerers), f"{100 * result.oracle.mean:.1f}", f"{100 * result.single:.1f}"]
        row += [f"{100 * result[n].accuracy.mean:.1f}" for n in names]
        if a in names and b in names:
            t = result.difference(a, b)
            row.append(f"{round(100 * t.diff, 1) + 0.0:+.1f}{'*' if (t.low > 0 or t.high < 0) else ''}")
        row += [f"{result[n].judge_calls:.1f}" for n in names] + [f"{result[n].calls:.1f}" for n in names]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
