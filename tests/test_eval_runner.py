"""The evaluation runner: shared cached node outputs, zero-call reruns, resume, and the summary."""

from __future__ import annotations

import pytest

from swarmrank.errors import ConfigError
from swarmrank.eval.cache import CacheStats, with_cache
from swarmrank.eval.runner import parse_protocols, run_eval
from swarmrank.eval.store import EvalRuns
from swarmrank.eval.summary import summarise
from swarmrank.nodes.base import Backend, Completion, Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.round import RoundOptions
from swarmrank.store import Store
from swarmrank.swarm import Swarm

from helpers import EvalTestItem

Item = EvalTestItem


class Counting(Backend):
    """Counts real calls; answers like a scripted node."""

    def __init__(self, inner: ScriptedBackend) -> None:
        self.inner, self.calls = inner, 0

    def describe(self) -> str:
        return self.inner.describe()

    async def complete(self, request):
        self.calls += 1
        return await self.inner.complete(request)


ITEMS = [Item("q1", "What is 2 + 2?", "4"), Item("q2", "What is 3 + 3?", "6"), Item("q3", "What is 4 + 4?", "8")]


def swarm_and_counters(store: Store) -> tuple[Swarm, list[Counting]]:
    right = Counting(ScriptedBackend(answers={"2 + 2": "4", "3 + 3": "6", "4 + 4": "8"}))
    wrong1 = Counting(ScriptedBackend(answers={"*": "5"}))
    wrong2 = Counting(ScriptedBackend(answers={"2 + 2": "5", "3 + 3": "6", "*": "5"}))
    judge = Counting(ScriptedBackend(judge="prefer", prefer="5"))
    truthful = Counting(ScriptedBackend(judge="truth", truth="6"))
    nodes = [Node("right", right, Persona(), frozenset({"answer"})),
             Node("wrong1", wrong1, Persona(), frozenset({"answer"})),
             Node("wrong2", wrong2, Persona(), frozenset({"answer"})),
             Node("j1", judge, Persona(), frozenset({"judge"})),
             Node("j2", truthful, Persona(), frozenset({"judge"}))]
    return Swarm(nodes, options=RoundOptions(k=2, rounds=1), store=store), [right, wrong1, wrong2, judge, truthful]


async def test_every_system_is_scored_on_every_item_with_single_nodes_from_the_same_outputs(store):
    swarm, _ = swarm_and_counters(store)
    run = await run_eval(swarm, ITEMS, ["peer-rank", "majority", "council"], store=store, suite="test")
    rows = EvalRuns(store).results(run.run_id)
    systems = {r["system"] for r in rows}
    assert systems == {"majority", "peer-rank", "council", "node:right", "node:wrong1", "node:wrong2"}
    assert len(rows) == 3 * len(systems)
    right = {r["item_id"]: r["correct"] for r in rows if r["system"] == "node:right"}
    assert right == {"q1": True, "q2": True, "q3": True}
    majority = {r["item_id"]: (r["answer"], r["correct"]) for r in rows if r["system"] == "majority"}
    assert majority == {"q1": ("5", False), "q2": ("6", True), "q3": ("5", False)}
    assert EvalRuns(store).get(run.run_id)["status"] == "done"


async def test_protocols_share_node_outputs_and_a_rerun_makes_zero_model_calls(store):
    swarm, counters = swarm_and_counters(store)
    first = await run_eval(swarm, ITEMS, ["peer-rank", "majority"], store=store, suite="test")
    answer_calls = sum(c.calls for c in counters[:3])
    assert answer_calls == 3 * len(ITEMS)  # majority and peer-rank asked each node once per item, not twice
    assert first.cache.misses > 0 and first.cache.hits >= 3 * len(ITEMS)
    before = [c.calls for c in counters]
    again = await run_eval(swarm, ITEMS, ["peer-rank", "majority"], store=store, suite="test")
    assert [c.calls for c in counters] == before
    assert again.cache.misses == 0
    same = lambda rows: sorted((r["item_id"], r["system"], r["answer"], r["correct"]) for r in rows)  # noqa: E731
    assert same(EvalRuns(store).results(again.run_id)) == same(EvalRuns(store).results(first.run_id))


async def test_an_interrupted_run_resumes_at_the_first_unfinished_item(store):
    swarm, _ = swarm_and_counters(store)
    seen: list[str] = []

    def stop_after_first(done: int, total: int, last: str) -> None:
        if last:
            seen.append(last)
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await run_eval(swarm, ITEMS, ["majority"], store=store, suite="test", on_progress=stop_after_first)
    run_id = EvalRuns(store).recent()[0]["run_id"]
    assert EvalRuns(store).get(run_id)["status"] == "running"
    assert {r["item_id"] for r in EvalRuns(store).results(run_id)} == {"q1"}
    resumed = await run_eval(swarm, ITEMS, ["majority"], store=store, suite="test", run_id=run_id[:8])
    assert resumed.skipped == 1
    assert {r["item_id"] for r in EvalRuns(store).results(run_id)} == {"q1", "q2", "q3"}
    assert EvalRuns(store).get(run_id)["status"] == "done"


async def test_summary_reports_oracle_best_node_and_the_paired_comparison(store):
    swarm, _ = swarm_and_counters(store)
    run = await run_eval(swarm, ITEMS, ["peer-rank"], store=store, suite="test")
    summary = summarise(EvalRuns(store).results(run.run_id))
    by_name = {s.system: s for s in summary.systems}
    assert summary.items == 3
    assert by_name["majority"].accuracy.mean == pytest.approx(1 / 3)
    assert summary.oracle.mean == pytest.approx(1.0)
    assert summary.best_node == ("node:right", 1.0)
    assert summary.peer_vs_majority is not None
    assert by_name["majority"].judge_calls == 0
    assert by_name["peer-rank"].judge_calls > 0
    data = summary.as_dict()
    assert data["oracle"]["mean"] == pytest.approx(1.0)
    assert [s["system"] for s in data["systems"]][:2] == ["majority", "peer-rank"]


async def test_failures_are_not_cached_so_a_rerun_tries_again(store):
    class Flaky(Backend):
        def __init__(self) -> None:
            self.calls = 0

        async def complete(self, request):
            from swarmrank.errors import NodeError

            self.calls += 1
            if self.calls == 1:
                raise NodeError("flaky")
            return Completion(text="Answer: 4")

    flaky = Flaky()
    nodes = with_cache([Node("f", flaky, Persona(), frozenset({"answer"}))], store, CacheStats())
    swarm = Swarm(nodes, store=None)
    first = await swarm.ask("What is 2 + 2?", protocol="majority")
    second = await swarm.ask("What is 2 + 2?", protocol="majority")
    third = await swarm.ask("What is 2 + 2?", protocol="majority")
    assert first.answer is None and second.answer == "4" and third.answer == "4"
    assert flaky.calls == 2


def test_protocol_lists_are_checked_before_any_work():
    assert parse_protocols("all")[0] == "peer-rank" and parse_protocols("all")[-1] == "peer-rank/fortytwo"
    assert parse_protocols("peer-rank/fortytwo,blender") == ["peer-rank/fortytwo", "blender"]
    with pytest.raises(ConfigError, match="unknown option 'nope' in 'peer-rank/nope'"):
        parse_protocols("peer-rank/nope")
    assert parse_protocols("majority, council") == ["majority", "council"]
    with pytest.raises(ConfigError, match="unknown protocol 'nope'"):
        parse_protocols("majority,nope")
    with pytest.raises(ConfigError, match="at least one protocol"):
        parse_protocols(" , ")


async def test_the_fortytwo_schedule_is_scored_beside_the_cluster_schedule_on_the_same_answers(store):
    swarm, counters = swarm_and_counters(store)
    run = await run_eval(swarm, ITEMS, ["peer-rank", "peer-rank/fortytwo"], store=store, suite="test")
    rows = EvalRuns(store).results(run.run_id)
    cluster = {r["item_id"]: r for r in rows if r["system"] == "peer-rank"}
    fortytwo = {r["item_id"]: r for r in rows if r["system"] == "peer-rank/fortytwo"}
    assert set(cluster) == set(fortytwo) == {"q1", "q2", "q3"}
    assert sum(r["judge_calls"] for r in fortytwo.values()) > sum(r["judge_calls"] for r in cluster.values())
    assert sum(c.calls for c in counters[:3]) == 3 * len(ITEMS)  # answers shared by all three systems


async def test_resuming_with_different_items_is_refused(store):
    swarm, _ = swarm_and_counters(store)

    def stop(done: int, total: int, last: str) -> None:
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await run_eval(swarm, ITEMS, ["majority"], store=store, suite="test", on_progress=stop)
    run_id = EvalRuns(store).recent()[0]["run_id"]
    other = [Item("z1", "What is 9 + 9?", "18")]
    with pytest.raises(ConfigError, match="cannot resume it"):
        await run_eval(swarm, other, ["majority"], store=store, suite="test", run_id=run_id)
    with pytest.raises(ConfigError, match="cannot resume it"):
        await run_eval(swarm, ITEMS, ["majority"], store=store, suite="small", run_id=run_id)
    assert {r["item_id"] for r in EvalRuns(store).results(run_id)} == {"q1"}


def test_the_cache_key_changes_with_anything_that_changes_a_scripted_completion():
    from swarmrank.eval.cache import cache_key
    from swarmrank.nodes.base import CompletionRequest, Message

    request = CompletionRequest(messages=(Message("user", "What is 2 + 2?"),))
    base = cache_key("n", ScriptedBackend(answers={"*": "4"}), request)
    assert cache_key("n", ScriptedBackend(answers={"*": "4"}, latency=1.0), request) == base
    for other in (ScriptedBackend(answers={"*": "5"}), ScriptedBackend(answers={"*": "4"}, seed=3),
                  ScriptedBackend(answers={"*": "4"}, accuracy=0.5, truth="4")):
        assert cache_key("n", other, request) != base
    assert cache_key("m", ScriptedBackend(answers={"*": "4"}), request) != base


async def test_items_evaluated_concurrently_give_the_same_results_as_one_at_a_time(tmp_path):
    """concurrency only changes when items finish: answers, scores and costs are the same."""
    results = {}
    for concurrency in (1, 3):
        store = Store(f"sqlite:///{tmp_path / f'c{concurrency}.db'}")
        try:
            swarm, counters = swarm_and_counters(store)
            seen: list[int] = []
            run = await run_eval(swarm, ITEMS, ["peer-rank", "majority"], store=store, suite="test",
                                 concurrency=concurrency, on_progress=lambda done, total, last, seen=seen: seen.append(done))
            assert seen == [0, 1, 2, 3]
            results[concurrency] = (
                sorted((r["item_id"], r["system"], r["answer"], r["correct"], r["calls"], r["prompt_tokens"])
                       for r in EvalRuns(store).results(run.run_id)),
                [c.calls for c in counters])
        finally:
            store.close()
    assert results[1] == results[3]
    with pytest.raises(ConfigError, match="at least 1"):
        await run_eval(swarm, ITEMS, ["majority"], store=store, suite="test", concurrency=0)


# -- judge reliability learnt within a run ----------------------------------------------------------

LEARN_ITEMS = [Item(f"l{i}", f"What is {i} + {i + 9}?", str(2 * i + 9)) for i in range(20)]
GOLD = {item.prompt: item.gold for item in LEARN_ITEMS}


def _learning_swarm(store: Store) -> Swarm:
    """One right answerer against a wrong bloc; two reliable judges (they know the answers, and are
    right in 95% of verdicts) among three coins: what a run learns about them changes later rounds."""
    def knows(**kw: object) -> ScriptedBackend:
        return ScriptedBackend(answers=GOLD, judge="own", **kw)  # type: ignore[arg-type]

    nodes = [Node("right", knows(), Persona(seed=1), frozenset({"answer"})),
             *[Node(f"wrong{i}", ScriptedBackend(answers={"*": "7"}), Persona(seed=2 + i), frozenset({"answer"}))
               for i in range(3)],
             *[Node(f"sure{i}", knows(judge_accuracy=0.95, seed=10 + i), Persona(), frozenset({"judge"}))
               for i in range(2)],
             *[Node(f"coin{i}", ScriptedBackend(judge="random", seed=20 + i), Persona(), frozenset({"judge"}))
               for i in range(3)]]
    return Swarm(nodes, options=RoundOptions(judges_per_pair=5), store=store)


async def test_each_system_learns_its_judges_from_the_run_alone_whatever_the_concurrency(tmp_path):
    results = []
    for concurrency in (1, 3):
        with Store(f"sqlite:///{tmp_path / f'c{concurrency}.db'}") as store:
            swarm = _learning_swarm(store)
            run = await run_eval(swarm, LEARN_ITEMS, ["peer-rank", "peer-rank/legacy"], store=store, suite="learn",
                                 concurrency=concurrency)
            rows = EvalRuns(store).results(run.run_id)
            results.append({(r["item_id"], r["system"]): r["correct"] for r in rows})
    assert results[0] == results[1]
    late = [results[0][(f"l{i}", "peer-rank")] for i in range(10, 20)]
    assert all(late)  # by then the run has learnt which judges to trust: the lone right answer wins
    assert not any(results[0][(f"l{i}", "majority")] for i in range(20))


async def test_a_resumed_run_relearns_its_judges_and_ends_as_an_uninterrupted_one(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'whole.db'}") as store:
        whole = await run_eval(_learning_swarm(store), LEARN_ITEMS, ["peer-rank"], store=store, suite="learn")
        expected = {(r["item_id"], r["system"]): r["correct"] for r in EvalRuns(store).results(whole.run_id)}

    def stop_mid_batch(done: int, total: int, last: str) -> None:
        if done == 11:
            raise KeyboardInterrupt

    with Store(f"sqlite:///{tmp_path / 'resumed.db'}") as store:
        with pytest.raises(KeyboardInterrupt):
            await run_eval(_learning_swarm(store), LEARN_ITEMS, ["peer-rank"], store=store, suite="learn",
                           on_progress=stop_mid_batch)
        runs = EvalRuns(store)
        run_id = runs.recent()[0]["run_id"]
        assert len({r["item_id"] for r in runs.results(run_id)}) == 11
        await run_eval(_learning_swarm(store), LEARN_ITEMS, ["peer-rank"], store=store, suite="learn", run_id=run_id)
        got = {(r["item_id"], r["system"]): r["correct"] for r in runs.results(run_id)}
    assert got == expected
