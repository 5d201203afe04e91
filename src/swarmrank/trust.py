"""Trust: reputation learned from outcomes, stake and slashing, admission — all replayed from the ledger.

The rule (the maths, with its reasons, is in ``docs/trust.md``):

* every round a node takes part in yields a **score** ``s ∈ [-1, 1]`` per role
  (:func:`score_round`): a judge scores by how far its verdicts agree with the round's consensus
  (the round's preference ``P(i beats j) = sᵢ / (sᵢ + sⱼ)`` from its final strengths), or with the truth on items
  whose answer is known; an answerer scores by its candidate's rank (``+1`` top, ``-1`` bottom), or
  ``±1`` for right / wrong when the truth is known; a red-flagged answer scores ``-1``, except one
  the round's own limits caused (``Answer.client_caused``: cut off at the request's ``max_tokens``
  or ``stop``, or not matching the request's JSON Schema), which is neither scored nor slashed;
* **reputation** ``ρ`` (log scale, the prior is 0) moves as ``ρ ← (1 − λ)·ρ + η·s̄`` with ``s̄``
  the node's mean score over its roles in that round, and ``η`` ten times larger on rounds whose
  answer is known (spot checks) than on live rounds judged by consensus alone — a consensus can be
  captured by colluders, the truth cannot: it decays toward the prior, follows recent evidence,
  and stays within ``±η_truth/λ``;
* **influence** — the weight of a node's verdicts in Bradley–Terry and of its answers in the vote
  count — is ``w(ρ) = w_min + (w_max − w_min)·σ(ρ + c)`` with ``c`` chosen so that ``w(0) = 1``:
  bounded, so that no single node can dominate however long its record;
* **stake** is a slashable deposit in points made at admission; slashes for red-flagged output,
  for verdicts that contradict a clear consensus in both orders, and for failed spot checks;
  passed spot checks earn a little back. A node counts in a round only when it is **admitted**
  and its stake is at least the minimum.

:class:`TrustState` is a pure state machine over ledger entries: :meth:`TrustState.replay` of the
same entries always gives the same numbers, and every ``reputation`` entry records the value the
coordinator computed, which replay checks (:meth:`TrustState.apply` raises on a mismatch).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from pydantic import Field, model_validator

from swarmrank.errors import ReplayError
from swarmrank.options import options
from swarmrank.result import RoundResult
from swarmrank.wire import digest

__all__ = ["NodeTrust", "RoundScore", "TrustParams", "TrustState", "influence", "round_digest", "score_round"]

#: Red-flag reasons start with one of these (:func:`swarmrank.redflag.red_flag`); any other exclusion
#: is a failed call (timeout, error), which costs reputation but is not slashed.
RED_FLAG_PREFIXES = ("empty", "over-long", "malformed", "refused", "injection")


@options
class TrustParams:
    """The constants of the rule; the defaults are what ``docs/trust.md`` discusses. A swarm
    config's ``[trust]`` section sets any of them by name (next to ``enabled``, ``spot_check_rate``
    and ``exam_level``)."""

    eta: Annotated[float, Field(gt=0)] = 0.05              # learning rate on the log-scale reputation, live rounds
    eta_truth: Annotated[float, Field(gt=0)] = 0.5         # learning rate on rounds whose answer is known
    decay: Annotated[float, Field(gt=0, lt=1)] = 0.01      # pull toward the prior per round taken part in
    w_min: Annotated[float, Field(gt=0, lt=1)] = 0.1       # influence bounds (a neutral node has 1)
    w_max: Annotated[float, Field(gt=1)] = 3.0
    min_stake: Annotated[float, Field(ge=0)] = 5.0         # below this a node does not count
    deposit: Annotated[float, Field(ge=0)] = 10.0          # default stake made at admission
    max_stake: Annotated[float, Field(ge=0)] = 20.0        # spot-check rewards stop here
    clear: Annotated[float, Field(gt=0.5, lt=1)] = 0.95    # a consensus this sure (P(i beats j)) is "clear"
    slash_red_flag: float = 1.0
    slash_contradiction: float = 0.25
    slash_spot_check: float = 0.5    # a wrong answer on a spot check
    slash_spot_lie: float = 2.0      # a judge preferring a wrong answer in both orders on a spot check
    reward_spot_check: float = 0.75  # break-even on spot checks at 0.5 / (0.5 + 0.75) = 40% right
    failed_call_score: float = -0.5

    @model_validator(mode="after")
    def _stakes_in_order(self) -> TrustParams:
        if self.deposit < self.min_stake or self.max_stake < self.deposit:
            raise ValueError("trust stakes need 0 <= min_stake <= deposit <= max_stake")
        return self

    @property
    def offset(self) -> float:
        """``c`` such that ``w(0) = 1``."""
        p = (1.0 - self.w_min) / (self.w_max - self.w_min)
        return math.log(p / (1.0 - p))

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def influence(reputation: float, params: TrustParams) -> float:
    """The bounded weight of a node with this reputation (1 at the prior)."""
    x = reputation + params.offset
    sig = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
    return params.w_min + (params.w_max - params.w_min) * sig


@dataclass
class NodeTrust:
    node: str
    reputation: float = 0.0
    stake: float = 0.0
    admitted: bool = False
    rounds: int = 0
    slashed: float = 0.0
    exams: int = 0

    def eligible(self, params: TrustParams) -> bool:
        return self.admitted and self.stake >= params.min_stake - 1e-9

    def as_dict(self, params: TrustParams) -> dict[str, Any]:
        return {"node": self.node, "reputation": self.reputation, "influence": influence(self.reputation, params),
                "stake": self.stake, "admitted": self.admitted, "eligible": self.eligible(params),
                "rounds": self.rounds, "slashed": self.slashed, "exams": self.exams}


@dataclass
class TrustState:
    """Every node's reputation, stake and admission, as of ledger entry ``seq``."""

    params: TrustParams = field(default_factory=TrustParams)
    nodes: dict[str, NodeTrust] = field(default_factory=dict)
    seq: int = 0

    def node(self, node_id: str) -> NodeTrust:
        if node_id not in self.nodes:
            self.nodes[node_id] = NodeTrust(node_id)
        return self.nodes[node_id]

    def influence(self, node_id: str) -> float:
        """The node's weight in a round: 0 unless it is eligible (admitted, enough stake)."""
        state = self.nodes.get(node_id)
        if state is None or not state.eligible(self.params):
            return 0.0
        return influence(state.reputation, self.params)

    def eligible(self, node_id: str) -> bool:
        state = self.nodes.get(node_id)
        return state is not None and state.eligible(self.params)

    # -- the state machine ------------------------------------------------------------------
    def updated_reputation(self, node_id: str, score: float, *, truth: bool = False) -> float:
        """The reputation after one round with mean score ``score`` (does not change the state);
        ``truth``: the round's answer was known, so the score is evidence worth ``eta_truth``."""
        p = self.params
        rate = p.eta_truth if truth else p.eta
        return (1.0 - p.decay) * self.node(node_id).reputation + rate * max(-1.0, min(1.0, score))

    def apply(self, seq: int, kind: str, payload: Mapping[str, Any]) -> None:
        """Apply one ledger entry. Entries of other kinds (``key``, ``round``) change nothing here;
        a ``round`` entry's effects are its ``reputation``/``slash``/``stake`` entries."""
        if kind == "reputation":
            node = self.node(str(payload["node"]))
            score = max(-1.0, min(1.0, float(payload["score"])))
            if "rate" in payload and "decay" in payload:  # the constants the coordinator used
                expected = (1.0 - float(payload["decay"])) * node.reputation + float(payload["rate"]) * score
            else:
                expected = self.updated_reputation(node.node, score, truth=bool(payload.get("truth")))
            if "before" in payload and not math.isclose(float(payload["before"]), node.reputation,
                                                         rel_tol=0.0, abs_tol=1e-12):
                raise ReplayError(f"ledger entry {seq}: reputation of {node.node} was {node.reputation!r} "
                                  f"before this entry, recorded {payload['before']!r}")
            recorded = float(payload["after"])
            if not math.isclose(expected, recorded, rel_tol=0.0, abs_tol=1e-12):
                raise ReplayError(f"ledger entry {seq}: reputation of {node.node} replays to {expected!r}, "
                                  f"recorded {recorded!r}")
            node.reputation = recorded
            node.rounds += 1
        elif kind == "slash":
            node = self.node(str(payload["node"]))
            taken = min(node.stake, float(payload["amount"]))  # a stake cannot go below zero
            node.stake -= taken
            node.slashed += taken
        elif kind == "stake":
            node = self.node(str(payload["node"]))
            node.stake = min(self.params.max_stake, node.stake + float(payload["amount"]))
        elif kind == "admission":
            node = self.node(str(payload["node"]))
            node.exams += 1
            if payload.get("passed"):
                node.admitted = True
            elif payload.get("revoke"):
                node.admitted = False
        self.seq = max(self.seq, seq)

    @classmethod
    def replay(cls, entries: Iterable[Any], params: TrustParams | None = None) -> TrustState:
        """The state after ``entries`` (ledger :class:`~swarmrank.ledger.Entry` objects, in order)."""
        state = cls(params=params or TrustParams())
        state.extend(entries)
        return state

    def extend(self, entries: Iterable[Any]) -> None:
        for entry in entries:
            if entry.seq <= self.seq:
                continue
            self.apply(entry.seq, entry.kind, entry.payload)

    def copy(self) -> TrustState:
        return TrustState(params=self.params, nodes={k: replace(v) for k, v in self.nodes.items()}, seq=self.seq)


# -- scoring a round -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Slash:
    node: str
    amount: float
    reason: str


@dataclass(frozen=True)
class RoundScore:
    """What one round says about each node that took part."""

    answerers: dict[str, float]
    judges: dict[str, float]
    slashes: list[Slash]
    rewards: list[Slash]        # stake given back (passed spot checks); ``amount`` > 0

    def node_scores(self) -> dict[str, float]:
        """Each node's mean score over the roles it played."""
        parts: dict[str, list[float]] = defaultdict(list)
        for node, s in self.answerers.items():
            parts[node].append(s)
        for node, s in self.judges.items():
            parts[node].append(s)
        return {node: sum(v) / len(v) for node, v in sorted(parts.items())}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _consensus(result: RoundResult) -> list[float]:
    """Per candidate, the log of the strength the round decided with (Bradley–Terry, times the
    votes under the cluster schedule; vote shares where nothing was judged), so that
    ``σ(θᵢ − θⱼ) = sᵢ / (sᵢ + sⱼ)`` is the round's own preference between two candidates."""
    return [math.log(max(float(c.strength), 1e-9)) for c in result.candidates]


def score_round(result: RoundResult, params: TrustParams, *, correct: Mapping[str, bool] | None = None,
                spot_check: bool = False) -> RoundScore:
    """Score every node that took part in ``result``.

    ``correct`` maps candidate answers (normalised values) to right/wrong when the truth is known
    (evaluation items, admission exams, spot checks); then the truth replaces the consensus.
    ``spot_check`` marks a hidden item with a known answer: wrong answers and verdicts for the wrong
    answer in both orders are slashed, right ones rewarded.
    """
    truth = {int(i): bool(correct.get(c.answer, False)) for i, c in enumerate(result.candidates)} \
        if correct is not None else None
    log_s = _consensus(result)
    slashes: list[Slash] = []
    rewards: list[Slash] = []

    answerers: dict[str, float] = {}
    m = len(result.candidates)
    # rank by strength, equal strengths sharing their average rank (no evidence between them)
    ranks: dict[int, float] = {}
    for i in range(m):
        above = sum(1 for j in range(m) if log_s[j] > log_s[i] + 1e-12)
        tied = sum(1 for j in range(m) if abs(log_s[j] - log_s[i]) <= 1e-12)
        ranks[i] = above + (tied - 1) / 2
    flagged_answers: set[str] = set()
    final: dict[str, Any] = {}  # per node: its last answer of the first sample (a revision supersedes)
    for a in result.answers:
        if a.excluded is not None and a.excluded.startswith(RED_FLAG_PREFIXES) and a.node not in flagged_answers \
                and not a.client_caused:
            flagged_answers.add(a.node)
            slashes.append(Slash(a.node, params.slash_red_flag, f"red-flagged answer: {a.excluded}"))
        if a.sample == 0 and (a.node not in final or a.step >= final[a.node].step):
            final[a.node] = a
    for node, a in sorted(final.items()):
        if node in flagged_answers:
            answerers[node] = -1.0
        elif a.client_caused:
            continue  # the request's own limits (max_tokens, stop, its JSON Schema) excluded it: no evidence
        elif a.excluded is not None:
            answerers[node] = params.failed_call_score
        elif a.candidate is None:
            continue
        elif truth is not None:
            right = truth[a.candidate]
            answerers[node] = 1.0 if right else -1.0
            if spot_check:
                (rewards if right else slashes).append(
                    Slash(node, params.reward_spot_check if right else params.slash_spot_check,
                          "spot check answered " + ("right" if right else "wrong")))
        elif m >= 2 and max(log_s) - min(log_s) > 1e-12:
            answerers[node] = 1.0 - 2.0 * ranks[a.candidate] / (m - 1)
        else:
            answerers[node] = 0.0  # everyone agreed, or nothing told the answers apart: no evidence

    judges: dict[str, float] = {}
    agreement: dict[str, list[float]] = defaultdict(list)
    # per judge and unordered pair: the verdicts' preferred candidate in each order shown
    picks: dict[tuple[str, int, int], list[int | None]] = defaultdict(list)
    for judgment in result.judgments:
        if judgment.failed or judgment.first == judgment.second:
            continue
        first, second = judgment.first, judgment.second
        if truth is not None and truth.get(first) != truth.get(second):
            p_a = 1.0 if truth.get(first) else 0.0
        elif truth is not None:
            continue  # two wrong (or two right) answers: with the truth known, no evidence here
        else:
            p_a = _sigmoid(log_s[first] - log_s[second])
        agree = p_a if judgment.verdict == "A" else (1.0 - p_a) if judgment.verdict == "B" else 0.5
        agreement[judgment.judge].append(agree)
        key = (judgment.judge, min(first, second), max(first, second))
        picks[key].append(first if judgment.verdict == "A" else second if judgment.verdict == "B" else None)
    # a council member's ranking: every pair it put in order agrees with the consensus or not
    for ranking in result.rankings:
        order = [i for i in ranking.order if 0 <= i < m]
        for x, i in enumerate(order):
            for k in order[x + 1:]:
                if truth is not None and truth.get(i) != truth.get(k):
                    agreement[ranking.judge].append(1.0 if truth.get(i) else 0.0)
                elif truth is None:
                    agreement[ranking.judge].append(_sigmoid(log_s[i] - log_s[k]))
    for judge, values in agreement.items():
        judges[judge] = 2.0 * sum(values) / len(values) - 1.0
    # a judge whose every call failed (timeouts, errors) is unreliable, like a failed answerer
    failed_judges = {j.judge for j in result.judgments if j.failed} - set(judges)
    for judge in sorted(failed_judges):
        judges[judge] = params.failed_call_score
    flagged: set[str] = set()
    spot: dict[str, list[bool]] = defaultdict(list)  # per judge: right/wrong on right-vs-wrong pairs
    for (judge, lo, hi), chosen in sorted(picks.items()):
        if len(chosen) < 2 or chosen[0] is None or any(c != chosen[0] for c in chosen):
            continue  # not the same pick in both orders: no clear contradiction
        pick = chosen[0]
        other = hi if pick == lo else lo
        if truth is not None and truth.get(lo) != truth.get(hi):
            if spot_check:
                spot[judge].append(truth[pick])
            elif not truth[pick] and judge not in flagged:
                flagged.add(judge)
                slashes.append(Slash(judge, params.slash_contradiction,
                                     "preferred a wrong answer over the right one in both orders"))
        elif _sigmoid(log_s[other] - log_s[pick]) >= params.clear and judge not in flagged:
            flagged.add(judge)
            slashes.append(Slash(judge, params.slash_contradiction,
                                 f"contradicted a clear consensus (p = {_sigmoid(log_s[other] - log_s[pick]):.2f}) "
                                 "in both orders"))
    # a spot check is failed by one wrong answer preferred in both orders (a lie is not averaged
    # away by honest verdicts elsewhere) and passed only when every such pick was right
    for judge, results in sorted(spot.items()):
        if all(results):
            rewards.append(Slash(judge, params.reward_spot_check, "spot check judged right in both orders"))
        else:
            judges[judge] = -1.0
            slashes.append(Slash(judge, params.slash_spot_lie, "spot check: preferred a wrong answer in both orders "
                                 f"({results.count(False)} pair(s))"))
    return RoundScore(answerers=answerers, judges=judges, slashes=_merge(slashes), rewards=_merge(rewards))


def _merge(items: Sequence[Slash]) -> list[Slash]:
    """One entry per node: amounts summed, reasons joined."""
    by_node: dict[str, list[Slash]] = defaultdict(list)
    for s in items:
        by_node[s.node].append(s)
    return [Slash(node, sum(s.amount for s in group), "; ".join(dict.fromkeys(s.reason for s in group)))
            for node, group in sorted(by_node.items())]


def round_digest(result: RoundResult) -> str:
    """sha256 of the round's canonical JSON (what the ledger's round entry commits to)."""
    return digest(json.loads(result.model_dump_json()))
