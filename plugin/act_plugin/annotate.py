"""Bulk annotation: the backend's annotator + critic run over a whole project from the CLI.

Unlike "Retrieve predictions" (one /predict call that Label Studio abandons after 100 s), this
streams tasks through the pipeline in parallel and writes the predictions in chunks of
:data:`CHUNK_SIZE` through Label Studio's prediction import
(:func:`act_plugin.labelstudio.predictions.write_predictions`: one transaction per chunk, a
refused prediction isolated, a chunk whose answer was lost read back before anything is sent
again). A task that already carries a prediction of the current model_version is skipped, so
an interrupted run (even killed mid-chunk) resumes without duplicates.
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
from act_plugin.labelstudio import Gateway, LabelStudioError, act_prediction
from act_plugin.labelstudio.predictions import Item, refusal_reason, write_predictions

log = logging.getLogger(__name__)

#: Tasks are listed in pages of this many.
PAGE_SIZE = 500
#: Predictions are written this many per request (Label Studio recomputes the counters of every
#: task of the project on each import, so fewer, larger chunks are cheaper; at most 500, the
#: size up to which Label Studio stores a chunk in one transaction).
CHUNK_SIZE = 250


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
    1 − suspicion`` and ``model_version`` (the import stores no ``mislabeling``; the suspicion
    reads back as 1 − score). A prediction Label Studio refuses, or that could not be written
    after retries, counts as an error of kind ``ls_write`` for its task only.
    ``on_start(n)`` and ``on_task(outcome)`` report progress.
    Ctrl-C stops the run cleanly: what was predicted is written, and a re-run continues.
    """
    started = time.monotonic()
    gateway = Gateway(client)
    spec = _spec(gateway, project_id, rationale_field)
    result = AnnotateResult(model_version=model_version)
    todo = _todo(gateway, project_id, model_version, limit, result)
    if on_start:
        on_start(len(todo))
    outcomes = predictor.predict_iter(todo, spec, credentials)
    ready: list[Item] = []
    try:
        for outcome in outcomes:
            _collect(outcome, spec, model_version, result, ready)
            if len(ready) >= CHUNK_SIZE:
                _flush(gateway, project_id, ready, model_version, result)
            if on_task:
                on_task(outcome)
    except KeyboardInterrupt:
        result.interrupted = True
        outcomes.close()  # cancels what has not started
    try:
        _flush(gateway, project_id, ready, model_version, result)
    except KeyboardInterrupt:  # a second Ctrl-C: the re-run finds what was stored
        result.interrupted = True
    result.seconds = time.monotonic() - started
    return result


def _spec(gateway: Gateway, project_id: int, rationale_field: str) -> LabelingSpec:
    try:
        project = gateway.get_project(project_id)
    except LabelStudioError as exc:
        raise AnnotateError(f"cannot read project {project_id}: {refusal_reason(exc)}") from None
    try:
        config = project.get("label_config") or ""
        return parse_label_config(config, rationale_field=rationale_field)
    except UnsupportedConfig as exc:
        raise AnnotateError(f"project {project_id}: {exc}") from None


def _todo(
    gateway: Gateway,
    project_id: int,
    model_version: str,
    limit: int | None,
    result: AnnotateResult,
) -> list[dict[str, Any]]:
    """The tasks lacking a prediction of ``model_version`` (at most ``limit``), counted."""
    try:
        tasks = gateway.list_tasks(project_id, page_size=PAGE_SIZE)
    except LabelStudioError as exc:
        raise AnnotateError(f"cannot list the tasks of project {project_id}: {exc}") from None
    todo = [t for t in tasks if act_prediction(t, model_version) is None]
    result.n_tasks, result.n_skipped = len(tasks), len(tasks) - len(todo)
    return todo if limit is None else todo[:limit]


def _collect(
    outcome: Outcome,
    spec: LabelingSpec,
    model_version: str,
    result: AnnotateResult,
    ready: list[Item],
) -> None:
    """Count the outcome's usage and error, or add its prediction to ``ready``."""
    result.usage = result.usage + outcome.usage
    if outcome.error is not None:
        result.record_error(outcome.error.kind, outcome.task_id, outcome.error.message)
    else:
        ready.append((outcome.task_id, to_prediction(outcome, spec, model_version)))


def _flush(
    gateway: Gateway,
    project_id: int,
    ready: list[Item],
    model_version: str,
    result: AnnotateResult,
) -> None:
    """Write ``ready`` (emptied first: a chunk cut short by Ctrl-C is never sent again)."""
    chunk = ready[:]
    ready.clear()
    failures = write_predictions(gateway, project_id, chunk, model_version)
    result.n_written += len(chunk) - len(failures)
    for task_id, reason in failures.items():
        result.record_error("ls_write", task_id, reason)
