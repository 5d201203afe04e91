"""Scripted nodes: deterministic behaviour for tests, simulation and adversaries.

A scripted node answers from a table (question → answer, ``"*"`` for any question; see
:meth:`ScriptedBackend.own_answer` for how a key matches), honours ``max_tokens`` (a token is a
word here, as in its token counts) and answers JSON tasks with the bare answer,
judges by a named rule, and can be told to be slow or to fail. Its replies go through the same
parsers as a real model's, so a scripted swarm exercises the whole round.

Judge rules (``judge = ...``):

``truth``   prefer the candidate equal to ``truth`` (a discriminating judge); else tie
``own``     prefer the candidate equal to this node's own answer (a self-promoter)
``prefer``  prefer the candidate equal to ``prefer`` (a colluding judge)
``first`` / ``second``   always the candidate shown first / second (position bias)
``tie``     always a tie
``random``  a seeded coin

With ``judge_accuracy = p`` a ``truth`` judge prefers the truth with probability p in each verdict
(seeded per request, so the two orders of a pair are independent draws) and the other answer otherwise.

Faults (``fault = ...``, with ``fault_rate`` in [0, 1], on purposes listed in ``fault_on``):
``timeout`` (sleeps forever), ``crash`` (raises), ``garbage`` (random bytes), ``empty``, ``refuse``,
``long`` (a wall of text).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from swarmrank.errors import ConfigError, NodeError
from swarmrank.nodes.base import Backend, BuildContext, Completion, CompletionRequest
from swarmrank.plugins import hookimpl


def _plain(text: str) -> str:
    """Lower case, one space between words: how answer-table keys and questions are compared."""
    return " ".join(text.lower().split())


JUDGE_RULES = ("truth", "own", "prefer", "first", "second", "tie", "random")
FAULTS = ("timeout", "crash", "garbage", "empty", "refuse", "long")
REVISE_RULES = ("stubborn", "majority", "truth")


@dataclass
class ScriptedBackend(Backend):
    """Answers, judges and ranks by rule. Safe to share; all randomness is seeded per request."""

    answers: Mapping[str, str] = field(default_factory=lambda: {"*": "42"})
    judge: str = "truth"
    truth: str | None = None
    prefer: str | None = None
    confidence: float | None = None
    revise: str = "stubborn"
    latency: float = 0.0
    fault: str | None = None
    fault_rate: float = 1.0
    fault_on: Sequence[str] = ("answer", "grade", "judge", "rank", "revise", "probe")
    seed: int = 0
    accuracy: float | None = None
    judge_accuracy: float | None = None
    wrong: str = "0"
    name: str = "scripted"

    def __post_init__(self) -> None:
        if self.judge not in JUDGE_RULES:
            raise ConfigError(f"scripted judge rule must be one of {', '.join(JUDGE_RULES)}, not {self.judge!r}")
        if self.fault is not None and self.fault not in FAULTS:
            raise ConfigError(f"scripted fault must be one of {', '.join(FAULTS)}, not {self.fault!r}")
        if self.revise not in REVISE_RULES:
            raise ConfigError(f"scripted revise rule must be one of {', '.join(REVISE_RULES)}, not {self.revise!r}")
        if self.judge_accuracy is not None and not 0.0 <= self.judge_accuracy <= 1.0:
            raise ConfigError("scripted judge_accuracy must be between 0 and 1")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ConfigError("scripted fault_rate must be between 0 and 1")

    def describe(self) -> str:
        return f"scripted(judge={self.judge}{', fault=' + self.fault if self.fault else ''})"

    def cache_identity(self) -> str:
        fields = {k: v for k, v in self.__dict__.items() if k != "latency"}
        return f"scripted{sorted((k, repr(v)) for k, v in fields.items())}"

    def _rng(self, request: CompletionRequest) -> random.Random:
        key = f"{self.seed}|{request.seed}|{request.purpose}|{request.context.get('question', '')}|" \
              f"{request.context.get('first_value')}|{request.context.get('second_value')}"
        return random.Random(key)

    async def complete(self, request: CompletionRequest) -> Completion:
        rng = self._rng(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.fault and request.purpose in self.fault_on and rng.random() < self.fault_rate:
            return await self._fail(rng)
        handler: dict[str, Callable[[CompletionRequest, random.Random], str]] = {
            "answer": self._answer,
            "probe": self._answer,
            "grade": self._grade,
            "judge": self._judge,
            "rank": self._rank,
            "revise": self._revise,
        }
        text = handler[request.purpose](request, rng)
        prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        finish = "stop"
        words = re.findall(r"\S+\s*", text)
        if len(words) > request.max_tokens:
            text, finish = "".join(words[: request.max_tokens]).rstrip(), "length"
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=len(text.split()),
                          finish_reason=finish)

    async def _fail(self, rng: random.Random) -> Completion:
        if self.fault == "timeout":
            await asyncio.sleep(3600)
        if self.fault == "crash":
            raise NodeError("scripted crash")
        if self.fault == "garbage":
            return Completion(text="".join(chr(rng.randrange(0x21, 0x2FF)) for _ in range(40)))
        if self.fault == "empty":
            return Completion(text="")
        if self.fault == "refuse":
            return Completion(text="I'm sorry, but I can't help with that request.")
        return Completion(text="blah " * 2000, completion_tokens=2000, finish_reason="length")

    def own_answer(self, question: str, rng: random.Random | None = None, truth: str | None = None) -> str:
        """The node's answer from its table: the key equal to the whole question (case and spacing
        aside), else the longest key the question contains as whole words ("3 + 4" matches "What is
        3 + 4?" but not "13 + 4" or "3 + 45"), else ``"*"``. With ``accuracy`` set it is the truth
        (the node's own, else the one the request carries for evaluation) with that probability,
        else ``wrong``."""
        asked = _plain(question)
        keys = [k for k in self.answers if k != "*"]
        exact = [k for k in keys if _plain(k) == asked]
        inside = sorted((k for k in keys if _plain(k) and re.search(rf"(?<!\w){re.escape(_plain(k))}(?!\w)", asked)),
                        key=lambda k: -len(_plain(k)))
        chosen = self.answers[(exact or inside)[0]] if exact or inside else self.answers.get("*", "42")
        truth = self.truth if self.truth is not None else truth
        if self.accuracy is not None and rng is not None and truth is not None:
            chosen = truth if rng.random() < self.accuracy else self.wrong
        return chosen

    def _answer(self, request: CompletionRequest, rng: random.Random) -> str:
        truth = request.context.get("truth")
        answer = self.own_answer(str(request.context.get("question", "")), rng,
                                 None if truth is None else str(truth))
        if request.response_format == "json" or "\n" in answer:  # JSON, or a block (a program, a paragraph)
            return answer
        text = f"Let me think. The answer is {answer}."
        if self.confidence is not None or "confidence" in request.context.get("wants", ()):
            text += f"\nAnswer: {answer}\nConfidence: {self.confidence if self.confidence is not None else 0.7}"
        return text

    def _grade(self, request: CompletionRequest, rng: random.Random) -> str:
        """GOOD for any genuine attempt; a colluding grader ('prefer') calls every other answer BAD."""
        value = request.context.get("value")
        if value is None or (self.judge == "prefer" and value != self.prefer):
            return "BAD"
        return "GOOD"

    def _preferred(self, request: CompletionRequest) -> str | None:
        if self.judge == "truth":
            return self.truth if self.truth is not None else request.context.get("truth")
        if self.judge == "own":
            return self.own_answer(str(request.context.get("question", "")))
        if self.judge == "prefer":
            return self.prefer
        return None

    def _judge(self, request: CompletionRequest, rng: random.Random) -> str:
        first, second = request.context.get("first_value"), request.context.get("second_value")
        verdict = "U"
        if self.judge == "first":
            verdict = "A"
        elif self.judge == "second":
            verdict = "B"
        elif self.judge == "random":
            verdict = rng.choice("AB")
        elif self.judge != "tie":
            wanted = self._preferred(request)
            if wanted is not None and first == wanted != second:
                verdict = "A"
            elif wanted is not None and second == wanted != first:
                verdict = "B"
            if verdict != "U" and self.judge_accuracy is not None and rng.random() >= self.judge_accuracy:
                verdict = "B" if verdict == "A" else "A"
        return f"Comparing the two solutions by rule {self.judge}.\nVerdict: {verdict}"

    def _rank(self, request: CompletionRequest, rng: random.Random) -> str:
        values: list[str] = list(request.context.get("candidates", ()))
        labels = [chr(ord("A") + i) for i in range(len(values))]
        order = list(range(len(values)))
        if self.judge == "random":
            rng.shuffle(order)
        elif self.judge == "second":
            order.reverse()
        else:
            wanted = self._preferred(request)
            order.sort(key=lambda i: (values[i] != wanted, i))
        lines = "\n".join(f"{pos + 1}. Response {labels[i]}" for pos, i in enumerate(order))
        return f"I compared every response.\nFINAL RANKING:\n{lines}"

    def _revise(self, request: CompletionRequest, rng: random.Random) -> str:
        peers: list[str] = list(request.context.get("peers", ()))
        answer = str(request.context.get("previous") or self.own_answer(str(request.context.get("question", "")), rng))
        if self.revise == "majority" and peers:
            answer = Counter([*peers, answer]).most_common(1)[0][0]
        elif self.revise == "truth" and self.truth is not None and self.truth in peers:
            answer = self.truth
        text = f"Having read the other answers, the answer is {answer}."
        if self.confidence is not None or "confidence" in request.context.get("wants", ()):
            text += f"\nAnswer: {answer}\nConfidence: {self.confidence if self.confidence is not None else 0.7}"
        return text


Scalar = str | int | float


class _Options(BaseModel):
    """A scripted node's TOML options, typed: a wrong type is a one-line ConfigError, not a crash mid-round."""

    model_config = ConfigDict(extra="forbid")

    answers: dict[str, Scalar] = Field(default_factory=dict)
    answer: Scalar | None = None
    judge: str = "truth"
    truth: Scalar | None = None
    prefer: Scalar | None = None
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    revise: str = "stubborn"
    latency: Annotated[float, Field(ge=0.0)] = 0.0
    fault: str | None = None
    fault_rate: float = 1.0
    fault_on: list[str] = Field(default_factory=lambda: ["answer", "grade", "judge", "rank", "revise", "probe"])
    seed: int = 0
    accuracy: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    judge_accuracy: float | None = None
    wrong: Scalar = "0"


def _text(value: Scalar | None) -> str | None:
    return None if value is None else str(value)


def build(options: Mapping[str, Any], ctx: BuildContext) -> ScriptedBackend:
    unknown = set(options) - set(_Options.model_fields)
    if unknown:
        raise ConfigError(f"unknown scripted option(s): {', '.join(sorted(unknown))}")
    try:
        opts = _Options.model_validate(dict(options))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"bad scripted node option {where}: {first['msg']} (got {first.get('input')!r})") from None
    answers = {str(k): str(v) for k, v in opts.answers.items()}
    if opts.answer is not None:
        answers["*"] = str(opts.answer)
    return ScriptedBackend(
        answers=answers or {"*": "42"}, judge=opts.judge, truth=_text(opts.truth), prefer=_text(opts.prefer),
        confidence=opts.confidence, revise=opts.revise, latency=opts.latency, fault=opts.fault,
        fault_rate=opts.fault_rate, fault_on=tuple(opts.fault_on), seed=opts.seed, accuracy=opts.accuracy,
        judge_accuracy=opts.judge_accuracy, wrong=str(opts.wrong))


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register("scripted", build)
