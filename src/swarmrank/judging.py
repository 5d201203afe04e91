"""Pairwise judging and council ranking: prompts and robust parsing of what judges say.

The judge prompt follows the Fortytwo node client: pick the better of two solutions, do not solve
the problem again, reason briefly (the paper credits a 50–100-token chain with +5.3% accuracy),
then end with a verdict letter: A, B, or U for equal quality. The verdict is the *last* verdict
letter in the reply; unreadable replies are retried once and then count as U.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from swarmrank.nodes.base import Message
from swarmrank.result import Verdict
from swarmrank.tasks import Task

JUDGE_SYSTEM = (
    "You are a strict judge. You compare two solutions to the same problem and decide which one is "
    "better: correct, complete and clearly reasoned. Do not solve the problem again from scratch."
)

JUDGE_TEMPLATE = """Problem:
{question}

Solution A:
{first}

Solution B:
{second}

Which solution is better? Give one or two sentences of reasoning, then end with a line
'Verdict: A', 'Verdict: B' or 'Verdict: U' if they are equally good."""

# Reference-guided judging (Zheng et al. 2023, MT-Bench): the judge's own solution, written before it
# saw A and B, is shown as a reference it may check the two against.
REFERENCE_TEMPLATE = """Problem:
{question}

Your own solution, written before you saw the two below (it may be wrong):
{reference}

Solution A:
{first}

Solution B:
{second}

Check each solution against the problem and against your own work. Which one is correct or better?
Give one or two sentences of reasoning, then end with a line 'Verdict: A', 'Verdict: B' or
'Verdict: U' if they are equally good."""

RETRY_SUFFIX = "\n\nYour last reply had no verdict. Reply with exactly one line: 'Verdict: A', 'Verdict: B' or 'Verdict: U'."

RANK_TEMPLATE = """Problem:
{question}

{responses}

Evaluate each response briefly, then give your ranking from best to worst in exactly this form:
FINAL RANKING:
1. Response X
2. Response Y
..."""

_VERDICT = re.compile(
    r"(?:verdict|answer|winner|better(?: solution)?(?: is)?)\s*[:=\-]?\s*\**\s*(?:solution\s+)?\(?([ABU])\b",
    re.IGNORECASE,
)
_TIE = re.compile(r"\b(tie|equal(?:ly good)?|both (?:are )?(?:equally )?(?:correct|good))\b", re.IGNORECASE)
_LAST_LETTER = re.compile(r"(?:^|[\s(*\"'])([ABU])[\s).*\"'!]*$")


def judge_messages(task: Task, first: str, second: str, *, system: str = "", retry: bool = False,
                   reference: str | None = None) -> tuple[Message, ...]:
    """The judge prompt: compare A and B (Fortytwo's "do not re-solve"), or with ``reference`` the
    reference-guided variant that shows the judge its own earlier solution."""
    if reference is not None:
        prompt = REFERENCE_TEMPLATE.format(question=task.question, reference=reference.strip(),
                                           first=first.strip(), second=second.strip())
    else:
        prompt = JUDGE_TEMPLATE.format(question=task.question, first=first.strip(), second=second.strip())
    if retry:
        prompt += RETRY_SUFFIX
    return (Message("system", system or JUDGE_SYSTEM), Message("user", prompt))


def parse_verdict(text: str) -> Verdict | None:
    """The verdict in a judge's reply: the last 'Verdict: X'-style mention, else a final bare letter.

    Returns None when nothing readable is there (the caller retries once, then records U).
    """
    hits = _VERDICT.findall(text)
    if hits:
        return hits[-1].upper()
    tail = text.strip()[-40:]
    bare = _LAST_LETTER.search(tail)
    if bare:
        return bare.group(1).upper()  # type: ignore[return-value]
    if _TIE.search(text):
        return "U"
    return None


def flip(verdict: Verdict) -> Verdict:
    return {"A": "B", "B": "A", "U": "U"}[verdict]  # type: ignore[return-value]


def rank_messages(task: Task, texts: Sequence[str], *, system: str = "") -> tuple[Message, ...]:
    labels = [chr(ord("A") + i) for i in range(len(texts))]
    responses = "\n\n".join(f"Response {label}:\n{text.strip()}" for label, text in zip(labels, texts))
    prompt = RANK_TEMPLATE.format(question=task.question, responses=responses)
    return (Message("system", system or JUDGE_SYSTEM), Message("user", prompt))


_RANK_LINE = re.compile(r"^\s*\d+\s*[.)]\s*\**\s*Response\s+([A-Z])\b", re.IGNORECASE | re.MULTILINE)
_RANK_ANY = re.compile(r"Response\s+([A-Z])\b", re.IGNORECASE)


def parse_ranking(text: str, n: int) -> list[int]:
    """Candidate indices best first from a 'FINAL RANKING:' block (as llm-council parses it).

    Falls back to the order in which responses are named after the marker. Unknown labels and
    repeats are dropped; an empty list means the ranking could not be read.
    """
    marker = re.search(r"final\s+ranking\s*:?", text, re.IGNORECASE)
    section = text[marker.end():] if marker else text
    labels = _RANK_LINE.findall(section) or (_RANK_ANY.findall(section) if marker else [])
    order: list[int] = []
    for label in labels:
        index = ord(label.upper()) - ord("A")
        if 0 <= index < n and index not in order:
            order.append(index)
    return order
