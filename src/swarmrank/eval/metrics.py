"""Scoring for the evaluation harness: accuracy with intervals, oracle ceiling, paired tests, cost.

The harness runs several consensus protocols (and every single node) over the same labelled items
and records, per (system, item), whether the answer was correct. Every function here is pure: it
takes plain sequences or numpy arrays, returns new values, performs no I/O and keeps no global
state (bootstrap resampling uses its own seeded generator). Bad input raises
:class:`swarmrank.errors.RankingError` with a one-line message.

Sources
-------
* B. Efron (1979), "Bootstrap methods: another look at the jackknife", *Annals of Statistics*
  7(1):1–26, and B. Efron and R. J. Tibshirani (1993), *An Introduction to the Bootstrap*, ch. 13
  — the percentile bootstrap interval, resampling items with replacement.
* E. B. Wilson (1927), "Probable inference, the law of succession, and statistical inference",
  *Journal of the American Statistical Association* 22(158):209–212 — the score interval for a
  binomial proportion, used as a closed-form cross-check of the bootstrap.
* Q. McNemar (1947), "Note on the sampling error of the difference between correlated proportions
  or percentages", *Psychometrika* 12(2):153–157 — comparing two systems on the same items through
  the discordant pairs only; the exact form is a two-sided binomial test with ``p = 1/2`` on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import binomtest, bootstrap, norm

from swarmrank.errors import RankingError

__all__ = [
    "Accuracy",
    "CostPerQuestion",
    "PairedTest",
    "accuracy",
    "best_single",
    "cost_per_question",
    "gap_closed",
    "oracle",
    "paired_difference",
    "wilson_interval",
]

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]

# The bootstrap draws an (n_boot, n) index matrix; it is generated in row blocks of at most this
# many entries so memory stays bounded. numpy's Generator consumes its stream element by element,
# so the blocks give exactly the same resamples as one (n_boot, n) draw.
_MAX_BLOCK_ENTRIES = 1 << 22
# |oracle - majority| at or below this counts as "no gap" (accuracies are ratios of small counts).
_GAP_TOL = 1e-12


# --------------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------------


def _as_bool_vector(values: Sequence[bool] | ArrayLike, what: str) -> BoolArray:
    """A non-empty 1-D boolean copy of ``values``; integers are accepted when they are all 0 or 1."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise RankingError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise RankingError(f"{what} has no items")
    if arr.dtype == np.bool_:
        return arr.copy()
    if np.issubdtype(arr.dtype, np.integer) and bool(np.all((arr == 0) | (arr == 1))):
        return arr.astype(np.bool_)
    raise RankingError(f"{what} must hold booleans (or 0/1 integers), got dtype {arr.dtype}")


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise RankingError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return c


def _check_n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise RankingError(f"n_boot must be a positive integer, got {n_boot!r}")
    return int(n_boot)


def _node_table(correct_by_node: Mapping[str, Sequence[bool] | ArrayLike]) -> dict[str, BoolArray]:
    """Check a node → per-item correctness mapping: non-empty, boolean vectors of one length."""
    if len(correct_by_node) == 0:
        raise RankingError("no nodes given")
    table = {name: _as_bool_vector(v, f"node {name!r}") for name, v in correct_by_node.items()}
    lengths = {name: v.size for name, v in table.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={n}" for name, n in sorted(lengths.items()))
        raise RankingError(f"nodes were scored on different numbers of items: {detail}")
    return table


def _percentile_bootstrap(values: FloatArray, n_boot: int, seed: int, confidence: float) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``values`` (scipy.stats.bootstrap).

    ``n_boot`` resamples with replacement, drawn from a generator seeded with ``seed`` as one
    ``(n_boot, n)`` index matrix — in row blocks of at most ``_MAX_BLOCK_ENTRIES`` entries, which
    gives the same resamples — and the ``(1±confidence)/2`` quantiles of their means.
    """
    n = values.size
    if n == 1:  # every resample is the one value (scipy wants two observations)
        return float(values[0]), float(values[0])
    result = bootstrap((values,), np.mean, n_resamples=n_boot, batch=max(1, _MAX_BLOCK_ENTRIES // n),
                       vectorized=True, confidence_level=confidence, method="percentile",
                       rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


# --------------------------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accuracy:
    """Accuracy of one system over a set of items, with a confidence interval.

    ``mean`` is ``correct / total``; ``[low, high]`` is the interval at the requested confidence
    (95% by default) and ``method`` says how it was computed.
    """

    correct: int
    total: int
    mean: float
    low: float
    high: float
    method: str


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson (1927) score interval for a binomial proportion with ``k`` successes in ``n`` trials.

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = k/n`` and ``z`` the
    two-sided normal quantile. Unlike the Wald interval it stays inside [0, 1] and is not
    degenerate at ``k = 0`` or ``k = n``; the end at 0 (or 1) is exact there.
    """
    confidence = _check_confidence(confidence)
    if isinstance(n, bool) or isinstance(k, bool):
        raise RankingError("k and n must be integers, not booleans")
    if n < 1:
        raise RankingError(f"wilson_interval needs n >= 1, got n={n}")
    if not 0 <= k <= n:
        raise RankingError(f"wilson_interval needs 0 <= k <= n, got k={k}, n={n}")
    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = k / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n)) / (1.0 + z2n)
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def accuracy(
    correct: Sequence[bool] | ArrayLike,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    method: Literal["bootstrap", "wilson"] = "bootstrap",
) -> Accuracy:
    """Accuracy of one system with a confidence interval over items.

    With ``method="bootstrap"`` (the default) the interval is the percentile bootstrap (Efron
    1979; Efron & Tibshirani 1993, ch. 13): ``n_boot`` resamples of the items with replacement,
    drawn as one seeded ``(n_boot, n)`` index matrix, and the ``(1±confidence)/2`` quantiles of
    their means. With ``method="wilson"`` it is the closed-form Wilson (1927) score interval.
    When every item is correct (or none is) every resample agrees and the interval collapses onto
    the mean.
    """
    confidence = _check_confidence(confidence)
    x = _as_bool_vector(correct, "correct")
    k, n = int(np.count_nonzero(x)), int(x.size)
    mean = k / n
    if method == "bootstrap":
        n_boot = _check_n_boot(n_boot)
        low, high = _percentile_bootstrap(x.astype(np.float64), n_boot, seed, confidence)
        label = f"percentile bootstrap ({n_boot} resamples, seed {seed})"
    elif method == "wilson":
        low, high = wilson_interval(k, n, confidence)
        label = "wilson score"
    else:
        raise RankingError(f"unknown interval method {method!r} (expected 'bootstrap' or 'wilson')")
    return Accuracy(correct=k, total=n, mean=mean, low=low, high=high, method=label)


# --------------------------------------------------------------------------------------------
# Oracle and best single node
# --------------------------------------------------------------------------------------------


def oracle(correct_by_node: Mapping[str, Sequence[bool] | ArrayLike]) -> BoolArray:
    """Per item, whether at least one node answered correctly.

    Its mean is the ceiling for any protocol that selects one of the nodes' answers: no selection
    rule can be right on an item where every candidate is wrong. All nodes must be scored on the
    same items, in the same order.
    """
    table = _node_table(correct_by_node)
    return np.logical_or.reduce(np.vstack(list(table.values())), axis=0)


def best_single(correct_by_node: Mapping[str, Sequence[bool] | ArrayLike]) -> tuple[str, float]:
    """The single node with the highest accuracy, and that accuracy.

    Ties go to the first name in sorted order, so the choice does not depend on mapping order.
    Counts (not floats) are compared, since every node is scored on the same items.
    """
    table = _node_table(correct_by_node)
    name = min(sorted(table), key=lambda node: -int(np.count_nonzero(table[node])))
    return name, float(np.count_nonzero(table[name]) / table[name].size)


# --------------------------------------------------------------------------------------------
# Paired comparison of two systems
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedTest:
    """Two systems compared on the same items (see :func:`paired_difference`).

    ``diff`` is ``mean(a) - mean(b)``; ``[low, high]`` its paired bootstrap interval; ``a_only`` /
    ``b_only`` count the items that only ``a`` / only ``b`` got right; ``p_value`` is the exact
    two-sided McNemar (1947) test; ``n`` is the number of items.
    """

    diff: float
    low: float
    high: float
    a_only: int
    b_only: int
    p_value: float
    n: int


def paired_difference(
    a: Sequence[bool] | ArrayLike,
    b: Sequence[bool] | ArrayLike,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> PairedTest:
    """Compare two systems scored on the same items.

    The interval for ``mean(a) - mean(b)`` is a paired percentile bootstrap: items (not the two
    systems separately) are resampled, so the correlation between the systems is kept. The
    p-value is the exact McNemar (1947) test: under "no difference" each discordant item is
    equally likely to favour either system, so ``a_only ~ Binomial(a_only + b_only, 1/2)`` and the
    p-value is scipy's two-sided binomial test; it is 1.0 when there are no discordant items.
    """
    confidence = _check_confidence(confidence)
    n_boot = _check_n_boot(n_boot)
    xa = _as_bool_vector(a, "a")
    xb = _as_bool_vector(b, "b")
    if xa.size != xb.size:
        raise RankingError(f"a and b were scored on different numbers of items: {xa.size} vs {xb.size}")
    n = int(xa.size)
    a_only = int(np.count_nonzero(xa & ~xb))
    b_only = int(np.count_nonzero(xb & ~xa))
    diff = (a_only - b_only) / n
    d = xa.astype(np.float64) - xb.astype(np.float64)
    low, high = _percentile_bootstrap(d, n_boot, seed, confidence)
    discordant = a_only + b_only
    p_value = 1.0 if discordant == 0 else min(1.0, float(binomtest(a_only, discordant, 0.5).pvalue))
    return PairedTest(diff=diff, low=low, high=high, a_only=a_only, b_only=b_only, p_value=p_value, n=n)


# --------------------------------------------------------------------------------------------
# Gap closed
# --------------------------------------------------------------------------------------------


def gap_closed(protocol_acc: float, majority_acc: float, oracle_acc: float) -> float | None:
    """Fraction of the majority-vote → oracle gap that a protocol closes: ``(p - m) / (o - m)``.

    0 means no better than majority vote, 1 means as good as the oracle; negative values mean
    worse than majority vote, and values above 1 are possible for protocols that can write an
    answer no node gave. Returns ``None`` when there is no gap (``o == m``). An oracle below
    majority vote is impossible on the same items (majority picks a node's answer) and is rejected.
    """
    values = {"protocol_acc": protocol_acc, "majority_acc": majority_acc, "oracle_acc": oracle_acc}
    for name, v in values.items():
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise RankingError(f"{name} must be an accuracy in [0, 1], got {v!r}")
    gap = oracle_acc - majority_acc
    if abs(gap) <= _GAP_TOL:
        return None
    if gap < 0:
        raise RankingError(f"oracle accuracy {oracle_acc} is below majority accuracy {majority_acc}")
    return (protocol_acc - majority_acc) / gap


# --------------------------------------------------------------------------------------------
# Cost
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostPerQuestion:
    """Mean cost of answering one item: model calls, tokens and wall-clock seconds."""

    n: int
    calls: float
    prompt_tokens: float
    completion_tokens: float
    total_tokens: float
    seconds: float


def cost_per_question(
    calls: Sequence[float] | ArrayLike,
    prompt_tokens: Sequence[float] | ArrayLike,
    completion_tokens: Sequence[float] | ArrayLike,
    seconds: Sequence[float] | ArrayLike,
) -> CostPerQuestion:
    """Per-item means of the cost columns; all four must have one finite, non-negative value per item."""
    columns: dict[str, FloatArray] = {}
    for name, values in (
        ("calls", calls),
        ("prompt_tokens", prompt_tokens),
        ("completion_tokens", completion_tokens),
        ("seconds", seconds),
    ):
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise RankingError(f"{name} must be one-dimensional, got shape {arr.shape}")
        if arr.size == 0:
            raise RankingError(f"{name} has no items")
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise RankingError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        if not bool(np.all(np.isfinite(arr))) or bool(np.any(arr < 0)):
            raise RankingError(f"{name} must be finite and non-negative")
        columns[name] = arr
    lengths = {name: arr.size for name, arr in columns.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise RankingError(f"cost columns have different numbers of items: {detail}")
    prompt = float(columns["prompt_tokens"].mean())
    completion = float(columns["completion_tokens"].mean())
    return CostPerQuestion(
        n=int(columns["calls"].size),
        calls=float(columns["calls"].mean()),
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=float((columns["prompt_tokens"] + columns["completion_tokens"]).mean()),
        seconds=float(columns["seconds"].mean()),
    )
