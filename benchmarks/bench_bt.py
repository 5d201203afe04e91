"""Time swarmrank.aggregate.bradley_terry on a realistic judging schedule.

Usage: ``python benchmarks/bench_bt.py [--repeat N] [--judges J] [--seed S]``

For each n in 4, 8, 16, 32, 64, 128 items, every judge compares the adjacent pairs (i, i+1 mod n)
and the cross pairs (i, i + n/2) in both presentation orders — about 3n comparisons per judge —
and each verdict is drawn from a Bradley–Terry model with seeded random true strengths. The
script reports the median and 90th-percentile wall time of one solve in microseconds, as a
Markdown table:

* ``bradley_terry`` with the default prior (0.1) on the unweighted verdicts;
* ``bradley_terry`` on the same schedule with 10% ties (split half/half) and per-judge weights;
* ``choix.ilsr_pairwise`` (plain maximum likelihood, the reference implementation) on the same
  unweighted verdicts, if choix is importable, plus the largest absolute difference between its
  centred log-strengths and those of ``bradley_terry(..., prior=0)``.

The ``choix`` column is a reference point, not a like-for-like race: I-LSR solves the plain
maximum-likelihood problem with a different algorithm and its own default tolerance (1e-8).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

try:
    from swarmrank.aggregate import bradley_terry, comparisons_from_verdicts
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from swarmrank.aggregate import bradley_terry, comparisons_from_verdicts

choix: Any
try:
    import choix
except ImportError:
    choix = None

SIZES = (4, 8, 16, 32, 64, 128)


def schedule(n: int, judges: int) -> tuple[np.ndarray, np.ndarray]:
    """Ordered pairs (first, second) shown to the judges: adjacent and cross pairs, both orders."""
    idx = np.arange(n)
    adjacent = np.stack([idx, (idx + 1) % n], axis=1)
    half = np.arange(n // 2)
    cross = np.stack([half, half + n // 2], axis=1)
    pairs = np.concatenate([adjacent, cross])
    pairs = np.concatenate([pairs, pairs[:, ::-1]])
    pairs = np.tile(pairs, (judges, 1))
    judge_of = np.repeat(np.arange(judges), pairs.shape[0] // judges)
    return pairs, judge_of


class Round(NamedTuple):
    winners: np.ndarray
    losers: np.ndarray
    choix_data: list[tuple[int, int]]
    tied_winners: np.ndarray
    tied_losers: np.ndarray
    tied_weights: np.ndarray


def simulate(n: int, judges: int, rng: np.random.Generator) -> Round:
    pairs, judge_of = schedule(n, judges)
    true = rng.normal(size=n)
    first, second = pairs[:, 0], pairs[:, 1]
    p_first = 1.0 / (1.0 + np.exp(-(true[first] - true[second])))
    first_wins = rng.random(len(pairs)) < p_first
    winners = np.where(first_wins, first, second)
    losers = np.where(first_wins, second, first)

    verdicts = np.where(first_wins, "A", "B")
    verdicts[rng.random(len(pairs)) < 0.1] = "U"
    judge_weight = rng.uniform(0.5, 2.0, size=judges)
    tw, tl, tweights = comparisons_from_verdicts(pairs, verdicts.tolist(), judge_weight[judge_of])
    return Round(winners, losers, list(zip(winners.tolist(), losers.tolist(), strict=True)), tw, tl, tweights)


def time_us(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and p90 of ``repeat`` timed calls, in microseconds, after one warm-up call."""
    fn()
    samples = np.empty(repeat)
    for k in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples[k] = time.perf_counter_ns() - start
    return float(np.median(samples)) / 1e3, float(np.percentile(samples, 90)) / 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="timed solves per size (default 200)")
    parser.add_argument("--judges", type=int, default=10, help="judges per round (default 10)")
    parser.add_argument("--seed", type=int, default=20250101, help="random seed")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.judges < 1:
        parser.error("--repeat and --judges must be at least 1")

    rng = np.random.default_rng(args.seed)
    print(
        f"bradley_terry timing: {args.judges} judges, {args.repeat} repeats, seed {args.seed}; "
        f"Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    )
    print()
    header = [
        "n",
        "comparisons",
        "BT median µs",
        "BT p90 µs",
        "BT iters",
        "BT ties+weights median µs",
        "BT ties+weights p90 µs",
    ]
    if choix is not None:
        header += ["choix ilsr median µs", "choix ilsr p90 µs", "max abs Δθ vs choix"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" for _ in header) + "|")

    for n in SIZES:
        data = simulate(n, args.judges, rng)
        winners, losers = data.winners, data.losers
        tw, tl, tweights = data.tied_winners, data.tied_losers, data.tied_weights
        fit = bradley_terry(n, winners, losers)
        median, p90 = time_us(lambda: bradley_terry(n, winners, losers), args.repeat)  # noqa: B023
        t_median, t_p90 = time_us(lambda: bradley_terry(n, tw, tl, tweights), args.repeat)  # noqa: B023
        row = [
            str(n),
            str(len(winners)),
            f"{median:.0f}",
            f"{p90:.0f}",
            str(fit.iterations),
            f"{t_median:.0f}",
            f"{t_p90:.0f}",
        ]
        if choix is not None:
            pairs = data.choix_data
            try:
                reference = choix.ilsr_pairwise(n, pairs)
                c_median, c_p90 = time_us(lambda: choix.ilsr_pairwise(n, pairs), args.repeat)  # noqa: B023
                ml = bradley_terry(n, winners, losers, prior=0.0).log_strengths
                diff = float(np.max(np.abs((ml - ml.mean()) - (reference - reference.mean()))))
                row += [f"{c_median:.0f}", f"{c_p90:.0f}", f"{diff:.1e}"]
            except (RuntimeError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:  # no MLE / no convergence
                row += ["n/a", "n/a", type(exc).__name__]
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
