"""Judge reliability estimated without ground truth, and the evidence posterior that decides peer-rank.

The model (``docs/protocols.md`` has it with its reasons)
--------------------------------------------------------
A round has candidates ``0..c-1`` (distinct normalised answers); one of them, ``z``, is taken to be
the right one.

* **Votes are the prior**: ``log P(z = i) = γ·vᵢ + const``, ``vᵢ`` the (influence-weighted) votes of
  candidate ``i``, ``γ`` what a vote is worth in nats — learnt across rounds (:meth:`JudgeBook.vote_prior`)
  from how well the votes predicted what the judges said.
* **Verdicts are the likelihood.** A judge's verdicts on one pair ``{x, y}`` (both orders; soft where
  the backend gives the verdict's distribution) have three outcomes: x picked in both orders, y
  picked in both orders, or a flip with the order. A judge picks the same answer in both orders
  with probability ρ (its decisiveness, observed), and then the right one with probability
  ``a = (1 + κ)/2`` — κ is its **discrimination**; between two wrong answers its pick is a coin.
  Each judged pair multiplies the posterior of x by ``1 + k``, of y by ``1 − k`` and of the others
  by 1, ``k = (L̄x − L̄y)/(L̄x + L̄y)`` (:func:`_likelihoods`, :func:`_effective`); a judge that always
  says "A" flips every time and moves nothing.
* **Self-interest**: a judge whose own answer is in the pair backs it with probability β whatever its
  merit, so a verdict for its own answer is weak evidence and one against it counts in full.
* **Reliability is estimated, not assumed**, as a Peer-Rank fixed point (Li et al. 2023) with the
  self-inclusion removed: judge j's pseudo-likelihood (Besag 1975) is the probability of its verdicts
  given the *other* judges' posterior of z (no votes: a wrong bloc of answerers must not teach the
  judges to follow it). κ has a posterior on :data:`KAPPA_GRID`: a point mass at 0 beside a Beta slab
  centred on what an honest judge of its consistency is worth, capped by that consistency
  (:func:`kappa_cap`: consistency bounds accuracy; a consistent liar is found out by disagreeing),
  times its decayed past rounds (:class:`JudgeBook`), times this round. The decision reads each
  judge's κ at mean − ``caution``·sd.

Everything here is pure numpy over plain data; the protocol (``swarmrank.protocols``) builds the
evidence from a round's judgments and the swarm keeps the book across rounds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from swarmrank.errors import RankingError

__all__ = [
    "AGGREGATIONS",
    "BOOK_BATCH",
    "KAPPA_GRID",
    "Decision",
    "Evidence",
    "JudgeBook",
    "JudgeEstimate",
    "PairSummary",
    "ReliabilityParams",
    "decide",
    "pool_verdicts",
]

FloatArray = NDArray[np.float64]

#: peer-rank's aggregations: this module's posterior, or the Bradley–Terry strengths times votes of 0.1
AGGREGATIONS = ("evidence", "bradley-terry")

#: The κ values the reliability posterior is kept on. Capped below 1 so that no single judge can
#: rule a candidate out (likelihood ratio at most (1 + 0.95)/(1 − 0.95) = 39 per pooled verdict).
KAPPA_MAX = 0.95
KAPPA_GRID: FloatArray = np.linspace(0.0, KAPPA_MAX, 39)
#: how many standard deviations below its posterior mean a judge's discrimination is taken when
#: the round's judges teach what a vote is worth (judges not yet shown informative teach nothing)
LOW_SD = 1.0
#: the values of γ (nats per vote) its posterior is kept on
VOTE_GRID: FloatArray = np.linspace(0.0, 3.0, 31)
#: the same grid as per-verdict accuracy r = (1 + κ)/2
ACCURACY_GRID: FloatArray = (1.0 + KAPPA_GRID) / 2.0
_LOG_FLOOR = 1e-12


@dataclass(frozen=True)
class ReliabilityParams:
    """The constants of the evidence model (``[round]`` options of the same names)."""

    vote_prior: float = 0.5        # γ: nats of evidence per (influence-weighted) vote (its prior mean when learnt)
    learn_vote_prior: bool = True  # estimate γ from past rounds: how well votes predicted the judges' verdicts
    prior_kappa: float = 0.7      # prior mean of a judge's discrimination κ
    prior_weight: float = 4.0      # the prior's worth in pseudo-observations (Beta a + b)
    prior_null: float = 0.5        # prior probability that a judge carries no information (κ = 0)
    consensus_floor: float = 0.3   # judges count at least this much in the consensus others are scored by
    self_bias: float = 0.5         # β: P(a judge backs its own answer whatever its merit)
    memory: float = 200.0          # past rounds the judge book remembers (decay 1 − 1/memory)
    iterations: int = 8            # fixed-point passes per round
    caution: float = 0.5           # decide with each judge's κ at mean − caution·sd (0: the posterior mean)
    prior_consistency: float = 0.8   # a new judge's consistency before it has shown any (caps κ: kappa_cap)
    consistency_weight: float = 2.0  # … worth this many pairs judged in both orders
    consistency_prior: bool = True   # centre a judge's prior κ on what an honest judge of its consistency is worth
    # what the user already knows: judge id → prior mean κ (no spike at 0; worth prior_weight observations)
    judge_priors: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not (self.vote_prior >= 0 and math.isfinite(self.vote_prior)):
            raise RankingError("vote_prior must be a finite number >= 0")
        if not (0.0 < self.prior_kappa < 1.0):
            raise RankingError("prior_kappa must be between 0 and 1")
        if not (self.prior_weight > 0 and math.isfinite(self.prior_weight)):
            raise RankingError("prior_weight must be a positive number")
        if not (0.0 <= self.self_bias < 1.0):
            raise RankingError("self_bias must be in [0, 1)")
        if not (0.0 <= self.prior_null < 1.0):
            raise RankingError("prior_null must be in [0, 1)")
        if not (0.0 <= self.consensus_floor <= KAPPA_MAX):
            raise RankingError(f"consensus_floor must be between 0 and {KAPPA_MAX}")
        if not (self.memory >= 1):
            raise RankingError("memory must be at least 1 round")
        if self.iterations < 1:
            raise RankingError("iterations must be at least 1")
        if isinstance(self.judge_priors, Mapping):
            object.__setattr__(self, "judge_priors", tuple(sorted(self.judge_priors.items())))
        for judge, value in self.judge_priors:
            if not (0.0 < value <= KAPPA_MAX):
                raise RankingError(f"judge_priors[{judge!r}] must be in (0, {KAPPA_MAX}], got {value!r}")

    def log_vote_prior(self) -> FloatArray:
        """log density of the prior on γ over :data:`VOTE_GRID`: exponential with mean ``vote_prior``
        (mass spread from 0 — votes tell nothing — to 3 nats a vote)."""
        mean = max(self.vote_prior, 1e-3)
        return -VOTE_GRID / mean

    def log_prior(self, judge: str | None = None, slab_mean: float | None = None) -> FloatArray:
        """log density of the prior on κ over :data:`KAPPA_GRID` (normalised on the grid): a point mass
        ``prior_null`` at κ = 0 beside a Beta slab of mean ``prior_kappa`` — or, for a judge named
        in ``judge_priors``, the Beta slab alone, at the mean given there."""
        declared = dict(self.judge_priors).get(judge) if judge is not None else None
        mean = declared if declared is not None else (self.prior_kappa if slab_mean is None else slab_mean)
        mean = min(max(mean, 0.02), 0.98)
        a = mean * self.prior_weight
        b = (1.0 - mean) * self.prior_weight
        k = np.clip(KAPPA_GRID, 1e-6, 1.0 - 1e-6)
        dens = (a - 1.0) * np.log(k) + (b - 1.0) * np.log1p(-k)
        dens = dens - np.log(np.exp(dens - dens.max()).sum()) - dens.max()  # the slab, normalised on the grid
        if self.prior_null > 0 and declared is None:
            # spike and slab: a point mass at κ = 0 (an uninformative judge) beside the Beta slab
            slab = np.log1p(-self.prior_null) + dens if self.prior_null < 1 else np.full_like(dens, -np.inf)
            slab[0] = np.logaddexp(slab[0], math.log(self.prior_null))
            return slab
        return dens


# -- pooling verdicts into evidence ----------------------------------------------------------

@dataclass(frozen=True)
class Evidence:
    """One judge's verdicts on one unordered pair of candidates ``x < y``, pooled per order shown.

    ``u_xy`` is the mean P(prefers x) over its verdicts with x shown first, ``u_yx`` the same with
    y shown first (None when that order was not judged). These are the raw verdicts: a judge's
    reliability is estimated from them, and only the decision discounts a preference of an
    interested judge for its own answer (``interested``).
    """

    judge: str
    x: int
    y: int
    u_xy: float | None
    u_yx: float | None
    verdicts: int = 1
    interested: int | None = None   # the candidate (x or y) that holds the judge's own answer, else None

    @property
    def consistency(self) -> float | None:
        """P(the same pick in both orders), None unless both orders were judged."""
        if self.u_xy is None or self.u_yx is None:
            return None
        return self.u_xy * self.u_yx + (1.0 - self.u_xy) * (1.0 - self.u_yx)

    @property
    def preference(self) -> float:
        """The pooled signed preference for x in [−1, 1] (0: none, or a flip with the order)."""
        us = [u for u in (self.u_xy, self.u_yx) if u is not None]
        return 2.0 * sum(us) / len(us) - 1.0 if us else 0.0


def pool_verdicts(verdicts: Iterable[tuple[str, int, int, float]], *,
                  own: Mapping[str, int | None] | None = None) -> tuple[list[Evidence], dict[str, float]]:
    """Pool ``(judge, first candidate, second candidate, P(first better))`` verdicts into evidence.

    Verdicts comparing a candidate with itself (two answers of one cluster under the fortytwo
    schedule) are no evidence and are dropped. ``own`` maps a judge to the candidate holding its own
    answer. Returns the evidence (sorted by judge, then pair) and each judge's rate of preferring
    the answer shown first (its position bias; 0.5 is none).
    """
    own = own or {}
    groups: dict[tuple[str, int, int], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    shown_first: dict[str, list[float]] = defaultdict(list)
    for judge, first, second, p in verdicts:
        if not (0.0 <= p <= 1.0) or math.isnan(p):
            raise RankingError(f"verdict probability {p!r} from {judge} is outside [0, 1]")
        shown_first[judge].append(p)
        if first == second:
            continue
        x, y = min(first, second), max(first, second)
        xy, yx = groups[(judge, x, y)]
        (xy if first == x else yx).append(p if first == x else 1.0 - p)  # P(prefers x)
    out: list[Evidence] = []
    for (judge, x, y), (xy, yx) in sorted(groups.items()):
        mine = own.get(judge)
        interested = mine if mine in (x, y) else None
        u_xy = sum(xy) / len(xy) if xy else None
        u_yx = sum(yx) / len(yx) if yx else None
        out.append(Evidence(judge, x, y, u_xy, u_yx, len(xy) + len(yx), interested))
    bias = {j: sum(v) / len(v) for j, v in sorted(shown_first.items())}
    return out, bias


def _masses(u_xy: FloatArray, u_yx: FloatArray, both: np.ndarray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """How much of a judge's verdicts on a pair is a pick of x in both orders, a pick of y in both
    orders, and a flip with the order (soft verdicts give fractions). A pair judged in one order only
    is a pick, by that order's verdict."""
    m_x = np.where(both, u_xy * u_yx, u_xy)
    m_y = np.where(both, (1 - u_xy) * (1 - u_yx), 1 - u_xy)
    return m_x, m_y, np.clip(1.0 - m_x - m_y, 0.0, 1.0)


def _decisiveness(m_x: FloatArray, m_y: FloatArray, both: FloatArray, judge_idx: np.ndarray,
                  n_judges: int) -> FloatArray:
    """Per judge, ρ: the share of its pairs (judged in both orders) where it picked the same answer
    both times; 1 for a judge with no such pair. Clipped to [0.05, 1]."""
    picked = np.bincount(judge_idx, weights=(m_x + m_y) * both, minlength=n_judges)
    pairs = np.bincount(judge_idx, weights=both.astype(np.float64), minlength=n_judges)
    rho = np.where(pairs > 0, picked / np.maximum(pairs, 1e-12), 1.0)
    return np.clip(rho, 0.05, 1.0)


def _likelihoods(m_x: FloatArray, m_y: FloatArray, m_i: FloatArray, rho: FloatArray, a: FloatArray,
                 bx: FloatArray, by: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """P(verdicts | z = x), P(verdicts | z = y) for every row (E) and accuracy a (G), and P(verdicts |
    neither is right) (E).

    A judge picks the same answer in both orders with probability ρ (its decisiveness, observed) and
    then the right one with probability a (its accuracy, estimated); a pick between two wrong answers
    is a coin. Consistency alone therefore says nothing about accuracy: a judge that is always
    consistent but wrong is found out by disagreeing with the others. With self-interest, a judge
    backs its own answer (``bx`` for x, ``by`` for y: β or 0) with that probability whatever its
    merit. Soft verdicts weigh the three outcomes by their masses (virtual evidence).
    """
    aa = a[None, :]
    r = rho[:, None]
    bxc, byc = bx[:, None], by[:, None]
    honest = 1.0 - bxc - byc

    def outcome(p_x: FloatArray | float, p_y: FloatArray | float) -> FloatArray:
        pick_x = bxc + honest * r * p_x
        pick_y = byc + honest * r * p_y
        flip = honest * (1.0 - r)
        return m_x[:, None] * pick_x + m_y[:, None] * pick_y + m_i[:, None] * flip

    lx = outcome(aa, 1.0 - aa)
    ly = outcome(1.0 - aa, aa)
    l0 = outcome(0.5, 0.5)[:, 0]
    return lx, ly, l0


# -- the judge book: reliability across rounds -------------------------------------------------

#: rounds in a learning batch: a batch reads the book as it was before the batch, then the batch's
#: rounds are folded in, in order — results do not depend on how many rounds of a batch run at once
BOOK_BATCH = 8

#: one evidence row of a judge as recorded in a round: (u_xy, u_yx, d), None for an order not judged
Observation = tuple[float | None, float | None, float, float, int | None]


def _pair_loglik(lx: FloatArray, ly: FloatArray, px: FloatArray, py: FloatArray, neutral: FloatArray) -> FloatArray:
    """log P(a judge's verdicts on a pair | its accuracy r) for each row (E) and r (G), given the
    other judges' posterior that x (``px``) or y (``py``) is the right answer.

    With probability 1 − px − py neither is: those verdicts say nothing about the judge (``neutral``,
    a constant in r), so pairs the others think hold no right answer do not count against a judge
    that is unsure between two wrong answers."""
    rest = np.clip(1.0 - px - py, 0.0, 1.0)[:, None] * neutral[:, None]
    return np.log(np.maximum(px[:, None] * lx + py[:, None] * ly + rest, _LOG_FLOOR))


def kappa_cap(consistency: float) -> float:
    """The highest discrimination an honest judge with this consistency can have.

    A judge whose verdict in each order is right with probability p picks the same answer in both
    orders with probability c = p² + (1 − p)², and is then right with probability p²/c; so
    p = (1 + √(2c − 1))/2 and κ ≤ 2·p²/c − 1 (0 when c ≤ ½: a coin, or a judge that mostly says "A").
    A judge that is consistent but wrong is not bounded by this: the others' verdicts find it out."""
    if consistency <= 0.5:
        return 0.0
    p = (1.0 + math.sqrt(min(1.0, 2.0 * consistency - 1.0))) / 2.0
    c = p * p + (1 - p) * (1 - p)
    return min(KAPPA_MAX, 2.0 * p * p / c - 1.0)


def _consistency(picked: float, both: float, params: ReliabilityParams) -> float:
    """A judge's consistency: its record, shrunk toward ``prior_consistency`` (worth ``consistency_weight`` pairs)."""
    return (picked + params.prior_consistency * params.consistency_weight) / (both + params.consistency_weight)


def _consistency_prior(params: ReliabilityParams, judge: str, picked: float, both: float) -> FloatArray:
    """The prior on a judge's κ given its consistency record: κ at most :func:`kappa_cap`, and the slab
    centred there when ``consistency_prior`` (what an honest judge of this consistency is worth)."""
    cap = kappa_cap(_consistency(picked, both, params))
    slab = cap if params.consistency_prior else None
    return params.log_prior(judge, slab) + _cap_log(cap)


def _cap_log(cap: float) -> FloatArray:
    """0 on the grid up to the cap (and always at κ = 0), −∞ beyond."""
    out = np.where(KAPPA_GRID <= cap + 1e-9, 0.0, -np.inf)
    out[0] = 0.0
    return out


def _consistency_counts(rows: Sequence[Observation]) -> tuple[float, float]:
    picked, both = 0.0, 0
    for r in rows:
        u_xy, u_yx = r[0], r[1]
        if u_xy is not None and u_yx is not None:
            picked += u_xy * u_yx + (1 - u_xy) * (1 - u_yx)
            both += 1
    return picked, float(both)


def _rows(rows: Sequence[Observation]) -> tuple[FloatArray, ...]:
    """(u_xy, u_yx, both orders judged, px, py, own side) arrays from recorded observations."""
    arr = np.array([[row[1] if row[0] is None else row[0], row[0] if row[1] is None else row[1],
                     float(row[0] is not None and row[1] is not None), row[2], row[3],
                     (row[4] or 0) if len(row) > 4 else 0] for row in rows], dtype=np.float64)
    return tuple(arr[:, k] for k in range(arr.shape[1]))


def _loglik(rows: Sequence[Observation], self_bias: float) -> FloatArray:
    """One judge's pseudo-log-likelihood on the grid for one round's recorded rows
    (u_xy, u_yx, px, py, own side: +1 its answer is x, −1 it is y, 0 neither)."""
    rows = [row for row in rows if row[0] is not None or row[1] is not None]
    if not rows:
        return np.zeros_like(KAPPA_GRID)
    u_xy, u_yx, both, px, py, side = _rows(rows)
    m_x, m_y, m_i = _masses(u_xy, u_yx, (both > 0).astype(np.float64))
    rho = _decisiveness(m_x, m_y, both, np.zeros(len(rows), dtype=np.intp), 1)[np.zeros(len(rows), dtype=np.intp)]
    bx = np.where(side > 0, self_bias, 0.0)
    by = np.where(side < 0, self_bias, 0.0)
    lx, ly, l0 = _likelihoods(m_x, m_y, m_i, rho, ACCURACY_GRID, bx, by)
    return _pair_loglik(lx, ly, px, py, l0).sum(axis=0)


@dataclass
class _BookEntry:
    loglik: FloatArray
    rounds: float = 0.0
    pairs: float = 0.0
    picked: float = 0.0  # pairs judged in both orders with the same pick (soft), decayed
    both: float = 0.0    # pairs judged in both orders, decayed


class JudgeBook:
    """Each judge's evidence about its discrimination from past rounds, decayed.

    A judge's entry is its pseudo-log-likelihood on :data:`KAPPA_GRID`, summed over the rounds it
    judged with weight ``(1 − 1/memory)^age``; the posterior of κ is the prior times ``exp`` of it.
    Each round records its judges' observations (:attr:`JudgeEstimate.observations`), so the book
    can be rebuilt from stored rounds and needs no table of its own.
    """

    def __init__(self, params: ReliabilityParams | None = None) -> None:
        self.params = params or ReliabilityParams()
        self._entries: dict[str, _BookEntry] = {}
        self._vote_ll: FloatArray = np.zeros_like(VOTE_GRID)
        self.rounds = 0

    def copy(self) -> JudgeBook:
        """An independent copy (what a batch of rounds reads while the original learns)."""
        other = JudgeBook(self.params)
        other._entries = {j: _BookEntry(e.loglik.copy(), e.rounds, e.pairs, e.picked, e.both)
                          for j, e in self._entries.items()}
        other._vote_ll = self._vote_ll.copy()
        other.rounds = self.rounds
        return other

    def __contains__(self, judge: object) -> bool:
        return judge in self._entries

    def judges(self) -> list[str]:
        return sorted(self._entries)

    def loglik(self, judge: str) -> FloatArray:
        entry = self._entries.get(judge)
        return entry.loglik.copy() if entry is not None else np.zeros_like(KAPPA_GRID)

    def posterior(self, judge: str) -> tuple[float, float]:
        """Mean and standard deviation of κ given the prior and the book alone."""
        picked, both = self.consistency_counts(judge)
        return _grid_moments(_consistency_prior(self.params, judge, picked, both) + self.loglik(judge))

    def add(self, judge: str, observations: Sequence[Observation]) -> None:
        """Fold one round's observations of one judge into the book."""
        decay = 1.0 - 1.0 / self.params.memory
        entry = self._entries.get(judge)
        if entry is None:
            entry = self._entries[judge] = _BookEntry(np.zeros_like(KAPPA_GRID))
        entry.loglik = decay * entry.loglik + _loglik(observations, self.params.self_bias)
        entry.rounds = decay * entry.rounds + 1.0
        entry.pairs = decay * entry.pairs + len(observations)
        picked, both = _consistency_counts(observations)
        entry.picked = decay * entry.picked + picked
        entry.both = decay * entry.both + both

    def consistency_counts(self, judge: str) -> tuple[float, float]:
        """(same pick in both orders, pairs judged in both orders), decayed, from past rounds."""
        entry = self._entries.get(judge)
        return (entry.picked, entry.both) if entry is not None else (0.0, 0.0)

    def add_round(self, reports: Iterable[Any], votes: Sequence[float | None] | None = None,
                  evidence_low: Sequence[float] | None = None) -> None:
        """Fold in one round: every judge's observations (``Decision.judges`` or a stored round's
        ``judge_reports``) and how well each candidate's ``votes`` predicted the judges' conservative
        ``evidence_low`` (the likelihood of γ)."""
        for report in reports:
            self.add(report.judge, [tuple(o) for o in report.observations])
        if votes is not None and evidence_low and len(evidence_low) == len(votes) > 1 \
                and all(v is not None for v in votes):
            decay = 1.0 - 1.0 / self.params.memory
            self._vote_ll = decay * self._vote_ll + _vote_loglik(np.asarray(votes, dtype=np.float64),
                                                                 np.asarray(evidence_low, dtype=np.float64))
        self.rounds += 1

    def learn(self, result: Any) -> None:
        """Fold in a :class:`~swarmrank.result.RoundResult` (anything with ``judge_reports``,
        ``evidence_low`` and ``candidates`` carrying ``votes``)."""
        self.add_round(result.judge_reports, [c.votes for c in result.candidates], result.evidence_low)

    def vote_prior(self) -> float:
        """The posterior mean of γ given the prior and past rounds (``vote_prior`` when not learnt)."""
        if not self.params.learn_vote_prior:
            return self.params.vote_prior
        log_post = self.params.log_vote_prior() + self._vote_ll
        w = np.exp(log_post - log_post.max())
        return float((w / w.sum() * VOTE_GRID).sum())

    def stats(self, judge: str) -> dict[str, float]:
        entry = self._entries.get(judge)
        mean, sd = self.posterior(judge)
        return {"kappa": mean, "kappa_sd": sd, "rounds": entry.rounds if entry else 0.0,
                "pairs": entry.pairs if entry else 0.0}


def _vote_loglik(votes: FloatArray, evidence: FloatArray) -> FloatArray:
    """log Σᵢ softmax(γ·v)ᵢ·exp(eᵢ) for every γ on the grid: the marginal likelihood of the judges'
    verdicts when the votes, weighted by γ, are the prior. ``evidence`` is the judges' conservative
    log-likelihood (:attr:`Decision.evidence_low`: each judge at the low end of its credible
    discrimination), so judges not yet shown to be informative teach nothing about γ."""
    logits = np.outer(VOTE_GRID, votes)                      # G × c
    logits = logits - logits.max(axis=1, keepdims=True)
    log_prior = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    z = log_prior + (evidence - evidence.max())[None, :]
    return np.log(np.exp(z).sum(axis=1))


def _grid_weights(log_post: FloatArray) -> FloatArray:
    w = np.exp(log_post - log_post.max(axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)


def _grid_moments(log_post: FloatArray) -> tuple[float, float]:
    w = _grid_weights(log_post)
    mean = float((w * KAPPA_GRID).sum())
    var = float((w * (KAPPA_GRID - mean) ** 2).sum())
    return mean, math.sqrt(max(var, 0.0))


# -- one round's decision -------------------------------------------------------------------

@dataclass(frozen=True)
class JudgeEstimate:
    """What a round says about one judge."""

    judge: str
    kappa: float              # posterior mean discrimination (2·accuracy − 1) after this round
    kappa_sd: float
    prior_kappa: float        # the same from the prior and the book alone, before this round
    pairs: int                # pairs it judged
    interested_pairs: int     # of which held its own answer
    consistency: float | None  # mean P(same pick in both orders) over pairs judged in both orders
    says_first: float | None  # share of its verdicts for the answer shown first (0.5: no position bias)
    agreement: float | None   # agreement with the other judges' consensus, 0.5 + ½·Σ s·d / Σ |d|
    weight: float             # its influence (1 unless reputation sets it)
    observations: tuple[Observation, ...] = field(repr=False, default=())  # (u_xy, u_yx, px, py, own) per pair


@dataclass(frozen=True)
class PairSummary:
    """What was weighed on one contested pair."""

    x: int
    y: int
    judges: int
    interested: int           # judges whose own answer is in the pair
    evidence: float           # Σ w·log((1 + k)/(1 − k)): nats for x over y (negative: for y)


@dataclass(frozen=True)
class Decision:
    posterior: FloatArray      # P(z = i | votes, verdicts), sums to 1
    log_prior: FloatArray      # γ·v (centred)
    evidence: FloatArray       # the judges' log-likelihood per candidate (nats, centred)
    judges: tuple[JudgeEstimate, ...]
    pairs: tuple[PairSummary, ...]
    evidence_low: FloatArray | None = None  # the judges' log-likelihood, each judge at mean − LOW_SD·sd (centred)

    @property
    def leader(self) -> int:
        return int(np.argmax(self.posterior))


def _softmax(x: FloatArray, axis: int = -1) -> FloatArray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _contributions(n: int, judge_idx: np.ndarray, xs: np.ndarray, ys: np.ndarray, k_eff: FloatArray,
                   w: FloatArray, n_judges: int) -> tuple[FloatArray, FloatArray]:
    """Per judge and candidate (J × n) log-likelihood contributions, and their total over judges."""
    to_x = w[judge_idx] * np.log(np.maximum(1.0 + k_eff, _LOG_FLOOR))
    to_y = w[judge_idx] * np.log(np.maximum(1.0 - k_eff, _LOG_FLOOR))
    per = np.zeros((n_judges, n))
    np.add.at(per, (judge_idx, xs), to_x)
    np.add.at(per, (judge_idx, ys), to_y)
    return per, per.sum(axis=0)


def _effective(lx: FloatArray, ly: FloatArray, grid_w: FloatArray) -> FloatArray:
    """k = (L̄x − L̄y)/(L̄x + L̄y) per row, with L̄ the likelihood averaged over the judge's κ posterior."""
    mx = (lx * grid_w).sum(axis=1)
    my = (ly * grid_w).sum(axis=1)
    return np.clip((mx - my) / np.maximum(mx + my, _LOG_FLOOR), -KAPPA_MAX, KAPPA_MAX)


def _point_mass(moments: Sequence[tuple[float, float]], sds: float) -> FloatArray:
    """Per judge, grid weights that put all mass on the grid point at or below mean − sds·sd (≥ 0)."""
    low = np.array([max(0.0, m - sds * s) for m, s in moments])
    point = np.zeros((len(moments), KAPPA_GRID.size))
    point[np.arange(len(moments)), np.searchsorted(KAPPA_GRID, low, side="right") - 1] = 1.0
    return point


def decide(n_candidates: int, votes: Sequence[float] | FloatArray, evidence: Sequence[Evidence], *,
           params: ReliabilityParams | None = None, book: JudgeBook | None = None,
           weights: Mapping[str, float] | None = None,
           verdict_bias: Mapping[str, float] | None = None) -> Decision:
    """The posterior over ``n_candidates`` from ``votes`` and pooled ``evidence``, with every
    judge's discrimination estimated on the way (see the module docstring)."""
    params = params or ReliabilityParams()
    n = int(n_candidates)
    if n < 1:
        raise RankingError("decide needs at least one candidate")
    v = np.asarray(votes, dtype=np.float64)
    if v.shape != (n,) or not np.all(np.isfinite(v)) or np.any(v < 0):
        raise RankingError(f"votes must be {n} finite non-negative numbers")
    gamma = book.vote_prior() if book is not None else params.vote_prior
    log_prior = gamma * v
    log_prior = log_prior - log_prior.mean()
    for e in evidence:
        if not (0 <= e.x < n and 0 <= e.y < n) or e.x == e.y:
            raise RankingError(f"evidence pair ({e.x}, {e.y}) is not two distinct candidates of {n}")
    weights = weights or {}
    names = sorted({e.judge for e in evidence})
    if not names:
        return Decision(_softmax(log_prior), log_prior, np.zeros(n), (), ())
    index = {j: k for k, j in enumerate(names)}
    J, E = len(names), len(evidence)
    judge_idx = np.array([index[e.judge] for e in evidence], dtype=np.intp)
    xs = np.array([e.x for e in evidence], dtype=np.intp)
    ys = np.array([e.y for e in evidence], dtype=np.intp)
    u_xy = np.array([e.u_yx if e.u_xy is None else e.u_xy for e in evidence], dtype=np.float64)
    u_yx = np.array([e.u_xy if e.u_yx is None else e.u_yx for e in evidence], dtype=np.float64)
    both = np.array([e.u_xy is not None and e.u_yx is not None for e in evidence])
    w = np.array([float(weights.get(j, 1.0)) for j in names], dtype=np.float64)
    # a judge whose own answer is in the pair backs it with probability self_bias whatever its merit
    own_side = np.array([0 if e.interested is None else (1 if e.interested == e.x else -1) for e in evidence])
    bx = np.where(own_side > 0, params.self_bias, 0.0)
    by = np.where(own_side < 0, params.self_bias, 0.0)
    m_x, m_y, m_i = _masses(u_xy, u_yx, both)
    rho = _decisiveness(m_x, m_y, both, judge_idx, len(names))[judge_idx]
    lx, ly, neutral = _likelihoods(m_x, m_y, m_i, rho, ACCURACY_GRID, bx, by)  # E × G, E × G, E
    # consistency bounds what a judge can be worth: its record (past rounds and this one) caps κ
    past = [book.consistency_counts(j) if book is not None else (0.0, 0.0) for j in names]
    now_picked = np.bincount(judge_idx, weights=(m_x + m_y) * both, minlength=J)
    now_both = np.bincount(judge_idx, weights=both.astype(np.float64), minlength=J)
    prior_ll = np.stack([_consistency_prior(params, j, past[k][0] + now_picked[k], past[k][1] + now_both[k])
                         + (book.loglik(j) if book is not None else 0.0) for k, j in enumerate(names)])
    prior_kappa = (_grid_weights(prior_ll) * KAPPA_GRID).sum(axis=1)
    floor_row = np.zeros_like(KAPPA_GRID)
    floor_row[np.searchsorted(KAPPA_GRID, params.consensus_floor)] = 1.0
    half_row = np.zeros_like(KAPPA_GRID)
    half_row[np.searchsorted(KAPPA_GRID, params.consensus_floor / 2)] = 1.0
    post_ll = prior_ll
    d = px = py = np.zeros(E)
    grid_w = _grid_weights(prior_ll)
    for _ in range(params.iterations):
        # the judges-only posterior without judge j (flat prior, no votes); each other judge below the
        # floor counts as a judge of discrimination `consensus_floor` while still unproven (its mean +
        # 1 sd reaches the floor), so that a consensus of new judges is not silenced, and at half the
        # floor once shown to be below it: a known liar must not drag the others' consensus far toward
        # itself (at the full floor one liar made two 0.95 judges look like coins), yet honest judges
        # that a consistent colluder has pushed down must not lose all say either (at no floor they
        # did, and the colluder took the swarm: the resilience benchmark, 0.33 colluding)
        mean_k = (grid_w * KAPPA_GRID).sum(axis=1)
        sd_k = np.sqrt(np.maximum((grid_w * KAPPA_GRID**2).sum(axis=1) - mean_k**2, 0.0))
        low = mean_k < params.consensus_floor
        unproven = low & (mean_k + sd_k >= params.consensus_floor)
        cons_w = np.where(unproven[:, None], floor_row[None, :], np.where(low[:, None], half_row[None, :], grid_w))
        per_c, total_c = _contributions(n, judge_idx, xs, ys, _effective(lx, ly, cons_w[judge_idx]), w, J)
        loo = _softmax(total_c[None, :] - per_c, axis=1)
        px, py = loo[judge_idx, xs], loo[judge_idx, ys]
        d = px - py
        ll = _pair_loglik(lx, ly, px, py, neutral)  # E × G
        # sum each judge's rows (no BLAS: a matrix product here can stall on a busy machine)
        per_judge = np.zeros_like(prior_ll)
        np.add.at(per_judge, judge_idx, ll)
        post_ll = prior_ll + per_judge
        new_w = _grid_weights(post_ll)
        done = float(np.max(np.abs(new_w - grid_w))) < 1e-9
        grid_w = new_w
        if done:
            break
    moments = [_grid_moments(row) for row in post_ll]
    if params.caution > 0:
        k_eff = _effective(lx, ly, _point_mass(moments, params.caution)[judge_idx])
    else:
        k_eff = _effective(lx, ly, grid_w[judge_idx])
    _, total = _contributions(n, judge_idx, xs, ys, k_eff, w, J)
    posterior = _softmax(log_prior + total)
    # the judges' evidence with each judge at the low end of its credible discrimination
    _, total_low = _contributions(n, judge_idx, xs, ys, _effective(lx, ly, _point_mass(moments, LOW_SD)[judge_idx]),
                                  w, J)
    pref = np.array([e.preference for e in evidence], dtype=np.float64)
    reports: list[JudgeEstimate] = []
    for k, name in enumerate(names):
        mask = judge_idx == k
        rows = [e for e, m in zip(evidence, mask) if m]
        cons = [c for c in (e.consistency for e in rows) if c is not None]
        denom = float(np.sum(np.abs(d[mask])))
        agreement = 0.5 + 0.5 * float(np.sum(pref[mask] * d[mask])) / denom if denom > 1e-12 else None
        mean, sd = _grid_moments(post_ll[k])
        reports.append(JudgeEstimate(
            judge=name, kappa=mean, kappa_sd=sd, prior_kappa=float(prior_kappa[k]),
            pairs=len(rows), interested_pairs=sum(1 for e in rows if e.interested is not None),
            consistency=sum(cons) / len(cons) if cons else None,
            says_first=(verdict_bias or {}).get(name), agreement=agreement, weight=float(w[k]),
            observations=tuple((e.u_xy, e.u_yx, float(a), float(b), int(s))
                               for e, a, b, s in zip(rows, px[mask], py[mask], own_side[mask]))))
    by_pair: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, e in enumerate(evidence):
        by_pair[(e.x, e.y)].append(i)
    pairs: list[PairSummary] = []
    for (x, y), rows_i in sorted(by_pair.items()):
        nats = float(sum(w[judge_idx[i]] * (math.log(max(1.0 + k_eff[i], _LOG_FLOOR))
                                            - math.log(max(1.0 - k_eff[i], _LOG_FLOOR))) for i in rows_i))
        pairs.append(PairSummary(x=x, y=y, judges=len({evidence[i].judge for i in rows_i}),
                                 interested=sum(1 for i in rows_i if evidence[i].interested is not None),
                                 evidence=nats))
    return Decision(posterior, log_prior, total - total.mean(), tuple(reports), tuple(pairs),
                    total_low - total_low.mean())
