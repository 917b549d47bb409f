"""The ACT math: who to send to a human, with what weight, and what the result estimates.

Lin et al., "ACT as Human: Multimodal Large Language Model Data Annotation with Critical
Thinking", NeurIPS 2025, arXiv:2511.09833. See docs/method.md.

Pure NumPy: arrays in, arrays or numbers out; no I/O, no torch. Every public function validates
its inputs once (``ValueError`` quoting the bad value) and then calls a private ``_compute``
helper that assumes them valid. The one exception is :func:`act_terms`, the ACT loss's per-item
formula in plain arithmetic, shared with ``training.ACTLoss`` on torch tensors: its callers
validate. Data are positional, options keyword-only, randomness only
through an explicit ``seed``.

Notation
--------
N items. ŷ_i machine label, y_i human label (known only where reviewed).
ε̂_i ∈ [0, 1] critic suspicion ≈ P(y_i ≠ ŷ_i); higher = more suspicious.
B human budget = expected number of reviewed items.
π_i = P(δ_i = 1) inclusion probability; δ_i ∈ {0, 1} "item i was reviewed".
λ ∈ [0, 1] power-tuning factor on the machine terms (as in PPI++); λ = 1 is the paper's loss.
  It may differ per item (λ_i, an array): the estimate stays unbiased for any λ_i that does not
  depend on δ_i, e.g. fixed before the draw, or computed from the other rows' reviews only
  (Poisson sampling draws δ_i independently: :func:`cross_fitted_probabilities`), since then
  E[λ_i ℓᵐ_i + (ℓ_i − λ_i ℓᵐ_i) δ_i/π_i | λ_i] = ℓ_i. λ_i ≈ 1 − P(ŷ_i wrong) down-weights the
  machine labels that look wrong (:func:`soft_lambda`).

The ACT estimate of any per-item quantity's full-human mean (1/N) Σ ℓ_i is

    L̂ = (1/N) Σ_i [ λ ℓᵐ_i + (ℓ_i − λ ℓᵐ_i) · δ_i / π_i ],

unbiased (E_δ[L̂] = (1/N) Σ ℓ_i) whenever π_i > 0 for every item where ℓ_i ≠ λ ℓᵐ_i.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from act_plugin.validation import (
    as_finite,
    as_indicator,
    as_review,
    as_unit,
    as_vector,
    as_weights,
    budget_count,
    check_lam,
    check_real,
    first_bad,
)

__all__ = [
    "CROSS_FIT_FOLDS",
    "DEFAULT_BETA",
    "DEFAULT_FLOOR",
    "ESTIMATORS",
    "MIN_ASSISTED_REVIEWS",
    "PLATT_RIDGE",
    "SAMPLING_RULES",
    "AccuracyEstimate",
    "ErrorCount",
    "UndefinedMetricWarning",
    "accuracy_estimate",
    "accuracy_from_errors",
    "act_loss_estimate",
    "act_terms",
    "act_weights",
    "auroc",
    "calibrate_suspicion",
    "check_lams",
    "cross_fitted_probabilities",
    "draw_review",
    "error_count_estimate",
    "gamma_quantile",
    "inclusion_probabilities",
    "platt_map",
    "platt_parameters",
    "precision_at",
    "recall_at_fraction",
    "roc_points",
    "soft_lambda",
    "weighted_auroc",
]

#: Share ρ of the budget spent on uniform random review (keeps every π_i ≥ ρB/N > 0). 0.3, not
#: 0.1: each error found by floor review stands for N/(ρB) rows, and ρ = 0.3 halved the width of
#: the accuracy interval at a 5% budget (benchmarks/coverage.py, docs/benchmarks.md).
DEFAULT_FLOOR = 0.3
#: Slope β of the exponential-weighted rule.
DEFAULT_BETA = 10.0

_BISECTION_STEPS = 200  # more than enough to exhaust double precision on any bracket

#: A NumPy array or a torch tensor: anything with elementwise ``+ − ×`` and ``.clip(min=)``.
ArrayT = TypeVar("ArrayT")


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the given data (e.g. AUROC with one class); NaN is returned."""


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _top_order(scores: np.ndarray) -> np.ndarray:
    """Indices by decreasing score; ties keep increasing index (stable sort of −score)."""
    return np.argsort(-scores, kind="stable")


# --------------------------------------------------------------------------------------------
# Sampling rules π_B
# --------------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(−x)), accurate in both tails and free of overflow."""
    return np.exp(-np.logaddexp(0.0, -x))


def _rule_normalized(suspicion: np.ndarray, budget: float, beta: float) -> np.ndarray:
    total = float(suspicion.sum())
    if total == 0.0:
        return np.zeros_like(suspicion)
    return np.minimum(1.0, budget * suspicion / total)


def _rule_exponential(suspicion: np.ndarray, budget: float, beta: float) -> np.ndarray:
    n = suspicion.size
    if budget >= n:
        return np.ones_like(suspicion)
    if budget <= 0.0:
        return np.zeros_like(suspicion)

    def excess(alpha: float) -> float:  # decreasing in alpha
        return float(_sigmoid(beta * (suspicion - alpha)).sum()) - budget

    width = 1.0 / beta
    lo, hi = float(suspicion.min()) - width, float(suspicion.max()) + width
    while excess(lo) < 0.0:
        width *= 2.0
        lo -= width
    width = 1.0 / beta
    while excess(hi) > 0.0:
        width *= 2.0
        hi += width
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if excess(mid) > 0.0:
            lo = mid
        else:
            hi = mid
    alpha = lo if abs(excess(lo)) <= abs(excess(hi)) else hi
    return _sigmoid(beta * (suspicion - alpha))


def _rule_thresholded(suspicion: np.ndarray, budget: float, beta: float) -> np.ndarray:
    k = min(_round_half_up(budget), suspicion.size)
    pi = np.zeros_like(suspicion)
    pi[_top_order(suspicion)[:k]] = 1.0
    return pi


def _rule_uniform(suspicion: np.ndarray, budget: float, beta: float) -> np.ndarray:
    return np.full_like(suspicion, min(1.0, budget / suspicion.size))


_RULES: dict[str, Callable[[np.ndarray, float, float], np.ndarray]] = {
    "normalized": _rule_normalized,
    "exponential": _rule_exponential,
    "thresholded": _rule_thresholded,
    "uniform": _rule_uniform,
}

#: Names accepted by ``inclusion_probabilities(..., rule=...)``.
SAMPLING_RULES: tuple[str, ...] = tuple(_RULES)


def _raise_floor(rule_pi: np.ndarray, budget: float, floor_pi: float) -> np.ndarray:
    """π_i = min(1, f + π_rule_i) with the smallest f ≥ ``floor_pi`` such that Σ π_i = B.

    Σ_i min(1, f + r_i) is continuous and non-decreasing in f, so bisection finds f; the mass
    that caps at 1 would waste (and any shortfall of the rule itself) is spread evenly over the
    uncapped items.
    """
    n = rule_pi.size
    if budget >= n:
        return np.ones_like(rule_pi)

    def total(f: float) -> float:
        return float(np.minimum(1.0, f + rule_pi).sum())

    lo, hi = floor_pi, 1.0
    if total(lo) >= budget:
        return np.minimum(1.0, lo + rule_pi)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if total(mid) < budget:
            lo = mid
        else:
            hi = mid
    f = lo if abs(total(lo) - budget) <= abs(total(hi) - budget) else hi
    return np.minimum(1.0, f + rule_pi)


def inclusion_probabilities(
    suspicion: npt.ArrayLike,
    budget: int | float,
    *,
    rule: str = "thresholded",
    floor: float = DEFAULT_FLOOR,
    beta: float = DEFAULT_BETA,
) -> np.ndarray:
    """Probability π_i ∈ [0, 1] that item i is sent to a human, given the critic's suspicion.

    Parameters
    ----------
    suspicion : array-like of shape (N,)
        ε̂_i ∈ [0, 1], the critic's estimate of P(machine label is wrong); higher = more
        suspicious.
    budget : int or float
        B, the expected number of reviewed items: an ``int`` count in [1, N], or a ``float`` in
        (0, 1) meaning that fraction of N (B = budget · N, not rounded).
    rule : {"thresholded", "exponential", "normalized", "uniform"}
        How π depends on ε̂ (each given budget B_r, the part of B the rule spends):

        - ``"normalized"`` (prior work, active M-estimation), the paper's formula exactly:
          π_i = min(1, B_r · ε̂_i / Σ_j ε̂_j). Every π is small at low budgets, so the weights
          1/π explode and the estimate's variance with them (the paper's collapse on Stanford
          Cars). When caps at 1 bind, Σ π < B_r: the capped mass is lost, not redistributed.
          Needs Σ ε̂ > 0 when ``floor=0``.
        - ``"exponential"``: π_i = 1 / (1 + exp(−β (ε̂_i − α))), with α found by bisection so
          that Σ π = B_r (to about 1e-9 relative).
        - ``"thresholded"`` (the paper's recommendation): π_i = 1(ε̂_i ≥ τ), τ = the k-th
          largest ε̂, where k = round(B_r) (half up); ties at τ go to the lower index, so exactly
          k items get π = 1 and the rest π = 0.
        - ``"uniform"`` (baseline, ignores ε̂): π_i = B_r / N.
    floor : float in [0, 1)
        ρ, the share of the budget spent on uniform random review. With ρ > 0,

            π_i = min(1, f + π_rule_i),  π_rule computed with B_r = (1 − ρ) B,

        where f ≥ π_min = ρB/N is the smallest value making Σ π_i = B. So every π_i ≥ π_min > 0,
        which keeps the ACT estimate unbiased even on items where the critic misses an error
        (with ``floor=0`` the thresholded rule gives π = 0 there and is biased unless the critic
        catches every error). f > ρB/N exactly when some f + π_rule_i would exceed 1, or the
        rule itself spends less than B_r (normalized with caps, thresholded's rounding): the
        mass those caps would lose is spread evenly over the uncapped items, so the expected
        number of reviews Σ π_i equals B up to float error (~1e-9). For the thresholded rule
        with ρ > 0, k = ⌊(1 − ρ) B⌋ items get π = 1 and the fractional remainder goes to the
        floor. ``floor=0`` reproduces the paper's rules exactly (B_r = B, no redistribution).
    beta : float > 0
        β, the slope of the exponential rule (ignored by the others); larger β approaches the
        thresholded rule.

    Returns
    -------
    numpy.ndarray of shape (N,)
        π, each in [0, 1]; higher = more likely to be reviewed. Non-decreasing in ε̂ for every
        rule (thresholded: up to the index tie-break).

    Raises
    ------
    ValueError
        If ε̂ is empty, not 1-D or outside [0, 1]; the budget is not a count in [1, N] or a
        fraction in (0, 1); the rule is unknown; ρ ∉ [0, 1); β ≤ 0; or Σ ε̂ = 0 with the
        normalized rule and ``floor=0``.

    Examples
    --------
    >>> eps = [0.9, 0.1, 0.5, 0.5, 0.0]
    >>> inclusion_probabilities(eps, 2, rule="thresholded", floor=0.0)
    array([1., 0., 1., 0., 0.])
    >>> inclusion_probabilities(eps, 2, rule="normalized", floor=0.0)
    array([0.9, 0.1, 0.5, 0.5, 0. ])
    >>> pi = inclusion_probabilities(eps, 2, rule="thresholded", floor=0.5)
    >>> pi.round(3), round(float(pi.sum()), 9)
    (array([1.  , 0.25, 0.25, 0.25, 0.25]), 2.0)
    """
    eps = as_unit(suspicion, "suspicion")
    n = eps.size
    b = budget_count(budget, n)
    if not isinstance(rule, str) or rule not in _RULES:
        raise ValueError(f"rule must be one of {list(SAMPLING_RULES)}; got {rule!r}")
    rho = check_real(floor, "floor", low=0.0, high=1.0, closed="left")
    beta_value = check_real(beta, "beta", low=0.0, high=math.inf, closed="neither")
    if rule == "normalized" and rho == 0.0 and float(eps.sum()) == 0.0:
        raise ValueError(
            "the normalized rule needs a positive total suspicion; got all-zero suspicion "
            "(use floor > 0 or another rule)"
        )
    return _compute_inclusion(eps, b, rule=rule, rho=rho, beta=beta_value)


def _compute_inclusion(
    eps: np.ndarray, budget: float, *, rule: str, rho: float, beta: float
) -> np.ndarray:
    if rho == 0.0:
        return _RULES[rule](eps, budget, beta)
    rule_budget = (1.0 - rho) * budget
    if rule == "thresholded":
        rule_budget = float(math.floor(rule_budget + 1e-9))
    rule_pi = _RULES[rule](eps, rule_budget, beta)
    return _raise_floor(rule_pi, budget, rho * budget / eps.size)


def draw_review(
    pi: npt.ArrayLike, *, seed: int | np.random.SeedSequence | np.random.Generator | None
) -> np.ndarray:
    """Draw who is reviewed: δ_i ~ Bernoulli(π_i), independently (Poisson sampling).

    The number reviewed is random with mean Σ π_i (the budget B) and variance Σ π_i (1 − π_i).

    Parameters
    ----------
    pi : array-like of shape (N,)
        Inclusion probabilities in [0, 1], e.g. from :func:`inclusion_probabilities`.
    seed : int, SeedSequence, Generator or None
        Passed to ``numpy.random.default_rng``; the same int gives the same draw. ``None``
        draws fresh entropy (not reproducible).

    Returns
    -------
    numpy.ndarray of bool, shape (N,)
        δ; True = send to a human. Always True where π = 1, never where π = 0.

    Examples
    --------
    >>> draw_review([1.0, 0.0, 1.0], seed=0)
    array([ True, False,  True])
    >>> bool((draw_review([0.3] * 50, seed=7) == draw_review([0.3] * 50, seed=7)).all())
    True
    """
    probabilities = as_unit(pi, "pi")
    if isinstance(seed, bool) or not (
        seed is None
        or isinstance(seed, (int, np.integer, np.random.SeedSequence, np.random.Generator))
    ):
        raise ValueError(f"seed must be an int, SeedSequence, Generator or None; got {seed!r}")
    if isinstance(seed, (int, np.integer)) and seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    rng = np.random.default_rng(seed)
    return rng.random(probabilities.size) < probabilities


# --------------------------------------------------------------------------------------------
# Weights and estimates
# --------------------------------------------------------------------------------------------


def _inverse_weight(delta: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """δ_i / π_i, defined as 0 where δ_i = 0 (including where π_i = 0)."""
    return np.divide(1.0, pi, out=np.zeros_like(pi), where=delta)


#: λ: one number for every item, or one per item (an array of shape (N,)).
Lam = float | npt.ArrayLike


def check_lams(lam: object, n: int) -> float | np.ndarray:
    """λ validated: a float in [0, 1] stays a float; anything else must be N values in [0, 1].

    >>> check_lams(0.5, 3), check_lams([1.0, 0.25, 0.0], 3).tolist()
    (0.5, [1.0, 0.25, 0.0])
    """
    if np.ndim(lam) == 0:  # type: ignore[arg-type]
        return check_lam(lam)
    return as_unit(lam, "lam", n=n)  # type: ignore[arg-type]


def soft_lambda(wrong_probability: npt.ArrayLike, *, power: float = 1.0) -> np.ndarray:
    """λ_i = (1 − p_i)^k: the machine label's weight from the probability that it is right.

    ``wrong_probability`` is p_i ≈ P(ŷ_i wrong), in [0, 1]: a calibrated critic
    (:func:`cross_fitted_probabilities` in one draw; in a review in rounds, the calibration
    fitted on the earlier rounds) or the raw suspicion ε̂. ``power`` k > 0 sharpens the map
    (k = 1: λ_i = 1 − p_i). Unbiased as λ of the ACT loss for any k as long as p_i does not
    depend on δ_i (module docstring).

    >>> soft_lambda([0.0, 0.25, 1.0]).tolist(), soft_lambda([0.5], power=2.0).tolist()
    ([1.0, 0.75, 0.0], [0.25])
    """
    k = check_real(power, "power", low=0.0, high=math.inf, closed="neither")
    right = 1.0 - as_unit(wrong_probability, "wrong_probability")
    return right if k == 1.0 else right**k


def act_weights(
    delta: npt.ArrayLike, pi: npt.ArrayLike, *, lam: Lam = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-item weights of the machine-label row and the human-label row of the ACT loss.

    From L = (1/N) Σ_i [λ ℓᵐ_i + (ℓ_i − λ ℓᵐ_i) δ_i/π_i] = (1/N) Σ_i [w_m,i ℓᵐ_i + w_h,i ℓ_i]:

        w_m,i = λ (1 − δ_i/π_i),   w_h,i = δ_i / π_i,

    with δ_i/π_i := 0 where δ_i = 0 (π_i may be 0 only there).

    Parameters
    ----------
    delta : array-like of bool or {0, 1}, shape (N,)
        δ, whether item i was reviewed.
    pi : array-like of shape (N,)
        π, the probabilities δ was drawn with.
    lam : float in [0, 1], or array-like of shape (N,) with values in [0, 1]
        λ, the power-tuning factor on machine terms (1 = the paper's loss), one for all items
        or one per item (λ_i; unbiased if λ_i does not depend on δ_i, module docstring).

    Returns
    -------
    (w_machine, w_human) : tuple of numpy.ndarray, shape (N,)
        w_m = λ for unreviewed items and λ(1 − 1/π) ≤ 0 for reviewed ones (negative when
        π < 1, zero when π = 1); w_h = 0 for unreviewed items and 1/π ≥ 1 for reviewed ones.

    Examples
    --------
    >>> w_m, w_h = act_weights([1, 0, 1], [0.5, 0.0, 1.0])
    >>> w_m, w_h
    (array([-1.,  1.,  0.]), array([2., 0., 1.]))
    >>> act_weights([1, 0, 1], [0.5, 0.0, 1.0], lam=[0.5, 0.25, 1.0])[0]
    array([-0.5 ,  0.25,  0.  ])
    """
    delta_array, pi_array = as_review(delta, pi)
    return _compute_weights(delta_array, pi_array, check_lams(lam, pi_array.size))


def _compute_weights(
    delta: np.ndarray, pi: np.ndarray, lam: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    w_human = _inverse_weight(delta, pi)
    return lam * (1.0 - w_human), w_human


def act_loss_estimate(
    machine_loss: npt.ArrayLike,
    human_loss: npt.ArrayLike,
    delta: npt.ArrayLike,
    pi: npt.ArrayLike,
    *,
    lam: Lam = 1.0,
) -> float:
    """ACT estimate of the mean full-human loss (1/N) Σ ℓ_i from machine losses and reviews.

        L̂ = (1/N) Σ_i [ λ ℓᵐ_i + (ℓ_i − λ ℓᵐ_i) · δ_i / π_i ]

    Unbiased over the draw of δ (E[L̂] = (1/N) Σ ℓ_i) if π_i > 0 wherever ℓ_i ≠ λ ℓᵐ_i. Its
    variance is (1/N²) Σ_i (ℓ_i − λ ℓᵐ_i)² (1 − π_i)/π_i: zero when the reviewed items are
    exactly those where machine and human disagree, large when such items have small π.

    Parameters
    ----------
    machine_loss : array-like of shape (N,)
        ℓᵐ_i, the loss against the machine label (finite).
    human_loss : array-like of shape (N,)
        ℓ_i, the loss against the human label; must be finite where δ_i = 1 and is ignored
        (may be NaN) where δ_i = 0.
    delta, pi : array-like of shape (N,)
        Review indicators and the inclusion probabilities they were drawn with.
    lam : float in [0, 1], or array-like of shape (N,) with values in [0, 1]
        λ, power-tuning factor on the machine terms (one per item: see :func:`act_weights`).

    Returns
    -------
    float
        L̂, in the units of the loss; not constrained to the loss's range (the correction
        terms can be negative).

    Examples
    --------
    >>> act_loss_estimate([0.2, 0.4], [float("nan"), 1.0], [0, 1], [0.5, 0.5])
    0.9
    """
    delta_array, pi_array = as_review(delta, pi)
    n = pi_array.size
    machine = as_finite(machine_loss, "machine_loss", n=n)
    human = as_vector(human_loss, "human_loss", n=n)
    bad = delta_array & ~np.isfinite(human)
    if bad.any():
        raise ValueError(first_bad(human, bad, "human_loss", "be finite where delta is 1"))
    return _compute_loss(machine, human, delta_array, pi_array, check_lams(lam, n))


def _compute_loss(
    machine: np.ndarray,
    human: np.ndarray,
    delta: np.ndarray,
    pi: np.ndarray,
    lam: float | np.ndarray,
) -> float:
    human_read = np.where(delta, human, 0.0)  # ℓ_i is only read where δ_i = 1 (may be NaN)
    return float(np.mean(act_terms(machine, human_read, _inverse_weight(delta, pi), lam=lam)))


def act_terms(
    machine_loss: ArrayT,
    human_loss: ArrayT,
    ratio: ArrayT,
    *,
    lam: float | ArrayT,
    clip: bool = False,
) -> ArrayT:
    """Per-item terms of the ACT loss, whose mean over the N items is the loss:

        t_i = λ ℓᵐ_i + (ℓ_i − λ ℓᵐ_i) · δ_i / π_i,      clipped: max(0, t_i).

    Plain arithmetic, so it runs on NumPy arrays and on torch tensors (keeping autograd) alike;
    nothing is validated. ``ratio`` is δ_i/π_i with 0 where δ_i = 0, ``lam`` one λ or one λ_i per
    item (the same shape as the losses), and ``human_loss`` must be finite everywhere (fill
    unreviewed items with any finite loss: it is multiplied by 0).

    The plain terms give the unbiased estimate of :func:`act_loss_estimate`, but a reviewed item
    with π_i < 1 whose human label disagrees makes t_i unbounded below as ℓᵐ_i grows. Clipping
    at 0 stops that item pulling once ℓ_i ≤ (1 − π_i) λ ℓᵐ_i (the model prefers the human label),
    at the price of exact unbiasedness; items with δ_i = 0 or ℓ_i = ℓᵐ_i are unchanged.

    Examples
    --------
    >>> machine, human, ratio = np.array([0.2, 0.4]), np.array([0.0, 1.0]), np.array([0.0, 2.0])
    >>> act_terms(machine, human, ratio, lam=1.0)
    array([0.2, 1.6])
    >>> act_terms(np.array([3.0]), np.array([0.5]), np.array([2.0]), lam=1.0, clip=True)
    array([0.])
    """
    terms = lam * machine_loss + (human_loss - lam * machine_loss) * ratio
    return terms.clip(min=0.0) if clip else terms


# --------------------------------------------------------------------------------------------
# Interval estimates of the number of wrong labels (Horvitz–Thompson and model-assisted)
# --------------------------------------------------------------------------------------------

_LGAMMA = np.frompyfunc(math.lgamma, 1, 1)
#: Above this shape the Wilson–Hilferty cube root is exact to ~1e-8 relative (faster than Newton).
_WILSON_HILFERTY_SHAPE = 10_000.0
_GAMMA_TOLERANCE = 1e-15
_GAMMA_MAX_TERMS = 100_000
_NEWTON_STEPS = 100


def _lgamma(a: np.ndarray) -> np.ndarray:
    return np.asarray(_LGAMMA(a), dtype=float)


def _gamma_series(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(a, x) = e^(−x) x^a / Γ(a) · Σ_n x^n / (a (a+1) … (a+n)), for x < a + 1."""
    term = 1.0 / a
    total = term.copy()
    shifted = a.copy()
    for _ in range(_GAMMA_MAX_TERMS):
        shifted = shifted + 1.0
        term = term * x / shifted
        total = total + term
        if np.all(np.abs(term) <= np.abs(total) * _GAMMA_TOLERANCE):
            break
    return total * np.exp(-x + a * np.log(x) - _lgamma(a))


def _gamma_fraction(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(a, x) = 1 − Q(a, x), Q by its continued fraction (modified Lentz), for x ≥ a + 1."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = np.full(a.shape, 1.0 / tiny)
    d = 1.0 / b
    h = d.copy()
    for i in range(1, _GAMMA_MAX_TERMS):
        an = -i * (i - a)
        b = b + 2.0
        d = an * d + b
        d = np.where(np.abs(d) < tiny, tiny, d)
        c = b + an / c
        c = np.where(np.abs(c) < tiny, tiny, c)
        d = 1.0 / d
        step = d * c
        h = h * step
        if np.all(np.abs(step - 1.0) <= _GAMMA_TOLERANCE):
            break
    return 1.0 - np.exp(-x + a * np.log(x) - _lgamma(a)) * h


def _regularized_gamma(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The regularized lower incomplete gamma P(a, x) = γ(a, x) / Γ(a), elementwise (a > 0)."""
    out = np.zeros(a.shape)
    series = (x > 0.0) & (x < a + 1.0)
    fraction = x >= a + 1.0
    if series.any():
        out[series] = _gamma_series(a[series], x[series])
    if fraction.any():
        out[fraction] = _gamma_fraction(a[fraction], x[fraction])
    return out


def _unit_gamma_quantile(q: float, shape: np.ndarray) -> np.ndarray:
    """x with P(shape, x) = q (unit scale): Newton from the Wilson–Hilferty start, kept inside
    a bisection bracket; above :data:`_WILSON_HILFERTY_SHAPE` the start itself."""
    z = NormalDist().inv_cdf(q)
    a = shape
    cube = a * np.maximum(1.0 - 1.0 / (9.0 * a) + z / (3.0 * np.sqrt(a)), 1e-3) ** 3
    small = np.exp((math.log(q) + _lgamma(a + 1.0)) / a)  # P(a, x) ≈ x^a / Γ(a + 1) near 0
    x = np.where(a < 1.0, np.minimum(small, cube), cube)
    todo = a < _WILSON_HILFERTY_SHAPE
    if not todo.any():
        return x
    a_t, x_t = a[todo], x[todo]
    lo, hi = np.zeros_like(a_t), np.full_like(a_t, np.inf)
    for _ in range(_NEWTON_STEPS):
        p = _regularized_gamma(a_t, x_t)
        lo, hi = np.where(p < q, x_t, lo), np.where(p >= q, x_t, hi)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            density = np.exp((a_t - 1.0) * np.log(x_t) - x_t - _lgamma(a_t))
            new = x_t - (p - q) / density
        outside = ~np.isfinite(new) | (new <= lo) | (new >= hi)
        new = np.where(outside, np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * x_t), new)
        done = np.all(np.abs(new - x_t) <= 1e-12 * x_t)
        x_t = new
        if done:
            break
    x[todo] = x_t
    return x


def gamma_quantile(q: float, mean: npt.ArrayLike, variance: npt.ArrayLike) -> np.ndarray:
    """The q-quantile of the gamma distribution with the given mean m and variance v.

    Shape k = m² / v, scale θ = v / m; the quantile is θ · P⁻¹(k, q), with P the regularized
    lower incomplete gamma. Degenerate cases: m ≤ 0 gives 0; v ≤ 0 (with m > 0) gives m.
    Elementwise over broadcast ``mean`` and ``variance``; accurate to ~1e-12 relative
    (Wilson–Hilferty, ~1e-8, above shape 10,000).

    Examples
    --------
    >>> float(gamma_quantile(0.5, 1.0, 1.0).round(6))  # exponential(1): median ln 2
    0.693147
    >>> gamma_quantile(0.975, [0.0, 2.0], [1.0, 0.0]).tolist()
    [0.0, 2.0]
    """
    level = check_real(q, "q", low=0.0, high=1.0, closed="neither")
    m, v = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(variance, dtype=float))
    out = np.where(m > 0.0, m, 0.0)
    proper = (m > 0.0) & (v > 0.0)
    if proper.any():
        shape, scale = m[proper] ** 2 / v[proper], v[proper] / m[proper]
        out[proper] = scale * _unit_gamma_quantile(level, shape)
    return out


#: Calibrations are fitted on logit(ε̂) with ε̂ clipped to [δ, 1 − δ], δ = this.
_LOGIT_CLIP = 1e-3
#: Ridge pull of Platt's (a, b) toward (0, 1), i.e. toward P(wrong) = ε̂, in rows' worth.
PLATT_RIDGE = 1.0
#: Folds of the cross-fitted calibration (rows i with i mod K = k form fold k).
CROSS_FIT_FOLDS = 2
_PLATT_STEPS = 50
_PLATT_HALVINGS = 40


def _logit(suspicion: np.ndarray) -> np.ndarray:
    eps = np.clip(suspicion, _LOGIT_CLIP, 1.0 - _LOGIT_CLIP)
    return np.log(eps) - np.log1p(-eps)


def _platt_fit(
    x: np.ndarray, wrong: np.ndarray, weight: np.ndarray, *, ridge: float = PLATT_RIDGE
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted logistic fit P(wrong) = σ(a + b·x) over the last axis, by Newton's method.

    Maximises Σ_i u_i [e_i log p_i + (1 − e_i) log(1 − p_i)] − (r/2)[a² + (b − 1)²], with the
    weights u rescaled to sum to the number of rows with u > 0 (so r counts in rows). Leading
    axes are independent fits; u = 0 marks padding. Returns (a, b), each of the leading shape.

    Newton's method with step halving: a full step is taken when it does not lower the
    objective's value, else it is halved (up to ``_PLATT_HALVINGS`` times). The pure Newton
    iteration diverged on designs with very unequal weights (rows with π = 1 and floor rows with
    1/π ≈ 40: b ≈ 1,200, every P(wrong) ≈ 0 below the threshold); the objective is concave,
    so the safeguarded iteration reaches its unique maximum.
    """
    count = (weight > 0.0).sum(axis=-1, keepdims=True)
    total = weight.sum(axis=-1, keepdims=True)
    u = np.divide(weight * count, total, out=np.zeros_like(weight), where=total > 0.0)
    y = wrong.astype(float)
    a = np.zeros(u.shape[:-1])
    b = np.ones(u.shape[:-1])

    def loss(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # − the objective
        z = a[..., None] + b[..., None] * x
        fit = (u * (np.logaddexp(0.0, z) - y * z)).sum(axis=-1)
        return fit + 0.5 * ridge * (a**2 + (b - 1.0) ** 2)

    current = loss(a, b)
    for _ in range(_PLATT_STEPS):
        p = _sigmoid(a[..., None] + b[..., None] * x)
        resid, curv = u * (p - y), u * p * (1.0 - p)
        g_a = resid.sum(axis=-1) + ridge * a
        g_b = (resid * x).sum(axis=-1) + ridge * (b - 1.0)
        h_aa = curv.sum(axis=-1) + ridge
        h_ab = (curv * x).sum(axis=-1)
        h_bb = (curv * x * x).sum(axis=-1) + ridge
        det = h_aa * h_bb - h_ab**2
        step_a, step_b = (h_bb * g_a - h_ab * g_b) / det, (h_aa * g_b - h_ab * g_a) / det
        new_a, new_b = a - step_a, b - step_b
        value = loss(new_a, new_b)
        for _ in range(_PLATT_HALVINGS):
            worse = value > current
            if not np.any(worse):
                break
            step_a = np.where(worse, step_a / 2, step_a)
            step_b = np.where(worse, step_b / 2, step_b)
            new_a, new_b = np.where(worse, a - step_a, new_a), np.where(worse, b - step_b, new_b)
            value = np.where(worse, loss(new_a, new_b), value)
        stuck = value > current  # no descent even at the smallest step: stay
        a, b = np.where(stuck, a, new_a), np.where(stuck, b, new_b)
        current = np.where(stuck, current, value)
        if np.all(np.abs(step_a) + np.abs(step_b) < 1e-10):
            break
    return a, b


def calibrate_suspicion(
    suspicion: npt.ArrayLike,
    wrong: npt.ArrayLike,
    weights: npt.ArrayLike,
    *,
    ridge: float = PLATT_RIDGE,
) -> Callable[[npt.ArrayLike], np.ndarray]:
    """Platt calibration of the critic: P(wrong | ε̂) ≈ σ(a + b · logit ε̂), fitted by weights.

    Fit on reviewed rows with weights u_i = 1/π_i, it estimates the calibration over every row
    with π > 0 (each reviewed row stands for 1/π_i rows). A ridge r/2 · [a² + (b − 1)²] pulls
    toward the identity map P(wrong) = ε̂ (r counts in rows), which keeps the fit finite when
    the reviewed rows are all right or all wrong. ε̂ is clipped to [0.001, 0.999] first.

    Parameters
    ----------
    suspicion : array-like of shape (M,)
        ε̂ of the rows to fit on, in [0, 1].
    wrong : array-like of bool or {0, 1}, shape (M,)
        e_i, whether each machine label was wrong.
    weights : array-like of shape (M,)
        u_i ≥ 0 (0 = ignore the row), e.g. 1/π_i.
    ridge : float ≥ 0
        r, the pull toward the identity map.

    Returns
    -------
    callable
        Maps ε̂ (array-like in [0, 1]) to the calibrated P(wrong), an array in (0, 1).

    Examples
    --------
    >>> calibrated = calibrate_suspicion([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], [1, 1, 1, 1])
    >>> bool(calibrated([0.9])[0] > 0.9), bool(calibrated([0.1])[0] < 0.1)
    (True, True)
    """
    return platt_map(*platt_parameters(suspicion, wrong, weights, ridge=ridge))


def platt_parameters(
    suspicion: npt.ArrayLike,
    wrong: npt.ArrayLike,
    weights: npt.ArrayLike,
    *,
    ridge: float = PLATT_RIDGE,
) -> tuple[float, float]:
    """(a, b) of :func:`calibrate_suspicion`'s fit, P(wrong | ε̂) ≈ σ(a + b · logit ε̂).

    >>> a, b = platt_parameters([0.5, 0.5], [0, 0], [1, 1])
    >>> bool(a < 0), round(b, 6)  # all right: pulled below the identity map
    (True, 1.0)
    """
    eps = as_unit(suspicion, "suspicion")
    e = as_indicator(wrong, "wrong", n=eps.size)
    u = as_weights(weights, "weights", n=eps.size)
    r = check_real(ridge, "ridge", low=0.0, high=math.inf, closed="left")
    a, b = _platt_fit(_logit(eps), e, u, ridge=r)
    return float(a), float(b)


def platt_map(a: float, b: float) -> Callable[[npt.ArrayLike], np.ndarray]:
    """ε̂ ↦ σ(a + b · logit ε̂), ε̂ clipped to [0.001, 0.999] first.

    >>> platt_map(0.0, 1.0)([0.25]).round(6).tolist()
    [0.25]
    """
    a_value = check_real(a, "a", low=-math.inf, high=math.inf, closed="neither")
    b_value = check_real(b, "b", low=-math.inf, high=math.inf, closed="neither")

    def calibrated(values: npt.ArrayLike) -> np.ndarray:
        return _sigmoid(a_value + b_value * _logit(as_unit(values, "suspicion")))

    return calibrated


def _cross_fitted(
    suspicion: np.ndarray, wrong: np.ndarray, delta: np.ndarray, pi: np.ndarray, folds: np.ndarray
) -> np.ndarray:
    """p̂_i = σ(a₋ₖ + b₋ₖ · logit ε̂_i) for i in fold k, (a₋ₖ, b₋ₖ) fitted by :func:`_platt_fit`
    on the reviewed rows outside fold k with weights 1/π. Leading axes of ``delta`` (and
    ``wrong``) are independent draws; ``suspicion``, ``pi`` and ``folds`` have shape (N,)."""
    x = _logit(suspicion)
    inverse = _inverse_weight(pi > 0.0, pi)  # 1/π, 0 where π = 0
    predicted = np.zeros(delta.shape)
    for k in np.unique(folds):
        train = delta & (folds != k)
        # the training rows of each draw first (the rest is padding with weight 0): fits cost
        # O(reviewed rows), not O(N)
        m = int(train.sum(axis=-1).max(initial=0))
        order = np.argsort(~train, axis=-1, kind="stable")[..., :m]
        kept = np.take_along_axis(train, order, axis=-1)
        a, b = _platt_fit(
            x[order],
            np.take_along_axis(wrong, order, axis=-1) & kept,
            np.where(kept, inverse[order], 0.0),
        )
        mine = folds == k
        predicted[..., mine] = _sigmoid(a[..., None] + b[..., None] * x[mine])
    return predicted


def cross_fitted_probabilities(
    suspicion: npt.ArrayLike,
    wrong: npt.ArrayLike,
    delta: npt.ArrayLike,
    pi: npt.ArrayLike,
    *,
    folds: int = CROSS_FIT_FOLDS,
) -> np.ndarray:
    """Cross-fitted calibrated P(wrong) of every row: p̂_i = σ(a₋ₖ + b₋ₖ · logit ε̂_i).

    Rows i with i mod K = k form fold k; (a₋ₖ, b₋ₖ) is :func:`calibrate_suspicion` fitted on
    the reviewed rows of the other folds with weights 1/π. So p̂_i never depends on row i's own
    review (δ_i, e_i), which keeps the model-assisted estimate unbiased.

    Parameters
    ----------
    suspicion : array-like of shape (N,)
        ε̂ in [0, 1].
    wrong : array-like of bool or {0, 1}, shape (N,)
        e_i, read only where δ_i = 1.
    delta, pi : array-like of shape (N,)
        Review indicators and inclusion probabilities.
    folds : int ≥ 2
        K.

    Returns
    -------
    numpy.ndarray of shape (N,)
        p̂_i in (0, 1).

    Examples
    --------
    >>> p = cross_fitted_probabilities([0.9, 0.9, 0.1, 0.1], [1, 1, 0, 0], [1] * 4, [1.0] * 4)
    >>> bool(p[0] > 0.5 > p[2])
    True
    """
    delta_array, pi_array = as_review(delta, pi)
    n = pi_array.size
    eps = as_unit(suspicion, "suspicion", n=n)
    e = as_indicator(wrong, "wrong", n=n) & delta_array
    k = _check_folds(folds)
    return _cross_fitted(eps, e, delta_array, pi_array, np.arange(n) % k)


def _check_folds(folds: object) -> int:
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an int >= 2; got {folds!r}")
    return int(folds)


@dataclass(frozen=True)
class _Totals:
    """Error-count estimate and bounds; arrays over any leading (draw) axes."""

    estimate: np.ndarray
    variance: np.ndarray
    low: np.ndarray
    high: np.ndarray
    found: np.ndarray


def _unseen(delta: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """Rows whose error would be unseen and weighted: not reviewed, 0 < π < 1."""
    return ~delta & (pi > 0.0) & (pi < 1.0)


def _largest_jump(
    gain: np.ndarray, delta: np.ndarray, pi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(J, J_v): the largest ``gain`` over the unreviewed rows with 0 < π < 1, and the variance
    J² (1 − π_j) its row would add if reviewed; (0, 0) when no such row is left."""
    gains = np.where(_unseen(delta, pi), gain, 0.0)
    j = gains.argmax(axis=-1)
    jump = np.take_along_axis(gains, j[..., None], axis=-1)[..., 0]
    return jump, jump**2 * (1.0 - pi[j])


@dataclass(frozen=True)
class _Parts:
    """What a Fay–Feuer interval is built from; arrays over any leading (draw) axes.

    T̂ = certain + y; v = V̂; down / up = (J⁻, J⁻_v) / (J⁺, J⁺_v): what one more right / wrong
    label found would take from / add to y, and the variance it would add.
    """

    certain: np.ndarray
    y: np.ndarray
    v: np.ndarray
    down: tuple[np.ndarray, np.ndarray]
    up: tuple[np.ndarray, np.ndarray]


def _bounds(parts: _Parts, found: np.ndarray, cap: np.ndarray, alpha: float) -> _Totals:
    """Fay–Feuer bounds, lower G_{α/2}(Y − J⁻, V + J⁻_v), upper G_{1−α/2}(Y + J⁺, V + J⁺_v),
    shifted by the exactly known count and clipped to what is possible (found ≤ T ≤ cap)."""
    y, v = parts.y, parts.v
    (down, down_var), (up, up_var) = parts.down, parts.up
    lo = gamma_quantile(alpha / 2.0, np.maximum(y - down, 0.0), v + down_var)
    hi = gamma_quantile(1.0 - alpha / 2.0, np.maximum(y, 0.0) + up, v + up_var)
    return _Totals(
        estimate=parts.certain + y,
        variance=v,
        low=np.clip(parts.certain + lo, found, cap),
        high=np.clip(parts.certain + hi, found, cap),
        found=found,
    )


def _bounded(
    parts: _Parts, wrong: np.ndarray, delta: np.ndarray, pi: np.ndarray, alpha: float
) -> _Totals:
    """:func:`_bounds` for one draw: found = Σ δe, cap = found + unreviewed rows with π > 0."""
    found = (wrong & delta).sum(axis=-1).astype(float)
    cap = found + (~delta & (pi > 0.0)).sum(axis=-1)
    return _bounds(parts, found, cap, alpha)


def _inverse_partial(pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows with 0 < π < 1, 1/π there and 0 elsewhere)."""
    partial = (pi > 0.0) & (pi < 1.0)
    return partial, _inverse_weight(partial, pi)


def _ht_parts(wrong: np.ndarray, delta: np.ndarray, pi: np.ndarray) -> _Parts:
    """Horvitz–Thompson T̂ = Σ δe/π (see :func:`error_count_estimate`); over the last axis."""
    found = wrong & delta
    _, inverse = _inverse_partial(pi)
    y = (found * inverse).sum(axis=-1)
    none = np.zeros(y.shape)
    return _Parts(
        certain=(found & (pi >= 1.0)).sum(axis=-1).astype(float),
        y=y,
        v=(found * (1.0 - pi) * inverse**2).sum(axis=-1),
        down=(none, none),
        up=_largest_jump(np.broadcast_to(inverse, delta.shape), delta, pi),
    )


def _ma_parts(
    wrong: np.ndarray, delta: np.ndarray, pi: np.ndarray, predicted: np.ndarray
) -> _Parts:
    """Difference estimator T̂ = Σ [p̂ + δ(e − p̂)/π] (see :func:`error_count_estimate`)."""
    partial, inverse = _inverse_partial(pi)
    e = (wrong & delta).astype(float)
    residual = np.where(delta & partial, e - predicted, 0.0)
    return _Parts(
        certain=(e * (pi >= 1.0)).sum(axis=-1),
        y=(np.where(partial, predicted, 0.0) + residual * inverse).sum(axis=-1),
        v=(residual**2 * (1.0 - pi) * inverse**2).sum(axis=-1),
        down=_largest_jump(predicted * inverse, delta, pi),  # one more right label found
        up=_largest_jump((1.0 - predicted) * inverse, delta, pi),  # one more wrong label found
    )


def _ht_totals(wrong: np.ndarray, delta: np.ndarray, pi: np.ndarray, alpha: float) -> _Totals:
    """Horvitz–Thompson T̂ with the Fay–Feuer gamma interval; leading axes are draws."""
    return _bounded(_ht_parts(wrong, delta, pi), wrong, delta, pi, alpha)


def _ma_totals(
    wrong: np.ndarray, delta: np.ndarray, pi: np.ndarray, predicted: np.ndarray, alpha: float
) -> _Totals:
    """The difference estimator with its Fay–Feuer-type gamma interval; leading axes are draws."""
    return _bounded(_ma_parts(wrong, delta, pi, predicted), wrong, delta, pi, alpha)


#: The model-assisted estimator is used only where the design expects at least this many
#: reviews among rows with 0 < π < 1 (Σ π over them); with fewer, its interval under-covered
#: (benchmarks/coverage.py) and Horvitz–Thompson is used. The choice depends on π only, not on
#: the draw, so both branches stay unbiased.
MIN_ASSISTED_REVIEWS = 10


def _assisted_applies(pi: np.ndarray, minimum: float = MIN_ASSISTED_REVIEWS) -> bool:
    """Whether the design expects at least ``minimum`` reviews among rows with 0 < π < 1."""
    partial, _ = _inverse_partial(pi)
    return bool(pi[partial].sum() >= minimum)


def _assisted_parts(
    suspicion: np.ndarray,
    wrong: np.ndarray,
    delta: np.ndarray,
    pi: np.ndarray,
    folds: np.ndarray,
    minimum: float = MIN_ASSISTED_REVIEWS,
) -> tuple[_Parts, bool]:
    """The model-assisted parts if Σ_{0<π<1} π ≥ ``minimum``, else Horvitz–Thompson's; and
    whether the model-assisted ones were used."""
    if not _assisted_applies(pi, minimum):
        return _ht_parts(wrong, delta, pi), False
    predicted = _cross_fitted(suspicion, wrong, delta, pi, folds)
    return _ma_parts(wrong, delta, pi, predicted), True


#: Names accepted by ``error_count_estimate(..., method=...)``.
ESTIMATORS: tuple[str, ...] = ("model-assisted", "horvitz-thompson")


@dataclass(frozen=True)
class ErrorCount:
    """Estimate of the number of wrong machine labels T = Σ_i e_i, with a confidence interval.

    Attributes
    ----------
    estimate : float
        T̂, unbiased for T over the draw (rows with π = 0 count as right).
    stderr : float
        √V̂, the estimated standard error of T̂.
    ci_low, ci_high : float
        The interval for T (Fay–Feuer gamma; see :func:`error_count_estimate`), within
        [found, found + unreviewed rows with π > 0].
    found : int
        Σ δ_i e_i, wrong labels humans found (and fixed).
    n : int
        N, the number of rows.
    n_reviewed : int
        Σ δ_i.
    method : str
        The estimator used: "model-assisted" or "horvitz-thompson" (also when model-assisted
        was asked for but the design expects fewer than :data:`MIN_ASSISTED_REVIEWS` reviews
        among rows with 0 < π < 1).
    """

    estimate: float
    stderr: float
    ci_low: float
    ci_high: float
    found: int
    n: int
    n_reviewed: int
    method: str

    @property
    def remaining(self) -> float:
        """T̂ − found: wrong labels estimated to remain on unreviewed rows."""
        return self.estimate - self.found

    @property
    def remaining_ci(self) -> tuple[float, float]:
        """The interval for the wrong labels left: (ci_low − found, ci_high − found)."""
        return self.ci_low - self.found, self.ci_high - self.found


def error_count_estimate(
    wrong: npt.ArrayLike,
    delta: npt.ArrayLike,
    pi: npt.ArrayLike,
    *,
    suspicion: npt.ArrayLike | None = None,
    method: str | None = None,
    confidence: float = 0.95,
    folds: int = CROSS_FIT_FOLDS,
) -> ErrorCount:
    """Estimate how many machine labels are wrong, T = Σ_i e_i, from a reviewed sample.

    Rows with π_i = 1 are all reviewed: their errors are counted exactly. The rest carry
    sampling error. Two estimators (unbiased over the Poisson draw wherever π > 0):

    - ``"horvitz-thompson"``: T̂ = Σ_{π=1} e_i + Y, Y = Σ_{π<1} δ_i e_i / π_i, variance
      estimate V = Σ δ_i e_i (1 − π_i)/π_i².
    - ``"model-assisted"`` (the difference estimator of model-assisted survey sampling, as in
      "active inference"): p̂_i ≈ P(wrong | ε̂_i) from :func:`calibrate_suspicion` on the
      reviewed rows (weights 1/π), cross-fitted: rows i with i mod K = k are predicted by a
      fit on the other folds, so p̂_i does not depend on δ_i. Then
      Y = Σ_{π<1} [p̂_i + δ_i (e_i − p̂_i)/π_i], V = Σ δ_i (e_i − p̂_i)² (1 − π_i)/π_i².
      Unbiased for any p̂ of that kind; narrower when p̂ predicts e well. Needs ``suspicion``,
      and a design expecting at least :data:`MIN_ASSISTED_REVIEWS` reviews among rows with
      0 < π < 1 (Σ π over them; a property of π, not of the draw, so the choice keeps both
      branches unbiased); below, Horvitz–Thompson is used and ``method`` of the result says so.

    The interval is Fay–Feuer's gamma interval (Fay & Feuer 1997, for weighted sums of rare
    events), not the normal one (which under-covers when a few errors found by low-π review
    carry weights 1/π): with G_q(m, v) the q-quantile of the gamma with mean m and variance v,

        low  = Σ_{π=1} e + G_{α/2}(Y − J⁻, V + J⁻_v),
        high = Σ_{π=1} e + G_{1−α/2}(Y + J⁺, V + J⁺_v),

    where J⁺ is what one more error found would add to Y, on the unreviewed row with
    0 < π < 1 where it weighs most, and J⁻ what one more right label found would take away,
    each with J_v = J² (1 − π_j), the variance that row would add (Horvitz–Thompson:
    J⁺ = 1/π_min, J⁺_v = J⁺(J⁺ − 1), J⁻ = 0; model-assisted: J⁺ = max (1 − p̂_j)/π_j,
    J⁻ = max p̂_j/π_j). J = 0 when no such row is left. Both bounds
    are clipped to [found, found + unreviewed rows with π > 0]. The interval has zero width
    only when every row with 0 < π < 1 was reviewed. Coverage (95% nominal) was measured over
    a grid of designs in ``benchmarks/coverage.py`` (docs/benchmarks.md).

    Parameters
    ----------
    wrong : array-like of bool or {0, 1}, shape (N,)
        e_i, read only where δ_i = 1.
    delta, pi : array-like of shape (N,)
        Review indicators and the inclusion probabilities they were drawn with.
    suspicion : array-like of shape (N,), optional
        ε̂_i in [0, 1]; required by the model-assisted estimator.
    method : {"model-assisted", "horvitz-thompson"} or None
        The estimator; None = model-assisted when ``suspicion`` is given, else
        Horvitz–Thompson.
    confidence : float in (0, 1)
        1 − α, the coverage of the interval.
    folds : int ≥ 2
        K, the folds of the cross-fitted calibration.

    Returns
    -------
    ErrorCount
        Lower ``estimate`` = fewer wrong labels.

    Examples
    --------
    >>> est = error_count_estimate([0, 1, 1, 0], [1, 1, 1, 0], [1.0, 1.0, 0.5, 0.5])
    >>> est.estimate, est.found, est.remaining
    (3.0, 2, 1.0)
    >>> est.ci_low, est.ci_high  # at least the 2 found, at most all 3 that are not reviewed
    (2.0, 3.0)
    """
    delta_array, pi_array = as_review(delta, pi)
    n = pi_array.size
    e = as_indicator(wrong, "wrong", n=n) & delta_array
    if method is None:
        method = "horvitz-thompson" if suspicion is None else "model-assisted"
    if method not in ESTIMATORS:
        raise ValueError(f"method must be one of {list(ESTIMATORS)}; got {method!r}")
    level = check_real(confidence, "confidence", low=0.0, high=1.0, closed="neither")
    k = _check_folds(folds)
    alpha = 1.0 - level
    if method == "horvitz-thompson":
        totals = _ht_totals(e, delta_array, pi_array, alpha)
    else:
        if suspicion is None:
            raise ValueError("the model-assisted estimator needs the suspicion of every row")
        eps = as_unit(suspicion, "suspicion", n=n)
        folds_of = np.arange(n) % k
        parts, used = _assisted_parts(eps, e, delta_array, pi_array, folds_of)
        totals = _bounded(parts, e, delta_array, pi_array, alpha)
        if not used:
            method = "horvitz-thompson"
    return ErrorCount(
        estimate=float(totals.estimate),
        stderr=math.sqrt(float(totals.variance)),
        ci_low=float(totals.low),
        ci_high=float(totals.high),
        found=int(totals.found),
        n=n,
        n_reviewed=int(delta_array.sum()),
        method=method,
    )


@dataclass(frozen=True)
class AccuracyEstimate:
    """ACT estimate of the machine labels' accuracy, 1 − T/N, with a confidence interval.

    Attributes
    ----------
    estimate : float
        Unbiased point estimate of the share of machine labels a human would accept,
        1 − T̂/N. Not clipped, so it can fall slightly outside [0, 1] when a few reviewed
        items carry large weights.
    stderr : float
        Estimated standard error of ``estimate``, √V̂ / N.
    ci_low, ci_high : float
        1 − (upper bound of T)/N and 1 − (lower bound of T)/N: the gamma interval of
        :func:`error_count_estimate`, within [0, 1].
    n : int
        Number of items N.
    n_reviewed : int
        Number of reviewed items Σ δ_i.
    errors : ErrorCount
        The estimate of the number of wrong labels it derives from (wrong labels left:
        ``errors.remaining`` and ``errors.remaining_ci``).
    """

    estimate: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int
    n_reviewed: int
    errors: ErrorCount


def accuracy_estimate(
    machine_labels: Sequence[Hashable],
    human_labels: Sequence[Hashable | None],
    delta: npt.ArrayLike,
    pi: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    suspicion: npt.ArrayLike | None = None,
) -> AccuracyEstimate:
    """Estimate the machine labels' accuracy against human labels from a reviewed sample.

    With e_i = 1(ŷ_i ≠ y_i) (only needed where δ_i = 1) and T = Σ_i e_i the number of wrong
    labels, acc = 1 − T̂/N with T̂ and its interval from :func:`error_count_estimate`:
    model-assisted when ``suspicion`` is given, else Horvitz–Thompson,

        acc = (1/N) Σ_i [ 1 − e_i δ_i / π_i ],

    unbiased for the full-human accuracy (1/N) Σ_i (1 − e_i) if π_i > 0 wherever the machine
    can be wrong. The interval is 1 − [T_high, T_low]/N with Fay–Feuer's gamma bounds on T:
    the normal interval acc ± z √V̂ under-covers with unequal π (a few errors found by low-π
    review carry weights 1/π; 82–90% coverage at 5–20% budgets, and often zero width), the
    gamma one covered ≥ 95% over the grid of ``benchmarks/coverage.py``.

    Parameters
    ----------
    machine_labels : sequence of hashable, length N
        ŷ; any values compared with ``!=`` (strings, ints, tuples or frozensets for
        multi-label tasks).
    human_labels : sequence, length N
        y; only entries where δ_i = 1 are read (others may be None).
    delta, pi : array-like of shape (N,)
        Review indicators and the inclusion probabilities they were drawn with.
    confidence : float in (0, 1)
        Coverage of the interval.
    suspicion : array-like of shape (N,), optional
        ε̂; given, the model-assisted estimator is used.

    Returns
    -------
    AccuracyEstimate
        Higher ``estimate`` = better machine labels.

    Examples
    --------
    >>> est = accuracy_estimate(["a", "b", "c", "d"], ["a", None, "x", None],
    ...                         [1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5])
    >>> est.estimate, est.n_reviewed, round(est.stderr, 4)
    (0.5, 2, 0.3536)
    >>> est.ci_low, est.ci_high  # 1 to 3 wrong labels: the one found, at most 2 more
    (0.25, 0.75)
    """
    delta_array, pi_array = as_review(delta, pi)
    n = pi_array.size
    machine = list(machine_labels)
    human = list(human_labels)
    for name, labels in (("machine_labels", machine), ("human_labels", human)):
        if len(labels) != n:
            raise ValueError(f"{name} must have length {n} (one per item); got {len(labels)}")
    wrong = np.array(
        [bool(delta_array[i] and machine[i] != human[i]) for i in range(n)], dtype=bool
    )
    errors = error_count_estimate(
        wrong, delta_array, pi_array, suspicion=suspicion, confidence=confidence
    )
    return accuracy_from_errors(errors)


def accuracy_from_errors(errors: ErrorCount) -> AccuracyEstimate:
    """acc = 1 − T̂/N, its interval 1 − [T_high, T_low]/N and standard error √V̂/N.

    Examples
    --------
    >>> errors = ErrorCount(10.0, 2.0, 6.0, 16.0, 5, 100, 20, "horvitz-thompson")
    >>> acc = accuracy_from_errors(errors)
    >>> acc.estimate, acc.ci_low, acc.ci_high, acc.stderr
    (0.9, 0.84, 0.94, 0.02)
    """
    n = errors.n
    return AccuracyEstimate(
        estimate=1.0 - errors.estimate / n,
        stderr=errors.stderr / n,
        ci_low=min(1.0, max(0.0, 1.0 - errors.ci_high / n)),
        ci_high=min(1.0, max(0.0, 1.0 - errors.ci_low / n)),
        n=n,
        n_reviewed=errors.n_reviewed,
        errors=errors,
    )


# --------------------------------------------------------------------------------------------
# Critic metrics
# --------------------------------------------------------------------------------------------


def _scores_and_labels(
    suspicion: npt.ArrayLike, is_wrong: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    scores = as_finite(suspicion, "suspicion")
    return scores, as_indicator(is_wrong, "is_wrong", n=scores.size)


def _pair_share(scores: np.ndarray, wrong: np.ndarray, weights: np.ndarray) -> float:
    """Σ_{w wrong, r right} u_w u_r [1(ε̂_w > ε̂_r) + ½ 1(ε̂_w = ε̂_r)] / (Σ_w u_w · Σ_r u_r).

    Sums the weights per distinct score, so O(N log N); both classes need positive weight.
    """
    values, group = np.unique(scores, return_inverse=True)
    w_wrong = np.bincount(group, weights=np.where(wrong, weights, 0.0), minlength=values.size)
    w_right = np.bincount(group, weights=np.where(wrong, 0.0, weights), minlength=values.size)
    right_below = np.cumsum(w_right) - w_right  # right-label weight strictly below each score
    pairs = float(np.sum(w_wrong * (right_below + 0.5 * w_right)))
    return pairs / (float(w_wrong.sum()) * float(w_right.sum()))


def _one_class_nan(what: str, counts: str) -> float:
    """NaN with an ``UndefinedMetricWarning`` pointing at the caller's caller."""
    warnings.warn(
        f"{what} is undefined with only one class ({counts}); returning NaN",
        UndefinedMetricWarning,
        stacklevel=3,
    )
    return math.nan


def auroc(suspicion: npt.ArrayLike, is_wrong: npt.ArrayLike) -> float:
    """Area under the ROC curve of the critic's suspicion as a detector of wrong labels.

        AUROC = P(ε̂_wrong > ε̂_right) + ½ P(ε̂_wrong = ε̂_right)
              = Σ_{w wrong, r right} [1(ε̂_w > ε̂_r) + ½ 1(ε̂_w = ε̂_r)] / (n_w · n_r),

    with n_w and n_r the numbers of wrong and right items (Mann–Whitney U / (n_w n_r));
    :func:`weighted_auroc` with every weight 1.

    Parameters
    ----------
    suspicion : array-like of shape (N,)
        Critic scores (any finite reals; only their order matters); higher = more suspicious.
    is_wrong : array-like of bool or {0, 1}, shape (N,)
        Whether each machine label is wrong.

    Returns
    -------
    float
        In [0, 1]; 1 = every wrong item scores above every right one, 0.5 = chance, higher is
        better. NaN (with an ``UndefinedMetricWarning``) if only one class is present.

    Examples
    --------
    >>> auroc([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0])
    0.75
    >>> auroc([0.5, 0.5], [1, 0])
    0.5
    """
    scores, wrong = _scores_and_labels(suspicion, is_wrong)
    n_wrong = int(wrong.sum())
    n_right = wrong.size - n_wrong
    if n_wrong == 0 or n_right == 0:
        return _one_class_nan("AUROC", f"{n_wrong} wrong, {n_right} right labels")
    return _pair_share(scores, wrong, np.ones(scores.size))


def weighted_auroc(
    suspicion: npt.ArrayLike, is_wrong: npt.ArrayLike, weights: npt.ArrayLike
) -> float:
    """AUROC with each item standing for ``weights[i]`` items, e.g. u_i = 1/π_i for a sample:

        AUROC_u = Σ_{w wrong, r right} u_w u_r [1(ε̂_w > ε̂_r) + ½ 1(ε̂_w = ε̂_r)]
                  / (Σ_w u_w · Σ_r u_r).

    With u_i = 1/π_i over the reviewed items it is a ratio estimate of the critic's AUROC over
    every item with π > 0 (items with π = 0 are never seen); noisy when few low-π items were
    reviewed.

    Parameters
    ----------
    suspicion, is_wrong : array-like of shape (N,)
        As for :func:`auroc`.
    weights : array-like of shape (N,)
        u_i ≥ 0, finite.

    Returns
    -------
    float
        In [0, 1], higher is better. NaN (with an ``UndefinedMetricWarning``) if either class
        has zero total weight.

    Examples
    --------
    >>> weighted_auroc([0.5, 0.5, 0.2], [1, 0, 0], [2.0, 1.0, 4.0])  # (2·1·½ + 2·4) / (2·5)
    0.9
    """
    scores, wrong = _scores_and_labels(suspicion, is_wrong)
    u = as_weights(weights, "weights", n=scores.size)
    u_wrong, u_right = float(u[wrong].sum()), float(u[~wrong].sum())
    if u_wrong == 0.0 or u_right == 0.0:
        return _one_class_nan("weighted AUROC", f"weight {u_wrong:g} wrong, {u_right:g} right")
    return _pair_share(scores, wrong, u)


def roc_points(suspicion: npt.ArrayLike, is_wrong: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve of the suspicion as a detector of wrong labels, as (FPR, TPR) points.

    At each distinct threshold τ (highest first), FPR(τ) = #{right: ε̂ ≥ τ} / n_r and
    TPR(τ) = #{wrong: ε̂ ≥ τ} / n_w; the curve starts at (0, 0) and ends at (1, 1), tied scores
    move it diagonally, and the trapezoid area under it is :func:`auroc`. A class that is absent
    keeps its rate at 0.

    Parameters
    ----------
    suspicion, is_wrong : array-like of shape (N,)
        As for :func:`auroc`.

    Returns
    -------
    (fpr, tpr) : tuple of numpy.ndarray, shape (D + 1,)
        D = the number of distinct scores; both non-decreasing in [0, 1].

    Examples
    --------
    >>> roc_points([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0])
    (array([0. , 0. , 0.5, 0.5, 1. ]), array([0. , 0.5, 0.5, 1. , 1. ]))
    """
    scores, wrong = _scores_and_labels(suspicion, is_wrong)
    order = _top_order(scores)
    scores, wrong = scores[order], wrong[order]
    last_of_group = np.r_[scores[1:] != scores[:-1], True]
    tp = np.cumsum(wrong)[last_of_group]
    fp = np.cumsum(~wrong)[last_of_group]
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def precision_at(suspicion: npt.ArrayLike, is_wrong: npt.ArrayLike, *, k: int) -> float:
    """Share of wrong labels among the k most suspicious items.

        precision@k = (1/k) Σ_{i ∈ top-k} 1(item i is wrong)

    Ties in ε̂ are broken by index (lower index first), as in the thresholded rule.

    Parameters
    ----------
    suspicion : array-like of shape (N,)
        Critic scores; higher = more suspicious.
    is_wrong : array-like of bool or {0, 1}, shape (N,)
        Whether each machine label is wrong.
    k : int in [1, N]
        How many top items to inspect.

    Returns
    -------
    float
        In [0, 1]; higher is better.

    Examples
    --------
    >>> precision_at([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0], k=2)
    0.5
    """
    scores, wrong = _scores_and_labels(suspicion, is_wrong)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= scores.size:
        raise ValueError(f"k must be an int from 1 to N={scores.size}; got {k!r}")
    return float(wrong[_top_order(scores)[:k]].mean())


def recall_at_fraction(
    suspicion: npt.ArrayLike, is_wrong: npt.ArrayLike, *, fraction: float
) -> float:
    """Share of all wrong labels found among the top ``fraction`` most suspicious items.

        recall@f = Σ_{i ∈ top-m} 1(wrong_i) / Σ_i 1(wrong_i),   m = round(f · N) (half up)

    Ties in ε̂ are broken by index (lower index first), as in the thresholded rule.

    Parameters
    ----------
    suspicion : array-like of shape (N,)
        Critic scores; higher = more suspicious.
    is_wrong : array-like of bool or {0, 1}, shape (N,)
        Whether each machine label is wrong.
    fraction : float in (0, 1]
        Share of the items a reviewer would inspect, most suspicious first.

    Returns
    -------
    float
        In [0, 1]; higher is better (a random order gives ≈ ``fraction``). NaN (with an
        ``UndefinedMetricWarning``) if no label is wrong.

    Examples
    --------
    >>> recall_at_fraction([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0], fraction=0.5)
    0.5
    """
    scores, wrong = _scores_and_labels(suspicion, is_wrong)
    share = check_real(fraction, "fraction", low=0.0, high=1.0, closed="right")
    n_wrong = int(wrong.sum())
    if n_wrong == 0:
        warnings.warn(
            "recall is undefined when no label is wrong; returning NaN",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        return math.nan
    m = min(_round_half_up(share * scores.size), scores.size)
    return float(wrong[_top_order(scores)[:m]].sum()) / n_wrong
