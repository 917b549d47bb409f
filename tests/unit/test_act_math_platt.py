"""The Platt calibration's fit (act_plugin.act_math.platt_parameters) reaches the maximum of its
penalised weighted likelihood on the designs of a thresholded review with a floor: rows with
π = 1 and high suspicion, floor rows with weight 1/π ≈ 40 and suspicion 0 (the pure Newton
iteration diverged there, to b in the hundreds and every P(wrong) ≈ 0 below the threshold)."""

from __future__ import annotations

import numpy as np
import pytest

from act_plugin.act_math import PLATT_RIDGE, calibrate_suspicion, platt_parameters


def _design(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_top, n_low = 51, 26
    top = np.clip(rng.beta(2, 1, n_top), 0, 1)
    low = np.where(rng.random(n_low) < 0.5, 0.0, rng.uniform(0, 0.02, n_low))
    wrong = np.r_[rng.random(n_top) < top, rng.random(n_low) < 0.15]
    weights = np.r_[np.ones(n_top), np.full(n_low, 40.0)]
    return np.r_[top, low], wrong, weights


def _objective_and_gradient(
    a: float, b: float, eps: np.ndarray, wrong: np.ndarray, weights: np.ndarray
) -> tuple[float, float, float]:
    """− the penalised log-likelihood of calibrate_suspicion's docstring, and its gradient."""
    x = np.log(np.clip(eps, 1e-3, 1 - 1e-3)) - np.log1p(-np.clip(eps, 1e-3, 1 - 1e-3))
    u = weights * (weights > 0).sum() / weights.sum()
    z = a + b * x
    p = 1.0 / (1.0 + np.exp(-z))
    value = float((u * (np.logaddexp(0.0, z) - wrong * z)).sum())
    value += 0.5 * PLATT_RIDGE * (a**2 + (b - 1.0) ** 2)
    g_a = float((u * (p - wrong)).sum() + PLATT_RIDGE * a)
    g_b = float((u * (p - wrong) * x).sum() + PLATT_RIDGE * (b - 1.0))
    return value, g_a, g_b


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_fit_reaches_the_optimum_with_unequal_weights(seed: int) -> None:
    eps, wrong, weights = _design(seed)
    a, b = platt_parameters(eps, wrong, weights)
    value, g_a, g_b = _objective_and_gradient(a, b, eps, wrong, weights)
    assert abs(g_a) < 1e-6 and abs(g_b) < 1e-6  # stationary: the concave objective's maximum
    assert value <= _objective_and_gradient(0.0, 1.0, eps, wrong, weights)[0]
    assert abs(b) < 5.0
    # the floor rows (each standing for 40) get a P(wrong) near their error rate, not ≈ 0
    low = weights > 1.0
    calibrated = calibrate_suspicion(eps, wrong, weights)(eps[low])
    assert 0.02 < calibrated.mean() < 0.5


def test_well_behaved_fits_are_plain_newton() -> None:
    """Where Newton's full steps descend, the fit is unchanged: the stationary point."""
    rng = np.random.default_rng(3)
    eps = rng.uniform(0.05, 0.95, 200)
    wrong = rng.random(200) < eps
    a, b = platt_parameters(eps, wrong, np.ones(200))
    _, g_a, g_b = _objective_and_gradient(a, b, eps, wrong, np.ones(200))
    assert abs(g_a) < 1e-8 and abs(g_b) < 1e-8
    assert a == pytest.approx(0.0, abs=0.5) and b == pytest.approx(1.0, abs=0.3)
