"""Who is reviewed under each method: the review indicators δ and inclusion probabilities π.

Every method is expressed as (δ, π) for the ACT loss L = (1/N) Σ [λℓᵐ + (ℓ − λℓᵐ) δ/π]:

- ``full_human``: δ = 1, π = 1 (every row is the human label, weight 1).
- ``full_machine``: δ = 0 (every row is the machine label, weight 1).
- ``normalized`` / ``exponential`` / ``thresholded``: π from ``act_math.inclusion_probabilities``
  with the paper's rule and no floor, δ_i ~ Bernoulli(π_i).
- ``ours_thresholded`` / ``ours_exponential``: the same rules with the floor: a share ρ of the
  budget is uniform review, so π_i ≥ ρB/N > 0 and the loss stays unbiased where the critic
  misses an error.
- ``uniform``: random review of the same expected size, π_i = B/N, with ACT correction.
- ``top_b``: the round(B) most suspicious items (ties to the lower index) get the human label,
  all others the machine label, every row weight 1, no correction. As (δ, π) that is δ = top-B
  and π = 1 everywhere. It coincides with the paper's ``thresholded`` rule, whose π ∈ {0, 1}
  makes δ = π, so the two rows of the tables must agree: a built-in check.
- ``ours_rounds``: the budget B spent in K rounds of B/K (:func:`rounds_review`). Round r draws
  from the rows not reviewed yet with the rule and the floor; after each round the critic is
  re-scored on what the humans said (for the kNN critic, reviewed neighbours vote with their
  human labels) and recalibrated on the reviewed rows (``act_math.calibrate_suspicion``,
  weights 1/π of the round that drew each row). Training weights:
  ``sequential.sequential_weights``, the unbiased combination of the rounds' ACT losses.
- ``ours_rounds_last``: the same review (the same draws), trained on the last round's ACT loss
  alone: rows reviewed before the last round count as known (π = 1, human label, weight 1), the
  last round's draw carries the correction, λ(1 − δ/π_R) and δ/π_R. Unbiased too, since
  E[L_R | rounds 1 … R − 1] is the full-human loss whatever the earlier rounds did.

Per-row λ (issue 10): the loss L = (1/N) Σ [λ_iℓᵐ_i + (ℓ_i − λ_iℓᵐ_i) δ_i/π_i] stays unbiased for
any λ_i that does not depend on δ_i; λ_i = 1 − p_i (``act_math.soft_lambda``, p_i ≈ P(ŷ_i wrong))
down-weights the suspicious machine labels left unreviewed and shrinks the negative weight
λ_i(1 − 1/π_i) of reviewed rows (:data:`SOFT_METHODS`, ``ReviewPlan.lam``):

- ``ours_soft``: the review of ``ours_thresholded`` (the same draws), p_i the critic calibrated
  by cross-fitting on the reviewed rows weighted 1/π (``act_math.cross_fitted_probabilities``:
  p_i is fitted on the other folds, so it never reads δ_i); ``ours_soft_raw``: p_i = ε̂_i.
- ``ours_rounds_soft``: the review of ``ours_rounds`` (the same draws), the last-round loss with
  p_i the suspicion the last round's π came from (re-scored and calibrated on rounds 1 … R − 1,
  so fixed given them); ``ours_rounds_soft_raw``: that re-scored suspicion before calibration.
- ``ours_rounds_model``: the review of ``ours_rounds``, the last-round loss with
  λ_i = (q_i (1 − p_i))^k, p_i as in ``ours_rounds_soft`` and q_i the probability that
  cross-fitted downstream models, never fitted on row i, give ŷ_i (``model_critic``).

Search rounds and an audit round (:data:`AUDIT_METHODS`): the last-round loss needs π_R > 0 on
every row left, not a floor in the earlier rounds, since it counts their reviews as known
whatever rule drew them. So rounds 1 … R − 1 may spend all of their budget on the most
suspicious rows (the rule without a floor) and only the last round keeps the floor:

- ``ours_audit``: that review, the last-round loss (λ = 1);
- ``ours_audit_model``: the same draws, λ_i of ``ours_rounds_model`` with p_i re-scored after
  the last round too (``model_critic.post_review_probability``: the critic sees every review
  but those of row i's fold in the last round).

Only the last round's estimate of the error count is then unbiased (the earlier rounds' miss
the rows they gave π = 0), so this design is for training and the final interval, not for a
certificate that may stop after any round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from act_plugin.act_math import (
    calibrate_suspicion,
    cross_fitted_probabilities,
    draw_review,
    inclusion_probabilities,
    soft_lambda,
)
from act_plugin.sequential import last_round_weights, sequential_weights

__all__ = [
    "AUDIT_METHODS",
    "MODEL_METHODS",
    "PAPER_RULES",
    "ROUND_METHODS",
    "SOFT_METHODS",
    "Rescore",
    "ReviewPlan",
    "review_plan",
    "rounds_review",
    "soft_plan",
]

#: Methods that review in rounds (:func:`rounds_review`) → how their training weights combine
#: the rounds (all share the same review draws).
ROUND_METHODS: dict[str, str] = {
    "ours_rounds": "sequential",
    "ours_rounds_last": "last",
    "ours_rounds_soft": "last",
    "ours_rounds_soft_raw": "last",
    "ours_rounds_model": "last",
    "ours_audit": "last",
    "ours_audit_model": "last",
}
#: Round methods whose floor applies in the last round only (module docstring); they share draws.
AUDIT_METHODS: frozenset[str] = frozenset({"ours_audit", "ours_audit_model"})
#: Round methods whose λ_i comes from cross-fitted downstream models (``model_critic``).
MODEL_METHODS: frozenset[str] = frozenset({"ours_rounds_model", "ours_audit_model"})
#: Methods with a per-row λ_i = 1 − p_i → (the method whose review they reuse, what p_i is:
#: ``"calibrated"`` or ``"raw"`` suspicion); module docstring.
SOFT_METHODS: dict[str, tuple[str, str]] = {
    "ours_soft": ("ours_thresholded", "calibrated"),
    "ours_soft_raw": ("ours_thresholded", "raw"),
    "ours_rounds_soft": ("ours_rounds", "calibrated"),
    "ours_rounds_soft_raw": ("ours_rounds", "raw"),
}
#: Re-scores the critic after a round: (reviewed mask, human labels where reviewed, −1
#: elsewhere) → raw suspicion ε̂ of every row, before recalibration.
Rescore = Callable[[NDArray[np.bool_], NDArray[np.int64]], NDArray[np.float64]]

#: method → (rule of ``inclusion_probabilities``, whether the floor applies)
PAPER_RULES: dict[str, tuple[str, bool]] = {
    "normalized": ("normalized", False),
    "exponential": ("exponential", False),
    "thresholded": ("thresholded", False),
    "ours_thresholded": ("thresholded", True),
    "ours_exponential": ("exponential", True),
    "uniform": ("uniform", False),
}


@dataclass(frozen=True)
class ReviewPlan:
    """δ (reviewed) and π (the probability it was drawn with) for every pool item.

    ``weight_human``, when given, replaces δ/π as the human row's weight w_h (the machine row
    then weighs λ(1 − w_h)): a review in rounds, whose weights are not those of one draw.
    ``pis`` / ``deltas`` hold the rounds' own (π_r, δ_r) when there were rounds. ``lam``, when
    given, is a per-row λ_i ∈ [0, 1] (fixed without reading δ_i) replacing the trainer's
    constant λ; ``suspicion`` is the ε̂ the last draw's π came from (kept for :func:`soft_plan`),
    ``calibration`` the map from raw to calibrated suspicion it was computed with (rounds).
    """

    delta: NDArray[np.bool_]
    pi: NDArray[np.float64]
    weight_human: NDArray[np.float64] | None = None
    pis: tuple[NDArray[np.float64], ...] = ()
    deltas: tuple[NDArray[np.bool_], ...] = ()
    lam: NDArray[np.float64] | None = None
    suspicion: NDArray[np.float64] | None = None
    raw_suspicion: NDArray[np.float64] | None = None
    calibration: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None

    @property
    def human_share(self) -> float:
        """Σ δ_i / N: the share of items a human labelled."""
        return float(self.delta.mean())

    @property
    def ratio(self) -> NDArray[np.float64]:
        """w_h, the human row's weight: δ_i/π_i (0 where δ_i = 0) unless ``weight_human``."""
        if self.weight_human is not None:
            return self.weight_human
        return np.divide(1.0, self.pi, out=np.zeros_like(self.pi), where=self.delta)


def review_plan(
    method: str,
    suspicion: NDArray[np.float64] | None,
    budget: float | None,
    *,
    n: int,
    floor: float,
    beta: float,
    seed: np.random.SeedSequence | None,
) -> ReviewPlan:
    """(δ, π) for ``method`` at ``budget`` (a fraction of the n pool items) given ε̂."""
    ones = np.ones(n)
    if method == "full_human":
        return ReviewPlan(np.ones(n, dtype=bool), ones)
    if method == "full_machine":
        return ReviewPlan(np.zeros(n, dtype=bool), ones)
    if suspicion is None or budget is None:
        raise ValueError(f"method {method!r} needs a critic's suspicion and a budget")
    if method == "top_b":  # the paper's thresholded π ∈ {0, 1} as δ, with weight 1 everywhere
        top = inclusion_probabilities(suspicion, float(budget), rule="thresholded", floor=0.0)
        return ReviewPlan(top == 1.0, ones)
    if method not in PAPER_RULES:
        raise ValueError(f"unknown method {method!r}")
    rule, with_floor = PAPER_RULES[method]
    if rule == "normalized" and not with_floor and float(np.sum(suspicion)) == 0.0:
        pi = np.zeros(n)  # nothing looks suspicious: the paper's rule reviews nothing
    else:
        pi = inclusion_probabilities(
            suspicion, float(budget), rule=rule, floor=floor if with_floor else 0.0, beta=beta
        )
    return ReviewPlan(draw_review(pi, seed=np.random.default_rng(seed)), pi)


def soft_plan(
    plan: ReviewPlan,
    source: str,
    *,
    suspicion: NDArray[np.float64],
    wrong: NDArray[np.bool_],
    power: float = 1.0,
) -> ReviewPlan:
    """The same review with per-row λ_i = (1 − p_i)^``power`` (``act_math.soft_lambda``).

    ``source="calibrated"``: p_i is ``cross_fitted_probabilities`` of ``suspicion`` fitted on
    the plan's reviewed rows (weights 1/π) for one draw, or, for a review in rounds, the
    suspicion the last round's π came from (``plan.suspicion``: calibrated on rounds
    1 … R − 1). ``"raw"``: p_i = ``suspicion`` for one draw, the last round's re-scored raw
    suspicion (``plan.raw_suspicion``) in rounds. ``wrong`` (1(ŷ_i ≠ y_i)) is read only where
    δ = 1, so λ_i never depends on δ_i.
    """
    if source not in ("calibrated", "raw"):
        raise ValueError(f"source must be 'calibrated' or 'raw'; got {source!r}")
    if plan.pis:  # a review in rounds: what the last round's π was computed from
        chosen = plan.suspicion if source == "calibrated" else plan.raw_suspicion
        assert chosen is not None
        p = chosen
    elif source == "calibrated":
        p = cross_fitted_probabilities(suspicion, wrong, plan.delta, plan.pi)
    else:
        p = suspicion
    return replace(plan, lam=soft_lambda(p, power=power))


def rounds_review(
    suspicion: NDArray[np.float64],
    budget: float,
    *,
    human: NDArray[np.int64],
    machine: NDArray[np.int64],
    rounds: int,
    rule: str,
    floor: float,
    beta: float,
    seed: np.random.SeedSequence | None,
    rescore: Rescore | None = None,
    calibrate: bool = True,
    weights: str = "sequential",
    audit: bool = False,
) -> ReviewPlan:
    """Review in ``rounds`` rounds of B/K expected reviews each (B = ``budget`` · N).

    Round r: π_r = ``inclusion_probabilities`` of the current ε̂ over the rows not reviewed yet
    (U_r) with budget B/K, the rule and the floor ρ (π_r = 0 outside U_r); δ_r ~ Bernoulli(π_r).
    Then, before the next round, the critic is re-scored (``rescore``: the raw ε̂ given what
    the humans said; without it the first ε̂ stays) and, with ``calibrate``, mapped through the
    Platt calibration fitted on every row reviewed so far (its error e_i = 1(ŷ_i ≠ y_i) is
    known), weights 1/π_s of the round s that drew it: an estimate of P(wrong | ε̂) over all
    rows, as in ``act_math.calibrate_suspicion``. ``human`` is read only on reviewed rows.
    With ``audit``, rounds 1 … R − 1 draw without the floor and only the last round with it
    (module docstring; then only ``weights="last"`` is unbiased).

    Every round spends B/K in expectation (so Σ_r Σ_i π_ri = B); when fewer rows are left than
    that, all of them are reviewed (π = 1) and the review stops. Returns the plan with
    δ = any δ_r, π = the π_s of the round s that drew each row (the round's π for a row never
    drawn: its π in the last round), and the training weights: ``weights="sequential"``, those
    of ``sequential.sequential_weights`` (a row drawn in round s weighs w_s/π_s + Σ_{r>s} w_r as
    human, so one found in a late round keeps much of its machine label's weight);
    ``"last"``, the last round's ACT loss alone (module docstring). The plan keeps the
    suspicion the last round's π came from (``suspicion``, calibrated) and its raw re-scored
    form (``raw_suspicion``), both fixed given rounds 1 … R − 1 (for :func:`soft_plan`), and
    the calibration map between them (``calibration``; None without one).
    """
    if weights not in ("sequential", "last"):
        raise ValueError(f"weights must be 'sequential' or 'last'; got {weights!r}")
    if audit and weights != "last":
        raise ValueError("an audit design (floor in the last round only) needs weights='last'")
    n = suspicion.size
    total = float(budget) * n
    per_round = total / rounds
    rng = np.random.default_rng(seed)
    eps = np.asarray(suspicion, dtype=np.float64)
    raw = eps
    fitted = None
    reviewed = np.zeros(n, dtype=bool)
    drawn_pi = np.zeros(n)
    pis: list[NDArray[np.float64]] = []
    deltas: list[NDArray[np.bool_]] = []
    for r in range(rounds):
        left = np.flatnonzero(~reviewed)
        pi = np.zeros(n)
        if per_round >= left.size:
            pi[left] = 1.0
        else:
            floor_r = floor if not audit or r == rounds - 1 else 0.0
            pi[left] = inclusion_probabilities(
                eps[left], per_round / left.size, rule=rule, floor=floor_r, beta=beta
            )
        delta = draw_review(pi, seed=rng)
        pis.append(pi)
        deltas.append(delta)
        drawn_pi[delta] = pi[delta]
        reviewed |= delta
        if r == rounds - 1 or reviewed.all():
            break
        seen = np.where(reviewed, human, -1)
        raw = rescore(reviewed, seen) if rescore is not None else np.asarray(suspicion, float)
        if calibrate and reviewed.any():
            wrong = machine[reviewed] != human[reviewed]
            fitted = calibrate_suspicion(raw[reviewed], wrong, 1.0 / drawn_pi[reviewed])
            eps = fitted(raw)
        else:
            fitted, eps = None, raw
    pi_shown = np.where(reviewed, drawn_pi, pis[-1])
    if weights == "sequential":
        weight_human = sequential_weights(pis, deltas)[1]
    else:  # reviewed before the last round: known, weight 1; the last round: 1/π_R
        weight_human = last_round_weights(pis, deltas)[1]
    return ReviewPlan(
        reviewed,
        pi_shown,
        weight_human=weight_human,
        pis=tuple(pis),
        deltas=tuple(deltas),
        suspicion=eps,
        raw_suspicion=raw,
        calibration=fitted,
    )
