"""The downstream model as a second critic: λ_i from cross-fitted models of the ACT loss.

After the review the rows left unreviewed still carry wrong machine labels the critic ranked
low. A model trained on the ACT loss (human labels where reviewed) often disagrees with them:
q_i = P̂(ŷ_i | x_i) of a model that never saw row i is small where ŷ_i is wrong. The method
``ours_rounds_model`` trains on the last-round ACT loss with

    λ_i = (q_i · (1 − p_i))^k,

p_i the critic's calibrated P(wrong) the last round's π came from, k = ``model_power``, refined
over ``iterations``: the models of iteration t are trained with the λ of iteration t − 1
(λ⁰_i = (1 − p_i)^k).

Why it stays unbiased: the ACT loss is unbiased for any λ_i that does not depend on δ_i (given
rounds 1 … R − 1, which fix p and π_R). Rows are split into F folds (i mod F). q_i for a row of
fold k comes from a model fitted only on rows outside k, whose own λ were computed without fold
k either (recursively: iteration t's λ of the rows outside a set E of folds uses models fitted
outside E and one more fold). So λ_i is a function of the other folds' draws δ_j, which are
independent of δ_i in the last round, and never of δ_i itself. The cost is Σ_{s=1..T} C(F, s)
models, batched per iteration (15 for F = 5, T = 2).

p may read the last round's reviews too, under the same rule (``post_review_probability``):
in the context "without the folds E" it reads no last-round review of E.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import NDArray

from act_plugin.bench.config import TrainConfig
from act_plugin.bench.methods import Rescore, ReviewPlan
from act_plugin.bench.train import fit_act_models

__all__ = ["Probability", "model_lambda", "post_review_probability"]

#: p in the context "without the folds E" (``model_lambda``): E → P(wrong) of every row.
Probability = Callable[[frozenset[int]], NDArray[np.float64]]


def model_lambda(
    features: NDArray[Any],
    machine: NDArray[np.int64],
    human: NDArray[np.int64],
    plan: ReviewPlan,
    wrong_probability: NDArray[np.float64] | Probability,
    *,
    n_classes: int,
    config: TrainConfig,
    folds: int = 5,
    iterations: int = 2,
    power: float = 4.0,
) -> NDArray[np.float64]:
    """λ_i = (q_i (1 − p_i))^k of the module docstring, p_i = ``wrong_probability``: fixed
    given rounds 1 … R − 1, or a function of the folds E whose last-round reviews it must not
    read (:func:`post_review_probability`).

    ``human`` is read only where the plan reviewed (δ = 1); the plan's weights (``ratio``) are
    those the models are trained with. ``iterations`` ≥ 1 and 2 ≤ ``folds`` ≤ N.
    """
    n = machine.size
    if not 2 <= folds <= n:
        raise ValueError(f"folds must be between 2 and the number of rows ({n}); got {folds}")
    if iterations < 1:
        raise ValueError(f"iterations must be ≥ 1; got {iterations}")
    if not iterations < folds:
        raise ValueError(f"iterations ({iterations}) must be < folds ({folds})")
    fold = np.arange(n) % folds
    p_without = _as_function(wrong_probability)
    # lam[E]: the λ of the rows outside the folds E at the current iteration, computed without
    # reading them; iteration 0 reads nothing but p.
    lam = {
        frozenset(e): (1.0 - p_without(frozenset(e))) ** power
        for e in combinations(range(folds), iterations)
    }
    for size in range(iterations, 0, -1):
        # one model per set S of `size` folds, fitted outside S with lam[S]; it scores each fold
        # k ∈ S for E = S ∖ {k}
        sets = [frozenset(s) for s in combinations(range(folds), size)]
        kept = int(np.sum(~np.isin(fold, list(sets[0]))))
        reports = fit_act_models(
            features,
            machine,
            human,
            [_outside(plan, ~np.isin(fold, list(s)), lam[s]) for s in sets],
            n_classes=n_classes,
            # the penalty weighs against the kept rows' mean loss, as if fitted on them alone
            config=replace(config, weight_decay=config.weight_decay * kept / n),
        )
        nxt = {frozenset(e): np.zeros(n) for e in combinations(range(folds), size - 1)}
        for s, report in zip(sets, reports, strict=True):
            p = p_without(s)  # reads no last-round review of s ∋ k
            for k in s:
                rows = fold == k
                q = _probability_of(report.model.logits(features[rows]), machine[rows])
                nxt[s - {k}][rows] = (q * (1.0 - p[rows])) ** power
        lam = nxt
    return lam[frozenset()]


def post_review_probability(
    plan: ReviewPlan, rescore: Rescore, human: NDArray[np.int64], *, folds: int = 5
) -> Probability:
    """p after the last round: the critic re-scored with every review but the excluded folds'
    last-round ones, mapped through the calibration the last round's π came from.

    For folds E, the function returned re-scores without the last-round reviews of E: what
    :func:`model_lambda` may read in the context E (the rows reviewed before the last round are
    fixed given the past and always count). ``human`` is read only where the plan reviewed;
    ``folds`` must be :func:`model_lambda`'s.
    """
    fold = np.arange(plan.delta.size) % folds
    last = plan.deltas[-1] if plan.deltas else plan.delta
    before = plan.delta & ~last
    cache: dict[frozenset[int], NDArray[np.float64]] = {}

    def without(excluded: frozenset[int]) -> NDArray[np.float64]:
        if excluded not in cache:
            seen = before | (last & ~np.isin(fold, list(excluded)))
            raw = rescore(seen, np.where(seen, human, -1))
            cache[excluded] = plan.calibration(raw) if plan.calibration is not None else raw
        return cache[excluded]

    return without


def _as_function(p: NDArray[np.float64] | Probability) -> Probability:
    if callable(p):
        return p
    fixed = np.asarray(p, np.float64)
    return lambda _excluded: fixed


def _outside(plan: ReviewPlan, keep: NDArray[np.bool_], lam: NDArray[np.float64]) -> ReviewPlan:
    """The plan with only the ``keep`` rows in its loss: the others weigh 0 (λ = w_h = 0, so
    their term λℓᵐ + (ℓ − λℓᵐ)w_h vanishes); the loss is the kept rows' sum / N."""
    return replace(
        plan,
        weight_human=np.where(keep, plan.ratio, 0.0),
        lam=np.where(keep, lam, 0.0),
    )


def _probability_of(logits: NDArray[np.float64], labels: NDArray[np.int64]) -> NDArray[np.float64]:
    """softmax(logits)[i, labels_i]."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return p[np.arange(labels.size), labels]
