"""Machine labels: the offline annotators, and any configured endpoint through the predictor.

- ``zero_shot`` (text): ŷ_i = argmax_c s_ic, s_ic the cosine of the item's MiniLM embedding to
  label c's prototype (the offline engine's ``ZeroShotAnnotator``, vectorized).
- ``nearest_centroid`` (images, a stand-in for a weak MLLM): from ``shots`` labelled examples per
  class, centroids μ_c = normalise(mean of the unit-normalised pixel vectors of class c);
  s_ic = x̂_i · μ_c, ŷ_i = argmax_c s_ic.
- ``endpoint``: the backend's annotator and critic (``build_predictor(settings)``), called on
  task dicts with the data set's labeling config, exactly as Label Studio's /predict would.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from act_plugin.bench.data import BenchData, digit_png_data_url, labeling_config

if TYPE_CHECKING:
    from act_backend.settings import Settings

__all__ = ["EndpointLabels", "endpoint_labels", "nearest_centroid", "unit_rows", "zero_shot"]

log = logging.getLogger(__name__)


def unit_rows(x: NDArray[Any]) -> NDArray[np.float64]:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def zero_shot(label_scores: NDArray[np.float64]) -> NDArray[np.int64]:
    """ŷ_i = argmax_c s_ic (ties to the first label, as ``choose_labels``)."""
    return np.argmax(label_scores, axis=1).astype(np.int64)


def nearest_centroid(
    features: NDArray[Any],
    labels: NDArray[np.int64],
    *,
    n_classes: int,
    shots: int,
    seed: np.random.SeedSequence,
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.intp]]:
    """Few-shot labels for every row of ``features``.

    ``shots`` examples of each class are drawn (per seed) from the rows with that true label;
    returns (machine labels, scores s (n, C), indices of the examples used).
    """
    rng = np.random.default_rng(seed)
    x = unit_rows(features)
    examples: list[NDArray[np.intp]] = []
    centroids = np.zeros((n_classes, x.shape[1]))
    for c in range(n_classes):
        members = np.flatnonzero(labels == c)
        if members.size == 0:
            continue
        chosen = rng.choice(members, size=min(shots, members.size), replace=False)
        examples.append(chosen)
        centroids[c] = x[chosen].mean(axis=0)
    centroids = unit_rows(centroids)
    scores = x @ centroids.T
    scores[:, ~centroids.any(axis=1)] = -np.inf  # classes without examples are never chosen
    return np.argmax(scores, axis=1).astype(np.int64), scores, np.concatenate(examples)


@dataclass(frozen=True)
class EndpointLabels:
    """The endpoint's answers for every item of a data set.

    ``labels`` is −1 and ``suspicion`` NaN where the task failed; ``failures`` counts failed
    tasks by error kind; usage totals are over all items (annotator and critic calls together).
    """

    labels: NDArray[np.int64]
    suspicion: NDArray[np.float64]
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    model_version: str = ""

    @property
    def ok(self) -> NDArray[np.bool_]:
        return self.labels >= 0


def _tasks(data: BenchData) -> list[dict[str, Any]]:
    if data.modality == "text":
        assert data.texts is not None
        return [{"id": i, "data": {"text": t}} for i, t in enumerate(data.texts)]
    if data.image_urls is not None:
        return [{"id": i, "data": {"image": url}} for i, url in enumerate(data.image_urls)]
    assert data.images is not None
    return [
        {"id": i, "data": {"image": digit_png_data_url(img)}} for i, img in enumerate(data.images)
    ]


def endpoint_labels(data: BenchData, settings: Settings) -> EndpointLabels:
    """Annotate and criticize every item with the backend's predictor (``settings``).

    The answers are the production path's: ``Predictor.predict`` on task dicts and the parsed
    labeling config, with its concurrency, cache and per-task error handling. A failed task gets
    no label; the caller drops it.
    """
    from act_backend.labeling import parse_label_config
    from act_backend.predictor import build_predictor

    spec = parse_label_config(labeling_config(data), rationale_field=settings.rationale_field)
    predictor = build_predictor(settings)
    try:
        outcomes = predictor.predict(_tasks(data), spec)
    finally:
        predictor.close()
    index = {name: c for c, name in enumerate(data.class_names)}
    labels = np.full(data.n, -1, dtype=np.int64)
    suspicion = np.full(data.n, np.nan)
    failures: Counter[str] = Counter()
    calls = cached = prompt = completion = 0
    for i, outcome in enumerate(outcomes):
        usage = outcome.usage
        calls += usage.calls
        cached += usage.cached
        prompt += usage.prompt_tokens
        completion += usage.completion_tokens
        if outcome.error is not None or outcome.label is None:
            failures[outcome.error.kind if outcome.error else "no_label"] += 1
            continue
        chosen = outcome.label.labels
        if len(chosen) != 1 or chosen[0] not in index:
            failures["answer_out_of_set"] += 1
            continue
        labels[i] = index[chosen[0]]
        suspicion[i] = float(outcome.suspicion) if outcome.suspicion is not None else np.nan
        if not np.isfinite(suspicion[i]):
            suspicion[i] = 1.0  # an unjudged label is reviewed first
    if failures:
        log.warning("%s: %d endpoint tasks failed: %s", data.name, sum(failures.values()), failures)
    return EndpointLabels(
        labels=labels,
        suspicion=np.clip(suspicion, 0.0, 1.0),
        calls=calls,
        cached_calls=cached,
        prompt_tokens=prompt,
        completion_tokens=completion,
        failures=dict(failures),
        model_version=settings.resolved_model_version,
    )
