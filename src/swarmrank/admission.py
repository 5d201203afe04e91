"""Proof-of-capability admission: a calibration exam a node must pass before its work counts.

An exam (after Fortytwo's registration challenge) has two parts, each on freshly generated items
with known answers that the node cannot have seen (a new random seed per exam unless one is given):

* **answering** — ``answer_items`` arithmetic questions, asked with the same prompt a round uses;
* **judging** — ``judge_items`` A/B challenges: a right and a wrong solution to a question, shown
  in *both* orders; a challenge counts only if the node prefers the right one both times, so a
  position-biased or coin-flipping judge cannot pass by luck (a coin passes a challenge with
  probability 1/4).

A node must reach ``threshold`` in each part for the roles it has. The result (scores, the seed,
the calls and tokens spent) goes to the ledger through :meth:`swarmrank.registry.Registry.admit`.
The defaults — 20 + 20 items, threshold 0.6 — refuse a coin-flipping judge with probability
≈ 0.999 (P[Binomial(20, 1/4) ≥ 12] ≈ 0.0009) and an answerer that is right 30% of the time with
probability ≈ 0.995.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swarmrank.errors import ConfigError
from swarmrank.judging import judge_messages, parse_verdict
from swarmrank.nodes.base import CompletionRequest, Node
from swarmrank.round import RoundContext, RoundOptions
from swarmrank.tasks import Task

__all__ = ["ExamItem", "ExamParams", "ExamResult", "exam_items", "run_exam"]


@dataclass(frozen=True)
class ExamItem:
    question: str
    gold: str
    wrong: str


@dataclass(frozen=True)
class ExamParams:
    answer_items: int = 20
    judge_items: int = 20
    threshold: float = 0.6
    level: str = "medium"   # easy: one-digit operands; medium: two-digit; hard: three-digit
    seed: int | None = None  # None: a fresh random seed per exam (items the node has not seen)

    def __post_init__(self) -> None:
        if self.level not in _DIGITS:
            raise ConfigError(f"exam level must be one of {', '.join(_DIGITS)}, not {self.level!r}")
        if self.answer_items < 0 or self.judge_items < 0 or self.answer_items + self.judge_items == 0:
            raise ConfigError("an exam needs at least one item")
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError("the exam threshold must be in (0, 1]")


_DIGITS = {"easy": (1, 9), "medium": (10, 99), "hard": (100, 999)}


def exam_items(n: int, *, seed: int, level: str = "medium") -> list[ExamItem]:
    """``n`` arithmetic questions with their answer and a plausible wrong answer (off by a little)."""
    lo, hi = _DIGITS[level]
    rng = random.Random(f"swarmrank-exam|{seed}|{level}")
    items = []
    for _ in range(n):
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        op = rng.choice("+-*") if level != "hard" else rng.choice("+-")
        if op == "-" and b > a:
            a, b = b, a
        gold = a + b if op == "+" else a - b if op == "-" else a * b
        wrong = gold + rng.choice([-10, -2, -1, 1, 2, 10])
        symbol = {"+": "+", "-": "-", "*": "×"}[op]
        items.append(ExamItem(f"What is {a} {symbol} {b}?", str(gold), str(wrong)))
    return items


@dataclass
class ExamResult:
    node: str
    seed: int
    answer_correct: int = 0
    answer_total: int = 0
    judge_correct: int = 0
    judge_total: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    threshold: float = 0.6
    failures: list[str] = field(default_factory=list)

    @property
    def answer_score(self) -> float | None:
        return self.answer_correct / self.answer_total if self.answer_total else None

    @property
    def judge_score(self) -> float | None:
        return self.judge_correct / self.judge_total if self.judge_total else None

    @property
    def passed(self) -> bool:
        scores = [s for s in (self.answer_score, self.judge_score) if s is not None]
        return bool(scores) and all(s >= self.threshold - 1e-12 for s in scores)

    def report(self) -> dict[str, Any]:
        """The ledger payload (besides ``node`` and ``passed``)."""
        return {"seed": self.seed, "answer": [self.answer_correct, self.answer_total],
                "judge": [self.judge_correct, self.judge_total], "threshold": self.threshold,
                "calls": self.calls, "tokens": self.prompt_tokens + self.completion_tokens,
                "seconds": round(self.seconds, 3)}


async def run_exam(node: Node, params: ExamParams | None = None, *,
                   on_progress: Callable[[int, int], None] | None = None,
                   node_timeout: float = 120.0) -> ExamResult:
    """Examine ``node`` in the roles it has. Failed calls count as wrong answers."""
    params = params or ExamParams()
    seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(6), "big")
    result = ExamResult(node=node.id, seed=seed, threshold=params.threshold)
    start = time.monotonic()
    answer_items = exam_items(params.answer_items, seed=seed, level=params.level) if node.answers else []
    judge_items = exam_items(params.judge_items, seed=seed + 1, level=params.level) if node.judges else []
    total = len(answer_items) + 2 * len(judge_items)
    done = 0
    options = RoundOptions(node_timeout=node_timeout, deadline=node_timeout * (total + 1))

    def tick() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, total)

    for item in answer_items:
        task = Task.create(item.question, "number")
        ctx = RoundContext(task, [node], options, protocol="exam", truth=item.gold)
        outcome = await ctx.call(node, ctx.answer_request(node), "answer")
        _count(result, outcome)
        value = task.extract(outcome.completion.text) if outcome.completion else None
        result.answer_total += 1
        result.answer_correct += int(value == task.extract(item.gold))
        tick()

    for item in judge_items:
        task = Task.create(item.question, "number")
        ctx = RoundContext(task, [node], options, protocol="exam", truth=item.gold)
        right, wrong = f"{item.question} The answer is {item.gold}.", f"{item.question} The answer is {item.wrong}."
        both = []
        for first, second, first_value, second_value in ((right, wrong, item.gold, item.wrong),
                                                         (wrong, right, item.wrong, item.gold)):
            request = CompletionRequest(
                messages=judge_messages(task, first, second), purpose="judge", temperature=0.3,
                max_tokens=node.persona.judge_max_tokens, seed=node.persona.seed, top_logprobs=5,
                context={"question": item.question, "first_value": first_value, "second_value": second_value,
                         "truth": item.gold})
            outcome = await ctx.call(node, request, "judge")
            _count(result, outcome)
            verdict = parse_verdict(outcome.completion.text) if outcome.completion else None
            both.append(verdict == ("A" if first_value == item.gold else "B"))
            tick()
        result.judge_total += 1
        result.judge_correct += int(all(both))
    result.seconds = time.monotonic() - start
    return result


def _count(result: ExamResult, outcome: Any) -> None:
    result.calls += 1
    if outcome.completion is None:
        result.failures.append(outcome.error or "failed")
        return
    result.prompt_tokens += outcome.completion.prompt_tokens
    result.completion_tokens += outcome.completion.completion_tokens


def run_exam_sync(node: Node, params: ExamParams | None = None, **kwargs: Any) -> ExamResult:
    return asyncio.run(run_exam(node, params, **kwargs))
