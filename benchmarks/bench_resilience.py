"""Resilience to colluding and Sybil nodes: accuracy against the colluder fraction, and admission.

Part 1 (:mod:`swarmrank.eval.resilience`): ``--questions`` simulated questions in order through real
rounds; answerers right with probability ``--accuracy`` ± 0.1, 3 judges with discrimination 0.8,
30% correlated errors; the last ``fraction`` of answerers and judges collude (the same wrong
answer; colluding judges favour it). Majority, peer-rank without reputation and peer-rank with
reputation/stake/spot checks (10% of questions) are scored after a ``--warmup``.

Part 2: a Sybil flood — ``--sybils`` identities of one weak model (right 30% of the time, a coin as
a judge) and of a position-biased model take the admission exam (20 answers + 20 A/B challenges in
both orders, threshold 0.6); the admission rate and what each identity spent.

    .venv/bin/python benchmarks/bench_resilience.py
    .venv/bin/python benchmarks/bench_resilience.py --questions 300 --fractions 0 0.33
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path

try:
    from swarmrank.admission import ExamParams, run_exam
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from swarmrank.admission import ExamParams, run_exam

from swarmrank.eval.resilience import ResilienceParams, resilience
from swarmrank.eval.simulate import SimParams
from swarmrank.nodes.base import Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend

from _machine import cpu_model  # noqa: E402 - benchmarks run as scripts


def colluders(args: argparse.Namespace) -> None:
    print(f"## Accuracy (%) against the colluding fraction ({args.answerers} answerers, 3 judges, "
          f"{args.questions} questions, warm-up {args.warmup}, 10% spot checks)\n")
    print("| colluders | answerers / judges colluding | majority | peer-rank | peer-rank + reputation | "
          "honest nodes only | rep − honest only | colluders out after | honest nodes suspended | s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for fraction in args.fractions:
        sim = SimParams(questions=args.questions, n_answerers=args.answerers, n_judges=3,
                        accuracy_mean=args.accuracy, accuracy_spread=0.2, correlated_errors=0.3,
                        adversary_fraction=fraction, seed=args.seed)
        r = resilience(ResilienceParams(sim=sim, warmup=args.warmup))
        acc = {k: v.mean for k, v in r.accuracy.items()}
        rep = r.accuracy["peer-rank+rep"]
        diff = r.difference("peer-rank+rep", "honest-only")
        out = "—" if not r.adversaries else ("never" if r.suspended_at is None else f"{r.suspended_at} q")
        print(f"| {fraction:.2f} | {sim.n_adversaries} / {sim.n_adversary_judges} | "
              f"{100 * acc['majority']:.1f} | {100 * acc['peer-rank']:.1f} | "
              f"{100 * rep.mean:.1f} [{100 * rep.low:.1f}, {100 * rep.high:.1f}] | {100 * acc['honest-only']:.1f} | "
              f"{100 * diff.diff:+.1f} [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}] | {out} | "
              f"{r.honest_suspended} | {r.seconds:.1f} |")


async def sybils(args: argparse.Namespace) -> None:
    print(f"\n## Sybil flood: {args.sybils} identities per weak model take the admission exam\n")
    print("| model | admitted | rate | calls / identity | tokens / identity |")
    print("|---|---:|---:|---:|---:|")
    kinds = {
        "right 30%, coin-flip judge": lambda i: ScriptedBackend(accuracy=0.3, judge="random", seed=i),
        "right 50%, position-biased judge": lambda i: ScriptedBackend(accuracy=0.5, judge="first", seed=i),
        "constant answer, coin-flip judge": lambda i: ScriptedBackend(answers={"*": "10"}, judge="random", seed=i),
        "capable (right 90%, a truthful judge)": None,
    }
    for label, make in kinds.items():
        admitted = calls = tokens = 0
        for i in range(args.sybils):
            if make is None:  # a capable node: a truth judge that errs by answering wrong 10% of the time
                backend = ScriptedBackend(accuracy=0.9, judge="truth", seed=i)
            else:
                backend = make(i)
            node = Node(f"id{i}", backend, Persona(seed=i))
            result = await run_exam(node, ExamParams(seed=10_000 + i))
            admitted += result.passed
            calls += result.calls
            tokens += result.prompt_tokens + result.completion_tokens
        print(f"| {label} | {admitted}/{args.sybils} | {100 * admitted / args.sybils:.1f}% | "
              f"{calls / args.sybils:.0f} | {tokens / args.sybils:.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--answerers", type=int, default=9)
    parser.add_argument("--accuracy", type=float, default=0.6)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.1, 0.2, 1 / 3, 0.4, 0.5])
    parser.add_argument("--sybils", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; Python {platform.python_version()}\n")
    start = time.perf_counter()
    colluders(args)
    asyncio.run(sybils(args))
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
