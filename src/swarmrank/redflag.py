"""MAKER-style red-flagging: outputs that signal a confused model are discarded, not repaired.

Meyerson et al. (2025) found that over-long and malformed replies are far more often wrong, so they
throw them away (and resample). A red flag here carries the reason that goes into the trace.
"""

from __future__ import annotations

import re
import unicodedata

from swarmrank.nodes.base import Completion
from swarmrank.tasks import Task, TaskType

_REFUSAL = re.compile(
    r"\b(i\s*(?:'m| am)\s*(?:sorry|unable)|i\s*can(?:no|')t\s+(?:help|answer|assist|provide)|"
    r"as an ai(?: language model)?,? i)\b",
    re.IGNORECASE,
)
# an answer that talks to the judges is trying to win the judging phase, not to answer the question
_INJECTION = re.compile(
    r"\b(?:note|message|instructions?|notice)\s+(?:to|for)\s+(?:any\s+|the\s+|all\s+)?"
    r"(?:judges?|graders?|evaluators?|reviewers?)\b"
    r"|\bignore\s+(?:all\s+|any\s+|the\s+)?(?:other|previous|above|prior)\s+"
    r"(?:responses?|answers?|solutions?|instructions?)\b"
    r"|\bverdict\s*:\s*[AB]\b",
    re.IGNORECASE,
)
# short and free answers are read from any text, so a refusal only stands aside for an explicit answer
_ANSWER_GIVEN = re.compile(r"\b(?:final answer|answer)\s*(?:is\b|:|=)", re.IGNORECASE)


def printable_ratio(text: str) -> float:
    if not text:
        return 0.0
    good = sum(1 for ch in text if ch.isspace() or (ch.isascii() and ch.isprintable())
               or unicodedata.category(ch).startswith(("L", "N", "P")))
    return good / len(text)


def red_flag(task: Task, completion: Completion, *, max_chars: int = 4000) -> str | None:
    """Why this completion must be excluded, or None if it may stand."""
    text = completion.text.strip()
    if not text:
        return "empty"
    if completion.finish_reason == "length" and task.extract(text) is None:
        return "over-long: cut off before giving an answer"
    if len(text) > max_chars:
        return f"over-long: {len(text)} characters > {max_chars}"
    if printable_ratio(text) < 0.85 or not re.search(r"[A-Za-z0-9]", text):
        return "malformed: mostly unreadable characters"
    if _INJECTION.search(text):
        return "injection: the answer addresses the judges"
    answer = task.extract(text)
    if task.type is TaskType.JSON:  # invalid JSON, or JSON that breaks the request's schema
        return None if answer is not None else task.problem(text)
    explicit = answer is not None and (task.type in (TaskType.MC, TaskType.NUMBER) or _ANSWER_GIVEN.search(text))
    if _REFUSAL.search(text) and not explicit:
        return "refused"
    if answer is None:
        return f"malformed: no {task.type.value} answer found"
    return None
