"""The benchmark's data sets, their features, and the labeling configs an endpoint sees.

- ``debian``: Debian package descriptions labelled by archive section (text). Features are the
  all-MiniLM-L6-v2 sentence embeddings of the offline engine (``act_backend.engines.embedding``),
  computed once per data set and cached on disk (``<cache_dir>/minilm-<sha256>.npy``, keyed by
  the model and the exact texts). The zero-shot annotator's cosine to each label prototype is
  computed once too.
- ``digits``: scikit-learn's bundled 8×8 handwritten digits (1797 images, 10 classes). Features
  are the 64 pixel intensities / 16. An endpoint sees each digit as a 64×64 grayscale PNG.

The true labels play the human.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
from numpy.typing import NDArray

from act_plugin.bench.config import DatasetConfig
from act_plugin.demo_data import DEBIAN_SECTIONS

__all__ = [
    "BENCH_DEBIAN_FILE",
    "BenchData",
    "digit_png_data_url",
    "labeling_config",
    "load_data",
    "stratified_split",
]

#: The larger frozen Debian set built for the benchmark (see demo_data/README.md).
BENCH_DEBIAN_FILE = "debian_packages_bench.jsonl"
DIGIT_PNG_SCALE = 8  # 8×8 → 64×64 pixels


@dataclass(frozen=True)
class BenchData:
    """One data set, ready for the pipeline.

    ``features`` (n, d) float32 feed the critics and the downstream model; ``labels`` (n,) are the
    true classes (the simulated human); ``label_scores`` (n, C), when present, are the zero-shot
    annotator's cosine of each item to each label prototype (its machine label is the argmax).
    """

    name: str
    modality: str  # "text" | "image"
    class_names: tuple[str, ...]
    class_hints: tuple[str, ...]
    features: NDArray[np.float32]
    labels: NDArray[np.int64]
    texts: tuple[str, ...] | None = None
    images: NDArray[np.float64] | None = None  # (n, 8, 8), intensities 0..16
    label_scores: NDArray[np.float64] | None = None
    feature_seconds: float = 0.0
    features_cached: bool = False

    @property
    def n(self) -> int:
        return int(self.labels.size)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def subset(self, keep: NDArray[np.intp]) -> BenchData:
        """The same data set restricted to the items ``keep`` (in that order)."""
        return BenchData(
            name=self.name,
            modality=self.modality,
            class_names=self.class_names,
            class_hints=self.class_hints,
            features=self.features[keep],
            labels=self.labels[keep],
            texts=None if self.texts is None else tuple(self.texts[i] for i in keep),
            images=None if self.images is None else self.images[keep],
            label_scores=None if self.label_scores is None else self.label_scores[keep],
            feature_seconds=self.feature_seconds,
            features_cached=self.features_cached,
        )


def load_data(config: DatasetConfig, *, cache_dir: Path | None) -> BenchData:
    """Load a data set and compute (or read cached) features and zero-shot scores."""
    if config.kind == "debian":
        return _load_debian(config, cache_dir=cache_dir)
    return _load_digits(config)


def _per_class_cap(labels: NDArray[np.int64], n_classes: int, max_items: int | None) -> NDArray:
    """Indices keeping the first ⌊max_items / C⌋ items of each class, in the original order."""
    if max_items is None:
        return np.arange(labels.size)
    per_class = max(1, max_items // n_classes)
    keep = np.zeros(labels.size, dtype=bool)
    for c in range(n_classes):
        keep[np.flatnonzero(labels == c)[:per_class]] = True
    return np.flatnonzero(keep)


def _read_debian_rows(path: Path | None) -> list[dict[str, str]]:
    if path is None:
        raw = resources.files("act_plugin.demo_data").joinpath(BENCH_DEBIAN_FILE)
        text = raw.read_text(encoding="utf-8")
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"dataset file {path} does not exist") from None
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    for i, row in enumerate(rows):
        if not isinstance(row.get("text"), str) or not isinstance(row.get("section"), str):
            raise ValueError(f"row {i} of the Debian data needs string 'text' and 'section'")
    return rows


def _load_debian(config: DatasetConfig, *, cache_dir: Path | None) -> BenchData:
    rows = _read_debian_rows(config.path)
    present = {r["section"] for r in rows}
    names = tuple(s for s in DEBIAN_SECTIONS if s in present) + tuple(
        sorted(present - set(DEBIAN_SECTIONS))
    )
    labels = np.array([names.index(r["section"]) for r in rows], dtype=np.int64)
    keep = _per_class_cap(labels, len(names), config.max_items)
    texts = tuple(rows[i]["text"] for i in keep)
    labels = labels[keep]
    hints = tuple(DEBIAN_SECTIONS.get(s, "") for s in names)

    started = time.perf_counter()
    embeddings, label_embeddings, cached = _minilm_embeddings(
        texts, _label_texts(names, hints), cache_dir=cache_dir
    )
    from act_backend.knn import label_prototypes

    prototypes = label_prototypes(label_embeddings, len(names))
    scores = embeddings.astype(np.float64) @ prototypes.astype(np.float64).T
    return BenchData(
        name=config.name,
        modality="text",
        class_names=names,
        class_hints=hints,
        features=embeddings.astype(np.float32),
        labels=labels,
        texts=texts,
        label_scores=scores,
        feature_seconds=time.perf_counter() - started,
        features_cached=cached,
    )


def _label_texts(names: tuple[str, ...], hints: tuple[str, ...]) -> list[str]:
    """The label texts the offline engine embeds for this config (``label_texts``)."""
    from act_backend.engines.embedding.texts import label_texts
    from act_backend.labeling import parse_label_config

    return label_texts(parse_label_config(_text_config(names, hints)))


def _minilm_embeddings(
    texts: tuple[str, ...], label_texts: list[str], *, cache_dir: Path | None
) -> tuple[NDArray[np.float32], NDArray[np.float32], bool]:
    """(item embeddings, label-text embeddings, whether both came from the disk cache)."""
    from act_backend.engines.embedding.encoder import DEFAULT_MODEL

    digest = hashlib.sha256(
        json.dumps([DEFAULT_MODEL, list(texts), label_texts], ensure_ascii=False).encode()
    ).hexdigest()[:32]
    file = None if cache_dir is None else cache_dir / f"minilm-{digest}.npz"
    if file is not None and file.is_file():
        with np.load(file) as stored:
            return stored["items"], stored["labels"], True
    from act_backend.engines.embedding.encoder import encoder_for
    from act_backend.settings import EngineSettings

    encoder = encoder_for(EngineSettings(engine="embedding", model=DEFAULT_MODEL, device="cpu"))
    vectors = encoder.embed([*texts, *label_texts], batch_size=64)
    items, labels = vectors[: len(texts)], vectors[len(texts) :]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp.npz")
        np.savez(tmp, items=items, labels=labels)
        tmp.replace(file)
    return items, labels, False


def _load_digits(config: DatasetConfig) -> BenchData:
    from sklearn.datasets import load_digits

    started = time.perf_counter()
    digits = load_digits()
    labels = digits.target.astype(np.int64)
    keep = _per_class_cap(labels, 10, config.max_items)
    images = digits.images[keep].astype(np.float64)
    return BenchData(
        name=config.name,
        modality="image",
        class_names=tuple(str(d) for d in range(10)),
        class_hints=tuple(f"the handwritten digit {d}" for d in range(10)),
        features=(images.reshape(len(keep), -1) / 16.0).astype(np.float32),
        labels=labels[keep],
        images=images,
        feature_seconds=time.perf_counter() - started,
    )


def stratified_split(
    labels: NDArray[np.int64], *, test_fraction: float, seed: np.random.SeedSequence
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(pool, test) indices: round(test_fraction · n_c) items of each class c go to the test
    split, drawn uniformly per seed; both sorted."""
    rng = np.random.default_rng(seed)
    test: list[NDArray[np.intp]] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = min(len(members) - 1, round(test_fraction * len(members)))
        test.append(rng.choice(members, size=max(k, 0), replace=False))
    is_test = np.zeros(labels.size, dtype=bool)
    is_test[np.concatenate(test)] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


# --------------------------------------------------------------------------------------------
# What an endpoint sees


def _choices(names: tuple[str, ...], hints: tuple[str, ...]) -> str:
    return "\n".join(
        f"    <Choice value={quoteattr(n)}" + (f" hint={quoteattr(h)}" if h else "") + "/>"
        for n, h in zip(names, hints, strict=True)
    )


def _text_config(names: tuple[str, ...], hints: tuple[str, ...]) -> str:
    return (
        '<View>\n  <Text name="text" value="$text"/>\n'
        '  <Choices name="label" toName="text" choice="single">\n'
        f"{_choices(names, hints)}\n  </Choices>\n</View>"
    )


def _image_config(names: tuple[str, ...], hints: tuple[str, ...]) -> str:
    return (
        '<View>\n  <Image name="image" value="$image"/>\n'
        '  <Choices name="label" toName="image" choice="single">\n'
        f"{_choices(names, hints)}\n  </Choices>\n</View>"
    )


def labeling_config(data: BenchData) -> str:
    """The Label Studio labeling config of the data set's task (one single-choice label)."""
    if data.modality == "text":
        return _text_config(data.class_names, data.class_hints)
    return _image_config(data.class_names, data.class_hints)


def digit_png_data_url(image: NDArray[np.float64], *, scale: int = DIGIT_PNG_SCALE) -> str:
    """An 8×8 digit (intensities 0..16) as a ``data:image/png`` URL: dark ink on white,
    each pixel a ``scale``×``scale`` block, 8-bit grayscale, no dependency beyond zlib."""
    gray = 255 - np.clip(np.rint(np.asarray(image, float) * 255.0 / 16.0), 0, 255)
    pixels = np.kron(gray.astype(np.uint8), np.ones((scale, scale), dtype=np.uint8))
    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
