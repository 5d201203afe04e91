"""What a chat-completions request asks for, field by field: honoured (into the round's options and
the reply) or refused with a 400 that names the parameter.

:func:`plan` reads a validated :class:`~swarmrank.server.schemas.ChatCompletionRequest` into a
:class:`Plan` (the protocol, the question, the round options with the request's sampling, how to
shape the reply); :func:`reply` turns the round's result into the message and its real
``finish_reason``. ``docs/server.md`` has the table of every field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from swarmrank.errors import ConfigError
from swarmrank.result import RoundResult
from swarmrank.round import RoundOptions
from swarmrank.server.errors import APIError
from swarmrank.server.schemas import ChatCompletionRequest, FinishReason
from swarmrank.tasks import Task, TaskType, detect_task_type, read_json_object

__all__ = ["Plan", "plan", "refuse", "reply"]

#: service tiers that mean "whatever you have": swarmrank has one
SERVICE_TIERS = ("auto", "default")
MAX_METADATA = 16


@dataclass(frozen=True)
class Plan:
    """A request, read: what round to run and how to answer."""

    protocol: str
    question: str
    asked: str  # the last user message (the task type is guessed from it)
    task_type: str
    options: RoundOptions
    content: str  # "text" or "answer"
    stop: tuple[str, ...]
    save: bool
    progress: str  # the delta field progress goes to: reasoning_content, reasoning or none
    include_usage: bool


def refuse(param: str, message: str) -> APIError:
    """A 400 for a field swarmrank does not support (OpenAI's ``unsupported_parameter``)."""
    return APIError(400, message, param=param, code="unsupported_parameter")


def _refused(body: ChatCompletionRequest) -> None:
    """Raise for the first field that asks for something a swarm round cannot give."""
    tool_choice = body.tool_choice
    if body.tools and tool_choice != "none":
        raise refuse("tools", "tools are not supported: a swarm round answers in text (send tool_choice 'none' "
                              "or leave tools out)")
    if tool_choice not in (None, "none", "auto") or (tool_choice == "auto" and body.tools):
        raise refuse("tool_choice", f"tool_choice {tool_choice!r} is not supported: there is no tool calling")
    if body.functions or body.function_call not in (None, "none"):
        raise refuse("functions" if body.functions else "function_call",
                      "function calling is not supported (functions and function_call)")
    if body.logprobs:
        raise refuse("logprobs", "logprobs is not supported: a consensus answer has no token log-probabilities")
    if body.top_logprobs is not None:
        raise refuse("top_logprobs", "top_logprobs is not supported (logprobs is not)")
    if body.logit_bias:
        raise refuse("logit_bias", "logit_bias is not supported: the nodes run different models and tokenizers")
    if body.modalities is not None and body.modalities != ["text"]:
        raise refuse("modalities", "only the 'text' modality is supported")
    for name in ("audio", "prediction", "web_search_options", "reasoning_effort", "verbosity"):
        if getattr(body, name) is not None:
            raise refuse(name, f"{name} is not supported by a swarm round")
    if body.service_tier is not None and body.service_tier not in SERVICE_TIERS:
        raise refuse("service_tier", f"service_tier {body.service_tier!r} is not supported "
                                     f"(use {' or '.join(SERVICE_TIERS)}: there is one tier)")
    if body.metadata is not None and len(body.metadata) > MAX_METADATA:
        raise APIError(400, f"metadata takes at most {MAX_METADATA} pairs", param="metadata", code="invalid_value")
    for index, message in enumerate(body.messages):
        for name in ("tool_calls", "tool_call_id", "function_call", "audio"):
            if getattr(message, name) is not None:
                raise refuse(f"messages.{index}.{name}", f"messages[{index}].{name} is not supported (no tool "
                                                         "calling or audio)")


def _stops(body: ChatCompletionRequest) -> tuple[str, ...]:
    if body.stop is None:
        return ()
    stops = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop)
    if len(stops) > 4 or not all(stops):
        raise APIError(400, "stop takes at most 4 non-empty sequences", param="stop", code="invalid_value")
    return stops


def _json_mode(body: ChatCompletionRequest, task_type: str | None) -> tuple[bool, dict[str, Any] | None]:
    """(answers must be JSON, the JSON Schema they must match)."""
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        if fmt is not None and fmt.json_schema is not None:
            raise APIError(400, "response_format.json_schema needs type 'json_schema'",
                           param="response_format.json_schema", code="invalid_value")
        return task_type == TaskType.JSON.value, None
    if task_type not in (None, TaskType.JSON.value):
        raise APIError(400, f"response_format {fmt.type} asks for JSON, but swarmrank.task_type is {task_type!r}",
                       param="swarmrank.task_type", code="invalid_value")
    if fmt.type == "json_object":
        return True, None
    if fmt.json_schema is None:
        raise APIError(400, "response_format of type 'json_schema' needs a 'json_schema' object",
                       param="response_format.json_schema", code="invalid_value")
    return True, fmt.json_schema.schema_ or {"type": "object"}


def plan(body: ChatCompletionRequest, *, protocol: str, question: str, asked: str, base: RoundOptions,
         trusted: bool = False) -> Plan:
    """The round and reply ``body`` asks for (raises :class:`APIError` for what it cannot have).
    ``trusted``: the swarm runs with trust on, so every round is recorded (``store: false`` is refused)."""
    _refused(body)
    if trusted and body.store is False:
        raise refuse("store", "store: false is not supported on this server: trust is on, so every round is "
                              "recorded in the ledger with its answer, and no answer goes out without its record")
    extension = body.swarmrank
    requested_type = extension.task_type if extension else None
    json_mode, schema = _json_mode(body, requested_type)
    task_type = TaskType.JSON.value if json_mode else (requested_type or detect_task_type(asked).value)
    stops = _stops(body)
    limits = [v for v in (body.max_tokens, body.max_completion_tokens) if v is not None]
    overrides: dict[str, Any] = {
        "answer_temperature": body.temperature, "answer_top_p": body.top_p, "answer_seed": body.seed,
        "answer_max_tokens": min(limits) if limits else None, "answer_stop": stops,
        "answer_presence_penalty": body.presence_penalty, "answer_frequency_penalty": body.frequency_penalty,
        "answer_schema": schema,
    }
    try:
        # an empty question or a bad schema fails here, before any stream starts (and before the
        # options, whose own check would name the schema by its field, answer_schema)
        Task.create(question, task_type, schema=schema)
        options = replace(base, **{k: v for k, v in overrides.items() if v is not None and v != ()})
    except ConfigError as exc:
        param = "response_format.json_schema.schema" if "JSON Schema" in str(exc) else None
        raise APIError(400, str(exc), param=param, code="invalid_value") from None
    return Plan(protocol=protocol, question=question, asked=asked, task_type=task_type, options=options,
                content=extension.content if extension else "text", stop=stops, save=body.store is not False,
                progress=extension.progress if extension else "reasoning_content",
                include_usage=bool(body.stream and body.stream_options and body.stream_options.include_usage))


def reply(result: RoundResult, plan: Plan) -> tuple[str, FinishReason]:
    """The assistant's message for a decided round and its finish_reason: 'length' when the winning
    answer was cut off by its token limit, else 'stop' (stop sequences cut the message too). Where a
    synthesis stands (docs/protocols.md) the message is the synthesised answer, and 'length' says the
    synthesis was cut off."""
    if plan.content == "answer" or result.final_text is None:
        return result.final_answer or "", "stop"
    if plan.task_type == TaskType.JSON.value:
        obj, _ = read_json_object(result.final_text)
        return (json.dumps(obj, ensure_ascii=False) if obj is not None else result.final_answer or ""), "stop"
    text = result.final_text
    finish: FinishReason = "stop"
    synthesis = result.synthesis
    if synthesis is not None and synthesis.value is not None:  # the synthesis stands: its own cut-off counts
        cut = synthesis.finish_reason == "length"
    else:
        winner = next((a for a in result.answers if a.candidate == result.winner and a.text == text), None)
        cut = winner is not None and winner.finish_reason == "length"
    if cut:
        finish = "length"
    cuts = [text.index(s) for s in plan.stop if s in text]
    if cuts:
        text, finish = text[:min(cuts)], "stop"
    return text, finish
