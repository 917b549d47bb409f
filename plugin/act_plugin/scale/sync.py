"""``ls-act scale sync``: join the reviews in Label Studio with the Parquet into a training set.

The rows, their rules and weights are ``ls-act sync``'s (:func:`act_plugin.sync.build_rows`):
each annotated row of the Parquet becomes the task ``ls-act sync`` would have read (its data,
its ACT prediction, its review record ``meta["act"]`` with π and δ from ``review/``, and, for a
drawn row, the annotations of its task in the shard projects), so one row per annotated item
with the same columns and weights w_machine = λ(1 − δ/π), w_human = δ/π. Failed rows (no ACT
prediction) have no row, as in ``ls-act sync``. With ``soft_power`` k > 0 the weights use a
per-row λ_i = λ(1 − p̂_i)^k as ``ls-act sync --soft-lambda`` does, p̂ cross-fitted over the rows
of every block together (a first pass reads the blocks for it), not block by block.

Only the shard projects are read (the drawn tasks, not the whole data set); the annotations kept
are those of the sync's fields. The training set is written per block with the writers of
``ls-act sync`` (:func:`act_plugin.sync.outputs.write_outputs`): ``<out>/<format>/part-NNNNNN``
(``.jsonl``, ``.csv``, ``.parquet``), each replaced atomically; the same Label Studio state gives
byte-identical files, so a sync killed midway is simply run again.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from label_studio_sdk import LabelStudio

from act_backend.labeling import LabelingSpec, parse_label_config
from act_backend.records import draw_fields, review_record
from act_plugin.labelstudio import Gateway
from act_plugin.sync import Problem, build_rows
from act_plugin.sync.fetch import ANNOTATION_FIELDS
from act_plugin.sync.outputs import OUTPUT_NAMES, write_outputs
from act_plugin.sync.rows import wrong_probabilities
from act_plugin.validation import check_lam, check_soft_power

from .annotate import ANNOTATIONS, ScaleError
from .projects import TASK_PAGE_SIZE, item_row
from .review import DRAW_FILE, REVIEW, machine_prediction, shard_projects
from .store import Store

__all__ = ["SCALE_FORMATS", "ScaleSyncResult", "sync_dataset"]

#: The per-block formats (a Hugging Face dataset loads the Parquet parts:
#: ``datasets.load_dataset("parquet", data_dir=<out>/parquet)``).
SCALE_FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet")
_SUFFIXES = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}
#: ``on_progress(stage, done, total)``: stage "read" (tasks of a shard) or "write" (blocks).
Progress = Callable[[str, int, int], None]


@dataclass
class ScaleSyncResult:
    n_rows: int = 0
    n_reviewed: int = 0
    n_in_sample: int = 0
    n_pending: int = 0
    n_failed_rows: int = 0  # rows whose annotation failed: no row
    problems: list[Problem] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)  # format → directory of parts

    def add(self, rows: Sequence[Mapping[str, Any]], problems: Iterable[Problem]) -> None:
        self.n_rows += len(rows)
        self.n_reviewed += sum(bool(r["reviewed"]) for r in rows)
        self.n_in_sample += sum(bool(r["in_sample"]) for r in rows)
        self.n_pending += sum(bool(r["pending"]) for r in rows)
        self.problems.extend(problems)


def sync_dataset(
    client: LabelStudio,
    store: Store,
    out: Path,
    *,
    lam: float = 1.0,
    soft_power: float = 0.0,
    formats: Sequence[str] = SCALE_FORMATS,
    bot_users: Iterable[int] = (),
    on_progress: Progress | None = None,
) -> ScaleSyncResult:
    """Write the training set of the run in ``store`` to ``out`` (see the module docstring)."""
    chosen = _check_formats(formats)
    try:
        lam = check_lam(lam)
        soft_power = check_soft_power(soft_power)
    except ValueError as exc:
        raise ScaleError(str(exc)) from None
    manifest = store.manifest()
    if not store.exists(REVIEW, DRAW_FILE):
        raise ScaleError("no draw yet: run `ls-act scale review` first")
    draw = store.read_json(REVIEW, DRAW_FILE)
    spec = parse_label_config(manifest["label_config"], rationale_field=manifest["rationale_field"])
    projects = [p for _, p in sorted(shard_projects(store, draw["draw_id"]).items())]
    reviews = _annotations_by_row(Gateway(client), projects, on_progress)
    result = ScaleSyncResult()
    blocks = store.blocks()
    model_version = draw["model_version"]
    p_wrong: dict[int, Any] = {}
    if soft_power:
        p_wrong = _wrong_probabilities(store, blocks, spec, draw, reviews, bot_users)
    for block in blocks:
        tasks, failed = _block_tasks(store, block.index, spec, draw, reviews)
        rows, problems = build_rows(
            tasks, spec, model_version=model_version, lam=lam, soft_power=soft_power,
            wrong_probability=p_wrong.get(block.index), bot_users=bot_users,
        )  # fmt: skip
        # Draw-level checks count the tasks of one block against the whole draw: not ours.
        result.add(rows, [p for p in problems if p.task_id is not None])
        result.n_failed_rows += failed
        _write_block(Path(out), block.index, rows, chosen)
        if on_progress:
            on_progress("write", block.index + 1, len(blocks))
    result.paths = {fmt: Path(out) / fmt for fmt in chosen}
    return result


def _wrong_probabilities(
    store: Store,
    blocks: Sequence[Any],
    spec: LabelingSpec,
    draw: Mapping[str, Any],
    reviews: Mapping[int, list[dict[str, Any]]],
    bot_users: Iterable[int],
) -> dict[int, Any]:
    """Block index → p̂ of its rows (``sync.rows.wrong_probabilities`` over every block's rows
    at once), keeping only the columns it reads between the blocks."""
    keep = ("suspicion", "pi", "outside_sample", "delta", "machine_correct")
    columns: list[dict[str, Any]] = []
    sizes: list[tuple[int, int]] = []
    for block in blocks:
        tasks, _ = _block_tasks(store, block.index, spec, draw, reviews)
        rows, _ = build_rows(tasks, spec, model_version=draw["model_version"], bot_users=bot_users)
        sizes.append((block.index, len(rows)))
        columns.extend({k: row[k] for k in keep} for row in rows)
    p = wrong_probabilities(columns)
    out, start = {}, 0
    for index, size in sizes:
        out[index] = p[start : start + size]
        start += size
    return out


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    chosen = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in chosen if f not in SCALE_FORMATS]
    if unknown or not chosen:
        raise ScaleError(
            f"formats must be a non-empty selection of {', '.join(SCALE_FORMATS)}; "
            f"got {list(chosen)!r}"
        )
    return tuple(f for f in SCALE_FORMATS if f in chosen)


def _annotations_by_row(
    gateway: Gateway, projects: Sequence[int], on_progress: Progress | None
) -> dict[int, list[dict[str, Any]]]:
    """Row → its task's annotations (the fields the row rules read), over every shard."""
    found: dict[int, list[dict[str, Any]]] = {}
    for project_id in projects:
        for done, task in enumerate(
            gateway.iter_tasks(project_id, page_size=TASK_PAGE_SIZE), start=1
        ):
            row = item_row(task)
            if row is not None:
                found.setdefault(row, []).extend(
                    {k: a.get(k) for k in ANNOTATION_FIELDS} for a in task.get("annotations") or []
                )
            if on_progress:
                on_progress("read", done, 0)
    return found


def _block_tasks(
    store: Store,
    index: int,
    spec: LabelingSpec,
    draw: Mapping[str, Any],
    reviews: Mapping[int, list[dict[str, Any]]],
) -> tuple[list[dict[str, Any]], int]:
    """The block's annotated rows as the tasks ``ls-act sync`` reads; and its failed rows."""
    sampled = {r["row"]: r for r in store.read_part(REVIEW, index).to_pylist()}
    fields = draw_fields(draw)
    tasks, failed = [], 0
    for row in store.read_part(ANNOTATIONS, index).to_pylist():
        review = sampled.get(row["row"])
        if row["error_kind"] is not None or review is None:
            failed += 1
            continue
        record = review_record(
            fields, suspicion=row["suspicion"], pi=review["pi"], delta=bool(review["delta"])
        )
        tasks.append(
            {
                "id": row["item_id"],
                "data": json.loads(row["data"]),
                "meta": {"act": record},
                "predictions": [machine_prediction(row, spec)],
                "annotations": reviews.get(row["row"], []),
            }
        )
    return tasks, failed


def _write_block(out: Path, index: int, rows: list[dict[str, Any]], formats: Sequence[str]) -> None:
    """The block's part of every format, through the writers of ``ls-act sync``."""
    staging = out / f".tmp-block-{index:06d}-{os.getpid()}"
    try:
        write_outputs(staging, rows, formats, {"block": index})
        for fmt in formats:
            target = out / fmt / Store.part_name(index, _SUFFIXES[fmt])
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / OUTPUT_NAMES[fmt], target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
