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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from label_studio_sdk import LabelStudio

from act_backend.domain import Usage
from act_backend.labeling import LabelingSpec, UnsupportedConfig, parse_label_config
from act_backend.predictor import Credentials, Outcome, Predictor, to_prediction
from act_backend.records import DEFAULT_RATIONALE_FIELD
from act_plugin.labelstudio import (
    Gateway,
    LabelStudioError,
    LabelStudioUnavailable,
    act_prediction,
)

log = logging.getLogger(__name__)

#: Tasks are listed in pages of this many.
PAGE_SIZE = 200


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
    rationale_field: str = DEFAULT_RATIONALE_FIELD,
    limit: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_task: Callable[[Outcome], None] | None = None,
) -> AnnotateResult:
    """Predict and write ACT predictions for every task lacking one of ``model_version``.

    Each written prediction is an ACT prediction (:mod:`act_backend.records`): ``score =
    1 − suspicion``, ``mislabeling = suspicion`` and ``model_version``. Writes go through the
    gateway's retry policy; a write that still fails counts as an error of kind ``ls_write``.
    ``on_start(n)`` and ``on_task(outcome)`` report progress.
    Ctrl-C stops the run cleanly: what was written stays, and a re-run continues.
    """
    started = time.monotonic()
    gateway = Gateway(client)
    spec = _spec(gateway, project_id, rationale_field)
    result = AnnotateResult(model_version=model_version)
    todo = []
    for task in _tasks(gateway, project_id):
        result.n_tasks += 1
        if act_prediction(task, model_version) is not None:
            result.n_skipped += 1
        elif limit is None or len(todo) < limit:
            todo.append(task)
    if on_start:
        on_start(len(todo))
    outcomes = predictor.predict_iter(todo, spec, credentials)
    try:
        for outcome in outcomes:
            _write(gateway, outcome, spec, model_version, result)
            if on_task:
                on_task(outcome)
    except KeyboardInterrupt:
        result.interrupted = True
        outcomes.close()  # cancels what has not started
    result.seconds = time.monotonic() - started
    return result


def _spec(gateway: Gateway, project_id: int, rationale_field: str) -> LabelingSpec:
    try:
        project = gateway.get_project(project_id)
    except LabelStudioError as exc:
        raise AnnotateError(f"cannot read project {project_id}: {_reason(exc)}") from None
    try:
        config = project.get("label_config") or ""
        return parse_label_config(config, rationale_field=rationale_field)
    except UnsupportedConfig as exc:
        raise AnnotateError(f"project {project_id}: {exc}") from None


def _tasks(gateway: Gateway, project_id: int) -> list[dict[str, Any]]:
    """Every task with its predictions."""
    try:
        return gateway.list_tasks(project_id, page_size=PAGE_SIZE)
    except LabelStudioError as exc:
        raise AnnotateError(f"cannot list the tasks of project {project_id}: {exc}") from None


def _write(
    gateway: Gateway,
    outcome: Outcome,
    spec: LabelingSpec,
    model_version: str,
    result: AnnotateResult,
) -> None:
    result.usage = result.usage + outcome.usage
    if outcome.error is not None:
        result.record_error(outcome.error.kind, outcome.task_id, outcome.error.message)
        return
    try:
        gateway.create_prediction(outcome.task_id, to_prediction(outcome, spec, model_version))
    except LabelStudioError as exc:
        result.record_error("ls_write", outcome.task_id, _reason(exc))
    else:
        result.n_written += 1


def _reason(exc: LabelStudioError) -> str:
    """``HTTP 4xx`` for a refusal; what failed how often when Label Studio stayed away."""
    if isinstance(exc, LabelStudioUnavailable) or exc.status_code is None:
        return str(exc)
    return f"HTTP {exc.status_code}"
