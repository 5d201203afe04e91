"""``swarmrank judges …``: what the swarm knows about its judges, and measuring them on known answers."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from swarmrank.cli._common import ConfigOpt, JsonOpt, RegistryHelp, build_swarm, console, err

judges_app = typer.Typer(help="Judge reliability: learned from rounds (show) or measured on known answers "
                              "(calibrate).", no_args_is_help=True)


def _fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "—" if value is None else pattern.format(value)


@judges_app.command("calibrate", cls=RegistryHelp)
def calibrate_cmd(
    config: ConfigOpt = None,
    suite: Annotated[str, typer.Option(
        "--suite", "-s", help="a named suite ({suites}) or one dataset spec such as rg:basic_arithmetic:easy:20 "
                              "or file:mine.jsonl")] = "small",
    items: Annotated[int, typer.Option("--items", "-n", min=1, help="items to try (pairs need a wrong answer)")] = 24,
    style: Annotated[str, typer.Option("--style", help="compare, reference or both")] = "compare",
    judge: Annotated[list[str] | None, typer.Option("--judge", "-j", help="only this judge node (repeatable)")] = None,
    simulate_gain: Annotated[bool, typer.Option("--simulate/--no-simulate",
                                                help="place each judge on the simulated regime map")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Measure every judge node on items with known answers: P(prefers the right answer), order
    consistency, position bias, and where that puts it on the regime map."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from swarmrank.calibrate import simulated_gain
    from swarmrank.cli.render import print_table
    from swarmrank.config import load_config
    from swarmrank.errors import ConfigError
    from swarmrank.eval.cache import CacheStats
    from swarmrank.eval.datasets import load, suite_names
    from swarmrank.eval.datasets import suite as load_suite

    styles = ["compare", "reference"] if style == "both" else [style]
    for s in styles:
        if s not in ("compare", "reference"):
            raise ConfigError(f"unknown judging style {s!r} (known: compare, reference, both)")
    chosen = (load_suite(suite) if suite in suite_names() else load(suite))[:items]
    cfg = load_config(config)
    swarm = build_swarm(cfg, store="default")
    stats = CacheStats()
    try:
        with Progress(TextColumn("[bold]calibrate[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as progress:
            task = progress.add_task(suite, total=len(chosen))
            results = asyncio.run(_run(swarm, chosen, judge, styles, stats,
                                       lambda done, total: progress.update(task, completed=done)))
        if simulate_gain:
            with err.status("placing each judge on the simulated regime map…"):
                for r in results:
                    if r.p_right is not None:
                        r.gain, r.gain_low, r.gain_high = simulated_gain(r.p_right)
    finally:
        swarm.close()
    err.print(f"{len(chosen)} item(s) from {suite}; {stats.misses} model call(s), {stats.hits} from the cache",
              markup=False, highlight=False)
    if as_json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
        return
    rows = [[r.judge, r.style, str(r.pairs), _fmt(r.p_right, "{:.0%}"), _fmt(r.both_right, "{:.0%}"),
             _fmt(r.consistency, "{:.0%}"), _fmt(r.says_first, "{:.0%}"), _fmt(r.kappa, "{:+.2f}"),
             "—" if r.gain is None else f"{r.gain:+.1f} ({r.gain_low:+.1f}…{r.gain_high:+.1f})",
             f"{r.calls}/{r.tokens}"] for r in results]
    print_table(console, "Judge calibration (one right and one wrong answer, both orders)",
                ["judge", "style", "pairs", "P(right)", "right both orders", "consistent", "says A", "κ",
                 "sim. gain, points", "calls/tokens"], rows)
    judge_role = {n.id for n in cfg.nodes if "judge" in n.roles}
    useful = {r.judge: round(min(0.95, r.kappa), 2) for r in results
              if r.kappa is not None and r.kappa > 0.1 and r.style == styles[0] and r.judge in judge_role}
    outsiders = sorted({r.judge for r in results} - judge_role)
    if outsiders:
        console.print(f"not a judge in this swarm: {', '.join(outsiders)} (add \"judge\" to its roles to use what "
                      "was measured here)", markup=False, highlight=False)
    if useful:
        pairs = ", ".join(f'"{j}" = {k}' for j, k in useful.items())
        console.print(f"to trust these judges from the first round, add to [round]: judge_priors = {{ {pairs} }}",
                      markup=False, highlight=False)
    else:
        console.print("no judge preferred the right answer clearly (κ > 0.1): peer-rank will lean on the votes "
                      "with this swarm", markup=False, highlight=False)


async def _run(swarm: Any, items: Any, judges: Any, styles: list[str], stats: Any, progress: Any) -> Any:
    from swarmrank.calibrate import calibrate

    try:
        return await calibrate(swarm, items, store=swarm.store, judges=judges, styles=styles, stats=stats,
                               on_progress=progress)
    finally:
        await swarm.aclose_backends()


@judges_app.command("show")
def show_cmd(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """What the swarm has learned about its judges from its stored peer-rank rounds."""
    from swarmrank.cli._common import open_store
    from swarmrank.cli.render import print_table
    from swarmrank.config import load_config
    from swarmrank.reliability import JudgeBook
    from swarmrank.result import JudgeReport
    from swarmrank.swarm import BOOK_MAX_ROUNDS

    cfg = load_config(config)
    options = cfg.round
    store = open_store(config)
    try:
        history = store.judge_history(cfg.swarm.name, int(min(BOOK_MAX_ROUNDS, 3 * options.reliability_memory)))
    finally:
        store.close()
    book = JudgeBook(options.reliability_params())
    for entry in history:
        book.add_round([JudgeReport.model_validate(r) for r in entry["judge_reports"]], entry["votes"],
                       entry["evidence_low"])
    judges = [n.id for n in cfg.nodes if "judge" in n.roles]
    judges += [j for j in book.judges() if j not in judges]
    stats = {j: book.stats(j) for j in judges}
    if as_json:
        print(json.dumps({"swarm": cfg.swarm.name, "rounds": len(history), "vote_prior": book.vote_prior(),
                          "judges": stats}, indent=2))
        return
    print_table(console, f"Judges of swarm {cfg.swarm.name!r}: learned from {len(history)} peer-rank round(s)",
                ["judge", "κ (discrimination)", "± sd", "rounds", "pairs"],
                [[j, f"{s['kappa']:.2f}", f"{s['kappa_sd']:.2f}", f"{s['rounds']:.0f}", f"{s['pairs']:.0f}"]
                 for j, s in stats.items()])
    console.print(f"a vote is worth {book.vote_prior():.2f} nats (learnt; [round] vote_prior = {options.vote_prior:g})",
                  markup=False, highlight=False)
