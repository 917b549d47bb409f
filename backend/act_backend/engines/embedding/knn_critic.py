"""``KnnCritic`` (strategy ``knn``): label consistency among the nearest neighbours in embedding
space, blended with the label margin (``knn.knn_suspicion``). It needs only the items and their
machine labels, so it criticizes the labels of any annotator engine."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass

import numpy as np
from numpy.typing import NDArray

from ...domain import Critique, Item, MachineLabel, TaskError, Usage
from ...knn import (
    HUMAN_NEIGHBOUR_WEIGHT,
    KNN_K,
    KNN_MIN_SIMILARITY,
    KNN_PRIOR_WEIGHT,
    MARGIN_TEMPERATURE,
    knn_suspicion,
    label_margins,
    label_prototypes,
    margin_suspicion,
)
from ...labeling import LabelingSpec
from .encoder import DEFAULT_BATCH_SIZE, SentenceEncoder
from .memory import NeighbourMemory, Remembered, label_space, text_key
from .texts import item_text, label_texts

_CRITIC_TEXTAREA_UNSUPPORTED = (
    "the knn critic compares <Choice> labels; free-text answers need an LLM critic: set "
    "ACT_CRITIC_ENGINE=openai, ACT_CRITIC_STRATEGY=cot and OPENAI_BASE_URL/OPENAI_API_KEY"
)
_CRITIC_NO_TEXT = (
    "the knn critic compares texts and this item has none (images only): use an LLM critic "
    "(ACT_CRITIC_ENGINE=openai with a vision model, ACT_CRITIC_STRATEGY=cot)"
)


@dataclass(eq=False)
class KnnCritic:
    """Batch critic ``knn``: neighbours' labels and the label margin (``knn_suspicion``).

    Neighbours are the other items of the batch and the remembered earlier items (excluding
    earlier copies of the batch's own texts); after scoring, the batch is remembered. Items a
    reviewer labelled (:meth:`learn`, fed by the webhook) are remembered with the human label and
    count :data:`~act_backend.knn.HUMAN_NEIGHBOUR_WEIGHT` times as neighbours. Works as a
    per-item ``Critic`` too (a batch of one). Free-text configs and items without text fail with
    ``engine_unsupported``; labels outside the config with ``answer_out_of_set``.
    """

    encoder: SentenceEncoder
    memory: NeighbourMemory | None
    _: KW_ONLY
    k: int = KNN_K
    min_similarity: float = KNN_MIN_SIMILARITY
    prior_weight: float = KNN_PRIOR_WEIGHT
    temperature: float = MARGIN_TEMPERATURE
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if (
            self.k < 1
            or not 0.0 <= self.min_similarity < 1.0
            or self.prior_weight <= 0
            or self.temperature <= 0
        ):
            raise ValueError(
                "KnnCritic needs k ≥ 1, 0 ≤ min_similarity < 1, prior_weight > 0 and "
                f"temperature > 0; got k={self.k}, min_similarity={self.min_similarity}, "
                f"prior_weight={self.prior_weight}, temperature={self.temperature}"
            )

    def criticize(
        self, item: Item, spec: LabelingSpec, label: MachineLabel
    ) -> tuple[Critique, Usage]:
        verdict = self.criticize_batch([item], spec, [label])[0]
        if isinstance(verdict, TaskError):
            raise verdict
        return verdict

    def criticize_batch(
        self, items: Sequence[Item], spec: LabelingSpec, labels: Sequence[MachineLabel]
    ) -> list[tuple[Critique, Usage] | TaskError]:
        verdicts: list[tuple[Critique, Usage] | TaskError] = [
            self._check(item, spec, label) for item, label in zip(items, labels, strict=True)
        ]
        ok = [i for i, v in enumerate(verdicts) if v is None]
        if not ok:
            return verdicts
        texts = [item_text(items[i]) for i in ok]
        vectors = self.encoder.embed([*texts, *label_texts(spec)], batch_size=self.batch_size)
        x = vectors[: len(ok)]
        label_vectors = label_prototypes(vectors[len(ok) :], len(spec.labels))
        y = _indicators((labels[i].labels for i in ok), spec.labels)

        keys = [text_key(t) for t in texts]
        space = label_space(spec, self.encoder.name)
        past = self._recall(space, x.shape[1])
        batch_keys = set(keys)
        keep = [j for j, key in enumerate(past.keys) if key not in batch_keys]
        reference = np.concatenate([x, past.embeddings[keep]])
        reference_y = np.concatenate([y, _indicators((past.labels[j] for j in keep), spec.labels)])
        weight = np.concatenate(
            [np.ones(len(ok)), [HUMAN_NEIGHBOUR_WEIGHT if past.human[j] else 1.0 for j in keep]]
        )
        exclude = np.zeros((len(ok), len(reference)), dtype=bool)
        exclude[np.arange(len(ok)), np.arange(len(ok))] = True

        sims = x @ label_vectors.T
        margins = label_margins(sims, y)
        scores = knn_suspicion(
            x,
            y,
            reference,
            reference_y,
            margin_suspicion(margins, temperature=self.temperature),
            exclude=exclude,
            k=self.k,
            min_similarity=self.min_similarity,
            prior_weight=self.prior_weight,
            reference_weight=weight,
        )
        names = [labels[i].labels for i in ok] + [past.labels[j] for j in keep]
        for row, i in enumerate(ok):
            rationale = self._rationale(
                labels[i], scores.neighbours[row], names, margins[row], sims[row], y[row], spec
            )
            verdicts[i] = (Critique(float(scores.suspicion[row]), rationale), Usage())
        if self.memory is not None:
            self.memory.remember(space, keys, x, [labels[i].labels for i in ok])
        return verdicts

    def learn(
        self, items: Sequence[Item], spec: LabelingSpec, labels: Sequence[MachineLabel]
    ) -> int:
        """Remember reviewed items with their human labels (they then weigh
        ``HUMAN_NEIGHBOUR_WEIGHT`` as neighbours); items the critic cannot use (no text, a
        free-text config, labels outside the config) are skipped. The number remembered."""
        usable = [
            (item, label)
            for item, label in zip(items, labels, strict=True)
            if self.memory is not None and self._check(item, spec, label) is None
        ]
        if not usable or self.memory is None:
            return 0
        texts = [item_text(item) for item, _ in usable]
        x = self.encoder.embed(texts, batch_size=self.batch_size)
        space = label_space(spec, self.encoder.name)
        self.memory.remember(
            space, [text_key(t) for t in texts], x, [lab.labels for _, lab in usable], human=True
        )
        return len(usable)

    def _recall(self, space: str, dim: int) -> Remembered:
        if self.memory is None:
            return Remembered.nothing(dim)
        return self.memory.recall(space, dim)

    def _check(self, item: Item, spec: LabelingSpec, label: MachineLabel) -> TaskError | None:
        if spec.kind != "choices":
            return TaskError("engine_unsupported", _CRITIC_TEXTAREA_UNSUPPORTED)
        if not item_text(item):
            return TaskError("engine_unsupported", _CRITIC_NO_TEXT)
        unknown = [name for name in label.labels if name not in spec.labels]
        if unknown or not label.labels:
            return TaskError(
                "answer_out_of_set",
                f"the machine label {list(label.labels)!r} is not a non-empty subset of the "
                f"config's labels {list(spec.labels)!r}",
            )
        return None

    def _rationale(
        self,
        label: MachineLabel,
        neighbours: NDArray,
        names: list[tuple[str, ...]],
        margin: float,
        sims: NDArray,
        chosen: NDArray[np.bool_],
        spec: LabelingSpec,
    ) -> str:
        own = label.display()
        if np.isfinite(margin):
            rival = spec.labels[int(np.argmax(np.where(chosen, -np.inf, sims)))]
            ahead = "ahead of" if margin >= 0 else "behind"
            margin_text = f"'{own}' is {abs(margin):.2f} cosine {ahead} '{rival}'"
        else:
            margin_text = "every label was chosen"
        if len(neighbours) == 0:
            return (
                f"no similar items yet (cosine > {self.min_similarity:.2f}); from the label "
                f"margin alone: {margin_text}"
            )
        own_set = set(label.labels)
        others = Counter(", ".join(names[j]) for j in neighbours if set(names[j]) != own_set)
        n = len(neighbours)
        if not others:
            return f"all {n} nearest items were also labelled '{own}'; {margin_text}"
        top, count = others.most_common(1)[0]
        differing = sum(others.values())
        tail = f" ({count} '{top}')" if len(others) > 1 else f" '{top}'"
        verb = f"were labelled{tail}" if len(others) == 1 else f"were labelled otherwise{tail}"
        return f"{differing} of {n} nearest items {verb}, not '{own}'; {margin_text}"


def _indicators(label_sets: Iterable[Sequence[str]], labels: Sequence[str]) -> NDArray[np.bool_]:
    """Y[i, c] = 1(label c ∈ i-th label set); names outside ``labels`` are ignored."""
    index = {name: c for c, name in enumerate(labels)}
    rows = list(label_sets)
    y = np.zeros((len(rows), len(labels)), dtype=bool)
    for row, names in enumerate(rows):
        for name in names:
            if name in index:
                y[row, index[name]] = True
    return y
