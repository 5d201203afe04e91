"""Coordinator overhead per round, measured with instant scripted nodes.

Scripted nodes answer and judge by table lookup (no sleep, no model), so the wall time of a round
is what the coordinator itself costs: building requests, ``asyncio.wait_for`` per call, gathering,
red-flag checks, answer extraction and clustering, the pair schedule, verdict parsing and the
aggregation (the evidence posterior, or Bradley–Terry). The figure reported is wall time per round divided by the number of nodes
(µs per node per round); the target is under 1 ms per node per round.

Swarm of ``n`` nodes: ``min(4, n // 2)`` judge-only nodes (judge rule ``truth``) and the rest
answer-only nodes. Half of the answerers give the correct answer (42), the others are spread over
three wrong answers (41, 24, 40), so a round has 2–4 candidates and real judging to do.

Everything runs in one asyncio event loop; each configuration is warmed up, then timed ``--repeat``
times, and the median is reported (other processes may share the CPU, so medians, not means).

    .venv/bin/python benchmarks/bench_overhead.py                       # n = 4 8 16 32 64
    .venv/bin/python benchmarks/bench_overhead.py --repeat 50 --sizes 8 64
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import time
from dataclasses import dataclass

from swarmrank import aggregate, reliability
from swarmrank.nodes.base import CompletionRequest, Message, Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm

from _machine import cpu_model  # noqa: E402 - benchmarks run as scripts

QUESTION = "What is 17 + 25?"
TRUTH = "42"
WRONG = ("41", "24", "40")
TARGET_US_PER_NODE = 1000.0

# (label, protocol, schedule)
VARIANTS = (
    ("peer-rank/cluster", "peer-rank", "cluster"),
    ("peer-rank/fortytwo", "peer-rank", "fortytwo"),
    ("majority", "majority", "cluster"),
)


@dataclass
class Row:
    n: int
    label: str
    answerers: int
    judges: int
    candidates: int
    calls: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    answer: str | None
    bt_ms: float  # median time per round in the aggregation: Bradley–Terry or reliability.decide

    @property
    def us_per_node(self) -> float:
        return self.median_ms * 1000.0 / self.n

    @property
    def us_per_call(self) -> float:
        return self.median_ms * 1000.0 / self.calls if self.calls else float("nan")


def build_nodes(n: int) -> tuple[list[Node], int, int]:
    n_judges = min(4, n // 2)
    n_answer = n - n_judges
    nodes: list[Node] = []
    for i in range(n_answer):
        answer = TRUTH if i % 2 == 0 else WRONG[(i // 2) % len(WRONG)]
        nodes.append(Node(f"a{i:03d}", ScriptedBackend(answers={"*": answer}), Persona(seed=i),
                          roles=frozenset({"answer"})))
    for j in range(n_judges):
        nodes.append(Node(f"j{j}", ScriptedBackend(judge="truth"), Persona(seed=100 + j),
                          roles=frozenset({"judge"})))
    return nodes, n_answer, n_judges


BT_SECONDS: list[float] = []  # time spent in aggregate.bradley_terry during the current round


def _instrument_bradley_terry() -> None:
    """Time the aggregation inside rounds: the Bradley–Terry fit (``aggregate.bradley_terry``, the
    legacy aggregation) and the evidence posterior with its judge-reliability fixed point
    (``reliability.decide``, the default), as protocols call them."""
    for module, name in ((aggregate, "bradley_terry"), (reliability, "decide")):
        original = getattr(module, name)

        def timed(*args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                BT_SECONDS.append(time.perf_counter() - start)

        setattr(module, name, timed)


async def time_rounds(swarm: Swarm, protocol: str, options: RoundOptions, warmup: int,
                      repeat: int) -> tuple[list[float], list[float], int, int, str | None]:
    calls = candidates = 0
    answer = None
    for _ in range(warmup):
        result = await swarm.ask(QUESTION, protocol=protocol, truth=TRUTH, options=options, save=False)
        calls = sum(p.calls for p in result.cost.phases.values())
        candidates, answer = len(result.candidates), result.answer
    samples: list[float] = []
    bt: list[float] = []
    for _ in range(repeat):
        BT_SECONDS.clear()
        start = time.perf_counter()
        await swarm.ask(QUESTION, protocol=protocol, truth=TRUTH, options=options, save=False)
        samples.append(time.perf_counter() - start)
        bt.append(sum(BT_SECONDS))
    return samples, bt, calls, candidates, answer


async def scripted_call_cost(repeat: int = 2000) -> tuple[float, float]:
    """µs per direct ScriptedBackend.complete call (answer, judge): the nodes' own share of a call."""
    backend = ScriptedBackend(judge="truth")
    answer_req = CompletionRequest(messages=(Message("system", "s"), Message("user", QUESTION)), purpose="answer",
                                   context={"question": QUESTION, "truth": TRUTH})
    judge_req = CompletionRequest(messages=(Message("system", "s"), Message("user", QUESTION)), purpose="judge",
                                  context={"question": QUESTION, "truth": TRUTH, "first_value": "42",
                                           "second_value": "41"})
    out = []
    for req in (answer_req, judge_req):
        for _ in range(200):
            await backend.complete(req)
        start = time.perf_counter()
        for _ in range(repeat):
            await backend.complete(req)
        out.append((time.perf_counter() - start) / repeat * 1e6)
    return out[0], out[1]


async def main_async(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    for n in args.sizes:
        nodes, n_answer, n_judges = build_nodes(n)
        swarm = Swarm(nodes, store=None)
        # Interleave the protocols across repeats (chunks) so background load hits all alike.
        per_variant: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
        bt_variant: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
        meta: dict[str, tuple[int, int, str | None]] = {}
        chunk = max(1, args.repeat // 5)
        done = 0
        first = True
        while done < args.repeat:
            step = min(chunk, args.repeat - done)
            for label, protocol, schedule in VARIANTS:
                options = RoundOptions(schedule=schedule)
                samples, bt, calls, cands, answer = await time_rounds(
                    swarm, protocol, options, warmup=args.warmup if first else 1, repeat=step)
                per_variant[label].extend(samples)
                bt_variant[label].extend(bt)
                meta[label] = (calls, cands, answer)
            first = False
            done += step
        for label, _, _ in VARIANTS:
            samples = sorted(per_variant[label])
            q = statistics.quantiles(samples, n=10) if len(samples) >= 2 else [samples[0]] * 9
            calls, cands, answer = meta[label]
            rows.append(Row(n, label, n_answer, n_judges, cands, calls, statistics.median(samples) * 1e3,
                            q[0] * 1e3, q[-1] * 1e3, answer, statistics.median(bt_variant[label]) * 1e3))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed rounds per (n, protocol) (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16, 32, 64], help="swarm sizes n")
    args = parser.parse_args()
    if any(n < 4 for n in args.sizes):
        parser.error("sizes must be at least 4 (two answerers and two judges)")

    _instrument_bradley_terry()
    load_before = os.getloadavg()[0]
    gc.collect()
    started = time.perf_counter()
    loop_rows = asyncio.run(_run_all(args))
    rows, (answer_us, judge_us) = loop_rows
    total = time.perf_counter() - started

    print("# Coordinator overhead per round (scripted nodes, no model)\n")
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; Python {platform.python_version()}; "
          f"{args.repeat} timed rounds per row after {args.warmup} warm-up rounds; one asyncio loop")
    threads = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ)
    print(f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
          f"BLAS threads: {threads or 'library default'}\n")
    print("| n | protocol | answerers/judges | candidates | calls per round | median ms per round "
          "| p10–p90 ms | of which aggregation ms | µs per call | µs per node | < 1 ms/node |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for r in rows:
        ok = "yes" if r.us_per_node < TARGET_US_PER_NODE else "NO"
        print(f"| {r.n} | {r.label} | {r.answerers}/{r.judges} | {r.candidates} | {r.calls} | {r.median_ms:.2f} "
              f"| {r.p10_ms:.2f}–{r.p90_ms:.2f} | {r.bt_ms:.2f} | {r.us_per_call:.0f} | {r.us_per_node:.0f} | {ok} |")
    wrong = [r for r in rows if r.answer != TRUTH]
    print()
    print(f"Scripted node's own cost (direct await, no coordinator): answer call {answer_us:.1f} µs, "
          f"judge call {judge_us:.1f} µs.")
    if wrong:
        print("WARNING: some rounds did not pick the true answer: "
              + ", ".join(f"n={r.n} {r.label} -> {r.answer}" for r in wrong))
    print(f"Total benchmark time {total:.1f} s.")


async def _run_all(args: argparse.Namespace) -> tuple[list[Row], tuple[float, float]]:
    rows = await main_async(args)
    costs = await scripted_call_cost()
    return rows, costs


if __name__ == "__main__":
    main()
