"""Label Studio as a scale run uses it: shard projects, streamed task pages, bulk imports.

All requests go through :meth:`act_plugin.labelstudio.Gateway.request_json` (one retry policy).
A task imported by a scale run carries ``meta["act_item"] = {"row": …, "item_id": …}``, its row
in the run's Parquet: that is how a re-run skips what is imported and how sync joins reviews back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from act_plugin.labelstudio import Gateway

__all__ = [
    "ITEM_KEY",
    "find_or_create_project",
    "import_tasks",
    "item_row",
    "iter_tasks",
]

#: Key of the task ``meta`` that names the task's row in the run's Parquet.
ITEM_KEY = "act_item"
_PAGE_SIZE = 500


def item_row(task: Mapping[str, Any]) -> int | None:
    """The Parquet row a task was imported from, or None for a task the run did not import."""
    meta = task.get("meta")
    item = meta.get(ITEM_KEY) if isinstance(meta, Mapping) else None
    row = item.get("row") if isinstance(item, Mapping) else None
    return row if isinstance(row, int) and not isinstance(row, bool) else None


def iter_tasks(
    gateway: Gateway,
    project_id: int,
    *,
    all_fields: bool,
    include: Sequence[str] | None = None,
    page_size: int = _PAGE_SIZE,
) -> Iterator[dict[str, Any]]:
    """The project's tasks by id, one page in memory at a time (``GET /api/tasks``)."""
    params: dict[str, Any] = {
        "project": int(project_id),
        "query": json.dumps({"ordering": ["tasks:id"]}),
        "page_size": page_size,
    }
    if all_fields:
        params["fields"] = "all"
    if include:
        params["include"] = ",".join(include)
    page, seen = 1, 0
    while True:
        body = gateway.request_json("GET", "api/tasks/", params={**params, "page": page})
        tasks = body.get("tasks") if isinstance(body, dict) else None
        if not tasks:
            return
        yield from tasks
        seen += len(tasks)
        if seen >= int(body.get("total", 0)):
            return
        page += 1


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
