"""Wire schemas: OpenAI's chat-completion, model-list and error shapes, plus the ``swarmrank`` extras.

These are the only OpenAI-shaped types in swarmrank; they are built from domain types
(:class:`~swarmrank.result.RoundResult`) at the edge and never stored.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from swarmrank.result import RoundResult

# -- requests -------------------------------------------------------------------------------------


class ContentPart(BaseModel):
    """One part of a message's content; only ``{"type": "text", "text": ...}`` is understood."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message. ``tool_calls``, ``tool_call_id``, ``function_call`` and ``audio`` are declared so that
    the route can refuse them by name (swarmrank does no tool calling); other fields are refused."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None
    function_call: Any = None
    audio: Any = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: StrictBool = False
    include_obfuscation: StrictBool = Field(False, description="accepted; no effect (nothing is obfuscated)")


class JSONSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: StrictBool | None = None


class ResponseFormat(BaseModel):
    """``{"type": "text"}``, ``{"type": "json_object"}`` or ``{"type": "json_schema", "json_schema": {...}}``."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class SwarmrankOptions(BaseModel):
    """Request extension (``extra_body={"swarmrank": {...}}`` in the official client)."""

    model_config = ConfigDict(extra="forbid")
    task_type: Literal["mc", "number", "short", "free", "json"] | None = Field(
        None, description="the question's type; default: guessed from the last user message (json with a "
                          "response_format that asks for JSON)")
    content: Literal["text", "answer"] = Field(
        "text", description="'text': the winning answer's full text; 'answer': only the extracted answer")
    progress: Literal["reasoning_content", "reasoning", "none"] = Field(
        "reasoning_content", description="streaming: the delta field the round's progress is written to")


class ChatCompletionRequest(BaseModel):
    """OpenAI's request body. Every field is honoured or refused by name (docs/server.md has the table);
    a field OpenAI does not define is refused like OpenAI refuses it."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="'swarmrank' (the swarm's default protocol), 'swarmrank/<protocol>' or '<protocol>'")
    messages: list[ChatMessage] = Field(min_length=1)
    # numbers and booleans are strict, as OpenAI's are: "yes" or 1 is not true, and true is not 1
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    n: StrictInt | None = Field(1, ge=1, le=1, description="only 1 is supported")
    temperature: StrictFloat | None = Field(None, ge=0, le=2, description="every answering node samples at this")
    top_p: StrictFloat | None = Field(None, ge=0, le=1)
    seed: StrictInt | None = Field(None, description="node calls are seeded from it (plus each persona's seed)")
    max_tokens: StrictInt | None = Field(None, ge=1, description="bounds each answer, so the returned message")
    max_completion_tokens: StrictInt | None = Field(None, ge=1, description="the same as max_tokens")
    stop: str | list[str] | None = Field(None, description="up to 4 stop sequences")
    presence_penalty: StrictFloat | None = Field(None, ge=-2, le=2)
    frequency_penalty: StrictFloat | None = Field(None, ge=-2, le=2)
    response_format: ResponseFormat | None = None
    logprobs: StrictBool | None = Field(
        None, description="false only: a consensus answer has no token log-probabilities")
    top_logprobs: StrictInt | None = Field(None, description="refused (needs logprobs)")
    tools: list[Any] | None = Field(None, description="refused unless tool_choice is 'none'")
    tool_choice: Any = None
    parallel_tool_calls: StrictBool | None = None
    functions: list[Any] | None = Field(None, description="refused (deprecated tools)")
    function_call: Any = None
    logit_bias: dict[str, StrictFloat] | None = Field(None, description="refused unless empty")
    user: str | None = Field(None, max_length=512, description="accepted; written to the server log")
    safety_identifier: str | None = Field(None, max_length=512, description="as user")
    prompt_cache_key: str | None = Field(None, max_length=512, description="accepted; no effect")
    metadata: dict[str, str] | None = Field(None, description="accepted (at most 16 pairs); no effect")
    store: StrictBool | None = Field(None, description="false: the round is not saved (refused with trust on: "
                                                        "every answer has its ledger record)")
    service_tier: str | None = Field(None, description="'auto' or 'default' (there is one tier)")
    modalities: list[str] | None = Field(None, description="['text'] only")
    audio: Any = Field(None, description="refused")
    prediction: Any = Field(None, description="refused")
    web_search_options: Any = Field(None, description="refused")
    reasoning_effort: Any = Field(None, description="refused: the nodes' effort is the swarm's config")
    verbosity: Any = Field(None, description="refused")
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
    dollars: float | None = Field(None, description="the round's cost by the swarm's price table (priced nodes)")
    notes: list[str] = Field(default_factory=list, description="what the protocol noted (ties, fallbacks, ...)")
    stored: bool = Field(description="false when the round was not saved (then round_url answers 404)")

    @classmethod
    def of(cls, result: RoundResult, *, stored: bool) -> SwarmrankInfo:
        return cls(
            round_id=result.round_id, round_url=f"/v1/rounds/{result.round_id}", protocol=result.protocol,
            answer=result.answer, confidence=result.confidence, winner=result.winner,
            candidates=[CandidateInfo(answer=c.answer, strength=c.strength, stderr=c.stderr, votes=c.votes,
                                      supporters=list(c.nodes)) for c in result.candidates],
            calls=result.cost.calls, wall_seconds=result.cost.wall_seconds, dollars=result.cost.dollars,
            notes=list(result.notes), stored=stored,
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


FinishReason = Literal["stop", "length"]


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: FinishReason = Field(
        "stop", description="'length' when the winning answer was cut off by max_tokens (or the node's own limit)")
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
    reasoning_content: str | None = Field(None, description="the round's progress, one line per event")
    reasoning: str | None = Field(None, description="the same, for clients that read 'reasoning' instead")


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None


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

