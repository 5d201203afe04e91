"""``swarmrank rounds list`` and ``rounds show``: stored rounds, read back."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from swarmrank.cli._common import ConfigOpt, JsonOpt, console, open_store

rounds_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="Read stored rounds back.")


@rounds_app.command("list")
def rounds_list(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="how many rounds")] = 20,
    protocol: Annotated[str | None, typer.Option("--protocol", "-p")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List stored rounds, newest first."""
    from swarmrank.cli.render import print_table

    store = open_store(config)
    summaries = store.list_rounds(limit=limit, protocol=protocol)
    store.close()
    if as_json:
        print(json.dumps([{"round_id": s.round_id, "created_at": s.created_at.isoformat(), "protocol": s.protocol,
                           "question": s.question, "answer": s.answer, "confidence": s.confidence,
                           "calls": s.calls, "wall_seconds": s.wall_seconds} for s in summaries], indent=2))
        return
    rows = [[s.round_id[:12], s.created_at.strftime("%Y-%m-%d %H:%M:%S"), s.protocol, s.question[:40],
             s.answer if s.answer is not None else "-", f"{s.confidence:.2f}", s.calls, f"{s.wall_seconds:.1f}"]
            for s in summaries]
    print_table(console, f"Rounds ({len(rows)})", ["id", "when (UTC)", "protocol", "question", "answer", "conf",
                                                   "calls", "wall s"], rows)


@rounds_app.command("show")
def rounds_show(
    round_id: Annotated[str, typer.Argument(help="a round id or a unique prefix of it")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Show one stored round with its full trace."""
    from swarmrank.cli.render import round_view

    store = open_store(config)
    result = store.get_round(round_id)
    store.close()
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        console.print(round_view(result, verbose=verbose))

