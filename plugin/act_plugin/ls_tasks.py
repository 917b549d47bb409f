"""Reading tasks and ACT predictions from Label Studio 1.23.2 (shared by review and sync).

HTTP goes through the SDK's own httpx client (``client._client_wrapper.httpx_client``), so the
SDK's authentication (legacy token or personal access token with refresh) applies, with the
SDK's retries switched off and a retry policy of ours instead: 5xx, 429, timeouts and transport
errors are retried ``len(RETRY_DELAYS)`` times with growing pauses; anything else fails at once.

Task lists always come from the paginated Data Manager list (``GET /api/tasks``), never from the
quick export (which drops predictions); ``fields=all`` adds predictions and annotations.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import httpx
from label_studio_sdk import LabelStudio

__all__ = [
    "META_KEY",
    "RETRY_DELAYS",
    "LabelStudioError",
    "LabelStudioUnavailable",
    "act_prediction",
    "base_url",
    "get_project",
    "list_tasks",
    "model_versions",
    "parse_time",
    "request_json",
    "resolve_model_version",
    "suspicion_of",
]

#: Key of the task ``meta`` that holds the review draw.
META_KEY = "act"
#: Pauses (seconds) before each retry of a request that failed with 5xx/429/timeout/transport.
RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0)
#: Task lists are read in pages of this many tasks.
PAGE_SIZE = 100
_LIST_ATTEMPTS = 3  # re-reads of a task list whose total changed while it was paged through
_RETRYABLE_STATUS = frozenset({408, 429})

ProgressCallback = Callable[[int, int], None]


class LabelStudioError(RuntimeError):
    """Label Studio refused a request (4xx): the message says which and why."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class LabelStudioUnavailable(LabelStudioError):
    """Label Studio did not answer properly (5xx, timeout, connection lost) after retries."""


def base_url(client: LabelStudio) -> str:
    """The Label Studio URL the client talks to."""
    return str(client._client_wrapper.get_base_url()).rstrip("/")


def request_json(
    client: LabelStudio,
    method: str,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    json_body: Any = None,
) -> Any:
    """One API call with retries; the decoded JSON body (None for an empty body)."""
    http = client._client_wrapper.httpx_client
    what = f"{method} /{path.lstrip('/')}"
    for attempt in range(len(RETRY_DELAYS) + 1):
        try:
            response = http.request(
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
                )
            failure = f"HTTP {status} {_detail(response)}"
        if attempt < len(RETRY_DELAYS):
            time.sleep(RETRY_DELAYS[attempt])
    raise LabelStudioUnavailable(
        f"Label Studio at {base_url(client)} failed {what} "
        f"{len(RETRY_DELAYS) + 1} times (last: {failure})"
    )


def _decode(response: httpx.Response, what: str) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise LabelStudioError(
            f"Label Studio answered {what} with something that is not JSON: {response.text[:200]!r}"
        ) from None


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


def get_project(client: LabelStudio, project_id: int) -> dict[str, Any]:
    """The project as a dict (``GET /api/projects/{id}``)."""
    project = request_json(client, "GET", f"api/projects/{int(project_id)}/")
    if not isinstance(project, dict):
        raise LabelStudioError(f"Label Studio returned no project {project_id}")
    return project


def list_tasks(
    client: LabelStudio,
    project_id: int,
    *,
    all_fields: bool = True,
    include: Sequence[str] | None = None,
    task_ids: Sequence[int] | None = None,
    page_size: int | None = None,
    on_page: ProgressCallback | None = None,
) -> list[dict[str, Any]]:
    """Every task of the project (or just ``task_ids``), by id, through ``GET /api/tasks``.

    ``all_fields`` adds predictions and annotations (``fields=all``); ``include`` restricts the
    task fields returned (Label Studio's ``include=id,updated_at,...``). ``on_page(done, total)``
    reports progress. Pages hold ``page_size`` tasks (default :data:`PAGE_SIZE`). A list whose
    total changes while it is paged through is read again.
    """
    query: dict[str, Any] = {"ordering": ["tasks:id"]}
    if task_ids is not None:
        if not task_ids:
            return []
        query["selectedItems"] = {"all": False, "included": sorted({int(t) for t in task_ids})}
    params: dict[str, Any] = {"project": int(project_id), "query": json.dumps(query)}
    if all_fields:
        params["fields"] = "all"
    if include:
        params["include"] = ",".join(include)
    for _ in range(_LIST_ATTEMPTS):
        tasks = _read_pages(client, params, page_size or PAGE_SIZE, on_page)
        if tasks is not None:
            return tasks
    raise LabelStudioUnavailable(
        f"the task list of project {project_id} kept changing while it was read "
        f"({_LIST_ATTEMPTS} attempts); try again when nobody imports or deletes tasks"
    )


def _read_pages(
    client: LabelStudio,
    params: dict[str, Any],
    page_size: int,
    on_page: ProgressCallback | None,
) -> list[dict[str, Any]] | None:
    """All pages; None when the total changed meanwhile (the caller reads again)."""
    found: dict[int, dict[str, Any]] = {}
    expected: int | None = None
    page = 1
    while True:
        body = request_json(
            client, "GET", "api/tasks/", params={**params, "page": page, "page_size": page_size}
        )
        if not isinstance(body, dict) or not isinstance(body.get("tasks"), list):
            raise LabelStudioError(f"unexpected answer to GET /api/tasks: {str(body)[:200]}")
        total = int(body.get("total", 0))
        if expected is None:
            expected = total
        elif total != expected:
            return None
        for task in body["tasks"]:
            found[int(task["id"])] = task
        if on_page:
            on_page(len(found), total)
        if not body["tasks"] or page * page_size >= total:
            break
        page += 1
    if len(found) != expected:
        return None
    return [found[task_id] for task_id in sorted(found)]


def parse_time(value: object) -> datetime:
    """A Label Studio timestamp (ISO 8601, ``Z`` suffix) as an aware datetime; epoch if absent."""
    if not isinstance(value, str) or not value:
        return datetime.min.replace(tzinfo=timezone.utc)
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def model_versions(tasks: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """How many tasks carry at least one prediction of each model_version."""
    counts: Counter[str] = Counter()
    for task in tasks:
        versions = {p.get("model_version") for p in task.get("predictions") or []}
        counts.update(v for v in versions if isinstance(v, str) and v)
    return counts


def resolve_model_version(
    requested: str | None, project_version: str | None, versions: Mapping[str, int]
) -> str:
    """Which model_version marks the ACT predictions; ValueError saying what to do otherwise.

    ``requested`` if given (it must occur); else the project's model_version when predictions
    carry it; else the only model_version present.
    """
    if not versions:
        raise ValueError("no task of this project has a prediction: run `ls-act annotate` first")
    found = ", ".join(f"{v!r} ({n} tasks)" for v, n in sorted(versions.items()))
    if requested:
        if requested not in versions:
            raise ValueError(
                f"no prediction has model_version {requested!r} (found: {found}); run "
                "`ls-act annotate` first or pick one of those"
            )
        return requested
    if project_version and project_version in versions:
        return project_version
    if len(versions) == 1:
        return next(iter(versions))
    raise ValueError(
        f"the project's model_version {project_version!r} matches no prediction and several "
        f"versions exist ({found}): pass the ACT model_version explicitly"
    )


def act_prediction(task: Mapping[str, Any], model_version: str) -> dict[str, Any] | None:
    """The task's newest prediction of ``model_version`` (by created_at, then id), or None."""
    matching = [p for p in task.get("predictions") or [] if p.get("model_version") == model_version]
    if not matching:
        return None
    return max(matching, key=lambda p: (parse_time(p.get("created_at")), p.get("id") or 0))


def suspicion_of(prediction: Mapping[str, Any]) -> float:
    """ε̂ ∈ [0, 1] of an ACT prediction: ``mislabeling`` when positive, else 1 − ``score``.

    Predictions made by the ML backend may leave ``mislabeling`` at 0 and carry only
    ``score = 1 − suspicion``; with neither, the suspicion is 0. Clipped to [0, 1].
    """
    mislabeling = _number(prediction.get("mislabeling"))
    score = _number(prediction.get("score"))
    if mislabeling is not None and mislabeling > 0.0:
        value = mislabeling
    elif score is not None:
        value = 1.0 - score
    else:
        value = 0.0
    return min(1.0, max(0.0, value))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if number == number else None  # NaN → None
