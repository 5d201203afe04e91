"""The round runner: concurrent calls with timeouts and a deadline, and cost accounting per phase.

A protocol drives a :class:`RoundContext`; the context makes every node call (so timeouts, the
deadline, failures and costs are handled once) and collects the trace that becomes a
:class:`~swarmrank.result.RoundResult`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar

from pydantic import Field, ValidationInfo, field_validator

from swarmrank.errors import ConfigError, NodeError, NodeTimeoutError
from swarmrank.nodes.base import Completion, CompletionRequest, Message, Node
from swarmrank.options import options
from swarmrank.pricing import Price
from swarmrank.redflag import red_flag
from swarmrank.reliability import AGGREGATIONS, KAPPA_MAX, JudgeBook, ReliabilityParams
from swarmrank.result import Answer, Candidate, Cost, Judgment, NodeCost, PhaseCost, Ranking, RoundResult
from swarmrank.sandbox import Limits
from swarmrank.schedule import INTERESTED, JUDGE_STYLES, check_schedule
from swarmrank.tasks import Clusterer, Task, TaskType, check_schema

T = TypeVar("T")

DEFAULT_SYSTEM = "You are a careful assistant. Answer correctly and concisely."
#: red flags that only say no answer could be read (a cut-off answer has these)
UNREADABLE = ("empty", "over-long: cut off", "malformed: no ", "invalid JSON", "does not match the JSON Schema")
SCHEMA_MISMATCH = "does not match the JSON Schema"


@options
class RoundOptions:
    """Knobs a protocol reads, each with its default and bounds: the ``[round]`` section of a swarm
    config is exactly this type, so a field added here is a new ``[round]`` key.

    Validated on construction (and by ``dataclasses.replace``): a bad value is a one-line
    :class:`~swarmrank.errors.ConfigError`.
    """

    schedule: str = "cluster"  # pair schedule: cluster, fortytwo or adaptive (swarmrank.schedule)
    judges_per_pair: Annotated[int, Field(ge=1)] = 2  # cluster schedule: judges per distinct pair
    max_full_pairs: Annotated[int, Field(ge=2)] = 8  # cluster schedule: more candidates get adjacent + cross pairs
    node_timeout: Annotated[float, Field(gt=0)] = 120.0  # seconds one node call may take
    deadline: Annotated[float, Field(gt=0)] = 600.0  # seconds a whole round may take
    max_answer_chars: Annotated[int, Field(ge=1)] = 4000  # longer answers are red-flagged
    k: Annotated[int, Field(ge=1)] = 3  # ahead-by-k: the lead that decides
    max_samples: Annotated[int, Field(ge=1)] = 24  # ahead-by-k: give up (take the leader) after this many samples
    rounds: Annotated[int, Field(ge=0)] = 2  # debate / weighted-vote: revision rounds at most
    goodbad: bool = True  # fortytwo schedule: judges grade answers GOOD/BAD before comparing
    influence: dict[str, float] = field(default_factory=dict)  # judge id → weight in Bradley–Terry (default 1)
    prior: Annotated[float, Field(gt=0)] = 0.1  # Bradley–Terry: virtual wins and losses against a reference
    soft_verdicts: bool = True  # count a judgment by its verdict distribution when the backend gives it
    vote_weighted: bool = True  # bradley-terry: a candidate's strength ∝ its votes × its Bradley–Terry strength
    # peer-rank's aggregation and judge reliability (swarmrank.reliability; docs/protocols.md)
    aggregation: str = "evidence"  # "evidence" (votes as prior, verdicts by estimated reliability) or "bradley-terry"
    vote_prior: Annotated[float, Field(ge=0)] = 0.5  # nats one vote is worth (its prior mean, when learnt)
    learn_vote_prior: bool = True  # learn what a vote is worth from how well votes predicted the judges
    judge_prior_weight: Annotated[float, Field(gt=0)] = 4.0  # the prior's worth in pseudo-observations
    judge_prior_null: Annotated[float, Field(ge=0, lt=1)] = 0.5  # prior probability that a judge tells nothing
    consensus_floor: Annotated[float, Field(ge=0, le=KAPPA_MAX)] = 0.3  # least weight in the consensus others face
    self_bias: Annotated[float, Field(ge=0, lt=1)] = 0.5  # P(a judge backs its own answer whatever its merit)
    caution: Annotated[float, Field(ge=0, le=3)] = 0.5  # decide with each judge's κ at mean − caution·sd
    judge_priors: dict[str, float] = field(default_factory=dict)  # judge id → the discrimination you know it has
    reliability_memory: Annotated[float, Field(ge=1)] = 200.0  # rounds the judge book remembers
    learn_reliability: bool = True  # carry judge reliability across rounds (the judge book)
    interested_judges: str = "fill"  # "fill" pairs short of neutral judges with interested ones, or "never"
    judge_style: str = "compare"  # "compare" (Fortytwo: do not re-solve) or "reference" (the judge solves first)
    stop_at: Annotated[float, Field(gt=0.5, le=1)] = 0.95  # adaptive: stop once the leader's posterior reaches this
    max_judge_calls: Annotated[int, Field(ge=0)] = 0  # adaptive: judge calls at most (0: every judge once per pair)
    # how answers are sampled, over every answering node's persona (the chat-completions request fields
    # temperature, top_p, seed, max_tokens, stop, presence_penalty, frequency_penalty set these per round)
    answer_temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    answer_top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    answer_seed: int | None = None  # node calls are seeded answer_seed + the persona's seed (+ the sample)
    answer_max_tokens: Annotated[int, Field(ge=1)] | None = None  # replaces each persona's max_tokens
    answer_stop: tuple[str, ...] = ()  # up to 4 stop sequences
    answer_presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    answer_frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    answer_schema: dict[str, Any] | None = None  # json tasks: the JSON Schema every answer must match
    # answers that are the same (swarmrank.tasks.Clusterer; docs/protocols.md)
    embeddings: str = "minilm"  # short/free answers by meaning: "minilm" (packaged), "none", or an http(s) endpoint
    embeddings_model: str = ""  # the model an embeddings endpoint serves
    same_meaning: Annotated[float, Field(gt=-1, le=1)] | None = None  # cosine threshold (None: calibrated default)
    code_inputs: Annotated[int, Field(ge=0, le=64)] = 8  # code: generated inputs besides the question's examples
    code_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0  # code: wall seconds for one program's run
    code_memory_mb: Annotated[int, Field(ge=64)] = 512  # code: address space of one program's run
    # synthesis (docs/protocols.md): after the protocol picks, one node writes an answer from the best k
    synthesize: bool = False  # run the synthesis step after any protocol
    synthesizer: str = ""  # the node that writes it ("": the first judge, else the first answerer)
    synthesis_k: Annotated[int, Field(ge=1)] = 3  # the best k candidates it is shown, with their ranks

    @field_validator("embeddings")
    @classmethod
    def _known_embeddings(cls, value: str) -> str:
        if value not in ("minilm", "none") and not value.startswith(("http://", "https://")):
            raise ValueError(f"unknown embeddings {value!r} (known: minilm, none, or an http(s):// endpoint URL)")
        return value

    def code_limits(self) -> Limits:
        """The sandbox limits of one program's run."""
        return Limits(wall=self.code_timeout, cpu=max(1, int(self.code_timeout)), memory_mb=self.code_memory_mb,
                      per_call=min(2.0, self.code_timeout / 2))

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, value: str) -> str:
        try:
            return check_schedule(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("answer_stop")
    @classmethod
    def _stops(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > 4 or not all(value):
            raise ValueError("answer_stop takes at most 4 non-empty stop sequences")
        return value

    @field_validator("answer_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                check_schema(value)
            except ConfigError as exc:
                raise ValueError(f"answer_schema: {exc}") from None
        return value

    @field_validator("influence")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not 0 <= v < float("inf")]
        if bad:
            raise ValueError(f"influence must be a finite non-negative number (check {', '.join(bad)})")
        return value

    @field_validator("judge_priors")
    @classmethod
    def _kappas(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not 0 < v <= KAPPA_MAX]
        if bad:
            raise ValueError(f"judge_priors must be discriminations in (0, {KAPPA_MAX}] (check {', '.join(bad)})")
        return value

    @field_validator("aggregation", "interested_judges", "judge_style")
    @classmethod
    def _known_choice(cls, value: str, info: ValidationInfo) -> str:
        known = {"aggregation": AGGREGATIONS, "interested_judges": INTERESTED, "judge_style": JUDGE_STYLES}
        choices = known[str(info.field_name)]
        if value not in choices:
            raise ValueError(f"unknown {info.field_name} {value!r} (known: {', '.join(choices)})")
        return value

    def reliability_params(self) -> ReliabilityParams:
        """The evidence model's constants (swarmrank.reliability) from these options."""
        return ReliabilityParams(vote_prior=self.vote_prior, learn_vote_prior=self.learn_vote_prior,
                                 prior_weight=self.judge_prior_weight,
                                 prior_null=self.judge_prior_null, consensus_floor=self.consensus_floor,
                                 self_bias=self.self_bias, caution=self.caution,
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
                 book: JudgeBook | None = None, prices: Mapping[str, Price] | None = None) -> None:
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
        self.node_costs: dict[str, NodeCost] = {}
        #: node id → its price (the swarm's price table): the round's cost in dollars
        self.prices = dict(prices or {})
        self.answers: list[Answer] = []
        self.judgments: list[Judgment] = []
        self.rankings: list[Ranking] = []
        self.notes: list[str] = []
        self._on_event = on_event
        #: judge reliability learned in earlier rounds (peer-rank's evidence aggregation reads it)
        self.book = book
        #: which answers are the same (by value, meaning or behaviour, as the task type says)
        self.clusterer = Clusterer(task, embeddings=options.embeddings, embeddings_model=options.embeddings_model,
                                   same_meaning=options.same_meaning, code_inputs=options.code_inputs,
                                   limits=options.code_limits(), note=self.note)

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
        mine = self.node_costs.setdefault(node.id, NodeCost())
        mine.calls += 1
        if limit <= 0:
            cost.failures += 1
            return CallOutcome(node, None, "timeout: the round deadline passed before the call", 0.0)
        try:
            async with asyncio.timeout(limit):  # cheaper than wait_for: no extra task per call
                completion = await node.complete(replace(request, timeout=node_timeout))
        except (TimeoutError, NodeTimeoutError):
            reason = ("timeout: the round deadline passed" if self.remaining() <= 0.001
                      else f"timeout after {node_timeout:.1f}s")
            return self._failed(node, phase, reason, start)
        except NodeError as exc:
            return self._failed(node, phase, f"error: {exc}", start)
        except Exception as exc:  # a backend bug must not sink the round; it is recorded instead
            return self._failed(node, phase, f"error: {type(exc).__name__}: {exc}", start)
        for tally in (cost, mine):
            tally.prompt_tokens += completion.prompt_tokens
            tally.cached_prompt_tokens += completion.cached_tokens
            tally.completion_tokens += completion.completion_tokens
        seconds = time.monotonic() - start
        self.emit("call", node=node.id, phase=phase, ok=True, seconds=round(seconds, 3))
        return CallOutcome(node, completion, None, seconds)

    def _failed(self, node: Node, phase: str, reason: str, start: float) -> CallOutcome:
        self.phase_cost(phase).failures += 1
        seconds = time.monotonic() - start
        self.emit("call", node=node.id, phase=phase, ok=False, seconds=round(seconds, 3))
        return CallOutcome(node, None, reason, seconds)

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
        opts, persona = self.options, node.persona
        json_task = self.task.type is TaskType.JSON
        return CompletionRequest(
            messages=(Message("system", persona.system or DEFAULT_SYSTEM), Message("user", user)),
            purpose=purpose,  # type: ignore[arg-type]
            temperature=persona.temperature if opts.answer_temperature is None else opts.answer_temperature,
            max_tokens=persona.max_tokens if opts.answer_max_tokens is None else opts.answer_max_tokens,
            seed=persona.seed + sample + (opts.answer_seed or 0),
            stop=opts.answer_stop,
            top_p=opts.answer_top_p,
            presence_penalty=opts.answer_presence_penalty,
            frequency_penalty=opts.answer_frequency_penalty,
            response_format="json" if json_task else "text",
            json_schema=self.task.schema if json_task else None,
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
            value = None if reason else self.task.extract(completion.text)
            if value is not None:
                reason = self.clusterer.red_flag(value)
                value = None if reason else self.clusterer.canonical(value)
            answer = Answer(
                node=outcome.node.id, text=completion.text,
                value=value,
                excluded=reason, step=step, sample=sample, confidence=confidence, signature=signature_of(completion),
                prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                seconds=outcome.seconds, finish_reason=completion.finish_reason,
                client_caused=reason is not None and self.request_caused(outcome.node, completion, reason),
            )
        self.answers.append(answer)
        self.emit("answer", node=answer.node, value=answer.value, excluded=answer.excluded)
        return answer

    def request_caused(self, node: Node, completion: Completion, reason: str) -> bool:
        """Whether red flag ``reason`` on ``node``'s answer came from the round's own limits rather
        than from the node: the answer was cut off at a ``max_tokens`` no larger than the node's own
        limit, or a stop sequence was set (either can leave nothing readable), or it does not match
        the round's JSON Schema. Trust does not slash or score such answers (a client could
        otherwise drain honest nodes' stake with ``max_tokens: 1``). Content red flags (a refusal,
        an answer addressing the judges, unreadable characters, too many characters) stay the node's."""
        opts = self.options
        if opts.answer_schema is not None and reason.startswith(SCHEMA_MISMATCH):
            return True
        if not reason.startswith(UNREADABLE):
            return False
        limited = opts.answer_max_tokens is not None and opts.answer_max_tokens <= node.persona.max_tokens
        return (completion.finish_reason == "length" and limited) or bool(opts.answer_stop)

    async def fan_out(self, nodes: Sequence[Node], *, phase: str = "answer", step: int = 0,
                      request_for: Callable[[Node], CompletionRequest] | None = None,
                      confidence_of: Callable[[str], float | None] | None = None) -> list[Answer]:
        make = request_for or (lambda n: self.answer_request(n))
        outcomes = await self.gather_phase(phase, [self.call(n, make(n), phase) for n in nodes])
        await self.clusterer.prepare([self.task.extract(o.completion.text) for o in outcomes if o.completion])
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
            cost=self.cost(wall), swarm=self.swarm, **extra,
        )

    def cost(self, wall: float) -> Cost:
        """The round's cost so far: per phase, per node, and in dollars by the price table."""
        total: float | None = None
        for node_id, tally in self.node_costs.items():
            price = self.prices.get(node_id)
            if price is not None:
                tally.dollars = price.dollars(tally.prompt_tokens, tally.completion_tokens,
                                              tally.cached_prompt_tokens)
                total = (total or 0.0) + tally.dollars
        return Cost(phases=self.phases, wall_seconds=wall, nodes=self.node_costs, dollars=total)
