"""Measured resilience: accuracy under colluding nodes with and without reputation, in simulation.

One run (:func:`resilience`) plays ``questions`` simulated questions *in order* through real
rounds over the scripted statistical nodes of :mod:`swarmrank.eval.simulate` (colluders answer the
shared popular wrong answer and, as judges, favour it). Three systems see the same questions:

* ``majority`` — plain vote over every node;
* ``peer-rank`` — peer-rank with every node at influence 1 (no reputation);
* ``peer-rank+rep`` — peer-rank through a :class:`~swarmrank.registry.Registry`: every node passed
  admission (the worst case: colluders are capable, only malicious), reputation and stake follow
  each round, a share ``spot_check_rate`` of the questions are hidden spot checks scored against
  the truth, and nodes whose stake falls below the minimum stop counting;
* ``honest-only`` — peer-rank over the honest nodes alone (the colluders removed by an oracle):
  what the swarm could do without them, the baseline for the loss the colluders cause.

Accuracy is measured after ``warmup`` questions, on the questions that are not spot checks. The
run also reports when every colluder had stopped counting (stake below the minimum), if it did.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from swarmrank.eval.metrics import Accuracy, PairedTest, accuracy, paired_difference
from swarmrank.eval.simulate import TASK_TYPE, SimParams, World, _unit, build_nodes
from swarmrank.registry import MemoryLedger, Registry
from swarmrank.reliability import JudgeBook
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm
from swarmrank.trust import TrustParams

__all__ = ["ResilienceParams", "ResilienceResult", "resilience"]

SYSTEMS = ("majority", "peer-rank", "peer-rank+rep", "honest-only")


@dataclass(frozen=True)
class ResilienceParams:
    sim: SimParams = field(default_factory=lambda: SimParams(questions=400))
    warmup: int = 100
    spot_check_rate: float = 0.1
    trust: TrustParams = field(default_factory=TrustParams)


@dataclass(frozen=True)
class _Coordinator:
    node_id: str = "coordinator"
    public_hex: str = ""

    def sign(self, payload: bytes) -> bytes:
        return b""


@dataclass(frozen=True)
class ResilienceResult:
    params: ResilienceParams
    accuracy: dict[str, Accuracy]
    correct: dict[str, tuple[bool, ...]]
    adversaries: tuple[str, ...]
    suspended_at: int | None         # question index after which no colluder counted any more
    adversary_influence: float       # mean influence of colluders at the end (0 when suspended)
    honest_influence: float
    honest_suspended: int            # honest nodes that lost their stake (false positives)
    seconds: float

    def difference(self, a: str, b: str) -> PairedTest:
        return paired_difference(self.correct[a], self.correct[b], seed=self.params.sim.seed)


async def resilience_async(params: ResilienceParams) -> ResilienceResult:
    start = time.perf_counter()
    sim = params.sim
    world = World(sim)
    nodes = build_nodes(world)
    first_bad_answerer = sim.n_answerers - sim.n_adversaries
    first_bad_judge = sim.n_judges - sim.n_adversary_judges
    adversaries = tuple([f"a{i}" for i in range(first_bad_answerer, sim.n_answerers)]
                        + [f"j{k}" for k in range(first_bad_judge, sim.n_judges)])
    options = RoundOptions(schedule=sim.schedule, judges_per_pair=sim.judges_per_pair, **dict(sim.round_options))
    everyone = Swarm(nodes, options=options, name="simulation", store=None)
    honest_nodes = [n for n in nodes if n.id not in adversaries]
    honest = Swarm(honest_nodes, options=options, name="simulation", store=None)
    registry = Registry(MemoryLedger(), _Coordinator(), params.trust)
    rep_book = JudgeBook(options.reliability_params())  # the reputation swarm's judge book, across questions
    for node in nodes:
        registry.admit(node.id, passed=True, report={"simulated": True})

    measured: dict[str, list[bool]] = {s: [] for s in SYSTEMS}
    suspended_at: int | None = None
    for q in range(sim.questions):
        question, truth = world.questions[q], world.truths[q]
        spot = _unit("spot", sim.seed, q) < params.spot_check_rate
        counted, opts, _ = registry.weigh(nodes, options)
        rep_swarm = Swarm(counted, options=opts, name="simulation", store=None)
        rounds = await asyncio.gather(
            everyone.ask(question, protocol="majority", truth=truth, task_type=TASK_TYPE, save=False),
            everyone.ask(question, protocol="peer-rank", truth=truth, task_type=TASK_TYPE, save=False),
            rep_swarm.ask(question, protocol="peer-rank", truth=truth, task_type=TASK_TYPE, save=False, book=rep_book)
            if any(n.answers for n in counted) else _none(),
            honest.ask(question, protocol="peer-rank", truth=truth, task_type=TASK_TYPE, save=False))
        rep_result = rounds[2]
        if rep_result is not None:
            rep_book.learn(rep_result)
            correct = {c.answer: c.answer == truth for c in rep_result.candidates} if spot else None
            registry.record(rep_result, counted, correct=correct, spot_check=spot)
        if q >= params.warmup and not spot:
            for system, result in zip(SYSTEMS, rounds):
                measured[system].append(result is not None and result.answer == truth)
        if suspended_at is None and adversaries and not any(registry.state().eligible(a) for a in adversaries):
            suspended_at = q
    state = registry.state()
    honest_ids = [n.id for n in honest_nodes]
    return ResilienceResult(
        params=params, accuracy={s: accuracy(v, seed=sim.seed) for s, v in measured.items()},
        correct={s: tuple(v) for s, v in measured.items()}, adversaries=adversaries, suspended_at=suspended_at,
        adversary_influence=float(np.mean([state.influence(a) for a in adversaries])) if adversaries else 0.0,
        honest_influence=float(np.mean([state.influence(h) for h in honest_ids])),
        honest_suspended=sum(1 for h in honest_ids if not state.eligible(h)),
        seconds=time.perf_counter() - start)


async def _none() -> None:
    return None


def resilience(params: ResilienceParams | None = None) -> ResilienceResult:
    return asyncio.run(resilience_async(params or ResilienceParams()))


def with_fraction(params: ResilienceParams, fraction: float, **sim: Any) -> ResilienceParams:
    return replace(params, sim=replace(params.sim, adversary_fraction=fraction, **sim))
