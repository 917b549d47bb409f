"""Per-row λ_i in the ACT loss (act_plugin.act_math): validated like the scalar λ, the same
figures when every λ_i is the scalar, and exactly unbiased over every outcome of a small Poisson
draw when λ_i reads only the other rows' reviews (cross-fitted calibration), biased when λ_i
reads δ_i itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from act_plugin.act_math import (
    act_loss_estimate,
    act_weights,
    calibrate_suspicion,
    check_lams,
    cross_fitted_probabilities,
    soft_lambda,
)

# --------------------------------------------------------------------------------------------
# Validation and agreement with the scalar λ
# --------------------------------------------------------------------------------------------


def test_per_row_lambda_by_hand() -> None:
    delta = [1, 0, 1, 0]
    pi = [0.25, 0.5, 1.0, 0.0]
    lam = [0.5, 0.2, 0.9, 1.0]
    w_m, w_h = act_weights(delta, pi, lam=lam)
    np.testing.assert_allclose(w_m, [0.5 * (1 - 4), 0.2, 0.0, 1.0])
    np.testing.assert_allclose(w_h, [4.0, 0.0, 1.0, 0.0])
    machine, human = [0.2, 0.4, 0.6, 0.8], [1.0, np.nan, 0.3, np.nan]
    expected = (0.5 * 0.2 + (1.0 - 0.5 * 0.2) * 4 + 0.2 * 0.4 + 0.3 + 0.8) / 4
    assert act_loss_estimate(machine, human, delta, pi, lam=lam) == pytest.approx(expected)


def test_a_constant_array_gives_the_scalar_figures() -> None:
    rng = np.random.default_rng(0)
    pi = rng.uniform(0.1, 1.0, 40)
    delta = rng.random(40) < pi
    machine, human = rng.random(40), rng.random(40)
    for lam in (0.0, 0.35, 1.0):
        scalar = act_weights(delta, pi, lam=lam)
        array = act_weights(delta, pi, lam=np.full(40, lam))
        np.testing.assert_array_equal(scalar[0], array[0])
        np.testing.assert_array_equal(scalar[1], array[1])
        assert act_loss_estimate(machine, human, delta, pi, lam=lam) == act_loss_estimate(
            machine, human, delta, pi, lam=[lam] * 40
        )
    assert isinstance(check_lams(0.5, 3), float)


@pytest.mark.parametrize(
    ("lam", "quoted"),
    [
        ([0.5, 1.5, 0.5], "1.5 at index 1"),
        ([0.5, -0.1, 0.5], "-0.1 at index 1"),
        ([0.5, np.nan, 0.5], "nan at index 1"),
        ([0.5, 0.5], "length 3"),
        (1.5, "1.5"),
        (True, "True"),
    ],
)
def test_bad_per_row_lambda_is_refused(lam: object, quoted: str) -> None:
    with pytest.raises(ValueError) as err:
        act_weights([1, 0, 1], [0.5, 0.5, 0.5], lam=lam)  # type: ignore[arg-type]
    assert quoted in str(err.value) and "lam" in str(err.value)
    with pytest.raises(ValueError, match="lam"):
        act_loss_estimate([0.1] * 3, [0.2] * 3, [1, 0, 1], [0.5] * 3, lam=lam)  # type: ignore[arg-type]


def test_soft_lambda_is_one_minus_the_wrong_probability() -> None:
    np.testing.assert_allclose(soft_lambda([0.0, 0.3, 1.0]), [1.0, 0.7, 0.0])
    with pytest.raises(ValueError, match="wrong_probability"):
        soft_lambda([0.2, 1.2])


# --------------------------------------------------------------------------------------------
# Exact unbiasedness over every outcome of one Poisson draw
# --------------------------------------------------------------------------------------------

_PI = np.array([0.5, 0.3, 0.8, 1.0, 0.4, 0.6])
_EPS = np.array([0.7, 0.2, 0.9, 0.95, 0.4, 0.1])
_WRONG = np.array([True, False, True, True, False, True])
_MACHINE_LOSS = np.array([1.8, 0.3, 2.2, 1.5, 0.4, 2.6])
_HUMAN_LOSS = np.array([0.2, 0.3, 0.5, 0.1, 0.4, 0.3])  # = ℓᵐ where the machine is right


def _outcomes() -> list[tuple[float, np.ndarray]]:
    """Every δ with its probability (rows with π = 1 are always reviewed)."""
    free = np.flatnonzero((_PI > 0.0) & (_PI < 1.0))
    out = []
    for bits in itertools.product([False, True], repeat=free.size):
        delta = _PI >= 1.0
        delta[free[list(bits)]] = True
        out.append((float(np.prod(np.where(delta, _PI, 1.0 - _PI))), delta))
    return out


def _expected_loss(lam_of: object) -> float:
    mean = 0.0
    for p, delta in _outcomes():
        w_m, w_h = act_weights(delta, _PI, lam=lam_of(delta))  # type: ignore[operator]
        mean += p * float((w_m * _MACHINE_LOSS + w_h * _HUMAN_LOSS).sum())
    return mean


def _cross_fitted_lam(delta: np.ndarray) -> np.ndarray:
    return soft_lambda(cross_fitted_probabilities(_EPS, _WRONG, delta, _PI, folds=2))


def test_the_enumeration_is_complete_and_lambda_varies_with_the_draw() -> None:
    outcomes = _outcomes()
    assert len(outcomes) == 2**5 and sum(p for p, _ in outcomes) == pytest.approx(1.0)
    lams = {tuple(_cross_fitted_lam(delta).round(9)) for _, delta in outcomes}
    assert len(lams) > 8  # λ really depends on the reviews


def test_cross_fitted_lambda_is_exactly_unbiased() -> None:
    """λ_i = 1 − p̂_i, p̂ calibrated on the other fold's reviews: E[L̂] = Σ ℓ exactly."""
    assert _expected_loss(_cross_fitted_lam) == pytest.approx(_HUMAN_LOSS.sum(), abs=1e-12)


def test_any_lambda_of_the_other_rows_reviews_is_exactly_unbiased() -> None:
    def lam_of(delta: np.ndarray) -> np.ndarray:  # λ_i from how many others were reviewed
        others = delta.sum() - delta
        return 1.0 / (1.0 + others + np.arange(delta.size))

    assert _expected_loss(lam_of) == pytest.approx(_HUMAN_LOSS.sum(), abs=1e-12)


def test_lambda_that_reads_its_own_review_is_biased() -> None:
    """The test can fail: λ_i = 1 − δ_i/2 gives E = Σ [ℓ_i + ℓᵐ_i (1 − π_i)/2], and the
    calibration fitted on every reviewed row (row i's own e_i included) is biased too."""
    own = _expected_loss(lambda delta: 1.0 - 0.5 * delta)
    expected = _HUMAN_LOSS.sum() + float((0.5 * _MACHINE_LOSS * (1.0 - _PI)).sum())
    assert own == pytest.approx(expected, abs=1e-12)
    assert own - _HUMAN_LOSS.sum() > 0.5

    def in_sample(delta: np.ndarray) -> np.ndarray:
        fitted = calibrate_suspicion(_EPS[delta], _WRONG[delta], 1.0 / _PI[delta])
        return soft_lambda(fitted(_EPS))

    assert abs(_expected_loss(in_sample) - _HUMAN_LOSS.sum()) > 0.1
