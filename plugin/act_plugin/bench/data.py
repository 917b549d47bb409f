"""The benchmark's data sets, their features, and the labeling configs an endpoint sees.

- ``file``: any table with a label column and a text or an image column: JSON Lines, CSV,
  Parquet, or a Hugging Face dataset saved with ``save_to_disk`` (:func:`read_table`). Images are
  paths (relative to the data file's folder) or encoded bytes (a Hugging Face ``Image`` column
  gives both); features are their grayscale pixels at ``image_size``², scaled to [0, 1].
- ``debian``: the packaged Debian package descriptions labelled by archive section (a ``file``
  data set: JSONL, text column ``text``, label column ``section``).
- ``digits``: scikit-learn's bundled 8×8 handwritten digits (1797 images, 10 classes). Features
  are the 64 pixel intensities / 16. An endpoint sees each digit as a 64×64 grayscale PNG.

Text features are the all-MiniLM-L6-v2 sentence embeddings of the offline engine
(``act_backend.engines.embedding``), computed once per data set and cached on disk
(``<cache_dir>/minilm-<sha256>.npz``, keyed by the model, the texts and the label texts), or,
with ``features = "hashing"``, hashed bags of words (no model). The zero-shot annotator's cosine
to each label prototype (the label name with its hint from the config) is computed once too.
Label hints come from the config only (``hints``), for the built-in data sets as for any other.

The true labels play the human.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import struct
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
from numpy.typing import NDArray

from act_plugin.bench.config import DatasetConfig

__all__ = [
    "BENCH_DEBIAN_FILE",
    "BenchData",
    "Table",
    "digit_png_data_url",
    "hashed_bags",
    "labeling_config",
    "load_data",
    "read_table",
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
    image_urls: tuple[str, ...] | None = None  # file images as data URLs (endpoint only)
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
            image_urls=None if self.image_urls is None else tuple(self.image_urls[i] for i in keep),
            label_scores=None if self.label_scores is None else self.label_scores[keep],
            feature_seconds=self.feature_seconds,
            features_cached=self.features_cached,
        )


def load_data(config: DatasetConfig, *, cache_dir: Path | None) -> BenchData:
    """Load a data set and compute (or read cached) features and zero-shot scores."""
    if config.kind == "digits":
        return _load_digits(config)
    return _load_file(config, cache_dir=cache_dir)


def _per_class_cap(labels: NDArray[np.int64], n_classes: int, max_items: int | None) -> NDArray:
    """Indices keeping the first ⌊max_items / C⌋ items of each class, in the original order."""
    if max_items is None:
        return np.arange(labels.size)
    per_class = max(1, max_items // n_classes)
    keep = np.zeros(labels.size, dtype=bool)
    for c in range(n_classes):
        keep[np.flatnonzero(labels == c)[:per_class]] = True
    return np.flatnonzero(keep)


# --------------------------------------------------------------------------------------------
# Tables from files

#: File formats :func:`read_table` reads, by suffix; a directory is a Hugging Face dataset.
FORMATS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class Table:
    """The columns of a data file: ``rows`` (one dict per row), the column names, and, from a
    Hugging Face ``ClassLabel`` column, its names by integer value."""

    rows: list[dict[str, Any]]
    columns: tuple[str, ...]
    class_labels: dict[str, tuple[str, ...]]


def _format_of(path: Path, declared: str | None) -> str:
    if declared is not None:
        return declared
    if path.is_dir():
        return "hf"
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise ValueError(
            f"cannot tell the format of {path} from its suffix; set format to one of "
            "jsonl, csv, parquet, hf (a dataset saved with save_to_disk)"
        )
    return found


def read_table(path: Path, *, fmt: str | None = None, split: str | None = None) -> Table:
    """Read a data file into rows: JSON Lines, CSV, Parquet, or a Hugging Face dataset saved
    with ``save_to_disk`` (a ``DatasetDict`` needs ``split``). Image columns of a Hugging Face
    dataset are read undecoded, as ``{"bytes", "path"}``."""
    if not path.exists():
        raise ValueError(f"dataset file {path} does not exist")
    kind = _format_of(path, fmt)
    if kind == "jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not valid JSON ({exc})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {number}: a row must be a JSON object")
            rows.append(row)
        columns = tuple(dict.fromkeys(k for row in rows for k in row))
        return Table(rows, columns, {})
    if kind == "csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [dict(row) for row in reader]
            return Table(rows, tuple(reader.fieldnames or ()), {})
    if kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return Table(table.to_pylist(), tuple(table.column_names), {})
    return _read_hf(path, split)


def _read_hf(path: Path, split: str | None) -> Table:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if split is None or split not in loaded:
            raise ValueError(
                f'{path} holds the splits {sorted(loaded)}: name one with split = "..."'
            )
        loaded = loaded[split]
    class_labels: dict[str, tuple[str, ...]] = {}
    for name, feature in loaded.features.items():
        if isinstance(feature, datasets.Image):
            loaded = loaded.cast_column(name, datasets.Image(decode=False))
        elif isinstance(feature, datasets.ClassLabel):
            class_labels[name] = tuple(feature.names)
    return Table(loaded.to_list(), tuple(loaded.column_names), class_labels)


def _column(table: Table, name: str, role: str, config: DatasetConfig, where: Path) -> None:
    if name not in table.columns:
        raise ValueError(
            f"dataset {config.name!r}: {role} column {name!r} is not in {where} "
            f"(columns: {list(table.columns)})"
        )


def _label_names(
    values: list[str], config: DatasetConfig, column: str
) -> tuple[tuple[str, ...], NDArray[np.int64]]:
    """(class names, label index per row): the config's ``labels`` order if given (a row with
    another label is an error), else the labels with a hint in ``hints`` order, then the rest
    sorted. A hint for a label that is not one is an error."""
    present = set(values)
    if config.labels is not None:
        names = tuple(config.labels)
        unknown = sorted(present - set(names))
        if unknown:
            row = values.index(unknown[0])
            raise ValueError(
                f"dataset {config.name!r}: unknown label {unknown[0]!r} in column {column!r} "
                f"(row {row}); the config's labels are {list(names)}"
            )
    else:
        hinted = tuple(h for h in config.hints if h in present)
        names = hinted + tuple(sorted(present - set(hinted)))
    stray = [h for h in config.hints if h not in names]
    if stray:
        raise ValueError(
            f"dataset {config.name!r}: hints name the label {stray[0]!r}, which is not a label "
            f"of the data set (labels: {list(names)})"
        )
    if len(names) < 2:
        raise ValueError(f"dataset {config.name!r}: needs at least 2 labels; got {list(names)}")
    index = {name: c for c, name in enumerate(names)}
    return names, np.array([index[v] for v in values], dtype=np.int64)


def _label_values(table: Table, column: str, config: DatasetConfig) -> list[str]:
    names = table.class_labels.get(column)
    values = []
    for i, row in enumerate(table.rows):
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError(f"dataset {config.name!r}: row {i} has no label in column {column!r}")
        if names is not None and isinstance(value, int) and 0 <= value < len(names):
            value = names[value]
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        values.append(str(value))
    return values


def _text_values(table: Table, column: str, config: DatasetConfig) -> list[str]:
    texts = []
    for i, row in enumerate(table.rows):
        value = row.get(column)
        if not isinstance(value, str):
            raise ValueError(
                f"dataset {config.name!r}: row {i} of text column {column!r} is not a string "
                f"(got {type(value).__name__})"
            )
        texts.append(value)
    return texts


def _image_bytes(value: Any, base: Path, row: int, column: str, config: DatasetConfig) -> bytes:
    """The encoded image of one cell: raw bytes, a path, or ``{"bytes", "path"}``."""
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str) and value:
        file = Path(value).expanduser()
        file = file if file.is_absolute() else base / file
        try:
            return file.read_bytes()
        except OSError as exc:
            raise ValueError(
                f"dataset {config.name!r}: row {row} of image column {column!r}: cannot read "
                f"{file} ({exc.strerror or exc})"
            ) from None
    raise ValueError(
        f"dataset {config.name!r}: row {row} of image column {column!r} is neither a path nor "
        f"image bytes (got {type(value).__name__})"
    )


def _decode_images(
    encoded: list[bytes], size: int, config: DatasetConfig, *, urls: bool
) -> tuple[NDArray[np.float32], tuple[str, ...] | None]:
    """(features: grayscale pixels at size × size in [0, 1], PNG data URLs or None)."""
    from PIL import Image, UnidentifiedImageError

    features = np.zeros((len(encoded), size * size), dtype=np.float32)
    shown: list[str] = []
    for i, raw in enumerate(encoded):
        try:
            with Image.open(io.BytesIO(raw)) as image:
                image.load()
                gray = image.convert("L").resize((size, size), Image.Resampling.BILINEAR)
                features[i] = np.asarray(gray, dtype=np.float32).reshape(-1) / 255.0
                if urls:
                    out = io.BytesIO()
                    image.convert("RGB").save(out, format="PNG")
                    shown.append(
                        "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
                    )
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"dataset {config.name!r}: row {i} is not an image ({exc})") from None
    return features, tuple(shown) if urls else None


def _load_file(config: DatasetConfig, *, cache_dir: Path | None) -> BenchData:
    if config.path is None:  # the packaged Debian set
        raw = resources.files("act_plugin.demo_data").joinpath(BENCH_DEBIAN_FILE)
        with resources.as_file(raw) as file:
            table = read_table(file, fmt="jsonl")
        where = Path(BENCH_DEBIAN_FILE)
    else:
        where = config.path
        table = read_table(where, fmt=config.format, split=config.split)
    label_column = config.label_column
    data_column = config.text_column or config.image_column
    assert label_column is not None and data_column is not None
    if not table.rows:
        raise ValueError(f"dataset {config.name!r}: {where} has no rows")
    _column(table, label_column, "label", config, where)
    _column(table, data_column, "text" if config.text_column else "image", config, where)
    names, labels = _label_names(_label_values(table, label_column, config), config, label_column)
    keep = _per_class_cap(labels, len(names), config.max_items)
    labels = labels[keep]
    hints = tuple(config.hints.get(name, "") for name in names)
    started = time.perf_counter()
    if config.image_column is not None:
        base = where if where.is_dir() else where.parent
        encoded = [
            _image_bytes(table.rows[i].get(data_column), base, int(i), data_column, config)
            for i in keep
        ]
        features, urls = _decode_images(
            encoded, config.image_size, config, urls=config.annotator == "endpoint"
        )
        return BenchData(
            name=config.name,
            modality="image",
            class_names=names,
            class_hints=hints,
            features=features,
            labels=labels,
            image_urls=urls,
            feature_seconds=time.perf_counter() - started,
        )
    all_texts = _text_values(table, data_column, config)
    texts = tuple(all_texts[i] for i in keep)
    if config.features == "hashing":
        embeddings = hashed_bags(texts)
        prototypes = hashed_bags([f"{n} {h}" for n, h in zip(names, hints, strict=True)])
        cached = False
    else:
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


_WORD = re.compile(r"\w+")
HASHING_DIM = 512


def hashed_bags(texts: Sequence[str], *, dim: int = HASHING_DIM) -> NDArray[np.float32]:
    """Unit-length hashed bags of words (lower-cased ``\\w+`` tokens, CRC-32 buckets, signed):
    text features without a model, for quick runs and tests."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        for token in _WORD.findall(text.lower()):
            h = zlib.crc32(token.encode())
            out[i, h % dim] += 1.0 if (h >> 16) & 1 else -1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


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

    names = tuple(str(d) for d in range(10))
    stray = [h for h in config.hints if h not in names]
    if stray:
        raise ValueError(
            f"dataset {config.name!r}: hints name the label {stray[0]!r}, which is not a label "
            f"of the data set (labels: {list(names)})"
        )
    started = time.perf_counter()
    digits = load_digits()
    labels = digits.target.astype(np.int64)
    keep = _per_class_cap(labels, 10, config.max_items)
    images = digits.images[keep].astype(np.float64)
    return BenchData(
        name=config.name,
        modality="image",
        class_names=tuple(str(d) for d in range(10)),
        class_hints=tuple(config.hints.get(str(d), "") for d in range(10)),
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
