"""Critics for the benchmark: suspicion ε̂_i ∈ [0, 1] that machine label ŷ_i is wrong.

Arrays in, arrays out; higher = more suspicious. The LLM critic (``endpoint``) comes from the
predictor instead (``annotators.endpoint_labels``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray

from act_plugin.bench.annotators import unit_rows

__all__ = [
    "KnnCritic",
    "knn_consistency",
    "oracle_suspicion",
    "out_of_fold_suspicion",
    "random_suspicion",
]


def random_suspicion(n: int, *, seed: np.random.SeedSequence) -> NDArray[np.float64]:
    """ε̂_i ~ Uniform(0, 1), independent of everything (the baseline: AUROC ≈ 0.5)."""
    return np.random.default_rng(seed).random(n)


def oracle_suspicion(machine: NDArray[np.int64], truth: NDArray[np.int64]) -> NDArray[np.float64]:
    """ε̂_i = 1(ŷ_i ≠ y_i): a perfect critic (the upper bound, AUROC = 1)."""
    return (np.asarray(machine) != np.asarray(truth)).astype(np.float64)


def knn_consistency(
    features: NDArray[Any],
    machine: NDArray[np.int64],
    *,
    n_classes: int,
    label_scores: NDArray[np.float64] | None = None,
    k: int = 10,
) -> NDArray[np.float64]:
    """Embedding-kNN label consistency: the offline engine's ``knn_suspicion`` on these features.

    With unit feature vectors and cosine s_ij, the k most similar other items j with s_ij > τ
    (τ = 0.3) weigh w_ij = (s_ij − τ)/(1 − τ), and

        ε̂_i = (κ u_i + Σ_j w_ij 1(ŷ_j ≠ ŷ_i)) / (κ + Σ_j w_ij),   κ = 1,

    where u_i = σ(−m_i / T) is the annotator's margin term (m_i = s_iŷ − max_{c≠ŷ} s_ic of its
    ``label_scores``, T = 0.05), or 0.5 (no opinion) when the annotator gives no scores.
    """
    from act_backend.knn import knn_suspicion, label_margins, margin_suspicion

    x = unit_rows(features).astype(np.float32)
    onehot = np.zeros((machine.size, n_classes), dtype=bool)
    onehot[np.arange(machine.size), machine] = True
    if label_scores is None:
        margin_term = np.full(machine.size, 0.5)
    else:
        finite = np.where(np.isfinite(label_scores), label_scores, -1.0)
        margin_term = margin_suspicion(label_margins(finite, onehot))
    scores = knn_suspicion(
        x,
        onehot,
        x,
        onehot,
        margin_term,
        exclude=np.eye(machine.size, dtype=bool),
        k=k,
    )
    return np.asarray(scores.suspicion, dtype=np.float64)


def out_of_fold_suspicion(
    features: NDArray[Any],
    machine: NDArray[np.int64],
    *,
    folds: int = 5,
    seed: np.random.SeedSequence,
    regularization: float = 1.0,
) -> NDArray[np.float64]:
    """Cleanlab-style out-of-fold disagreement: ε̂_i = 1 − p̂_oof(ŷ_i | x_i).

    p̂_oof is a multinomial logistic regression (standardized features, L2 with C =
    ``regularization``) fitted on the machine labels of the other folds (K = ``folds``,
    stratified by machine label when every label has ≥ K items, shuffled per seed): the
    self-confidence score of cleanlab's ``get_label_quality_scores(method="self_confidence")``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    machine = np.asarray(machine)
    present, counts = np.unique(machine, return_counts=True)
    if present.size < 2:
        return np.zeros(machine.size)
    state = int(np.random.default_rng(seed).integers(2**31 - 1))
    splitter: Any
    if counts.min() >= folds:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=state)
    else:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=state)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=regularization, max_iter=500))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        warnings.filterwarnings("ignore", message=".*Number of classes in training fold.*")
        proba = cross_val_predict(
            model, np.asarray(features, np.float64), machine, cv=splitter, method="predict_proba"
        )
    column = np.searchsorted(present, machine)
    return np.clip(1.0 - proba[np.arange(machine.size), column], 0.0, 1.0)


class KnnCritic:
    """:func:`knn_consistency` whose neighbours' labels can be replaced by human labels.

    The neighbour sets N_i, weights w_ij and margin terms u_i are those of
    :func:`knn_consistency` (computed once); :meth:`suspicion` re-scores every row against
    reference labels r_j (the human label where row j was reviewed, ŷ_j elsewhere):

        ε̂_i = (κ u_i + Σ_{j ∈ N_i} w_ij 1(r_j ≠ ŷ_i)) / (κ + Σ_{j ∈ N_i} w_ij).

    So a row whose reviewed neighbours were corrected away from its machine label becomes more
    suspicious, and one whose neighbours were confirmed less. With r = ŷ this is exactly
    :func:`knn_consistency`.
    """

    def __init__(
        self,
        features: NDArray[Any],
        machine: NDArray[np.int64],
        *,
        n_classes: int,
        label_scores: NDArray[np.float64] | None = None,
        k: int = 10,
    ) -> None:
        from act_backend.knn import (
            KNN_MIN_SIMILARITY,
            KNN_PRIOR_WEIGHT,
            knn_suspicion,
            label_margins,
            margin_suspicion,
        )

        self.machine = np.asarray(machine, dtype=np.int64)
        n = self.machine.size
        x = unit_rows(features).astype(np.float32)
        onehot = np.zeros((n, n_classes), dtype=bool)
        onehot[np.arange(n), self.machine] = True
        if label_scores is None:
            margin_term = np.full(n, 0.5)
        else:
            finite = np.where(np.isfinite(label_scores), label_scores, -1.0)
            margin_term = margin_suspicion(label_margins(finite, onehot))
        scores = knn_suspicion(
            x, onehot, x, onehot, margin_term, exclude=np.eye(n, dtype=bool), k=k
        )
        width = max((len(nb) for nb in scores.neighbours), default=0)
        self.neighbours = np.zeros((n, width), dtype=np.intp)
        self.weights = np.zeros((n, width))
        for i, (nb, sim) in enumerate(zip(scores.neighbours, scores.similarity, strict=True)):
            self.neighbours[i, : len(nb)] = nb
            self.weights[i, : len(nb)] = (sim - KNN_MIN_SIMILARITY) / (1.0 - KNN_MIN_SIMILARITY)
        self.prior = KNN_PRIOR_WEIGHT
        self.margin_term = np.asarray(scores.margin_term, dtype=np.float64)
        self.initial = np.asarray(scores.suspicion, dtype=np.float64)

    def suspicion(
        self,
        reference: NDArray[np.int64],
        reviewed: NDArray[np.bool_] | None = None,
        *,
        human_weight: float = 1.0,
    ) -> NDArray[np.float64]:
        """ε̂ of every row's machine label against the neighbours' reference labels; the
        weight w_ij of a ``reviewed`` neighbour j (its label is a human's) is multiplied by
        ``human_weight``."""
        weights = self.weights
        if reviewed is not None and human_weight != 1.0:
            weights = weights * np.where(np.asarray(reviewed)[self.neighbours], human_weight, 1.0)
        differs = np.asarray(reference)[self.neighbours] != self.machine[:, None]
        votes = (weights * differs).sum(axis=1)
        total = self.prior + weights.sum(axis=1)
        return np.clip((self.prior * self.margin_term + votes) / total, 0.0, 1.0)

    def rescored(
        self,
        reviewed: NDArray[np.bool_],
        seen: NDArray[np.int64],
        *,
        human_weight: float = 1.0,
    ) -> NDArray[np.float64]:
        """ε̂ after a review (a ``methods.Rescore`` once ``human_weight`` is bound): reviewed
        neighbours vote with the labels ``seen`` (the humans'), the others with their machine
        labels."""
        reference = np.where(reviewed, seen, self.machine)
        return self.suspicion(reference, reviewed, human_weight=human_weight)
