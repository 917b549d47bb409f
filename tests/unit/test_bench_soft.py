"""Per-row λ in the ACT harness (act_plugin.bench.methods.soft_plan, the trainer's ReviewPlan.lam):
the soft methods reuse their base method's draws, λ_i never reads row i's own review, and the
trainer uses λ_i."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from act_plugin.act_math import cross_fitted_probabilities, inclusion_probabilities
from act_plugin.bench import TrainConfig, config_from_dict
from act_plugin.bench.critics import KnnCritic
from act_plugin.bench.methods import ReviewPlan, review_plan, rounds_review, soft_plan
from act_plugin.bench.train import fit_act_models


def _clusters(n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, truth, machine): 3 clusters; the machine mislabels a fifth of cluster 0."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(3), n // 3)
    x = np.eye(3, 6)[truth] * 3.0 + rng.normal(scale=0.6, size=(n, 6))
    machine = truth.copy()
    machine[: n // 15] = 1
    return x, truth, machine


def _one_draw(seed: int = 1) -> tuple[ReviewPlan, np.ndarray, np.ndarray]:
    _, truth, machine = _clusters()
    wrong = machine != truth
    eps = np.clip(0.15 + 0.5 * wrong + np.random.default_rng(seed).normal(0, 0.2, wrong.size), 0, 1)
    plan = review_plan(
        "ours_thresholded", eps, 0.2, n=eps.size, floor=0.3, beta=10.0,
        seed=np.random.SeedSequence(seed),
    )  # fmt: skip
    return plan, eps, wrong


def test_one_draw_soft_plan_keeps_the_review_and_uses_cross_fitted_calibration() -> None:
    plan, eps, wrong = _one_draw()
    soft = soft_plan(plan, "calibrated", suspicion=eps, wrong=wrong)
    assert np.array_equal(soft.delta, plan.delta) and np.array_equal(soft.pi, plan.pi)
    np.testing.assert_array_equal(soft.ratio, plan.ratio)
    expected = 1.0 - cross_fitted_probabilities(eps, wrong, plan.delta, plan.pi)
    np.testing.assert_allclose(soft.lam, expected)
    assert soft.lam is not None and np.all((soft.lam > 0.0) & (soft.lam < 1.0))
    # suspicious rows get less weight on their machine label
    assert soft.lam[wrong].mean() < soft.lam[~wrong].mean() - 0.1
    raw = soft_plan(plan, "raw", suspicion=eps, wrong=wrong)
    np.testing.assert_allclose(raw.lam, 1.0 - eps)
    sharp = soft_plan(plan, "raw", suspicion=eps, wrong=wrong, power=4.0)
    np.testing.assert_allclose(sharp.lam, (1.0 - eps) ** 4)
    with pytest.raises(ValueError, match="power"):
        soft_plan(plan, "raw", suspicion=eps, wrong=wrong, power=0.0)
    with pytest.raises(ValueError, match="source"):
        soft_plan(plan, "oracle", suspicion=eps, wrong=wrong)


def test_lambda_of_a_row_does_not_read_its_own_review() -> None:
    """Flipping a reviewed row's error, or whether it was reviewed, leaves its own λ_i as is
    (only the other fold's λ move): what keeps E[term_i | λ_i] = ℓ_i."""
    plan, eps, wrong = _one_draw()
    lam = soft_plan(plan, "calibrated", suspicion=eps, wrong=wrong).lam
    assert lam is not None
    floor_rows = np.flatnonzero(plan.delta & (plan.pi < 1.0))
    assert floor_rows.size > 0
    i = int(floor_rows[0])
    flipped = wrong.copy()
    flipped[i] = not flipped[i]
    other = soft_plan(plan, "calibrated", suspicion=eps, wrong=flipped).lam
    assert other is not None and other[i] == lam[i]
    same_fold = np.arange(eps.size) % 2 == i % 2
    assert np.array_equal(other[same_fold], lam[same_fold])
    assert not np.allclose(other[~same_fold], lam[~same_fold])
    undrawn = ReviewPlan(plan.delta.copy(), plan.pi)
    undrawn.delta[i] = False
    dropped = soft_plan(undrawn, "calibrated", suspicion=eps, wrong=wrong).lam
    assert dropped is not None and dropped[i] == lam[i]


def test_rounds_soft_plan_takes_lambda_from_the_last_rounds_suspicion() -> None:
    x, truth, machine = _clusters(240)
    critic = KnnCritic(x, machine, n_classes=3)
    rescore = partial(critic.rescored, human_weight=3.0)

    plan = rounds_review(
        critic.initial, 0.2, human=truth, machine=machine, rounds=3, rule="thresholded",
        floor=0.3, beta=10.0, seed=np.random.SeedSequence(4), rescore=rescore, weights="last",
    )  # fmt: skip
    assert plan.suspicion is not None and plan.raw_suspicion is not None
    # the last round's π came from plan.suspicion, over the rows not reviewed before it
    left = ~np.any(plan.deltas[:-1], axis=0)
    expected_pi = inclusion_probabilities(
        plan.suspicion[left], 0.2 * 240 / 3 / left.sum(), rule="thresholded", floor=0.3
    )
    np.testing.assert_allclose(plan.pis[-1][left], expected_pi)
    assert not np.allclose(plan.suspicion, plan.raw_suspicion)  # calibrated ≠ raw
    wrong = machine != truth
    soft = soft_plan(plan, "calibrated", suspicion=critic.initial, wrong=wrong)
    np.testing.assert_allclose(soft.lam, 1.0 - plan.suspicion)
    np.testing.assert_array_equal(soft.ratio, plan.ratio)
    raw = soft_plan(plan, "raw", suspicion=critic.initial, wrong=wrong)
    np.testing.assert_allclose(raw.lam, 1.0 - plan.raw_suspicion)


def test_soft_power_is_read_and_validated() -> None:
    base = {"datasets": [{"name": "d", "kind": "digits", "annotator": "nearest_centroid"}]}
    assert config_from_dict(base).soft_power == 1.0
    assert config_from_dict({**base, "soft_power": 4}).soft_power == 4
    with pytest.raises(ValueError, match="soft_power must be a finite number > 0"):
        config_from_dict({**base, "soft_power": 0})


def test_trainer_uses_per_row_lambda() -> None:
    x, truth, machine = _clusters(180, seed=2)
    wrong = machine != truth
    n = truth.size
    nobody = ReviewPlan(np.zeros(n, dtype=bool), np.full(n, 0.5))
    ones = ReviewPlan(nobody.delta, nobody.pi, lam=np.ones(n))
    drop = ReviewPlan(nobody.delta, nobody.pi, lam=np.where(wrong, 0.0, 1.0))
    config = TrainConfig(epochs=60)
    plain, same, dropped = fit_act_models(
        x, machine, truth, [nobody, ones, drop], n_classes=3, config=config
    )
    # λ_i = 1 is the constant λ (to float32 rounding: the batch's loss is summed differently)
    np.testing.assert_allclose(plain.model.weight, same.model.weight, atol=1e-5)

    # λ_i = 0 on the wrong machine labels: the model no longer learns them
    def machine_probability(model: object) -> float:
        logits = model.logits(x[wrong])  # type: ignore[attr-defined]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return float(p[np.arange(p.shape[0]), machine[wrong]].mean())

    assert machine_probability(dropped.model) < machine_probability(plain.model) - 0.1
    # the power stabilizer scales λ_i: λ_i = 1 with power equals the constant power λ
    power_plain, power_ones = fit_act_models(
        x, machine, truth, [nobody, ones], n_classes=3, config=config, stabilizer="power"
    )
    np.testing.assert_allclose(power_plain.model.weight, power_ones.model.weight, atol=1e-5)
    assert not np.allclose(power_plain.model.weight, plain.model.weight, atol=1e-3)
