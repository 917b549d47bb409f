"""Fetching a project's tasks for a sync: all of them, or only what changed since the state
saved by the previous sync (see :mod:`act_plugin.sync` for why the fingerprint suffices)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from act_backend.records import draw_record_of
from act_plugin.labelstudio import Gateway, parse_time

__all__ = [
    "ANNOTATION_FIELDS",
    "FINGERPRINT_FIELDS",
    "STATE_FILE",
    "Fetched",
    "draw_in",
    "fetch",
    "load_state",
    "state_of",
]

logger = logging.getLogger(__name__)

STATE_FILE = ".act-sync-state.json"
STATE_VERSION = 1
#: Task fields whose change marks a task for refetching.
FINGERPRINT_FIELDS = (
    "updated_at",
    "total_annotations",
    "cancelled_annotations",
    "total_predictions",
)
_PREDICTION_FIELDS = ("id", "model_version", "score", "mislabeling", "result", "created_at")
#: Annotation fields that the row rules read (all a task record keeps of an annotation).
ANNOTATION_FIELDS = (
    "id", "result", "completed_by", "was_cancelled", "created_at", "updated_at",
    "last_action", "parent_prediction", "lead_time", "updated_by", "import_id",
)  # fmt: skip
#: Changed tasks are fetched in full this many ids per request.
ID_CHUNK = 200

#: ``on_progress(stage, done, total)``; stage "list" (fingerprints) or "fetch" (full tasks).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Fetched:
    records: dict[int, dict[str, Any]]  # task id → compact task record, by id
    fetched: int  # tasks read in full
    deleted: list[int]  # ids of the previous state that are gone
    incremental: bool  # only new and changed tasks were read in full
    draw: dict[str, Any] | None = None  # the draw record the review view names, read each time


def fetch(
    gateway: Gateway,
    project_id: int,
    previous: Mapping[int, dict[str, Any]] | None,
    on_progress: Progress | None,
) -> Fetched:
    """Every task's record: all read in full, or (with ``previous``) only what changed; and
    the draw record of the review view (views are small, and not covered by the state)."""
    fetched = _fetch_tasks(gateway, project_id, previous, on_progress)
    return replace(fetched, draw=named_draw(gateway, project_id))


def named_draw(gateway: Gateway, project_id: int) -> dict[str, Any] | None:
    """The draw record of the project's review view (:func:`draw_record_of`), or None."""
    return draw_in(gateway.list_views(project_id))


def draw_in(views: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The draw record of the review view among ``views``, or None."""
    for view in views:
        record = draw_record_of(view)
        if record is not None:
            return record
    return None


def _fetch_tasks(
    gateway: Gateway,
    project_id: int,
    previous: Mapping[int, dict[str, Any]] | None,
    on_progress: Progress | None,
) -> Fetched:

    def report(stage: str) -> Callable[[int, int], None] | None:
        return (lambda done, total: on_progress(stage, done, total)) if on_progress else None

    if previous is None:
        tasks = gateway.list_tasks(project_id, on_page=report("fetch"))
        return Fetched({int(t["id"]): _compact(t) for t in tasks}, len(tasks), [], False)
    listed = gateway.list_tasks(
        project_id,
        all_fields=False,
        include=("id", *FINGERPRINT_FIELDS),
        page_size=1000,
        on_page=report("list"),
    )
    current = {int(t["id"]): _fingerprint(t) for t in listed}
    changed = [
        i for i, fp in current.items() if i not in previous or _fingerprint(previous[i]) != fp
    ]
    if len(changed) > len(current) // 2:  # cheaper to read everything again
        tasks = gateway.list_tasks(project_id, on_page=report("fetch"))
        records = {int(t["id"]): _compact(t) for t in tasks}
        return Fetched(records, len(tasks), sorted(set(previous) - set(records)), False)
    fresh: list[dict[str, Any]] = []
    for start in range(0, len(changed), ID_CHUNK):  # ids travel in the URL: keep it short
        fresh += gateway.list_tasks(project_id, task_ids=changed[start : start + ID_CHUNK])
        if on_progress:
            on_progress("fetch", min(start + ID_CHUNK, len(changed)), len(changed))
    records = {i: previous[i] for i in current if i not in changed}
    records.update({int(t["id"]): _compact(t) for t in fresh})
    deleted = sorted(set(previous) - set(current))
    return Fetched(dict(sorted(records.items())), len(fresh), deleted, True)


def _fingerprint(task: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(task.get(name) for name in FINGERPRINT_FIELDS)


def _compact(task: Mapping[str, Any]) -> dict[str, Any]:
    """What rows are built from: the task's fingerprint, data, meta, predictions, annotations."""
    record: dict[str, Any] = {name: task.get(name) for name in ("id", *FINGERPRINT_FIELDS)}
    record["data"] = task.get("data") or {}
    record["meta"] = task.get("meta") or {}
    record["predictions"] = [
        {k: p.get(k) for k in _PREDICTION_FIELDS} for p in task.get("predictions") or []
    ]
    record["annotations"] = [
        {k: a.get(k) for k in ANNOTATION_FIELDS} for a in task.get("annotations") or []
    ]
    return record


def _state_key(project: Mapping[str, Any]) -> dict[str, Any]:
    """Identifies the project across URLs (ids repeat on another server, created_at does not)."""
    return {"project_id": project.get("id"), "project_created_at": project.get("created_at")}


def state_of(project: Mapping[str, Any], records: Mapping[int, dict[str, Any]]) -> dict[str, Any]:
    stamps = [r.get("updated_at") for r in records.values() if r.get("updated_at")]
    return {
        "version": STATE_VERSION,
        **_state_key(project),
        "cursor": max(stamps, key=parse_time) if stamps else None,
        "tasks": [records[i] for i in sorted(records)],
    }


def load_state(out_dir: Path, project: Mapping[str, Any]) -> dict[int, dict[str, Any]] | None:
    """Task records of the previous sync of this project, or None (then all is fetched)."""
    path = out_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("version") != STATE_VERSION:
            return None
        if {k: state.get(k) for k in _state_key(project)} != _state_key(project):
            logger.info("%s belongs to another project: fetching every task", path)
            return None
        return {int(t["id"]): t for t in state["tasks"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("ignoring unreadable %s (%s): fetching every task", path, exc)
        return None
