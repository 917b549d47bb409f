"""The training-set files: JSONL, CSV, Parquet and a Hugging Face dataset, replaced atomically.

The same rows give byte-identical files (the HF dataset too: its fingerprint is the SHA-256 of
the JSONL). Outputs and the sync state are written to temporary names and renamed only when all
were written, so a failure leaves the previous outputs as they were. One sync writes into a
directory at a time (a lock on the directory itself, which the system releases even when the
process is killed); holding it, a sync first removes the temporary files a killed run left.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, so no clean-up either
    fcntl = None  # type: ignore[assignment]

from .fetch import STATE_FILE
from .rows import COLUMNS

__all__ = ["FORMATS", "OUTPUT_NAMES", "REVIEW_FILE", "OutputError", "write_outputs"]

FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet", "hf")
OUTPUT_NAMES: dict[str, str] = {
    "jsonl": "training_set.jsonl",
    "csv": "training_set.csv",
    "parquet": "training_set.parquet",
    "hf": "hf_dataset",
}

#: Beside the outputs: the plan of the review in rounds the rows come from (``null`` without
#: one), which ``ls-act report`` needs for the certificate.
REVIEW_FILE = "review.json"

#: Seconds to wait for another sync writing into the same directory.
LOCK_WAIT = 600.0
#: The temporary names a sync gives its outputs: ``.tmp-<name>-<pid>`` and ``.old-<name>-<pid>``.
_TEMPORARY = re.compile(r"\.(?:tmp|old)-(?P<name>.+)-\d+")


class OutputError(RuntimeError):
    """An output could not be written; the previous outputs are unchanged."""


def write_outputs(
    out_dir: Path,
    rows: list[dict[str, Any]],
    formats: Sequence[str],
    state: Mapping[str, Any],
    plan: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Every output in ``formats``, :data:`REVIEW_FILE` (``plan``) and the sync state, all or
    nothing: each is written to a temporary name and renamed only when all were written. The
    paths, by format."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output directory {out_dir}: {exc}") from None
    with writing(out_dir):
        remove_debris(out_dir)
        return _write_all(out_dir, rows, formats, state, plan)


@contextlib.contextmanager
def writing(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir``'s sync lock (waiting up to ``LOCK_WAIT`` s for another sync)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(out_dir, os.O_RDONLY)  # a lock on the directory: no lock file left behind
    try:
        until = time.monotonic() + LOCK_WAIT
        while not _try_lock(fd):
            if time.monotonic() > until:
                raise OutputError(
                    f"another ls-act sync has been writing to {out_dir} for {LOCK_WAIT:.0f} s; "
                    "try again when it is done"
                )
            time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def remove_debris(out_dir: Path) -> list[str]:
    """Remove the temporary files and folders of earlier syncs that were killed while writing
    (only names a sync gives its own outputs); call it holding the lock (:func:`writing`).
    The names removed."""
    if fcntl is None:  # pragma: no cover - without the lock a live sync's files look alike
        return []
    ours = {*OUTPUT_NAMES.values(), REVIEW_FILE, STATE_FILE}
    removed = []
    for path in out_dir.iterdir():
        match = _TEMPORARY.fullmatch(path.name)
        if match and match["name"] in ours:
            _remove(path)
            removed.append(path.name)
    return sorted(removed)


def _write_all(
    out_dir: Path,
    rows: list[dict[str, Any]],
    formats: Sequence[str],
    state: Mapping[str, Any],
    plan: Mapping[str, Any] | None,
) -> dict[str, Path]:
    """Stage every output under a temporary name, then rename them all (the state last)."""
    jsonl = _jsonl_bytes(rows)
    writers: dict[str, Callable[[Path], object]] = {
        "jsonl": lambda path: path.write_bytes(jsonl),
        "csv": lambda path: path.write_bytes(_csv_bytes(rows)),
        "parquet": lambda path: _write_parquet(rows, path),
        "hf": lambda path: _write_hf(
            rows, path, fingerprint=hashlib.sha256(jsonl).hexdigest()[:16]
        ),
        REVIEW_FILE: lambda path: path.write_text(json.dumps(plan, sort_keys=True), "utf-8"),
        STATE_FILE: lambda path: path.write_text(
            json.dumps(state, sort_keys=True, ensure_ascii=False), "utf-8"
        ),
    }
    staged: list[tuple[Path, Path]] = []  # (temporary, final), the state file last
    for key in (*formats, REVIEW_FILE, STATE_FILE):
        name = OUTPUT_NAMES.get(key, key)
        temporary = out_dir / f".tmp-{name}-{os.getpid()}"
        staged.append((temporary, out_dir / name))
        try:
            _remove(temporary)
            writers[key](temporary)
        except Exception as exc:
            for path, _ in staged:
                _remove(path)
            raise OutputError(
                f"could not write {name} to {out_dir}: {exc}. The previous outputs are unchanged."
            ) from exc
    for temporary, final in staged:
        _replace(temporary, final)
    return {fmt: out_dir / OUTPUT_NAMES[fmt] for fmt in formats}


def _replace(temporary: Path, final: Path) -> None:
    """Move ``temporary`` to ``final`` (a directory replaces the old one almost atomically)."""
    if temporary.is_dir():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        if final.exists():
            os.replace(final, old)
        os.replace(temporary, final)
        _remove(old)
    else:
        os.replace(temporary, final)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _jsonl_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes:
    lines = (json.dumps(r, sort_keys=True, ensure_ascii=False, allow_nan=False) for r in rows)
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_csv_cell(row[c]) for c in COLUMNS])
    return buffer.getvalue().encode("utf-8")


def _arrow_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The rows as a pyarrow Table with a fixed schema.

    ``data`` is a struct when pyarrow can type every task's data alike (the usual case: the
    same keys and value types); otherwise it is the JSON text.
    """
    import pyarrow as pa

    labels = pa.list_(pa.string())
    types = {
        "task_id": pa.int64(),
        "machine_label": labels,
        "human_label": labels,
        "reviewed": pa.bool_(),
        "in_sample": pa.bool_(),
        "outside_sample": pa.bool_(),
        "pending": pa.bool_(),
        "suspicion": pa.float64(),
        "pi": pa.float64(),
        "delta": pa.int64(),
        "weight_machine": pa.float64(),
        "weight_human": pa.float64(),
        "machine_correct": pa.bool_(),
        "model_version": pa.string(),
        "annotation_id": pa.int64(),
        "annotator": pa.int64(),
        "draw_id": pa.string(),
        "round": pa.int64(),
        "pi_rounds": pa.list_(pa.float64()),
    }
    columns = {name: pa.array([r[name] for r in rows], type=t) for name, t in types.items()}
    columns["data"] = _data_column([r["data"] for r in rows])
    return pa.table({name: columns[name] for name in COLUMNS})


def _data_column(values: list[Any]) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        column = pa.array(values)
        if not pa.types.is_struct(column.type) or column.type.num_fields == 0:
            raise ValueError("not a struct with fields")
        pq.write_table(pa.table({"data": column}), io.BytesIO())  # can Parquet store it?
        return column
    except (pa.ArrowException, ValueError, TypeError):
        texts = [json.dumps(v, sort_keys=True, ensure_ascii=False) for v in values]
        return pa.array(texts, type=pa.string())


def _write_parquet(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(_arrow_table(rows), path)


def _write_hf(rows: Sequence[Mapping[str, Any]], path: Path, *, fingerprint: str) -> None:
    """``datasets.Dataset.save_to_disk`` with a fingerprint from the content (reproducible)."""
    import datasets
    from datasets.table import InMemoryTable
    from datasets.utils import logging as hf_logging

    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        dataset = datasets.Dataset(InMemoryTable(_arrow_table(rows)), fingerprint=fingerprint)
        dataset.save_to_disk(str(path))
    finally:
        if bars_were_enabled:
            hf_logging.enable_progress_bar()
