"""Consensus protocols: named compositions of the same round steps.

Every protocol takes a :class:`~swarmrank.round.RoundContext` and returns a
:class:`~swarmrank.result.RoundResult`; ``docs/protocols.md`` describes each with its source.
Protocols come from plugins (:mod:`swarmrank.plugins`, hook ``register_protocols``), the built-ins
included (:func:`register_protocols` below); :func:`register_protocol` adds one at run time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict

import numpy as np

from swarmrank import aggregate, reliability
from swarmrank.errors import ConfigError
from swarmrank.judging import judge_messages, parse_ranking, parse_verdict, rank_messages
from swarmrank.nodes.base import CompletionRequest, Message, Node
from swarmrank.plugins import hookimpl, load
from swarmrank.reliability import AGGREGATIONS
from swarmrank.result import Answer, Candidate, JudgeReport, Judgment, PairReport, Ranking, RoundResult
from swarmrank.round import RoundContext, signature_of
from swarmrank.schedule import (
    Comparison,
    adjacent_cross_pairs,
    all_pairs,
    cluster_schedule,
    fortytwo_schedule,
    pick_judges,
    rotation_start,
)
from swarmrank.tasks import cluster, extract_confidence

MAX_SHOWN_CHARS = 1500
#: the adaptive schedule stops calling a judge whose discrimination is surely below this (mean + 2 sd)
ADAPTIVE_MIN_KAPPA = 0.05
#: contested pairs described one line each in a round's notes (all are in ``pair_reports``)
MAX_PAIR_NOTES = 6


class Protocol(ABC):
    name: str
    summary: str
    synthesizes: bool = False  # ends with one node writing the answer (swarmrank.synthesis)

    @abstractmethod
    async def run(self, ctx: RoundContext) -> RoundResult:
        """Run one round and return its full record."""


_PROTOCOLS: dict[str, Protocol] = {}


def _registry() -> dict[str, Protocol]:
    """Every protocol by name: the plugins' (built-ins first), then any registered at run time."""
    load("register_protocols", register_protocol)
    return _PROTOCOLS


def register_protocol(protocol: Protocol) -> None:
    """Make ``protocol`` available by its name (replacing one of the same name)."""
    _registry()[protocol.name] = protocol


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; the one check of a protocol name (a :class:`ConfigError` listing the known ones)."""
    try:
        return _registry()[name]
    except KeyError:
        raise ConfigError(f"unknown protocol {name!r} (known: {', '.join(protocol_names())})") from None


def protocol_names() -> list[str]:
    return list(_registry())


# -- shared steps ------------------------------------------------------------------------------

def answerers(ctx: RoundContext) -> list[Node]:
    return [n for n in ctx.nodes if n.answers]


def judges(ctx: RoundContext) -> list[Node]:
    return [n for n in ctx.nodes if n.judges]


def group(answers: Sequence[Answer]) -> tuple[list[Answer], list[Candidate]]:
    """Cluster usable answers into candidates; returns answers with candidate indices set."""
    usable = [a for a in answers if a.excluded is None and a.value is not None]
    values, assignment = cluster([a.value for a in usable])
    candidates = [Candidate(answer=v, text="", nodes=[], strength=0.0) for v in values]
    by_id = {id(a): idx for a, idx in zip(usable, assignment)}
    tagged: list[Answer] = []
    for answer in answers:
        idx = by_id.get(id(answer))
        if idx is not None:
            cand = candidates[idx]
            if not cand.text:
                cand.text = answer.text
            cand.nodes.append(answer.node)
            answer = answer.model_copy(update={"candidate": idx})
        tagged.append(answer)
    return tagged, candidates


def vote_result(ctx: RoundContext, answers: list[Answer], candidates: list[Candidate],
                shares: np.ndarray, votes: Sequence[float], *, ties: bool = True) -> RoundResult:
    """The result of a vote. A tie for the most votes goes to the candidate given first (candidates are
    numbered in the order their first answer came, which is the swarm's node order), and is noted."""
    for cand, share, vote in zip(candidates, shares, votes):
        cand.strength, cand.votes = float(share), float(vote)
    winner = int(np.argmax(shares)) if candidates else None
    tied = [] if winner is None else [i for i, s in enumerate(shares) if np.isclose(s, shares[winner], rtol=0,
                                                                                       atol=1e-12)]
    if ties and len(tied) > 1 and winner is not None:
        ctx.note(f"tie: {', '.join(repr(candidates[i].answer) for i in tied)} have {float(votes[winner]):g} "
                 f"vote(s) each; broken by node order for {candidates[winner].answer!r} (first given, by "
                 f"{candidates[winner].nodes[0]})")
    confidence = float(shares[winner]) if winner is not None else 0.0
    return ctx.result(candidates=candidates, winner=winner, confidence=confidence, answers=answers)


def no_answer(ctx: RoundContext, answers: list[Answer]) -> RoundResult:
    ctx.note("no node produced a usable answer")
    return ctx.result(candidates=[], winner=None, confidence=0.0, answers=answers)


def pick_winner(scores: np.ndarray, candidates: Sequence[Candidate]) -> int:
    """The best-scoring candidate; equal scores (e.g. judges that always pick the same position,
    cancelled by the order swap) go to the larger cluster, then to the earlier answer."""
    return max(range(len(candidates)), key=lambda i: (round(float(scores[i]), 9), len(candidates[i].nodes), -i))


def tag_history(history: Sequence[Answer], current: Sequence[Answer], final: Sequence[Answer]) -> list[Answer]:
    """Every answer of a multi-step protocol, with candidate indices on the ones that were counted."""
    tagged = {id(old): new for old, new in zip(current, final)}
    return [tagged.get(id(a), a) for a in history]


def shown(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + " …"


# -- peer-rank ---------------------------------------------------------------------------------

GRADE_PROMPT = """Problem:
{question}

Proposed solution:
{solution}

Is this a genuine, complete attempt at the problem (it may still be wrong)? Reply with one word: GOOD or BAD."""


class PeerRank(Protocol):
    name = "peer-rank"
    summary = ("judges compare answers pairwise in both orders; votes and verdicts, each judge weighted by its "
               "estimated reliability, decide (Fortytwo)")

    async def run(self, ctx: RoundContext) -> RoundResult:
        first = await ctx.fan_out(answerers(ctx))
        answers, candidates = group(first)
        if not candidates:
            return no_answer(ctx, answers)
        opts = ctx.options
        schedule = opts.schedule  # a known one: RoundOptions checks it
        judge_ids = [n.id for n in judges(ctx)]
        usable = [a for a in answers if a.candidate is not None]
        if schedule in ("cluster", "adaptive"):
            items_text = [c.text for c in candidates]
            item_nodes = [c.nodes for c in candidates]
            item_candidate = list(range(len(candidates)))
        else:
            items_text = [a.text for a in usable]
            item_nodes = [[a.node] for a in usable]
            item_candidate = [a.candidate for a in usable]  # type: ignore[misc]
        items_value = [ctx.task.extract(text) for text in items_text]
        if len(candidates) == 1:
            ctx.note("every usable answer agrees: no judging needed")
            return self._aggregate(ctx, answers, candidates, [], item_candidate, schedule)
        if not judge_ids:
            ctx.note("this swarm has no judge: peer-rank decided by votes alone")
        if schedule == "adaptive":
            await self._adaptive(ctx, answers, candidates, judge_ids, items_text, items_value)
        else:
            if schedule == "cluster":
                comparisons = cluster_schedule(item_nodes, judge_ids, judges_per_pair=opts.judges_per_pair,
                                               max_full=opts.max_full_pairs, interested=opts.interested_judges,
                                               start=rotation_start(ctx.task.question))
            else:
                good = await self._grade(ctx, usable, judge_ids) if opts.goodbad else None
                comparisons = fortytwo_schedule(item_nodes, judge_ids, good=good)
                failed_grades = ctx.phases["grade"].failures if "grade" in ctx.phases else 0
                if failed_grades:
                    ctx.note(f"{failed_grades} GOOD/BAD grading call(s) failed; those answers stayed in play")
            if judge_ids and not comparisons:
                ctx.note("no eligible judge for any pair (every judge's own answer is in it and interested_judges "
                         "= 'never', or the fortytwo schedule left none): decided by votes alone")
            # same first solution back to back: llama.cpp reuses the KV cache of the shared prefix
            comparisons.sort(key=lambda c: (c.first, c.second))
            references = await self._references(ctx, answers, sorted({c.judge for c in comparisons}))
            verdicts = await ctx.gather_phase(
                "judge", [self._judge(ctx, c, items_text, items_value, references) for c in comparisons])
            ctx.judgments.extend(verdicts)
        counted = [j for j in ctx.judgments if not j.failed]
        if len(counted) < len(ctx.judgments):
            ctx.note(f"{len(ctx.judgments) - len(counted)} of {len(ctx.judgments)} judge call(s) failed and were "
                     "not counted")
            if not counted:
                ctx.note("no judge gave a verdict: decided by votes alone")
        return self._aggregate(ctx, answers, candidates, counted, item_candidate, schedule)

    # -- judging --------------------------------------------------------------------------------

    async def _references(self, ctx: RoundContext, answers: Sequence[Answer],
                          judge_ids: Sequence[str]) -> dict[str, str]:
        """Reference-guided judging (``judge_style = "reference"``; else nothing): each of these
        judges' own solution, written before it sees A and B. A judge that answered this round reuses
        its answer; the others solve the question once."""
        if ctx.options.judge_style != "reference" or not judge_ids:
            return {}
        refs = {a.node: a.text for a in answers if a.node in judge_ids and a.text and a.step == 0}
        missing = [ctx.by_id[j] for j in judge_ids if j not in refs]
        if missing:
            outcomes = await ctx.gather_phase("reference", [
                ctx.call(n, ctx.answer_request(n), "reference") for n in missing])
            for outcome in outcomes:
                if outcome.completion is not None and outcome.completion.text.strip():
                    refs[outcome.node.id] = outcome.completion.text
        return refs

    def _decision(self, ctx: RoundContext, answers: Sequence[Answer], candidates: Sequence[Candidate],
                  verdicts: Sequence[Judgment], item_candidate: Sequence[int]) -> reliability.Decision:
        opts = ctx.options
        judge_set = {j.judge for j in verdicts}
        own = {a.node: a.candidate for a in answers if a.candidate is not None and a.node in judge_set}
        rows = [(j.judge, item_candidate[j.first], item_candidate[j.second], self._p_first(j, opts.soft_verdicts))
                for j in verdicts]
        evidence, bias = reliability.pool_verdicts(rows, own=own)
        votes = [sum(opts.influence.get(n, 1.0) for n in c.nodes) for c in candidates]
        weights = {j: opts.influence.get(j, 1.0) for j in judge_set}
        return reliability.decide(len(candidates), votes, evidence, params=opts.reliability_params(),
                                  book=ctx.book if opts.learn_reliability else None, weights=weights,
                                  verdict_bias=bias)

    @staticmethod
    def _p_first(j: Judgment, soft: bool) -> float:
        """P(the answer shown first is better): the verdict distribution where known, else one-hot."""
        if soft and j.probs:
            total = sum(j.probs.get(k, 0.0) for k in ("A", "B", "U"))
            if total > 0:
                return (j.probs.get("A", 0.0) + j.probs.get("U", 0.0) / 2) / total
        return {"A": 1.0, "B": 0.0}.get(j.verdict, 0.5)

    async def _adaptive(self, ctx: RoundContext, answers: Sequence[Answer], candidates: Sequence[Candidate],
                        judge_ids: Sequence[str], texts: Sequence[str], values: Sequence[str | None]) -> None:
        """Judge the least certain pair next, most reliable judge first; stop once the leader's
        posterior reaches ``stop_at``, when no judge is left who could move it, or at the call cap."""
        opts = ctx.options
        n = len(candidates)
        pairs = all_pairs(n) if n <= opts.max_full_pairs else adjacent_cross_pairs(n)
        cap = opts.max_judge_calls or 2 * len(judge_ids) * len(pairs)
        book = ctx.book if opts.learn_reliability else None
        prior = reliability.JudgeBook(opts.reliability_params()) if book is None else book
        # most promising first (optimism under uncertainty: mean + sd, so a judge that has not yet shown
        # much gets tried again); a judge sure to be worth nothing (mean + 2 sd below the floor) is not
        # called; ties keep the configured order
        moments = {j: prior.posterior(j) for j in judge_ids}
        ranked = sorted(judge_ids, key=lambda j: -(moments[j][0] + moments[j][1]))
        useless = {j for j, (m, s) in moments.items() if m + 2 * s < ADAPTIVE_MIN_KAPPA}
        used: dict[tuple[int, int], list[str]] = defaultdict(list)
        references: dict[str, str] = {}  # reference-guided judging: each called judge's own solution
        steps = 0
        reason = ""
        while True:
            counted = [j for j in ctx.judgments if not j.failed]
            decision = self._decision(ctx, answers, candidates, counted, list(range(n)))
            post = decision.posterior
            if float(post.max()) >= opts.stop_at:
                reason = f"the leader's posterior {float(post.max()):.3f} reached stop_at {opts.stop_at:g}"
                break
            if len(ctx.judgments) + 2 > cap:
                reason = f"the cap of {cap} judge calls was reached"
                break
            batch: list[Comparison] = []
            for x, y in sorted(pairs, key=lambda p: (-float(post[p[0]] * post[p[1]]), p)):
                pool = [j for j in ranked if j not in useless]
                room = max(1, min(opts.judges_per_pair, (cap - len(ctx.judgments)) // 2))
                chosen = pick_judges(candidates[x].nodes, candidates[y].nodes, pool, room,
                                     interested=opts.interested_judges, exclude=used[(x, y)])
                if chosen:
                    used[(x, y)].extend(chosen)
                    batch = [Comparison(j, a, b) for j in chosen for a, b in ((x, y), (y, x))]
                    break
            if not batch:
                reason = "no judge left that could move the posterior" if steps else \
                    "no judge that could move the posterior (every judge's estimated discrimination is ~0)"
                break
            steps += 1
            batch.sort(key=lambda c: (c.first, c.second))
            references.update(await self._references(ctx, answers, [j for j in chosen if j not in references]))
            verdicts = await ctx.gather_phase("judge", [self._judge(ctx, c, texts, values, references) for c in batch])
            ctx.judgments.extend(verdicts)
        ctx.note(f"adaptive judging: {len(ctx.judgments)} judge call(s) in {steps} step(s); stopped: {reason}")
    async def _grade(self, ctx: RoundContext, usable: Sequence[Answer], judge_ids: Sequence[str]) -> dict[str, list[int]]:
        answered = {a.node for a in usable}
        graders = [j for j in judge_ids if j not in answered] or list(judge_ids)

        async def grade(judge: str, index: int) -> tuple[str, int, bool]:
            node = ctx.by_id[judge]
            prompt = GRADE_PROMPT.format(question=ctx.task.question, solution=shown(usable[index].text))
            request = CompletionRequest(
                messages=(Message("user", prompt),), purpose="grade", temperature=0.0, max_tokens=4,
                seed=node.persona.seed, context={"question": ctx.task.question, "value": usable[index].value},
            )
            outcome = await ctx.call(node, request, "grade")
            text = outcome.completion.text.upper() if outcome.completion else ""
            return judge, index, "BAD" not in text  # a failed grade call keeps the answer in play

        results = await ctx.gather_phase("grade", [grade(j, i) for j in graders for i in range(len(usable))])
        good: dict[str, list[int]] = defaultdict(list)
        for judge, index, ok in results:
            if ok:
                good[judge].append(index)
        return {j: sorted(good.get(j, [])) for j in graders}

    async def _judge(self, ctx: RoundContext, comp: Comparison, texts: Sequence[str],
                     values: Sequence[str | None], references: Mapping[str, str] | None = None) -> Judgment:
        node = ctx.by_id[comp.judge]
        reference = (references or {}).get(comp.judge)
        context = {"question": ctx.task.question, "first_value": values[comp.first],
                   "second_value": values[comp.second]}
        if ctx.truth is not None:
            context["truth"] = ctx.truth
        prompt_tokens = completion_tokens = 0
        seconds = 0.0
        reasoning, verdict, probability, retried, failed = "", None, None, False, False
        signature: dict[str, str] | None = None
        probs: dict[str, float] | None = None
        for attempt in range(2):
            request = CompletionRequest(
                messages=judge_messages(ctx.task, shown(texts[comp.first]), shown(texts[comp.second]),
                                        retry=attempt > 0, reference=shown(reference) if reference else None),
                purpose="judge", temperature=0.3, max_tokens=node.persona.judge_max_tokens,
                seed=node.persona.seed + attempt, top_logprobs=5, context=context,
            )
            outcome = await ctx.call(node, request, "judge")
            seconds += outcome.seconds
            if outcome.completion is None:  # a failed call is no evidence: it is recorded, not counted
                reasoning, failed = outcome.error or "judge failed", True
                break
            completion = outcome.completion
            signature = signature_of(completion)
            prompt_tokens += completion.prompt_tokens
            completion_tokens += completion.completion_tokens
            reasoning = completion.text.strip()
            verdict = parse_verdict(completion.text)
            if verdict is not None:
                if completion.choice_probs:
                    probs = {k: float(completion.choice_probs.get(k, 0.0)) for k in ("A", "B", "U")}
                    probability = probs[verdict] if sum(probs.values()) > 0 else None
                    probs = probs if probability is not None else None
                break
            retried = True
        judgment = Judgment(
            judge=comp.judge, first=comp.first, second=comp.second, verdict=verdict or "U",
            reasoning=reasoning, probability=probability, probs=probs,
            weight=ctx.options.influence.get(comp.judge, 1.0),
            retried=retried, failed=failed, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            seconds=seconds, signature=signature,
        )
        ctx.emit("judgment", judge=comp.judge, first=comp.first, second=comp.second, verdict=judgment.verdict)
        return judgment

    def _aggregate(self, ctx: RoundContext, answers: list[Answer], candidates: list[Candidate],
                   verdicts: Sequence[Judgment], item_candidate: Sequence[int], schedule: str) -> RoundResult:
        if ctx.options.aggregation == "evidence":
            return self._aggregate_evidence(ctx, answers, candidates, verdicts, item_candidate, schedule)
        if ctx.options.aggregation != "bradley-terry":
            raise ConfigError(f"unknown aggregation {ctx.options.aggregation!r} (known: {', '.join(AGGREGATIONS)})")
        return self._aggregate_bt(ctx, answers, candidates, verdicts, len(item_candidate), schedule)

    def _aggregate_evidence(self, ctx: RoundContext, answers: list[Answer], candidates: list[Candidate],
                            verdicts: Sequence[Judgment], item_candidate: Sequence[int], schedule: str) -> RoundResult:
        """Votes as the prior, verdicts weighted by each judge's estimated reliability as the likelihood."""
        decision = self._decision(ctx, answers, candidates, verdicts, item_candidate)
        influence = ctx.options.influence
        for idx, cand in enumerate(candidates):
            cand.strength = float(decision.posterior[idx])
            cand.evidence = float(decision.evidence[idx])
            cand.votes = float(sum(influence.get(n, 1.0) for n in cand.nodes))
        for pair in decision.pairs[:MAX_PAIR_NOTES]:
            side = pair.x if pair.evidence >= 0 else pair.y
            weighed = (f"{abs(pair.evidence):.2f} nats for {candidates[side].answer!r}" if abs(pair.evidence) >= 0.005
                       else "no evidence either way")
            ctx.note(f"pair {candidates[pair.x].answer!r} vs {candidates[pair.y].answer!r}: {pair.judges} judge(s)"
                     f"{f' ({pair.interested} with an answer in it)' if pair.interested else ''}, {weighed}")
        if len(decision.pairs) > MAX_PAIR_NOTES:
            ctx.note(f"… and {len(decision.pairs) - MAX_PAIR_NOTES} more judged pair(s) (pair_reports has them all)")
        posterior = decision.posterior
        winner = pick_winner(posterior, candidates)
        by_votes = max(range(len(candidates)), key=lambda i: (candidates[i].votes or 0.0, -i))
        if decision.pairs and winner != by_votes and (candidates[winner].votes or 0) < (candidates[by_votes].votes or 0):
            ctx.note(f"the judges overturned the vote count: {candidates[winner].answer!r} "
                     f"({candidates[winner].votes:g} votes) over {candidates[by_votes].answer!r} "
                     f"({candidates[by_votes].votes:g} votes)")
        judge_reports = [JudgeReport(**{**asdict(r), "observations": list(r.observations)}) for r in decision.judges]
        pair_reports = [PairReport(**asdict(p)) for p in decision.pairs]
        return ctx.result(candidates=candidates, winner=winner, confidence=float(posterior[winner]), answers=answers,
                          schedule=schedule, aggregation="evidence", judge_reports=judge_reports,
                          pair_reports=pair_reports,
                          evidence_low=[] if decision.evidence_low is None else decision.evidence_low.tolist())

    def _aggregate_bt(self, ctx: RoundContext, answers: list[Answer], candidates: list[Candidate],
                      verdicts: Sequence[Judgment], n_items: int, schedule: str) -> RoundResult:
        """Before 0.2: influence-weighted Bradley–Terry, times the votes under the cluster schedule."""
        usable = [a for a in answers if a.candidate is not None]
        if verdicts:
            pairs = [(j.first, j.second) for j in verdicts]
            weights_in = [j.weight for j in verdicts]
            if ctx.options.soft_verdicts:  # the judge's verdict distribution where known, else one-hot
                probs = [[j.probs.get("A", 0.0), j.probs.get("B", 0.0), j.probs.get("U", 0.0)] if j.probs
                         else [float(j.verdict == "A"), float(j.verdict == "B"), float(j.verdict == "U")]
                         for j in verdicts]
                winners, losers, weights = aggregate.comparisons_from_probabilities(pairs, probs, weights_in)
            else:
                winners, losers, weights = aggregate.comparisons_from_verdicts(
                    pairs, [j.verdict for j in verdicts], weights_in)
            fit = aggregate.bradley_terry(n_items, winners, losers, weights, prior=ctx.options.prior)
            item_strength, item_log, item_se = fit.strengths, fit.log_strengths, fit.stderr
        else:  # nothing to compare (one candidate, or no eligible judge): fall back to vote shares
            item_strength = np.ones(n_items) / n_items
            item_log, item_se = np.zeros(n_items), np.full(n_items, np.nan)
        if schedule != "fortytwo":
            if not verdicts:
                item_strength = aggregate.majority(len(candidates), [a.candidate for a in usable])  # type: ignore[arg-type]
            elif ctx.options.vote_weighted:
                # a candidate stands for all the nodes that gave it, as it would if each of its
                # answers were ranked separately (the fortytwo schedule): strength ∝ votes × BT
                # (each node's vote counts with its influence: 1 unless reputation sets it)
                influence = ctx.options.influence
                votes = np.array([sum(influence.get(n, 1.0) for n in c.nodes) for c in candidates], dtype=float)
                total = float(np.dot(votes, item_strength))
                if total > 0:
                    item_strength = votes * item_strength / total
            for idx, cand in enumerate(candidates):
                cand.strength = float(item_strength[idx])
                cand.log_strength = float(item_log[idx])
                cand.stderr = None if np.isnan(item_se[idx]) else float(item_se[idx])
        else:
            sums = np.zeros(len(candidates))
            for answer, strength in zip(usable, item_strength):
                sums[answer.candidate] += strength
            for idx, cand in enumerate(candidates):
                cand.strength = float(sums[idx])
            best = [max((item_log[i] for i, a in enumerate(usable) if a.candidate == c), default=0.0)
                    for c in range(len(candidates))]
            for cand, value in zip(candidates, best):
                cand.log_strength = float(value)
        for cand in candidates:
            cand.votes = float(len(cand.nodes))
        strengths = np.array([c.strength for c in candidates])
        winner = pick_winner(strengths, candidates)
        return ctx.result(candidates=candidates, winner=winner, confidence=float(strengths[winner]),
                          answers=answers, schedule=schedule, aggregation="bradley-terry")


class Blender(PeerRank):
    name = "blender"
    summary = "every judge compares every ordered pair of answers; the highest summed preference wins (LLM-Blender PairRanker, 'max logits')"

    async def run(self, ctx: RoundContext) -> RoundResult:
        answers, candidates = group(await ctx.fan_out(answerers(ctx)))
        if not candidates:
            return no_answer(ctx, answers)
        texts = [c.text for c in candidates]
        values = [c.answer for c in candidates]
        comparisons = [Comparison(judge.id, i, j) for i in range(len(candidates)) for j in range(len(candidates))
                       if i != j for judge in judges(ctx)
                       if judge.id not in candidates[i].nodes and judge.id not in candidates[j].nodes]
        if len(candidates) == 1:
            ctx.note("every usable answer agrees: no judging needed")
        verdicts = await ctx.gather_phase("judge", [self._judge(ctx, c, texts, values) for c in comparisons])
        ctx.judgments.extend(verdicts)
        # full-matrix aggregation: a candidate's score is the sum over its comparisons of
        # (its win probability - its rival's), i.e. LLM-Blender's summed pairwise preference
        scores = np.zeros(len(candidates))
        for j in verdicts:
            if j.failed:
                continue
            p = j.probs or {"A": float(j.verdict == "A"), "B": float(j.verdict == "B"), "U": float(j.verdict == "U")}
            margin = j.weight * (p.get("A", 0.0) - p.get("B", 0.0))
            scores[j.first] += margin
            scores[j.second] -= margin
        if not any(not j.failed for j in verdicts) and len(candidates) > 1:
            ctx.note("no judge gave a verdict: falling back to vote counts")
            scores = np.array([len(c.nodes) for c in candidates], dtype=float)
        shares = np.exp(scores - scores.max())
        shares /= shares.sum()
        winner = pick_winner(scores, candidates)
        for cand, share, score in zip(candidates, shares, scores):
            cand.strength, cand.log_strength, cand.votes = float(share), float(score), float(len(cand.nodes))
        return ctx.result(candidates=candidates, winner=winner, confidence=float(shares[winner]), answers=answers,
                          schedule="full")


# -- voting protocols --------------------------------------------------------------------------

class Majority(Protocol):
    name = "majority"
    summary = "every node answers once; the most common normalised answer wins (self-consistency)"

    async def run(self, ctx: RoundContext) -> RoundResult:
        answers, candidates = group(await ctx.fan_out(answerers(ctx)))
        if not candidates:
            return no_answer(ctx, answers)
        votes = [a.candidate for a in answers if a.candidate is not None]
        shares = aggregate.majority(len(candidates), votes)
        counts = np.bincount(votes, minlength=len(candidates))
        return vote_result(ctx, answers, candidates, shares, counts.tolist())


def peers_summary(answers: Sequence[Answer], exclude: str) -> str:
    grouped: dict[str, list[str]] = defaultdict(list)
    for a in answers:
        if a.node != exclude and a.value is not None:
            grouped[a.value].append(shown(a.text))
    lines = [f"{len(texts)} agent(s) answered {value}. One explanation:\n{texts[0]}" for value, texts in grouped.items()]
    return "Other agents' answers:\n\n" + "\n\n".join(lines)


REVISE_NOTE = ("Consider the other agents' answers and explanations. Update your answer if you find their "
               "reasoning convincing, or keep it if you are confident it is right.")


class WeightedVote(Protocol):
    name = "weighted-vote"
    summary = "answers with confidences; disagreeing agents see grouped answers for R rounds; confidence-weighted vote (ReConcile)"

    async def run(self, ctx: RoundContext) -> RoundResult:
        nodes = answerers(ctx)
        current = await ctx.fan_out(nodes, request_for=lambda n: ctx.answer_request(n, wants_confidence=True),
                                    confidence_of=extract_confidence)
        history = list(current)
        for step in range(1, ctx.options.rounds + 1):
            values = {a.value for a in current if a.value is not None}
            if len(values) <= 1:
                break
            snapshot = list(current)
            revised = await ctx.fan_out(
                nodes, phase="revise", step=step, confidence_of=extract_confidence,
                request_for=lambda n, s=snapshot, st=step: ctx.answer_request(  # type: ignore[misc]
                    n, purpose="revise", sample=st, wants_confidence=True,
                    extra=f"{peers_summary(s, n.id)}\n\n{REVISE_NOTE}",
                    context={"peers": [a.value for a in s if a.node != n.id and a.value],
                             "previous": next((a.value for a in s if a.node == n.id), None)}))
            current = [new if new.value is not None else old for new, old in zip(revised, current)]
            history.extend(revised)
        final, candidates = group(current)
        if not candidates:
            return no_answer(ctx, history)
        voters = [a for a in final if a.candidate is not None]
        confidences = [a.confidence if a.confidence is not None else 0.5 for a in voters]
        shares = aggregate.weighted_vote(len(candidates), [a.candidate for a in voters], confidences)  # type: ignore[arg-type]
        weights = np.zeros(len(candidates))
        for a, conf in zip(voters, confidences):
            weights[a.candidate] += aggregate.reconcile_bin(conf)
        return vote_result(ctx, tag_history(history, current, final), candidates, shares, weights.tolist())


class AheadByK(Protocol):
    name = "ahead-by-k"
    summary = "sample nodes in turn until one answer leads every other by k votes; red-flagged samples are discarded (MAKER)"

    async def run(self, ctx: RoundContext) -> RoundResult:
        nodes = answerers(ctx)
        if not nodes:
            raise ConfigError("ahead-by-k needs at least one answering node")
        race = aggregate.AheadByK(ctx.options.k)
        recorded: list[Answer] = []
        decided = False
        for sample in range(ctx.options.max_samples):
            if ctx.remaining() <= 0:
                ctx.note("round deadline reached before any answer led by k")
                break
            node = nodes[sample % len(nodes)]
            round_no = sample // len(nodes)
            answer = (await ctx.fan_out([node], step=0, request_for=lambda n, r=round_no: ctx.answer_request(n, sample=r)))[0]  # type: ignore[misc]
            answer = answer.model_copy(update={"sample": sample})
            recorded.append(answer)
            if answer.value is None:
                continue  # red-flagged or failed: resample
            if race.add(answer.value):
                decided = True
                break
        if not decided and race.total:
            ctx.note(f"no answer led by {ctx.options.k} within {ctx.options.max_samples} samples; taking the leader")
        answers, candidates = group(recorded)
        if not candidates:
            return no_answer(ctx, answers)
        counts = np.array([race.counts.get(c.answer, 0) for c in candidates], dtype=float)
        shares = counts / counts.sum()
        for cand in candidates:  # a node sampled again gave more votes, not another node
            cand.nodes = list(dict.fromkeys(cand.nodes))
        ctx.note(f"{race.total} votes counted, {len(recorded) - race.total} samples red-flagged or failed")
        return vote_result(ctx, answers, candidates, shares, counts.tolist())


class Council(Protocol):
    name = "council"
    summary = "every node ranks all anonymised answers; the best mean position wins (llm-council)"

    async def run(self, ctx: RoundContext) -> RoundResult:
        answers, candidates = group(await ctx.fan_out(answerers(ctx)))
        if not candidates:
            return no_answer(ctx, answers)
        if len(candidates) == 1:
            ctx.note("every usable answer agrees: no ranking needed")
            return vote_result(ctx, answers, candidates, np.ones(1), [len(candidates[0].nodes)])
        texts = [shown(c.text) for c in candidates]

        async def rank(node: Node) -> Ranking | None:
            request = CompletionRequest(
                messages=rank_messages(ctx.task, texts), purpose="rank", temperature=0.3,
                max_tokens=node.persona.judge_max_tokens * 2, seed=node.persona.seed,
                context={"question": ctx.task.question, "candidates": [c.answer for c in candidates]})
            outcome = await ctx.call(node, request, "rank")
            if outcome.completion is None:
                return None
            order = parse_ranking(outcome.completion.text, len(candidates))
            return Ranking(judge=node.id, order=order, reasoning=outcome.completion.text.strip()) if order else None

        rankings = [r for r in await ctx.gather_phase("rank", [rank(n) for n in judges(ctx)]) if r is not None]
        ctx.rankings.extend(rankings)
        if not rankings:
            ctx.note("no readable ranking: falling back to vote counts")
            votes = [a.candidate for a in answers if a.candidate is not None]
            return vote_result(ctx, answers, candidates, aggregate.majority(len(candidates), votes),
                               [len(c.nodes) for c in candidates])
        means = aggregate.mean_rank(len(candidates), [r.order for r in rankings])
        finite = np.where(np.isfinite(means), means, len(candidates) + 1.0)
        borda = len(candidates) + 1.0 - finite
        shares = borda / borda.sum()
        for cand, mean in zip(candidates, means):
            cand.mean_rank = float(mean) if np.isfinite(mean) else None
        order = aggregate.council_order(means)
        winner = int(order[0])
        top_share = sum(1 for r in rankings if r.order[0] == winner) / len(rankings)
        result = vote_result(ctx, answers, candidates, shares, [len(c.nodes) for c in candidates], ties=False)
        return result.model_copy(update={"winner": winner, "answer": candidates[winner].answer,
                                         "answer_text": candidates[winner].text, "confidence": top_share})


class Debate(Protocol):
    name = "debate"
    summary = "nodes see each other's answers and revise for R rounds, then majority (Du et al. 2023)"

    async def run(self, ctx: RoundContext) -> RoundResult:
        nodes = answerers(ctx)
        current = await ctx.fan_out(nodes)
        history = list(current)
        for step in range(1, ctx.options.rounds + 1):
            if len({a.value for a in current if a.value is not None}) <= 1:
                break
            snapshot = list(current)
            revised = await ctx.fan_out(
                nodes, phase="revise", step=step,
                request_for=lambda n, s=snapshot, st=step: ctx.answer_request(  # type: ignore[misc]
                    n, purpose="revise", sample=st, extra=f"{peers_summary(s, n.id)}\n\n{REVISE_NOTE}",
                    context={"peers": [a.value for a in s if a.node != n.id and a.value],
                             "previous": next((a.value for a in s if a.node == n.id), None)}))
            current = [new if new.value is not None else old for new, old in zip(revised, current)]
            history.extend(revised)
        return final_majority(ctx, history, current)


def final_majority(ctx: RoundContext, history: Sequence[Answer], current: Sequence[Answer]) -> RoundResult:
    """Majority over the last answers of a multi-step protocol, with every step's answers in the trace."""
    final, candidates = group(current)
    if not candidates:
        return no_answer(ctx, list(history))
    votes = [a.candidate for a in final if a.candidate is not None]
    shares = aggregate.majority(len(candidates), votes)
    counts = np.bincount(votes, minlength=len(candidates))
    return vote_result(ctx, tag_history(history, current, final), candidates, shares, counts.tolist())


@hookimpl
def register_protocols(register: Callable[[Protocol], None]) -> None:
    """The built-in protocols, in the order they are listed."""
    for protocol in (PeerRank(), Majority(), WeightedVote(), AheadByK(), Council(), Debate(), Blender()):
        register(protocol)
