"""A swarmrank plugin for the test suite: one protocol, one backend, one dataset loader.

Active only when ``SWARMRANK_TEST_PLUGIN=1`` (it is installed into the development environment).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from swarmrank.eval.datasets import EvalItem, make_item
from swarmrank.nodes.base import Backend, BuildContext, Completion, CompletionRequest
from swarmrank.plugins import hookimpl
from swarmrank.protocols import Protocol, answerers, group, no_answer
from swarmrank.result import RoundResult
from swarmrank.round import RoundContext


def active() -> bool:
    return os.environ.get("SWARMRANK_TEST_PLUGIN") == "1"


class FirstAnswer(Protocol):
    """The first usable answer wins: a protocol with nothing to it, to show a plugin's one runs."""

    name = "first-answer"
    summary = "every node answers once; the first usable answer wins (a test plugin)"

    async def run(self, ctx: RoundContext) -> RoundResult:
        answers, candidates = group(await ctx.fan_out(answerers(ctx)))
        if not candidates:
            return no_answer(ctx, answers)
        candidates[0].strength, candidates[0].votes = 1.0, float(len(candidates[0].nodes))
        return ctx.result(candidates=candidates, winner=0, confidence=1.0, answers=answers)


class AddingBackend(Backend):
    """Adds the numbers in the question: a backend with nothing to it."""

    name = "adder"

    async def complete(self, request: CompletionRequest) -> Completion:
        numbers = [int(n) for n in re.findall(r"\d+", str(request.context.get("question", "")))]
        return Completion(text=f"The sum is {sum(numbers)}.\nAnswer: {sum(numbers)}", prompt_tokens=1,
                          completion_tokens=1)


def build_adder(options: Mapping[str, Any], ctx: BuildContext) -> AddingBackend:
    return AddingBackend()


def load_sums(args: str) -> list[EvalItem]:
    """``sums:<n>``: n additions."""
    return [make_item(id=f"sums/{k}", prompt=f"What is {k} + {k}?", task_type="number", gold_text=str(2 * k),
                      source="swarmrank-test-plugin", difficulty="easy") for k in range(int(args))]


@hookimpl
def register_protocols(register: Callable[[Protocol], None]) -> None:
    if active():
        register(FirstAnswer())


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    if active():
        register("adder", build_adder)


@hookimpl
def register_dataset_loaders(register: Callable[..., None]) -> None:
    if active():
        register("sums", load_sums)
