"""Tests of the ACT math (act_plugin.act_math) on simulated data only.

The simulation: N items with true labels y, a machine annotator wrong on ~20% of them, and a
critic whose suspicion ε̂ = sigmoid(logit) is high on most wrong items but misses some of them
(a missed wrong item gets the same low ε̂ as a correct one). Per-item losses are the
cross-entropies of one fixed model (which, like a model trained on machine labels, leans to ŷ)
against ŷ (ℓᵐ) and against y (ℓ); the full-human loss is mean(ℓ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from act_plugin import act_math
from act_plugin.act_math import (
    SAMPLING_RULES,
    UndefinedMetricWarning,
    accuracy_estimate,
    act_loss_estimate,
    act_weights,
    auroc,
    calibrate_suspicion,
    cross_fitted_probabilities,
    draw_review,
    error_count_estimate,
    gamma_quantile,
    inclusion_probabilities,
    precision_at,
    recall_at_fraction,
    weighted_auroc,
)

N = 2000
DRAWS = 400
SUM_TOL = 1e-6  # |Σπ − B| allowed wherever the budget is met exactly (floor > 0, or the rule)


@dataclass(frozen=True)
class Simulated:
    y: np.ndarray  # true (human) labels
    y_hat: np.ndarray  # machine labels
    wrong: np.ndarray  # y_hat != y
    missed: np.ndarray  # wrong, but the critic scores it like a correct item
    suspicion: np.ndarray  # ε̂ in (0, 1)
    machine_loss: np.ndarray  # ℓᵐ: CE of a fixed model against y_hat
    human_loss: np.ndarray  # ℓ: CE of the same model against y

    @property
    def full_human_loss(self) -> float:
        return float(self.human_loss.mean())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def simulate(
    n: int = N,
    *,
    error_rate: float = 0.2,
    miss_rate: float = 0.15,
    missed_logit: float = -3.0,
    seed: int = 0,
    classes: int = 5,
) -> Simulated:
    """Simulated annotation: machine errors, an imperfect critic, and per-item losses.

    Critic logits: N(2, 1) on caught wrong items, N(-3, 1) on correct items and
    N(missed_logit, 1) on the ``miss_rate`` share of wrong items the critic misses.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    wrong = rng.random(n) < error_rate
    y_hat = np.where(wrong, (y + rng.integers(1, classes, n)) % classes, y)
    missed = wrong & (rng.random(n) < miss_rate)
    logit = np.where(wrong, rng.normal(2.0, 1.0, n), rng.normal(-3.0, 1.0, n))
    logit = np.where(missed, rng.normal(missed_logit, 1.0, n), logit)
    scores = rng.normal(0.0, 1.0, (n, classes))
    scores[np.arange(n), y_hat] += 2.0
    scores[np.arange(n), y] += 1.0
    log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    return Simulated(
        y=y,
        y_hat=y_hat,
        wrong=wrong,
        missed=missed,
        suspicion=_sigmoid(logit),
        machine_loss=-log_p[np.arange(n), y_hat],
        human_loss=-log_p[np.arange(n), y],
    )


@pytest.fixture(scope="module")
def sim() -> Simulated:
    return simulate()


def loss_draws(sim: Simulated, pi: np.ndarray, *, draws: int = DRAWS, lam: float = 1.0):
    """ACT estimates of the full-human loss over ``draws`` seeded review draws."""
    return np.array(
        [
            act_loss_estimate(
                sim.machine_loss, sim.human_loss, draw_review(pi, seed=s), pi, lam=lam
            )
            for s in range(draws)
        ]
    )


def exact_variance(sim: Simulated, pi: np.ndarray, *, lam: float = 1.0) -> float:
    """Var_δ of the ACT estimate under Poisson sampling: Σ d²(1 − π)/π / N², d = ℓ − λℓᵐ."""
    d = sim.human_loss - lam * sim.machine_loss
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(d != 0.0, d**2 * (1.0 - pi) / pi, 0.0)
    return float(terms.sum()) / pi.size**2


# --------------------------------------------------------------------------------------------
# inclusion_probabilities
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", SAMPLING_RULES)
@pytest.mark.parametrize("floor", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("budget", [40, 45, 200, 0.1, 0.3])
def test_rules_give_probabilities_that_spend_the_budget(
    sim: Simulated, rule: str, floor: float, budget: float
) -> None:
    pi = inclusion_probabilities(sim.suspicion, budget, rule=rule, floor=floor)
    b = budget if isinstance(budget, int) else budget * N
    assert pi.shape == (N,)
    assert np.all((pi >= 0.0) & (pi <= 1.0))
    if rule == "normalized" and floor == 0.0:
        # The paper's formula loses the mass that caps at 1 (here: many caught errors).
        assert pi.sum() <= b + SUM_TOL
    else:
        assert pi.sum() == pytest.approx(b, abs=SUM_TOL)
    if floor > 0.0:
        assert pi.min() >= floor * b / N - 1e-12
    # Higher suspicion never lowers π (no ties in continuous data).
    by_suspicion = pi[np.argsort(sim.suspicion)]
    assert np.all(np.diff(by_suspicion) >= -1e-12)


def test_normalized_with_floor_zero_is_the_papers_formula(sim: Simulated) -> None:
    pi = inclusion_probabilities(sim.suspicion, 200, rule="normalized", floor=0.0)
    expected = np.minimum(1.0, 200 * sim.suspicion / sim.suspicion.sum())
    np.testing.assert_array_equal(pi, expected)


def test_normalized_caps_lose_mass_unless_the_floor_absorbs_it() -> None:
    eps = np.array([1.0, 0.01, 0.01, 0.01, 0.01, 0.01])
    paper = inclusion_probabilities(eps, 3, rule="normalized", floor=0.0)
    assert paper[0] == 1.0
    assert paper.sum() == pytest.approx(1.0 + 5 * 3 * 0.01 / 1.05)  # < 3: capped mass is lost
    floored = inclusion_probabilities(eps, 3, rule="normalized", floor=0.1)
    assert floored.sum() == pytest.approx(3.0, abs=1e-9)
    assert floored[0] == 1.0
    np.testing.assert_allclose(floored[1:], 0.4)  # the rest shared evenly over uncapped items


def test_exponential_is_a_logistic_curve_in_suspicion(sim: Simulated) -> None:
    beta = 10.0
    pi = inclusion_probabilities(sim.suspicion, 200, rule="exponential", floor=0.0, beta=beta)
    assert pi.sum() == pytest.approx(200.0, abs=SUM_TOL)
    alpha = sim.suspicion - np.log(pi / (1.0 - pi)) / beta  # constant for a logistic curve
    np.testing.assert_allclose(alpha, alpha[0], atol=1e-6)
    steep = inclusion_probabilities(sim.suspicion, 200, rule="exponential", floor=0.0, beta=1e4)
    top = inclusion_probabilities(sim.suspicion, 200, rule="thresholded", floor=0.0)
    assert np.abs(steep - top).sum() < 2.0  # a very steep curve is (almost) the threshold


def test_uniform_ignores_suspicion(sim: Simulated) -> None:
    for floor in (0.0, 0.1):
        pi = inclusion_probabilities(sim.suspicion, 200, rule="uniform", floor=floor)
        np.testing.assert_allclose(pi, 200 / N)


def test_thresholded_without_floor_picks_exactly_the_top_b(sim: Simulated) -> None:
    pi = inclusion_probabilities(sim.suspicion, 200, rule="thresholded", floor=0.0)
    assert set(np.unique(pi)) == {0.0, 1.0}
    assert int(pi.sum()) == 200
    top = np.argsort(-sim.suspicion)[:200]
    assert set(np.flatnonzero(pi)) == set(top)
    assert sim.suspicion[pi == 1.0].min() >= sim.suspicion[pi == 0.0].max()


def test_thresholded_breaks_ties_by_index() -> None:
    eps = [0.5, 0.9, 0.5, 0.5, 0.1]
    pi = inclusion_probabilities(eps, 2, rule="thresholded", floor=0.0)
    np.testing.assert_array_equal(pi, [1.0, 1.0, 0.0, 0.0, 0.0])
    pi = inclusion_probabilities(eps, 3, rule="thresholded", floor=0.0)
    np.testing.assert_array_equal(pi, [1.0, 1.0, 1.0, 0.0, 0.0])


def test_ties_are_broken_by_index_in_large_arrays() -> None:
    rng = np.random.default_rng(5)
    eps = rng.integers(0, 5, 500) / 4.0  # five distinct values, ~100 ties each
    pi = inclusion_probabilities(eps, 150, rule="thresholded", floor=0.0)
    at_threshold = np.flatnonzero(eps == eps[pi == 1.0].min())
    chosen = at_threshold[pi[at_threshold] == 1.0]
    assert 0 < chosen.size < at_threshold.size
    np.testing.assert_array_equal(chosen, at_threshold[: chosen.size])  # lowest indices first
    is_wrong = np.zeros(500, dtype=bool)
    is_wrong[at_threshold[: chosen.size]] = True
    is_wrong[eps > eps[chosen[0]]] = True
    assert precision_at(eps, is_wrong, k=150) == 1.0


def test_thresholded_with_floor_reviews_the_top_for_sure_and_samples_the_rest(
    sim: Simulated,
) -> None:
    pi = inclusion_probabilities(sim.suspicion, 200, rule="thresholded", floor=0.1)
    top = np.argsort(-sim.suspicion)[:180]  # ⌊(1 − ρ)B⌋ items
    np.testing.assert_array_equal(pi[top], 1.0)
    rest = np.setdiff1d(np.arange(N), top)
    np.testing.assert_allclose(pi[rest], 20 / (N - 180))  # ≥ ρB/N = 0.01
    assert pi.sum() == pytest.approx(200.0, abs=SUM_TOL)


@pytest.mark.parametrize("rule", SAMPLING_RULES)
@pytest.mark.parametrize("floor", [0.0, 0.1])
def test_budget_fraction_equals_the_count(sim: Simulated, rule: str, floor: float) -> None:
    by_fraction = inclusion_probabilities(sim.suspicion, 0.1, rule=rule, floor=floor)
    by_count = inclusion_probabilities(sim.suspicion, 200, rule=rule, floor=floor)
    np.testing.assert_allclose(by_fraction, by_count, atol=1e-9)


def test_full_budget_reviews_everything(sim: Simulated) -> None:
    for rule in ("exponential", "thresholded", "uniform"):
        np.testing.assert_array_equal(inclusion_probabilities(sim.suspicion, N, rule=rule), 1.0)


@pytest.mark.parametrize(
    ("suspicion", "budget", "options", "quoted"),
    [
        ([0.2, 1.5, 0.1], 1, {}, "1.5"),
        ([0.2, -0.1, 0.1], 1, {}, "-0.1"),
        ([0.2, float("nan")], 1, {}, "nan"),
        ([[0.2, 0.3]], 1, {}, "shape (1, 2)"),
        ([], 1, {}, "empty"),
        ([0.2, 0.3], 0, {}, "0"),
        ([0.2, 0.3], 3, {}, "3"),
        ([0.2, 0.3], 1.5, {}, "1.5"),
        ([0.2, 0.3], 1.0, {}, "1.0"),
        ([0.2, 0.3], True, {}, "True"),
        ([0.2, 0.3], "1", {}, "'1'"),
        ([0.2, 0.3], 1, {"rule": "softmax"}, "'softmax'"),
        ([0.2, 0.3], 1, {"floor": 1.0}, "1.0"),
        ([0.2, 0.3], 1, {"floor": -0.2}, "-0.2"),
        ([0.2, 0.3], 1, {"beta": 0.0}, "0.0"),
        ([0.2, 0.3], 1, {"beta": float("inf")}, "inf"),
        ([0.0, 0.0], 1, {"rule": "normalized", "floor": 0.0}, "all-zero"),
    ],
)
def test_inclusion_probabilities_rejects_bad_input_quoting_it(
    suspicion: list, budget: object, options: dict, quoted: str
) -> None:
    with pytest.raises(ValueError) as err:
        inclusion_probabilities(suspicion, budget, **options)  # type: ignore[arg-type]
    assert quoted in str(err.value)


def test_all_zero_suspicion_with_a_floor_is_uniform() -> None:
    pi = inclusion_probabilities([0.0] * 10, 4, rule="normalized", floor=0.1)
    np.testing.assert_allclose(pi, 0.4)


# --------------------------------------------------------------------------------------------
# draw_review
# --------------------------------------------------------------------------------------------


def test_draw_review_is_reproducible_per_seed_and_poisson(sim: Simulated) -> None:
    pi = inclusion_probabilities(sim.suspicion, 200, rule="exponential")
    first = draw_review(pi, seed=3)
    assert first.dtype == bool
    np.testing.assert_array_equal(first, draw_review(pi, seed=3))
    assert not np.array_equal(first, draw_review(pi, seed=4))
    counts = np.array([draw_review(pi, seed=s).sum() for s in range(DRAWS)])
    spread = math.sqrt(float(np.sum(pi * (1 - pi))) / DRAWS)
    assert abs(counts.mean() - 200.0) < 4 * spread
    frequency = np.mean([draw_review(pi, seed=s) for s in range(DRAWS)], axis=0)
    assert np.abs(frequency - pi).max() < 0.12  # each δ_i ~ Bernoulli(π_i)


def test_draw_review_honours_zero_and_one() -> None:
    pi = np.array([0.0, 1.0] * 50)
    for seed in range(20):
        np.testing.assert_array_equal(draw_review(pi, seed=seed), pi == 1.0)


@pytest.mark.parametrize(
    ("pi", "seed", "quoted"),
    [([0.5, 1.2], 0, "1.2"), ([0.5], -1, "-1"), ([0.5], "x", "'x'"), ([0.5], 1.5, "1.5")],
)
def test_draw_review_rejects_bad_input(pi: list, seed: object, quoted: str) -> None:
    with pytest.raises(ValueError, match=quoted):
        draw_review(pi, seed=seed)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# act_weights and act_loss_estimate
# --------------------------------------------------------------------------------------------


def test_act_weights_by_hand() -> None:
    delta = [1, 0, 1, 0, 1]
    pi = [0.25, 0.0, 1.0, 0.5, 0.8]
    w_m, w_h = act_weights(delta, pi, lam=0.5)
    np.testing.assert_allclose(w_m, [0.5 * (1 - 4), 0.5, 0.0, 0.5, 0.5 * (1 - 1.25)])
    np.testing.assert_allclose(w_h, [4.0, 0.0, 1.0, 0.0, 1.25])


@pytest.mark.parametrize(
    ("delta", "pi", "lam", "quoted"),
    [
        ([1, 0], [0.0, 0.5], 1.0, "index 0"),
        ([2, 0], [0.5, 0.5], 1.0, "2.0"),
        ([1, 0], [0.5, 0.5, 0.5], 1.0, "length 3"),
        ([1, 0], [0.5, 0.5], 1.5, "1.5"),
        ([1, 0], [0.5, 0.5], -0.5, "-0.5"),
    ],
)
def test_act_weights_rejects_bad_input(delta: list, pi: list, lam: float, quoted: str) -> None:
    with pytest.raises(ValueError) as err:
        act_weights(delta, pi, lam=lam)
    assert quoted in str(err.value)


def test_act_loss_estimate_by_hand() -> None:
    machine = [0.2, 0.4, 1.0]
    human = [float("nan"), 1.0, 3.0]
    delta = [0, 1, 1]
    pi = [0.0, 0.5, 1.0]
    lam = 0.5
    expected = (lam * 0.2 + (lam * 0.4 + (1.0 - lam * 0.4) / 0.5) + 3.0) / 3
    assert act_loss_estimate(machine, human, delta, pi, lam=lam) == pytest.approx(expected)


def test_act_loss_estimate_extremes(sim: Simulated) -> None:
    nobody = np.zeros(N, dtype=bool)
    half = np.full(N, 0.5)
    estimate = act_loss_estimate(sim.machine_loss, np.full(N, np.nan), nobody, half, lam=0.7)
    assert estimate == pytest.approx(0.7 * sim.machine_loss.mean())
    everyone = np.ones(N, dtype=bool)
    estimate = act_loss_estimate(sim.machine_loss, sim.human_loss, everyone, np.ones(N))
    assert estimate == pytest.approx(sim.full_human_loss)


def test_act_loss_estimate_needs_human_loss_where_reviewed() -> None:
    with pytest.raises(ValueError, match="nan at index 1"):
        act_loss_estimate([0.1, 0.2], [0.3, float("nan")], [1, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match="inf at index 0"):
        act_loss_estimate([float("inf"), 0.2], [0.3, 0.1], [1, 1], [0.5, 0.5])


# --------------------------------------------------------------------------------------------
# Unbiasedness, bias without a floor, variance
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", SAMPLING_RULES)
def test_act_loss_is_unbiased_for_every_rule_with_a_floor(sim: Simulated, rule: str) -> None:
    pi = inclusion_probabilities(sim.suspicion, 0.1, rule=rule, floor=0.1)
    estimates = loss_draws(sim, pi)
    stderr = estimates.std(ddof=1) / math.sqrt(DRAWS)
    assert abs(estimates.mean() - sim.full_human_loss) < 3 * stderr
    # The sampling spread is the Poisson-sampling variance (checks the draws, not just the mean).
    assert estimates.var(ddof=1) == pytest.approx(exact_variance(sim, pi), rel=0.3)


def test_act_loss_with_power_tuning_is_unbiased(sim: Simulated) -> None:
    pi = inclusion_probabilities(sim.suspicion, 0.2, rule="exponential", floor=0.2)
    estimates = loss_draws(sim, pi, lam=0.6)
    stderr = estimates.std(ddof=1) / math.sqrt(DRAWS)
    assert abs(estimates.mean() - sim.full_human_loss) < 3 * stderr


def test_thresholded_without_floor_is_biased_when_the_critic_misses_errors(
    sim: Simulated,
) -> None:
    pi = inclusion_probabilities(sim.suspicion, 0.1, rule="thresholded", floor=0.0)
    estimates = loss_draws(sim, pi, draws=20)
    assert np.ptp(estimates) == 0.0  # π ∈ {0, 1}: the "draw" is deterministic
    bias = estimates[0] - sim.full_human_loss
    # The bias is exactly the machine-vs-human loss gap on the wrong items never reviewed.
    unreviewed_wrong = sim.wrong & (pi == 0.0)
    assert unreviewed_wrong[sim.missed].all()
    gap = (sim.machine_loss - sim.human_loss)[unreviewed_wrong].sum() / N
    assert bias == pytest.approx(gap)
    # ... and it dwarfs the noise of the same rule with a floor, which is unbiased.
    floored = loss_draws(sim, inclusion_probabilities(sim.suspicion, 0.1, rule="thresholded"))
    stderr = floored.std(ddof=1) / math.sqrt(DRAWS)
    assert abs(floored.mean() - sim.full_human_loss) < 3 * stderr
    assert abs(floored.mean() - estimates[0]) > 5 * stderr
    assert abs(bias) > 5 * stderr


def test_thresholded_without_floor_is_exact_when_the_critic_catches_every_error() -> None:
    perfect = simulate(error_rate=0.05, miss_rate=0.0, seed=1)
    assert perfect.suspicion[perfect.wrong].min() >= np.sort(perfect.suspicion)[-200]
    pi = inclusion_probabilities(perfect.suspicion, 200, rule="thresholded", floor=0.0)
    estimate = act_loss_estimate(
        perfect.machine_loss, perfect.human_loss, draw_review(pi, seed=0), pi
    )
    assert estimate == pytest.approx(perfect.full_human_loss)


def test_exact_variance_matches_the_draws(sim: Simulated) -> None:
    """The closed form used below, checked against 2000 draws where tails are light."""
    for rule in ("uniform", "exponential", "normalized"):
        pi = inclusion_probabilities(sim.suspicion, 0.3, rule=rule, floor=0.1)
        estimates = loss_draws(sim, pi, draws=2000)
        assert estimates.var(ddof=1) == pytest.approx(exact_variance(sim, pi), rel=0.15)


def test_normalized_rule_variance_explodes_at_low_budget(sim: Simulated) -> None:
    """The paper's finding, in the regime that produces it: a critic that misses some errors
    confidently (LLM p_yes ≈ 0.001 on them) gives those items tiny normalized π ∝ ε̂, hence huge
    weights 1/π, while floored rules keep π ≥ ρB/N. Exact Poisson-sampling variances: draws
    would rarely hit the tiny-π items that carry the variance."""
    llm_critic = simulate(missed_logit=-7.0, seed=0)
    low, high = 0.02, 0.3

    def variance(rule: str, budget: float) -> float:
        floor = 0.0 if rule == "normalized" else 0.1  # the paper's normalized rule
        pi = inclusion_probabilities(llm_critic.suspicion, budget, rule=rule, floor=floor)
        return exact_variance(llm_critic, pi)

    normalized_low = variance("normalized", low)
    assert normalized_low >= 5 * variance("exponential", low)
    assert normalized_low >= 5 * variance("thresholded", low)
    assert normalized_low >= 5 * variance("normalized", high)
    # Its own low- vs high-budget gap shows in actual draws too (lighter-tailed critic).
    pi_low = inclusion_probabilities(sim.suspicion, low, rule="normalized", floor=0.0)
    pi_high = inclusion_probabilities(sim.suspicion, high, rule="normalized", floor=0.0)
    assert loss_draws(sim, pi_low).var() >= 5 * loss_draws(sim, pi_high).var()


# --------------------------------------------------------------------------------------------
# accuracy_estimate
# --------------------------------------------------------------------------------------------


def test_accuracy_estimate_by_hand_with_string_and_tuple_labels() -> None:
    est = accuracy_estimate(
        ["cat", "dog", "cat", "bird"],
        ["cat", None, "dog", None],
        [1, 0, 1, 0],
        [1.0, 0.2, 0.5, 0.2],
    )
    assert est.estimate == pytest.approx(1 - (1 / 0.5) / 4)
    assert est.stderr == pytest.approx(math.sqrt(0.5 / 0.25) / 4)
    assert (est.n, est.n_reviewed) == (4, 2)
    assert 0.0 <= est.ci_low <= est.estimate <= est.ci_high <= 1.0
    multi = accuracy_estimate(
        [("a", "b"), ("a",), ("b",)], [("a", "b"), ("a", "c"), None], [1, 1, 0], [1.0, 1.0, 0.5]
    )
    assert multi.estimate == pytest.approx(2 / 3)
    assert multi.stderr == 0.0  # π = 1 items add no variance


def accuracy_draws(sim: Simulated, pi: np.ndarray) -> list[act_math.AccuracyEstimate]:
    machine, human = [str(v) for v in sim.y_hat], [str(v) for v in sim.y]
    return [accuracy_estimate(machine, human, draw_review(pi, seed=s), pi) for s in range(DRAWS)]


@pytest.mark.parametrize("rule", SAMPLING_RULES)
def test_accuracy_estimate_is_unbiased_and_its_interval_covers(sim: Simulated, rule: str) -> None:
    truth = 1.0 - sim.wrong.mean()
    pi = inclusion_probabilities(sim.suspicion, 0.3, rule=rule, floor=0.1)
    results = accuracy_draws(sim, pi)
    estimates = np.array([r.estimate for r in results])
    stderr = estimates.std(ddof=1) / math.sqrt(DRAWS)
    assert abs(estimates.mean() - truth) < 3 * stderr
    assert np.mean([r.stderr for r in results]) == pytest.approx(estimates.std(), rel=0.2)
    coverage = np.mean([r.ci_low <= truth <= r.ci_high for r in results])
    assert 0.88 <= coverage <= 0.99


def test_accuracy_interval_covers_under_uniform_review_at_a_low_budget(sim: Simulated) -> None:
    """Uniform review: the interval is the usual Wald interval. (Weighted rules under-cover at
    low budgets, where a few heavily weighted errors dominate: see the docstring.)"""
    truth = 1.0 - sim.wrong.mean()
    pi = inclusion_probabilities(sim.suspicion, 0.1, rule="uniform")
    coverage = np.mean([r.ci_low <= truth <= r.ci_high for r in accuracy_draws(sim, pi)])
    assert 0.90 <= coverage <= 0.99


@pytest.mark.parametrize(
    ("machine", "human", "options", "quoted"),
    [
        (["a", "b"], ["a"], {}, "length 2"),
        (["a"], ["a", "b"], {}, "got 1"),
        (["a", "b"], ["a", "b"], {"confidence": 1.0}, "1.0"),
        (["a", "b"], ["a", "b"], {"confidence": 95}, "95"),
    ],
)
def test_accuracy_estimate_rejects_bad_input(
    machine: list, human: list, options: dict, quoted: str
) -> None:
    with pytest.raises(ValueError, match=quoted):
        accuracy_estimate(machine, human, [1, 1], [1.0, 1.0], **options)


# --------------------------------------------------------------------------------------------
# gamma_quantile, error_count_estimate, calibration
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0.0125, 0.025, 0.5, 0.975, 0.9875])
def test_gamma_quantile_matches_scipy(q: float) -> None:
    from scipy.stats import gamma as gamma_dist

    rng = np.random.default_rng(3)
    mean = np.exp(rng.uniform(-3.0, 9.0, 400))
    variance = mean * np.exp(rng.uniform(-2.0, 6.0, 400))  # shapes from ~1e-4 to ~1e5
    shape, scale = mean**2 / variance, variance / mean
    expected = gamma_dist.ppf(q, shape, scale=scale)
    ok = expected > 1e-250  # scipy underflows to 0 for the tiniest shapes
    np.testing.assert_allclose(gamma_quantile(q, mean, variance)[ok], expected[ok], rtol=1e-6)


def ht_draws(sim: Simulated, pi: np.ndarray, draws: int = DRAWS) -> list[act_math.ErrorCount]:
    return [
        error_count_estimate(sim.wrong, draw_review(pi, seed=s), pi, method="horvitz-thompson")
        for s in range(draws)
    ]


@pytest.mark.parametrize("rule", ["thresholded", "exponential"])
def test_gamma_interval_covers_where_the_normal_one_did_not(sim: Simulated, rule: str) -> None:
    """5% budget, default floor: the old normal interval covered ~0.80 here."""
    truth = float(sim.wrong.sum())
    pi = inclusion_probabilities(sim.suspicion, 0.05, rule=rule, floor=0.1)
    results = ht_draws(sim, pi)
    estimates = np.array([r.estimate for r in results])
    assert abs(estimates.mean() - truth) < 3 * estimates.std(ddof=1) / math.sqrt(DRAWS)
    coverage = np.mean([r.ci_low <= truth <= r.ci_high for r in results])
    assert coverage >= 0.94
    normal = np.mean([abs(r.estimate - truth) <= 1.96 * r.stderr for r in results])
    assert normal < 0.9  # the test can tell a valid interval from the old one
    assert all(r.ci_low < r.ci_high for r in results)  # unreviewed rows with π < 1 remain


def test_error_count_by_hand() -> None:
    # rows: π = 1 wrong (counted exactly), π = 0.5 wrong (weight 2), two unreviewed
    est = error_count_estimate([1, 1, 0, 0], [1, 1, 0, 0], [1.0, 0.5, 0.5, 0.25])
    assert (est.estimate, est.found, est.remaining, est.n_reviewed) == (3.0, 2, 1.0, 2)
    assert est.stderr == pytest.approx(math.sqrt(0.5 / 0.25))
    assert (est.ci_low, est.ci_high) == (2.0, 4.0)  # clipped: ≥ found, ≤ found + 2 unreviewed
    everyone = error_count_estimate([1, 0, 1], [1, 1, 1], [0.5, 0.5, 1.0])
    assert everyone.ci_low == everyone.ci_high == everyone.found == 2  # nothing left unknown


def test_model_assisted_estimate_is_unbiased_and_narrower(sim: Simulated) -> None:
    truth = float(sim.wrong.sum())
    pi = inclusion_probabilities(sim.suspicion, 0.1, rule="thresholded", floor=0.3)
    results = [
        error_count_estimate(sim.wrong, draw_review(pi, seed=s), pi, suspicion=sim.suspicion)
        for s in range(DRAWS)
    ]
    estimates = np.array([r.estimate for r in results])
    assert abs(estimates.mean() - truth) < 3 * estimates.std(ddof=1) / math.sqrt(DRAWS)
    assert np.mean([r.ci_low <= truth <= r.ci_high for r in results]) >= 0.94
    ht = np.array([r.estimate for r in ht_draws(sim, pi)])
    assert estimates.std() < ht.std()


def test_cross_fitted_prediction_ignores_the_rows_own_review() -> None:
    rng = np.random.default_rng(0)
    eps = rng.random(40)
    wrong = rng.random(40) < eps
    delta, pi = np.ones(40, dtype=bool), np.full(40, 0.5)
    base = cross_fitted_probabilities(eps, wrong, delta, pi)
    flipped = wrong.copy()
    flipped[6] = not flipped[6]  # row 6 is in fold 0: only fold 1's predictions may change
    moved = cross_fitted_probabilities(eps, flipped, delta, pi) != base
    assert not moved[::2].any() and moved[1::2].all()


def test_calibration_recovers_a_platt_map() -> None:
    rng = np.random.default_rng(1)
    eps = rng.uniform(0.01, 0.99, 20_000)
    truth = 1.0 / (1.0 + np.exp(-(-1.0 + 0.5 * np.log(eps / (1 - eps)))))
    wrong = rng.random(eps.size) < truth
    weights = rng.choice([1.0, 4.0], eps.size)  # any weights: the same map in expectation
    calibrated = calibrate_suspicion(eps, wrong, weights)
    np.testing.assert_allclose(calibrated(eps), truth, atol=0.02)


# --------------------------------------------------------------------------------------------
# Critic metrics
# --------------------------------------------------------------------------------------------


def brute_force_auroc(scores: np.ndarray, wrong: np.ndarray) -> float:
    pos, neg = scores[wrong], scores[~wrong]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins) / (pos.size * neg.size)


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_pairwise_counting_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    wrong = rng.random(300) < 0.3
    scores = np.round(rng.random(300) * 0.6 + 0.4 * wrong, 1)  # coarse: many ties
    assert auroc(scores, wrong) == pytest.approx(brute_force_auroc(scores, wrong), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_weighted_auroc_matches_weighted_pair_counting(seed: int) -> None:
    rng = np.random.default_rng(seed)
    wrong = rng.random(200) < 0.3
    scores = np.round(rng.random(200) * 0.6 + 0.4 * wrong, 1)
    u = 1.0 / rng.uniform(0.05, 1.0, 200)
    pos, neg = scores[wrong], scores[~wrong]
    pair_weight = u[wrong][:, None] * u[~wrong][None, :]
    wins = pair_weight * ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    expected = float(wins.sum() / pair_weight.sum())
    assert weighted_auroc(scores, wrong, u) == pytest.approx(expected, rel=1e-12)
    assert weighted_auroc(scores, wrong, np.ones(200)) == pytest.approx(auroc(scores, wrong))


def test_weighted_auroc_with_one_weighted_class_is_nan_with_a_warning() -> None:
    with pytest.warns(UndefinedMetricWarning, match="one class") as record:
        value = weighted_auroc([0.1, 0.9], [0, 1], [1.0, 0.0])
    assert math.isnan(value)
    assert record[0].filename == __file__
    with pytest.raises(ValueError, match="weights must be >= 0"):
        weighted_auroc([0.1, 0.9], [0, 1], [1.0, -1.0])


def test_auroc_extremes_and_direction(sim: Simulated) -> None:
    assert auroc(sim.wrong.astype(float), sim.wrong) == 1.0
    assert auroc(-sim.wrong.astype(float), sim.wrong) == 0.0
    assert auroc(np.zeros(N), sim.wrong) == 0.5
    assert 0.75 < auroc(sim.suspicion, sim.wrong) < 0.95  # good critic, misses ~15%


def test_auroc_with_one_class_is_nan_with_a_warning() -> None:
    with pytest.warns(UndefinedMetricWarning, match="one class") as record:
        value = auroc([0.1, 0.9], [0, 0])
    assert math.isnan(value)
    assert record[0].filename == __file__  # stacklevel=2 points at the caller


def test_precision_and_recall_on_a_hand_made_example() -> None:
    # most suspicious first: 7 (wrong), 1 and 4 tie (1 wrong, 4 right), 0 (right), ...
    suspicion = [0.6, 0.8, 0.1, 0.3, 0.8, 0.2, 0.0, 0.9]
    is_wrong = [0, 1, 0, 1, 0, 0, 1, 1]
    assert precision_at(suspicion, is_wrong, k=1) == 1.0
    assert precision_at(suspicion, is_wrong, k=2) == 1.0  # tie 1/4 broken by index: 1 first
    assert precision_at(suspicion, is_wrong, k=3) == pytest.approx(2 / 3)
    assert precision_at(suspicion, is_wrong, k=8) == 0.5
    assert recall_at_fraction(suspicion, is_wrong, fraction=0.25) == 0.5  # top 2 of 8
    assert recall_at_fraction(suspicion, is_wrong, fraction=0.5) == 0.5  # + items 4, 0
    assert recall_at_fraction(suspicion, is_wrong, fraction=0.625) == 0.75  # + item 3
    assert recall_at_fraction(suspicion, is_wrong, fraction=1.0) == 1.0


def test_metrics_reject_bad_input_and_warn_when_undefined() -> None:
    with pytest.raises(ValueError, match="k must be an int from 1 to N=2; got 3"):
        precision_at([0.1, 0.2], [0, 1], k=3)
    with pytest.raises(ValueError, match=r"0\.5"):
        precision_at([0.1, 0.2], [0, 1], k=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"1\.5"):
        recall_at_fraction([0.1, 0.2], [0, 1], fraction=1.5)
    with pytest.raises(ValueError, match=r"2\.0 at index 1"):
        auroc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="length 2"):
        auroc([0.1, 0.2], [0, 1, 1])
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(recall_at_fraction([0.1, 0.2], [0, 0], fraction=0.5))
