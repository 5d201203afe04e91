"""Run an evaluation suite through a swarm under several protocols, on shared cached node outputs.

For every item the runner first runs ``majority`` (it fans out to every answerer once, so it
also gives each single node's answer), then each requested protocol. Every node call goes
through the completion cache (:mod:`swarmrank.eval.cache`), so protocols are compared on the
same node outputs and a rerun makes no model calls. One item's results for every system are
saved in one transaction, so an interrupted run resumes at the first unfinished item.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from swarmrank.errors import ConfigError, StorageError
from swarmrank.eval.cache import CacheStats, with_cache
from swarmrank.eval.injection import InjectingBackend, split_id
from swarmrank.eval.store import EvalRuns
from swarmrank.eval.systems import parse_system
from swarmrank.nodes.base import Node
from swarmrank.pricing import Price
from swarmrank.protocols import protocol_names
from swarmrank.reliability import BOOK_BATCH, JudgeBook
from swarmrank.result import RoundResult
from swarmrank.store import Store
from swarmrank.swarm import Swarm

BASELINE = "majority"
JUDGING_PHASES = ("grade", "judge", "rank")

Progress = Callable[[int, int, str], None]  # (items done, items total, last item id)


@dataclass(frozen=True)
class EvalRun:
    run_id: str
    items: int
    skipped: int  # already done in an earlier, interrupted run
    cache: CacheStats


def parse_protocols(spec: str) -> list[str]:
    """``"all"`` (every protocol, plus peer-rank under the fortytwo schedule) or a comma-separated
    list of protocol names, each optionally with options (``peer-rank/fortytwo``, ``peer-rank/legacy``:
    :func:`swarmrank.eval.systems.parse_system`)."""
    if spec.strip() == "all":
        names = [*protocol_names(), "peer-rank/fortytwo"]
    else:
        names = [p.strip() for p in spec.split(",") if p.strip()]
    if not names:
        raise ConfigError("give at least one protocol, or 'all'")
    for name in names:
        parse_system(name)
    return names


def _with_injector(nodes: Sequence[Node]) -> list[Node]:
    """The nodes, with the first answerer appending an instruction aimed at the judges."""
    out: list[Node] = []
    done = False
    for node in nodes:
        if node.answers and not done:
            node = Node(id=node.id, backend=InjectingBackend(node.backend), persona=node.persona, roles=node.roles,
                        public_key=node.public_key, signer=node.signer)
            done = True
        out.append(node)
    return out


def _stored_rounds(store: Store, runs: EvalRuns, run_id: str, item_ids: Sequence[str],
                   names: Sequence[str]) -> dict[str, dict[str, RoundResult]]:
    """The stored rounds of items an interrupted run already evaluated, per item and system."""
    wanted = set(item_ids)
    by_key = {(row["item_id"], row["system"]): row.get("round_id") for row in runs.results(run_id)
              if row["item_id"] in wanted}
    out: dict[str, dict[str, RoundResult]] = {}
    for item_id in item_ids:
        for name in names:
            round_id = by_key.get((item_id, name))
            if round_id:
                try:
                    out.setdefault(item_id, {})[name] = store.get_round(round_id)
                except StorageError:
                    continue  # a round that cannot be read back teaches nothing; its row still counts
    return out


def _row(system: str, item: Any, result: RoundResult, answer: str | None) -> dict[str, Any]:
    phases = result.cost.phases
    return {
        "item_id": item.id, "system": system, "gold": item.gold, "answer": answer,
        "correct": bool(item.score(answer)), "calls": result.cost.calls,
        "judge_calls": sum(phases[p].calls for p in JUDGING_PHASES if p in phases),
        "prompt_tokens": result.cost.prompt_tokens, "completion_tokens": result.cost.completion_tokens,
        "seconds": result.cost.wall_seconds, "round_id": result.round_id, "dollars": result.cost.dollars,
    }


def _node_rows(item: Any, result: RoundResult, prices: Mapping[str, Price]) -> list[dict[str, Any]]:
    rows = []
    for answer in result.answers:
        if answer.step == 0 and answer.sample == 0:
            price = prices.get(answer.node)
            # the node's own answer: its value may be its cluster's representative (same meaning or behaviour)
            own = None if answer.value is None else item.normalise(answer.text) if hasattr(item, "normalise") \
                else answer.value
            rows.append({
                "item_id": item.id, "system": f"node:{answer.node}", "gold": item.gold, "answer": own,
                "correct": bool(item.score(own)), "calls": 1, "judge_calls": 0,
                "prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                "seconds": answer.seconds, "round_id": result.round_id,
                "dollars": None if price is None else price.dollars(answer.prompt_tokens, answer.completion_tokens),
            })
    return rows


async def run_eval(swarm: Swarm, items: Sequence[Any], protocols: Sequence[str], *, store: Store | None, suite: str,
                   run_id: str | None = None, on_progress: Progress | None = None,
                   concurrency: int = 1, on_start: Callable[[str], None] | None = None) -> EvalRun:
    """Evaluate ``items`` (``EvalItem``-like: id, prompt, task_type, gold, score) and store the results.

    ``concurrency`` items are evaluated at once (each item's protocols still run in turn, so they
    share its cached answers); more than 1 pays off when nodes run elsewhere — Ray actors, remote
    endpoints — and changes nothing in the results, only their order of completion.
    ``on_start(run_id)`` is called once the run is recorded (before any item), so a caller that is
    interrupted can still say which run to resume.
    """
    if store is None:
        raise ConfigError("an evaluation needs a store (its cache and results live there)")
    runs = EvalRuns(store)
    if concurrency < 1:
        raise ConfigError("eval concurrency must be at least 1")
    names = list(dict.fromkeys([BASELINE, *protocols]))
    if run_id is None:
        run_id = uuid.uuid4().hex
        runs.create(run_id, suite=suite, swarm=swarm.name, protocols=names, items=len(items))
        done: set[str] = set()
    else:
        run = runs.get(run_id)
        run_id = run["run_id"]
        names = run["protocols"]
        done = {row["item_id"] for row in runs.results(run_id)}
        ids = {item.id for item in items}
        if run["suite"] != suite or run["items"] != len(items) or not done <= ids:
            raise ConfigError(f"eval run {run_id[:12]} was suite {run['suite']!r} with {run['items']} item(s); "
                              f"cannot resume it with {suite!r} ({len(items)} item(s))")
        if run["status"] != "running":
            runs.finish(run_id, "running")
    if on_start is not None:
        on_start(run_id)
    stats = CacheStats()
    cached = Swarm(with_cache(swarm.nodes, store, stats), options=swarm.options, protocol=swarm.protocol,
                   name=swarm.name, store=store, prices=swarm.prices)
    injected = Swarm(with_cache(_with_injector(swarm.nodes), store, stats), options=swarm.options,
                     protocol=swarm.protocol, name=swarm.name, store=store, prices=swarm.prices)
    total = len(items)
    finished = len(done & {item.id for item in items})
    if on_progress:
        on_progress(finished, total, "")
    gate = asyncio.Semaphore(concurrency)
    systems = {name: parse_system(name) for name in names}
    # Each system learns its judges' reliability from this run's earlier items only (never from live
    # rounds or other runs), in item order, one learning batch at a time — so results are the same
    # whatever the concurrency, and a resumed run first relearns from the items it already has.
    books = {name: JudgeBook(replace(cached.options, **systems[name][1]).reliability_params()) for name in names}
    stored = await asyncio.to_thread(_stored_rounds, store, runs, run_id, [i.id for i in items if i.id in done],
                                     names) if done else {}

    async def evaluate(item: Any, snapshot: dict[str, JudgeBook]) -> dict[str, RoundResult]:
        nonlocal finished
        async with gate:
            rows: list[dict[str, Any]] = []
            results: dict[str, RoundResult] = {}
            runner = injected if split_id(item.id)[1] == "inject-answer" else cached
            for name in names:
                protocol, overrides = systems[name]
                options = replace(cached.options, **overrides) if overrides else None
                result = await runner.ask(item.prompt, protocol=protocol, task_type=item.task_type, options=options,
                                          book=snapshot[name])
                results[name] = result
                rows.append(_row(name, item, result, result.final_answer))
                if name == BASELINE:
                    rows.extend(_node_rows(item, result, swarm.prices))
            await asyncio.to_thread(runs.save_results, run_id, rows)  # one item, one transaction
            finished += 1
            if on_progress:
                on_progress(finished, total, item.id)
            return results

    # learning batches are fixed by position in the suite, so a resumed run reads the same books
    for start in range(0, len(items), BOOK_BATCH):
        batch = list(items[start:start + BOOK_BATCH])
        todo = [item for item in batch if item.id not in done]
        snapshot = {name: book.copy() for name, book in books.items()}
        if concurrency == 1:  # in the caller's task: an interrupt (Ctrl-C) stops the run between items
            outcomes = [await evaluate(item, snapshot) for item in todo]
        else:
            outcomes = list(await asyncio.gather(*(evaluate(item, snapshot) for item in todo)))
        fresh = {item.id: results for item, results in zip(todo, outcomes)}
        for item in batch:  # item order
            for name, result in (fresh.get(item.id) or stored.get(item.id, {})).items():
                books[name].learn(result)
    runs.finish(run_id)
    return EvalRun(run_id=run_id, items=total, skipped=len(done & {item.id for item in items}), cache=stats)
