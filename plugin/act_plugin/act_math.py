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
    budget_count,
    check_lam,
    check_real,
    first_bad,
)

__all__ = [
    "DEFAULT_BETA",
    "DEFAULT_FLOOR",
    "SAMPLING_RULES",
    "AccuracyEstimate",
    "UndefinedMetricWarning",
    "accuracy_estimate",
    "act_loss_estimate",
    "act_terms",
    "act_weights",
    "auroc",
    "draw_review",
    "inclusion_probabilities",
    "precision_at",
    "recall_at_fraction",
    "roc_points",
    "weighted_auroc",
]

#: Share ρ of the budget spent on uniform random review (keeps every π_i ≥ ρB/N > 0).
DEFAULT_FLOOR = 0.1
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


def act_weights(
    delta: npt.ArrayLike, pi: npt.ArrayLike, *, lam: float = 1.0
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
    lam : float in [0, 1]
        λ, the power-tuning factor on machine terms (1 = the paper's loss).

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
    """
    delta_array, pi_array = as_review(delta, pi)
    return _compute_weights(delta_array, pi_array, check_lam(lam))


def _compute_weights(
    delta: np.ndarray, pi: np.ndarray, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    w_human = _inverse_weight(delta, pi)
    return lam * (1.0 - w_human), w_human


def act_loss_estimate(
    machine_loss: npt.ArrayLike,
    human_loss: npt.ArrayLike,
    delta: npt.ArrayLike,
    pi: npt.ArrayLike,
    *,
    lam: float = 1.0,
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
    lam : float in [0, 1]
        λ, power-tuning factor on the machine terms.

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
    return _compute_loss(machine, human, delta_array, pi_array, check_lam(lam))


def _compute_loss(
    machine: np.ndarray, human: np.ndarray, delta: np.ndarray, pi: np.ndarray, lam: float
) -> float:
    human_read = np.where(delta, human, 0.0)  # ℓ_i is only read where δ_i = 1 (may be NaN)
    return float(np.mean(act_terms(machine, human_read, _inverse_weight(delta, pi), lam=lam)))


def act_terms(
    machine_loss: ArrayT, human_loss: ArrayT, ratio: ArrayT, *, lam: float, clip: bool = False
) -> ArrayT:
    """Per-item terms of the ACT loss, whose mean over the N items is the loss:

        t_i = λ ℓᵐ_i + (ℓ_i − λ ℓᵐ_i) · δ_i / π_i,      clipped: max(0, t_i).

    Plain arithmetic, so it runs on NumPy arrays and on torch tensors (keeping autograd) alike;
    nothing is validated. ``ratio`` is δ_i/π_i with 0 where δ_i = 0, and ``human_loss`` must be
    finite everywhere (fill unreviewed items with any finite loss: it is multiplied by 0).

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


@dataclass(frozen=True)
class AccuracyEstimate:
    """ACT estimate of the machine labels' accuracy with a normal confidence interval.

    Attributes
    ----------
    estimate : float
        Unbiased point estimate of the share of machine labels a human would accept. Not
        clipped, so it can fall slightly outside [0, 1] when a few reviewed items carry large
        weights.
    stderr : float
        Estimated standard error of ``estimate``.
    ci_low, ci_high : float
        estimate ∓ z · stderr, clipped to [0, 1].
    n : int
        Number of items N.
    n_reviewed : int
        Number of reviewed items Σ δ_i.
    """

    estimate: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int
    n_reviewed: int


def accuracy_estimate(
    machine_labels: Sequence[Hashable],
    human_labels: Sequence[Hashable | None],
    delta: npt.ArrayLike,
    pi: npt.ArrayLike,
    *,
    confidence: float = 0.95,
) -> AccuracyEstimate:
    """Estimate the machine labels' accuracy against human labels from a reviewed sample.

    With e_i = 1(ŷ_i ≠ y_i) (only needed where δ_i = 1), the Horvitz–Thompson estimate

        acc = (1/N) Σ_i [ 1 − e_i δ_i / π_i ]

    is unbiased for the full-human accuracy (1/N) Σ_i (1 − e_i) if π_i > 0 wherever the machine
    can be wrong. Its variance is estimated with the unbiased Horvitz–Thompson estimator for
    Poisson sampling,

        V̂ = (1/N²) Σ_i δ_i (1 − π_i) / π_i² · e_i²,

    and the interval is acc ± z · √V̂ with z = Φ⁻¹((1 + confidence)/2), clipped to [0, 1].
    Items reviewed with π_i = 1 add no variance. If no reviewed item with π_i < 1 is wrong, V̂ = 0
    and the interval degenerates to a point: read it as "no evidence of errors", not certainty.

    Coverage: the normal interval is good under uniform review (95% intervals covered 0.94-0.97
    in simulation). With unequal π the estimate is skewed: a few errors found by low-π (floor)
    review carry large weights 1/π, and the interval under-covers. Simulated (N = 2000, 20%
    machine errors, a critic missing 15% of them, floor ρ = 0.1): 0.88-0.94 at B = 30% of N,
    but 0.65-0.93 at B = 5-20% (worst for the exponential rule). Read it as optimistic at low
    budgets.

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
        Coverage of the normal interval.

    Returns
    -------
    AccuracyEstimate
        Higher ``estimate`` = better machine labels.

    Examples
    --------
    >>> est = accuracy_estimate(["a", "b", "c", "d"], ["a", None, "x", None],
    ...                         [1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5])
    >>> est.estimate, est.n_reviewed
    (0.5, 2)
    >>> round(est.stderr, 4), round(est.ci_low, 4), est.ci_high
    (0.3536, 0.0, 1.0)
    """
    delta_array, pi_array = as_review(delta, pi)
    n = pi_array.size
    machine = list(machine_labels)
    human = list(human_labels)
    for name, labels in (("machine_labels", machine), ("human_labels", human)):
        if len(labels) != n:
            raise ValueError(f"{name} must have length {n} (one per item); got {len(labels)}")
    level = check_real(confidence, "confidence", low=0.0, high=1.0, closed="neither")
    wrong = np.array(
        [bool(delta_array[i] and machine[i] != human[i]) for i in range(n)], dtype=bool
    )
    return _compute_accuracy(wrong, delta_array, pi_array, level)


def _compute_accuracy(
    wrong: np.ndarray, delta: np.ndarray, pi: np.ndarray, confidence: float
) -> AccuracyEstimate:
    n = pi.size
    ratio = _inverse_weight(delta, pi)
    errors = wrong.astype(float)
    estimate = 1.0 - float(np.sum(errors * ratio)) / n
    variance = float(np.sum(errors * (1.0 - pi) * ratio**2)) / n**2
    stderr = math.sqrt(variance)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    return AccuracyEstimate(
        estimate=estimate,
        stderr=stderr,
        ci_low=min(1.0, max(0.0, estimate - z * stderr)),
        ci_high=min(1.0, max(0.0, estimate + z * stderr)),
        n=n,
        n_reviewed=int(delta.sum()),
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
    u = as_finite(weights, "weights", n=scores.size)
    bad = u < 0.0
    if bad.any():
        raise ValueError(first_bad(u, bad, "weights", "be >= 0"))
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
