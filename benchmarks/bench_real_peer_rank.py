"""Peer-rank against majority, the best single node and the oracle on real packaged models (issue 9).

Runs an evaluation (swarmrank.eval.runner: every node call through the completion cache, so a rerun
or a second set of systems on the same items reuses every answer) and prints, as Markdown, each
system's accuracy with a 95% bootstrap CI, the oracle, the best single node, paired differences
(bootstrap CI and exact McNemar p) of every peer-rank system against majority and against the best
node, and calls and tokens per question with the token ratio to majority.

    SWARMRANK_HOME=/work/bench-home .venv/bin/python benchmarks/bench_real_peer_rank.py \\
        --config benchmarks/swarms/qwen.toml --suite small --systems peer-rank/adaptive
    ... --items 24 --systems peer-rank,peer-rank/legacy      # the dearer schedules on the first 24

Needs the opt-in Qwen model for the default config: pip install -e '.[qwen]'.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from swarmrank.config import load_config
from swarmrank.eval.datasets import suite
from swarmrank.eval.metrics import accuracy, paired_difference
from swarmrank.eval.runner import parse_protocols, run_eval
from swarmrank.eval.store import EvalRuns
from swarmrank.swarm import Swarm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("benchmarks/swarms/qwen.toml"))
    parser.add_argument("--suite", default="small")
    parser.add_argument("--items", type=int, default=0, help="the first N items (0: all)")
    parser.add_argument("--systems", default="peer-rank/adaptive")
    args = parser.parse_args()
    items = suite(args.suite)
    if args.items:
        items = items[:args.items]
    systems = parse_protocols(args.systems)
    swarm = Swarm.from_config(load_config(args.config))
    start = time.perf_counter()

    def progress(done: int, total: int, last: str) -> None:
        print(f"\r{done}/{total} {last:<30} {time.perf_counter() - start:7.0f}s", end="", file=sys.stderr, flush=True)

    async def go():  # noqa: ANN202
        try:
            return await run_eval(swarm, items, systems, store=swarm.store, suite=args.suite, on_progress=progress)
        finally:
            await swarm.aclose_backends()

    run = asyncio.run(go())
    print(file=sys.stderr)
    rows = EvalRuns(swarm.store).results(run.run_id)
    swarm.close()
    by_system: dict[str, dict[str, dict]] = defaultdict(dict)
    for row in rows:
        by_system[row["system"]][row["item_id"]] = row
    ids = [item.id for item in items]
    correct = {s: [bool(by_system[s][i]["correct"]) for i in ids] for s in by_system}
    nodes = [s for s in by_system if s.startswith("node:")]
    oracle = [any(correct[n][k] for n in nodes) for k in range(len(ids))]
    best = max(nodes, key=lambda n: sum(correct[n]))

    def cost(system: str, key: str) -> float:
        return statistics.mean(float(by_system[system][i][key] or 0) for i in ids)

    tokens = {s: cost(s, "prompt_tokens") + cost(s, "completion_tokens") for s in by_system}
    print(f"{len(ids)} items of {args.suite!r}, swarm {swarm.name!r} ({args.config}); eval run {run.run_id[:12]}; "
          f"{run.cache.misses} model calls, {run.cache.hits} from the cache; {time.perf_counter() - start:.0f} s\n")
    print("| system | accuracy % (95% CI) | calls/q | judge calls/q | tokens/q | tokens vs majority |")
    print("|---|---|---:|---:|---:|---:|")
    for s in ["majority", *systems, *sorted(nodes)]:
        if s not in by_system:
            continue
        a = accuracy(correct[s], seed=0)
        print(f"| {s}{' (best node)' if s == best else ''} | {100 * a.mean:.1f} ({100 * a.low:.1f}–{100 * a.high:.1f}) | "
              f"{cost(s, 'calls'):.1f} | {cost(s, 'judge_calls'):.1f} | {tokens[s]:.0f} | "
              f"{tokens[s] / tokens['majority']:.2f}× |")
    o = accuracy(oracle, seed=0)
    print(f"| oracle (any node right) | {100 * o.mean:.1f} ({100 * o.low:.1f}–{100 * o.high:.1f}) | | | | |\n")
    print("| comparison | difference, points (95% CI) | McNemar p |")
    print("|---|---|---:|")
    for s in systems:
        for other in ("majority", best):
            t = paired_difference(correct[s], correct[other], seed=0)
            print(f"| {s} − {other} | {100 * t.diff:+.1f} ({100 * t.low:+.1f}…{100 * t.high:+.1f}) | {t.p_value:.3g} |")


if __name__ == "__main__":
    main()
