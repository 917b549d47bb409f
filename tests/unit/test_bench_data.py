"""The ACT harness on data sets read from files: JSONL, CSV, Parquet, Hugging Face datasets."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from act_plugin.bench import config_from_dict, format_result, run_benchmark
from act_plugin.bench.data import load_data, read_table

WORDS = {
    "fruit": "apple banana cherry mango pear grape",
    "tool": "hammer wrench screwdriver drill saw pliers",
    "animal": "horse tiger rabbit eagle shark whale",
}
HINTS = {name: f"{name}: {words}" for name, words in WORDS.items()}


def _text_rows(per_class: int = 12) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(per_class):
        for label, words in WORDS.items():
            vocab = words.split()
            other = WORDS[rng.choice([k for k in WORDS if k != label])].split()
            picked = list(rng.choice(vocab, size=3)) + list(rng.choice(other, size=i % 3))
            rows.append({"body": " ".join(picked) + f" item {i}", "kind": label})
    return rows


def _png(label: int, seed: int) -> bytes:
    """An 8×8 image: a horizontal bar (0), a vertical bar (1) or a diagonal (2), plus noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, size=(8, 8))
    if label == 0:
        pixels[3:5, :] = 255
    elif label == 1:
        pixels[:, 3:5] = 255
    else:
        pixels[np.arange(8), np.arange(8)] = 255
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(out, format="PNG")
    return out.getvalue()


def _image_rows(per_class: int = 14) -> list[dict[str, Any]]:
    names = ("bar", "pole", "slash")
    return [
        {"picture": _png(c, 100 * i + c), "shape": names[c]}
        for i in range(per_class)
        for c in range(3)
    ]


def _write(rows: list[dict[str, Any]], fmt: str, folder: Path, *, image: str | None = None) -> Path:
    """Write rows in ``fmt``; images become files (JSONL, CSV) or stay bytes (Parquet, hf)."""
    if image is not None and fmt in ("jsonl", "csv"):
        (folder / "img").mkdir()
        for i, row in enumerate(rows):
            (folder / "img" / f"{i}.png").write_bytes(row[image])
        rows = [{**row, image: f"img/{i}.png"} for i, row in enumerate(rows)]
    if fmt == "jsonl":
        path = folder / "data.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        import csv

        path = folder / "data.csv"
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = folder / "data.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        import datasets

        path = folder / "hf"
        columns = {k: [r[k] for r in rows] for k in rows[0]}
        if image is not None:
            features = datasets.Features(
                {
                    image: datasets.Image(),
                    "shape": datasets.ClassLabel(names=["bar", "pole", "slash"]),
                }
            )
            columns["shape"] = [["bar", "pole", "slash"].index(v) for v in columns["shape"]]
            columns[image] = [{"bytes": b, "path": None} for b in columns[image]]
            datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(path))
        else:
            datasets.Dataset.from_dict(columns).save_to_disk(str(path))
    return path


def _config(dataset: dict[str, Any], tmp_path: Path) -> Any:
    return config_from_dict(
        {
            "seeds": [0],
            "budgets": [0.2],
            "methods": [
                "full_human",
                "full_machine",
                "thresholded",
                "ours_rounds",
                "ours_rounds_last",
            ],
            "critics": ["knn", "oracle"],
            "primary_critic": "knn",
            "rounds": 2,
            "train": {"epochs": 20},
            "ablation": False,
            "cache_dir": str(tmp_path / "cache"),
            "datasets": [dataset],
        },
        base_dir=tmp_path,
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "hf"])
def test_text_data_set_from_each_format_runs_end_to_end(tmp_path: Path, fmt: str) -> None:
    path = _write(_text_rows(), fmt, tmp_path)
    dataset = {
        "name": "words",
        "kind": "file",
        "path": path.name,  # relative to the config's folder
        "text_column": "body",
        "label_column": "kind",
        "annotator": "zero_shot",
        "features": "hashing",
        "hints": HINTS,
    }
    config = _config(dataset, tmp_path)
    data = load_data(config.datasets[0], cache_dir=None)
    assert data.class_names == ("fruit", "tool", "animal")  # the hints' order
    assert data.class_hints == tuple(HINTS.values())
    assert data.n == 36 and data.modality == "text"
    result = run_benchmark(config)
    (ds,) = result.datasets
    assert ds.n_pool + ds.n_test == 36
    assert ds.annotator_accuracy[0] > 0.5  # the hints name the words: zero-shot works
    assert {r.method for r in ds.runs} >= {"ours_rounds", "ours_rounds_last"}
    text = format_result(result)
    assert "## words (text; annotator `zero_shot`)" in text
    assert "| ours: rounds, critic updated (sequential weights) |" in text


def _image_dataset(path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "shapes",
        "kind": "file",
        "path": str(path),
        "image_column": "picture",
        "label_column": "shape",
        "annotator": "nearest_centroid",
        **extra,
    }


@pytest.mark.parametrize("fmt", ["csv", "parquet", "hf"])
def test_image_data_set_from_paths_or_bytes_runs_end_to_end(tmp_path: Path, fmt: str) -> None:
    path = _write(_image_rows(), fmt, tmp_path, image="picture")
    config = _config(_image_dataset(path, image_size=8, shots=2), tmp_path)
    data = load_data(config.datasets[0], cache_dir=None)
    assert data.modality == "image" and data.features.shape == (42, 64)
    assert data.class_names == ("bar", "pole", "slash")  # sorted (hf: the ClassLabel names)
    assert float(data.features.max()) == pytest.approx(1.0)
    result = run_benchmark(config)
    (ds,) = result.datasets
    assert ds.annotator_accuracy[0] > 0.9  # bars are easy
    assert "## shapes (image; annotator `nearest_centroid`)" in format_result(result)


def test_image_data_urls_are_built_for_an_endpoint(tmp_path: Path) -> None:
    path = _write(_image_rows(4), "parquet", tmp_path, image="picture")
    config = _config(_image_dataset(path, annotator="endpoint"), tmp_path)
    data = load_data(config.datasets[0], cache_dir=None)
    assert data.image_urls is not None and len(data.image_urls) == 12
    assert all(url.startswith("data:image/png;base64,") for url in data.image_urls)


def _file_dataset(path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "words",
        "kind": "file",
        "path": str(path),
        "text_column": "body",
        "label_column": "kind",
        "annotator": "zero_shot",
        "features": "hashing",
        **extra,
    }


def test_missing_columns_unknown_labels_and_stray_hints_are_named(tmp_path: Path) -> None:
    path = _write(_text_rows(4), "jsonl", tmp_path)

    def load(**extra: Any) -> None:
        load_data(_config(_file_dataset(path, **extra), tmp_path).datasets[0], cache_dir=None)

    with pytest.raises(ValueError, match=r"label column 'category' is not in .*data\.jsonl"):
        load(label_column="category")
    with pytest.raises(
        ValueError, match=r"text column 'text' is not in .*columns: \['body', 'kind'\]"
    ):
        load(text_column="text")
    with pytest.raises(ValueError, match=r"unknown label 'animal' in column 'kind'"):
        load(labels=["fruit", "tool"])
    with pytest.raises(ValueError, match=r"hints name the label 'vehicle'"):
        load(hints={"vehicle": "cars and bikes"})
    with pytest.raises(ValueError, match=r"row 1 of text column 'body' is not a string"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(
            json.dumps({"body": "a pear", "kind": "fruit"})
            + "\n"
            + json.dumps({"body": 3, "kind": "tool"})
            + "\n"
        )
        load_data(_config(_file_dataset(bad), tmp_path).datasets[0], cache_dir=None)
    with pytest.raises(ValueError, match=r"does not exist"):
        read_table(tmp_path / "nothing.parquet")
    with pytest.raises(ValueError, match=r"cannot tell the format"):
        (tmp_path / "data.txt").write_text("x")
        read_table(tmp_path / "data.txt")
    with pytest.raises(ValueError, match=r"exactly one of text_column and image_column"):
        _config(_file_dataset(path, image_column="picture"), tmp_path)
    with pytest.raises(ValueError, match=r"needs a label_column"):
        _config({**_file_dataset(path), "label_column": None}, tmp_path)
    with pytest.raises(ValueError, match=r"annotator must be one of"):
        _config(
            {**_file_dataset(path), "text_column": None, "image_column": "body"}, tmp_path
        )  # zero_shot needs text


def test_missing_image_file_is_named(tmp_path: Path) -> None:
    path = _write(_image_rows(2), "csv", tmp_path, image="picture")
    (tmp_path / "img" / "3.png").unlink()
    config = _config(_image_dataset(path), tmp_path)
    with pytest.raises(ValueError, match=r"row 3 of image column 'picture': cannot read .*3\.png"):
        load_data(config.datasets[0], cache_dir=None)


def test_builtin_hints_come_from_the_config() -> None:
    from act_plugin.bench import load_config

    repo = Path(__file__).resolve().parents[2]
    debian, digits = load_config(repo / "benchmarks" / "act_bench.toml").datasets
    assert list(debian.hints)[:2] == ["games", "science"]
    assert digits.hints["7"] == "the handwritten digit 7"
    bare = config_from_dict(
        {"datasets": [{"name": "d", "kind": "digits", "annotator": "nearest_centroid"}]}
    )
    assert load_data(bare.datasets[0], cache_dir=None).class_hints == ("",) * 10
    with pytest.raises(ValueError, match=r"hints name the label 'ten'"):
        load_data(
            config_from_dict(
                {
                    "datasets": [
                        {
                            "name": "d",
                            "kind": "digits",
                            "annotator": "nearest_centroid",
                            "hints": {"ten": "10"},
                        }
                    ]
                }
            ).datasets[0],
            cache_dir=None,
        )
