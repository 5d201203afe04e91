"""A round as Server-Sent Events of ``chat.completion.chunk`` that a chat UI can show while it runs.

1. ``delta: {role: "assistant", content: ""}``;
2. while the nodes work, one chunk per round event: a line of text in ``delta.reasoning_content``
   (what chat UIs show as the model "thinking"; the request's ``swarmrank.progress`` can name
   ``reasoning`` instead, or ``none``) and the event itself in ``swarmrank.progress``;
3. once the round has finished and been saved (with trust on: recorded in the ledger; no answer
   leaves before its record), the answer in several ``delta.content`` chunks (split after
   whitespace, about ``chunk_chars`` characters each; they join back exactly). The ``decided``
   progress event comes earlier, as soon as the protocol has picked, but carries only the
   extracted answer and its confidence, never the message;
4. ``delta: {}`` with the real ``finish_reason`` and the full ``swarmrank.result``;
5. with ``stream_options.include_usage``, a chunk with ``choices: []`` and ``usage``; then ``[DONE]``.

A failure after the stream began is an OpenAI-shaped error event, then ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from swarmrank.errors import SwarmError
from swarmrank.result import RoundResult
from swarmrank.server.errors import APIError, from_swarm_error
from swarmrank.server.fields import Plan, reply
from swarmrank.server.schemas import (
    ChatCompletionChunk,
    ChunkChoice,
    ChunkExtra,
    Delta,
    ErrorResponse,
    FinishReason,
    Progress,
    SwarmrankInfo,
    Usage,
)

__all__ = ["ProgressText", "pieces", "stream_round"]

log = logging.getLogger("swarmrank.server")

EventHandler = Callable[[str, dict[str, object]], None]
RoundRunner = Callable[[EventHandler], Coroutine[Any, Any, tuple[RoundResult, bool]]]


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


def _short(value: object, limit: int = 40) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ProgressText:
    """Round events as lines a person can follow. Candidates are numbered as the protocols number
    them: distinct usable answers in the order they arrived (single answers under the fortytwo schedule)."""

    def __init__(self, *, per_answer: bool = False) -> None:
        self.per_answer = per_answer
        self.items: list[str] = []

    def label(self, index: object) -> str:
        i = int(str(index))
        return f"#{i} ({_short(self.items[i], 24)})" if 0 <= i < len(self.items) else f"#{i}"

    def line(self, event: str, data: dict[str, object]) -> str | None:
        if event == "start":
            schedule = f" ({data['schedule']} schedule)" if data.get("schedule") else ""
            return f"{data['protocol']} round{schedule} over {data['nodes']} node(s); task type {data['task_type']}\n"
        if event == "queued":
            return f"waiting for a free slot: {data['ahead']} round(s) ahead\n"
        if event == "phase":
            what = {"answer": "asking {n} node(s) for an answer", "judge": "{n} pairwise comparison(s)",
                    "grade": "{n} GOOD/BAD grading call(s)", "rank": "{n} node(s) rank the answers",
                    "revise": "{n} node(s) revise their answers", "reference": "{n} judge(s) solve it first"}
            template = what.get(str(data.get("phase")), str(data.get("phase")) + ": {n} call(s)")
            return template.format(n=data.get("calls")) + "…\n"
        if event == "call":
            if data.get("phase") in ("answer", "revise", "reference") or not data.get("ok"):
                state = "replied" if data.get("ok") else "failed"
                return f"{data['node']} {state} ({float(str(data['seconds'])):.1f} s)\n"
            return None
        if event == "answer":
            value, excluded = data.get("value"), data.get("excluded")
            if value is not None and excluded is None:
                if self.per_answer or str(value) not in self.items:
                    self.items.append(str(value))
                return f"{data['node']} answered {_short(value)}\n"
            return f"{data['node']}: excluded ({_short(excluded, 60)})\n"
        if event == "judgment":
            first, second, verdict = data["first"], data["second"], data.get("verdict")
            said = {"A": f"prefers {self.label(first)}", "B": f"prefers {self.label(second)}"}.get(
                str(verdict), "calls it a tie")
            return f"{data['judge']} compared {self.label(first)} with {self.label(second)}: {said}\n"
        if event == "note":
            return f"note: {data['text']}\n"
        if event == "decided":
            if data.get("answer") is None:
                return "no usable answer\n"
            return f"decided: {_short(data['answer'])} (confidence {float(str(data['confidence'])):.2f})\n"
        return None


async def stream_round(run: RoundRunner, plan: Plan, *, completion_id: str, model: str, chunk_chars: int,
                       nodes: int) -> AsyncIterator[str]:
    """The data of each Server-Sent Event of one round (``run(on_event)`` runs it); the round is
    cancelled if the client goes away."""
    created = int(time.time())
    queue: asyncio.Queue[tuple[str, dict[str, object]]] = asyncio.Queue()
    schedule = plan.options.schedule if plan.protocol == "peer-rank" else None
    text = ProgressText(per_answer=schedule == "fortytwo")
    # what the round is: the first progress event (a chat page numbers candidates by the schedule)
    queue.put_nowait(("start", {"protocol": plan.protocol, "schedule": schedule, "task_type": plan.task_type,
                                "nodes": nodes}))

    def chunk(delta: Delta, *, finish: FinishReason | None = None, extra: ChunkExtra | None = None) -> str:
        return ChatCompletionChunk(id=completion_id, created=created, model=model, swarmrank=extra,
                                   choices=[ChunkChoice(delta=delta, finish_reason=finish)]).event_data()

    task = asyncio.create_task(run(lambda event, data: queue.put_nowait((event, data))))
    task.add_done_callback(lambda _: queue.put_nowait(("", {})))
    try:
        yield chunk(Delta(role="assistant", content=""))
        while True:
            event, data = await queue.get()
            if not event:
                break
            line = text.line(event, data)
            if line is None and event == "call":
                continue  # a judge's call: its verdict follows as its own event
            delta = Delta()
            if line is not None and plan.progress != "none":
                setattr(delta, plan.progress, line)
            yield chunk(delta, extra=ChunkExtra(progress=Progress(event=event, **data)))
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
        message, finish = reply(result, plan)  # the round is finished and saved (recorded, with trust on)
        for piece in pieces(message, chunk_chars):
            yield chunk(Delta(content=piece))
        yield chunk(Delta(), finish=finish, extra=ChunkExtra(result=SwarmrankInfo.of(result, stored=saved)))
        if plan.include_usage:
            yield ChatCompletionChunk(id=completion_id, created=created, model=model, choices=[],
                                      usage=Usage.of(result)).event_data()
        yield "[DONE]"
    finally:
        if not task.done():  # the client went away: stop the round
            task.cancel()
