"""A conversation as one question for the swarm: instructions and earlier turns folded in front.

The server (a chat's messages) and ``swarmrank ask --system`` build a round's question the same way::

    Be brief.

    Earlier in this conversation:
    User: Hello
    Assistant: Hi! Ask me a sum.

    Question: What is 40 + 2?

A question with no instructions and no earlier turns is put to the swarm as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["compose_question"]


def compose_question(asked: str, *, instructions: Sequence[str] = (), turns: Sequence[str] = ()) -> str:
    """``asked`` with the non-empty ``instructions`` (system prompts) and the earlier ``turns``
    ("User: ..." / "Assistant: ..." lines) in front of it."""
    context = [t.strip() for t in instructions if t.strip()]
    if turns:
        context.append("Earlier in this conversation:\n" + "\n".join(turns))
    if not context:
        return asked
    return "\n\n".join(context) + f"\n\nQuestion: {asked}"
