"""How ACT talks to Label Studio 1.23.2: :class:`Gateway`, one HTTP client, one retry policy.

HTTP goes through the SDK's own httpx client (``client._client_wrapper.httpx_client``, the only
use of SDK internals in the project), so the SDK's authentication (legacy token or personal
access token with refresh) applies, with the SDK's retries switched off and a retry policy of
ours instead: 5xx, 408, 429, timeouts and transport errors are retried ``len(RETRY_DELAYS)``
times with growing pauses; anything else fails at once.

Task lists always come from the paginated Data Manager list (``GET /api/tasks``), never from the
quick export (which drops predictions); ``fields=all`` adds predictions and annotations.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx
from label_studio_sdk import LabelStudio

__all__ = [
    "PAGE_SIZE",
    "RETRY_DELAYS",
    "Gateway",
    "LabelStudioError",
    "LabelStudioUnavailable",
]

#: Pauses (seconds) before each retry of a request that failed with 5xx/408/429/timeout/transport.
RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0)
#: Task lists are read in pages of this many tasks (unless a caller asks for another size).
PAGE_SIZE = 100
_LIST_ATTEMPTS = 3  # re-reads of a task list whose total changed while it was paged through
_RETRYABLE_STATUS = frozenset({408, 429})

#: ``on_page(done, total)``: tasks read so far and the list's total.
PageCallback = Callable[[int, int], None]


class LabelStudioError(RuntimeError):
    """Label Studio refused a request (4xx): the message says which and why.

    ``body`` is Label Studio's decoded answer (a dict with ``detail``/``validation_errors``
    as a rule), None when there was none.
    """

    def __init__(self, message: str, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class LabelStudioUnavailable(LabelStudioError):
    """Label Studio did not answer properly (5xx, timeout, connection lost) after retries."""


class Gateway:
    """Label Studio's REST API as ACT uses it: projects, tasks, predictions, views, ML backends."""

    def __init__(self, client: LabelStudio) -> None:
        wrapper = client._client_wrapper
        self._http = wrapper.httpx_client
        self.base_url = str(wrapper.get_base_url()).rstrip("/")

    # ----------------------------------------------------------------------------------------
    # One request
    # ----------------------------------------------------------------------------------------

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        retry: bool = True,
    ) -> Any:
        """One API call with retries; the decoded JSON body (None for an empty body).

        ``retry=False`` makes one attempt only: for a write that must not be repeated blindly.
        """
        what = f"{method} /{path.lstrip('/')}"
        attempts = len(RETRY_DELAYS) + 1 if retry else 1
        for attempt in range(attempts):
            try:
                response = self._http.request(
                    path,
                    method=method,
                    params=dict(params) if params else None,
                    json=json_body,
                    request_options={"max_retries": 0},
                )
            except httpx.TransportError as exc:  # timeouts, refused or dropped connections
                failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                status = response.status_code
                if status < 400:
                    return _decode(response, what)
                if status < 500 and status not in _RETRYABLE_STATUS:
                    raise LabelStudioError(
                        f"Label Studio refused {what}: HTTP {status} {_detail(response)}",
                        status_code=status,
                        body=_body(response),
                    )
                failure = f"HTTP {status} {_detail(response)}"
            if attempt < attempts - 1:
                time.sleep(RETRY_DELAYS[attempt])
        raise LabelStudioUnavailable(
            f"Label Studio at {self.base_url} failed {what} {_times(attempts)} (last: {failure})"
        )

    # ----------------------------------------------------------------------------------------
    # Projects
    # ----------------------------------------------------------------------------------------

    def get_project(self, project_id: int) -> dict[str, Any]:
        """The project as a dict (``GET /api/projects/{id}/``)."""
        project = self.request_json("GET", f"api/projects/{int(project_id)}/")
        if not isinstance(project, dict):
            raise LabelStudioError(f"Label Studio returned no project {project_id}")
        return project

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        """PATCH the project's ``fields``; the project as Label Studio now has it."""
        return self.request_json("PATCH", f"api/projects/{int(project_id)}/", json_body=fields)

    # ----------------------------------------------------------------------------------------
    # Tasks and predictions
    # ----------------------------------------------------------------------------------------

    def list_tasks(
        self,
        project_id: int,
        *,
        all_fields: bool = True,
        include: Sequence[str] | None = None,
        task_ids: Sequence[int] | None = None,
        page_size: int | None = None,
        on_page: PageCallback | None = None,
    ) -> list[dict[str, Any]]:
        """Every task of the project (or just ``task_ids``), by id, through ``GET /api/tasks``.

        ``all_fields`` adds predictions and annotations (``fields=all``); ``include`` restricts
        the task fields returned (Label Studio's ``include=id,updated_at,...``). Pages hold
        ``page_size`` tasks (default :data:`PAGE_SIZE`). A list whose total changes while it is
        paged through is read again.
        """
        if task_ids is not None and not task_ids:
            return []
        params = _task_params(project_id, all_fields, include, task_ids)
        for _ in range(_LIST_ATTEMPTS):
            tasks = self._read_pages(params, page_size or PAGE_SIZE, on_page)
            if tasks is not None:
                return tasks
        raise LabelStudioUnavailable(
            f"the task list of project {project_id} kept changing while it was read "
            f"({_LIST_ATTEMPTS} attempts); try again when nobody imports or deletes tasks"
        )

    def _read_pages(
        self, params: dict[str, Any], page_size: int, on_page: PageCallback | None
    ) -> list[dict[str, Any]] | None:
        """All pages; None when the total changed meanwhile (the caller reads again)."""
        found: dict[int, dict[str, Any]] = {}
        expected: int | None = None
        for tasks, total in self._task_pages(params, page_size):
            if expected is None:
                expected = total
            elif total != expected:
                return None
            for task in tasks:
                found[int(task["id"])] = task
            if on_page:
                on_page(len(found), total)
        if len(found) != expected:
            return None
        return [found[task_id] for task_id in sorted(found)]

    def iter_tasks(
        self,
        project_id: int,
        *,
        all_fields: bool = True,
        include: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The project's tasks by id, one page in memory at a time (as :meth:`list_tasks` reads
        them, but streamed: a list that changes meanwhile is not read again)."""
        params = _task_params(project_id, all_fields, include, None)
        for tasks, _ in self._task_pages(params, page_size or PAGE_SIZE):
            yield from tasks

    def _task_pages(
        self, params: dict[str, Any], page_size: int
    ) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """``GET /api/tasks`` page by page: each page's tasks and the list's total."""
        page = 1
        while True:
            body = self.request_json(
                "GET", "api/tasks/", params={**params, "page": page, "page_size": page_size}
            )
            if not isinstance(body, dict) or not isinstance(body.get("tasks"), list):
                raise LabelStudioError(f"unexpected answer to GET /api/tasks: {str(body)[:200]}")
            total = int(body.get("total", 0))
            yield body["tasks"], total
            if not body["tasks"] or page * page_size >= total:
                return
            page += 1

    def update_task_meta(self, task_id: int, meta: Mapping[str, Any]) -> None:
        """Replace the task's ``meta`` (``PATCH /api/tasks/{id}/``)."""
        self.request_json("PATCH", f"api/tasks/{int(task_id)}/", json_body={"meta": dict(meta)})

    def create_prediction(self, task_id: int, prediction: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``prediction`` (result, score, model_version, ...) on the task."""
        body = {"task": int(task_id), **prediction}
        return self.request_json("POST", "api/predictions/", json_body=body)

    def import_predictions(self, project_id: int, predictions: Sequence[Mapping[str, Any]]) -> int:
        """Store many predictions (each with its ``task``) in one request; how many were stored.

        ``POST /api/projects/{id}/import/predictions`` (see docs/label-studio.md): one attempt
        only, since a request that failed without an answer may have been stored.
        """
        body = self.request_json(
            "POST",
            f"api/projects/{int(project_id)}/import/predictions",
            json_body=[dict(p) for p in predictions],
            retry=False,
        )
        created = body.get("created") if isinstance(body, dict) else None
        if not isinstance(created, int):
            raise LabelStudioError(f"unexpected answer to the prediction import: {str(body)[:200]}")
        return created

    # ----------------------------------------------------------------------------------------
    # Bulk runs (ls-act scale): projects by title, task imports and deletions
    # ----------------------------------------------------------------------------------------

    def find_project(self, title: str) -> int | None:
        """The id of the first project titled ``title`` (``GET /api/projects/``, page by page),
        None when there is none."""
        page = 1
        while True:
            params = {"page": page, "page_size": 100, "include": "id,title"}
            body = self.request_json("GET", "api/projects/", params=params)
            results = body.get("results", []) if isinstance(body, dict) else body or []
            for project in results:
                if project.get("title") == title:
                    return int(project["id"])
            if not isinstance(body, dict) or not body.get("next"):
                return None
            page += 1

    def create_project(self, title: str, label_config: str) -> int:
        """A new project; its id. One attempt only: a request that got no answer may have
        created it (look it up with :meth:`find_project`)."""
        body = {"title": title, "label_config": label_config}
        created = self.request_json("POST", "api/projects/", json_body=body, retry=False)
        if not isinstance(created, dict) or "id" not in created:
            raise LabelStudioError(f"unexpected answer to POST /api/projects: {str(created)[:200]}")
        return int(created["id"])

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """Import ``tasks`` (data, meta, predictions) in one request, one transaction; the new
        tasks' ids. One attempt only: a request that got no answer may have been imported
        (look for it with :meth:`tasks_after`)."""
        body = self.request_json(
            "POST",
            f"api/projects/{int(project_id)}/import",
            params={"return_task_ids": "true"},
            json_body=[dict(t) for t in tasks],
            retry=False,
        )
        ids = body.get("task_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or len(ids) != len(tasks):
            raise LabelStudioError(f"unexpected answer to the task import: {str(body)[:200]}")
        return [int(task_id) for task_id in ids]

    def tasks_after(
        self,
        project_id: int,
        task_id: int,
        *,
        include: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The project's tasks with an id above ``task_id``, by id, streamed (without
        predictions and annotations): what an import since ``task_id`` was the newest added."""
        params = _task_params(project_id, False, include, None)
        query = json.loads(params["query"])
        query["filters"] = {
            "conjunction": "and",
            "items": [
                {"filter": "filter:tasks:id", "operator": "greater", "type": "Number",
                 "value": int(task_id)},
            ],
        }  # fmt: skip
        params["query"] = json.dumps(query)
        for tasks, _ in self._task_pages(params, page_size or PAGE_SIZE):
            yield from tasks

    def delete_task(self, task_id: int) -> None:
        """Delete the task (``DELETE /api/tasks/{id}/``); a task already gone is no error (a
        retried deletion whose first attempt was done)."""
        try:
            self.request_json("DELETE", f"api/tasks/{int(task_id)}/")
        except LabelStudioError as exc:
            if exc.status_code != 404:
                raise

    # ----------------------------------------------------------------------------------------
    # Data Manager views
    # ----------------------------------------------------------------------------------------

    def list_views(self, project_id: int) -> list[dict[str, Any]]:
        """The project's Data Manager views (tabs)."""
        views = self.request_json("GET", "api/dm/views/", params={"project": int(project_id)})
        return [v for v in views or [] if isinstance(v, dict)]

    def create_view(
        self, project_id: int, data: Mapping[str, Any], selected_ids: Sequence[int] = ()
    ) -> int:
        """A new view with ``data`` (title, ordering, filters, ...) showing ``selected_ids``
        only, when given; its id."""
        body: dict[str, Any] = {"project": int(project_id), "data": dict(data)}
        if selected_ids:
            body["selected_items"] = {"all": False, "included": sorted(selected_ids)}
        return int(self.request_json("POST", "api/dm/views/", json_body=body)["id"])

    def delete_view(self, view_id: int) -> None:
        self.request_json("DELETE", f"api/dm/views/{int(view_id)}/")

    # ----------------------------------------------------------------------------------------
    # ML backends
    # ----------------------------------------------------------------------------------------

    def list_ml_backends(self, project_id: int) -> list[dict[str, Any]]:
        """The ML backends connected to the project."""
        backends = self.request_json("GET", "api/ml/", params={"project": int(project_id)})
        return [b for b in backends or [] if isinstance(b, dict)]

    def create_ml_backend(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Connect an ML backend (Label Studio calls its /health and /setup meanwhile)."""
        return self.request_json("POST", "api/ml/", json_body=dict(fields))

    def update_ml_backend(self, backend_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH an ML backend (Label Studio calls its /health and /setup again)."""
        return self.request_json("PATCH", f"api/ml/{int(backend_id)}", json_body=dict(fields))


def _task_params(
    project_id: int,
    all_fields: bool,
    include: Sequence[str] | None,
    task_ids: Sequence[int] | None,
) -> dict[str, Any]:
    """Query parameters of ``GET /api/tasks`` (ordered by id; ``task_ids`` only, if given)."""
    query: dict[str, Any] = {"ordering": ["tasks:id"]}
    if task_ids is not None:
        query["selectedItems"] = {"all": False, "included": sorted({int(t) for t in task_ids})}
    params: dict[str, Any] = {"project": int(project_id), "query": json.dumps(query)}
    if all_fields:
        params["fields"] = "all"
    if include:
        params["include"] = ",".join(include)
    return params


def _times(attempts: int) -> str:
    return "once" if attempts == 1 else f"{attempts} times"


def _decode(response: httpx.Response, what: str) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise LabelStudioError(
            f"Label Studio answered {what} with something that is not JSON: {response.text[:200]!r}"
        ) from None


def _body(response: httpx.Response) -> Any:
    """The decoded answer, its text when it is not JSON, None when empty."""
    try:
        return response.json()
    except ValueError:
        return response.text or None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        for key in ("detail", "validation_errors", "message"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:300]
