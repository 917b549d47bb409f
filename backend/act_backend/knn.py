"""The kNN critic's and the zero-shot annotator's arithmetic: arrays in, arrays out.

Numpy only (no torch, no SQLite, no settings), so the benchmark scores its features with the
very formulas the offline engine (``engines.embedding``) serves. Embeddings are unit vectors,
so the cosine of two texts is e(t)·e(t'); a label set Y_i is a row of a boolean indicator matrix.

In the spirit of kNN label-noise detection (Bahri, Jiang & Gupta, "Deep k-NN for Noisy Labels",
ICML 2020) and cleanlab's label-quality scores: a label is suspicious when the item's nearest
neighbours were labelled otherwise, or, short of neighbours, when the label barely wins (its
margin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float32]

# Each label is embedded in these wordings and the embeddings averaged; on 32 topic sentences
# (4 labels) this raised zero-shot accuracy from 97% (label alone) to 100%.
LABEL_TEMPLATES = ("{}", "This text is about {}.")
# Multi-choice: labels within this cosine of the best are chosen too. Conservative: on those 32
# single-topic sentences the best label led the runner-up by 0.035 at least (median 0.17).
MULTI_CHOICE_DELTA = 0.03
MARGIN_TEMPERATURE = 0.05  # u = σ(−m / T): a margin of +0.1 cosine gives u ≈ 0.12
KNN_K = 10  # neighbours per item
KNN_MIN_SIMILARITY = 0.3  # cosine below which an item is no neighbour (weight 0)
KNN_PRIOR_WEIGHT = 1.0  # κ: the margin term counts as one neighbour of weight κ
#: A neighbour whose label a human gave (a reviewed task) counts this many times a machine-labelled
#: one: 3 took the ACT harness's rounds 2.9 (debian) and 1.4 (digits) points closer to full human
#: than 1 (docs/benchmarks.md, "Review in rounds").
HUMAN_NEIGHBOUR_WEIGHT = 3.0


def label_prototypes(text_embeddings: Array, n_labels: int) -> Array:
    """ℓ_c = normalise(mean over templates t of e(t(label c))): one unit vector per label, from
    the embeddings of each label in each of ``LABEL_TEMPLATES``, label by label (prompt
    ensembling, as for zero-shot CLIP)."""
    e = np.asarray(text_embeddings, dtype=np.float32).reshape(n_labels, len(LABEL_TEMPLATES), -1)
    mean = e.mean(axis=1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def choose_labels(
    similarities: NDArray[np.floating[Any]], *, multiple: bool, delta: float = MULTI_CHOICE_DELTA
) -> list[int]:
    """Indices of the chosen labels, given the cosine s_c of the item to each label c.

    Single choice: argmax_c s_c. Multi-choice: every c with s_c ≥ max_c' s_c' − δ, by decreasing
    similarity (always at least the best).

    >>> choose_labels(np.array([0.1, 0.4, 0.38]), multiple=True)
    [1, 2]
    >>> choose_labels(np.array([0.1, 0.4, 0.38]), multiple=False)
    [1]
    """
    s = np.asarray(similarities, dtype=np.float64)
    best = int(np.argmax(s))
    if not multiple:
        return [best]
    order = np.argsort(-s, kind="stable")
    return [int(c) for c in order if s[c] >= s[best] - delta]


def label_margins(similarities: NDArray[np.floating[Any]], chosen: NDArray[np.bool_]) -> NDArray:
    """m_i = min_{c ∈ Y_i} s_ic − max_{c ∉ Y_i} s_ic, per item (rows), +inf if Y_i is every label.

    For a single label ŷ this is s_iŷ minus the runner-up: positive when the embedding model
    agrees with ŷ, negative when it prefers another label.
    """
    s = np.asarray(similarities, dtype=np.float64)
    inside = np.where(chosen, s, np.inf).min(axis=1)
    outside = np.where(chosen, -np.inf, s).max(axis=1)
    return inside - outside


def margin_suspicion(margins: NDArray, *, temperature: float = MARGIN_TEMPERATURE) -> NDArray:
    """u_i = σ(−m_i / T) = 1 / (1 + exp(m_i / T)), in (0, 1); 0.5 at a tie (m = 0) and where the
    margin is undefined (every label chosen). Higher = more suspicious.

    >>> margin_suspicion(np.array([0.0, 0.1, -0.1])).round(3).tolist()
    [0.5, 0.119, 0.881]
    """
    m = np.asarray(margins, dtype=np.float64)
    u = 0.5 * (1.0 - np.tanh(np.clip(m, -1e6, 1e6) / (2.0 * temperature)))
    return np.where(np.isfinite(m), u, 0.5)


def label_distance(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> NDArray:
    """Jaccard distance 1 − |A ∩ B| / |A ∪ B| between label sets (rows of indicator matrices),
    all pairs: shape (len(a), len(b)). For single labels, 1 where they differ, else 0.

    >>> label_distance(np.array([[1, 0], [1, 1]], bool), np.array([[1, 0], [0, 1]], bool))
    array([[0. , 1. ],
           [0.5, 0.5]])
    """
    a_ = np.asarray(a, dtype=np.float64)
    b_ = np.asarray(b, dtype=np.float64)
    both = a_ @ b_.T
    either = a_.sum(1)[:, None] + b_.sum(1)[None, :] - both
    return 1.0 - np.divide(both, either, out=np.ones_like(both), where=either > 0)


@dataclass(frozen=True)
class KnnScores:
    """``knn_suspicion``'s answer, per query item (arrays of length n).

    ``neighbours[i]`` holds indices into the reference set, most similar first.
    """

    suspicion: NDArray
    margin_term: NDArray
    disagreement: NDArray  # weighted share of differing neighbours; nan without neighbours
    neighbours: list[NDArray]
    similarity: list[NDArray]


def knn_suspicion(
    query: Array,
    query_labels: NDArray[np.bool_],
    reference: Array,
    reference_labels: NDArray[np.bool_],
    margin_term: NDArray,
    *,
    exclude: NDArray[np.bool_] | None = None,
    k: int = KNN_K,
    min_similarity: float = KNN_MIN_SIMILARITY,
    prior_weight: float = KNN_PRIOR_WEIGHT,
    reference_weight: NDArray | None = None,
) -> KnnScores:
    """Suspicion ε̂_i ∈ [0, 1] of each query item's label from its neighbours' labels.

    With unit embeddings e, cosine s_ij = e_i·e_j, neighbours N_i = the (at most) k reference
    items j with the largest s_ij among those with s_ij > τ (``min_similarity``) and not
    ``exclude[i, j]`` (the item itself), weights w_ij = (s_ij − τ) / (1 − τ) ∈ (0, 1], label
    distance d_ij = 1 − |Y_i ∩ Y_j| / |Y_i ∪ Y_j| and the margin term u_i (``margin_suspicion``);
    ``reference_weight`` h_j (default 1; e.g. :data:`HUMAN_NEIGHBOUR_WEIGHT` for a neighbour a
    human labelled) multiplies w_ij:

        ε̂_i = (κ · u_i + Σ_{j ∈ N_i} w_ij · d_ij) / (κ + Σ_{j ∈ N_i} w_ij)

    A convex blend of the margin term (a pseudo-neighbour of weight κ = ``prior_weight``) and the
    similarity-weighted share of neighbours whose label differs; close neighbours outweigh the
    margin, far ones barely count, and with no neighbour ε̂_i = u_i. Higher = more suspicious.
    """
    s = np.asarray(query, dtype=np.float64) @ np.asarray(reference, dtype=np.float64).T
    if exclude is not None:
        s = np.where(exclude, -np.inf, s)
    distance = label_distance(query_labels, reference_labels)
    u = np.asarray(margin_term, dtype=np.float64)
    n = s.shape[0]
    suspicion = np.empty(n)
    disagreement = np.full(n, np.nan)
    neighbours: list[NDArray] = []
    similarity: list[NDArray] = []
    for i in range(n):
        order = np.argsort(-s[i], kind="stable")[:k]
        order = order[s[i, order] > min_similarity]
        w = (s[i, order] - min_similarity) / (1.0 - min_similarity)
        if reference_weight is not None:
            w = w * np.asarray(reference_weight, dtype=np.float64)[order]
        d = distance[i, order]
        neighbours.append(order)
        similarity.append(s[i, order])
        if len(order):
            disagreement[i] = float(w @ d / w.sum())
        suspicion[i] = (prior_weight * u[i] + float(w @ d)) / (prior_weight + float(w.sum()))
    return KnnScores(np.clip(suspicion, 0.0, 1.0), u, disagreement, neighbours, similarity)
