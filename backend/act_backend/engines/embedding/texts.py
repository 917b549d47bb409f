"""What the embedding engine embeds: an item's text, and each label in several wordings."""

from __future__ import annotations

from ...domain import Item
from ...knn import LABEL_TEMPLATES
from ...labeling import LabelingSpec


def label_descriptions(spec: LabelingSpec) -> list[str]:
    """Each label as described to the model: ``"label: hint"`` where the config gives a hint (or
    an alias), else the label itself."""
    hints = dict(spec.label_hints)
    return [f"{label}: {hints[label]}" if hints.get(label) else label for label in spec.labels]


def label_texts(spec: LabelingSpec) -> list[str]:
    """The texts embedded for the labels: each description in each of ``LABEL_TEMPLATES``,
    label by label (``len(spec.labels) * len(LABEL_TEMPLATES)`` texts, the order
    ``knn.label_prototypes`` reads)."""
    return [t.format(d) for d in label_descriptions(spec) for t in LABEL_TEMPLATES]


def item_text(item: Item) -> str:
    """The item's text fields joined by blank lines, in the config's order ('' if none)."""
    return "\n\n".join(t.strip() for t in item.texts.values() if t and t.strip())
