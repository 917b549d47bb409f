"""Label Studio as a scale run uses it: shard projects, streamed task pages, bulk imports.

Every request goes through :class:`act_plugin.labelstudio.Gateway` (one retry policy). A write
that cannot be repeated blindly (creating a project, importing tasks) is sent once; when it gets
no answer (timeout, connection lost, 5xx) Label Studio is asked whether it was done (the project
by its title, the tasks by the rows of the tasks added since) and only what is missing is sent
again, so a lost answer never makes a second project or a task twice.

A task imported by a scale run carries ``meta["act_item"] = {"row": …, "item_id": …}``, its row
in the run's Parquet: that is how a re-run skips what is imported and how sync joins reviews back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from act_plugin.labelstudio import Gateway, LabelStudioUnavailable
from act_plugin.labelstudio import gateway as _gateway

__all__ = [
    "ITEM_KEY",
    "TASK_PAGE_SIZE",
    "find_or_create_project",
    "import_tasks",
    "item_row",
]

#: Key of the task ``meta`` that names the task's row in the run's Parquet.
ITEM_KEY = "act_item"
#: Tasks of a shard project are read in pages of this many (:meth:`Gateway.iter_tasks`).
TASK_PAGE_SIZE = 500


def item_row(task: Mapping[str, Any]) -> int | None:
    """The Parquet row a task was imported from, or None for a task the run did not import."""
    meta = task.get("meta")
    item = meta.get(ITEM_KEY) if isinstance(meta, Mapping) else None
    row = item.get("row") if isinstance(item, Mapping) else None
    return row if isinstance(row, int) and not isinstance(row, bool) else None


def _attempts() -> Iterator[int]:
    """Attempt numbers, after the gateway's pauses (none before the first)."""
    for attempt, delay in enumerate((0.0, *_gateway.RETRY_DELAYS)):
        time.sleep(delay)
        yield attempt


def find_or_create_project(gateway: Gateway, title: str, label_config: str) -> int:
    """The project titled ``title`` (a run interrupted after creating it), else a new one."""
    failure: LabelStudioUnavailable | None = None
    for _ in _attempts():
        found = gateway.find_project(title)
        if found is not None:
            return found
        try:
            return gateway.create_project(title, label_config)
        except LabelStudioUnavailable as exc:  # maybe created: looked up again
            failure = exc
    assert failure is not None
    raise failure


def import_tasks(
    gateway: Gateway, project_id: int, tasks: Sequence[Mapping[str, Any]], newest: int
) -> list[int]:
    """Import ``tasks`` (data, meta with their row, predictions) once each; the ids of the
    tasks they became. ``newest`` is the highest task id of the project before: after a
    request that got no answer, the rows among the tasks above it were imported, the rest is
    sent again."""
    pending, ids = list(tasks), []
    failure: LabelStudioUnavailable | None = None
    for attempt in _attempts():
        if attempt:
            landed = _landed(gateway, project_id, newest, pending)
            ids += landed.values()
            pending = [t for t in pending if item_row(t) not in landed]
        if not pending:
            return ids
        try:
            return ids + gateway.import_tasks(project_id, pending)
        except LabelStudioUnavailable as exc:
            failure = exc
    assert failure is not None
    raise failure


def _landed(
    gateway: Gateway, project_id: int, newest: int, tasks: Sequence[Mapping[str, Any]]
) -> dict[int, int]:
    """Row → task id of the ``tasks`` found among the project's tasks above ``newest``."""
    rows = {item_row(t) for t in tasks}
    found = gateway.tasks_after(
        project_id, newest, include=("id", "meta"), page_size=TASK_PAGE_SIZE
    )
    return {row: int(t["id"]) for t in found if (row := item_row(t)) in rows}
