"""Rich views of rounds, nodes and lists (used by the CLI; no logic of its own)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from swarmrank.result import RoundResult


def _snippet(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def round_view(result: RoundResult, *, verbose: bool = False) -> Group:
    head = Text()
    head.append("Q: ", style="bold")
    head.append(result.question + "\n")
    head.append("Answer: ", style="bold")
    head.append(result.answer if result.answer is not None else "(no usable answer)",
                style="bold green" if result.answer is not None else "bold red")
    head.append(f"   confidence {result.confidence:.2f}   protocol {result.protocol}")
    if result.schedule:
        head.append(f" ({result.schedule} schedule)")
    head.append(f"   task {result.task_type}   round {result.round_id[:12]}", style="dim")
    if result.winner is not None:
        head.append("\nWinning nodes: ", style="bold")
        head.append(", ".join(result.candidates[result.winner].nodes))

    cands = Table(title="Candidates", title_justify="left", expand=False)
    evidence = result.aggregation == "evidence"
    columns = ("#", "answer", "nodes", "posterior", "judges (nats)", "votes") if evidence else \
        ("#", "answer", "nodes", "strength", "±se(log)", "votes")
    for col in columns:
        cands.add_column(col, justify="left" if col in ("answer", "nodes") else "right")
    for i, c in enumerate(result.candidates):
        mark = "★ " if i == result.winner else ""
        detail = (("" if c.evidence is None else f"{c.evidence:+.2f}") if evidence
                  else ("" if c.stderr is None else f"{c.stderr:.2f}"))
        cands.add_row(f"{mark}{i}", Text(_snippet(c.answer, 30)), ", ".join(c.nodes), f"{c.strength:.3f}", detail,
                      "" if c.votes is None else f"{c.votes:g}")

    answers = Table(title="Answers", title_justify="left")
    for col in ("node", "step", "answer", "excluded", "text"):
        answers.add_column(col)
    for a in result.answers:
        # answers are data, not Rich markup: "[x + 1 for x in xs]" must stay as written
        answers.add_row(a.node, str(a.step if not a.sample else f"s{a.sample}"), Text(a.value or ""),
                        Text(a.excluded or "", style="red"), Text(_snippet(a.text, 60 if not verbose else 400)))

    parts: list[object] = [Panel(head, title="swarmrank", title_align="left"), cands, answers]
    if result.synthesis is not None:
        syn = result.synthesis
        body = Text(syn.text.strip() if verbose or len(syn.text) < 1200 else syn.text.strip()[:1200] + " …")
        if syn.excluded:
            body.append(f"\n(cannot stand: {syn.excluded}; the selected answer stands)", style="red")
        shown = ", ".join(str(i) for i in syn.sources)
        parts.append(Panel(body, title=f"Synthesis by {syn.node} from candidates {shown} (ranked by {syn.ranked_by})",
                           title_align="left"))
    if result.judgments:
        judg = Table(title=f"Judgments ({len(result.judgments)})", title_justify="left")
        for col in ("judge", "A", "B", "verdict", "p", "reasoning"):
            judg.add_column(col)
        for j in result.judgments:
            judg.add_row(j.judge, str(j.first), str(j.second), j.verdict,
                         "" if j.probability is None else f"{j.probability:.2f}",
                         Text(_snippet(j.reasoning, 50 if not verbose else 400)))
        parts.append(judg)
    if result.judge_reports:
        rel = Table(title="Judges (discrimination κ: 0 tells nothing, 1 always right)", title_justify="left")
        for col in ("judge", "κ", "±sd", "before", "consistent", "says A", "agrees", "pairs"):
            rel.add_column(col, justify="left" if col == "judge" else "right")
        for rep in result.judge_reports:
            rel.add_row(rep.judge, f"{rep.kappa:.2f}", f"{rep.kappa_sd:.2f}", f"{rep.prior_kappa:.2f}",
                        "" if rep.consistency is None else f"{rep.consistency:.0%}",
                        "" if rep.says_first is None else f"{rep.says_first:.0%}",
                        "" if rep.agreement is None else f"{rep.agreement:.0%}",
                        f"{rep.pairs}" + (f" ({rep.interested_pairs} own)" if rep.interested_pairs else ""))
        parts.append(rel)
    if result.rankings:
        rank = Table(title="Council rankings", title_justify="left")
        rank.add_column("judge")
        rank.add_column("order (best first)")
        for r in result.rankings:
            rank.add_row(r.judge, " > ".join(str(i) for i in r.order))
        parts.append(rank)
    dollars = "" if result.cost.dollars is None else (
        f"   ${result.cost.dollars:.6f} by the price table" + (
            f" ({', '.join(n for n, c in result.cost.nodes.items() if c.dollars is None)} unpriced)"
            if any(c.dollars is None for c in result.cost.nodes.values()) else ""))
    cost = Table(title="Cost" + dollars, title_justify="left")
    for col in ("phase", "calls", "failed", "prompt tok", "of which cached", "completion tok", "wall s"):
        cost.add_column(col, justify="left" if col == "phase" else "right")
    for name, p in result.cost.phases.items():
        cost.add_row(name, str(p.calls), str(p.failures), str(p.prompt_tokens), str(p.cached_prompt_tokens),
                     str(p.completion_tokens), f"{p.seconds:.2f}")
    cached = sum(p.cached_prompt_tokens for p in result.cost.phases.values())
    cost.add_row("total", str(result.cost.calls), "", str(result.cost.prompt_tokens), str(cached),
                 str(result.cost.completion_tokens), f"{result.cost.wall_seconds:.2f}", style="bold")
    parts.append(cost)
    if result.notes:
        parts.append(Text("Notes: " + "; ".join(result.notes), style="yellow"))
    return Group(*parts)  # type: ignore[arg-type]


def print_table(console: Console, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)
