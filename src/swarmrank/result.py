"""The record of one round: what every node said, who judged what, how it was decided, and the cost.

These pydantic models are the stable, documented schema of ``swarmrank ask --json`` and of the
rows the store keeps (``docs/round-schema.md`` describes every field). They are domain types:
the HTTP server keeps its own wire schemas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Verdict = Literal["A", "B", "U"]
Phase = Literal["answer", "grade", "judge", "rank", "revise"]


class Answer(BaseModel):
    """One node's reply to the query (or to a revision step of a multi-round protocol)."""

    model_config = ConfigDict(frozen=True)

    node: str
    text: str
    value: str | None = Field(None, description="the extracted, normalised answer; null if excluded")
    excluded: str | None = Field(None, description="why this answer was excluded, or null")
    candidate: int | None = Field(None, description="index into RoundResult.candidates")
    confidence: float | None = Field(None, description="self-reported confidence (weighted-vote)")
    step: int = Field(0, description="0 for the first answer, r for revision round r (debate, weighted-vote)")
    signature: dict[str, str] | None = Field(
        None, description="a node agent's signature over this completion (node, public_key, nonce, request, signature)")
    sample: int = Field(0, description="sample number for protocols that resample a node (ahead-by-k)")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str | None = Field(None, description="why the node stopped: 'stop', or 'length' when cut off")
    client_caused: bool = Field(
        False, description="the exclusion came from the round's own limits, not the node: the request's max_tokens "
                           "or stop cut the answer before it could be read, or it does not match the request's JSON "
                           "Schema; trust neither slashes nor scores such an answer")


class Candidate(BaseModel):
    """A distinct normalised answer and the nodes that gave it."""

    answer: str
    text: str = Field(description="a representative full answer text")
    nodes: list[str]
    strength: float = Field(description="Bradley–Terry strength (sums to 1 over candidates) or vote share")
    log_strength: float | None = None
    stderr: float | None = Field(None, description="standard error of log_strength")
    votes: float | None = None
    mean_rank: float | None = None
    evidence: float | None = Field(
        None, description="peer-rank (evidence aggregation): the judges' log-likelihood for this candidate, in nats "
                          "relative to the mean")


class Judgment(BaseModel):
    """A judge's verdict on one ordered pair of candidates (``first`` is shown as A)."""

    judge: str
    first: int
    second: int
    verdict: Verdict
    reasoning: str
    probability: float | None = Field(None,
                                      description="the judge's probability of its verdict, if the backend gives it")
    probs: dict[str, float] | None = Field(None, description="the judge's distribution over A, B and U, if known")
    weight: float = 1.0
    retried: bool = False
    failed: bool = Field(False, description="the judge call failed (timeout, error); recorded as U but not counted")
    signature: dict[str, str] | None = Field(
        None, description="a node agent's signature over the verdict's completion, as on Answer")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


class JudgeReport(BaseModel):
    """What a peer-rank round estimated about one judge (``swarmrank.reliability``)."""

    judge: str
    kappa: float = Field(description="posterior mean discrimination 2·P(right when it commits) − 1 after this round "
                                     "(0: no information)")
    kappa_sd: float
    prior_kappa: float = Field(description="the same before this round (prior and past rounds)")
    pairs: int = Field(description="contested pairs it judged")
    interested_pairs: int = Field(0, description="of which held its own answer")
    consistency: float | None = Field(None, description="P(same pick in both orders), mean over pairs judged both ways")
    says_first: float | None = Field(None, description="share of its verdicts for the answer shown first "
                                                       "(0.5: unbiased)")
    agreement: float | None = Field(None, description="agreement with the other judges' consensus (0.5: chance)")
    weight: float = 1.0
    observations: list[tuple[float | None, float | None, float, float, int]] = Field(
        default_factory=list, description="per pair: P(prefers x) with x shown first, with y shown first, the "
                                          "other judges' posterior that x, and that y, is the right answer, and "
                                          "where its own answer is (1: x, -1: y, 0: neither): what the judge book "
                                          "learns from")


class PairReport(BaseModel):
    """What peer-rank weighed on one contested pair of candidates ``x < y``."""

    x: int
    y: int
    judges: int
    interested: int = Field(0, description="judges whose own answer is in the pair")
    evidence: float = Field(description="nats for x over y from the judges (negative: for y)")


class Ranking(BaseModel):
    """A council member's full ranking of the candidates, best first."""

    judge: str
    order: list[int]
    reasoning: str


class Synthesis(BaseModel):
    """One answer written from the best candidates (MoA's aggregator, llm-council's chairman)."""

    node: str = Field(description="the node that wrote it")
    text: str
    value: str | None = Field(None, description="its extracted, normalised answer; null if it has none or was "
                                                "red-flagged")
    excluded: str | None = Field(None, description="why it cannot stand (the call failed, or a red flag), or null")
    sources: list[int] = Field(default_factory=list, description="the candidates it was shown, best first")
    ranked_by: str = Field("", description="what ordered the candidates it was shown")
    finish_reason: str | None = Field(None, description="why the synthesizer stopped: 'stop', or 'length' when cut "
                                                        "off by its token limit")


class PhaseCost(BaseModel):
    calls: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = Field(
        0, description="of prompt_tokens, how many a KV cache served (llama.cpp prefix reuse)")
    completion_tokens: int = 0
    seconds: float = Field(0.0, description="wall time of the phase")


class NodeCost(BaseModel):
    """One node's calls and tokens in a round, and what they cost by the swarm's price table."""

    calls: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    dollars: float | None = Field(None, description="by the price table; null when the node has no price")


class Cost(BaseModel):
    phases: dict[str, PhaseCost] = Field(default_factory=dict)
    wall_seconds: float = 0.0
    nodes: dict[str, NodeCost] = Field(default_factory=dict, description="per node, every phase together")
    dollars: float | None = Field(None, description="the round's cost in US dollars by the swarm's price table "
                                                    "(priced nodes only); null when no node has a price")

    @property
    def calls(self) -> int:
        return sum(p.calls for p in self.phases.values())

    @property
    def prompt_tokens(self) -> int:
        return sum(p.prompt_tokens for p in self.phases.values())

    @property
    def completion_tokens(self) -> int:
        return sum(p.completion_tokens for p in self.phases.values())


class RoundResult(BaseModel):
    """Everything about one round. ``answer`` is null only when no node produced a usable answer."""

    schema_version: int = SCHEMA_VERSION
    round_id: str
    created_at: datetime
    question: str
    task_type: str
    protocol: str
    schedule: str | None = None
    answer: str | None
    answer_text: str | None = Field(None, description="full text of a representative winning answer")
    winner: int | None = Field(None, description="index of the winning candidate")
    confidence: float
    answers: list[Answer]
    candidates: list[Candidate]
    judgments: list[Judgment] = Field(default_factory=list)
    rankings: list[Ranking] = Field(default_factory=list)
    aggregation: str | None = Field(None, description="peer-rank: 'evidence' or 'bradley-terry'")
    judge_reports: list[JudgeReport] = Field(default_factory=list)
    pair_reports: list[PairReport] = Field(default_factory=list)
    evidence_low: list[float] = Field(
        default_factory=list, description="peer-rank (evidence): per candidate, the judges' log-likelihood with each "
                                          "judge at the low end (mean − 2 sd) of its estimated discrimination")
    notes: list[str] = Field(default_factory=list, description="protocol events worth reading")
    synthesis: Synthesis | None = Field(None, description="an answer written from the best candidates (synthesis, "
                                                          "moa, llm-council, [round] synthesize); ``answer`` stays "
                                                          "the selected one")
    cost: Cost
    swarm: str = "default"

    @property
    def final_answer(self) -> str | None:
        """The synthesised answer where one stands, else the selected one."""
        if self.synthesis is not None and self.synthesis.value is not None:
            return self.synthesis.value
        return self.answer

    @property
    def final_text(self) -> str | None:
        """The full text of :attr:`final_answer`."""
        if self.synthesis is not None and self.synthesis.value is not None:
            return self.synthesis.text
        return self.answer_text

    @property
    def winning_nodes(self) -> list[str]:
        return [] if self.winner is None else self.candidates[self.winner].nodes
