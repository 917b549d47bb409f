"""The ACT math of review in rounds, and the label-quality certificate. Pure NumPy, no I/O.

A sequential design spends the budget in rounds r = 1 … R. Round r draws from its pool U_r, the
rows not reviewed in an earlier round: π_r is computed from what is known after round r − 1 (a
recalibrated critic, the budget left), so it is fixed given the past, and δ_r ~ Bernoulli(π_r)
independently (Poisson sampling) with π_r = 0 outside U_r. Rows are given as arrays over all N
rows, one (π_r, δ_r) pair per round.

Why the estimates stay unbiased. Write T = Σ e_i (wrong machine labels) and K_r = Σ e_i over
the rows reviewed before round r (known exactly). For every r, T = K_r + T(U_r), and round r is
an ordinary Poisson draw from U_r given the past, so any single-draw estimator of T(U_r) that is
unbiased for fixed π (:func:`act_plugin.act_math.error_count_estimate`'s) gives

    T̂_r = K_r + T̂(U_r),   E[T̂_r | rounds 1 … r − 1] = T.

The rounds are combined with weights w_r = b_r / Σ_s b_s, b_r = Σ_i π_ri the round's budget
(its expected reviews), T̂ = Σ_r w_r T̂_r: unbiased when the round budgets are fixed in
advance (``ls-act review`` plans them: B/R each), because each T̂_r is. A round that leaves
rows of its pool out (π = 0 there: a search round of an audit series, which spends its budget
on the most suspicious rows without the floor) estimates nothing about them, so it weighs 0
and the sums run over the rounds that cover their pool (in an audit series, the last one; the
plan fixes which in advance). The deviations T̂_r − T
are martingale differences, so their variances add: V̂ = Σ_r w_r² V̂_r. With equal rounds this
recovers the variance of one draw of the whole budget, while later rounds draw with a critic
calibrated on the earlier reviews. The interval is the Fay–Feuer gamma interval of
:func:`~act_plugin.act_math.error_count_estimate` on the combined sums (its largest jump: the
largest w_r J_r over the rounds); its coverage is measured in ``benchmarks/rounds.py``.

Training weights: the same combination of each round's ACT loss estimate gives a row drawn in
round s machine weight λ(Σ_{r≤s} w_r − w_s/π_s) and human weight w_s/π_s + Σ_{r>s} w_r
(:func:`sequential_weights`); the last round's loss alone, with the rows reviewed before it
known, gives 0 and 1 to rows drawn earlier and the ACT weights of one draw to the rest
(:func:`last_round_weights`, what ``ls-act sync`` exports: it trained better). Both are unbiased
and, with one round, the ACT weights λ(1 − δ/π) and δ/π.

The certificate. After round r the final training set (human label where reviewed, machine
label elsewhere) has T − F_r wrong labels, F_r the errors found so far. With α spent in
proportion to the budget, α_r = α · b_r / B (B the whole budget), and U_r the one-sided upper
(1 − α_r) bound on T from rounds 1 … r, P(T > U_r for some r) ≤ Σ_r α_r ≤ α. So the bound

    accuracy of the training set ≥ 1 − (min_{s≤r} U_s − F_r) / N

holds at every round at once with probability ≥ 1 − α, and stays valid when the review stops
as soon as it reaches a target (optional stopping). The point estimate T̂ does not: stopped at
the first certified round it is optimistic (benchmarks/rounds.py: 0.4–0.8 accuracy points), as
the stop comes when few errors were found. Rows with π = 0 in every round (possible only with
floor 0) count as right in both, as in the single-draw estimators.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from act_plugin.act_math import (
    CROSS_FIT_FOLDS,
    ErrorCount,
    Lam,
    _assisted_parts,
    _bounds,
    _ht_parts,
    _Parts,
    check_lams,
)
from act_plugin.validation import as_indicator, as_review, as_unit, check_real

__all__ = [
    "Certificate",
    "certificate",
    "last_round_weights",
    "round_shares",
    "sequential_error_count",
    "sequential_weights",
]


def _rounds(
    pis: Sequence[npt.ArrayLike], deltas: Sequence[npt.ArrayLike], *, budgets: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(π, δ) as arrays of shape (R, N), checked: a row reviewed in a round is in no later
    pool (π = 0 there), and (``budgets``) every round has a positive budget."""
    if len(pis) != len(deltas) or not pis:
        raise ValueError(
            f"need one (pi, delta) pair per round, at least one; got {len(pis)} pi and "
            f"{len(deltas)} delta arrays"
        )
    pairs = [as_review(d, p) for p, d in zip(pis, deltas, strict=True)]
    sizes = {p.size for _, p in pairs}
    if len(sizes) != 1:
        raise ValueError(f"every round must cover the same N rows; got sizes {sorted(sizes)}")
    delta = np.stack([d for d, _ in pairs])
    pi = np.stack([p for _, p in pairs])
    before = np.cumsum(delta, axis=0) - delta  # reviewed in an earlier round
    again = np.argwhere((before > 0) & (pi > 0.0))
    if again.size:
        r, i = again[0]
        raise ValueError(
            f"row {i} was reviewed before round {r + 1} but has pi > 0 in it: a round draws "
            "only from rows not reviewed yet"
        )
    empty = np.flatnonzero(pi.sum(axis=1) <= 0.0)
    if budgets and empty.size:
        raise ValueError(f"round {empty[0] + 1} has no budget (all pi are 0)")
    return pi, delta


def round_shares(pis: Sequence[npt.ArrayLike]) -> np.ndarray:
    """w_r = b_r / Σ_s b_s with b_r = Σ_i π_ri, the weight of each round's estimate.

    >>> round_shares([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]).tolist()
    [0.5, 0.5]
    """
    budgets = np.array([as_unit(p, "pi").sum() for p in pis])
    return budgets / budgets.sum()


def _round_parts(
    wrong: np.ndarray,
    pi: np.ndarray,
    delta: np.ndarray,
    suspicion: np.ndarray | None,
    folds: int,
) -> tuple[list[_Parts], bool]:
    """Each round's parts of T̂_r = K_r + T̂(U_r) (K_r added to its exactly known count), and
    whether any round used the model-assisted estimator."""
    order = np.arange(pi.shape[1]) % folds
    known = 0.0
    parts = []
    assisted = False
    for pi_r, delta_r in zip(pi, delta, strict=True):
        if suspicion is None:
            part, used = _ht_parts(wrong, delta_r, pi_r), False
        else:
            part, used = _assisted_parts(suspicion, wrong, delta_r, pi_r, order)
        assisted |= used
        parts.append(_Parts(part.certain + known, part.y, part.v, part.down, part.up))
        known += float((wrong & delta_r).sum())
    return parts, assisted


def _largest(jumps: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return max(jumps, key=lambda jump: float(jump[0]))


def _combined(parts: list[_Parts], shares: np.ndarray) -> _Parts:
    """Σ w_r T̂_r: sums weighted by w_r, variances by w_r², the largest weighted jumps."""
    weighted = list(zip(shares, parts, strict=True))
    return _Parts(
        certain=sum(w * p.certain for w, p in weighted),
        y=sum(w * p.y for w, p in weighted),
        v=sum(w * w * p.v for w, p in weighted),
        down=_largest([(w * p.down[0], w * w * p.down[1]) for w, p in weighted]),
        up=_largest([(w * p.up[0], w * w * p.up[1]) for w, p in weighted]),
    )


def _covering(pi: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Per round: π > 0 on every row of its pool (the rows not reviewed before it). When no
    round does (floor 0 throughout), every round counts, and rows with π = 0 count as right."""
    before = (np.cumsum(delta, axis=0) - delta) > 0
    covers = np.array([bool(np.all(p[~b] > 0.0)) for p, b in zip(pi, before, strict=True)])
    return covers if covers.any() else np.ones(pi.shape[0], dtype=bool)


def _estimate_shares(pi: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """w_r = b_r / Σ b_s over the rounds that cover their pool (:func:`_covering`), else 0."""
    budgets = np.where(_covering(pi, delta), pi.sum(axis=1), 0.0)
    return budgets / budgets.sum()


def _found_and_cap(wrong: np.ndarray, pi: np.ndarray, delta: np.ndarray) -> tuple[float, float]:
    """(F, F + unreviewed rows with π > 0 in some round): the possible range of T."""
    reviewed = delta.any(axis=0)
    found = float((wrong & reviewed).sum())
    return found, found + float((~reviewed & (pi > 0.0).any(axis=0)).sum())


def _inputs(
    wrong: npt.ArrayLike,
    pis: Sequence[npt.ArrayLike],
    deltas: Sequence[npt.ArrayLike],
    suspicion: npt.ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    pi, delta = _rounds(pis, deltas)
    n = pi.shape[1]
    e = as_indicator(wrong, "wrong", n=n) & delta.any(axis=0)
    eps = None if suspicion is None else as_unit(suspicion, "suspicion", n=n)
    return e, pi, delta, eps


def sequential_error_count(
    wrong: npt.ArrayLike,
    pis: Sequence[npt.ArrayLike],
    deltas: Sequence[npt.ArrayLike],
    *,
    suspicion: npt.ArrayLike | None = None,
    confidence: float = 0.95,
    folds: int = CROSS_FIT_FOLDS,
) -> ErrorCount:
    """Estimate the number of wrong machine labels T from a review in rounds.

    T̂ = Σ_r w_r T̂_r (w_r = 0 for a round that leaves rows of its pool out: module
    docstring), each T̂_r = K_r + T̂(U_r) the single-draw estimate of
    :func:`~act_plugin.act_math.error_count_estimate` over round r's pool (model-assisted
    when ``suspicion`` is given and the round expects enough reviews, else Horvitz–Thompson;
    ``method`` says "model-assisted" when at least one round used it),
    with the Fay–Feuer gamma interval on the combined sums (module docstring). One round gives
    exactly :func:`~act_plugin.act_math.error_count_estimate`'s answer.

    Parameters
    ----------
    wrong : array-like of bool, shape (N,)
        e_i, read only where a row was reviewed in some round.
    pis, deltas : sequences of R arrays of shape (N,)
        Each round's inclusion probabilities (0 outside its pool) and review indicators.
    suspicion : array-like of shape (N,), optional
        ε̂ for the model-assisted estimator's calibration.
    confidence : float in (0, 1)
        1 − α of the two-sided interval.
    folds : int ≥ 2
        K of the cross-fitted calibration within each round.

    Examples
    --------
    >>> est = sequential_error_count(
    ...     [1, 0, 1, 0], [[1.0, 0.5, 0.5, 0.5], [0.0, 0.5, 0.5, 0.5]], [[1, 0, 0, 0], [0, 0, 1, 0]]
    ... )
    >>> est.found, est.n_reviewed, est.estimate  # T̂_1 = 1, T̂_2 = 1 + 1/0.5; w = 2.5/4, 1.5/4
    (2, 2, 1.75)
    """
    e, pi, delta, eps = _inputs(wrong, pis, deltas, suspicion)
    level = check_real(confidence, "confidence", low=0.0, high=1.0, closed="neither")
    parts, assisted = _round_parts(e, pi, delta, eps, folds)
    found, cap = _found_and_cap(e, pi, delta)
    totals = _bounds(_combined(parts, _estimate_shares(pi, delta)), np.float64(found),
                     np.float64(cap), 1.0 - level)  # fmt: skip
    return ErrorCount(
        estimate=float(totals.estimate),
        stderr=math.sqrt(float(totals.variance)),
        ci_low=float(totals.low),
        ci_high=float(totals.high),
        found=int(found),
        n=pi.shape[1],
        n_reviewed=int(delta.sum()),
        method="model-assisted" if assisted else "horvitz-thompson",
    )


def sequential_weights(
    pis: Sequence[npt.ArrayLike], deltas: Sequence[npt.ArrayLike], *, lam: Lam = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ACT weights (machine row, human row) of the combined estimate of a review in
    rounds.

    A row drawn in round s: λ(Σ_{r≤s} w_r − w_s/π_s) and w_s/π_s + Σ_{r>s} w_r; a row never
    drawn: λ and 0 (module docstring). One round gives ``act_math.act_weights``. ``lam`` may
    be one λ_i per row; unbiased if λ_i is fixed before round 1 (every round's estimate uses
    it).

    >>> machine, human = sequential_weights(
    ...     [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]], [[1, 0, 0], [0, 0, 1]]
    ... )
    >>> machine.tolist(), human.tolist()
    ([-0.5, 1.0, 0.0], [1.5, 0.0, 1.0])
    """
    pi, delta = _rounds(pis, deltas)
    lam_value = np.broadcast_to(check_lams(lam, pi.shape[1]), pi.shape[1])
    shares = round_shares(pi)
    upto = np.cumsum(shares)
    machine = lam_value.astype(float)
    human = np.zeros(pi.shape[1])
    for r, (pi_r, delta_r) in enumerate(zip(pi, delta, strict=True)):
        drawn = delta_r.astype(bool)
        inverse = shares[r] / pi_r[drawn]
        machine[drawn] = lam_value[drawn] * (upto[r] - inverse)
        human[drawn] = inverse + (1.0 - upto[r])
    return machine, human


def last_round_weights(
    pis: Sequence[npt.ArrayLike], deltas: Sequence[npt.ArrayLike], *, lam: Lam = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row training weights (machine row, human row) of a review in rounds: the ACT loss
    of the last round, L̂_R = Σ_{reviewed before R} ℓ + Σ_{U_R} [λℓᵐ + (ℓ − λℓᵐ) δ_R/π_R].

    A row drawn before round R: 0 and 1 (its human label is known); drawn in round R:
    λ(1 − 1/π_R) and 1/π_R; never drawn: λ and 0. Unbiased given rounds 1 … R − 1, so
    unbiased. These are what ``ls-act sync`` exports: in the ACT harness (docs/benchmarks.md)
    they trained 3–4 points closer to full human than :func:`sequential_weights`, whose rows
    found in a late round keep most of their machine label's weight. With one round they are
    ``act_math.act_weights``.

    ``lam`` may be one λ_i per row: the last round's loss stays unbiased for any λ_i fixed
    given rounds 1 … R − 1 (e.g. 1 − the critic calibrated on their reviews,
    ``act_math.soft_lambda``), as E[L̂_R | rounds 1 … R − 1] is then still the full-human loss.

    >>> machine, human = last_round_weights(
    ...     [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]], [[1, 0, 0], [0, 0, 1]]
    ... )
    >>> machine.tolist(), human.tolist()
    ([0.0, 1.0, -1.0], [1.0, 0.0, 2.0])
    """
    pi, delta = _rounds(pis, deltas, budgets=False)  # only the drawn rows' π is read
    lam_value = check_lams(lam, pi.shape[1])
    earlier = delta[:-1].any(axis=0)
    last = delta[-1].astype(bool)
    inverse = np.divide(1.0, pi[-1], out=np.zeros(pi.shape[1]), where=last)
    machine = np.where(earlier, 0.0, lam_value * (1.0 - inverse))
    human = np.where(earlier, 1.0, inverse)
    return machine, human


@dataclass(frozen=True)
class Certificate:
    """A lower confidence bound on the accuracy of the final training set (human labels where
    reviewed, machine labels elsewhere) after a review in rounds.

    Attributes
    ----------
    target : float
        The accuracy asked for.
    confidence : float
        1 − α, spent across the rounds in proportion to their budgets.
    lower_bound : float
        1 − (min_s U_s − F)/N: the accuracy the training set has at least, at ``confidence``,
        simultaneously over every round (so valid whenever the review stopped).
    met : bool
        ``lower_bound >= target``.
    rounds : int
        Rounds the bound is computed over.
    alpha_spent : float
        Σ_r α_r of those rounds (≤ α).
    errors_left_high : float
        The upper bound on the wrong labels left in the training set, min_s U_s − F.
    """

    target: float
    confidence: float
    lower_bound: float
    met: bool
    rounds: int
    alpha_spent: float
    errors_left_high: float


def certificate(
    wrong: npt.ArrayLike,
    pis: Sequence[npt.ArrayLike],
    deltas: Sequence[npt.ArrayLike],
    *,
    total_budget: float,
    target: float,
    confidence: float = 0.95,
    suspicion: npt.ArrayLike | None = None,
    folds: int = CROSS_FIT_FOLDS,
) -> Certificate:
    """Certify the final training set's accuracy after the rounds done so far.

    Round r spends α_r = α · b_r / B of α = 1 − ``confidence`` (b_r = Σ π_r, B =
    ``total_budget``, the expected reviews of the whole review); U_r is the one-sided upper
    (1 − α_r) Fay–Feuer bound on T of rounds 1 … r combined (:func:`sequential_error_count`).
    A round that leaves rows of its pool out (a search round) gives no bound and spends no α.

    Parameters
    ----------
    wrong, pis, deltas, suspicion, folds
        As in :func:`sequential_error_count`.
    total_budget : float > 0
        B, the expected number of reviews the whole review may spend (Σ over all planned
        rounds of b_r); the rounds so far must not exceed it.
    target : float in (0, 1]
        The accuracy to certify.
    confidence : float in (0, 1)
        1 − α.

    Examples
    --------
    >>> cert = certificate([0, 0, 0, 0], [[1.0, 1.0, 1.0, 1.0]], [[1, 1, 1, 1]],
    ...                    total_budget=4, target=0.99)
    >>> cert.lower_bound, cert.met
    (1.0, True)
    """
    e, pi, delta, eps = _inputs(wrong, pis, deltas, suspicion)
    level = check_real(confidence, "confidence", low=0.0, high=1.0, closed="neither")
    goal = check_real(target, "target", low=0.0, high=1.0, closed="right")
    budgets = pi.sum(axis=1)
    total = check_real(total_budget, "total_budget", low=0.0, high=math.inf, closed="neither")
    if budgets.sum() > total * (1.0 + 1e-9):
        raise ValueError(
            f"the rounds spent {budgets.sum():.6g} expected reviews, more than total_budget "
            f"{total:.6g}: the alpha spending would exceed 1 - confidence"
        )
    alpha = 1.0 - level
    covers = _covering(pi, delta)
    spent = np.where(covers, alpha * budgets / total, 0.0)
    parts, _ = _round_parts(e, pi, delta, eps, folds)
    n = pi.shape[1]
    highs = []
    for r in np.flatnonzero(covers):
        found, cap = _found_and_cap(e, pi[: r + 1], delta[: r + 1])
        combined = _combined(parts[: r + 1], _estimate_shares(pi[: r + 1], delta[: r + 1]))
        # two-sided at 2α_r is one-sided at α_r on the upper side
        highs.append(float(_bounds(combined, np.float64(found), np.float64(cap),
                                   2.0 * spent[r]).high))  # fmt: skip
    found_now = float((e & delta.any(axis=0)).sum())
    left = max(min(highs) - found_now, 0.0)
    bound = 1.0 - left / n
    return Certificate(
        target=goal,
        confidence=level,
        lower_bound=bound,
        met=bound >= goal,
        rounds=pi.shape[0],
        alpha_spent=float(spent.sum()),
        errors_left_high=left,
    )
