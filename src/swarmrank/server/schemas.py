"""Wire schemas: OpenAI's chat-completion, model-list and error shapes, plus the ``swarmrank`` extras.

These are the only OpenAI-shaped types in swarmrank; they are built from domain types
(:class:`~swarmrank.result.RoundResult`) at the edge and never stored.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from swarmrank.result import RoundResult

# -- requests -------------------------------------------------------------------------------------


class ContentPart(BaseModel):
    """One part of a message's content; only ``{"type": "text", "text": ...}`` is understood."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class SwarmrankOptions(BaseModel):
    """Request extension (``extra_body={"swarmrank": {...}}`` in the official client)."""

    model_config = ConfigDict(extra="forbid")
    task_type: Literal["mc", "number", "short", "free"] | None = Field(
        None, description="the question's type; default: guessed from the last user message")
    content: Literal["text", "answer"] = Field(
        "text", description="'text': the winning answer's full text; 'answer': only the extracted answer")


class ChatCompletionRequest(BaseModel):
    """OpenAI's request body. Sampling fields (temperature, max_tokens, ...) are accepted and ignored:
    each node's persona sets its own."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(description="'swarmrank' (the swarm's default protocol), 'swarmrank/<protocol>' or '<protocol>'")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool = False  # "yes" or 1 is a 400, not true
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1, description="only 1 is supported")
    swarmrank: SwarmrankOptions | None = None


# -- responses ------------------------------------------------------------------------------------


class CandidateInfo(BaseModel):
    answer: str = Field(description="the extracted, normalised answer")
    strength: float = Field(description="Bradley–Terry strength or vote share (sums to 1)")
    stderr: float | None = Field(None, description="standard error of the log-strength, when fitted")
    votes: float | None = None
    supporters: list[str] = Field(description="the nodes that gave this answer")


class SwarmrankInfo(BaseModel):
    """How the swarm decided: the extra top-level ``swarmrank`` field (clients may ignore it)."""

    round_id: str
    round_url: str = Field(description="GET this path for the full stored round")
    protocol: str
    answer: str | None = Field(description="the winning extracted answer")
    confidence: float
    winner: int | None
    candidates: list[CandidateInfo]
    calls: int
    wall_seconds: float
    stored: bool = Field(description="false when the round could not be saved (then round_url answers 404)")

    @classmethod
    def of(cls, result: RoundResult, *, stored: bool) -> SwarmrankInfo:
        return cls(
            round_id=result.round_id, round_url=f"/v1/rounds/{result.round_id}", protocol=result.protocol,
            answer=result.answer, confidence=result.confidence, winner=result.winner,
            candidates=[CandidateInfo(answer=c.answer, strength=c.strength, stderr=c.stderr, votes=c.votes,
                                      supporters=list(c.nodes)) for c in result.candidates],
            calls=result.cost.calls, wall_seconds=result.cost.wall_seconds, stored=stored,
        )


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, result: RoundResult) -> Usage:
        prompt, completion = result.cost.prompt_tokens, result.cost.completion_tokens
        return cls(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    swarmrank: SwarmrankInfo


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop"] | None = None


class Progress(BaseModel):
    """One round event: ``phase`` (phase, calls), ``answer`` (node, value, excluded),
    ``judgment`` (judge, first, second, verdict) or ``note`` (text)."""

    model_config = ConfigDict(extra="allow")
    event: str


class ChunkExtra(BaseModel):
    progress: Progress | None = None
    result: SwarmrankInfo | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    swarmrank: ChunkExtra | None = None

    def event_data(self) -> str:
        """This chunk as the data of one Server-Sent Event (``finish_reason`` kept even when null)."""
        data = {k: v for k, v in self.model_dump(mode="json").items() if v is not None}
        for choice in data["choices"]:
            choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
        if "swarmrank" in data:
            data["swarmrank"] = {k: v for k, v in data["swarmrank"].items() if v is not None}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "swarmrank"
    description: str = ""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error body; every non-2xx answer of the server has this shape."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    swarm: str
    nodes: int
    default_protocol: str
    auth: bool

