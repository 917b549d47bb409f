"""Label Studio webhook events, answered at once and recorded in the background.

Label Studio gives webhooks 1 s. The route only enqueues; a worker thread writes each event to
``<cache dir>/webhook-events.sqlite3`` (annotation results kept, so agreement between reviewers
and machine labels can be studied later) and keeps counts per action for GET /health.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_STOP = object()


class WebhookRecorder:
    """Background recorder of webhook payloads; ``submit`` never blocks."""

    def __init__(self, directory: Path, *, max_pending: int = 10_000) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "webhook-events.sqlite3"
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="act-webhook", daemon=True)
        self._thread.start()

    def submit(self, payload: dict[str, Any]) -> bool:
        """Queue one event; False (and a warning) when the queue is full."""
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

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS events (received REAL, action TEXT, project INTEGER, "
            "task INTEGER, annotation INTEGER, payload TEXT)"
        )
        while True:
            payload = self._queue.get()
            try:
                if payload is _STOP:
                    break
                self._write(db, payload)
            except Exception:  # a bad event must not stop the worker
                log.exception("could not record a webhook event")
            finally:
                self._queue.task_done()
        db.close()

    def _write(self, db: sqlite3.Connection, payload: dict[str, Any]) -> None:
        action = str(payload.get("action") or "UNKNOWN")
        annotation = (
            payload.get("annotation") if isinstance(payload.get("annotation"), dict) else {}
        )
        project = payload.get("project") if isinstance(payload.get("project"), dict) else {}
        kept = {k: v for k, v in payload.items() if k != "project"}  # project holds its token
        db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                action,
                project.get("id"),
                annotation.get("task"),
                annotation.get("id"),
                json.dumps(kept, ensure_ascii=False),
            ),
        )
        with self._lock:
            self._counts[action] += 1
        if action == "START_TRAINING":
            log.info("START_TRAINING received: ACT needs no backend training; run `ls-act sync`")
