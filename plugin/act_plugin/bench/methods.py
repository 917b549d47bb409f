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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from act_plugin.act_math import draw_review, inclusion_probabilities

__all__ = ["PAPER_RULES", "ReviewPlan", "review_plan"]

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
    """δ (reviewed) and π (the probability it was drawn with) for every pool item."""

    delta: NDArray[np.bool_]
    pi: NDArray[np.float64]

    @property
    def human_share(self) -> float:
        """Σ δ_i / N: the share of items a human labelled."""
        return float(self.delta.mean())


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
