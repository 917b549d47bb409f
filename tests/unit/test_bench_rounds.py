"""Review in rounds in the ACT harness: the kNN critic updated by human labels, the rounds'
budgets and the training weights (act_plugin.bench.methods.rounds_review)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from act_plugin.act_math import act_weights, inclusion_probabilities
from act_plugin.bench import TrainConfig, config_from_dict
from act_plugin.bench.critics import KnnCritic, knn_consistency
from act_plugin.bench.methods import ReviewPlan, rounds_review
from act_plugin.bench.train import fit_act_models
from act_plugin.sequential import sequential_weights


def _clusters(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, truth, machine): 3 tight clusters; the machine mislabels a quarter of
    cluster 0 as 1."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(3), n // 3)
    centres = np.eye(3, 8) * 5.0
    x = centres[truth] + rng.normal(scale=0.3, size=(n, 8))
    machine = truth.copy()
    machine[: n // 12] = 1
    return x, truth, machine


def test_knn_critic_matches_knn_consistency_and_rises_with_corrected_neighbours() -> None:
    x, truth, machine = _clusters()
    critic = KnnCritic(x, machine, n_classes=3, k=10)
    np.testing.assert_allclose(critic.suspicion(machine), knn_consistency(x, machine, n_classes=3))
    np.testing.assert_allclose(critic.initial, critic.suspicion(machine))
    # Humans review and correct the wrong labels 0..4: the other wrong rows' neighbours now say
    # 0, so those rows (machine label 1 in cluster 0) look more suspicious, and more so with a
    # higher weight on human labels.
    reviewed = np.zeros(truth.size, dtype=bool)
    reviewed[:5] = True
    reference = np.where(reviewed, truth, machine)
    before = critic.suspicion(machine)
    after = critic.suspicion(reference, reviewed)
    heavier = critic.suspicion(reference, reviewed, human_weight=3.0)
    wrong_left = np.arange(5, truth.size // 12)
    assert np.all(after[wrong_left] >= before[wrong_left])
    assert after[wrong_left].mean() > before[wrong_left].mean() + 0.05
    assert heavier[wrong_left].mean() > after[wrong_left].mean()


@pytest.mark.parametrize("weights", ["sequential", "last"])
def test_rounds_spend_the_budget_review_each_row_once_and_weigh_as_documented(
    weights: str,
) -> None:
    x, truth, machine = _clusters(240)
    critic = KnnCritic(x, machine, n_classes=3)
    calls: list[int] = []

    def rescore(reviewed: np.ndarray, seen: np.ndarray) -> np.ndarray:
        assert np.all(seen[reviewed] == truth[reviewed]) and np.all(seen[~reviewed] == -1)
        calls.append(int(reviewed.sum()))
        return critic.rescored(reviewed, seen, human_weight=3.0)

    plan = rounds_review(
        critic.initial,
        0.2,
        human=truth,
        machine=machine,
        rounds=4,
        rule="thresholded",
        floor=0.3,
        beta=10.0,
        seed=np.random.SeedSequence(1),
        rescore=rescore,
        weights=weights,
    )
    assert len(plan.pis) == len(plan.deltas) == 4 and len(calls) == 3
    budgets = [float(p.sum()) for p in plan.pis]
    np.testing.assert_allclose(budgets, [0.2 * 240 / 4] * 4, rtol=1e-6)  # B/K each
    drawn = np.stack(plan.deltas).sum(axis=0)
    assert drawn.max() == 1 and np.array_equal(drawn == 1, plan.delta)  # each row at most once
    for r in range(1, 4):  # a later round draws only from the rows not reviewed yet
        before = np.any(plan.deltas[:r], axis=0)
        assert np.all(plan.pis[r][before] == 0.0) and np.all(plan.pis[r][~before] > 0.0)
    assert weights != "sequential" or np.allclose(
        plan.ratio, sequential_weights(plan.pis, plan.deltas)[1]
    )
    if weights == "last":
        known = plan.delta & ~plan.deltas[-1]
        assert np.all(plan.ratio[known] == 1.0)
        last = plan.deltas[-1]
        np.testing.assert_allclose(plan.ratio[last], 1.0 / plan.pis[-1][last])
    assert np.all(plan.ratio[~plan.delta] == 0.0)
    # every round's thresholded part went to the most suspicious rows left: the first round's
    # π = 1 rows are the top ⌊(1 − ρ) b⌋ of the first suspicion
    k = int(np.floor(0.7 * 0.2 * 240 / 4 + 1e-9))
    first = inclusion_probabilities(critic.initial, 0.05, rule="thresholded", floor=0.3)
    np.testing.assert_allclose(plan.pis[0], first)
    assert int((plan.pis[0] == 1.0).sum()) == k


def test_one_round_is_the_single_draw_act_loss() -> None:
    rng = np.random.default_rng(3)
    eps = rng.random(80)
    truth = rng.integers(3, size=80)
    plan = rounds_review(
        eps, 0.25, human=truth, machine=truth, rounds=1, rule="exponential", floor=0.3,
        beta=10.0, seed=np.random.SeedSequence(2),
    )  # fmt: skip
    pi = inclusion_probabilities(eps, 0.25, rule="exponential", floor=0.3)
    np.testing.assert_allclose(plan.pi[plan.delta], pi[plan.delta])
    np.testing.assert_allclose(plan.ratio, act_weights(plan.delta, pi)[1])


def test_an_audit_design_searches_without_the_floor_and_audits_with_it() -> None:
    """Rounds 1 … R − 1 draw the rule without the floor (π = 0 on the rows below the top), the
    last round with it (π > 0 on every row left); the sequential combination is refused."""
    x, truth, machine = _clusters(240)
    critic = KnnCritic(x, machine, n_classes=3)
    rescore = partial(critic.rescored, human_weight=3.0)

    common = dict(human=truth, machine=machine, rounds=4, rule="thresholded", floor=0.3,
                  beta=10.0, seed=np.random.SeedSequence(1), rescore=rescore)  # fmt: skip
    plan = rounds_review(critic.initial, 0.2, weights="last", audit=True, **common)
    np.testing.assert_allclose([p.sum() for p in plan.pis], [12.0] * 4, rtol=1e-6)
    for r in range(3):
        left = ~np.any(plan.deltas[:r], axis=0) if r else np.ones(240, dtype=bool)
        assert (plan.pis[r][left] == 0.0).sum() > 150  # no floor: most rows left get π = 0
    before = np.any(plan.deltas[:3], axis=0)
    assert np.all(plan.pis[3][~before] >= 0.3 * 12.0 / (~before).sum() - 1e-12)
    np.testing.assert_allclose(
        plan.pis[0], inclusion_probabilities(critic.initial, 0.05, rule="thresholded", floor=0.0)
    )
    assert plan.calibration is not None
    np.testing.assert_allclose(plan.calibration(plan.raw_suspicion), plan.suspicion)
    with pytest.raises(ValueError, match=r"audit design .* needs weights='last'"):
        rounds_review(critic.initial, 0.2, weights="sequential", audit=True, **common)


@pytest.mark.parametrize(
    ("weights", "audit"), [("sequential", False), ("last", False), ("last", True)]
)
def test_round_weights_give_an_unbiased_loss_although_the_critic_adapts(
    weights: str, audit: bool
) -> None:
    """E[Σ_i w_m,i ℓᵐ_i + w_h,i ℓ_i] = Σ_i ℓ_i over the draws, for any fixed losses, while each
    round's π depends on what the earlier rounds found (the critic is re-scored). The
    last-round loss needs a floor only in the last round (``audit``: the earlier rounds spend
    their budget on the top rows alone)."""
    x, truth, machine = _clusters(60, seed=4)
    critic = KnnCritic(x, machine, n_classes=3)
    rng = np.random.default_rng(5)
    machine_loss = rng.random(60) + (machine != truth) * 2.0
    human_loss = rng.random(60)
    rescore = partial(critic.rescored, human_weight=3.0)

    totals = []
    for draw in range(600):
        plan = rounds_review(
            critic.initial, 0.2, human=truth, machine=machine, rounds=3, rule="thresholded",
            floor=0.3, beta=10.0, seed=np.random.SeedSequence([draw, 7]), rescore=rescore,
            weights=weights, audit=audit,
        )  # fmt: skip
        w_h = plan.ratio
        totals.append(float(((1.0 - w_h) * machine_loss + w_h * human_loss).sum()))
    mean, se = float(np.mean(totals)), float(np.std(totals) / np.sqrt(len(totals)))
    assert abs(mean - human_loss.sum()) < 4 * se + 1e-9
    assert se > 0  # the draws really vary


def test_custom_human_weights_train_exactly_like_the_single_draw_plan() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(90, 5))
    truth = (x[:, 0] > 0).astype(np.int64)
    machine = truth.copy()
    machine[:15] = 1 - machine[:15]
    pi = np.full(90, 0.3)
    delta = rng.random(90) < pi
    plain = ReviewPlan(delta, pi)
    custom = ReviewPlan(delta, pi, weight_human=act_weights(delta, pi)[1])
    a, b = fit_act_models(
        x, machine, truth, [plain, custom], n_classes=2, config=TrainConfig(epochs=30)
    )
    np.testing.assert_allclose(a.model.weight, b.model.weight, atol=1e-5)


def test_round_settings_are_validated() -> None:
    base = {"datasets": [{"name": "d", "kind": "digits", "annotator": "nearest_centroid"}]}
    config = config_from_dict(base)
    assert (config.rounds, config.rounds_rule, config.rounds_floor) == (4, "thresholded", 0.3)
    with pytest.raises(ValueError, match=r"rounds must be an int ≥ 1; got 0"):
        config_from_dict({**base, "rounds": 0})
    with pytest.raises(ValueError, match=r"rounds_rule must be one of"):
        config_from_dict({**base, "rounds_rule": "top"})
    with pytest.raises(ValueError, match=r"rounds_floor"):
        config_from_dict({**base, "rounds_floor": 1.0})
