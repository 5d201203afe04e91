"""Numerical aggregation of judgments and votes: Bradley–Terry, vote shares, ahead-by-k, mean rank.

Every function here is pure: it takes plain numbers or numpy arrays, returns new arrays, performs
no I/O and keeps no global state. Bad input raises :class:`swarmrank.errors.RankingError` with a
one-line message.

Sources
-------
* R. A. Bradley and M. E. Terry (1952), "Rank analysis of incomplete block designs: I. The method
  of paired comparisons", *Biometrika* 39(3/4):324–345 — the pairwise model
  ``P(i beats j) = sigma(theta_i - theta_j)``.
* L. R. Ford Jr. (1957), "Solution of a ranking problem from binary comparisons", *American
  Mathematical Monthly* 64(8):28–33, and D. R. Hunter (2004), "MM algorithms for generalized
  Bradley–Terry models", *Annals of Statistics* 32(1):384–406 — the maximum-likelihood estimate
  exists iff the directed "i beat j" graph is strongly connected.
* R. D. Luce (1959), *Individual Choice Behavior* — the choice probability of item ``i`` from the
  whole field is ``exp(theta_i) / sum_j exp(theta_j)``.
* J. C.-Y. Chen, S. Saha and M. Bansal (2023), "ReConcile: Round-Table Conference Improves
  Reasoning via Consensus among Diverse LLMs", arXiv:2309.13007 — confidence re-binning for the
  weighted vote.
* E. Meyerson et al. (2025), "Solving a Million-Step LLM Task with Zero Errors" (MAKER) —
  first-to-ahead-by-k voting.
* A. Karpathy, ``llm-council`` (2025) — aggregate peer rankings by mean position.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import lapack
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, log_expit

from swarmrank.errors import RankingError

__all__ = [
    "AheadByK",
    "BTFit",
    "bradley_terry",
    "comparisons_from_verdicts",
    "council_order",
    "majority",
    "mean_rank",
    "reconcile_bin",
    "weighted_vote",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

# Newton steps whose largest component is below this are taken in full: the iterate is inside
# the quadratic-convergence region and the change in the objective is below rounding noise.
_FULL_STEP_BELOW = 1e-4
# Armijo sufficient-increase constant and the number of step halvings tried per iteration.
_ARMIJO_C = 1e-4
_MAX_HALVINGS = 60
# Longest step (Euclidean norm of the change in theta) tried before backtracking: e^10 is a
# 22,000-fold change in odds, beyond any well-behaved Newton step here.
_MAX_STEP = 10.0
# Relative size of the objective's rounding noise below which the line search switches to the
# gradient-based approximate Armijo test (Hager & Zhang 2005, SIAM J. Optim. 16(1):170-192).
_OBJECTIVE_NOISE = 1e-12
# A gradient component within this many ulps of its terms' magnitude is rounding noise.
_GRAD_FLOOR_ULPS = 16.0
_EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------
# Bradley–Terry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BTFit:
    """The result of :func:`bradley_terry`.

    Attributes
    ----------
    strengths:
        ``exp(theta) / sum(exp(theta))`` — positive, sums to 1 over the real items.
    log_strengths:
        ``theta``. With ``prior > 0`` the scale is anchored by the prior's virtual reference item,
        whose theta is 0; with ``prior == 0`` theta is centred (mean 0).
    stderr:
        Standard error of each theta relative to the mean theta (the contrasts that decide the
        strengths), from the inverse Hessian of the penalised negative log-likelihood at the
        optimum (the Laplace / observed-information approximation), projected onto centred
        thetas. The common shift that only the prior's reference item pins down is left out: it
        would otherwise dominate every error bar. With ``prior == 0`` the Moore–Penrose
        pseudo-inverse is used.
    win_prob:
        Luce (1959) choice probability of each item against the whole field,
        ``P(i chosen) = exp(theta_i) / sum_j exp(theta_j)``. Numerically identical to
        ``strengths``; kept as a separate field so callers can say what they mean.
    iterations:
        Newton iterations performed (0 when the starting point is already optimal, e.g. no
        comparisons, or a perfectly balanced design).
    converged:
        Whether, within ``max_iter`` iterations, the largest Newton step fell below ``tol`` — or
        progress stopped at floating-point precision: the gradient reached the rounding floor of
        its terms, or the steps stopped shrinking while the predicted gain (half the Newton
        decrement) was below the objective's rounding. The latter two happen only with extreme
        weights or a tiny prior, where some theta is barely determined by the data.

    The arrays are read-only. Equality is identity (``eq=False``): numpy arrays have no single
    truth value, so a field-wise ``==`` would raise.
    """

    strengths: FloatArray
    log_strengths: FloatArray
    stderr: FloatArray
    win_prob: FloatArray
    iterations: int
    converged: bool

    def ranking(self) -> IntArray:
        """Item indices sorted best first; exactly equal strengths keep the lower index first."""
        return np.argsort(-self.log_strengths, kind="stable").astype(np.intp)


def _fail(message: str) -> RankingError:
    return RankingError(message)


def _as_index_array(values: ArrayLike, name: str, n_items: int) -> IntArray:
    """Validate a 1-D array of item indices in ``[0, n_items)``."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise _fail(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.intp)
    if arr.dtype.kind == "b":
        raise _fail(f"{name} must hold integer item indices, got booleans")
    if arr.dtype.kind not in "iuf":
        raise _fail(f"{name} must hold integer item indices, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise _fail(f"{name} contains NaN or infinite values")
        if not np.all(arr == np.round(arr)):
            raise _fail(f"{name} must hold integer item indices, got non-integral floats")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= n_items:
        bad = lo if lo < 0 else hi
        raise _fail(f"{name} holds index {bad!r} outside [0, {n_items})")
    return arr.astype(np.intp, copy=False)


def _as_weight_array(values: ArrayLike | None, name: str, size: int) -> FloatArray:
    """Validate a 1-D array of finite, non-negative weights of the given length."""
    if values is None:
        return np.ones(size, dtype=np.float64)
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise _fail(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size != size:
        raise _fail(f"{name} has length {arr.size}, expected {size}")
    if arr.size and arr.dtype.kind not in "biuf":
        raise _fail(f"{name} must be numeric, got dtype {arr.dtype}")
    out = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(out)):
        raise _fail(f"{name} contains NaN or infinite values")
    if np.any(out < 0):
        raise _fail(f"{name} contains a negative value ({out.min()!r})")
    return out


def _check_n_items(n_items: int) -> int:
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)):
        raise _fail(f"n_items must be an integer, got {n_items!r}")
    if n_items < 1:
        raise _fail(f"n_items must be at least 1, got {n_items}")
    return int(n_items)


def _pair_columns(pairs: Sequence[tuple[int, int]] | ArrayLike) -> tuple[IntArray, IntArray]:
    """The first and second item of each judged pair, validated as non-negative indices."""
    pair_arr = np.asarray(pairs)
    if pair_arr.size == 0:
        pair_arr = pair_arr.reshape(0, 2)
    if pair_arr.ndim != 2 or pair_arr.shape[1] != 2:
        raise _fail(f"pairs must have shape (k, 2), got {pair_arr.shape}")
    limit = np.iinfo(np.intp).max
    return (_as_index_array(pair_arr[:, 0], "pairs[:, 0]", limit),
            _as_index_array(pair_arr[:, 1], "pairs[:, 1]", limit))


def comparisons_from_probabilities(
    pairs: Sequence[tuple[int, int]] | ArrayLike,
    probabilities: ArrayLike,
    weights: ArrayLike | None = None,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Soft verdicts: ``probabilities[k] = (p_A, p_B, p_U)`` for the pair ``pairs[k]`` shown as (A, B).

    Each judgment becomes expected win counts — the first item beats the second with weight
    ``w·(p_A + p_U/2)`` and the second beats the first with ``w·(p_B + p_U/2)`` — so a judge that
    says "A" with 0.55 contributes far less than one that says it with 0.99, and a constant
    position bias cancels over both orders while the residual preference survives. One-hot rows
    reproduce :func:`comparisons_from_verdicts` exactly. Rows are renormalised to sum to 1.
    """
    first, second = _pair_columns(pairs)
    n_pairs = first.size
    probs = np.asarray(probabilities, dtype=np.float64) if n_pairs else np.zeros((0, 3))
    if probs.shape != (n_pairs, 3):
        raise _fail(f"probabilities must have shape ({n_pairs}, 3), got {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0) or np.any(probs.sum(axis=1) <= 0):
        raise _fail("probabilities must be finite, non-negative, and not all zero in a row")
    probs = probs / probs.sum(axis=1, keepdims=True)
    w = _as_weight_array(weights, "weights", n_pairs)
    first_wins = w * (probs[:, 0] + probs[:, 2] / 2)
    second_wins = w * (probs[:, 1] + probs[:, 2] / 2)
    return (np.concatenate([first, second]), np.concatenate([second, first]),
            np.concatenate([first_wins, second_wins]))


def comparisons_from_verdicts(
    pairs: Sequence[tuple[int, int]] | ArrayLike,
    verdicts: Sequence[str],
    weights: ArrayLike | None = None,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Turn judged pairs into the ``(winners, losers, weights)`` arrays of :func:`bradley_terry`.

    ``pairs[k] = (a, b)`` was shown with ``a`` first; ``verdicts[k]`` is ``"A"`` (the first item
    won), ``"B"`` (the second won) or ``"U"`` (undecided: a tie). A tie of weight ``w`` becomes two
    comparisons, ``a`` beats ``b`` and ``b`` beats ``a``, each of weight ``w / 2`` — the
    conventional "half a win each way" scoring of a draw (for an explicit tie parameter instead,
    see R. R. Davidson 1970, "On extending the Bradley-Terry model to accommodate ties in paired
    comparison experiments", *JASA* 65(329):317–328). The output lists the decided comparisons
    first, in input order, then the two halves of each tie. Indices must be non-negative integers;
    the check against ``n_items`` is left to :func:`bradley_terry`. ``weights`` defaults to 1.
    """
    first, second = _pair_columns(pairs)
    n_pairs = first.size
    if len(verdicts) != n_pairs:
        raise _fail(f"verdicts has length {len(verdicts)}, expected {n_pairs}")
    w = _as_weight_array(weights, "weights", n_pairs)

    codes = np.empty(n_pairs, dtype=np.int8)
    for k, verdict in enumerate(verdicts):
        if verdict == "A":
            codes[k] = 0
        elif verdict == "B":
            codes[k] = 1
        elif verdict == "U":
            codes[k] = 2
        else:
            raise _fail(f"verdict {k} is {verdict!r}; expected 'A', 'B' or 'U'")

    decided = codes != 2
    a_won = codes == 0
    tie = ~decided
    winners = np.concatenate([np.where(a_won, first, second)[decided], first[tie], second[tie]]).astype(np.intp)
    losers = np.concatenate([np.where(a_won, second, first)[decided], second[tie], first[tie]]).astype(np.intp)
    weights_out = np.concatenate([w[decided], 0.5 * w[tie], 0.5 * w[tie]])
    return winners, losers, weights_out


@dataclass(frozen=True, eq=False)
class _Pairs:
    """The aggregated comparison data and the index arrays :func:`_evaluate` scatters into.

    ``pi[k] < pj[k]`` are the items of the k-th compared unordered pair; ``w_ij[k]`` is the weight
    of "pi beat pj" and ``w_ji[k]`` of "pj beat pi".
    """

    n: int
    pi: IntArray
    pj: IntArray
    w_ij: FloatArray
    w_ji: FloatArray
    n_ij: FloatArray
    w_both: FloatArray  # concat(w_ij, w_ji), paired with log sigma(d) and log sigma(-d)
    vec_index: IntArray  # scatters per-pair terms into [grad | magnitude] (length 2n)
    hess_index: IntArray  # scatters per-pair terms into the flattened n x n Hessian

    @classmethod
    def build(cls, n: int, pi: IntArray, pj: IntArray, w_ij: FloatArray, w_ji: FloatArray) -> _Pairs:
        return cls(
            n=n,
            pi=pi,
            pj=pj,
            w_ij=w_ij,
            w_ji=w_ji,
            n_ij=w_ij + w_ji,
            w_both=np.concatenate([w_ij, w_ji]),
            vec_index=np.concatenate([pi, pj, pi + n, pj + n]),
            hess_index=np.concatenate([pi * (n + 1), pj * (n + 1), pi * n + pj, pj * n + pi]),
        )


def _evaluate(theta: FloatArray, pairs: _Pairs, prior: float) -> tuple[float, FloatArray, FloatArray, FloatArray]:
    """Penalised log-likelihood, its gradient, the Hessian of its negative, and the gradient's
    rounding floor, at ``theta``.

    With ``p_ij = sigma(theta_i - theta_j)`` and ``N_ij = W_ij + W_ji``:

    * ``loglik = sum_{i,j} W_ij log p_ij + prior sum_i [log sigma(theta_i) + log sigma(-theta_i)]``
    * ``grad_i = sum_j [W_ij - N_ij p_ij] + prior (1 - 2 sigma(theta_i))``, evaluated as
      ``sum_j [W_ij p_ji - W_ji p_ij] + prior (sigma(-theta_i) - sigma(theta_i))`` so that large
      weights do not cancel catastrophically;
    * ``-hess`` = the Laplacian with edge weights ``N_ij p_ij p_ji`` plus the prior's diagonal
      ``2 prior sigma(theta_i) sigma(-theta_i)``;
    * ``floor_i`` = 16 ulps of the sum of the magnitudes of the terms summed into ``grad_i``.

    All logistic terms are computed in one ``expit`` and one ``log_expit`` call on
    ``[d, -d, theta, -theta]``, and all sums in two ``bincount`` scatters: for the small ``n`` of a
    swarm round the cost is dominated by the number of numpy calls, not by arithmetic.
    """
    n = pairs.n
    m = pairs.pi.size
    d = theta[pairs.pi] - theta[pairs.pj]
    z = np.concatenate([d, -d, theta, -theta])
    sig = expit(z)  # p, 1 - p (without cancellation), sigma(theta), sigma(-theta)
    log_sig = log_expit(z)
    p, p_rev = sig[:m], sig[m : 2 * m]
    value = float(np.dot(pairs.w_both, log_sig[: 2 * m]))
    gain = pairs.w_ij * p_rev  # d loglik / d theta_pi from "pi beat pj" ...
    loss = pairs.w_ji * p  # ... and from "pj beat pi"
    g_pair = gain - loss
    m_pair = gain + loss
    vec = np.bincount(pairs.vec_index, weights=np.concatenate([g_pair, -g_pair, m_pair, m_pair]), minlength=2 * n)
    grad = vec[:n].astype(np.float64)
    magnitude = vec[n:].astype(np.float64)
    q = pairs.n_ij * p * p_rev
    hess = (
        np.bincount(pairs.hess_index, weights=np.concatenate([q, q, -q, -q]), minlength=n * n)
        .astype(np.float64, copy=False)
        .reshape(n, n)
    )
    if prior > 0.0:
        s, s_rev = sig[2 * m : 2 * m + n], sig[2 * m + n :]
        value += prior * float(log_sig[2 * m :].sum())
        grad += prior * (s_rev - s)
        magnitude += prior
        hess.flat[:: n + 1] += 2.0 * prior * s * s_rev
    floor = _GRAD_FLOOR_ULPS * _EPS * magnitude
    return value, grad, hess, floor


def _spd_solve(matrix: FloatArray, rhs: FloatArray) -> FloatArray:
    """Solve ``matrix @ x = rhs`` for a symmetric positive definite matrix (Cholesky, LAPACK
    ``dposv``), falling back to a least-squares solve if rounding broke definiteness."""
    _, x, info = lapack.dposv(matrix, rhs)
    if info != 0:
        x = np.linalg.lstsq(matrix, rhs, rcond=None)[0]
    return np.asarray(x, dtype=np.float64)


def _spd_inverse(matrix: FloatArray) -> FloatArray:
    """Inverse of a symmetric positive definite matrix, falling back to the pseudo-inverse if
    rounding broke definiteness.

    With ``A = L L^T`` (LAPACK ``dpotrf``), ``A^{-1} = L^{-T} L^{-1}`` from ``L^{-1}``
    (``dtrtri``). This avoids ``dpotri``, whose multithreaded OpenBLAS implementation can stall for
    milliseconds on small matrices when the CPU is busy (as it is while local models generate).
    """
    factor, info = lapack.dpotrf(matrix, lower=1, clean=1)
    if info == 0:
        inverse_factor, info = lapack.dtrtri(factor, lower=1)
        if info == 0:
            return np.asarray(inverse_factor.T @ inverse_factor, dtype=np.float64)
    return np.asarray(np.linalg.pinv(matrix, hermitian=True), dtype=np.float64)


def _centred_variances(cov: FloatArray) -> FloatArray:
    """Variances of ``theta_i - mean(theta)``: the diagonal of ``P cov P`` with ``P = I - 11^T/n``.

    Strengths depend on theta only through such contrasts; the common shift of all thetas, which
    only the weak prior pins down, carries no information about which answer is better.
    """
    row_means = cov.mean(axis=1)
    return np.diag(cov) - 2.0 * row_means + row_means.mean()


def bradley_terry(
    n_items: int,
    winners: ArrayLike,
    losers: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    prior: float = 0.1,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> BTFit:
    """Weighted Bradley–Terry maximum a posteriori estimate, by Newton's method.

    Model (Bradley & Terry 1952): ``P(i beats j) = sigma(theta_i - theta_j)`` with ``sigma`` the
    logistic function. Comparison ``k`` says item ``winners[k]`` beat item ``losers[k]`` and counts
    ``weights[k]`` times (default 1; fractional weights are allowed). **A tie is passed as two
    half-weight comparisons**, one each way — :func:`comparisons_from_verdicts` builds them.

    Prior: every item plays ``prior`` virtual wins and ``prior`` virtual losses against a fixed
    reference item with ``theta = 0``. This is a proper, symmetric prior (a product of logistic
    densities), so with ``prior > 0`` every theta is finite — also for items that never won and
    for disconnected comparison graphs — and the objective is strictly concave. With
    ``prior == 0`` this is plain maximum likelihood, which exists only if the directed graph with
    an edge ``i -> j`` whenever ``i`` beat ``j`` (with positive weight) is strongly connected
    (Ford 1957; Hunter 2004); that is checked up front and a :class:`RankingError` raised
    otherwise. Theta is then only defined up to a shift, and is returned centred (mean 0).

    Algorithm: the comparisons are aggregated into the ``n x n`` weighted win matrix ``W``
    (``W[i, j]`` = total weight of "i beat j"), reduced to the unordered pairs that were compared
    at least once; Newton's method then runs on theta, started from the smoothed win/loss log-odds
    of each item, with step halving (Armijo backtracking) on the penalised log-likelihood. With
    ``prior == 0`` the singular Laplacian Hessian ``H`` is replaced by ``H + 11^T / n``, whose
    solution against a zero-sum gradient is the minimum-norm (zero-sum) Newton step, and the
    covariance uses the pseudo-inverse ``H^+ = (H + 11^T / n)^{-1} - 11^T / n``. Cost per
    iteration is ``O(m)`` for ``m`` compared pairs plus one dense ``n x n`` Cholesky solve, and
    memory is ``O(n^2)``: meant for the tens to hundreds of candidates of a round, workable up to
    a few thousand items.

    Safeguards that only extreme inputs (a tiny ``prior`` with weights spanning many orders of
    magnitude) reach: a Newton step longer than 10 is replaced by the Levenberg–Marquardt step
    ``(H + mu I)^{-1} grad`` with ``mu = ||grad|| / 10``; the line search falls back to Hager and
    Zhang's (2005) approximate Armijo test when the objective's change is below its rounding; and
    iteration stops as converged when the gradient is at its rounding floor or when steps stop
    shrinking while the Newton decrement is below the objective's rounding.

    Raises :class:`RankingError` on invalid input (``n_items < 1``, mismatched lengths, indices out
    of range, an item compared with itself, negative/NaN/infinite weights, negative ``prior``) and
    when the maximum-likelihood estimate does not exist (``prior == 0``). Non-convergence within
    ``max_iter`` is reported through ``BTFit.converged``, not raised.
    """
    n = _check_n_items(n_items)
    if isinstance(prior, bool) or not isinstance(prior, (int, float, np.floating, np.integer)):
        raise _fail(f"prior must be a number, got {prior!r}")
    prior = float(prior)
    if not math.isfinite(prior) or prior < 0.0:
        raise _fail(f"prior must be finite and >= 0, got {prior!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise _fail(f"max_iter must be an integer >= 1, got {max_iter!r}")
    tol = float(tol)
    if not (tol > 0.0 and math.isfinite(tol)):
        raise _fail(f"tol must be finite and > 0, got {tol!r}")

    win = _as_index_array(winners, "winners", n)
    lose = _as_index_array(losers, "losers", n)
    if win.size != lose.size:
        raise _fail(f"winners has length {win.size} but losers has length {lose.size}")
    w = _as_weight_array(weights, "weights", win.size)
    same = win == lose
    if np.any(same):
        k = int(np.argmax(same))
        raise _fail(f"comparison {k} has item {int(win[k])} as both winner and loser")

    # Weighted win matrix W[i, j] = total weight of "i beat j".
    # (np.bincount returns int64 for empty input, hence the cast.)
    wmat = np.bincount(win * n + lose, weights=w, minlength=n * n).astype(np.float64, copy=False).reshape(n, n)

    # Unordered compared pairs (i < j) and the weight each way.
    mark = np.zeros(n * n, dtype=bool)
    mark[np.minimum(win, lose) * n + np.maximum(win, lose)] = True
    pi, pj = np.divmod(np.flatnonzero(mark), n)
    w_ij = wmat[pi, pj]
    w_ji = wmat[pj, pi]
    pairs = _Pairs.build(n, pi, pj, w_ij, w_ji)

    if prior == 0.0 and n > 1:
        fwd = w_ij > 0.0
        rev = w_ji > 0.0
        rows = np.concatenate([pi[fwd], pj[rev]])
        cols = np.concatenate([pj[fwd], pi[rev]])
        graph = csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
        n_comp, _ = connected_components(graph, directed=True, connection="strong")
        if n_comp > 1:
            raise _fail(
                "the maximum-likelihood Bradley-Terry estimate does not exist: the comparison "
                f"graph splits into {n_comp} strongly connected groups (some items never beat, or "
                "never lose to, the rest); use prior > 0"
            )

    gauge = 1.0 / n if prior == 0.0 else 0.0  # H + 11^T/n fixes the shift when prior == 0
    # Start from each item's smoothed win/loss log-odds: cheap, finite, and usually one or two
    # Newton iterations closer than theta = 0 (any start converges: the objective is concave).
    wins = wmat.sum(axis=1)
    theta = np.log((wins + prior + 0.5) / (wmat.sum(axis=0) + prior + 0.5))
    if gauge:
        theta -= theta.mean()
    objective, grad, hess, grad_floor = _evaluate(theta, pairs, prior)
    converged = False
    iterations = 0
    previous_size = math.inf
    while iterations < max_iter:
        # Once every |grad_i| is at the rounding floor of its own terms the data carry no further
        # information, even if a tiny Hessian still turns that noise into steps above tol.
        if (np.abs(grad) <= grad_floor).all():
            converged = True
            break
        iterations += 1
        step = _spd_solve(hess + gauge if gauge else hess, grad)
        size = float(np.abs(step).max())
        noise = _OBJECTIVE_NOISE * (abs(objective) + 1.0)
        half_decrement = 0.5 * float(np.dot(grad, step))  # Newton's predicted gain
        # Converged: the step is below tol, or steps stopped shrinking while the predicted gain
        # is below the objective's rounding (an ill-conditioned, tiny-prior direction turning
        # rounding noise into steps; further iterations cannot improve theta).
        done = size <= tol or (size > 0.5 * previous_size and half_decrement <= noise)
        previous_size = size
        if size <= _FULL_STEP_BELOW:
            # Inside the quadratic-convergence region: take the full Newton step.
            theta = theta + step
            if gauge:
                theta -= theta.mean()
            objective, grad, hess, grad_floor = _evaluate(theta, pairs, prior)
            if done:
                converged = True
                break
            continue
        if done:
            converged = True
            break
        if size > _MAX_STEP:
            # A nearly flat direction (a far-out item with a tiny prior) asks for an enormous
            # step. Damp it Levenberg–Marquardt style: with mu = ||grad|| / _MAX_STEP,
            # ||(H + mu I)^{-1} grad||_2 <= _MAX_STEP, while well-determined items, whose
            # curvature dwarfs mu, keep their Newton steps.
            mu = float(np.linalg.norm(grad)) / _MAX_STEP
            damped = hess + mu * np.eye(n)
            step = _spd_solve(damped + gauge if gauge else damped, grad)
        slope = float(np.dot(grad, step))  # > 0: the Hessian is positive definite
        t = 1.0
        for _ in range(_MAX_HALVINGS):
            candidate = theta + t * step
            if gauge:
                candidate -= candidate.mean()
            evaluated = _evaluate(candidate, pairs, prior)
            value, new_grad = evaluated[0], evaluated[1]
            if value >= objective + _ARMIJO_C * t * slope:
                break  # Armijo sufficient increase
            if value >= objective - noise and float(np.dot(new_grad, step)) >= -(1.0 - 2.0 * _ARMIJO_C) * slope:
                # Hager & Zhang's approximate Armijo condition, for when the change in the
                # objective is lost in its rounding (huge, flat tails with a tiny prior).
                break
            t *= 0.5
        else:  # no acceptable step: the objective is flat to rounding; stop here
            break
        theta = candidate
        objective, grad, hess, grad_floor = evaluated

    # Standard errors from the (pseudo-)inverse Hessian at the final theta.
    cov = _spd_inverse(hess + gauge) - gauge if gauge else _spd_inverse(hess)
    stderr = np.sqrt(np.clip(_centred_variances(cov), 0.0, None))

    shifted = np.exp(theta - theta.max())
    strengths = shifted / shifted.sum()
    log_strengths = theta.copy()
    win_prob = strengths.copy()
    for arr in (strengths, log_strengths, stderr, win_prob):
        arr.flags.writeable = False
    return BTFit(
        strengths=strengths,
        log_strengths=log_strengths,
        stderr=stderr,
        win_prob=win_prob,
        iterations=iterations,
        converged=converged,
    )


# --------------------------------------------------------------------------------------------
# Voting
# --------------------------------------------------------------------------------------------


def majority(n_items: int, votes: Sequence[int] | ArrayLike, weights: ArrayLike | None = None) -> FloatArray:
    """Weighted vote share of each candidate index in ``[0, n_items)``; the shares sum to 1.

    Plain plurality voting (self-consistency, Wang et al. 2023, "Self-Consistency Improves Chain of
    Thought Reasoning in Language Models", ICLR). Raises :class:`RankingError` on bad indices or
    weights and when the total weight is zero (no votes, or only zero-weight votes).
    """
    n = _check_n_items(n_items)
    idx = _as_index_array(votes, "votes", n)
    w = _as_weight_array(weights, "weights", idx.size)
    totals = np.bincount(idx, weights=w, minlength=n).astype(np.float64)
    total = float(totals.sum())
    if total <= 0.0:
        raise _fail("no votes with positive weight to count")
    return totals / total


def reconcile_bin(confidence: float) -> float:
    """ReConcile's re-binned vote weight for a self-reported confidence.

    Chen, Saha & Bansal (2023), "ReConcile: Round-Table Conference Improves Reasoning via
    Consensus among Diverse LLMs", arXiv:2309.13007 (confidence estimation): raw verbal
    confidences are over-confident, so they are mapped to
    ``1.0`` if ``p == 1.0``; ``0.8`` if ``0.9 <= p < 1.0``; ``0.5`` if ``0.8 <= p < 0.9``;
    ``0.3`` if ``0.6 < p < 0.8``; ``0.1`` otherwise. Inputs are clamped into ``[0, 1]``; NaN maps
    to ``0.1``; a value that is not a number raises :class:`RankingError`.
    """
    try:
        p = float(confidence)
    except (TypeError, ValueError):
        raise _fail(f"confidence must be a number, got {confidence!r}") from None
    if math.isnan(p):
        return 0.1
    p = min(1.0, max(0.0, p))
    if p <= 0.6:
        return 0.1
    if p < 0.8:
        return 0.3
    if p < 0.9:
        return 0.5
    if p < 1.0:
        return 0.8
    return 1.0


def weighted_vote(
    n_items: int, votes: Sequence[int] | ArrayLike, confidences: Sequence[float] | ArrayLike
) -> FloatArray:
    """Vote shares with each vote weighted by :func:`reconcile_bin` of its confidence (ReConcile).

    ``confidences[k]`` belongs to ``votes[k]``; see :func:`majority` for the errors raised.
    """
    try:
        conf = np.asarray(confidences, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail("confidences must be numbers") from None
    if conf.ndim != 1:
        raise _fail(f"confidences must be one-dimensional, got shape {conf.shape}")
    n_votes = np.asarray(votes).size
    if conf.size != n_votes:
        raise _fail(f"confidences has length {conf.size}, expected {n_votes}")
    weights = np.array([reconcile_bin(c) for c in conf.tolist()], dtype=np.float64)
    return majority(n_items, votes, weights)


class AheadByK:
    """First-to-ahead-by-k vote counter (MAKER; Meyerson et al. 2025, "Solving a Million-Step LLM
    Task with Zero Errors").

    Votes for hashable candidate keys arrive one at a time; the race is decided as soon as the
    leader's count exceeds every other candidate's count by at least ``k`` — a *lead* of ``k``,
    not an absolute count of ``k``. With a single candidate so far, the others count as 0.
    Adding a vote after the race is decided raises :class:`RankingError`.
    """

    __slots__ = ("_counts", "_decided", "_k", "_total")

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise _fail(f"k must be an integer >= 1, got {k!r}")
        self._k = int(k)
        self._counts: dict[Hashable, int] = {}
        self._total = 0
        self._decided = False

    @property
    def k(self) -> int:
        """The lead required to decide."""
        return self._k

    def add(self, candidate_key: Hashable) -> bool:
        """Count one vote; return True exactly when this vote decides the race."""
        if self._decided:
            raise _fail(f"the race is already decided for {self.leader!r}; no more votes")
        self._counts[candidate_key] = self._counts.get(candidate_key, 0) + 1
        self._total += 1
        self._decided = self._lead() >= self._k
        return self._decided

    def _lead(self) -> int:
        best = second = 0
        for count in self._counts.values():
            if count > best:
                best, second = count, best
            elif count > second:
                second = count
        return best - second

    @property
    def leader(self) -> Hashable | None:
        """The candidate with the most votes (ties: the one voted for first); None before any."""
        if not self._counts:
            return None
        # max() returns the first maximal item; dicts iterate in insertion order.
        return max(self._counts, key=self._counts.__getitem__)

    @property
    def counts(self) -> dict[Hashable, int]:
        """A copy of the vote count per candidate, in order of first vote."""
        return dict(self._counts)

    @property
    def total(self) -> int:
        """Votes counted so far."""
        return self._total

    @property
    def decided(self) -> bool:
        """Whether some candidate leads every other by at least ``k``."""
        return self._decided

    def __repr__(self) -> str:
        return f"AheadByK(k={self._k}, counts={self._counts!r}, decided={self._decided})"


# --------------------------------------------------------------------------------------------
# Mean rank (llm-council)
# --------------------------------------------------------------------------------------------


def mean_rank(n_items: int, rankings: Sequence[Sequence[int]]) -> FloatArray:
    """Mean 1-based position of each item over the rankings that include it (llm-council).

    Each ranking lists item indices best first and may be partial. An item's score is the mean of
    its positions over the rankings that contain it; items that no ranking contains get ``+inf``.
    Lower is better. Raises :class:`RankingError` for out-of-range indices or an item repeated
    within one ranking.
    """
    n = _check_n_items(n_items)
    pos_sum = np.zeros(n, dtype=np.float64)
    seen = np.zeros(n, dtype=np.float64)
    for r, ranking in enumerate(rankings):
        idx = _as_index_array(np.asarray(ranking), f"rankings[{r}]", n)
        if np.unique(idx).size != idx.size:
            raise _fail(f"rankings[{r}] lists an item more than once")
        pos_sum[idx] += np.arange(1, idx.size + 1, dtype=np.float64)
        seen[idx] += 1.0
    out = np.full(n, np.inf, dtype=np.float64)
    np.divide(pos_sum, seen, out=out, where=seen > 0)
    return out


def council_order(mean_ranks: ArrayLike) -> IntArray:
    """Item indices ordered best (lowest mean rank) first; ties keep the lower index first and
    never-ranked items (``+inf``) come last. NaN raises :class:`RankingError`."""
    arr = np.asarray(mean_ranks, dtype=np.float64)
    if arr.ndim != 1:
        raise _fail(f"mean_ranks must be one-dimensional, got shape {arr.shape}")
    if np.any(np.isnan(arr)):
        raise _fail("mean_ranks contains NaN")
    return np.argsort(arr, kind="stable").astype(np.intp)
