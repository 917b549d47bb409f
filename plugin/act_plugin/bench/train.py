"""The downstream model: multinomial logistic regression trained on the ACT loss (PyTorch).

Logits z = W·x̃ + b on standardized features x̃ = (x − mean)/std (pool statistics), fitted
full-batch with Adam for ``epochs`` steps on

    J(W, b) = L_ACT + (weight_decay / 2) · ‖W‖²,
    L_ACT   = (1/N) Σ_i [ λ ℓᵐ_i + (ℓ_i − λ ℓᵐ_i) · δ_i / π_i ]      (``training.ACTLoss``),

ℓᵐ / ℓ the cross-entropy against the machine / human label. The terms are
``act_math.act_terms`` with w_h = δ_i/π_i computed as ``ACTLoss`` does (the same figures), or
a plan's own human-row weights w_h (a review in rounds, ``ReviewPlan.weight_human``), the
machine row then weighing λ(1 − w_h). A plan's per-row λ_i (``ReviewPlan.lam``) replaces the
constant λ; the ``power`` stabilizer then scales it, λ_i · ``power_lambda``.

Why a stabilizer: an item reviewed with π_i < 1 whose human label y_i differs from ŷ_i adds
λ(1 − 1/π_i) ℓᵐ_i, a negative multiple of a loss that grows without bound as the model moves
away from ŷ_i. With π_i small (normalized rule at low budgets, the floor's random reviews,
uniform review) that term dominates: the raw loss is unbounded below for a flexible model and,
even with the L2 penalty that keeps a linear model's minimum finite, its minimiser spends its
norm pushing those few items away from ŷ_i. The options (``TrainConfig.stabilizer``):

- ``none``: the raw loss, λ = 1.
- ``clip``: each item's term clipped at zero (``act_math.act_terms``),
  L = (1/N) Σ_i max(0, λℓᵐ_i + (ℓ_i − λℓᵐ_i) δ_i/π_i).
  Items with δ_i = 0 or ŷ_i = y_i are unchanged (their term is ℓᵐ_i ≥ 0 or ℓ_i ≥ 0); a
  disagreeing reviewed item stops pulling once the model prefers y_i to ŷ_i by a margin
  (ℓ_i/ℓᵐ_i ≤ 1 − π_i). Bounded below by 0; biased only on those items.
- ``power``: λ = ``power_lambda`` < 1 (PPI++'s power tuning): machine weights λ(1 − 1/π_i) are
  scaled down, and unreviewed items count λ instead of 1. Still unbounded below for λ > 0.
- ``early_stop``: the raw loss on a random (1 − val_fraction) of the pool; the weights kept are
  those of the check (every ``eval_every`` epochs) with the lowest ACT loss on the held-out
  rest, an unbiased estimate of its full-human loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from act_plugin.bench.config import TrainConfig
from act_plugin.bench.methods import ReviewPlan

__all__ = ["FitReport", "LinearModel", "fit_act_model", "fit_act_models"]


@dataclass(frozen=True)
class LinearModel:
    """A fitted multinomial logistic regression (NumPy arrays; predicts without torch)."""

    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    weight: NDArray[np.float64]  # (d, C)
    bias: NDArray[np.float64]  # (C,)

    def logits(self, features: NDArray[Any]) -> NDArray[np.float64]:
        x = (np.asarray(features, np.float64) - self.mean) / self.scale
        return x @ self.weight + self.bias

    def predict(self, features: NDArray[Any]) -> NDArray[np.int64]:
        return np.argmax(self.logits(features), axis=1).astype(np.int64)


@dataclass(frozen=True)
class FitReport:
    """The model and how training went: ``act_loss`` is the raw ACT loss (λ = 1, unclipped,
    without the penalty) of the returned model on the items it was fitted on (negative values
    show the unbounded direction being followed); ``epochs`` the epochs of the returned weights."""

    model: LinearModel
    act_loss: float
    epochs: int


def _ratio(plan: ReviewPlan, torch: Any) -> Any:
    """w_h of the plan's rows as a float32 tensor: δ/π computed as ``training.ACTLoss`` does
    (1/π in float32, so the figures match it bit for bit), or the plan's ``weight_human``."""
    if plan.weight_human is not None:
        return torch.as_tensor(plan.weight_human, dtype=torch.float32)
    reviewed = torch.as_tensor(plan.delta, dtype=torch.bool)
    pi = torch.as_tensor(plan.pi, dtype=torch.float32)
    safe = torch.where(reviewed, pi, torch.ones_like(pi))
    return torch.where(reviewed, 1.0 / safe, torch.zeros_like(pi))


def fit_act_model(
    features: NDArray[Any],
    machine: NDArray[np.int64],
    human: NDArray[np.int64],
    plan: ReviewPlan,
    *,
    n_classes: int,
    config: TrainConfig,
    stabilizer: str | None = None,
    seed: np.random.SeedSequence | None = None,
) -> FitReport:
    """Fit one model on the pool with the ACT loss of ``plan`` (δ, π); see ``fit_act_models``."""
    return fit_act_models(
        features,
        machine,
        human,
        [plan],
        n_classes=n_classes,
        config=config,
        stabilizer=stabilizer,
        seed=seed,
    )[0]


def fit_act_models(
    features: NDArray[Any],
    machine: NDArray[np.int64],
    human: NDArray[np.int64],
    plans: Sequence[ReviewPlan],
    *,
    n_classes: int,
    config: TrainConfig,
    stabilizer: str | None = None,
    seed: np.random.SeedSequence | None = None,
) -> list[FitReport]:
    """Fit one independent model per plan (δ, π) on the same pool, all in one batch.

    The M models' logits come from one matrix product X·[W_1 … W_M], and their items are
    stacked into one ACT loss over M·N rows, (1/M) Σ_m L_m; each model's gradient is its own
    loss's gradient / M, which Adam's per-parameter scaling undoes, and the penalty is scaled by
    1/M to match. So each model trains as if alone, at a fraction of the per-step overhead.

    ``human`` is read only where δ = 1 (pass the true labels; the others are never used).
    ``stabilizer`` overrides ``config.stabilizer``; ``seed`` draws the early-stopping split
    (shared by the batch).
    """
    import torch
    import torch.nn.functional as F

    from act_plugin.act_math import act_terms

    mode = config.stabilizer if stabilizer is None else stabilizer
    m_models = len(plans)
    if m_models == 0:
        return []
    x_np = np.asarray(features, np.float64)
    mean = x_np.mean(axis=0)
    scale = x_np.std(axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    x = torch.as_tensor((x_np - mean) / scale, dtype=torch.float32)
    n, d = x.shape
    y_m = torch.as_tensor(machine, dtype=torch.long).repeat(m_models, 1)  # (M, N)
    reviewed = torch.as_tensor(np.stack([p.delta for p in plans]), dtype=torch.bool)
    truth = torch.as_tensor(human, dtype=torch.long).expand(m_models, n)
    y_h = torch.where(reviewed, truth, -1)
    ratio = torch.stack([_ratio(p, torch) for p in plans])  # (M, N): w_h = δ/π
    lam_all: Any = config.power_lambda if mode == "power" else 1.0
    if any(p.lam is not None for p in plans):  # per-row λ_i: (M, N), the constant elsewhere
        per_row = np.stack([np.ones(n) if p.lam is None else p.lam for p in plans])
        lam_all = torch.as_tensor(per_row * lam_all, dtype=torch.float32)

    def terms_of(logits: Any, y_m: Any, y_h: Any, w_h: Any, lam: Any, clip: bool) -> Any:
        """``act_math.act_terms`` (the terms of ``training.ACTLoss``) with w_h = δ/π given."""
        machine_loss = F.cross_entropy(logits, y_m, reduction="none")
        human_loss = F.cross_entropy(logits, torch.where(y_h >= 0, y_h, y_m), reduction="none")
        return act_terms(machine_loss, human_loss, w_h, lam=lam, clip=clip)

    def loss_fn(logits: Any, y_m: Any, y_h: Any, w_h: Any, lam: Any) -> Any:
        return terms_of(logits, y_m, y_h, w_h, lam, mode == "clip").mean()

    def raw_terms(logits: Any, y_m: Any, y_h: Any, w_h: Any) -> Any:  # λ = 1, unclipped
        return terms_of(logits, y_m, y_h, w_h, 1.0, False)

    fit = np.ones(n, dtype=bool)
    if mode == "early_stop":
        rng = np.random.default_rng(seed)
        held = rng.random(n) < config.val_fraction
        if held.all() or not held.any():
            held[:] = False
            held[rng.integers(n)] = True
        fit = ~held
    fit_idx = torch.as_tensor(np.flatnonzero(fit))
    val_idx = torch.as_tensor(np.flatnonzero(~fit))

    def rows(t: Any, idx: Any) -> Any:  # (M, N) → the chosen items of every model, flattened
        return t[:, idx].reshape(-1)

    def logits_of(w: Any, b: Any, idx: Any) -> Any:  # (M·|idx|, C), model-major
        out = (x[idx] @ w.reshape(d, m_models * n_classes)).reshape(len(idx), m_models, n_classes)
        return (out + b).transpose(0, 1).reshape(-1, n_classes)

    targets_fit = (rows(y_m, fit_idx), rows(y_h, fit_idx))
    ratio_fit = rows(ratio, fit_idx)
    lam_fit = rows(lam_all, fit_idx) if isinstance(lam_all, torch.Tensor) else lam_all
    weight = torch.zeros(d, m_models, n_classes, requires_grad=True)
    bias = torch.zeros(m_models, n_classes, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=config.learning_rate)
    penalty = 0.5 * config.weight_decay / m_models
    best_val = torch.full((m_models,), float("inf"))
    best_epoch = torch.full((m_models,), config.epochs, dtype=torch.long)
    best_w = weight.detach().clone()
    best_b = bias.detach().clone()
    for epoch in range(1, config.epochs + 1):
        optimizer.zero_grad()
        logits = logits_of(weight, bias, fit_idx)
        loss = loss_fn(logits, *targets_fit, ratio_fit, lam_fit)
        (loss + penalty * (weight * weight).sum()).backward()
        optimizer.step()
        if mode == "early_stop" and (epoch % config.eval_every == 0 or epoch == config.epochs):
            with torch.no_grad():
                val_terms = raw_terms(
                    logits_of(weight, bias, val_idx),
                    rows(y_m, val_idx),
                    rows(y_h, val_idx),
                    rows(ratio, val_idx),
                ).reshape(m_models, -1)
                val = val_terms.mean(dim=1)  # each model's ACT loss on the held-out items
                better = val < best_val
                best_val = torch.where(better, val, best_val)
                best_epoch = torch.where(better, epoch, best_epoch)
                best_w[:, better] = weight.detach()[:, better]
                best_b[better] = bias.detach()[better]
    w, b = (best_w, best_b) if mode == "early_stop" else (weight.detach(), bias.detach())
    with torch.no_grad():
        final = raw_terms(logits_of(w, b, fit_idx), *targets_fit, ratio_fit).reshape(m_models, -1)
        losses = final.mean(dim=1).tolist()
    reports = []
    for k in range(m_models):
        model = LinearModel(
            mean=mean,
            scale=scale,
            weight=w[:, k].numpy().astype(np.float64),
            bias=b[k].numpy().astype(np.float64),
        )
        epochs = int(best_epoch[k]) if mode == "early_stop" else config.epochs
        reports.append(FitReport(model=model, act_loss=float(losses[k]), epochs=epochs))
    return reports
