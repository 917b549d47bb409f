"""Label Studio webhook events, answered at once and recorded in the background.

Label Studio gives webhooks 1 s. The route only enqueues; a worker thread writes the events to
``<cache dir>/webhook-events.sqlite3`` in batches, one transaction per batch (annotation results
kept, so agreement between reviewers and machine labels can be studied later) and keeps counts
per action for GET /health.

Durability: :meth:`WebhookRecorder.close` (called when the server shuts down, SIGTERM included)
writes every event already acknowledged before it returns. A kill -9 loses the events queued
but not yet written: at most one batch in flight plus what arrived since (milliseconds of
traffic at the rates measured in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_STOP = object()
#: Actions whose payload carries a reviewer's annotation of a task.
REVIEW_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED"})
#: Events written per transaction at most; one commit per event would cap the rate near 200/s.
BATCH_SIZE = 500


class WebhookRecorder:
    """Background recorder of webhook payloads; ``submit`` never blocks."""

    def __init__(
        self,
        directory: Path,
        *,
        max_pending: int = 10_000,
        on_event: Callable[[dict[str, Any]], object] | None = None,
    ) -> None:
        """``on_event`` is called in the worker with each event once it is written (the
        backend's kNN critic learns reviewers' labels this way); its failures are logged."""
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "webhook-events.sqlite3"
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._dropped = 0
        self._closed = False
        self._on_event = on_event
        # A daemon thread so a hung disk cannot keep the process alive; close() drains it.
        self._thread = threading.Thread(target=self._run, name="act-webhook", daemon=True)
        self._thread.start()

    def submit(self, payload: dict[str, Any]) -> bool:
        """Queue one event; False (and a warning) when the queue is full or the recorder closed."""
        if self._closed:
            return False
        try:
            self._queue.put_nowait(payload)
            return True
        except queue.Full:
            with self._lock:
                self._dropped += 1
            log.warning("webhook queue full: dropped a %s event", payload.get("action"))
            return False

    def counts(self) -> dict[str, Any]:
        with self._lock:
            return {"recorded": dict(self._counts), "dropped": self._dropped}

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued event is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout: float = 30.0) -> None:
        """Write every queued event, then stop; idempotent. Waits ``timeout`` s at most."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            log.error(
                "webhook recorder: %d events still unwritten at shutdown", self._queue.qsize()
            )

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS events (received REAL, action TEXT, project INTEGER, "
            "task INTEGER, annotation INTEGER, payload TEXT)"
        )
        stopping = False
        while not stopping:
            batch = self._next_batch()
            stopping = batch[-1] is _STOP
            events = [p for p in batch if p is not _STOP]
            try:
                self._write(db, events)
            except Exception:  # a bad batch must not stop the worker: write its events one by one
                self._write_each(db, events)
            try:
                self._notify(events)
            finally:
                for _ in batch:
                    self._queue.task_done()
        db.close()

    def _notify(self, events: list[dict[str, Any]]) -> None:
        if self._on_event is None:
            return
        for event in events:
            try:
                self._on_event(event)
            except Exception:
                log.exception("could not use a %s webhook event", _action(event))

    def _next_batch(self) -> list[Any]:
        """One event (waiting for it), then whatever else is queued, up to BATCH_SIZE."""
        batch = [self._queue.get()]
        while batch[-1] is not _STOP and len(batch) < BATCH_SIZE:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write_each(self, db: sqlite3.Connection, events: list[dict[str, Any]]) -> None:
        for event in events:
            try:
                self._write(db, [event])
            except Exception:
                log.exception("could not record a %s webhook event", _action(event))

    def _write(self, db: sqlite3.Connection, events: list[dict[str, Any]]) -> None:
        """Insert ``events`` in one transaction, then count them."""
        if not events:
            return
        rows = [_row(event) for event in events]
        with db:  # BEGIN … COMMIT, or ROLLBACK on error
            db.execute("BEGIN")
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
        with self._lock:
            self._counts.update(row[1] for row in rows)
        if any(row[1] == "START_TRAINING" for row in rows):
            log.info("START_TRAINING received: ACT needs no backend training; run `ls-act sync`")


def _action(payload: dict[str, Any]) -> str:
    return str(payload.get("action") or "UNKNOWN")


def _row(payload: dict[str, Any]) -> tuple[Any, ...]:
    """The stored columns of one event; the project (it holds its token) is left out."""
    annotation = payload.get("annotation") if isinstance(payload.get("annotation"), dict) else {}
    project = payload.get("project") if isinstance(payload.get("project"), dict) else {}
    kept = {k: v for k, v in payload.items() if k != "project"}
    return (
        time.time(),
        _action(payload),
        project.get("id"),
        annotation.get("task"),
        annotation.get("id"),
        json.dumps(kept, ensure_ascii=False),
    )


def reviewed_task(payload: Any) -> tuple[dict[str, Any], str, Any] | None:
    """(task, the project's label config, the annotation's result) of an annotation event that
    is a reviewer's label (not cancelled, made by a user); None for any other event.

    >>> reviewed_task({"action": "ANNOTATION_CREATED", "task": {"id": 1, "data": {}},
    ...                "project": {"label_config": "<View/>"},
    ...                "annotation": {"result": [], "completed_by": 1}})[1]
    '<View/>'
    """
    if not isinstance(payload, dict) or payload.get("action") not in REVIEW_ACTIONS:
        return None
    task, project, annotation = (payload.get(k) for k in ("task", "project", "annotation"))
    if not (isinstance(task, dict) and isinstance(project, dict) and isinstance(annotation, dict)):
        return None
    config = project.get("label_config")
    if annotation.get("was_cancelled") or annotation.get("completed_by") is None:
        return None
    return (task, config, annotation.get("result")) if isinstance(config, str) else None
