"""``ZeroShotAnnotator``: the machine label is the label whose text is most similar to the
item's text (``knn.choose_labels`` over the cosines to the ``knn.label_prototypes``)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ...domain import Item, MachineLabel, TaskError, Usage
from ...knn import MULTI_CHOICE_DELTA, choose_labels, label_prototypes
from ...labeling import LabelingSpec
from .encoder import DEFAULT_BATCH_SIZE, SentenceEncoder
from .texts import item_text, label_texts

_IMAGES_UNSUPPORTED = (
    "image tasks need a multimodal LLM: set ACT_ANNOTATOR_ENGINE=openai with "
    "ACT_ANNOTATOR_MODEL=<a vision model> and OPENAI_BASE_URL/OPENAI_API_KEY (or "
    "ACT_ANNOTATOR_ENGINE=transformers with a local vision-language model); the offline "
    "embedding engine reads text only"
)
_TEXTAREA_UNSUPPORTED = (
    "free-text answers (<TextArea>, e.g. VQA) need a generative model: set "
    "ACT_ANNOTATOR_ENGINE=openai with ACT_ANNOTATOR_MODEL=<a chat model> and "
    "OPENAI_BASE_URL/OPENAI_API_KEY (or ACT_ANNOTATOR_ENGINE=transformers with a local model); "
    "the offline embedding engine only chooses among <Choice> labels"
)


def check_annotatable(spec: LabelingSpec) -> None:
    """Raise TaskError ``engine_unsupported`` for configs the zero-shot annotator cannot serve
    (free-text answers, image inputs), naming what to configure instead."""
    if spec.kind != "choices":
        raise TaskError("engine_unsupported", _TEXTAREA_UNSUPPORTED)
    if spec.has_images:
        raise TaskError("engine_unsupported", _IMAGES_UNSUPPORTED)


class ZeroShotAnnotator:
    """Zero-shot labels by embedding similarity (``choose_labels``); no LLM calls (Usage() = 0)."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        *,
        multi_choice_delta: float = MULTI_CHOICE_DELTA,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.encoder = encoder
        self.multi_choice_delta = multi_choice_delta
        self.batch_size = batch_size

    def check(self, spec: LabelingSpec) -> None:
        """Refuse, before any work, configs this engine cannot serve (see check_annotatable)."""
        check_annotatable(spec)

    def similarities(self, item: Item, spec: LabelingSpec) -> NDArray:
        """Cosine of the item's text to each label text, in the config's label order."""
        check_annotatable(spec)
        text = item_text(item)
        if not text:
            raise TaskError("bad_task", f"task {item.task_id} has no text to classify")
        vectors = self.encoder.embed([text, *label_texts(spec)], batch_size=self.batch_size)
        return label_prototypes(vectors[1:], len(spec.labels)) @ vectors[0]

    def annotate(self, item: Item, spec: LabelingSpec) -> tuple[MachineLabel, Usage]:
        s = self.similarities(item, spec)
        chosen = choose_labels(s, multiple=spec.multiple, delta=self.multi_choice_delta)
        ranked = np.argsort(-s, kind="stable")[:3]
        shown = ", ".join(f"'{spec.labels[c]}' {s[c]:.2f}" for c in ranked)
        reasoning = f"zero-shot by sentence-embedding cosine ({self.encoder.name}): {shown}"
        labels = tuple(spec.labels[c] for c in chosen)
        return MachineLabel(labels=labels, reasoning=reasoning), Usage()
