"""``POST /v1/chat/completions``: one swarm round per request, answered as an OpenAI chat completion.

The ``model`` names the protocol; the question is the last user message (system messages and
earlier turns are folded in front of it, see :func:`question_from`). Every other field is honoured
or refused by :mod:`swarmrank.server.fields`. With ``stream: true`` the round streams as
:mod:`swarmrank.server.streaming` describes (progress as ``reasoning_content``, then the answer);
sse-starlette frames the events and sends a ``: keep-alive`` comment every ``keepalive_seconds``.
Rounds in flight are capped (:class:`~swarmrank.server.limits.RoundGate`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from swarmrank.conversation import compose_question
from swarmrank.errors import RoundNotSavedError
from swarmrank.protocols import protocol_names
from swarmrank.result import RoundResult
from swarmrank.server import fields
from swarmrank.server.deps import CallerDep, ServerState, StateDep
from swarmrank.server.errors import ERROR_RESPONSES, NO_RETRY, APIError
from swarmrank.server.fields import Plan
from swarmrank.server.limits import RoundTicket
from swarmrank.server.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ResponseMessage,
    SwarmrankInfo,
    Usage,
)
from swarmrank.server.streaming import stream_round
from swarmrank.swarm import Swarm

log = logging.getLogger("swarmrank.server")

router = APIRouter(tags=["chat"])

MODEL_NAMESPACE = "swarmrank"

SAVE_GRACE = 10.0
"""Seconds past the request timeout a round may take to be stored before the request is cut off."""


def resolve_model(name: str, swarm: Swarm) -> str:
    """The protocol a ``model`` names: 'swarmrank', 'swarmrank/<protocol>' or '<protocol>'."""
    unicode_text(name, "model")
    if name == MODEL_NAMESPACE:
        return swarm.protocol
    protocol = name.removeprefix(f"{MODEL_NAMESPACE}/")
    if protocol in protocol_names():
        return protocol
    known = ", ".join(protocol_names())
    raise APIError(404, f"The model '{name}' does not exist. Use '{MODEL_NAMESPACE}' (the swarm's default "
                        f"protocol), '{MODEL_NAMESPACE}/<protocol>' or a protocol name ({known}).",
                   code="model_not_found", param="model")


def unicode_text(text: str, param: str) -> str:
    """``text`` if it is valid Unicode; JSON can spell lone UTF-16 surrogates (``"\\ud800"``), which no
    node, store or response can encode, so they are refused here with a 400."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise APIError(400, f"{param} is not valid Unicode: it contains an unpaired surrogate "
                            f"({text[exc.start]!r} at position {exc.start})",
                       param=param, code="invalid_value") from None
    return text


def message_text(message: ChatMessage, index: int) -> str:
    param = f"messages.{index}.content"
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return unicode_text(message.content, param)
    texts = []
    for part in message.content:
        if part.type != "text" or part.text is None:
            raise APIError(400, f"messages[{index}]: only text content is supported, not {part.type!r}",
                           param=param, code="unsupported_content")
        texts.append(unicode_text(part.text, param))
    return "\n".join(texts)


def question_from(messages: Sequence[ChatMessage]) -> tuple[str, str]:
    """(the question put to the swarm, the last user message).

    The last message must come from the user. System (and developer) messages come first, then
    earlier user and assistant turns as a transcript, then ``Question: <last message>``; a lone
    user message is put to the swarm as it is.
    """
    last = messages[-1]
    if last.role != "user":
        raise APIError(400, f"the last message must have role 'user', not {last.role!r}",
                       param=f"messages.{len(messages) - 1}.role", code="invalid_value")
    asked = message_text(last, len(messages) - 1)
    instructions: list[str] = []
    turns: list[str] = []
    for index, message in enumerate(messages[:-1]):
        text = message_text(message, index).strip()
        if message.role in ("system", "developer"):
            instructions.append(text)
        elif message.role in ("user", "assistant"):
            turns.append(f"{message.role.capitalize()}: {text}")
        else:
            raise APIError(400, f"messages[{index}]: {message.role!r} messages are not supported (no tool calls)",
                           param=f"messages.{index}.role", code="unsupported_message")
    return compose_question(asked, instructions=instructions, turns=turns), asked


async def run_round(state: ServerState, plan: Plan, ticket: RoundTicket, *,
                    on_event: Callable[[str, dict[str, object]], None] | None = None) -> tuple[RoundResult, bool]:
    """One round under the server's request timeout, waiting for a slot included: (result, saved).
    Raises APIError or SwarmError.

    The time left once the slot is held caps the round's own deadline, so a round that runs out of
    time still ends itself — stored, with the late calls recorded as timeouts — and the 504 names it;
    the hard limit (``SAVE_GRACE`` later) only fires if saving hangs.
    """
    timeout = state.settings.request_timeout
    began = time.monotonic()
    capped = False  # the request timeout, not the swarm's own deadline, bounded the round
    try:
        async with asyncio.timeout(timeout + SAVE_GRACE):
            if ticket.ahead and on_event is not None:
                on_event("queued", {"ahead": ticket.ahead})
            async with ticket:
                left = timeout - (time.monotonic() - began)
                if left <= 0:
                    raise TimeoutError
                base = plan.options or state.swarm.options
                capped = left < base.deadline
                options = replace(base, deadline=left) if capped else plan.options
                result = await state.swarm.ask(plan.question, protocol=plan.protocol, task_type=plan.task_type,
                                               options=options, on_event=on_event, save=plan.save)
        saved = plan.save and state.swarm.store is not None
    except TimeoutError:
        raise APIError(504, f"the swarm did not finish within the server's request timeout of {timeout:g}s",
                       type="timeout_error", code="request_timeout", headers=NO_RETRY) from None
    except RoundNotSavedError as exc:
        log.error("%s", exc)
        if state.swarm.registry is not None:  # with trust on, no answer goes out without its ledger record
            raise APIError(503, f"round {exc.result.round_id} (not stored) could not be recorded in the "  # type: ignore[attr-defined]
                                "ledger, so its answer is withheld (see the server log)",
                           type="server_error", code="round_not_recorded") from None
        result, saved = exc.result, False  # type: ignore[assignment]
    finally:
        ticket.release()
    if result.answer is None:
        reasons = sorted({a.excluded for a in result.answers if a.excluded}) or ["no answering node"]
        where = f"round {result.round_id}" + (" (stored)" if saved else "")
        detail = "; ".join(reasons)[:300]
        if all(r.startswith("timeout") for r in reasons):
            if capped and any("deadline" in r for r in reasons):
                raise APIError(504, f"the swarm did not finish within the server's request timeout of {timeout:g}s "
                                    f"({where}: {detail})", type="timeout_error", code="request_timeout",
                               headers=NO_RETRY)
            raise APIError(504, f"no node answered in time ({where}: {detail})", type="timeout_error",
                           code="round_timeout", headers=NO_RETRY)
        raise APIError(502, f"no node produced a usable answer ({where}: {detail})", type="server_error",
                       code="no_usable_answer", headers=NO_RETRY)
    return result, saved


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses={
    **ERROR_RESPONSES,
    200: {"description": "a chat completion; with `stream: true`, Server-Sent Events of chat.completion.chunk",
          "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/ChatCompletionChunk"}}}},
})
async def chat_completions(body: ChatCompletionRequest, state: StateDep,
                           caller: CallerDep) -> ChatCompletion | EventSourceResponse:
    """Put the last user message to the swarm; the consensus answer is the reply."""
    protocol = resolve_model(body.model, state.swarm)
    question, asked = question_from(body.messages)
    plan = fields.plan(body, protocol=protocol, question=question, asked=asked, base=state.swarm.options,
                       trusted=state.swarm.registry is not None)
    if body.user or body.safety_identifier:
        log.info("chat completion for %s (user %r)", caller, body.user or body.safety_identifier)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    model = f"{MODEL_NAMESPACE}/{protocol}"
    ticket = state.rounds.admit()  # 429 now, before any stream starts, when too many rounds wait
    if body.stream:
        events = stream_round(lambda on_event: run_round(state, plan, ticket, on_event=on_event), plan,
                              completion_id=completion_id, model=model, chunk_chars=state.settings.chunk_chars,
                              nodes=len(state.swarm.nodes))
        return EventSourceResponse(events, sep="\n", ping=state.settings.keepalive_seconds,
                                   ping_message_factory=lambda: ServerSentEvent(comment="keep-alive", sep="\n"),
                                   headers={"cache-control": "no-cache"},
                                   background=BackgroundTask(ticket.release))
    result, saved = await run_round(state, plan, ticket)
    content, finish = fields.reply(result, plan)
    return ChatCompletion(
        id=completion_id, created=int(result.created_at.timestamp()), model=model,
        choices=[Choice(message=ResponseMessage(content=content), finish_reason=finish)],
        usage=Usage.of(result), swarmrank=SwarmrankInfo.of(result, stored=saved),
    )
