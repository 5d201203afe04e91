"""Simulated regime map: where peer-rank beats majority vote, and where it does not.

Every cell is :func:`swarmrank.eval.simulate.simulate`: ``--questions`` synthetic questions run as
real rounds (peer-rank with the cluster schedule, and majority) over scripted statistical nodes —
7 answerers with accuracies drawn uniformly in 0.5 ± 0.1 and 3 separate judges, unless changed
below. The grid is judge discrimination (the probability that a judge prefers the right answer
when exactly one of the two shown is right) × correlated errors (the probability that a wrong
answerer gives the shared popular wrong answer instead of one of 4 scattered ones). Each cell
prints peer-rank minus majority accuracy in points; ``*`` marks cells whose 95% paired-bootstrap
interval excludes 0. Every cell uses the same seed, so cells share node accuracies and draws.

Then accuracy against swarm size (answerers n = 3, 5, 7, 11, 15) at one regime, with judge calls
per question for both protocols, and the judge calls of peer-rank across the map (majority makes
none). With matplotlib installed, a PNG heatmap of the regime map is written to ``--png``.

    .venv/bin/python benchmarks/bench_simulate.py                       # 6 × 10 cells, 300 questions each
    .venv/bin/python benchmarks/bench_simulate.py --questions 100 --workers 2 --png /tmp/map.png
    .venv/bin/python benchmarks/bench_simulate.py --round-option vote_weighted=false   # any RoundOptions field
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

try:
    from swarmrank.eval.simulate import SimParams, regime_grid, regime_map, size_curve, size_table, sweep
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from swarmrank.eval.simulate import SimParams, regime_grid, regime_map, size_curve, size_table, sweep

from _machine import cpu_model  # noqa: E402 - benchmarks run as scripts

DISCRIMINATION = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CORRELATION = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SIZES = (3, 5, 7, 11, 15)


def judge_calls_map(results, x: str, y: str) -> str:
    """Markdown: mean peer-rank judge calls per question, per cell."""
    grid = regime_grid(results, x, y)
    by_cell = {(getattr(p, x), getattr(p, y)): r for p, r in results}
    lines = [f"| {y} \\ {x} | " + " | ".join(f"{v:g}" for v in grid.xs) + " |", "|---|" + "---:|" * len(grid.xs)]
    for vy in grid.ys:
        cells = [f"{by_cell[(vx, vy)]['peer-rank'].judge_calls:.1f}" for vx in grid.xs]
        lines.append(f"| {vy:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_rows(results, x: str, y: str) -> str:
    """Markdown: per cell, peer-rank and majority accuracy and the oracle (long form)."""
    lines = [f"| {x} | {y} | peer-rank | majority | oracle | single |", "|---:|---:|---:|---:|---:|---:|"]
    for params, r in results:
        lines.append(f"| {getattr(params, x):g} | {getattr(params, y):g} | {100 * r['peer-rank'].accuracy.mean:.1f} | "
                     f"{100 * r['majority'].accuracy.mean:.1f} | {100 * r.oracle.mean:.1f} | {100 * r.single:.1f} |")
    return "\n".join(lines)


def write_png(results, x: str, y: str, path: Path, questions: int) -> bool:
    from swarmrank.eval.report import plot_regime_map

    try:
        png = plot_regime_map(regime_grid(results, x, y), questions=questions)
    except ImportError:  # matplotlib is an optional extra
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=300, help="questions per cell (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--discrimination", type=float, nargs="+", default=list(DISCRIMINATION))
    parser.add_argument("--correlation", type=float, nargs="+", default=list(CORRELATION))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--size-discrimination", type=float, default=0.8,
                        help="judge discrimination for the size curve (default 0.8)")
    parser.add_argument("--size-correlation", type=float, default=0.5,
                        help="correlated errors for the size curve (default 0.5)")
    parser.add_argument("--accuracy-mean", type=float, default=0.5)
    parser.add_argument("--accuracy-spread", type=float, default=0.2)
    parser.add_argument("--answerers", type=int, default=7)
    parser.add_argument("--judges", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the cells")
    parser.add_argument("--png", type=Path, default=Path("benchmarks/out/regime_map.png"))
    parser.add_argument("--long", action="store_true", help="also print every cell's absolute accuracies")
    parser.add_argument("--round-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a RoundOptions field for every round (value read as JSON), e.g. prior=1.0; repeatable")
    args = parser.parse_args(argv)
    round_options = {}
    for item in args.round_option:
        key, sep, raw = item.partition("=")
        if not sep:
            parser.error(f"--round-option needs KEY=VALUE, got {item!r}")
        try:
            round_options[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            round_options[key.strip()] = raw

    base = SimParams(questions=args.questions, seed=args.seed, accuracy_mean=args.accuracy_mean,
                     accuracy_spread=args.accuracy_spread, n_answerers=args.answerers, n_judges=args.judges,
                     round_options=round_options)
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; Python {platform.python_version()}; "
          f"workers {args.workers}")
    print(f"swarm: {base.n_answerers} answerers (accuracy {base.accuracy_mean:g} ± {base.accuracy_spread / 2:g}), "
          f"{base.n_judges} judges, {base.n_wrong_answers} scattered wrong answers, schedule {base.schedule}, "
          f"judges_per_pair {base.judges_per_pair}, seed {base.seed}"
          + (f", round options {dict(base.round_options)}" if base.round_options else "") + "\n")

    x, y = "judge_discrimination", "correlated_errors"
    start = time.perf_counter()
    results = sweep(base, workers=args.workers, judge_discrimination=args.discrimination,
                    correlated_errors=args.correlation)
    map_seconds = time.perf_counter() - start
    print(f"## Regime map: peer-rank − majority ({len(results)} cells, {map_seconds:.1f} s)\n")
    print(regime_map(results, x, y))
    if args.long:
        print("\n### Accuracy per cell (%)\n")
        print(accuracy_rows(results, x, y))
    print("\n## Peer-rank judge calls per question across the map (majority: 0)\n")
    print(judge_calls_map(results, x, y))

    size_base = replace(base, judge_discrimination=args.size_discrimination,
                        correlated_errors=args.size_correlation)
    start = time.perf_counter()
    sizes = size_curve(size_base, args.sizes, workers=args.workers)
    size_seconds = time.perf_counter() - start
    print(f"\n## Accuracy (%) vs number of answerers (judge discrimination {size_base.judge_discrimination:g}, "
          f"correlated errors {size_base.correlated_errors:g}, {size_base.n_judges} judges, "
          f"{args.questions} questions; {size_seconds:.1f} s)\n")
    print(size_table(sizes))

    if write_png(results, x, y, args.png, args.questions):
        print(f"\nheatmap written to {args.png}")
    else:
        print("\nmatplotlib is not importable: no heatmap written")
    print(f"total {map_seconds + size_seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
