"""The downstream model as a second critic (act_plugin.bench.model_critic.model_lambda): λ_i never
reads row i's own review, it is lower on wrong machine labels than the critic alone makes it,
and the harness's ``ours_rounds_model`` trains on ``ours_rounds_last``'s draws with it."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
import pytest

from act_plugin.bench import TrainConfig, config_from_dict
from act_plugin.bench.critics import KnnCritic
from act_plugin.bench.methods import ReviewPlan, review_plan, rounds_review
from act_plugin.bench.model_critic import model_lambda, post_review_probability

CONFIG = TrainConfig(epochs=60)


def _clusters(n: int = 180, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, truth, machine): 3 separable clusters; the machine mislabels 15% at random."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(3), n // 3)
    x = np.eye(3, 6)[truth] * 3.0 + rng.normal(scale=0.7, size=(n, 6))
    machine = truth.copy()
    flip = rng.random(n) < 0.15
    machine[flip] = (truth[flip] + rng.integers(1, 3, flip.sum())) % 3
    return x, truth, machine


def _plan(truth: np.ndarray, machine: np.ndarray, seed: int = 1) -> tuple[ReviewPlan, np.ndarray]:
    wrong = machine != truth
    rng = np.random.default_rng(seed)
    p = np.clip(0.1 + 0.3 * wrong + rng.normal(0, 0.1, wrong.size), 0.01, 0.99)
    plan = review_plan(
        "ours_thresholded", p, 0.2, n=p.size, floor=0.3, beta=10.0,
        seed=np.random.SeedSequence(seed),
    )  # fmt: skip
    return plan, p


def test_lambda_is_lower_on_wrong_machine_labels_than_the_critic_alone() -> None:
    x, truth, machine = _clusters()
    wrong = machine != truth
    plan, p = _plan(truth, machine)
    lam = model_lambda(x, machine, truth, plan, p, n_classes=3, config=CONFIG, folds=3)
    assert lam.shape == (truth.size,) and np.all((lam >= 0.0) & (lam <= 1.0))
    prior = (1.0 - p) ** 4.0
    # the models (trained mostly on right labels) disagree with the wrong ones
    left = ~plan.delta
    assert lam[left & wrong].mean() < 0.5 * prior[left & wrong].mean()
    assert lam[left & ~wrong].mean() > 3.0 * lam[left & wrong].mean()
    # never above the critic's own λ: q_i ≤ 1
    assert np.all(lam <= prior + 1e-12)


@pytest.mark.parametrize("iterations", [1, 2])
def test_lambda_of_a_row_does_not_read_its_own_review(iterations: int) -> None:
    """Changing row i's review (reviewed or not, and its human label) leaves λ_i exactly as is:
    every model that scores row i was fitted without it, and so were the λ it was fitted with.
    Rows of other folds do move (so the check has teeth)."""
    x, truth, machine = _clusters(150, seed=3)
    plan, p = _plan(truth, machine, seed=4)
    folds = 3
    base = model_lambda(
        x, machine, truth, plan, p, n_classes=3, config=CONFIG, folds=folds, iterations=iterations
    )
    wrong_reviewed = np.flatnonzero(plan.delta & (machine != truth))
    i = int(wrong_reviewed[0])
    delta = plan.delta.copy()
    delta[i] = False  # row i now unreviewed
    flipped_truth = truth.copy()
    flipped_truth[i] = machine[i]  # or reviewed and found right
    for changed, labels in ((replace(plan, delta=delta), truth), (plan, flipped_truth)):
        lam = model_lambda(
            x, machine, labels, changed, p, n_classes=3, config=CONFIG, folds=folds,
            iterations=iterations,
        )  # fmt: skip
        same_fold = np.arange(truth.size) % folds == i % folds
        np.testing.assert_array_equal(lam[same_fold], base[same_fold])
        assert np.abs(lam[~same_fold] - base[~same_fold]).max() > 1e-4


def test_a_post_review_critic_reads_no_last_round_review_of_the_row_itself() -> None:
    """With p re-scored after the last round (the kNN critic sees the other folds' last-round
    reviews), changing row i's last-round review still leaves λ_i exactly as is, while p of
    the other folds' rows moves (their neighbours' reviews count)."""
    x, truth, machine = _clusters(150, seed=3)
    critic = KnnCritic(x, machine, n_classes=3)
    rescore = partial(critic.rescored, human_weight=3.0)

    plan = rounds_review(
        critic.initial, 0.3, human=truth, machine=machine, rounds=3, rule="thresholded",
        floor=0.3, beta=10.0, seed=np.random.SeedSequence(2), rescore=rescore, weights="last",
        audit=True,
    )  # fmt: skip
    folds = 3

    def lam_of(changed: ReviewPlan, labels: np.ndarray) -> np.ndarray:
        p = post_review_probability(changed, rescore, labels, folds=folds)
        return model_lambda(x, machine, labels, changed, p, n_classes=3, config=CONFIG, folds=folds)

    base = lam_of(plan, truth)
    last = plan.deltas[-1]
    i = int(np.flatnonzero(last)[0])
    same_fold = np.arange(truth.size) % folds == i % folds
    unreviewed = plan.delta.copy()
    unreviewed[i] = False
    deltas = (*plan.deltas[:-1], last & (np.arange(truth.size) != i))
    flipped = truth.copy()  # found right where it was wrong, or wrong where right
    flipped[i] = machine[i] if machine[i] != truth[i] else (machine[i] + 1) % 3
    for changed, labels in (
        (replace(plan, delta=unreviewed, deltas=deltas), truth),
        (plan, flipped),
    ):
        lam = lam_of(changed, labels)
        np.testing.assert_array_equal(lam[same_fold], base[same_fold])
        assert np.abs(lam[~same_fold] - base[~same_fold]).max() > 1e-4
        # the contexts that exclude row i's fold never read its review; the others do
        p_changed = post_review_probability(changed, rescore, labels, folds=folds)
        p_base = post_review_probability(plan, rescore, truth, folds=folds)
        k = i % folds
        for excluded in ({k}, {k, (k + 1) % folds}, {k, (k + 2) % folds}):
            np.testing.assert_array_equal(
                p_changed(frozenset(excluded)), p_base(frozenset(excluded))
            )
        assert np.abs(p_changed(frozenset()) - p_base(frozenset())).max() > 1e-4


def test_bad_settings_are_refused() -> None:
    x, truth, machine = _clusters(30)
    plan, p = _plan(truth, machine)
    with pytest.raises(ValueError, match="folds must be between 2"):
        model_lambda(x, machine, truth, plan, p, n_classes=3, config=CONFIG, folds=1)
    with pytest.raises(ValueError, match=r"iterations \(3\) must be < folds \(3\)"):
        model_lambda(x, machine, truth, plan, p, n_classes=3, config=CONFIG, folds=3, iterations=3)
    base = {"datasets": [{"name": "d", "kind": "digits", "annotator": "nearest_centroid"}]}
    config = config_from_dict(base)
    assert (config.model_folds, config.model_iterations, config.model_power) == (5, 2, 4.0)
    with pytest.raises(ValueError, match=r"model_folds must be an int ≥ 3; got 2"):
        config_from_dict({**base, "model_folds": 2})
    with pytest.raises(ValueError, match="model_power"):
        config_from_dict({**base, "model_power": 0})
