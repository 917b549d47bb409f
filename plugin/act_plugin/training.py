"""Training a downstream model on ACT data: the ACT loss for PyTorch, and weighted rows.

Lin et al., "ACT as Human", NeurIPS 2025, arXiv:2511.09833. The ACT loss

    L(θ) = (1/N) Σ_i [ λ ℓᵐ_i(θ) + (ℓ_i(θ) − λ ℓᵐ_i(θ)) · δ_i / π_i ]

(ℓᵐ against the machine label, ℓ against the human label, δ_i whether item i was reviewed, π_i
the probability it was drawn with) is an unbiased estimate of the loss on fully human labels.

- :class:`ACTLoss` computes it from logits in PyTorch (single- or multi-label).
- :func:`expand_rows` turns it into (input, target, weight) rows for frameworks that accept
  per-sample weights.

PyTorch is an optional dependency: it is imported only when ``ACTLoss`` is first accessed, so
:func:`expand_rows` works without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from act_plugin.act_math import Lam, act_terms, act_weights
from act_plugin.validation import check_lam

if TYPE_CHECKING:
    import torch

    #: Built on first access by the module ``__getattr__`` below (keeps torch optional).
    ACTLoss: Any

__all__ = ["REDUCTIONS", "ACTLoss", "expand_rows"]

#: Accepted ``ACTLoss(reduction=...)``: the mean loss, or the per-item terms.
REDUCTIONS: tuple[str, ...] = ("mean", "none")


def expand_rows(
    items: Sequence[Any],
    machine_labels: Sequence[Any],
    human_labels: Sequence[Any],
    delta: npt.ArrayLike,
    pi: npt.ArrayLike,
    *,
    lam: Lam = 1.0,
) -> list[tuple[Any, Any, float]]:
    """Weighted training rows whose weighted mean loss is the ACT loss.

    Item i gives a machine row (x_i, ŷ_i, w_m,i) and, if reviewed, a human row (x_i, y_i, w_h,i):

        w_m,i = λ (1 − δ_i/π_i),   w_h,i = δ_i/π_i,

    so that Σ_rows w · ℓ(row) / N equals the ACT loss. Rows whose weight is exactly 0 are
    dropped (the machine row of an item reviewed with π_i = 1, every machine row when λ = 0, and
    the human row of every unreviewed item). Rows keep the item order, machine row first.

    The machine row of a reviewed item with π_i < 1 has a NEGATIVE weight λ(1 − 1/π_i). Divide
    the weighted loss sum by N (the number of items), not by the number or the weight sum of
    the rows. Frameworks that reject negative sample weights (many scikit-learn estimators)
    cannot fit the ACT loss from these rows; use :class:`ACTLoss` instead. Large negative
    weights (small π) can also make a flexible model's loss unbounded below: prefer rules that
    keep π of reviewed items near 1 (thresholded/exponential, see ``act_math``).

    Parameters
    ----------
    items : sequence, length N
        The inputs x_i (any objects; returned as they are).
    machine_labels : sequence, length N
        ŷ_i, the machine label of each item.
    human_labels : sequence, length N
        y_i, the human label; only read where δ_i = 1 (other entries may be None).
    delta, pi : array-like of shape (N,)
        Review indicators and the inclusion probabilities they were drawn with (π_i may be 0
        only where δ_i = 0).
    lam : float in [0, 1], or N values in [0, 1]
        λ, the power-tuning factor on machine terms (1 = the paper's loss), or one λ_i per item
        (fixed without reading δ_i, e.g. ``act_math.soft_lambda``).

    Returns
    -------
    list of (input, target, weight)
        ``weight`` is a Python float; machine rows have weight ≤ λ, human rows ≥ 1.

    Examples
    --------
    >>> expand_rows(["a", "b", "c"], [0, 1, 1], [1, None, 1], [1, 0, 1], [0.5, 0.2, 1.0])
    [('a', 0, -1.0), ('a', 1, 2.0), ('b', 1, 1.0), ('c', 1, 1.0)]
    """
    w_machine, w_human = act_weights(delta, pi, lam=lam)
    n = w_machine.size
    columns = {"items": items, "machine_labels": machine_labels, "human_labels": human_labels}
    for name, column in columns.items():
        if len(column) != n:
            raise ValueError(f"{name} must have length {n} (one per item); got {len(column)}")
    rows: list[tuple[Any, Any, float]] = []
    for i in range(n):
        if w_machine[i] != 0.0:
            rows.append((items[i], machine_labels[i], float(w_machine[i])))
        if w_human[i] != 0.0:
            rows.append((items[i], human_labels[i], float(w_human[i])))
    return rows


def _build_act_loss() -> type:
    """Define ACTLoss on first use, so that importing this module does not import torch."""
    import torch
    import torch.nn.functional as F

    def as_tensor(values: Any, name: str, like: torch.Tensor) -> torch.Tensor:
        if isinstance(values, torch.Tensor):
            return values.to(like.device)
        try:
            return torch.as_tensor(np.asarray(values), device=like.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{name} must be an array of numbers; got {values!r:.200}") from err

    def first_bad(values: torch.Tensor, bad: torch.Tensor, name: str, requirement: str) -> str:
        index = int(torch.nonzero(bad.reshape(bad.shape[0], -1).any(dim=1))[0, 0])
        shown = values[index].tolist()
        return f"{name} must {requirement}; got {shown!r} at index {index}"

    class ACTLoss(torch.nn.Module):
        """The ACT loss: unbiased estimate of the loss on fully human labels.

            L = (1/N) Σ_i [ λ ℓᵐ_i + (ℓ_i − λ ℓᵐ_i) · δ_i / π_i ]

        with ℓᵐ_i the loss of the logits against the machine target, ℓ_i against the human
        target (only used where δ_i = 1; the correction term is 0 where δ_i = 0), and λ the
        power-tuning factor. Per-item losses:

        - single-label: ℓ = cross-entropy of logits (N, C) with an integer class target (N,);
        - multi-label: ℓ = binary cross-entropy with logits against a {0, 1} (or soft [0, 1])
          target matrix (N, C), averaged over the C classes (the scale of
          ``torch.nn.BCEWithLogitsLoss()``).

        E_δ[L] equals the fully-human mean loss for every θ when π_i > 0 wherever the machine
        and human targets differ, so gradients are unbiased too. Reviewed items with π_i < 1
        enter with a negative machine weight λ(1 − 1/π_i); see ``act_math`` for the choice of π.

        Parameters
        ----------
        multi_label : bool
            False: softmax cross-entropy, targets are class indices. True: BCE-with-logits,
            targets are (N, C) matrices.
        lam : float in [0, 1]
            Default λ (1 = the paper's loss); ``forward(..., lam=...)`` overrides it.
        clip : bool
            Clip each item's term at 0: L = (1/N) Σ max(0, λℓᵐ_i + (ℓ_i − λℓᵐ_i) δ_i/π_i).
            The plain loss is unbounded below when a reviewed item with π_i < 1 disagrees with
            its machine label, and training can collapse onto it; clipping stops that once the
            model already prefers the human label. It gives up exact unbiasedness; in our
            benchmark (docs/benchmarks.md) it kept 11 of 12 low-budget runs above full-machine
            accuracy where the plain loss fell below it in 11 of 12.
        reduction : {"mean", "none"}
            ``"mean"``: the scalar loss L; ``"none"``: the N per-item terms t_i (their mean is
            L), as in ``torch.nn`` losses. The formula is ``act_math.act_terms``.

        Examples
        --------
        >>> import torch
        >>> loss_fn = ACTLoss()
        >>> logits = torch.zeros(2, 3, requires_grad=True)
        >>> loss = loss_fn(logits, torch.tensor([0, 1]), torch.tensor([2, -1]),
        ...                torch.tensor([1, 0]), torch.tensor([0.5, 0.5]))
        >>> round(loss.item(), 4)  # every CE is log 3 here
        1.0986
        >>> loss.backward()
        """

        def __init__(
            self,
            *,
            multi_label: bool = False,
            lam: float = 1.0,
            clip: bool = False,
            reduction: str = "mean",
        ) -> None:
            super().__init__()
            for name, value in (("multi_label", multi_label), ("clip", clip)):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be a bool; got {value!r}")
            if reduction not in REDUCTIONS:
                raise ValueError(f"reduction must be one of {list(REDUCTIONS)}; got {reduction!r}")
            self.multi_label = multi_label
            self.lam = check_lam(lam)
            self.clip = clip
            self.reduction = reduction

        def extra_repr(self) -> str:
            return (
                f"multi_label={self.multi_label}, lam={self.lam}, clip={self.clip}, "
                f"reduction={self.reduction!r}"
            )

        def forward(
            self,
            logits: torch.Tensor,
            machine_targets: Any,
            human_targets: Any,
            delta: Any,
            pi: Any,
            *,
            lam: Lam | torch.Tensor | None = None,
        ) -> torch.Tensor:
            """Return the scalar ACT loss (differentiable in ``logits``).

            Parameters
            ----------
            logits : torch.Tensor of shape (N, C)
                Model outputs before softmax / sigmoid.
            machine_targets : tensor or array-like
                (N,) class indices (single-label) or (N, C) {0, 1} matrix (multi-label).
            human_targets : tensor or array-like
                Same shape; rows where δ_i = 0 are ignored and may hold any filler (e.g. -1).
            delta : tensor or array-like of shape (N,)
                δ, bool or {0, 1}: whether each item was reviewed.
            pi : tensor or array-like of shape (N,)
                π ∈ [0, 1], the inclusion probabilities δ was drawn with (0 only where δ = 0).
            lam : float in [0, 1], or (N,) values in [0, 1], optional
                λ for this call, or one λ_i per item (unbiased as long as λ_i does not depend
                on δ_i: ``act_math.soft_lambda``, or a model that never saw item i); defaults
                to the one given to ``__init__``.

            Returns
            -------
            torch.Tensor
                A 0-dim tensor (``reduction="mean"``) or the (N,) per-item terms
                (``reduction="none"``); lower is better. Not bounded below by 0 when some
                δ_i/π_i > 1 (unless ``clip``).
            """
            machine, human, reviewed, ratio = self._validated(
                logits, machine_targets, human_targets, delta, pi
            )
            lam_value = self._lam(lam, logits)
            if self.multi_label:
                safe_human = torch.where(reviewed[:, None], human, machine)
                machine_loss = F.binary_cross_entropy_with_logits(
                    logits, machine, reduction="none"
                ).mean(dim=1)
                human_loss = F.binary_cross_entropy_with_logits(
                    logits, safe_human, reduction="none"
                ).mean(dim=1)
            else:
                safe_human = torch.where(reviewed, human, machine)
                machine_loss = F.cross_entropy(logits, machine, reduction="none")
                human_loss = F.cross_entropy(logits, safe_human, reduction="none")
            terms = act_terms(machine_loss, human_loss, ratio, lam=lam_value, clip=self.clip)
            return terms.mean() if self.reduction == "mean" else terms

        def _lam(self, lam: Any, logits: torch.Tensor) -> float | torch.Tensor:
            """λ as a float, or the (N,) λ_i as a tensor of the logits' dtype and device,
            checked there as π is (no copy to the host)."""
            if lam is None:
                return self.lam
            if np.ndim(lam) == 0:
                return check_lam(lam.item() if isinstance(lam, torch.Tensor) else lam)
            lam_t = as_tensor(lam, "lam", logits).to(logits.dtype)
            n = logits.shape[0]
            if tuple(lam_t.shape) != (n,):
                shape = tuple(lam_t.shape)
                raise ValueError(f"lam must be a number or have shape ({n},); got {shape}")
            bad = ~((lam_t >= 0) & (lam_t <= 1))  # also catches NaN
            if bad.any():
                raise ValueError(first_bad(lam_t, bad, "lam", "lie in [0, 1]"))
            return lam_t

        def _validated(
            self, logits: Any, machine_targets: Any, human_targets: Any, delta: Any, pi: Any
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
            """Checked (machine, human, reviewed, δ/π) tensors on the logits' device."""
            if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] == 0:
                shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else logits
                raise ValueError(f"logits must be a non-empty (N, C) tensor; got {shape!r:.200}")
            if not logits.is_floating_point():
                raise ValueError(f"logits must be floating point; got dtype {logits.dtype}")
            n, c = logits.shape
            machine = as_tensor(machine_targets, "machine_targets", logits)
            human = as_tensor(human_targets, "human_targets", logits)
            delta_t = as_tensor(delta, "delta", logits)
            pi_t = as_tensor(pi, "pi", logits).to(logits.dtype)
            for name, tensor in (("delta", delta_t), ("pi", pi_t)):
                if tuple(tensor.shape) != (n,):
                    raise ValueError(f"{name} must have shape ({n},); got {tuple(tensor.shape)}")
            bad = ~((delta_t == 0) | (delta_t == 1))
            if bad.any():
                raise ValueError(first_bad(delta_t, bad, "delta", "be 0/1 or boolean"))
            reviewed = delta_t == 1
            bad = ~((pi_t >= 0) & (pi_t <= 1))  # also catches NaN
            if bad.any():
                raise ValueError(first_bad(pi_t, bad, "pi", "lie in [0, 1]"))
            bad = reviewed & (pi_t == 0)
            if bad.any():
                index = int(torch.nonzero(bad)[0, 0])
                raise ValueError(f"delta is 1 where pi is 0 (index {index})")
            target_shape = (n, c) if self.multi_label else (n,)
            for name, tensor in (("machine_targets", machine), ("human_targets", human)):
                if tuple(tensor.shape) != target_shape:
                    raise ValueError(
                        f"{name} must have shape {target_shape} "
                        f"({'multi' if self.multi_label else 'single'}-label); "
                        f"got {tuple(tensor.shape)}"
                    )
            if self.multi_label:
                machine = machine.to(logits.dtype)
                human = human.to(logits.dtype)
                for name, tensor, rows in (
                    ("machine_targets", machine, torch.ones_like(reviewed)),
                    ("human_targets", human, reviewed),
                ):
                    bad = ~((tensor >= 0) & (tensor <= 1)) & rows[:, None]
                    if bad.any():
                        raise ValueError(first_bad(tensor, bad, name, "lie in [0, 1]"))
            else:
                for name, tensor, rows in (
                    ("machine_targets", machine, torch.ones_like(reviewed)),
                    ("human_targets", human, reviewed),
                ):
                    if tensor.is_floating_point() or tensor.dtype == torch.bool:
                        raise ValueError(
                            f"{name} must hold integer class indices; got dtype {tensor.dtype}"
                        )
                    bad = ~((tensor >= 0) & (tensor < c)) & rows
                    if bad.any():
                        raise ValueError(first_bad(tensor, bad, name, f"be a class in [0, {c})"))
                machine = machine.long()
                human = human.long()
            safe_pi = torch.where(reviewed, pi_t, torch.ones_like(pi_t))
            ratio = torch.where(reviewed, 1.0 / safe_pi, torch.zeros_like(pi_t))
            return machine, human, reviewed, ratio

    ACTLoss.__module__ = __name__
    ACTLoss.__qualname__ = "ACTLoss"
    return ACTLoss


def __getattr__(name: str) -> Any:
    """Build ``ACTLoss`` (importing torch) the first time it is accessed."""
    if name == "ACTLoss":
        cls = _build_act_loss()
        globals()["ACTLoss"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
