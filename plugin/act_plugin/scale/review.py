"""``ls-act scale review``: draw the review sample from the Parquet and import only it.

The draw is ``ls-act review``'s: π from :func:`act_plugin.act_math.inclusion_probabilities` and
δ from :func:`act_plugin.act_math.draw_review` (through :func:`act_plugin.review.compute_draw`),
over the annotated rows in row order (failed rows are not in the draw, as tasks without an ACT
prediction are not in ``ls-act review``'s). The suspicions are read one part at a time; the draw
itself holds three numbers per row (row, ε̂, then π and δ), never the rows' data.

What is stored, and in what order (each step resumable):

1. ``review/draw.json``: the draw's fields (:data:`act_backend.records.DRAW_FIELDS`); then
   ``review/part-NNNNNN.parquet`` (row, π, δ of each annotated row) per block. The draw is
   deterministic given its seed, so a run killed while writing parts recomputes the same π and
   δ and writes the parts that are missing.
2. The drawn rows (δ = 1) go to Label Studio in row order, sharded into projects of at most
   ``shard_size`` tasks, imported ``chunk_size`` tasks per ``POST /api/projects/{id}/import``,
   each with its ACT prediction (:func:`act_backend.records.encode_prediction`) and its review
   record ``meta["act"]`` (:func:`act_backend.records.review_record`) beside
   ``meta["act_item"]`` (its row). A re-run reads which rows a shard holds and imports the rest.
   An import is sent once; one that got no answer is looked up (:func:`.projects.import_tasks`)
   and only its rows not in Label Studio are sent again, so no row is imported twice. A row
   found twice all the same (tasks imported by hand, or by a run before that rule) is deleted
   down to one task when its shard is read.
"""

from __future__ import annotations

import json
import numbers
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from label_studio_sdk import LabelStudio

from act_backend.domain import MachineLabel
from act_backend.labeling import LabelingSpec, parse_label_config
from act_backend.records import draw_fields, encode_prediction, review_record
from act_plugin.act_math import DEFAULT_BETA, DEFAULT_FLOOR
from act_plugin.labelstudio import Gateway
from act_plugin.review import DrawParams, compute_draw, draw_facts, ensure_suspicious_view
from act_plugin.validation import budget_count

from .annotate import ANNOTATIONS, ScaleError
from .projects import ITEM_KEY, TASK_PAGE_SIZE, find_or_create_project, import_tasks, item_row
from .store import REVIEW_SCHEMA, Store

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_SHARD_SIZE",
    "REVIEW",
    "ImportResult",
    "draw_dataset",
    "draw_params",
    "import_sample",
    "shard_projects",
    "shard_title",
]

REVIEW = "review"
DRAW_FILE = "draw.json"
PROJECTS_FILE = "projects.json"
DEFAULT_SHARD_SIZE = 100_000
DEFAULT_CHUNK_SIZE = 500
_SEED_BITS = 32
_TITLE_LENGTH = 50  # Project.title max_length in Label Studio 1.23
#: ``on_progress(stage, done, total)``: stage "draw" (blocks) or "import" (drawn tasks).
Progress = Callable[[str, int, int], None]


@dataclass
class ImportResult:
    """What an import did, per shard project."""

    draw: dict[str, Any]
    projects: dict[int, int] = field(default_factory=dict)  # shard → project id
    imported: int = 0  # tasks imported by this run
    skipped: int = 0  # drawn tasks already in Label Studio
    duplicates_removed: int = 0


@dataclass
class _Shard:
    """One shard project as the import sees it: the rows it holds and its newest task id."""

    project_id: int
    rows: set[int]
    newest: int = 0


# --------------------------------------------------------------------------------------------
# The draw
# --------------------------------------------------------------------------------------------


def draw_dataset(
    store: Store,
    params: DrawParams,
    *,
    redraw: bool = False,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """The run's draw, with every part written: the stored one (whatever ``params`` say) unless
    ``redraw``, else a new one with ``params`` (their model_version is the run's)."""
    manifest = store.manifest()
    missing = store.missing_parts(ANNOTATIONS)
    if missing:
        raise ScaleError(
            f"{len(missing)} of {len(manifest['blocks'])} blocks are not annotated yet: run "
            "`ls-act scale annotate` again to finish them"
        )
    rows, suspicion = _suspicions(store)
    if store.exists(REVIEW, DRAW_FILE) and not redraw:
        draw = store.read_json(REVIEW, DRAW_FILE)
        pi, delta = compute_draw(suspicion, _params(draw))
    else:
        params = replace(params, model_version=manifest["model_version"])
        _check_budget(params, len(rows))
        pi, delta = compute_draw(suspicion, params)
        draw = draw_facts(params, rows.tolist(), suspicion.tolist(), pi, delta)
        store.write_json(draw, REVIEW, DRAW_FILE)
        for index in range(len(manifest["blocks"])):  # a redraw replaces every part
            if store.has_part(REVIEW, index):
                store.fs.rm(store.path(REVIEW, store.part_name(index)))
    _write_review_parts(store, rows, pi, delta, on_progress)
    return draw


def draw_params(
    budget: int | float,
    rule: str = "thresholded",
    floor: float = DEFAULT_FLOOR,
    beta: float = DEFAULT_BETA,
    seed: int | None = None,
) -> DrawParams:
    """The parameters of a new draw (a random seed when none is given; it is recorded)."""
    return DrawParams(
        rule=rule,
        budget=int(budget) if isinstance(budget, numbers.Integral) else float(budget),
        floor=float(floor),
        beta=float(beta),
        seed=int(seed) if seed is not None else secrets.randbits(_SEED_BITS),
        model_version="",
    )


def _suspicions(store: Store) -> tuple[np.ndarray, np.ndarray]:
    """Rows and ε̂ of every annotated row, in row order (failed rows left out)."""
    rows, suspicion = [], []
    for _, table in store.iter_parts(ANNOTATIONS, ["row", "suspicion", "error_kind"]):
        ok = table.column("error_kind").is_null().to_numpy(zero_copy_only=False)
        rows.append(table.column("row").to_numpy()[ok])
        suspicion.append(table.column("suspicion").to_numpy(zero_copy_only=False)[ok])
    return np.concatenate(rows).astype(np.int64), np.concatenate(suspicion).astype(float)


def _check_budget(params: DrawParams, n_tasks: int) -> None:
    try:
        budget_count(params.budget, n_tasks)
    except ValueError as exc:
        raise ScaleError(f"{n_tasks} annotated rows: {exc}") from None


def _params(draw: Mapping[str, Any]) -> DrawParams:
    return DrawParams(**{k: draw[k] for k in DrawParams.__dataclass_fields__})


def _write_review_parts(
    store: Store,
    rows: np.ndarray,
    pi: np.ndarray,
    delta: np.ndarray,
    on_progress: Progress | None,
) -> None:
    """Every block's (row, π, δ) part that is missing; parts are split by the blocks' rows."""
    import pyarrow as pa

    blocks = store.blocks()
    bounds = np.searchsorted(rows, [b.first_row for b in blocks] + [blocks[-1].first_row + 1e18])
    for block, lo, hi in zip(blocks, bounds[:-1], bounds[1:], strict=True):
        if not store.has_part(REVIEW, block.index):
            columns = {"row": rows[lo:hi], "pi": pi[lo:hi], "delta": delta[lo:hi].astype(np.int8)}
            store.write_part(pa.table(columns, schema=REVIEW_SCHEMA), REVIEW, block.index)
        if on_progress:
            on_progress("draw", block.index + 1, len(blocks))


# --------------------------------------------------------------------------------------------
# The import
# --------------------------------------------------------------------------------------------


def shard_title(prefix: str, draw_id: str, shard: int) -> str:
    """The title of a shard project (how a re-run finds it); at most Label Studio's 50 characters.

    >>> shard_title("ACT review", "0123456789abcdef", 2)
    'ACT review · 01234567 · shard 3'
    """
    suffix = f" · {draw_id[:8]} · shard {shard + 1}"
    return prefix[: _TITLE_LENGTH - len(suffix)] + suffix


def import_sample(
    client: LabelStudio,
    store: Store,
    *,
    title: str = "ACT review",
    shard_size: int = DEFAULT_SHARD_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_progress: Progress | None = None,
) -> ImportResult:
    """Import the drawn rows that Label Studio does not hold yet (see the module docstring)."""
    if shard_size < 1 or chunk_size < 1:
        raise ScaleError("shard size and chunk size must be at least 1")
    gateway = Gateway(client)
    manifest = store.manifest()
    draw = store.read_json(REVIEW, DRAW_FILE)
    spec = parse_label_config(manifest["label_config"], rationale_field=manifest["rationale_field"])
    result = ImportResult(draw=draw)
    projects = shard_projects(store, draw["draw_id"])
    total = _drawn_count(store)
    shard, current, chunk = -1, None, []
    for position, task in enumerate(_drawn_tasks(store, spec, draw)):
        if position // shard_size != shard:
            _flush(gateway, current, chunk, result)
            shard, chunk = position // shard_size, []
            projects[shard] = _shard_project(gateway, store, projects, draw, shard, title, manifest)
            current = _read_shard(gateway, projects[shard], result)
        if task["meta"][ITEM_KEY]["row"] in current.rows:
            result.skipped += 1
        else:
            chunk.append(task)
        if len(chunk) >= chunk_size:
            _flush(gateway, current, chunk, result)
            chunk = []
        if on_progress:
            on_progress("import", position + 1, total)
    _flush(gateway, current, chunk, result)
    for project_id in projects.values():
        gateway.update_project(project_id, model_version=draw["model_version"])
        ensure_suspicious_view(client, project_id)
    result.projects = dict(sorted(projects.items()))
    return result


def _drawn_count(store: Store) -> int:
    return sum(
        int(np.asarray(t.column("delta")).sum()) for _, t in store.iter_parts(REVIEW, ["delta"])
    )


def _drawn_tasks(
    store: Store, spec: LabelingSpec, draw: Mapping[str, Any]
) -> Iterator[dict[str, Any]]:
    """Label Studio tasks for the drawn rows, in row order, one block in memory at a time."""
    for block in store.blocks():
        review = store.read_part(REVIEW, block.index).to_pylist()
        drawn = {r["row"]: r for r in review if r["delta"] == 1}
        if not drawn:
            continue
        for row in store.read_part(ANNOTATIONS, block.index).to_pylist():
            if row["row"] in drawn:
                yield _ls_task(row, drawn[row["row"]], spec, draw)


def _ls_task(
    row: Mapping[str, Any], review: Mapping[str, Any], spec: LabelingSpec, draw: Mapping[str, Any]
) -> dict[str, Any]:
    """One drawn row as a task to import: data, meta (review record, row) and its prediction."""
    record = review_record(
        draw_fields(draw), suspicion=row["suspicion"], pi=review["pi"], delta=True
    )
    return {
        "data": json.loads(row["data"]),
        "meta": {"act": record, ITEM_KEY: {"row": row["row"], "item_id": row["item_id"]}},
        "predictions": [machine_prediction(row, spec)],
    }


def machine_prediction(row: Mapping[str, Any], spec: LabelingSpec) -> dict[str, Any]:
    """The ACT prediction of an annotated row, as the backend encodes it."""
    labels = row["machine_label"] or []
    label = (
        MachineLabel(answer=labels[0] if labels else "")
        if spec.kind == "textarea"
        else MachineLabel(labels=tuple(labels))
    )
    return encode_prediction(
        spec, int(row["item_id"]), label, float(row["suspicion"]), row["rationale"] or "",
        row["model_version"],
    )  # fmt: skip


def shard_projects(store: Store, draw_id: str) -> dict[int, int]:
    """Shard → project id of the draw's review projects, as recorded in the run."""
    if not store.exists(REVIEW, PROJECTS_FILE):
        return {}
    stored = store.read_json(REVIEW, PROJECTS_FILE)
    return {int(k): int(v) for k, v in stored.get(draw_id, {}).items()}


def _shard_project(
    gateway: Gateway,
    store: Store,
    projects: dict[int, int],
    draw: Mapping[str, Any],
    shard: int,
    title: str,
    manifest: Mapping[str, Any],
) -> int:
    """The shard's project: recorded, found by title, or created (and recorded at once)."""
    if shard in projects:
        return projects[shard]
    project_id = find_or_create_project(
        gateway, shard_title(title, draw["draw_id"], shard), manifest["label_config"]
    )
    stored = store.read_json(REVIEW, PROJECTS_FILE) if store.exists(REVIEW, PROJECTS_FILE) else {}
    stored.setdefault(draw["draw_id"], {})[str(shard)] = project_id
    store.write_json(stored, REVIEW, PROJECTS_FILE)
    return project_id


def _read_shard(gateway: Gateway, project_id: int, result: ImportResult) -> _Shard:
    """The rows the project holds and its newest task id; extra tasks of a row are deleted."""
    shard = _Shard(project_id, set())
    extra: list[int] = []
    tasks = gateway.iter_tasks(
        project_id, all_fields=False, include=("id", "meta"), page_size=TASK_PAGE_SIZE
    )
    for task in tasks:
        shard.newest = max(shard.newest, int(task["id"]))
        row = item_row(task)
        if row is None:
            continue
        if row in shard.rows:
            extra.append(int(task["id"]))
        shard.rows.add(row)
    # Deleted only once every page is read: a deletion while paging shifts the later pages.
    for task_id in extra:
        gateway.delete_task(task_id)
    result.duplicates_removed += len(extra)
    return shard


def _flush(
    gateway: Gateway, shard: _Shard | None, chunk: list[dict[str, Any]], result: ImportResult
) -> None:
    """Import the chunk into the shard (each row once); the shard's newest id moves on."""
    if shard is None or not chunk:
        return
    ids = import_tasks(gateway, shard.project_id, chunk, shard.newest)
    shard.newest = max([shard.newest, *ids])
    shard.rows.update(t["meta"][ITEM_KEY]["row"] for t in chunk)
    result.imported += len(ids)
