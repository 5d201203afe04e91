"""``swarmrank eval run|list|show``, ``simulate`` and ``report``: protocols measured side by side."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from swarmrank.cli._common import (
    ConfigOpt,
    ExecutorOpt,
    JsonOpt,
    RegistryHelp,
    build_swarm,
    console,
    err,
    open_store,
)
from swarmrank.errors import ConfigError, SwarmError

eval_app = typer.Typer(
    rich_markup_mode=None,
    help="Evaluate protocols side by side on packaged datasets or your own files (run, list, show).")


def _dollars(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def _print_summary(run: dict[str, Any], rows: list[dict[str, Any]], as_json: bool) -> None:
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
    priced = any(s.dollars is not None for s in summary.systems)
    for col in ("system", "accuracy", "95% CI", "calls/q", "judge calls/q", "tokens/q", "s/q",
                *(("$/q", "$ total") if priced else ())):
        table.add_column(col, justify="left" if col == "system" else "right")
    for sys_ in summary.systems:
        a = sys_.accuracy
        money = [_dollars(sys_.dollars), _dollars(sys_.total_dollars)] if priced else []
        table.add_row(sys_.system, f"{a.mean:.1%}", f"{a.low:.1%}–{a.high:.1%}", f"{sys_.calls:.1f}",
                      f"{sys_.judge_calls:.1f}", f"{sys_.prompt_tokens + sys_.completion_tokens:.0f}",
                      f"{sys_.seconds:.2f}", *money, style="dim" if sys_.system.startswith("node:") else None)
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


@eval_app.command("run", cls=RegistryHelp)
def eval_run(
    ctx: typer.Context,
    suite: Annotated[str, typer.Option(
        "--suite", "-s", help="a named suite ({suites}); a .jsonl or .csv file (id, prompt, answer, type); or "
                              "dataset specs such as rg:basic_arithmetic:easy:20 (comma-separated)")] = "tiny",
    protocols: Annotated[str, typer.Option("--protocols", "-p", help="'all' or a comma-separated list")] = "all",
    config: ConfigOpt = None,
    resume: Annotated[str | None, typer.Option("--resume", help="finish an interrupted run (id or prefix)")] = None,
    variants: Annotated[str | None, typer.Option(
        "--variants", help="also run extraneous, inject-question, inject-answer (comma-separated) or all")] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="only the suite's first N items")] = None,
    report_dir: Annotated[Path | None, typer.Option(
        "--report", help="then write the report (Markdown + HTML with plots) into this folder")] = None,
    as_json: JsonOpt = False,
    executor: ExecutorOpt = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1,
                                             help="items evaluated at once (worth it with --executor ray)")] = 1,
) -> None:
    """Run every chosen protocol (and every single node) on a suite; node outputs are cached and shared.

    Ctrl-C stops between items: the run is marked interrupted and the command to resume it is printed."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from swarmrank.config import load_config
    from swarmrank.eval.datasets import SuiteRef
    from swarmrank.eval.injection import expand, parse_variants
    from swarmrank.eval.runner import parse_protocols
    from swarmrank.eval.store import EvalRuns
    from swarmrank.executor import with_executor

    if resume is not None:
        given = [f"--{name}" for name in ("suite", "protocols", "variants", "limit")
                 if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"]
        if given:
            raise SwarmError(f"--resume finishes a run with the suite, protocols, variants and limit it began with: "
                             f"drop {', '.join(given)} (or start a new run without --resume)")
    names = parse_protocols(protocols)
    ref = SuiteRef.parse(suite, limit=limit, variants=parse_variants(variants)) if resume is None else None
    items = expand(ref.items(), ref.variants) if ref is not None else []  # bad input fails before any set-up
    swarm = build_swarm(with_executor(load_config(config), executor), store="default")
    runs = EvalRuns(swarm.store)
    if ref is None:  # the run knows its suite, limit and variants: rebuild exactly those items
        ref = SuiteRef.from_label(runs.get(str(resume))["suite"])
        items = expand(ref.items(), ref.variants)
    label = ref.label()
    if len(label) > 200:
        raise SwarmError(f"the suite's name is too long to record ({len(label)} characters > 200): use a shorter "
                         "file path")
    shown = Path(ref.source.removeprefix("file:").partition("@")[0]).name if ref.source.startswith("file:") \
        else ref.source
    columns = (TextColumn("[bold]eval[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    started: list[str] = []
    done = [0]
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(shown, total=len(items))

        def on_progress(finished: int, total: int, last: str) -> None:
            done[0] = finished
            progress.update(task, completed=finished, description=f"{shown} {last}")

        try:
            result = asyncio.run(_eval(swarm, items, names, label, resume, on_progress, concurrency,
                                       on_start=started.append))
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            if started and not isinstance(exc, SystemExit):
                _stopped(runs, started[0], config, interrupted, done[0], len(items))
            swarm.close()
            if interrupted:
                raise typer.Exit(130) from None
            raise
    err.print(f"eval {result.run_id[:12]}: {result.items} item(s), {result.skipped} already done; "
              f"{result.cache.misses} model call(s), {result.cache.hits} answered from the cache",
              markup=False, highlight=False)
    try:
        run = runs.get(result.run_id)
        rows = runs.results(result.run_id)
        _print_summary(run, rows, as_json)
        if report_dir is not None:
            from swarmrank.eval.report import write_report

            paths = write_report(run, rows, report_dir)
            err.print(f"wrote {paths.markdown} and {paths.html} ({len(paths.figures)} figures)", markup=False,
                      highlight=False, soft_wrap=True)
    finally:
        swarm.close()


def _stopped(runs: Any, run_id: str, config: Path | None, interrupted: bool, done: int, total: int) -> None:
    """Mark a run that did not finish and say how to resume it (nothing finished is lost: each item is saved
    in one transaction as it completes)."""
    status = "interrupted" if interrupted else "failed"
    try:
        runs.finish(run_id, status)
    except SwarmError as exc:
        err.print(f"(could not mark the run {status}: {exc})", style="yellow", markup=False, highlight=False)
    again = f"swarmrank eval run --resume {run_id[:12]}" + (f" --config {config}" if config else "")
    err.print(f"eval {run_id[:12]} {status} after {done} of {total} item(s); resume with: {again}",
              style="yellow", markup=False, highlight=False, soft_wrap=True)


async def _eval(swarm: Any, items: Any, names: Any, suite: str, resume: str | None, on_progress: Any,
                concurrency: int = 1, on_start: Any = None) -> Any:
    from swarmrank.eval.runner import run_eval

    try:
        return await run_eval(swarm, items, names, store=swarm.store, suite=suite, run_id=resume,
                              on_progress=on_progress, concurrency=concurrency, on_start=on_start)
    finally:
        await swarm.aclose_backends()


@eval_app.command("list")
def eval_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List evaluation runs, newest first."""
    from swarmrank.cli.render import print_table
    from swarmrank.eval.store import EvalRuns

    store = open_store(config)
    try:
        runs = EvalRuns(store).recent()
    finally:
        store.close()
    if as_json:
        print(json.dumps([{**r, "created_at": r["created_at"].isoformat()} for r in runs], indent=2))
        return
    print_table(console, f"Eval runs ({len(runs)})",
                ["id", "when (UTC)", "suite", "swarm", "items", "status", "protocols"],
                [[r["run_id"][:12], r["created_at"].strftime("%Y-%m-%d %H:%M:%S"), r["suite"], r["swarm"],
                  f"{r['done']}/{r['items']}", r["status"], ", ".join(r["protocols"])] for r in runs])


def _load_run(config: Path | None, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An eval run (by id or prefix) and its per-item results, from the config's database."""
    from swarmrank.eval.store import EvalRuns

    store = open_store(config)
    try:
        runs = EvalRuns(store)
        run = runs.get(run_id)
        return run, runs.results(run["run_id"])
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


def simulate(
    questions: Annotated[int, typer.Option("--questions", "-n", min=1, help="simulated questions")] = 200,
    answerers: Annotated[int, typer.Option("--answerers", min=1)] = 7,
    judges_: Annotated[str, typer.Option("--judges", help="how many judges (of --discrimination), or a mixed pool: "
                                                           "2x0.95,5x0.5,3xfirst (KIND: a discrimination, first, "
                                                           "second or collude)")] = "3",
    self_judging: Annotated[bool, typer.Option(
        "--self-judging", help="every answerer also judges (no separate judges; --judges lists one kind per "
                               "answerer)")] = False,
    self_bias: Annotated[float, typer.Option("--self-bias", help="P(an answering judge picks its own answer)")] = 0.5,
    judges_per_pair: Annotated[int, typer.Option("--judges-per-pair", min=1)] = 2,
    accuracy: Annotated[float, typer.Option("--accuracy", help="mean answerer accuracy")] = 0.5,
    spread: Annotated[float, typer.Option("--spread", help="answerer accuracies spread over mean ± spread/2")] = 0.2,
    discrimination: Annotated[float, typer.Option(
        "--discrimination", help="P(a judge prefers the right answer of a right/wrong pair)")] = 0.8,
    correlated: Annotated[float, typer.Option(
        "--correlated", help="P(a wrong node gives the popular wrong answer)")] = 0.0,
    adversaries: Annotated[float, typer.Option("--adversaries", help="fraction of colluding nodes")] = 0.0,
    protocols_: Annotated[str, typer.Option(
        "--protocols", "-p", help="comma-separated protocols, each with optional /options: peer-rank/adaptive, "
                                  "peer-rank/legacy, …")] = "peer-rank,majority",
    schedule: Annotated[str, typer.Option(
        "--schedule", help="peer-rank pair schedule: cluster, fortytwo or adaptive")] = "cluster",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    regime_map: Annotated[bool, typer.Option(
        "--map", help="sweep discrimination × correlated errors: the regime map")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Simulate scripted swarms of known quality through real rounds: where does peer-rank beat voting?"""
    from swarmrank.cli.render import print_table
    from swarmrank.eval import simulate as sim

    # checked here, not by SimParams, so that an error names the flag rather than the field it sets
    for flag, value, high in (("--accuracy", accuracy, 1), ("--spread", spread, 2),
                              ("--discrimination", discrimination, 1), ("--correlated", correlated, 1),
                              ("--adversaries", adversaries, 1), ("--self-bias", self_bias, 1)):
        if not 0 <= value <= high:
            raise ConfigError(f"{flag} must be between 0 and {high}, got {value:g}")
    names = tuple(p.strip() for p in protocols_.split(",") if p.strip())
    pool = None
    if judges_.strip().isdigit():
        n_judges = int(judges_)
    else:
        try:
            pool, n_judges = sim.parse_judges(judges_), 0
        except ConfigError as exc:
            raise ConfigError(f"--judges: {exc}") from None
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


def report(
    run_id: Annotated[str, typer.Argument(help="an eval run id or a unique prefix of it")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for report.md, report.html and the figures")] = Path(
        "swarmrank-report"),
    config: ConfigOpt = None,
    simulate_: Annotated[bool, typer.Option("--simulate", help="add the simulated regime map and the accuracy vs "
                                                                 "swarm size curve")] = False,
    sim_questions: Annotated[int, typer.Option("--sim-questions", min=10,
                                               help="questions per simulated cell")] = 100,
    round_link: Annotated[str, typer.Option(
        "--round-link", help="where each item's answers link: {round_id} is filled in ('' for no links)")] =
        "http://127.0.0.1:8000/dashboard#round={round_id}",
) -> None:
    """Write an eval run's report: Markdown and a self-contained HTML page with plots; each item's answers
    link to their rounds on the dashboard of `swarmrank serve` (run it on the same database)."""
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
    paths = write_report(run, rows, out, extra_figures=figures, round_link=round_link or None)  # '' for none
    console.print(f"wrote {paths.markdown} and {paths.html} ({len(paths.figures)} figures)", highlight=False,
                  soft_wrap=True)
