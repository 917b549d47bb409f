"""Label Studio as a scale run uses it: shard projects, streamed task pages, bulk imports.

Tasks are streamed by :meth:`act_plugin.labelstudio.Gateway.iter_tasks`; the other requests go
through :meth:`act_plugin.labelstudio.Gateway.request_json` (one retry policy).
A task imported by a scale run carries ``meta["act_item"] = {"row": …, "item_id": …}``, its row
in the run's Parquet: that is how a re-run skips what is imported and how sync joins reviews back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from act_plugin.labelstudio import Gateway

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


def find_or_create_project(gateway: Gateway, title: str, label_config: str) -> int:
    """The project titled ``title`` (a run interrupted after creating it), else a new one."""
    page = 1
    while True:
        body = gateway.request_json(
            "GET", "api/projects/", params={"page": page, "page_size": 100, "include": "id,title"}
        )
        results = body.get("results", []) if isinstance(body, dict) else body or []
        for project in results:
            if project.get("title") == title:
                return int(project["id"])
        if not isinstance(body, dict) or not body.get("next"):
            break
        page += 1
    created = gateway.request_json(
        "POST", "api/projects/", json_body={"title": title, "label_config": label_config}
    )
    return int(created["id"])


def import_tasks(gateway: Gateway, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> int:
    """Import ``tasks`` (data, meta, predictions) in one request, one transaction; how many."""
    if not tasks:
        return 0
    body = gateway.request_json(
        "POST", f"api/projects/{int(project_id)}/import", json_body=[dict(t) for t in tasks]
    )
    return int(body.get("task_count", len(tasks))) if isinstance(body, dict) else len(tasks)
