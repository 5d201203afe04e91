"""The swarm: nodes built from a config, and ``ask`` — one round of a protocol over them.

    swarm = Swarm.from_config(load_config())          # the embedded default swarm
    result = swarm.ask_sync("What is 17 + 25?")       # or: await swarm.ask(...)
    print(result.answer, result.confidence)

Every round is saved through the store (unless ``store=None``), the same way for the CLI, the
server and library callers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from swarmrank.config import SwarmConfig, load_config
from swarmrank.errors import (
    ConfigError,
    LedgerError,
    ReplayError,
    RoundError,
    RoundNotSavedError,
    StorageError,
    SwarmError,
    TrustError,
)
from swarmrank.identity import load_or_create
from swarmrank.nodes.base import BuildContext, Completion, CompletionRequest, Message, Node
from swarmrank.nodes.factory import build_node
from swarmrank.pricing import Price
from swarmrank.protocols import get_protocol
from swarmrank.reliability import JudgeBook
from swarmrank.result import JudgeReport, RoundResult
from swarmrank.round import RoundContext, RoundOptions
from swarmrank.settings import Settings
from swarmrank.synthesis import synthesize, synthesizer
from swarmrank.tasks import Task, TaskType

#: the key the coordinator signs round outcomes, reputation and stake entries with
COORDINATOR_ID = "swarmrank-coordinator"
#: stored rounds read at most to rebuild the judge book
BOOK_MAX_ROUNDS = 1000

EventHandler = Callable[[str, dict[str, object]], None]


@dataclass(frozen=True)
class NodeCheck:
    node: str
    backend: str
    ok: bool
    detail: str
    seconds: float


class Swarm:
    """A set of nodes plus the round options and the store rounds are saved to."""

    def __init__(self, nodes: Sequence[Node], *, options: RoundOptions | None = None, protocol: str = "peer-rank",
                 name: str = "default", store: Any = None, registry: Any = None, spot_check_rate: float = 0.0,
                 exam_level: str = "medium", prices: Mapping[str, Price] | None = None) -> None:
        if not nodes:
            raise ConfigError("a swarm needs at least one node")
        ids = [n.id for n in nodes]
        if len(set(ids)) != len(ids):
            raise ConfigError("node ids must be unique")
        get_protocol(protocol)
        self.nodes = list(nodes)
        self.options = options or RoundOptions()
        self.protocol = protocol
        self.name = name
        self.store = store
        #: a :class:`~swarmrank.registry.Registry`: only admitted nodes with stake count, weighted by reputation
        self.registry = registry
        self.spot_check_rate = spot_check_rate
        self.exam_level = exam_level
        #: node id → its price: rounds carry their cost in dollars (swarmrank.pricing)
        self.prices = dict(prices or {})
        self._spot_rng = random.Random()
        #: judge reliability across rounds (peer-rank's evidence aggregation); rebuilt from the
        #: store's recent rounds on first use, then kept up to date by every round this swarm runs
        self.judge_book: JudgeBook | None = None
        self.created_keys: list[str] = []  # node ids whose key pair was created by from_config
        self.keys_dir: Path | None = None

    @classmethod
    def from_config(cls, config: SwarmConfig | None = None, *, settings: Settings | None = None,
                    store: Any = "default") -> Swarm:
        """Build nodes (loading each model at most once, lazily) and open the store.

        ``store="default"`` opens the configured database; pass ``None`` to keep rounds in memory
        only, or a :class:`~swarmrank.store.Store`.
        """
        config = config or load_config()
        settings = settings or Settings.from_env()
        ctx = BuildContext(shared={"settings": settings})
        from swarmrank.executor import make_executor

        executor = make_executor(config.executor, settings)  # in process, or Ray actors (connects now)
        nodes: list[Node] = []
        created: list[str] = []
        for section in config.nodes:
            built = build_node(config, section, settings=settings, ctx=ctx, make=executor.create_backend)
            nodes.append(built.node)
            if built.identity is not None and built.identity.created:
                created.append(section.id)
        if store == "default":
            from swarmrank.store import Store

            store = Store.open(settings, config.store.url)
            store.engine  # connect and migrate now: a bad database must fail before a round, not after  # noqa: B018
        registry = None
        if config.trust.enabled:
            if store is None:
                raise ConfigError("[trust] enabled needs a database for the ledger (do not pass store=None)")
            from swarmrank.ledger import Ledger
            from swarmrank.registry import Registry

            coordinator = load_or_create(settings.keys_dir, COORDINATOR_ID)
            if coordinator.created:
                created.append(COORDINATOR_ID)
            pinned = config.trust.authorities
            if pinned and coordinator.public_hex not in pinned:
                raise ConfigError(f"this coordinator's key {coordinator.public_hex} ({settings.keys_dir}) is not "
                                  "among [trust] authorities: it could not write the ledger entries of a round")
            registry = Registry(Ledger(store), coordinator, config.trust.params, authorities=pinned or None)
            registry.register(nodes)
        swarm = cls(nodes, options=config.round, protocol=config.swarm.protocol, name=config.swarm.name, store=store,
                    registry=registry, spot_check_rate=config.trust.spot_check_rate,
                    exam_level=config.trust.exam_level, prices=config.node_prices())
        swarm.created_keys = created
        swarm.keys_dir = settings.keys_dir
        return swarm

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise ConfigError(f"no node {node_id!r} in swarm {self.name!r}")

    async def ask(self, question: str, *, protocol: str | None = None, task_type: str | None = None,
                  truth: str | None = None, options: RoundOptions | None = None,
                  on_event: EventHandler | None = None, save: bool = True,
                  book: JudgeBook | None = None) -> RoundResult:
        """Run one round and return its full record (saved to the store when there is one).

        ``truth`` is for evaluation and simulation only: scripted judges may use it; real nodes never see it.
        ``book``: judge reliability to read instead of the swarm's own book, which the round then
        does not update (evaluations and simulations keep one per system, learning in item order).
        """
        name = protocol or self.protocol
        proto = get_protocol(name)
        _check_unicode(question)  # a round that could not be stored is never run
        opts = options or self.options
        json_task = TaskType.parse(task_type) is TaskType.JSON
        task = Task.create(question, task_type, schema=opts.answer_schema if json_task else None)
        nodes, left_out = list(self.nodes), []
        if self.registry is not None:
            nodes, opts, left_out = await asyncio.to_thread(self.registry.weigh, self.nodes, opts)
            left_out = [f"not counted: {line}" for line in left_out] + self.registry.take_warnings()
            if not any(n.answers for n in nodes):
                raise TrustError("no admitted node with the 'answer' role has enough stake: admit nodes first "
                                  "(swarmrank node admit NODE)")
        own_book = book is None
        if book is None and opts.learn_reliability:
            book = await self._book(opts)
        ctx = RoundContext(task, nodes, opts, protocol=name, swarm=self.name, truth=truth, on_event=on_event,
                           book=book, prices=self.prices)
        for line in left_out:
            ctx.note(line)
        if not any(n.answers for n in self.nodes):
            raise ConfigError("no node in this swarm has the 'answer' role")
        if opts.synthesize or proto.synthesizes:
            wanted = opts.synthesizer
            known = any(n.id == wanted for n in self.nodes)
            if self.registry is not None and wanted and wanted not in ctx.by_id and known:
                raise TrustError(f"the synthesizer {wanted!r} is not admitted with enough stake: admit it "
                                 f"(swarmrank node admit {wanted}) or name another in [round] synthesizer")
            synthesizer(ctx)  # fail before any call, not after the round
        try:
            result = await asyncio.wait_for(proto.run(ctx), opts.deadline + 30.0)
        except TimeoutError:
            raise RoundError(f"round did not finish within its deadline of {opts.deadline:.0f}s") from None
        if opts.synthesize and result.synthesis is None:
            result = await synthesize(ctx, result, k=opts.synthesis_k, ranked_by=f"the {name} protocol")
        ctx.emit("decided", answer=result.answer, winner=result.winner, confidence=result.confidence)
        if own_book and book is not None and result.judge_reports:
            book.learn(result)
        if save and self.store is not None and self.registry is None:
            try:
                await asyncio.to_thread(self.store.save_round, result)
            except StorageError as exc:
                raise RoundNotSavedError(f"round {result.round_id} finished but was not saved: {exc}",
                                         result=result) from exc
        if self.registry is not None and save:
            # the round and its ledger entries in one transaction: a client that hangs up now
            # cancels only the wait, and a crash leaves both or neither
            await self._record(result, nodes, store=self.store)
            if self.spot_check_rate > 0 and self._spot_rng.random() < self.spot_check_rate:
                try:  # the live round is answered and recorded: a failed spot check must not lose it
                    await self.spot_check(protocol=name)
                except (SwarmError, TimeoutError) as exc:
                    result.notes.append(f"spot check after this round failed: {exc}")
        return result

    async def _book(self, options: RoundOptions) -> JudgeBook:
        """The judge book, rebuilt from this swarm's stored rounds the first time it is needed."""
        if self.judge_book is None:
            book = JudgeBook(options.reliability_params())
            read = getattr(self.store, "judge_history", None)
            if read is not None:
                limit = int(min(BOOK_MAX_ROUNDS, 3 * options.reliability_memory))
                try:
                    history = await asyncio.to_thread(read, self.name, limit)
                except StorageError:
                    history = []  # a store that cannot be read now fails the save later, with its own error
                for entry in history:
                    try:
                        reports = [JudgeReport.model_validate(r) for r in entry["judge_reports"]]
                    except ValidationError:
                        continue
                    book.add_round(reports, entry["votes"], entry["evidence_low"])
            if self.judge_book is None:  # another round may have built it while this one read
                self.judge_book = book
        return self.judge_book

    async def _record(self, result: RoundResult, nodes: Sequence[Node], **kwargs: Any) -> None:
        try:
            await asyncio.to_thread(self.registry.record, result, nodes, **kwargs)
        except (StorageError, LedgerError, ReplayError) as exc:
            raise RoundNotSavedError(f"round {result.round_id} finished but was not recorded (neither the round "
                                     f"nor its ledger entries were written): {exc}", result=result) from exc

    async def spot_check(self, *, protocol: str | None = None) -> RoundResult:
        """A hidden check: a round on a generated question with a known answer, scored against the
        truth (wrong answers and verdicts for a wrong answer are slashed, right ones rewarded).
        The nodes are asked exactly as in a live round. Needs a registry."""
        from swarmrank.admission import exam_items

        if self.registry is None:
            raise ConfigError("spot checks need [trust] enabled")
        item = exam_items(1, seed=self._spot_rng.randrange(2**48), level=self.exam_level)[0]
        nodes, opts, _ = await asyncio.to_thread(self.registry.weigh, self.nodes, self.options)
        if not any(n.answers for n in nodes):
            raise TrustError("no admitted node to spot-check")
        task = Task.create(item.question, "number")
        ctx = RoundContext(task, nodes, opts, protocol=protocol or self.protocol, swarm=self.name, truth=item.gold)
        try:
            result = await asyncio.wait_for(get_protocol(ctx.protocol).run(ctx), opts.deadline + 30.0)
        except TimeoutError:
            raise RoundError(f"spot check did not finish within its deadline of {opts.deadline:.0f}s") from None
        gold = task.extract(item.gold)
        correct = {c.answer: c.answer == gold for c in result.candidates}
        await self._record(result, nodes, correct=correct, spot_check=True, store=self.store)
        return result

    def ask_sync(self, question: str, **kwargs: Any) -> RoundResult:
        """Blocking wrapper around :meth:`ask` for scripts and notebooks.

        Inside a running event loop (a Jupyter cell, an async framework) the round runs on its own
        loop in a worker thread while this call blocks; in async code prefer ``await swarm.ask(...)``.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._ask_and_close(question, **kwargs))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="swarmrank-ask") as pool:
            return pool.submit(asyncio.run, self._ask_and_close(question, **kwargs)).result()

    async def _ask_and_close(self, question: str, **kwargs: Any) -> RoundResult:
        try:
            return await self.ask(question, **kwargs)
        finally:
            await self.aclose_backends()

    async def check(self, *, timeout: float = 120.0) -> list[NodeCheck]:
        """Ask every node a trivial question concurrently; report which ones answer."""

        async def probe(node: Node) -> NodeCheck:
            request = CompletionRequest(messages=(Message("user", "Reply with the single word: ready"),),
                                        purpose="probe", temperature=0.0, max_tokens=8, seed=node.persona.seed,
                                        context={"question": "ready?"})
            loop = asyncio.get_running_loop()
            start = loop.time()
            try:
                completion: Completion = await asyncio.wait_for(node.complete(request), timeout)
            except TimeoutError:
                return NodeCheck(node.id, node.backend.describe(), False, f"no reply within {timeout:.0f}s",
                                 loop.time() - start)
            except Exception as exc:  # report, do not raise: this is a health check
                return NodeCheck(node.id, node.backend.describe(), False, str(exc).splitlines()[0][:200],
                                 loop.time() - start)
            text = " ".join(completion.text.split())[:60]
            ok = bool(text)
            return NodeCheck(node.id, node.backend.describe(), ok, text or "empty reply", loop.time() - start)

        return list(await asyncio.gather(*(probe(n) for n in self.nodes)))

    async def aclose_backends(self) -> None:
        for backend in {id(n.backend): n.backend for n in self.nodes}.values():
            await backend.close()

    def close(self) -> None:
        """Close the store and unload models (backends load again on their next call)."""
        if self.store is not None:
            self.store.close()
        for backend in {id(n.backend): n.backend for n in self.nodes}.values():
            backend.unload()

    def describe(self) -> list[dict[str, Any]]:
        return [{"id": n.id, "backend": n.backend.describe(), "roles": sorted(n.roles),
                 "key": n.public_key[:16], **asdict(n.persona)} for n in self.nodes]


def _check_unicode(question: str) -> None:
    """Refuse a question no store can keep (a lone surrogate is not UTF-8) before any node is asked."""
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(question[exc.start])
        escaped = 0xDC80 <= code <= 0xDCFF  # how Python reads a byte that is not UTF-8
        byte = f"; read from a file or stdin: the byte 0x{code - 0xDC00:02x}, not UTF-8" if escaped else ""
        raise ConfigError(f"the question is not valid Unicode: it holds an unpaired surrogate (U+{code:04X}{byte}) "
                          f"at position {exc.start}") from None
