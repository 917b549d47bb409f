"""Writing many predictions at once through Label Studio's prediction import, one task at a time
only where Label Studio refuses.

``POST /api/projects/{id}/import/predictions`` stores a whole chunk in one transaction (Label
Studio 1.23.2, ``ImportPredictionsAPI``; see docs/label-studio.md), but

- an unknown task id (a task deleted meanwhile) refuses the whole chunk (400): the chunk is
  retried in halves until the refused task is alone, and only that task fails;
- a prediction that fails validation against the label config is dropped silently (the answer's
  ``created`` is smaller): the chunk's tasks are read back and the missing ones are sent one by
  one through ``POST /api/predictions/``, which refuses with a reason (or stores them);
- a request that failed without an answer (timeout, connection lost, 5xx) may have been stored:
  the chunk's tasks are read back and only those still lacking a prediction of the
  model_version are sent again, so nothing is stored twice.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import gateway as _gateway
from .gateway import Gateway, LabelStudioError, LabelStudioUnavailable
from .tasks import act_prediction

__all__ = ["Item", "refusal_reason", "write_predictions"]

#: (task id, prediction with result, score, model_version, ...)
Item = tuple[int, Mapping[str, Any]]


def write_predictions(
    gateway: Gateway, project_id: int, items: Sequence[Item], model_version: str
) -> dict[int, str]:
    """Store every prediction of ``items``; why Label Studio did not store some, by task id."""
    writer = _Writer(gateway, int(project_id), model_version)
    if items:
        writer.chunk(list(items))
    return writer.failures


def refusal_reason(exc: LabelStudioError) -> str:
    """``HTTP 4xx: detail`` for a refusal; what failed how often when Label Studio stayed away."""
    if isinstance(exc, LabelStudioUnavailable) or exc.status_code is None:
        return str(exc)
    detail = str(exc).split(f"HTTP {exc.status_code} ", 1)[-1]
    return f"HTTP {exc.status_code}: {detail}"[:300]


@dataclass
class _Writer:
    gateway: Gateway
    project_id: int
    model_version: str
    failures: dict[int, str] = field(default_factory=dict)

    def chunk(self, items: list[Item]) -> None:
        """One chunk: sent, then retried where no answer came (only what is still missing)."""
        failure: LabelStudioError | None = None
        for delay in (0.0, *_gateway.RETRY_DELAYS):
            if failure is not None:
                time.sleep(delay)
                try:
                    items = self.missing(items)
                except LabelStudioError as exc:
                    failure = exc
                    break
                if not items:
                    return
            try:
                body = [{"task": int(task_id), **p} for task_id, p in items]
                created = self.gateway.import_predictions(self.project_id, body)
            except LabelStudioUnavailable as exc:
                failure = exc
                continue
            except LabelStudioError as exc:
                self.split(items, exc)
                return
            if created != len(items):
                self.resend_dropped(items)
            return
        self.fail(items, refusal_reason(failure) if failure else "not stored")

    def split(self, items: list[Item], refusal: LabelStudioError) -> None:
        """A refused chunk in halves, until the refused predictions are alone."""
        if len(items) == 1:
            self.fail(items, refusal_reason(refusal))
            return
        half = len(items) // 2
        self.chunk(items[:half])
        self.chunk(items[half:])

    def missing(self, items: list[Item]) -> list[Item]:
        """The items whose task has no prediction of the model_version (deleted tasks too)."""
        ids = [task_id for task_id, _ in items]
        tasks = self.gateway.list_tasks(self.project_id, task_ids=ids)
        stored = {int(t["id"]) for t in tasks if act_prediction(t, self.model_version) is not None}
        return [item for item in items if item[0] not in stored]

    def resend_dropped(self, items: list[Item]) -> None:
        """What the import dropped, one per request: Label Studio then says why it refuses."""
        try:
            dropped = self.missing(items)
        except LabelStudioError as exc:
            self.fail(items, f"maybe not stored (could not read it back: {exc})")
            return
        for task_id, prediction in dropped:
            try:
                self.gateway.create_prediction(task_id, prediction)
            except LabelStudioError as exc:
                self.failures[task_id] = refusal_reason(exc)

    def fail(self, items: list[Item], reason: str) -> None:
        for task_id, _ in items:
            self.failures[task_id] = reason
