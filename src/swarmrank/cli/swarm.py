"""``swarmrank ask``, ``nodes``, ``protocols`` and ``config show``: the swarm itself."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from typing import Annotated, Any

import typer

from swarmrank.cli._common import (
    ConfigOpt,
    ExecutorOpt,
    JsonOpt,
    build_swarm,
    console,
    err,
    trust_rows,
    without_trust,
)
from swarmrank.errors import LedgerError, RoundNotSavedError, StorageError, SwarmError

config_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="Show swarm configs.")


def ask(
    question: Annotated[str, typer.Argument(help="the question to put to the swarm; - reads it from stdin")],
    protocol: Annotated[str | None, typer.Option(
        "--protocol", "-p", help="{protocols} (default: [swarm] protocol)")] = None,
    config: ConfigOpt = None,
    task_type: Annotated[str | None, typer.Option(
        "--type", "-t", help="{task_types} (default: guessed from the question)")] = None,
    schedule: Annotated[str | None, typer.Option(
        "--schedule", help="pair schedule for peer-rank: cluster, fortytwo or adaptive")] = None,
    as_json: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show full texts")] = False,
    save: Annotated[bool, typer.Option("--save/--no-save", help="store the round in the database")] = True,
    executor: ExecutorOpt = None,
    system: Annotated[str | None, typer.Option(
        "--system", "-s", help="instructions put before the question (as a chat's system message)")] = None,
) -> None:
    """Put QUESTION to the swarm and print the consensus answer with its full trace."""
    from swarmrank.cli.render import round_view
    from swarmrank.config import load_config
    from swarmrank.conversation import compose_question
    from swarmrank.executor import with_executor
    from swarmrank.protocols import get_protocol
    from swarmrank.schedule import check_schedule
    from swarmrank.tasks import Task, detect_task_type

    if question == "-":
        question = sys.stdin.read()
    if system is not None and question.strip():  # the type is read from the question, not the instructions
        task_type = task_type or detect_task_type(question.strip()).value
        question = compose_question(question.strip(), instructions=[system])
    Task.create(question, task_type)  # reject a bad question before any model loads
    cfg = with_executor(load_config(config), executor)
    if protocol is not None:
        get_protocol(protocol)
    if schedule is not None:
        check_schedule(schedule)
    swarm = build_swarm(cfg, store="default" if save else None)
    options = swarm.options if schedule is None else replace(swarm.options, schedule=schedule)
    progress = {"answer": 0, "judgment": 0, "judgments": 0}

    with err.status("starting the swarm…", spinner="dots") as status:
        def on_event(event: str, data: dict[str, object]) -> None:
            if event == "phase":
                if data["phase"] == "judge":
                    progress["judgments"] = int(str(data["calls"]))
                status.update(f"{data['phase']}: {data['calls']} call(s) in flight…")
            elif event == "answer":
                progress["answer"] += 1
                status.update(f"answers: {progress['answer']} received (last from {data['node']})…")
            elif event == "judgment":
                progress["judgment"] += 1
                status.update(f"judging: {progress['judgment']}/{progress['judgments']} verdicts "
                              f"(last: {data['judge']} said {data['verdict']})…")

        unsaved: RoundNotSavedError | None = None
        try:
            result = asyncio.run(_ask(swarm, question, protocol, task_type, options, on_event))
        except RoundNotSavedError as exc:
            result, unsaved = exc.result, exc
    swarm.close()
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        console.print(round_view(result, verbose=verbose))
    if unsaved is not None:
        raise unsaved
    if result.answer is None:
        reasons = "; ".join(sorted({a.excluded for a in result.answers if a.excluded}))[:300]
        where = f"round {result.round_id}" + (" (stored)" if save else "")
        raise SwarmError(f"no node produced a usable answer ({where}: {reasons or 'no answering node'})")


async def _ask(swarm: Any, question: str, protocol: str | None, task_type: str | None, options: Any,
               on_event: Any) -> Any:
    try:
        return await swarm.ask(question, protocol=protocol, task_type=task_type, options=options, on_event=on_event)
    finally:
        await swarm.aclose_backends()


def nodes(
    config: ConfigOpt = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="ask every node a trivial question")] = True,
    as_json: JsonOpt = False,
) -> None:
    """List the swarm's nodes and check that each one answers."""
    from swarmrank.cli.render import print_table
    from swarmrank.config import load_config

    cfg = load_config(config)
    swarm = build_swarm(without_trust(cfg), store=None)
    rows = swarm.describe()
    try:
        trust = trust_rows(cfg, [str(r["id"]) for r in rows])
    except (StorageError, LedgerError) as exc:  # the node list needs no database: say why trust is missing
        err.print(f"warning: no reputation shown: {exc}", style="yellow", markup=False, highlight=False)
        trust = {}
    show_trust = (cfg.trust.enabled and bool(trust)) or any(t["admitted"] or t["rounds"] for t in trust.values())
    checks = {}
    if check:
        with err.status(f"checking {len(swarm.nodes)} node(s)…"):
            checks = {c.node: c for c in asyncio.run(_check(swarm))}
    if as_json:
        for row in rows:
            c = checks.get(str(row["id"]))
            if c is not None:
                row["check"] = {"ok": c.ok, "detail": c.detail, "seconds": round(c.seconds, 3)}
            if trust:
                row["trust"] = trust[str(row["id"])]
        print(json.dumps(rows, indent=2))
    else:
        table_rows = []
        for row in rows:
            c = checks.get(str(row["id"]))
            status = "" if c is None else (f"[green]ok[/] {c.seconds:.1f}s" if c.ok else f"[red]FAIL[/] {c.detail}")
            cells = [row["id"], row["backend"], ",".join(row["roles"]), row["temperature"], row["key"]]
            if show_trust:
                t = trust[str(row["id"])]
                state = (("counts" if t["eligible"] else "[red]stake low[/]") if t["admitted"]
                         else "[dim]not admitted[/]")
                cells += [f"{t['reputation']:+.2f}", f"{t['influence']:.2f}", f"{t['stake']:g}", state]
            table_rows.append([*cells, status] if check else cells)
        headers = ["node", "backend", "roles", "temp", "key"]
        if show_trust:
            headers += ["reputation", "influence", "stake", "trust"]
        print_table(console, f"Swarm {swarm.name!r}", [*headers, "check"] if check else headers, table_rows)
    if checks and not all(c.ok for c in checks.values()):
        raise typer.Exit(1)


async def _check(swarm: Any) -> Any:
    try:
        return await swarm.check()
    finally:
        await swarm.aclose_backends()


def protocols() -> None:
    """List the consensus protocols."""
    from swarmrank.cli.render import print_table
    from swarmrank.protocols import get_protocol, protocol_names

    print_table(console, "Protocols", ["name", "what it does"],
                [[name, get_protocol(name).summary] for name in protocol_names()])


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print a swarm config (the embedded default unless --config is given), validated as a round would
    use it: every node's backend and options are built (except llama.cpp models, which are not touched;
    no key is made)."""
    from swarmrank.config import default_config_text, load_config
    from swarmrank.nodes.base import BuildContext
    from swarmrank.nodes.factory import build_backend
    from swarmrank.protocols import get_protocol
    from swarmrank.settings import Settings

    cfg = load_config(config)
    get_protocol(cfg.swarm.protocol)
    ctx = BuildContext(shared={"settings": Settings.from_env()})
    for section in cfg.nodes:
        name, options = cfg.backend_for(section)
        if name == "llamacpp":  # building it joins the packaged model file (hundreds of MB): not for a look
            continue
        try:
            build_backend(name, options, ctx)
        except SwarmError as exc:
            raise SwarmError(f"node {section.id!r}: {exc}") from None
    text = default_config_text() if config is None else config.read_text(encoding="utf-8")
    sys.stdout.write(text)

