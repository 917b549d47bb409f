"""Tests of review in rounds (act_plugin.sequential): one round is the single-draw ACT math,
the inputs are validated, the estimates and weights are exactly unbiased over every outcome of
a tiny two-round design whose second round depends on the first, and the certificate's bound
and α spending behave as documented."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from act_plugin.act_math import (
    act_weights,
    calibrate_suspicion,
    draw_review,
    error_count_estimate,
    inclusion_probabilities,
    soft_lambda,
)
from act_plugin.sequential import (
    certificate,
    last_round_weights,
    round_shares,
    sequential_error_count,
    sequential_weights,
)


def _population(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    eps = rng.beta(0.6, 2.4, n)
    return eps, rng.random(n) < eps


def _two_rounds(
    eps: np.ndarray, wrong: np.ndarray, budget: int, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Two rounds of ``budget`` expected reviews each; the second draws from the rows left."""
    n = eps.size
    pi1 = inclusion_probabilities(eps, budget)
    d1 = draw_review(pi1, seed=seed)
    pi2 = np.zeros(n)
    pi2[~d1] = inclusion_probabilities(eps[~d1], budget / (~d1).sum())
    d2 = draw_review(pi2, seed=seed + 1)
    return [pi1, pi2], [d1, d2]


# --------------------------------------------------------------------------------------------
# One round is the single-draw math
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("assisted", [False, True])
@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_one_round_equals_error_count_estimate(assisted: bool, confidence: float) -> None:
    eps, wrong = _population(800, seed=3)
    pi = inclusion_probabilities(eps, 0.2, rule="exponential")
    delta = draw_review(pi, seed=4)
    suspicion = eps if assisted else None
    single = error_count_estimate(wrong, delta, pi, suspicion=suspicion, confidence=confidence)
    rounds = sequential_error_count(
        wrong, [pi], [delta], suspicion=suspicion, confidence=confidence
    )
    assert single.method == ("model-assisted" if assisted else "horvitz-thompson")
    assert rounds.method == single.method
    assert (rounds.found, rounds.n, rounds.n_reviewed) == (
        single.found,
        single.n,
        single.n_reviewed,
    )
    for field in ("estimate", "stderr", "ci_low", "ci_high"):
        assert getattr(rounds, field) == pytest.approx(getattr(single, field), rel=1e-12), field
    assert single.ci_low < single.estimate < single.ci_high  # a real interval, not a point


def test_one_round_method_label_when_the_assisted_estimator_falls_back() -> None:
    eps, wrong = _population(100, seed=1)
    pi = inclusion_probabilities(eps, 0.05)  # Σ π over 0 < π < 1 is 5 < 10: no calibration
    delta = draw_review(pi, seed=2)
    single = error_count_estimate(wrong, delta, pi, suspicion=eps)
    rounds = sequential_error_count(wrong, [pi], [delta], suspicion=eps)
    assert single.method == "horvitz-thompson"
    assert rounds.estimate == pytest.approx(single.estimate, rel=1e-12)  # the numbers agree
    assert rounds.method == single.method  # and so does the label


def test_one_round_thresholded_with_certain_rows() -> None:
    eps, wrong = _population(500, seed=5)
    pi = inclusion_probabilities(eps, 0.1, rule="thresholded")
    assert (pi == 1.0).any()
    delta = draw_review(pi, seed=6)
    single = error_count_estimate(wrong, delta, pi)
    rounds = sequential_error_count(wrong, [pi], [delta])
    assert (rounds.estimate, rounds.ci_low, rounds.ci_high) == pytest.approx(
        (single.estimate, single.ci_low, single.ci_high), rel=1e-12
    )


def test_one_round_weights_equal_act_weights() -> None:
    eps, _ = _population(300, seed=7)
    pi = inclusion_probabilities(eps, 0.2)
    delta = draw_review(pi, seed=8)
    for lam in (1.0, 0.6):
        machine, human = sequential_weights([pi], [delta], lam=lam)
        want_machine, want_human = act_weights(delta, pi, lam=lam)
        np.testing.assert_allclose(machine, want_machine, rtol=0, atol=1e-12)
        np.testing.assert_allclose(human, want_human, rtol=0, atol=1e-12)


def test_round_shares_are_the_budgets() -> None:
    shares = round_shares([[0.5, 0.5, 0.5, 0.5], [0.0, 0.5, 0.5, 0.0]])
    np.testing.assert_allclose(shares, [2 / 3, 1 / 3])


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def test_a_row_reviewed_earlier_cannot_be_drawn_again() -> None:
    pis = [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]  # row 0 reviewed in round 1, π > 0 in round 2
    deltas = [[1, 0, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match="row 0 was reviewed before round 2"):
        sequential_error_count([1, 0, 0], pis, deltas)
    with pytest.raises(ValueError, match="row 0 was reviewed before round 2"):
        sequential_weights(pis, deltas)
    with pytest.raises(ValueError, match="row 0 was reviewed before round 2"):
        certificate([1, 0, 0], pis, deltas, total_budget=3.0, target=0.5)


def test_a_row_reviewed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="reviewed before round 2"):
        sequential_error_count([0, 0], [[0.5, 0.5], [0.5, 0.5]], [[1, 0], [1, 0]])


@pytest.mark.parametrize(
    ("pis", "deltas", "message"),
    [
        ([[0.5, 0.5], [0.5, 0.5, 0.5]], [[0, 0], [0, 0, 0]], "same N rows"),
        ([[0.5, 0.5]], [[0, 0], [0, 0]], "one \\(pi, delta\\) pair per round"),
        ([], [], "at least one"),
        ([[0.5, 0.5], [0.0, 0.0]], [[0, 0], [0, 0]], "round 2 has no budget"),
        ([[0.5, 0.5, 0.5]], [[1, 0]], "must have length|same length|length"),
        ([[0.0, 0.5]], [[1, 0]], "pi is 0"),
    ],
)
def test_inconsistent_rounds_are_refused(pis: list, deltas: list, message: str) -> None:
    wrong = [0] * len(pis[0]) if pis else []
    with pytest.raises(ValueError, match=message):
        sequential_error_count(wrong, pis, deltas)
    with pytest.raises(ValueError, match=message):
        sequential_weights(pis, deltas)


def test_wrong_and_suspicion_must_cover_every_row() -> None:
    pis, deltas = [[0.5, 0.5, 0.5]], [[1, 0, 0]]
    with pytest.raises(ValueError, match="wrong"):
        sequential_error_count([1, 0], pis, deltas)
    with pytest.raises(ValueError, match="suspicion"):
        sequential_error_count([1, 0, 0], pis, deltas, suspicion=[0.1, 0.2])


def test_rounds_over_the_total_budget_are_refused() -> None:
    pis = [[0.5] * 4, [0.0, 0.5, 0.5, 0.5]]
    deltas = [[1, 0, 0, 0], [0, 0, 1, 0]]
    with pytest.raises(ValueError, match="more than total_budget 3"):
        certificate([1, 0, 1, 0], pis, deltas, total_budget=3.0, target=0.5)
    cert = certificate([1, 0, 1, 0], pis, deltas, total_budget=3.5, target=0.5)
    assert cert.alpha_spent == pytest.approx(0.05)
    with pytest.raises(ValueError, match="total_budget"):
        certificate([1, 0, 1, 0], pis, deltas, total_budget=0.0, target=0.5)
    with pytest.raises(ValueError, match="target"):
        certificate([1, 0, 1, 0], pis, deltas, total_budget=4.0, target=1.5)


# --------------------------------------------------------------------------------------------
# Exact unbiasedness over every outcome of a two-round design
# --------------------------------------------------------------------------------------------

_WRONG = np.array([True, False, True, False])
_PI1 = np.array([0.5, 0.4, 0.6, 0.0])  # row 3 (right, ℓ = λℓᵐ) waits for round 2
_BUDGET2 = 0.9  # fixed in advance, as the rounds' budgets must be
_LAM = 0.7
_MACHINE_LOSS = np.array([0.2, 0.9, 1.3, 0.5])
_HUMAN_LOSS = np.array([1.1, 0.3, 0.4, _LAM * 0.5])


def _subsets(mask: np.ndarray) -> list[np.ndarray]:
    rows = np.flatnonzero(mask)
    out = []
    for bits in itertools.product([False, True], repeat=rows.size):
        delta = np.zeros(mask.size, dtype=bool)
        delta[rows[list(bits)]] = True
        out.append(delta)
    return out


def _probability(delta: np.ndarray, pi: np.ndarray) -> float:
    return float(np.prod(np.where(delta, pi, 1.0 - pi)))


def _second_round(d1: np.ndarray) -> np.ndarray:
    """π of round 2 from round 1's outcome: more weight where round 1 found errors (rows of
    the same parity as an error found), spread over the rows left, Σ π = _BUDGET2."""
    found = np.flatnonzero(d1 & _WRONG)
    score = np.array([0.3, 0.2, 0.5, 0.4])
    for i in found:
        score[np.arange(4) % 2 == i % 2] += 0.6
    pool = ~d1
    pi = np.zeros(4)
    pi[pool] = _BUDGET2 * score[pool] / score[pool].sum()
    return pi


def _outcomes() -> list[tuple[float, list[np.ndarray], list[np.ndarray]]]:
    out = []
    for d1 in _subsets(_PI1 > 0.0):
        pi2 = _second_round(d1)
        for d2 in _subsets(pi2 > 0.0):
            out.append((_probability(d1, _PI1) * _probability(d2, pi2), [_PI1, pi2], [d1, d2]))
    return out


def test_the_design_enumeration_is_complete_and_adaptive() -> None:
    outcomes = _outcomes()
    assert sum(p for p, _, _ in outcomes) == pytest.approx(1.0, abs=1e-12)
    second = {tuple(pis[1].round(6)) for _, pis, _ in outcomes}
    assert len(second) > 4  # round 2's π really depends on round 1's outcome
    assert all(pis[1].sum() == pytest.approx(_BUDGET2) for _, pis, _ in outcomes)


def test_sequential_error_count_is_exactly_unbiased() -> None:
    truth = float(_WRONG.sum())
    mean = mean_square = pooled = expected_variance = 0.0
    for p, pis, deltas in _outcomes():
        est = sequential_error_count(_WRONG, pis, deltas)
        mean += p * est.estimate
        mean_square += p * est.estimate**2
        expected_variance += p * est.stderr**2
        pooled += p * sum(
            float((1.0 / pi[d & _WRONG]).sum()) for pi, d in zip(pis, deltas, strict=True)
        )
    assert mean == pytest.approx(truth, abs=1e-12)
    # V̂ = Σ w_r² V̂_r is unbiased for the variance of T̂ (martingale differences)
    assert expected_variance == pytest.approx(mean_square - mean**2, abs=1e-12)
    # the test can tell: pooling every round's δe/π as one draw is biased in this design
    assert abs(pooled - truth) > 0.1


def test_a_search_round_weighs_nothing_and_the_audit_round_is_exactly_unbiased() -> None:
    """Round 1 searches without a floor (π = 0 on rows 0 and 2), round 2 audits every row left
    with π > 0 depending on round 1's outcome: T̂ is exactly unbiased because round 1 weighs 0
    (with its budget's weight it would count rows 0 and 2 as right in round 1's estimate)."""
    search = np.array([0.0, 1.0, 0.0, 0.5])  # misses the wrong rows 0 and 2
    truth = float(_WRONG.sum())
    mean = by_budget = 0.0
    for d1 in _subsets(search > 0.0):
        audit = np.where(d1, 0.0, np.maximum(_second_round(d1), 0.2))
        for d2 in _subsets(audit > 0.0):
            p = _probability(d1, search) * _probability(d2, audit)
            est = sequential_error_count(_WRONG, [search, audit], [d1, d2])
            mean += p * est.estimate
            alone = sequential_error_count(_WRONG, [audit], [d2]).estimate  # audit's pool only
            assert est.estimate == pytest.approx(float((_WRONG & d1).sum()) + alone)
            first = sequential_error_count(_WRONG, [search], [d1]).estimate
            shares = round_shares([search, audit])
            by_budget += p * (shares[0] * first + shares[1] * est.estimate)
    assert mean == pytest.approx(truth, abs=1e-12)
    assert abs(by_budget - truth) > 0.1  # the budget's weights would be biased here


def test_sequential_weights_are_exactly_unbiased() -> None:
    truth = float(_HUMAN_LOSS.sum())
    mean = 0.0
    for p, pis, deltas in _outcomes():
        machine, human = sequential_weights(pis, deltas, lam=_LAM)
        reviewed = np.any(deltas, axis=0)
        assert (human[~reviewed] == 0.0).all()
        assert (machine[~reviewed] == _LAM).all()
        mean += p * float((machine * _MACHINE_LOSS + human * _HUMAN_LOSS).sum())
    assert mean == pytest.approx(truth, abs=1e-12)


def test_last_round_weights_are_exactly_unbiased() -> None:
    truth = float(_HUMAN_LOSS.sum())
    mean = 0.0
    for p, pis, deltas in _outcomes():
        machine, human = last_round_weights(pis, deltas, lam=_LAM)
        first = deltas[0]
        assert (machine[first] == 0.0).all() and (human[first] == 1.0).all()
        mean += p * float((machine * _MACHINE_LOSS + human * _HUMAN_LOSS).sum())
    assert mean == pytest.approx(truth, abs=1e-12)


_SCORE = np.array([0.8, 0.3, 0.6, 0.2])  # a critic's suspicion of the four rows


def _lam_after_round_one(d1: np.ndarray) -> np.ndarray:
    """λ_i = 1 − the critic calibrated on round 1's reviews (weights 1/π₁): fixed given round 1,
    as in the harness's ``ours_rounds_soft``."""
    if not d1.any():
        return soft_lambda(_SCORE)
    fitted = calibrate_suspicion(_SCORE[d1], _WRONG[d1], 1.0 / _PI1[d1])
    return soft_lambda(fitted(_SCORE))


def _expected_last_round_loss(lam_of: object) -> float:
    mean = 0.0
    for p, pis, deltas in _outcomes():
        machine, human = last_round_weights(pis, deltas, lam=lam_of(deltas))  # type: ignore[operator]
        mean += p * float((machine * _MACHINE_LOSS + human * _HUMAN_LOSS).sum())
    return mean


def test_last_round_weights_with_lambda_from_the_earlier_rounds_are_exactly_unbiased() -> None:
    lams = {tuple(_lam_after_round_one(d[0]).round(9)) for _, _, d in _outcomes()}
    assert len(lams) > 2  # λ depends on what round 1 found
    mean = _expected_last_round_loss(lambda deltas: _lam_after_round_one(deltas[0]))
    assert mean == pytest.approx(float(_HUMAN_LOSS.sum()), abs=1e-12)


def test_last_round_lambda_that_reads_the_last_draw_is_biased() -> None:
    """The test can fail: λ_i calibrated on every review, the last round's included."""

    def peeking(deltas: list[np.ndarray]) -> np.ndarray:
        seen = deltas[0] | deltas[1]
        if not seen.any():
            return soft_lambda(_SCORE)
        fitted = calibrate_suspicion(_SCORE[seen], _WRONG[seen], np.ones(int(seen.sum())))
        return soft_lambda(fitted(_SCORE))

    assert abs(_expected_last_round_loss(peeking) - float(_HUMAN_LOSS.sum())) > 0.01
    # and plainly: λ_i = 1 − δ_R,i / 2 adds E[Σ_{U_R} ℓᵐ_i (1 − π_R,i) / 2] (rows with π_R < 1)
    own = _expected_last_round_loss(lambda deltas: 1.0 - 0.5 * deltas[1])
    extra = sum(
        p * float((0.5 * _MACHINE_LOSS * (1.0 - pis[1]) * (pis[1] > 0.0)).sum())
        for p, pis, _ in _outcomes()
    )
    assert own == pytest.approx(float(_HUMAN_LOSS.sum()) + extra, abs=1e-12) and extra > 0.1


def test_sequential_weights_with_a_fixed_per_row_lambda_are_exactly_unbiased() -> None:
    lam = np.array([0.3, 0.9, 0.5, _LAM])  # row 3 (π₁ = 0) keeps ℓ₃ = λ₃ℓᵐ₃
    mean = 0.0
    for p, pis, deltas in _outcomes():
        machine, human = sequential_weights(pis, deltas, lam=lam)
        scalar = sequential_weights(pis, deltas, lam=_LAM)
        assert np.array_equal(human, scalar[1])
        mean += p * float((machine * _MACHINE_LOSS + human * _HUMAN_LOSS).sum())
    assert mean == pytest.approx(float(_HUMAN_LOSS.sum()), abs=1e-12)
    with pytest.raises(ValueError, match="lam must have length 4"):
        sequential_weights([_PI1], [np.zeros(4, dtype=bool)], lam=[0.5, 0.5])
    with pytest.raises(ValueError, match="lam must lie in"):
        last_round_weights([_PI1], [np.zeros(4, dtype=bool)], lam=[0.5, 0.5, 2.0, 0.5])


def test_one_round_last_round_weights_equal_act_weights() -> None:
    eps, _ = _population(300, seed=4)
    pi = inclusion_probabilities(eps, 0.2, rule="exponential")
    delta = draw_review(pi, seed=8)
    machine, human = last_round_weights([pi], [delta], lam=0.6)
    expected = act_weights(delta, pi, lam=0.6)
    assert machine == pytest.approx(expected[0]) and human == pytest.approx(expected[1])


# --------------------------------------------------------------------------------------------
# The certificate
# --------------------------------------------------------------------------------------------


def test_certificate_of_a_full_review_is_exact() -> None:
    wrong = [1, 0, 1, 0, 0, 0, 1, 0]
    ones = [1.0] * 8
    cert = certificate(wrong, [ones], [[1] * 8], total_budget=8, target=1.0)
    assert (cert.lower_bound, cert.met, cert.errors_left_high) == (1.0, True, 0.0)
    assert cert.rounds == 1
    assert cert.alpha_spent == pytest.approx(0.05)


def test_certificate_when_everything_is_reviewed_in_rounds() -> None:
    eps, wrong = _population(400, seed=11)
    pi1 = inclusion_probabilities(eps, 80)
    d1 = draw_review(pi1, seed=12)
    pi2 = np.where(d1, 0.0, 1.0)  # round 2 reviews every row left
    d2 = ~d1
    total = float(pi1.sum() + pi2.sum())
    first = certificate(wrong, [pi1], [d1], total_budget=total, target=0.5, suspicion=eps)
    both = certificate(wrong, [pi1, pi2], [d1, d2], total_budget=total, target=0.5)
    truth_first = 1.0 - float((wrong & ~d1).sum()) / wrong.size
    assert first.lower_bound <= truth_first
    assert first.errors_left_high >= float((wrong & ~d1).sum())
    assert both.lower_bound == 1.0  # every error found: the training set is all human-checked
    assert both.lower_bound >= first.lower_bound
    assert first.alpha_spent == pytest.approx(0.05 * 80 / total)
    assert both.alpha_spent == pytest.approx(0.05)


def test_certificate_met_and_not_met() -> None:
    eps, wrong = _population(1000, seed=13)
    pis, deltas = _two_rounds(eps, wrong, 150, seed=14)
    base = certificate(wrong, pis, deltas, total_budget=400, target=0.5, suspicion=eps)
    assert 0.5 < base.lower_bound < 1.0
    assert base.met
    assert base.lower_bound == pytest.approx(1.0 - base.errors_left_high / 1000)
    above = certificate(
        wrong, pis, deltas, total_budget=400, target=base.lower_bound + 1e-3, suspicion=eps
    )
    assert not above.met
    exact = certificate(
        wrong, pis, deltas, total_budget=400, target=base.lower_bound, suspicion=eps
    )
    assert exact.met
    assert base.alpha_spent == pytest.approx(0.05 * 300 / 400) and base.alpha_spent <= 0.05
    assert base.confidence == 0.95 and base.rounds == 2
    # a smaller α (higher confidence) gives a lower bound
    strict = certificate(
        wrong, pis, deltas, total_budget=400, target=0.5, suspicion=eps, confidence=0.99
    )
    assert strict.lower_bound < base.lower_bound


def test_certificate_of_one_round_is_the_one_sided_error_count_bound() -> None:
    eps, wrong = _population(600, seed=15)
    pi = inclusion_probabilities(eps, 0.2)
    delta = draw_review(pi, seed=16)
    total = float(pi.sum())
    cert = certificate(wrong, [pi], [delta], total_budget=total, target=0.5, suspicion=eps)
    count = error_count_estimate(wrong, delta, pi, suspicion=eps, confidence=0.9)
    assert cert.errors_left_high == pytest.approx(count.ci_high - count.found, rel=1e-12)


def test_certificate_never_loosens_with_more_rounds() -> None:
    eps, wrong = _population(800, seed=17)
    n = eps.size
    pis, deltas = [], []
    reviewed = np.zeros(n, dtype=bool)
    for r in range(4):
        pi = np.zeros(n)
        pi[~reviewed] = inclusion_probabilities(eps[~reviewed], 40 / (~reviewed).sum())
        d = draw_review(pi, seed=100 + r)
        reviewed |= d
        pis.append(pi)
        deltas.append(d)
    bounds = [
        certificate(wrong, pis[:r], deltas[:r], total_budget=160, target=0.5).lower_bound
        for r in range(1, 5)
    ]
    assert bounds == sorted(bounds)
    spent = [
        certificate(wrong, pis[:r], deltas[:r], total_budget=160, target=0.5).alpha_spent
        for r in range(1, 5)
    ]
    np.testing.assert_allclose(spent, [0.0125, 0.025, 0.0375, 0.05])


def test_certificate_holds_at_every_round_in_simulation() -> None:
    """P(bound above the training set's true accuracy at some round) ≤ α, up to MC error."""
    eps, wrong = _population(400, seed=19)
    n, draws, wrong_somewhere = eps.size, 150, 0
    for seed in range(draws):
        pis, deltas = _two_rounds(eps, wrong, 40, seed=1000 + 2 * seed)
        for r in (1, 2):
            cert = certificate(wrong, pis[:r], deltas[:r], total_budget=80, target=0.5)
            found = float((wrong & np.any(deltas[:r], axis=0)).sum())
            truth = 1.0 - (float(wrong.sum()) - found) / n
            if cert.lower_bound > truth + 1e-12:
                wrong_somewhere += 1
                break
    se = math.sqrt(0.05 * 0.95 / draws)
    assert wrong_somewhere / draws <= 0.05 + 3 * se
