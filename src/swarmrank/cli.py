"""The ``swarmrank`` command: a thin Typer layer over the library.

Library errors (:class:`~swarmrank.errors.SwarmError`) become one line on stderr and exit code 1;
usage errors exit 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from swarmrank.cli_ledger import ledger_app
from swarmrank.cli_judges import judges_app
from swarmrank.cli_node import node_app
from swarmrank.cli_serve import keys_app, serve
from swarmrank.errors import RoundNotSavedError, StorageError, SwarmError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Swarm inference: many nodes answer, judge each other in pairs, Bradley–Terry decides.")
config_app = typer.Typer(no_args_is_help=True, help="Show swarm configs.")
rounds_app = typer.Typer(no_args_is_help=True, help="Read stored rounds back.")
eval_app = typer.Typer(help="Evaluate protocols side by side on packaged datasets (run, list, show).")
app.add_typer(config_app, name="config")
app.add_typer(rounds_app, name="rounds")
app.add_typer(eval_app, name="eval")
app.add_typer(keys_app, name="keys")
app.command("serve")(serve)
app.add_typer(ledger_app, name="ledger")
app.add_typer(node_app, name="node")
app.add_typer(judges_app, name="judges")

console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="swarm config TOML (default: the embedded swarm)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
ExecutorOpt = Annotated[Optional[str], typer.Option(
    "--executor", help="where nodes run: local, or ray (Ray actors); overrides [executor] kind")]


def _store(config: Path | None):  # noqa: ANN202 - Store, imported lazily
    """The store a config's rounds go to (SWARMRANK_DB, else its [store] url, else the default file)."""
    from swarmrank.config import load_config
    from swarmrank.settings import Settings
    from swarmrank.store import Store

    return Store.open(Settings.from_env(), load_config(config).store.url)


def _build(cfg, store):  # noqa: ANN001, ANN202
    from swarmrank.swarm import Swarm

    swarm = Swarm.from_config(cfg, store=store)
    if swarm.created_keys:
        err.print(f"created Ed25519 keys for {', '.join(swarm.created_keys)} in {swarm.keys_dir}", style="dim",
                  markup=False, highlight=False)
    return swarm


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="the question to put to the swarm")],
    protocol: Annotated[Optional[str], typer.Option("--protocol", "-p", help="peer-rank, majority, weighted-vote, ahead-by-k, council, debate, blender")] = None,
    config: ConfigOpt = None,
    task_type: Annotated[Optional[str], typer.Option("--type", "-t", help="mc, number, short or free (default: guessed)")] = None,
    schedule: Annotated[Optional[str], typer.Option("--schedule", help="pair schedule for peer-rank: cluster or fortytwo")] = None,
    as_json: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show full texts")] = False,
    save: Annotated[bool, typer.Option("--save/--no-save", help="store the round in the database")] = True,
    executor: ExecutorOpt = None,
) -> None:
    """Put QUESTION to the swarm and print the consensus answer with its full trace."""
    from dataclasses import replace

    from swarmrank.config import load_config
    from swarmrank.protocols import get_protocol
    from swarmrank.render import round_view
    from swarmrank.tasks import Task

    from swarmrank.executor import with_executor

    Task.create(question, task_type)  # reject a bad question before any model loads
    cfg = with_executor(load_config(config), executor)
    if protocol is not None:
        get_protocol(protocol)
    swarm = _build(cfg, store="default" if save else None)
    options = swarm.options
    if schedule is not None:
        from swarmrank.schedule import SCHEDULES

        if schedule not in SCHEDULES:
            raise SwarmError(f"unknown schedule {schedule!r} (known: {', '.join(SCHEDULES)})")
        options = replace(options, schedule=schedule)
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

        try:
            result = asyncio.run(_ask(swarm, question, protocol, task_type, options, on_event))
        except RoundNotSavedError as exc:
            result, unsaved = exc.result, exc
        else:
            unsaved = None
    swarm.close()
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        console.print(round_view(result, verbose=verbose))
    if unsaved is not None:
        raise unsaved
    if result.answer is None:
        reasons = sorted({a.excluded for a in result.answers if a.excluded})
        raise SwarmError("no node produced a usable answer (" + "; ".join(reasons)[:300] + ")")


async def _ask(swarm, question, protocol, task_type, options, on_event):  # noqa: ANN001, ANN202
    try:
        return await swarm.ask(question, protocol=protocol, task_type=task_type, options=options, on_event=on_event)
    finally:
        await swarm.aclose_backends()


@app.command()
def nodes(
    config: ConfigOpt = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="ask every node a trivial question")] = True,
    as_json: JsonOpt = False,
) -> None:
    """List the swarm's nodes and check that each one answers."""
    from swarmrank.config import load_config
    from swarmrank.render import print_table

    cfg = load_config(config)
    swarm = _build(cfg.model_copy(update={"trust": cfg.trust.model_copy(update={"enabled": False})}), store=None)
    rows = swarm.describe()
    from swarmrank.cli_node import trust_rows

    try:
        trust = trust_rows(cfg, [str(r["id"]) for r in rows])
    except StorageError as exc:  # the node list does not need the database; say why trust is missing
        err.print(f"warning: no reputation shown: {exc}", style="yellow", markup=False, highlight=False)
        trust = {}
    show_trust = cfg.trust.enabled and bool(trust) or any(t["admitted"] or t["rounds"] for t in trust.values())
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
                state = ("counts" if t["eligible"] else "[red]stake low[/]") if t["admitted"] else "[dim]not admitted[/]"
                cells += [f"{t['reputation']:+.2f}", f"{t['influence']:.2f}", f"{t['stake']:g}", state]
            table_rows.append([*cells, status] if check else cells)
        headers = ["node", "backend", "roles", "temp", "key"]
        if show_trust:
            headers += ["reputation", "influence", "stake", "trust"]
        print_table(console, f"Swarm {swarm.name!r}", [*headers, "check"] if check else headers, table_rows)
    if checks and not all(c.ok for c in checks.values()):
        raise typer.Exit(1)


async def _check(swarm):  # noqa: ANN001, ANN202
    try:
        return await swarm.check()
    finally:
        await swarm.aclose_backends()


@app.command()
def protocols() -> None:
    """List the consensus protocols."""
    from swarmrank.protocols import _PROTOCOLS
    from swarmrank.render import print_table

    print_table(console, "Protocols", ["name", "what it does"], [[p.name, p.summary] for p in _PROTOCOLS.values()])


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print a swarm config (the embedded default unless --config is given), validated."""
    from swarmrank.config import default_config_text, load_config

    load_config(config)
    text = default_config_text() if config is None else config.read_text(encoding="utf-8")
    sys.stdout.write(text)


@rounds_app.command("list")
def rounds_list(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="how many rounds")] = 20,
    protocol: Annotated[Optional[str], typer.Option("--protocol", "-p")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List stored rounds, newest first."""
    from swarmrank.render import print_table

    store = _store(config)
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
    from swarmrank.render import round_view

    store = _store(config)
    result = store.get_round(round_id)
    store.close()
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        console.print(round_view(result, verbose=verbose))


def _print_summary(run: dict, rows: list[dict], as_json: bool) -> None:
    from rich.table import Table

    from swarmrank.eval.summary import summarise

    if not rows:
        raise SwarmError(f"eval run {run['run_id']} has no finished items yet")
    summary = summarise(rows)
    if as_json:
        print(json.dumps({**{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in run.items()},
                          "summary": summary.as_dict()}, indent=2))
        return
    table = Table(title=f"Eval {run['run_id'][:12]} — suite {run['suite']}, {summary.items} item(s), {run['status']}",
                  title_justify="left")
    for col in ("system", "accuracy", "95% CI", "calls/q", "judge calls/q", "tokens/q", "s/q"):
        table.add_column(col, justify="left" if col == "system" else "right")
    for sys_ in summary.systems:
        a = sys_.accuracy
        table.add_row(sys_.system, f"{a.mean:.1%}", f"{a.low:.1%}–{a.high:.1%}", f"{sys_.calls:.1f}",
                      f"{sys_.judge_calls:.1f}", f"{sys_.prompt_tokens + sys_.completion_tokens:.0f}",
                      f"{sys_.seconds:.2f}", style="dim" if sys_.system.startswith("node:") else None)
    console.print(table)
    if summary.oracle is not None and summary.best_node is not None:
        console.print(f"oracle (any node right): {summary.oracle.mean:.1%}   best single node: "
                      f"{summary.best_node[0]} {summary.best_node[1]:.1%}", highlight=False)
    paired = summary.peer_vs_majority
    if paired is not None:
        gap = "n/a" if summary.gap_closed is None else f"{summary.gap_closed:.0%}"
        console.print(f"peer-rank − majority: {paired.diff:+.1%} (95% CI {paired.low:+.1%} to {paired.high:+.1%}; "
                      f"McNemar p = {paired.p_value:.3g}; {paired.a_only} item(s) only peer-rank got, "
                      f"{paired.b_only} only majority got); majority→oracle gap closed: {gap}", highlight=False)
    if summary.degradation:
        deg = Table(title="Degradation under distraction and injection (accuracy on base items → on variants)",
                    title_justify="left")
        for col in ("variant", "system", "items", "base", "variant acc", "drop"):
            deg.add_column(col, justify="left" if col in ("variant", "system") else "right")
        for d in summary.degradation:
            deg.add_row(d.kind, d.system, str(d.items), f"{d.base:.1%}", f"{d.variant:.1%}", f"{d.drop:+.1%}",
                        style="dim" if d.system.startswith("node:") else None)
        console.print(deg)


@eval_app.command("run")
def eval_run(
    suite: Annotated[str, typer.Option("--suite", "-s", help="tiny, small or full")] = "tiny",
    protocols: Annotated[str, typer.Option("--protocols", "-p", help="'all' or a comma-separated list")] = "all",
    config: ConfigOpt = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="finish an interrupted run (id or prefix)")] = None,
    variants: Annotated[Optional[str], typer.Option(
        "--variants", help="also run extraneous, inject-question, inject-answer (comma-separated) or all")] = None,
    report_dir: Annotated[Optional[Path], typer.Option(
        "--report", help="then write the report (Markdown + HTML with plots) into this folder")] = None,
    as_json: JsonOpt = False,
    executor: ExecutorOpt = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1,
                                             help="items evaluated at once (worth it with --executor ray)")] = 1,
) -> None:
    """Run every chosen protocol (and every single node) on a suite; node outputs are cached and shared."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from swarmrank.config import load_config
    from swarmrank.eval.datasets import suite as load_suite
    from swarmrank.eval.runner import parse_protocols, run_eval

    from swarmrank.eval.injection import expand, parse_variants

    names = parse_protocols(protocols)
    kinds = parse_variants(variants)
    items = expand(load_suite(suite), kinds) if resume is None else []  # bad input fails before any set-up
    from swarmrank.executor import with_executor

    swarm = _build(with_executor(load_config(config), executor), store="default")
    if resume is not None:  # the run knows its suite and variants: rebuild exactly those items
        suite, _, stored_variants = swarm.store.get_eval_run(resume)["suite"].partition("+")
        kinds = parse_variants(stored_variants or None)
        items = expand(load_suite(suite), kinds)
    suite_label = suite + ("+" + ",".join(kinds) if kinds else "")
    columns = (TextColumn("[bold]eval[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(suite, total=len(items))

        def on_progress(done: int, total: int, last: str) -> None:
            progress.update(task, completed=done, description=f"{suite} {last}")

        result = asyncio.run(_eval(swarm, items, names, suite_label, resume, on_progress, concurrency))
    err.print(f"eval {result.run_id[:12]}: {result.items} item(s), {result.skipped} already done; "
              f"{result.cache.misses} model call(s), {result.cache.hits} answered from the cache",
              markup=False, highlight=False)
    try:
        run = swarm.store.get_eval_run(result.run_id)
        rows = swarm.store.eval_results(result.run_id)
        _print_summary(run, rows, as_json)
        if report_dir is not None:
            from swarmrank.eval.report import write_report

            paths = write_report(run, rows, report_dir)
            err.print(f"wrote {paths.markdown} and {paths.html} ({len(paths.figures)} figures)", markup=False,
                      highlight=False, soft_wrap=True)
    finally:
        swarm.close()


async def _eval(swarm, items, names, suite, resume, on_progress, concurrency=1):  # noqa: ANN001, ANN202
    from swarmrank.eval.runner import run_eval

    try:
        return await run_eval(swarm, items, names, store=swarm.store, suite=suite, run_id=resume,
                              on_progress=on_progress, concurrency=concurrency)
    finally:
        await swarm.aclose_backends()


@eval_app.command("list")
def eval_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List evaluation runs, newest first."""
    from swarmrank.render import print_table

    store = _store(config)
    runs = store.list_eval_runs()
    store.close()
    if as_json:
        print(json.dumps([{**r, "created_at": r["created_at"].isoformat()} for r in runs], indent=2))
        return
    print_table(console, f"Eval runs ({len(runs)})", ["id", "when (UTC)", "suite", "swarm", "items", "status", "protocols"],
                [[r["run_id"][:12], r["created_at"].strftime("%Y-%m-%d %H:%M:%S"), r["suite"], r["swarm"], r["items"],
                  r["status"], ", ".join(r["protocols"])] for r in runs])


def _load_run(config: Path | None, run_id: str) -> tuple[dict, list[dict]]:
    """An eval run (by id or prefix) and its per-item results, from the config's database."""
    store = _store(config)
    try:
        run = store.get_eval_run(run_id)
        return run, store.eval_results(run["run_id"])
    finally:
        store.close()


@eval_app.command("show")
def eval_show(
    run_id: Annotated[str, typer.Argument(help="an eval run id or a unique prefix of it")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show an evaluation run's accuracy (95% CIs), costs and the peer-rank vs majority comparison."""
    run, rows = _load_run(config, run_id)
    _print_summary(run, rows, as_json)


@app.command()
def simulate(
    questions: Annotated[int, typer.Option("--questions", "-n", min=1, help="simulated questions")] = 200,
    answerers: Annotated[int, typer.Option("--answerers", min=1)] = 7,
    judges_: Annotated[str, typer.Option("--judges", help="how many judges (of --discrimination), or a mixed pool: "
                                                           "2x0.95,5x0.5,3xfirst (KIND: a discrimination, first, "
                                                           "second or collude)")] = "3",
    self_judging: Annotated[bool, typer.Option("--self-judging", help="every answerer also judges (no separate "
                                                                      "judges; --judges lists one kind per answerer)")] = False,
    self_bias: Annotated[float, typer.Option("--self-bias", help="P(an answering judge picks its own answer)")] = 0.5,
    judges_per_pair: Annotated[int, typer.Option("--judges-per-pair", min=1)] = 2,
    accuracy: Annotated[float, typer.Option("--accuracy", help="mean answerer accuracy")] = 0.5,
    spread: Annotated[float, typer.Option("--spread", help="answerer accuracies spread over mean ± spread/2")] = 0.2,
    discrimination: Annotated[float, typer.Option("--discrimination",
                                                  help="P(a judge prefers the right answer of a right/wrong pair)")] = 0.8,
    correlated: Annotated[float, typer.Option("--correlated", help="P(a wrong node gives the popular wrong answer)")] = 0.0,
    adversaries: Annotated[float, typer.Option("--adversaries", help="fraction of colluding nodes")] = 0.0,
    protocols_: Annotated[str, typer.Option("--protocols", "-p", help="comma-separated protocols, each with optional "
                                                                      "/options: peer-rank/adaptive, peer-rank/legacy, …")]
    = "peer-rank,majority",
    schedule: Annotated[str, typer.Option("--schedule", help="peer-rank pair schedule: cluster, fortytwo or adaptive")] = "cluster",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    regime_map: Annotated[bool, typer.Option("--map", help="sweep discrimination × correlated errors: the regime map")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Simulate scripted swarms of known quality through real rounds: where does peer-rank beat voting?"""
    from swarmrank.eval import simulate as sim
    from swarmrank.render import print_table

    names = tuple(p.strip() for p in protocols_.split(",") if p.strip())
    pool = None
    if judges_.strip().isdigit():
        n_judges = int(judges_)
    else:
        pool, n_judges = sim.parse_judges(judges_), 0
    params = sim.SimParams(n_answerers=answerers, n_judges=n_judges, accuracy_mean=accuracy, accuracy_spread=spread,
                           judge_discrimination=discrimination, correlated_errors=correlated,
                           adversary_fraction=adversaries, questions=questions, seed=seed, protocols=names,
                           schedule=schedule, judges=pool, answerers_judge=self_judging, self_bias=self_bias,
                           judges_per_pair=judges_per_pair)
    if regime_map:
        if "peer-rank" not in names or "majority" not in names:
            raise SwarmError("--map compares peer-rank with majority: include both in --protocols")
        if pool is not None:
            raise SwarmError("--map sweeps the judges' discrimination: give --judges as a count, not a pool")
        mapped = tuple(dict.fromkeys([*names, "peer-rank/legacy"]))
        with err.status("simulating the regime map (6 × 5 cells)…"):
            cells = sim.sweep(replace(params, protocols=mapped), judge_discrimination=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
                              correlated_errors=[0.0, 0.25, 0.5, 0.75, 0.9])
        if as_json:
            out = {}
            for system in ("peer-rank", "peer-rank/legacy"):
                grid = sim.regime_grid(cells, "judge_discrimination", "correlated_errors", a=system)
                out[system] = {"x": grid.x, "y": grid.y, "xs": list(grid.xs), "ys": list(grid.ys),
                               "diff": grid.diff.tolist(), "significant": grid.significant.tolist()}
            print(json.dumps(out, indent=2))
        else:
            for system, title in (("peer-rank", "peer-rank (evidence aggregation) − majority"),
                                  ("peer-rank/legacy", "peer-rank as before 0.2 (Bradley–Terry × votes) − majority")):
                console.print(f"\n{title}", highlight=False, markup=False)
                console.print(sim.regime_map(cells, "judge_discrimination", "correlated_errors", a=system),
                              highlight=False, markup=False)
        return
    with err.status(f"simulating {questions} question(s)…"):
        result = sim.simulate(params)
    if as_json:
        print(json.dumps({
            "params": {k: v for k, v in params.__dict__.items()},
            "oracle": result.oracle.mean, "single": result.single,
            "protocols": {n: {"accuracy": o.accuracy.mean, "low": o.accuracy.low, "high": o.accuracy.high,
                              "judge_calls": o.judge_calls, "calls": o.calls} for n, o in result.protocols.items()},
        }, indent=2, default=list))
        return
    rows = [[n, f"{o.accuracy.mean:.1%}", f"{o.accuracy.low:.1%}–{o.accuracy.high:.1%}", f"{o.judge_calls:.1f}",
             f"{o.calls:.1f}"] for n, o in result.protocols.items()]
    rows.append(["oracle (any node right)", f"{result.oracle.mean:.1%}", "", "", ""])
    rows.append(["single node (mean)", f"{result.single:.1%}", "", "", ""])
    judging = f"{answerers} answering judges" if self_judging else f"{params.judge_count} judges"
    print_table(console, f"Simulation: {questions} questions, {answerers} answerers, {judging} "
                f"({result.seconds:.1f}s)", ["system", "accuracy", "95% CI", "judge calls/q", "calls/q"], rows)
    if "peer-rank" in result.protocols and "majority" in result.protocols:
        t = result.difference()
        console.print(f"peer-rank − majority: {t.diff:+.1%} (95% CI {t.low:+.1%} to {t.high:+.1%}, "
                      f"McNemar p = {t.p_value:.3g})", highlight=False)


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="an eval run id or a unique prefix of it")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for report.md, report.html and the figures")] = Path(
        "swarmrank-report"),
    config: ConfigOpt = None,
    simulate_: Annotated[bool, typer.Option("--simulate", help="add the simulated regime map and the accuracy vs "
                                                                 "swarm size curve")] = False,
    sim_questions: Annotated[int, typer.Option("--sim-questions", min=10,
                                               help="questions per simulated cell")] = 100,
) -> None:
    """Write an eval run's report: Markdown and a self-contained HTML page with plots."""
    from swarmrank.eval.report import simulation_figures, write_report

    run, rows = _load_run(config, run_id)
    figures = []
    if simulate_:
        from swarmrank.eval import simulate as sim

        base = sim.SimParams(questions=sim_questions)
        workers = min(4, os.cpu_count() or 1)
        with err.status(f"simulating the regime map (6 × 5 cells, {sim_questions} questions each)…"):
            cells = sim.sweep(base, workers=workers, judge_discrimination=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
                              correlated_errors=[0.0, 0.25, 0.5, 0.75, 0.9])
        with err.status("simulating accuracy against swarm size…"):
            sizes = sim.size_curve(replace(base, judge_discrimination=0.8, correlated_errors=0.5),
                                   [3, 5, 7, 11, 15], workers=workers)
        figures = simulation_figures(cells, sizes)
    paths = write_report(run, rows, out, extra_figures=figures)
    console.print(f"wrote {paths.markdown} and {paths.html} ({len(paths.figures)} figures)", highlight=False,
                  soft_wrap=True)


def main() -> None:
    try:
        app()
    except SwarmError as exc:
        err.print("error: " + str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
