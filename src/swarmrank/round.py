"""The round runner: concurrent calls with timeouts and a deadline, and cost accounting per phase.

A protocol drives a :class:`RoundContext`; the context makes every node call (so timeouts, the
deadline, failures and costs are handled once) and collects the trace that becomes a
:class:`~swarmrank.result.RoundResult`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import TypeVar

from swarmrank.errors import NodeError, NodeTimeoutError
from swarmrank.nodes.base import Completion, CompletionRequest, Message, Node
from swarmrank.result import Answer, Candidate, Cost, Judgment, PhaseCost, Ranking, RoundResult
from swarmrank.redflag import red_flag
from swarmrank.reliability import JudgeBook, ReliabilityParams
from swarmrank.tasks import Task

T = TypeVar("T")

DEFAULT_SYSTEM = "You are a careful assistant. Answer correctly and concisely."


@dataclass(frozen=True)
class RoundOptions:
    """Knobs a protocol reads. Every field has a sane default; the swarm config sets them."""

    schedule: str = "cluster"
    judges_per_pair: int = 2
    max_full_pairs: int = 8
    node_timeout: float = 120.0
    deadline: float = 600.0
    max_answer_chars: int = 4000
    k: int = 3
    max_samples: int = 24
    rounds: int = 2
    goodbad: bool = True
    influence: dict[str, float] = field(default_factory=dict)
    prior: float = 0.1
    soft_verdicts: bool = True
    vote_weighted: bool = True
    # peer-rank aggregation: "evidence" (votes as prior, verdicts weighted by estimated judge
    # reliability; swarmrank.reliability) or "bradley-terry" (votes × Bradley–Terry, before 0.2)
    aggregation: str = "evidence"
    vote_prior: float = 0.5          # evidence: nats per vote (the prior mean of it, when learnt)
    learn_vote_prior: bool = True    # evidence: learn how much a vote is worth from past rounds
    judge_prior_kappa: float = 0.7   # evidence: prior mean discrimination of a judge that has shown something
    judge_prior_weight: float = 4.0  # evidence: the prior's worth in pseudo-observations
    judge_prior_null: float = 0.5    # evidence: prior probability that a judge carries no information
    consensus_floor: float = 0.3     # evidence: least weight a judge has in the consensus others are scored by
    self_bias: float = 0.5           # evidence: P(a judge backs its own answer whatever its merit)
    caution: float = 0.5             # evidence: decide with each judge's discrimination at mean − caution·sd
    judge_priors: dict[str, float] = field(default_factory=dict)  # evidence: judge id → what you know of its κ
    reliability_memory: float = 200.0  # evidence: rounds the judge book remembers
    learn_reliability: bool = True   # evidence: carry judge reliability across rounds (the judge book)
    interested_judges: str = "fill"  # cluster/adaptive: "fill" pairs lacking neutral judges with interested ones; "never"
    judge_style: str = "compare"     # "compare" (Fortytwo: do not re-solve) or "reference" (solve first, then compare)
    stop_at: float = 0.95            # adaptive schedule: stop once the leader's posterior reaches this
    max_judge_calls: int = 0         # adaptive schedule: judge calls at most (0: what cluster would make with every judge)

    def reliability_params(self) -> ReliabilityParams:
        return ReliabilityParams(vote_prior=self.vote_prior, learn_vote_prior=self.learn_vote_prior,
                                 prior_kappa=self.judge_prior_kappa,
                                 prior_weight=self.judge_prior_weight, prior_null=self.judge_prior_null,
                                 consensus_floor=self.consensus_floor, self_bias=self.self_bias, caution=self.caution,
                                 judge_priors=tuple(sorted(self.judge_priors.items())),
                                 memory=self.reliability_memory)


def signature_of(completion: Completion | None) -> dict[str, str] | None:
    """A node agent's signature riding on a completion (``swarmrank.nodes.remote``), as a dict."""
    signature = getattr(completion, "signature", None)
    if signature is None:
        return None
    return {k: str(v) for k, v in asdict(signature).items()}


@dataclass
class CallOutcome:
    node: Node
    completion: Completion | None
    error: str | None
    seconds: float


class RoundContext:
    """Per-round state: the task, the nodes, the clock, the cost ledger and the trace."""

    def __init__(self, task: Task, nodes: Sequence[Node], options: RoundOptions, *, protocol: str,
                 swarm: str = "default", truth: str | None = None,
                 on_event: Callable[[str, dict[str, object]], None] | None = None,
                 book: JudgeBook | None = None) -> None:
        self.task = task
        self.nodes = list(nodes)
        self.by_id = {n.id: n for n in nodes}
        self.options = options
        self.protocol = protocol
        self.swarm = swarm
        self.truth = truth
        self.round_id = uuid.uuid4().hex
        self.created_at = datetime.now(timezone.utc)
        self.started = time.monotonic()
        self.phases: dict[str, PhaseCost] = {}
        self.answers: list[Answer] = []
        self.judgments: list[Judgment] = []
        self.rankings: list[Ranking] = []
        self.notes: list[str] = []
        self._on_event = on_event
        #: judge reliability learned in earlier rounds (peer-rank's evidence aggregation reads it)
        self.book = book

    # -- clock and events -------------------------------------------------------------------
    def remaining(self) -> float:
        return self.options.deadline - (time.monotonic() - self.started)

    def emit(self, event: str, **data: object) -> None:
        if self._on_event is not None:
            self._on_event(event, data)

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.emit("note", text=text)

    def phase_cost(self, phase: str) -> PhaseCost:
        return self.phases.setdefault(phase, PhaseCost())

    # -- calls --------------------------------------------------------------------------------
    async def call(self, node: Node, request: CompletionRequest, phase: str) -> CallOutcome:
        """One node call under the per-node timeout and the round deadline; never raises NodeError."""
        node_timeout = self.options.node_timeout
        budget = self.remaining()
        # a queueing backend times the call from when it starts running; others from now
        limit = budget if node.backend.queues_calls else min(node_timeout, budget)
        start = time.monotonic()
        cost = self.phase_cost(phase)
        cost.calls += 1
        if limit <= 0:
            cost.failures += 1
            return CallOutcome(node, None, "timeout: the round deadline passed before the call", 0.0)
        try:
            async with asyncio.timeout(limit):  # cheaper than wait_for: no extra task per call
                completion = await node.complete(replace(request, timeout=node_timeout))
        except (TimeoutError, NodeTimeoutError):
            cost.failures += 1
            reason = ("timeout: the round deadline passed" if self.remaining() <= 0.001
                      else f"timeout after {node_timeout:.1f}s")
            return CallOutcome(node, None, reason, time.monotonic() - start)
        except NodeError as exc:
            cost.failures += 1
            return CallOutcome(node, None, f"error: {exc}", time.monotonic() - start)
        except Exception as exc:  # a backend bug must not sink the round; it is recorded instead
            cost.failures += 1
            return CallOutcome(node, None, f"error: {type(exc).__name__}: {exc}", time.monotonic() - start)
        cost.prompt_tokens += completion.prompt_tokens
        cost.cached_prompt_tokens += completion.cached_tokens
        cost.completion_tokens += completion.completion_tokens
        return CallOutcome(node, completion, None, time.monotonic() - start)

    async def gather_phase(self, phase: str, coros: Sequence[Awaitable[T]]) -> list[T]:
        if not coros:
            return []
        start = time.monotonic()
        self.emit("phase", phase=phase, calls=len(coros))
        try:
            return list(await asyncio.gather(*coros))
        finally:
            self.phase_cost(phase).seconds += time.monotonic() - start

    # -- answering ----------------------------------------------------------------------------
    def answer_request(self, node: Node, *, sample: int = 0, extra: str = "", purpose: str = "answer",
                       context: dict[str, object] | None = None, wants_confidence: bool = False) -> CompletionRequest:
        user = f"{self.task.question}\n\n{self.task.instruction()}"
        if wants_confidence:
            user += "\nThen add a line 'Confidence: p' with your confidence p between 0 and 1."
        if extra:
            user = f"{user}\n\n{extra}"
        ctx: dict[str, object] = {"question": self.task.question, "sample": sample,
                                  "wants": ("confidence",) if wants_confidence else ()}
        if self.truth is not None:
            ctx["truth"] = self.truth
        ctx.update(context or {})
        return CompletionRequest(
            messages=(Message("system", node.persona.system or DEFAULT_SYSTEM), Message("user", user)),
            purpose=purpose,  # type: ignore[arg-type]
            temperature=node.persona.temperature,
            max_tokens=node.persona.max_tokens,
            seed=node.persona.seed + sample,
            context=ctx,
        )

    def record_answer(self, outcome: CallOutcome, *, step: int = 0, sample: int = 0,
                      confidence: float | None = None) -> Answer:
        completion = outcome.completion
        if completion is None:
            answer = Answer(node=outcome.node.id, text="", excluded=outcome.error, step=step, sample=sample,
                            seconds=outcome.seconds)
        else:
            reason = red_flag(self.task, completion, max_chars=self.options.max_answer_chars)
            answer = Answer(
                node=outcome.node.id, text=completion.text, value=None if reason else self.task.extract(completion.text),
                excluded=reason, step=step, sample=sample, confidence=confidence, signature=signature_of(completion),
                prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                seconds=outcome.seconds,
            )
        self.answers.append(answer)
        self.emit("answer", node=answer.node, value=answer.value, excluded=answer.excluded)
        return answer

    async def fan_out(self, nodes: Sequence[Node], *, phase: str = "answer", step: int = 0,
                      request_for: Callable[[Node], CompletionRequest] | None = None,
                      confidence_of: Callable[[str], float | None] | None = None) -> list[Answer]:
        make = request_for or (lambda n: self.answer_request(n))
        outcomes = await self.gather_phase(phase, [self.call(n, make(n), phase) for n in nodes])
        return [
            self.record_answer(o, step=step, confidence=confidence_of(o.completion.text)
                               if confidence_of and o.completion else None)
            for o in outcomes
        ]

    # -- result -------------------------------------------------------------------------------
    def result(self, *, candidates: list[Candidate], winner: int | None, confidence: float,
               answers: Sequence[Answer] | None = None, schedule: str | None = None,
               **extra: object) -> RoundResult:
        wall = time.monotonic() - self.started
        chosen = candidates[winner] if winner is not None else None
        return RoundResult(
            round_id=self.round_id, created_at=self.created_at, question=self.task.question,
            task_type=self.task.type.value, protocol=self.protocol, schedule=schedule,
            answer=chosen.answer if chosen else None, answer_text=chosen.text if chosen else None,
            winner=winner, confidence=float(confidence), answers=list(answers if answers is not None else self.answers),
            candidates=candidates, judgments=self.judgments, rankings=self.rankings, notes=self.notes,
            cost=Cost(phases=self.phases, wall_seconds=wall), swarm=self.swarm, **extra,  # type: ignore[arg-type]
        )
