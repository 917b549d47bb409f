"""The output directory of a scale run: the system of record at this scale.

Layout (every name deterministic, so a re-run finds what is done)::

    out/manifest.json                   the plan (blocks), label config, model_version, prompt hash
    out/annotations/part-000042.parquet one file per input block (:data:`ANNOTATION_SCHEMA`)
    out/review/draw.json                the draw: its DRAW_FIELDS (act_backend.records)
    out/review/part-000042.parquet      per block: row, pi, delta of every annotated row
    out/review/projects.json            shard → Label Studio project id
    out/train/<format>/part-000042.*    the training set, one file per block and format

Part files are written to a hidden temporary name and renamed when complete, so a part that
exists is whole; a run killed mid-block leaves no part for it and the block is redone.
The output may be a local path or an fsspec URL (``s3://…``, ``gs://…``) that every node reaches.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from .source import Block

__all__ = [
    "ANNOTATION_SCHEMA",
    "MANIFEST",
    "REVIEW_SCHEMA",
    "Store",
    "StoreError",
]

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
#: One row per input row: what the annotator and the critic made of it, or why it failed.
ANNOTATION_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("item_id", pa.int64()),
        ("data", pa.string()),  # the task's data as JSON text
        ("machine_label", pa.list_(pa.string())),  # choices, or [answer] for a TextArea
        ("suspicion", pa.float64()),
        ("rationale", pa.string()),
        ("model_version", pa.string()),
        ("prompt_hash", pa.string()),
        ("llm_calls", pa.int64()),
        ("cached_calls", pa.int64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("error_kind", pa.string()),
        ("error_message", pa.string()),
    ]
)
#: One row per annotated (not failed) row: its inclusion probability π and draw δ.
REVIEW_SCHEMA = pa.schema([("row", pa.int64()), ("pi", pa.float64()), ("delta", pa.int8())])


class StoreError(RuntimeError):
    """The output directory is missing something or belongs to another run."""


class Store:
    """Paths and atomic reads/writes under one output directory (local or fsspec URL)."""

    def __init__(self, url: str) -> None:
        self.url = str(url).rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def exists(self, *parts: str) -> bool:
        return bool(self.fs.exists(self.path(*parts)))

    # ----------------------------------------------------------------------------------------
    # JSON files
    # ----------------------------------------------------------------------------------------

    def read_json(self, *parts: str) -> Any:
        with self.fs.open(self.path(*parts), "rb") as handle:
            return json.loads(handle.read())

    def write_json(self, value: Any, *parts: str) -> None:
        blob = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8")
        self.write_bytes(blob, *parts)

    def write_bytes(self, blob: bytes, *parts: str) -> None:
        """Write to a hidden temporary name, then rename: a reader sees all or nothing."""
        final = self.path(*parts)
        directory, _, name = final.rpartition("/")
        self.fs.makedirs(directory, exist_ok=True)
        temporary = f"{directory}/.tmp-{name}-{uuid.uuid4().hex[:8]}"
        with self.fs.open(temporary, "wb") as handle:
            handle.write(blob)
        self.fs.mv(temporary, final)

    # ----------------------------------------------------------------------------------------
    # The manifest
    # ----------------------------------------------------------------------------------------

    def open_run(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Write the manifest of a new run, or check that the existing one is the same run."""
        wanted = {"version": MANIFEST_VERSION, **manifest}
        if not self.exists(MANIFEST):
            self.write_json(wanted, MANIFEST)
            return wanted
        found = self.read_json(MANIFEST)
        differs = [k for k in sorted(set(wanted) | set(found)) if found.get(k) != wanted.get(k)]
        if differs:
            raise StoreError(
                f"{self.url} holds another run (its {', '.join(differs)} differ): give a new "
                "--output, or the same input and settings to resume it"
            )
        return found

    def manifest(self) -> dict[str, Any]:
        if not self.exists(MANIFEST):
            raise StoreError(f"{self.url} has no {MANIFEST}: run `ls-act scale annotate` first")
        return self.read_json(MANIFEST)

    def blocks(self) -> list[Block]:
        return [Block(**b) for b in self.manifest()["blocks"]]

    # ----------------------------------------------------------------------------------------
    # Part files
    # ----------------------------------------------------------------------------------------

    @staticmethod
    def part_name(index: int, suffix: str = "parquet") -> str:
        return f"part-{index:06d}.{suffix}"

    def has_part(self, stage: str, index: int) -> bool:
        return self.exists(stage, self.part_name(index))

    def write_part(self, table: pa.Table, stage: str, index: int) -> None:
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        self.write_bytes(buffer.getvalue(), stage, self.part_name(index))

    def read_part(self, stage: str, index: int, columns: Sequence[str] | None = None) -> pa.Table:
        path = self.path(stage, self.part_name(index))
        if not self.fs.exists(path):
            raise StoreError(f"{path} is missing: run `ls-act scale annotate` again to finish")
        with self.fs.open(path, "rb") as handle:
            return pq.read_table(handle, columns=list(columns) if columns else None)

    def iter_parts(
        self, stage: str, columns: Sequence[str] | None = None
    ) -> Iterator[tuple[int, pa.Table]]:
        """(block index, table) for every block, in block order; one part in memory at a time."""
        for block in self.blocks():
            yield block.index, self.read_part(stage, block.index, columns)

    def missing_parts(self, stage: str) -> list[int]:
        done = set(self.fs.ls(self.path(stage), detail=False)) if self.exists(stage) else set()
        names = {str(p).rsplit("/", 1)[-1] for p in done}
        return [b.index for b in self.blocks() if self.part_name(b.index) not in names]
