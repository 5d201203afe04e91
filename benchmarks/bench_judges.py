"""Judge reliability and peer-rank's aggregation, measured in simulation (issue 9).

Every number is a real round through the engine on simulated nodes (swarmrank.eval.simulate):

1. the estimator: estimated vs true discrimination κ = 2·P(prefers right) − 1 for judges of known
   quality, without the truth (correlation, mean absolute error, calibration slope);
2. heterogeneous swarms (mixed judge pools; answerers that judge): peer-rank (evidence aggregation,
   the default), peer-rank/legacy (Bradley–Terry × votes, as before), peer-rank/adaptive, majority;
3. uninformative judges over a long run: the cost of peer-rank against majority;
4. the regime map (judge discrimination × correlated errors), new and legacy aggregation;
5. adaptive judging: judge calls per question against accuracy, next to the cluster and fortytwo
   schedules.

The regimes' seeds (10…) are not those the defaults were tuned on (0…4).

    .venv/bin/python benchmarks/bench_judges.py              # everything, ~10 minutes on 2 cores
    .venv/bin/python benchmarks/bench_judges.py --quick      # fewer questions and seeds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from swarmrank.eval.metrics import paired_difference
from swarmrank.eval.simulate import SimParams, World, build_nodes, regime_map, simulate, sweep
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm

SYSTEMS = ("peer-rank", "peer-rank/legacy", "peer-rank/adaptive", "majority")

REGIMES: dict[str, dict[str, Any]] = {
    "a. 2 reliable (0.95) among 5 coins and 3 always-A, all judge": dict(judges="2x0.95,5x0.5,3xfirst",
                                                                         judges_per_pair=10),
    "a'. the same, 2 judges per pair": dict(judges="2x0.95,5x0.5,3xfirst"),
    "b. 5 coins and 3 always-A, all judge": dict(judges="5x0.5,3xfirst", judges_per_pair=8),
    "b'. 4 coins, 2 judges per pair": dict(judges="4x0.5"),
    "c. 3 reliable (0.95)": dict(judges="3x0.95"),
    "d. answerers judge: 2 reliable, 3 coins, 2 always-A": dict(answerers_judge=True, judges="2x0.95,3x0.5,2xfirst",
                                                               judges_per_pair=4),
    "e. 3 moderate (0.7)": dict(judges="3x0.7"),
    "f. 3 at 0.8, one colluding judge": dict(judges="2x0.8,1xcollude"),
    "g. a consistent liar listed first, 2 reliable, 2 judges per pair": dict(judges="1x0,2x0.95"),
    "h. 3 consistent liars and 2 reliable, all judge": dict(judges="3x0,2x0.95", judges_per_pair=5),
}
WORLDS = [(0.7, 0.4), (0.0, 0.5), (0.9, 0.35), (0.4, 0.6), (0.2, 0.45)]  # (correlated errors, accuracy)


def estimator(seeds: list[int], questions: int) -> str:
    kinds = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    spec = ",".join(f"1x{d}" for d in kinds) + ",1xfirst,1xsecond"
    # the model's κ is the judge's accuracy when it picks the same answer in both orders: a judge right
    # with probability p in each order is then right with probability p²/(p² + (1 − p)²)
    truth = [min(0.95, 2 * d * d / (d * d + (1 - d) ** 2) - 1) for d in kinds] + [0.0, 0.0]
    per_verdict = [2 * d - 1 for d in kinds] + [0.0, 0.0]
    est: list[list[float]] = []
    for seed in seeds:
        world = World(SimParams(questions=questions, seed=seed, judges=spec, correlated_errors=0.5))
        swarm = Swarm(build_nodes(world), options=RoundOptions(judges_per_pair=len(truth)), store=None)
        for q in range(questions):
            swarm.ask_sync(world.questions[q], truth=world.truths[q], task_type="short", save=False)
        est.append([swarm.judge_book.posterior(f"j{k}")[0] for k in range(len(truth))])
    arr = np.array(est)
    flat_true = np.tile(truth, len(seeds))
    flat_est = arr.ravel()
    r = float(np.corrcoef(flat_true, flat_est)[0, 1])
    mae = float(np.mean(np.abs(flat_est - flat_true)))
    slope = float(np.polyfit(flat_true, flat_est, 1)[0])
    labels = [f"{d:g}" for d in kinds] + ["always A", "always B"]
    lines = [f"Estimated vs true discrimination, {len(seeds)} seeds × {questions} questions, every judge on every pair "
             "(7 answerers, accuracy 0.5 ± 0.1, half of the errors on one popular wrong answer):", "",
             "| judge P(right) per verdict | 2p − 1 | true κ (right when consistent, capped at 0.95) "
             "| estimated κ (mean ± sd over seeds) |", "|---|---:|---:|---:|"]
    for k, label in enumerate(labels):
        lines.append(f"| {label} | {per_verdict[k]:+.2f} | {truth[k]:+.2f} | "
                     f"{arr[:, k].mean():+.2f} ± {arr[:, k].std():.2f} |")
    lines += ["", f"Against the true κ: Pearson r = {r:.3f}; mean absolute error {mae:.3f}; "
              f"calibration slope {slope:.2f} (estimated on true)."]
    return "\n".join(lines)


def _cell(args: tuple[str, dict[str, Any], float, float, int, int]) -> tuple[str, dict[str, tuple[bool, ...]], dict]:
    name, kw, corr, acc, seed, questions = args
    result = simulate(SimParams(questions=questions, seed=seed, correlated_errors=corr, accuracy_mean=acc,
                                protocols=SYSTEMS, **kw))
    calls = {s: result[s].judge_calls for s in SYSTEMS}
    return name, {**{s: result[s].correct for s in SYSTEMS}, "oracle": result.oracle_correct}, calls


def regimes(seeds: list[int], questions: int, workers: int) -> str:
    jobs = [(name, kw, corr, acc, seed + i, questions) for name, kw in REGIMES.items()
            for i, (corr, acc) in enumerate(WORLDS) for seed in seeds]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(_cell, jobs))
    lines = [f"Accuracy (%) over {len(WORLDS)} worlds × {len(seeds)} seed(s) × {questions} questions "
             "(worlds: correlated errors / accuracy "
             + ", ".join(f"{c:g}/{a:g}" for c, a in WORLDS) + "); paired differences with 95% bootstrap CIs:", "",
             "| regime | peer-rank | legacy | adaptive | majority | oracle | peer-rank − majority | peer-rank − legacy "
             "| judge calls/q: peer-rank, adaptive |", "|---|---:|---:|---:|---:|---:|---|---|---|"]
    for name in REGIMES:
        rows = [o for o in outcomes if o[0] == name]
        joined = {s: sum((list(r[1][s]) for r in rows), []) for s in (*SYSTEMS, "oracle")}
        acc = {s: 100 * float(np.mean(v)) for s, v in joined.items()}
        vs_maj = paired_difference(joined["peer-rank"], joined["majority"], seed=0)
        vs_old = paired_difference(joined["peer-rank"], joined["peer-rank/legacy"], seed=0)
        calls = [statistics.mean(r[2][s] for r in rows) for s in ("peer-rank", "peer-rank/adaptive")]
        lines.append(f"| {name} | {acc['peer-rank']:.1f} | {acc['peer-rank/legacy']:.1f} | "
                     f"{acc['peer-rank/adaptive']:.1f} | {acc['majority']:.1f} | {acc['oracle']:.1f} | "
                     f"{_diff(vs_maj)} | {_diff(vs_old)} | {calls[0]:.1f}, {calls[1]:.1f} |")
    return "\n".join(lines)


def _diff(t: Any) -> str:
    return f"{100 * t.diff:+.1f} ({100 * t.low:+.1f}…{100 * t.high:+.1f})"


def long_run(questions: int, workers: int) -> str:
    cases = [(seed, corr, acc, judges, jpp) for seed, (corr, acc) in enumerate(WORLDS, start=20)
             for judges, jpp in (("5x0.5,3xfirst", 8), ("4x0.5", 2))]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_long, [(c, questions) for c in cases]))
    lines = [f"Uninformative judges only, {questions} questions each: peer-rank minus majority, in points "
             "(first 100 questions | the rest):", "", "| world (corr/acc) | judges | all | first 100 | rest |",
             "|---|---|---:|---:|---:|"]
    for (seed, corr, acc, judges, jpp), (total, early, rest) in zip(cases, results):
        lines.append(f"| {corr:g}/{acc:g} | {judges}, {jpp} per pair | {total:+.1f} | {early:+.1f} | {rest:+.2f} |")
    worst = min(r[0] for r in results)
    lines += ["", f"worst cell {worst:+.1f} points; mean {statistics.mean(r[0] for r in results):+.2f}."]
    return "\n".join(lines)


def _long(args: tuple[tuple[int, float, float, str, int], int]) -> tuple[float, float, float]:
    (seed, corr, acc, judges, jpp), questions = args
    r = simulate(SimParams(questions=questions, seed=seed, correlated_errors=corr, accuracy_mean=acc, judges=judges,
                           judges_per_pair=jpp, protocols=("peer-rank", "majority")))
    d = np.array(r["peer-rank"].correct, dtype=float) - np.array(r["majority"].correct, dtype=float)
    return 100 * d.mean(), 100 * d[:100].mean(), 100 * d[100:].mean()


def regime_maps(questions: int, workers: int) -> str:
    base = SimParams(questions=questions, seed=30, accuracy_mean=0.4, protocols=("peer-rank", "peer-rank/legacy",
                                                                                   "majority"))
    cells = sweep(base, workers=workers, judge_discrimination=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
                  correlated_errors=[0.0, 0.25, 0.5, 0.75, 0.9])
    return ("New (evidence aggregation), peer-rank − majority:\n\n"
            + regime_map(cells, "judge_discrimination", "correlated_errors", a="peer-rank")
            + "\n\nLegacy (Bradley–Terry × votes), peer-rank − majority:\n\n"
            + regime_map(cells, "judge_discrimination", "correlated_errors", a="peer-rank/legacy"))


def adaptive(questions: int) -> str:
    systems = ("peer-rank", "peer-rank/adaptive", "peer-rank/fortytwo", "majority")
    lines = ["| swarm | system | accuracy % | judge calls/q |", "|---|---|---:|---:|"]
    for label, kw in (("3 judges at 0.8, corr 0.5", dict(judges="3x0.8", correlated_errors=0.5)),
                      ("2 reliable + 5 coins + 3 always-A, corr 0.7", dict(judges="2x0.95,5x0.5,3xfirst",
                                                                        correlated_errors=0.7, judges_per_pair=10)),
                      ("5 judges at 0.9, corr 0.5, 4 per pair", dict(judges="5x0.9", correlated_errors=0.5,
                                                                      judges_per_pair=4))):
        r = simulate(SimParams(questions=questions, seed=40, accuracy_mean=0.4, protocols=systems, **kw))
        for s in systems:
            lines.append(f"| {label} | {s} | {100 * r[s].accuracy.mean:.1f} | {r[s].judge_calls:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer questions and seeds")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    q = 100 if args.quick else 200
    seeds = [10] if args.quick else [10, 11]
    start = time.perf_counter()
    for title, part in (("1. Estimator", lambda: estimator([0, 1, 2] if not args.quick else [0], 150 if not args.quick else 80)),
                        ("2. Heterogeneous swarms", lambda: regimes(seeds, q, args.workers)),
                        ("3. Uninformative judges, long run", lambda: long_run(300 if args.quick else 1000, args.workers)),
                        ("4. Regime map", lambda: regime_maps(100 if args.quick else 300, args.workers)),
                        ("5. Adaptive judging", lambda: adaptive(q))):
        t = time.perf_counter()
        print(f"## {title}\n\n{part()}\n\n({time.perf_counter() - t:.0f} s)\n", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
