"""Bulk annotation: the backend's annotator + critic run over a whole project from the CLI.

Unlike "Retrieve predictions" (one /predict call that Label Studio abandons after 100 s), this
streams tasks through the pipeline in parallel and writes each prediction through the API as
soon as it is ready. A task that already carries a prediction of the current model_version is
skipped, so an interrupted run resumes without duplicates.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from act_backend.domain import Usage
from act_backend.labeling import LabelingSpec, UnsupportedConfig, parse_label_config
from act_backend.predictor import Credentials, Outcome, Predictor, to_prediction

log = logging.getLogger(__name__)

#: Attempts for one Label Studio write before the task counts as failed (kind ``ls_write``).
WRITE_ATTEMPTS = 4


class AnnotateError(RuntimeError):
    """The run cannot start (bad project or config); the message says what to do."""


@dataclass
class AnnotateResult:
    """What a run did: counts, token usage, and errors per kind with one example each."""

    model_version: str
    n_tasks: int = 0
    n_skipped: int = 0
    n_written: int = 0
    usage: Usage = field(default_factory=Usage)
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def n_failed(self) -> int:
        return sum(self.errors.values())

    def record_error(self, kind: str, task_id: Any, message: str) -> None:
        self.errors[kind] += 1
        self.examples.setdefault(kind, f"task {task_id}: {message}")


def annotate_project(
    client: LabelStudio,
    project_id: int,
    predictor: Predictor,
    *,
    model_version: str,
    credentials: Credentials = Credentials(),  # noqa: B008 - frozen, immutable
    rationale_field: str = "act_rationale",
    limit: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_task: Callable[[Outcome], None] | None = None,
) -> AnnotateResult:
    """Predict and write ACT predictions for every task lacking one of ``model_version``.

    Each written prediction carries ``score = 1 − suspicion`` (Label Studio's score column, so
    ascending order is most suspicious first), ``mislabeling = suspicion`` and
    ``model_version``. ``on_start(n)`` and ``on_task(outcome)`` report progress.
    Ctrl-C stops the run cleanly: what was written stays, and a re-run continues.
    """
    started = time.monotonic()
    spec = _spec(client, project_id, rationale_field)
    result = AnnotateResult(model_version=model_version)
    todo = []
    for task in _tasks(client, project_id):
        result.n_tasks += 1
        if any(p.get("model_version") == model_version for p in task.get("predictions") or []):
            result.n_skipped += 1
        elif limit is None or len(todo) < limit:
            todo.append(task)
    if on_start:
        on_start(len(todo))
    outcomes = predictor.predict_iter(todo, spec, credentials)
    try:
        for outcome in outcomes:
            _write(client, outcome, spec, model_version, result)
            if on_task:
                on_task(outcome)
    except KeyboardInterrupt:
        result.interrupted = True
        outcomes.close()  # cancels what has not started
    result.seconds = time.monotonic() - started
    return result


def _spec(client: LabelStudio, project_id: int, rationale_field: str) -> LabelingSpec:
    try:
        project = client.projects.get(id=project_id)
    except ApiError as exc:
        raise AnnotateError(f"cannot read project {project_id}: HTTP {exc.status_code}") from None
    try:
        return parse_label_config(project.label_config or "", rationale_field=rationale_field)
    except UnsupportedConfig as exc:
        raise AnnotateError(f"project {project_id}: {exc}") from None


def _tasks(client: LabelStudio, project_id: int) -> Iterator[dict[str, Any]]:
    """Every task with its predictions, page by page (the SDK pager follows the pages)."""
    pager = client.tasks.list(project=project_id, fields="all", page_size=200)
    for task in pager:
        yield task.model_dump() if hasattr(task, "model_dump") else dict(task)


def _write(
    client: LabelStudio,
    outcome: Outcome,
    spec: LabelingSpec,
    model_version: str,
    result: AnnotateResult,
) -> None:
    result.usage = result.usage + outcome.usage
    if outcome.error is not None:
        result.record_error(outcome.error.kind, outcome.task_id, outcome.error.message)
        return
    prediction = to_prediction(outcome, spec, model_version)
    for attempt in range(WRITE_ATTEMPTS):
        try:
            client.predictions.create(
                task=outcome.task_id,
                result=prediction["result"],
                score=prediction["score"],
                model_version=model_version,
                mislabeling=outcome.suspicion,
            )
            result.n_written += 1
            return
        except ApiError as exc:
            if exc.status_code is not None and exc.status_code < 500:
                result.record_error("ls_write", outcome.task_id, f"HTTP {exc.status_code}")
                return
            reason = f"HTTP {exc.status_code}"
        except Exception as exc:  # connection refused, timeouts: Label Studio may come back
            reason = type(exc).__name__
        time.sleep(min(8.0, 0.5 * 2**attempt))
    result.record_error(
        "ls_write", outcome.task_id, f"gave up after {WRITE_ATTEMPTS} tries: {reason}"
    )
