"""Synthesis: after a protocol picks, one node writes a single answer from the best candidates.

Picking one answer wastes the others on open-ended requests. Mixture-of-Agents (Wang et al. 2024)
ends with an aggregator that synthesises the proposers' answers; llm-council (Karpathy 2025) ends
with a chairman who writes the final answer from every member's answer and the rankings. Here:

``synthesis``     peer-rank picks; the synthesizer sees the best ``synthesis_k`` candidates, best first,
                  with their ranks and strengths
``moa``           Mixture-of-Agents: proposers answer, revise for ``rounds`` layers seeing every answer of
                  the layer before (its aggregate-and-synthesise prompt), and the aggregator synthesises
                  the last layer; the selected answer is the last layer's majority
``llm-council``   the council protocol's rankings, then the chairman sees every candidate by mean rank
``[round] synthesize = true``   the same step after any protocol

The synthesizer is ``[round] synthesizer`` (default: the first answering node). The round record keeps
both: ``answer`` is the selected candidate, ``synthesis`` the written answer (with its own red flags;
one that fails leaves the selected answer standing), and ``final_answer`` the synthesis where it stands.
Where the answer is a decision (``mc``, ``number``, ``short``, ``json``) the synthesis stands only when
it gives the selected answer: one node may word the swarm's decision, not overturn it.
"""

from __future__ import annotations

from collections.abc import Callable

from swarmrank.errors import ConfigError
from swarmrank.nodes.base import Node
from swarmrank.plugins import hookimpl
from swarmrank.protocols import Council, PeerRank, Protocol, answerers, final_majority, shown
from swarmrank.redflag import red_flag
from swarmrank.result import Cost, RoundResult, Synthesis
from swarmrank.round import RoundContext
from swarmrank.tasks import TaskType

__all__ = ["MixtureOfAgents", "ThenSynthesise", "synthesize", "synthesizer"]


SYNTHESIS_NOTE = """Below are {n} answer(s) to this question from other assistants, best first as {ranked_by} \
ranked them.

{blocks}

Write one final answer of your own: keep what the best answers get right, fix their mistakes, and add nothing \
that none of them supports. Do not mention the other answers or their ranks."""


def synthesizer(ctx: RoundContext) -> Node:
    """The node that writes the synthesis: ``[round] synthesizer``, else the first answering node."""
    wanted = ctx.options.synthesizer
    if wanted:
        if wanted not in ctx.by_id:
            raise ConfigError(f"synthesizer {wanted!r} is not a node of this swarm "
                              f"(nodes: {', '.join(ctx.by_id)})")
        return ctx.by_id[wanted]
    nodes = answerers(ctx)
    if not nodes:
        raise ConfigError("synthesis needs a node to write the answer: set [round] synthesizer")
    return nodes[0]


async def synthesize(ctx: RoundContext, result: RoundResult, *, k: int | None = None,
                     ranked_by: str = "the judges") -> RoundResult:
    """``result`` with a :class:`~swarmrank.result.Synthesis`: the synthesizer node is shown the best
    ``k`` candidates (all when None), best first with their ranks, and writes one answer. The selected
    answer stays in ``answer``; :attr:`RoundResult.final_answer` prefers the synthesis where it stands."""
    if not result.candidates:
        return result
    if result.rankings and all(c.mean_rank is not None for c in result.candidates):
        order = sorted(range(len(result.candidates)), key=lambda i: (result.candidates[i].mean_rank, i))
    else:
        order = sorted(range(len(result.candidates)), key=lambda i: (-result.candidates[i].strength, i))
    if result.winner is not None:
        order.remove(result.winner)
        order.insert(0, result.winner)
    shown_ids = order[: k or len(order)]

    def detail(i: int) -> str:
        cand = result.candidates[i]
        score = f"mean rank {cand.mean_rank:.2f}" if cand.mean_rank is not None else f"strength {cand.strength:.2f}"
        return f"{score}, given by {len(cand.nodes)} node(s)"

    blocks = "\n\n".join(f"Answer {pos + 1} (rank {pos + 1}; {detail(i)}):\n{shown(result.candidates[i].text)}"
                          for pos, i in enumerate(shown_ids))
    node = synthesizer(ctx)
    extra = SYNTHESIS_NOTE.format(n=len(shown_ids), ranked_by=ranked_by, blocks=blocks)
    request = ctx.answer_request(node, purpose="revise", extra=extra,
                                 context={"peers": [result.candidates[i].answer for i in shown_ids],
                                          "previous": None, "synthesis": True})
    outcome = (await ctx.gather_phase("synthesize", [ctx.call(node, request, "synthesize")]))[0]
    if outcome.completion is None:
        synthesis = Synthesis(node=node.id, text="", excluded=outcome.error, sources=shown_ids, ranked_by=ranked_by)
    else:
        text = outcome.completion.text
        reason = red_flag(ctx.task, outcome.completion, max_chars=ctx.options.max_answer_chars)
        value = None if reason else ctx.task.extract(text)
        if value is not None:
            reason = ctx.clusterer.red_flag(value)
            value = None if reason else value
        if value is not None and reason is None:
            reason = _overturns(ctx, result, value)
            value = None if reason else value
        synthesis = Synthesis(node=node.id, text=text, value=value, excluded=reason, sources=shown_ids,
                              ranked_by=ranked_by, finish_reason=outcome.completion.finish_reason)
    if synthesis.excluded:
        ctx.note(f"the synthesis by {node.id} cannot stand ({synthesis.excluded}); the selected answer stands")
    wall = result.cost.wall_seconds + ctx.phases["synthesize"].seconds
    return result.model_copy(update={"synthesis": synthesis, "notes": list(ctx.notes),
                                     "cost": Cost(phases=dict(ctx.phases), wall_seconds=wall)})


# the task types whose answer is a decision (a number, a letter, a short fact, an object): there the
# synthesis may word the answer, not overturn the decision the swarm made
DECIDED_TYPES = (TaskType.MC, TaskType.NUMBER, TaskType.SHORT, TaskType.JSON)


def _overturns(ctx: RoundContext, result: RoundResult, value: str) -> str | None:
    """Why a synthesis that gives another answer than the selected one cannot stand, for decided types.

    One node writes the synthesis; letting it replace the answer the votes and the judges chose would
    hand the round to that node (an attack under ``[trust]``, and no better than one node otherwise).
    Free text and code are written answers: there the synthesis may differ, and the record keeps both."""
    if ctx.task.type not in DECIDED_TYPES or result.winner is None:
        return None
    selected = result.candidates[result.winner].answer
    if ctx.clusterer.canonical(value) == ctx.clusterer.canonical(selected):
        return None
    def cut(text: str) -> str:
        return text if len(text) <= 80 else text[:80] + "…"

    return (f"gives {cut(value)!r}, not the selected answer {cut(selected)!r}: a synthesis may word the "
            "decided answer, not overturn it")


class ThenSynthesise(Protocol):
    """A selecting protocol followed by the synthesis step."""

    synthesizes = True

    def __init__(self, name: str, summary: str, base: Protocol, ranked_by: str, *, top_k: bool) -> None:
        self.name, self.summary, self.base, self.ranked_by, self.top_k = name, summary, base, ranked_by, top_k

    async def run(self, ctx: RoundContext) -> RoundResult:
        result = await self.base.run(ctx)
        return await synthesize(ctx, result, k=ctx.options.synthesis_k if self.top_k else None,
                                ranked_by=self.ranked_by)


MOA_NOTE = """You have been provided with a set of responses from various assistants to the latest question. \
Your task is to synthesize these responses into a single, high-quality response. Critically evaluate the \
information provided in these responses, recognizing that some of it may be biased or incorrect.

Responses from models:
{blocks}"""


class MixtureOfAgents(Protocol):
    name = "moa"
    synthesizes = True
    summary = ("proposers answer, then revise seeing all answers for R layers; an aggregator synthesises the "
               "last layer (Mixture-of-Agents)")

    async def run(self, ctx: RoundContext) -> RoundResult:
        nodes = answerers(ctx)
        current = await ctx.fan_out(nodes)
        history = list(current)
        for step in range(1, ctx.options.rounds + 1):
            usable = [a for a in current if a.text and a.excluded is None]
            if not usable:
                break
            blocks = "\n".join(f"{i + 1}. {shown(a.text)}" for i, a in enumerate(usable))
            revised = await ctx.fan_out(
                nodes, phase="revise", step=step,
                request_for=lambda n, b=blocks, u=usable, st=step: ctx.answer_request(  # type: ignore[misc]
                    n, purpose="revise", sample=st, extra=MOA_NOTE.format(blocks=b),
                    context={"peers": [a.value for a in u if a.value], "previous": None}))
            current = [new if new.value is not None else old for new, old in zip(revised, current)]
            history.extend(revised)
        result = final_majority(ctx, history, current)
        return await synthesize(ctx, result, ranked_by="votes (unranked, as Mixture-of-Agents shows them)")


@hookimpl
def register_protocols(register: Callable[[Protocol], None]) -> None:
    """The synthesising protocols, listed after the others."""
    register(ThenSynthesise("synthesis", "peer-rank picks the best answers; one node writes a final answer from the "
                                         "best k, shown with their ranks", PeerRank(), "peer-rank's judges",
                            top_k=True))
    register(MixtureOfAgents())
    register(ThenSynthesise("llm-council", "every node ranks all anonymised answers; a chairman writes the final "
                                           "answer from all of them (llm-council)", Council(),
                            "the council's mean ranks", top_k=False))
