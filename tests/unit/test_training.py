"""Tests of act_plugin.training (ACTLoss in PyTorch, expand_rows) on simulated data only."""

from __future__ import annotations

import doctest
import math
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from act_plugin.act_math import (
    act_loss_estimate,
    act_weights,
    draw_review,
    inclusion_probabilities,
)
from act_plugin.training import expand_rows

torch = pytest.importorskip("torch")
F = torch.nn.functional

from act_plugin.training import ACTLoss  # noqa: E402  (needs torch)

N = 1000
CLASSES = 4
DRAWS = 400


@dataclass(frozen=True)
class Batch:
    logits: torch.Tensor  # (N, C), requires grad
    machine: np.ndarray  # single-label machine targets (N,)
    human: np.ndarray  # single-label human targets (N,)
    machine_multi: np.ndarray  # multi-label machine targets (N, C) in {0, 1}
    human_multi: np.ndarray  # multi-label human targets (N, C) in {0, 1}
    suspicion: np.ndarray  # critic ε̂, high on most (not all) disagreements


@pytest.fixture(scope="module")
def batch() -> Batch:
    rng = np.random.default_rng(0)
    human = rng.integers(0, CLASSES, N)
    wrong = rng.random(N) < 0.2
    machine = np.where(wrong, (human + rng.integers(1, CLASSES, N)) % CLASSES, human)
    human_multi = (rng.random((N, CLASSES)) < 0.3).astype(np.int64)
    flips = (rng.random((N, CLASSES)) < 0.1) & wrong[:, None]
    machine_multi = np.where(flips, 1 - human_multi, human_multi)
    missed = wrong & (rng.random(N) < 0.2)
    suspicion = np.where(wrong & ~missed, rng.beta(6, 2, N), rng.beta(1, 8, N))
    scores = rng.normal(0.0, 1.0, (N, CLASSES))
    scores[np.arange(N), machine] += 1.5  # a model that leans to the machine labels
    logits = torch.tensor(scores, dtype=torch.float64, requires_grad=True)
    return Batch(logits, machine, human, machine_multi, human_multi, suspicion)


def review(batch: Batch, *, seed: int, budget: float = 0.2, rule: str = "thresholded"):
    """(δ, π, human targets with −1 filler where δ = 0) for one seeded draw."""
    pi = inclusion_probabilities(batch.suspicion, budget, rule=rule, floor=0.1)
    delta = draw_review(pi, seed=seed)
    return delta, pi, np.where(delta, batch.human, -1)


def ce_numpy(logits: torch.Tensor, targets: np.ndarray) -> np.ndarray:
    x = logits.detach().numpy()
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    return -log_p[np.arange(x.shape[0]), targets]


def bce_numpy(logits: torch.Tensor, targets: np.ndarray) -> np.ndarray:
    """Per-item BCE-with-logits averaged over classes: softplus(x) − t·x."""
    x = logits.detach().numpy()
    return (np.logaddexp(0.0, x) - targets * x).mean(axis=1)


# --------------------------------------------------------------------------------------------
# ACTLoss
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [1.0, 0.5, 0.0])
def test_single_label_equals_the_estimate_of_independent_cross_entropies(
    batch: Batch, lam: float
) -> None:
    delta, pi, human_filled = review(batch, seed=1)
    assert delta.any() and (~delta).any() and (pi[delta] < 1).any()
    loss = ACTLoss(lam=lam)(batch.logits, batch.machine, human_filled, delta, pi)
    machine_ce = F.cross_entropy(batch.logits, torch.as_tensor(batch.machine), reduction="none")
    human_ce = F.cross_entropy(batch.logits, torch.as_tensor(batch.human), reduction="none")
    expected = act_loss_estimate(
        machine_ce.detach().numpy(), human_ce.detach().numpy(), delta, pi, lam=lam
    )
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(machine_ce.detach().numpy(), ce_numpy(batch.logits, batch.machine))


@pytest.mark.parametrize("multi_label", [False, True])
def test_per_item_lambda_weighs_each_machine_term(batch: Batch, multi_label: bool) -> None:
    """forward(lam=λ_i) is the estimate with one λ per item (as act_loss_estimate and
    expand_rows compute it); λ_i = λ everywhere is the constant λ."""
    delta, pi, human_filled = review(batch, seed=7)
    lam = np.random.default_rng(3).random(N)
    if multi_label:
        machine, human = batch.machine_multi, np.where(delta[:, None], batch.human_multi, -1)
        machine_loss = bce_numpy(batch.logits, batch.machine_multi)
        human_loss = bce_numpy(batch.logits, batch.human_multi)
    else:
        machine, human = batch.machine, human_filled
        machine_loss = ce_numpy(batch.logits, batch.machine)
        human_loss = ce_numpy(batch.logits, batch.human)
    loss_fn = ACTLoss(multi_label=multi_label)
    loss = loss_fn(batch.logits, machine, human, delta, pi, lam=lam)
    expected = act_loss_estimate(machine_loss, human_loss, delta, pi, lam=lam)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert loss.item() != pytest.approx(loss_fn(batch.logits, machine, human, delta, pi).item())
    as_tensor = loss_fn(batch.logits, machine, human, delta, pi, lam=torch.as_tensor(lam))
    assert as_tensor.item() == pytest.approx(expected, rel=1e-10)
    constant = loss_fn(batch.logits, machine, human, delta, pi, lam=np.full(N, 0.4))
    assert constant.item() == pytest.approx(
        loss_fn(batch.logits, machine, human, delta, pi, lam=0.4).item(), rel=1e-12
    )
    with pytest.raises(ValueError, match="lam"):
        loss_fn(batch.logits, machine, human, delta, pi, lam=lam[:-1])
    with pytest.raises(ValueError, match="lam"):
        loss_fn(batch.logits, machine, human, delta, pi, lam=np.full(N, 1.5))
    rows = expand_rows(list(range(N)), batch.machine, human_filled, delta, pi, lam=lam)
    if not multi_label:
        x = batch.logits.detach().numpy()
        log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
        total = sum(weight * -log_p[item, target] for item, target, weight in rows)
        assert total / N == pytest.approx(expected)


@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_multi_label_equals_the_estimate_of_independent_bce(batch: Batch, lam: float) -> None:
    delta, pi, _ = review(batch, seed=2)
    human_filled = np.where(delta[:, None], batch.human_multi, -1)
    loss = ACTLoss(multi_label=True, lam=lam)(
        batch.logits, batch.machine_multi, human_filled, delta, pi
    )
    expected = act_loss_estimate(
        bce_numpy(batch.logits, batch.machine_multi),
        bce_numpy(batch.logits, batch.human_multi),
        delta,
        pi,
        lam=lam,
    )
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_gradient_flows_and_equals_the_weighted_rows_gradient(batch: Batch) -> None:
    delta, pi, human_filled = review(batch, seed=3)
    logits = batch.logits.detach().clone().requires_grad_(True)
    ACTLoss(lam=0.8)(logits, batch.machine, human_filled, delta, pi).backward()
    grad = logits.grad.clone()
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # Same gradient from the explicit machine/human row weights.
    w_m, w_h = act_weights(delta, pi, lam=0.8)
    reference = logits.detach().clone().requires_grad_(True)
    machine_ce = F.cross_entropy(reference, torch.as_tensor(batch.machine), reduction="none")
    human_ce = F.cross_entropy(reference, torch.as_tensor(batch.human), reduction="none")
    (torch.as_tensor(w_m) * machine_ce + torch.as_tensor(w_h) * human_ce).mean().backward()
    torch.testing.assert_close(grad, reference.grad)


def test_nobody_reviewed_gives_lambda_times_the_machine_loss(batch: Batch) -> None:
    nobody = np.zeros(N, dtype=bool)
    filler = np.full(N, -1)
    loss = ACTLoss(lam=0.7)(batch.logits, batch.machine, filler, nobody, np.full(N, 0.3))
    assert loss.item() == pytest.approx(0.7 * ce_numpy(batch.logits, batch.machine).mean())
    loss = ACTLoss()(batch.logits, batch.machine, filler, nobody, np.zeros(N), lam=0.25)
    assert loss.item() == pytest.approx(0.25 * ce_numpy(batch.logits, batch.machine).mean())


def test_everyone_reviewed_for_sure_gives_the_human_loss(batch: Batch) -> None:
    everyone = torch.ones(N, dtype=torch.bool)
    for lam in (1.0, 0.4):
        loss = ACTLoss(lam=lam)(batch.logits, batch.machine, batch.human, everyone, torch.ones(N))
        assert loss.item() == pytest.approx(ce_numpy(batch.logits, batch.human).mean())
    multi = ACTLoss(multi_label=True)(
        batch.logits, batch.machine_multi, batch.human_multi, everyone, torch.ones(N)
    )
    assert multi.item() == pytest.approx(bce_numpy(batch.logits, batch.human_multi).mean())


@pytest.mark.parametrize("rule", ["thresholded", "exponential"])
def test_act_loss_is_unbiased_over_draws(batch: Batch, rule: str) -> None:
    loss_fn = ACTLoss()
    pi = inclusion_probabilities(batch.suspicion, 0.2, rule=rule, floor=0.1)
    losses = []
    with torch.no_grad():
        for seed in range(DRAWS):
            delta = draw_review(pi, seed=seed)
            human_filled = np.where(delta, batch.human, -1)
            losses.append(loss_fn(batch.logits, batch.machine, human_filled, delta, pi).item())
    truth = ce_numpy(batch.logits, batch.human).mean()
    stderr = np.std(losses, ddof=1) / math.sqrt(DRAWS)
    assert abs(np.mean(losses) - truth) < 3 * stderr
    # ... while the machine labels alone are far off.
    assert abs(ce_numpy(batch.logits, batch.machine).mean() - truth) > 10 * stderr


@pytest.mark.parametrize(
    ("change", "quoted"),
    [
        ({"pi": np.r_[0.0, np.full(N - 1, 0.5)], "delta": np.r_[1, np.zeros(N - 1)]}, "index 0"),
        ({"delta": np.full(N, 2)}, "2"),
        ({"pi": np.full(N, 1.5)}, "1.5"),
        ({"pi": np.full(N - 1, 0.5)}, f"({N},)"),
        ({"human": np.r_[7, np.zeros(N - 1, dtype=np.int64)]}, "7"),
        ({"machine": np.r_[-1, np.zeros(N - 1, dtype=np.int64)]}, "-1"),
        ({"machine": np.zeros(N)}, "float64"),
        ({"lam": 1.5}, "1.5"),
    ],
)
def test_act_loss_rejects_bad_input_quoting_it(batch: Batch, change: dict, quoted: str) -> None:
    args = {
        "machine": batch.machine,
        "human": batch.human,
        "delta": np.ones(N, dtype=bool),
        "pi": np.full(N, 0.5),
        "lam": None,
    } | change
    with pytest.raises(ValueError) as err:
        ACTLoss()(
            batch.logits, args["machine"], args["human"], args["delta"], args["pi"], lam=args["lam"]
        )
    assert quoted in str(err.value)


def test_filler_is_only_allowed_where_not_reviewed(batch: Batch) -> None:
    delta = np.zeros(N, dtype=bool)
    delta[:10] = True
    filler = np.where(delta, batch.human, -1)
    ACTLoss()(batch.logits, batch.machine, filler, delta, np.full(N, 0.5))  # fine
    with pytest.raises(ValueError, match="index 10"):
        delta[10] = True  # item 10 now reviewed, but its human target is the filler -1
        ACTLoss()(batch.logits, batch.machine, filler, delta, np.full(N, 0.5))


def test_act_loss_options_are_checked_and_shown() -> None:
    with pytest.raises(ValueError, match="2"):
        ACTLoss(lam=2)
    with pytest.raises(ValueError, match="'yes'"):
        ACTLoss(multi_label="yes")  # type: ignore[arg-type]
    assert "multi_label=True, lam=0.5" in repr(ACTLoss(multi_label=True, lam=0.5))


def test_act_loss_docstring_example_runs() -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(ACTLoss, "ACTLoss", globs={"ACTLoss": ACTLoss}):
        runner.run(test)
    assert runner.summarize(verbose=False).attempted >= 4
    assert runner.failures == 0


def test_importing_training_does_not_import_torch() -> None:
    code = "import sys, act_plugin.training; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# expand_rows
# --------------------------------------------------------------------------------------------


def test_expand_rows_by_hand() -> None:
    items = ["x0", "x1", "x2", "x3"]
    machine = ["a", "b", "c", "d"]
    human = ["A", None, "c", "D"]
    delta = [1, 0, 1, 1]
    pi = [0.25, 0.0, 1.0, 0.5]
    rows = expand_rows(items, machine, human, delta, pi, lam=0.5)
    assert rows == [
        ("x0", "a", 0.5 * (1 - 4)),
        ("x0", "A", 4.0),
        ("x1", "b", 0.5),
        # x2: reviewed with π = 1, machine row weight 0 is dropped
        ("x2", "c", 1.0),
        ("x3", "d", 0.5 * (1 - 2)),
        ("x3", "D", 2.0),
    ]
    assert all(isinstance(weight, float) for _, _, weight in rows)


def test_expand_rows_drops_every_machine_row_when_lambda_is_zero() -> None:
    rows = expand_rows(["x0", "x1"], ["a", "b"], ["A", None], [1, 0], [0.5, 0.5], lam=0.0)
    assert rows == [("x0", "A", 2.0)]


def test_expanded_rows_reproduce_the_act_loss(batch: Batch) -> None:
    delta, pi, human_filled = review(batch, seed=5)
    rows = expand_rows(list(range(N)), batch.machine, human_filled, delta, pi, lam=0.6)
    x = batch.logits.detach().numpy()
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    total = sum(weight * -log_p[item, target] for item, target, weight in rows)
    expected = act_loss_estimate(
        ce_numpy(batch.logits, batch.machine),
        ce_numpy(batch.logits, batch.human),
        delta,
        pi,
        lam=0.6,
    )
    assert total / N == pytest.approx(expected)
    assert any(weight < 0 for _, _, weight in rows)  # negative weights do occur


@pytest.mark.parametrize(
    ("items", "machine", "human", "quoted"),
    [
        (["x0"], ["a", "b"], ["A", "B"], "items must have length 2"),
        (["x0", "x1"], ["a"], ["A", "B"], "machine_labels must have length 2"),
        (["x0", "x1"], ["a", "b"], ["A"], "human_labels must have length 2"),
    ],
)
def test_expand_rows_rejects_mismatched_lengths(
    items: list, machine: list, human: list, quoted: str
) -> None:
    with pytest.raises(ValueError, match=quoted):
        expand_rows(items, machine, human, [1, 0], [0.5, 0.5])


def test_expand_rows_validates_review_and_lambda() -> None:
    with pytest.raises(ValueError, match="index 1"):
        expand_rows(["x0", "x1"], ["a", "b"], ["A", "B"], [0, 1], [0.5, 0.0])
    with pytest.raises(ValueError, match=r"-0\.1"):
        expand_rows(["x0"], ["a"], ["A"], [1], [0.5], lam=-0.1)


def test_clip_bounds_each_items_term_at_zero():
    import torch
    import torch.nn.functional as F

    from act_plugin.training import ACTLoss

    logits = torch.tensor([[4.0, -4.0], [0.0, 0.0], [2.0, 0.0]], requires_grad=True)
    machine = torch.tensor([0, 1, 0])
    human = torch.tensor([1, -1, 0])
    delta = torch.tensor([1, 0, 1])
    pi = torch.tensor([0.1, 0.5, 1.0])
    ce_m = F.cross_entropy(logits, machine, reduction="none")
    ce_h = F.cross_entropy(logits, torch.tensor([1, 1, 0]), reduction="none")
    terms = [ce_m[0] + (ce_h[0] - ce_m[0]) / 0.1, ce_m[1], ce_h[2]]
    assert terms[0] > 0  # the model prefers the machine label: nothing to clip yet
    far = torch.tensor([[-9.0, 9.0], [0.0, 0.0], [2.0, 0.0]], requires_grad=True)
    raw = ACTLoss()(far, machine, human, delta, pi)
    clipped = ACTLoss(clip=True)(far, machine, human, delta, pi)
    ce_m = F.cross_entropy(far, machine, reduction="none")
    ce_h = F.cross_entropy(far, torch.tensor([1, 1, 0]), reduction="none")
    first = ce_m[0] + (ce_h[0] - ce_m[0]) / 0.1
    assert first < 0  # past the human label the plain term keeps falling: unbounded below
    assert raw.item() == pytest.approx(((first + ce_m[1] + ce_h[2]) / 3).item(), rel=1e-5)
    assert clipped.item() == pytest.approx(((ce_m[1] + ce_h[2]) / 3).item(), rel=1e-5)
    assert ACTLoss(clip=True)(logits, machine, human, delta, pi).item() == pytest.approx(
        (sum(terms) / 3).item(), rel=1e-5
    )
