"""The input of a scale run: Parquet, JSONL or a Hugging Face dataset, cut into numbered blocks.

A run is planned once, on the driver, from metadata only (Parquet footers, a line scan of JSONL
files, a dataset's length): a list of :class:`Block`, each a row range of one file. Blocks are
numbered in order (files sorted by name), so the same input always gives the same plan, the same
row numbers and the same generated ids; a worker reads its block itself, wherever it runs.

Each row is one task's data. ``id_column`` (default ``id``) holds the item ids when present (it
must hold integers: Label Studio task ids and the training set's ``task_id`` are integers); when
absent, an item's id is its row number (0-based, over the whole input). The id column is not
part of the task's data.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import fsspec

__all__ = ["FORMATS", "Block", "SourceError", "Task", "detect_format", "plan_blocks", "read_block"]

FORMATS: tuple[str, ...] = ("parquet", "jsonl", "hf")
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_HF_MARKERS = ("dataset_info.json", "state.json")


class SourceError(ValueError):
    """The input cannot be read as planned; the message says why and what to do."""


@dataclass(frozen=True)
class Block:
    """Rows ``[start, start + length)`` of one file; ``first_row`` is the global row number of
    its first row. ``offset`` is the byte offset of that row in a JSONL file (else 0)."""

    index: int
    fmt: str
    path: str
    start: int
    length: int
    first_row: int
    offset: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Task:
    """One row, ready for the predictor: its global row number, item id and data."""

    row: int
    item_id: int
    data: dict[str, Any]


# --------------------------------------------------------------------------------------------
# Planning (driver)
# --------------------------------------------------------------------------------------------


def detect_format(url: str) -> str:
    """``parquet``, ``jsonl`` or ``hf`` from the path (a file, a directory of files, a dataset)."""
    fs, path = fsspec.core.url_to_fs(url)
    if fs.isdir(path):
        if any(fs.exists(f"{path.rstrip('/')}/{m}") for m in _HF_MARKERS):
            return "hf"
        names = [str(p) for p in fs.find(path)]
        if any(n.endswith(".parquet") for n in names):
            return "parquet"
        if any(n.endswith(_JSONL_SUFFIXES) for n in names):
            return "jsonl"
    elif path.endswith(".parquet"):
        return "parquet"
    elif path.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    raise SourceError(
        f"cannot tell the format of {url}: give --format parquet, jsonl or hf "
        "(a .parquet/.jsonl file, a directory of them, or a Hugging Face save_to_disk directory)"
    )


def plan_blocks(url: str, fmt: str, block_size: int) -> list[Block]:
    """The numbered blocks of the input (at most ``block_size`` rows each, never across files)."""
    if block_size < 1:
        raise SourceError(f"block size must be at least 1; got {block_size}")
    if fmt not in FORMATS:
        raise SourceError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    blocks: list[Block] = []
    first_row = 0
    for path, ranges in _file_ranges(url, fmt, block_size):
        for start, length, offset in ranges:
            blocks.append(Block(len(blocks), fmt, path, start, length, first_row, offset))
            first_row += length
    if not blocks:
        raise SourceError(f"{url} holds no rows")
    return blocks


def _file_ranges(
    url: str, fmt: str, block_size: int
) -> Iterator[tuple[str, list[tuple[int, int, int]]]]:
    """(file, [(start, length, byte offset)]) per input file, files in name order."""
    if fmt == "hf":
        n = len(_hf_dataset(url))
        yield url, [(s, min(block_size, n - s), 0) for s in range(0, n, block_size)]
        return
    fs, _ = fsspec.core.url_to_fs(url)
    for path in _files(url, fmt):
        if fmt == "parquet":
            n = _parquet_file(path).metadata.num_rows
            yield path, [(s, min(block_size, n - s), 0) for s in range(0, n, block_size)]
        else:
            yield path, list(_jsonl_ranges(fs, path, block_size))


def _files(url: str, fmt: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(url)
    suffixes = (".parquet",) if fmt == "parquet" else _JSONL_SUFFIXES
    if fs.isdir(path):
        found = sorted(str(p) for p in fs.find(path) if str(p).endswith(suffixes))
    elif fs.exists(path):
        found = [path]
    else:
        found = sorted(str(p) for p in fs.glob(path))
    if not found:
        raise SourceError(f"no {fmt} file found at {url}")
    return [fs.unstrip_protocol(p) for p in found]


def _jsonl_ranges(fs: Any, path: str, block_size: int) -> Iterator[tuple[int, int, int]]:
    """One scan of a JSONL file: (first line, lines, byte offset) per block; blank lines skipped."""
    _, local = fsspec.core.url_to_fs(path)
    start, count, block_offset, position = 0, 0, 0, 0
    with fs.open(local, "rb") as handle:
        for line in handle:
            if line.strip():
                if count == 0:
                    block_offset = position
                count += 1
                if count == block_size:
                    yield start, count, block_offset
                    start, count = start + count, 0
            position += len(line)
    if count:
        yield start, count, block_offset


# --------------------------------------------------------------------------------------------
# Reading a block (worker)
# --------------------------------------------------------------------------------------------


def read_block(block: Block, id_column: str | None) -> list[Task]:
    """The block's rows as tasks (ids from ``id_column`` when present, else row numbers)."""
    rows = _read_rows(block)
    if len(rows) != block.length:
        raise SourceError(
            f"{block.path}: expected {block.length} rows from row {block.start}, read {len(rows)}; "
            "the input changed since the run was planned (start a new --output)"
        )
    return [_task(block.first_row + i, row, id_column) for i, row in enumerate(rows)]


def _read_rows(block: Block) -> list[dict[str, Any]]:
    if block.fmt == "parquet":
        return _parquet_rows(block)
    if block.fmt == "jsonl":
        return _jsonl_rows(block)
    table = _hf_dataset(block.path).with_format("arrow")[block.start : block.start + block.length]
    return table.to_pylist()


def _parquet_rows(block: Block) -> list[dict[str, Any]]:
    """Only the row groups that overlap the block are read."""
    parquet = _parquet_file(block.path)
    groups, first, seen = [], None, 0
    for group in range(parquet.metadata.num_row_groups):
        n = parquet.metadata.row_group(group).num_rows
        if seen + n > block.start and seen < block.start + block.length:
            groups.append(group)
            first = seen if first is None else first
        seen += n
    table = parquet.read_row_groups(groups)
    return table.slice(block.start - (first or 0), block.length).to_pylist()


def _jsonl_rows(block: Block) -> list[dict[str, Any]]:
    fs, local = fsspec.core.url_to_fs(block.path)
    rows: list[dict[str, Any]] = []
    with fs.open(local, "rb") as handle:
        handle.seek(block.offset)
        for number, line in enumerate(handle, start=block.start + 1):
            if len(rows) == block.length:
                break
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise SourceError(f"{block.path}: line {number} is not JSON ({exc})") from None
    return rows


def _task(row: int, values: Any, id_column: str | None) -> Task:
    if not isinstance(values, dict):
        raise SourceError(f"row {row} is not an object: {str(values)[:80]}")
    data = {k: _jsonable(v) for k, v in values.items() if k != id_column}
    if id_column is None or id_column not in values:
        return Task(row, row, data)
    item_id = values[id_column]
    if isinstance(item_id, bool) or not isinstance(item_id, int):
        raise SourceError(
            f"row {row}: the id column {id_column!r} holds {item_id!r}, not an integer; give "
            "--id-column for another column, or --id-column '' to number the rows"
        )
    return Task(row, item_id, data)


def _jsonable(value: Any) -> Any:
    """Dates, decimals and bytes as JSON-able values (Label Studio takes JSON task data)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.time, dt.timedelta, decimal.Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


@functools.lru_cache(maxsize=8)
def _parquet_file(path: str) -> Any:
    import pyarrow.parquet as pq

    fs, local = fsspec.core.url_to_fs(path)
    return pq.ParquetFile(fs.open(local, "rb"))


@functools.lru_cache(maxsize=2)
def _hf_dataset(url: str) -> Any:
    """A ``save_to_disk`` dataset, memory-mapped (local path or fsspec URL)."""
    try:
        import datasets
    except ImportError:
        raise SourceError(
            "a Hugging Face dataset needs the `datasets` package: "
            "pip install 'label-studio-act[hf]'"
        ) from None
    loaded = datasets.load_from_disk(url)
    if isinstance(loaded, datasets.DatasetDict):
        raise SourceError(f"{url} holds splits ({', '.join(loaded)}): give the split's directory")
    return loaded
