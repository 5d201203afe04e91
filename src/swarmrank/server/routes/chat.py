"""``POST /v1/chat/completions``: one swarm round per request, answered as an OpenAI chat completion.

The ``model`` names the protocol; the question is the last user message (system messages and
earlier turns are folded in front of it, see :func:`question_from`). With ``stream: true`` the
round's progress comes as ``chat.completion.chunk`` events with empty content and a
``swarmrank.progress`` field, then the answer text, a ``finish_reason: "stop"`` chunk and
``data: [DONE]``; sse-starlette frames the events and sends a ``: keep-alive`` comment every
``keepalive_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent

from swarmrank.errors import RoundNotSavedError, SwarmError
from swarmrank.protocols import protocol_names
from swarmrank.result import RoundResult
from swarmrank.server.deps import CallerDep, ServerState, StateDep
from swarmrank.server.errors import ERROR_RESPONSES, NO_RETRY, APIError, from_swarm_error
from swarmrank.server.schemas import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChunkChoice,
    ChunkExtra,
    Delta,
    ErrorResponse,
    Progress,
    ResponseMessage,
    SwarmrankInfo,
    Usage,
)
from swarmrank.swarm import Swarm
from swarmrank.tasks import Task, detect_task_type

log = logging.getLogger("swarmrank.server")

router = APIRouter(tags=["chat"])

MODEL_NAMESPACE = "swarmrank"


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
    context = [t for t in instructions if t]
    if turns:
        context.append("Earlier in this conversation:\n" + "\n".join(turns))
    if not context:
        return asked, asked
    return "\n\n".join(context) + f"\n\nQuestion: {asked}", asked


async def run_round(state: ServerState, question: str, *, protocol: str, task_type: str,
                    on_event: Callable[[str, dict[str, object]], None] | None = None) -> tuple[RoundResult, bool]:
    """One round under the server's request timeout: (result, saved). Raises APIError or SwarmError."""
    timeout = state.settings.request_timeout
    try:
        result = await asyncio.wait_for(
            state.swarm.ask(question, protocol=protocol, task_type=task_type, on_event=on_event), timeout)
        saved = state.swarm.store is not None
    except TimeoutError:
        raise APIError(504, f"the swarm did not finish within the server's request timeout of {timeout:g}s",
                       type="timeout_error", code="request_timeout", headers=NO_RETRY) from None
    except RoundNotSavedError as exc:
        log.error("%s", exc)
        result, saved = exc.result, False  # type: ignore[assignment]
    if result.answer is None:
        reasons = sorted({a.excluded for a in result.answers if a.excluded}) or ["no answering node"]
        where = f"round {result.round_id}" + (" (stored)" if saved else "")
        detail = "; ".join(reasons)[:300]
        if all(r.startswith("timeout") for r in reasons):
            raise APIError(504, f"no node answered in time ({where}: {detail})", type="timeout_error",
                           code="round_timeout", headers=NO_RETRY)
        raise APIError(502, f"no node produced a usable answer ({where}: {detail})", type="server_error",
                       code="no_usable_answer", headers=NO_RETRY)
    return result, saved


def reply_text(result: RoundResult, content: str) -> str:
    """The reply's content: the final answer (a synthesis where one stands) or its full text."""
    if content == "answer" or result.final_text is None:
        return result.final_answer or ""
    return result.final_text


def pieces(text: str, size: int) -> list[str]:
    """``text`` in pieces of about ``size`` characters, split after whitespace; they join back exactly."""
    out: list[str] = []
    current = ""
    for word in re.findall(r"\s+|\S+\s*", text):
        if current and len(current) + len(word) > size:
            out.append(current)
            current = ""
        current += word
    if current:
        out.append(current)
    return out


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
    options = body.swarmrank
    task_type = (options.task_type if options and options.task_type else None) or detect_task_type(asked).value
    Task.create(question, task_type)  # an empty question fails here, before any stream starts
    content = options.content if options else "text"
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    model = f"{MODEL_NAMESPACE}/{protocol}"
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        events = stream_round(state, question, protocol=protocol, task_type=task_type, content=content,
                              completion_id=completion_id, model=model, include_usage=usage)
        return EventSourceResponse(events, sep="\n", ping=state.settings.keepalive_seconds,
                                   ping_message_factory=lambda: ServerSentEvent(comment="keep-alive", sep="\n"),
                                   headers={"cache-control": "no-cache"})
    result, saved = await run_round(state, question, protocol=protocol, task_type=task_type)
    return ChatCompletion(
        id=completion_id, created=int(result.created_at.timestamp()), model=model,
        choices=[Choice(message=ResponseMessage(content=reply_text(result, content)))],
        usage=Usage.of(result), swarmrank=SwarmrankInfo.of(result, stored=saved),
    )


async def stream_round(state: ServerState, question: str, *, protocol: str, task_type: str, content: str,
                       completion_id: str, model: str, include_usage: bool) -> AsyncIterator[str]:
    """The round as the data of Server-Sent Events; a failure becomes an OpenAI error event, then ``[DONE]``."""
    created = int(time.time())
    queue: asyncio.Queue[tuple[str, dict[str, object]]] = asyncio.Queue()

    def chunk(delta: Delta, *, finish: bool = False, extra: ChunkExtra | None = None) -> str:
        return ChatCompletionChunk(id=completion_id, created=created, model=model, swarmrank=extra,
                                   choices=[ChunkChoice(delta=delta, finish_reason="stop" if finish else None)]
                                   ).event_data()

    task = asyncio.create_task(run_round(state, question, protocol=protocol, task_type=task_type,
                                         on_event=lambda event, data: queue.put_nowait((event, data))))
    task.add_done_callback(lambda _: queue.put_nowait(("", {})))
    try:
        yield chunk(Delta(role="assistant", content=""))
        while True:
            event, data = await queue.get()
            if not event:
                break
            yield chunk(Delta(content=""), extra=ChunkExtra(progress=Progress(event=event, **data)))
        try:
            result, saved = task.result()
        except (APIError, SwarmError) as exc:
            error = exc if isinstance(exc, APIError) else from_swarm_error(exc)
            yield ErrorResponse(error=error.detail).model_dump_json()
            yield "[DONE]"
            return
        except Exception:
            log.exception("round failed while streaming")
            error = APIError(500, "internal server error (details are in the server log)", type="server_error",
                             code="internal_error")
            yield ErrorResponse(error=error.detail).model_dump_json()
            yield "[DONE]"
            return
        for piece in pieces(reply_text(result, content), state.settings.chunk_chars):
            yield chunk(Delta(content=piece))
        yield chunk(Delta(), finish=True, extra=ChunkExtra(result=SwarmrankInfo.of(result, stored=saved)))
        if include_usage:
            yield ChatCompletionChunk(id=completion_id, created=created, model=model, choices=[],
                                      usage=Usage.of(result)).event_data()
        yield "[DONE]"
    finally:
        if not task.done():  # the client went away: stop the round
            task.cancel()
