"""One worker thread per loaded model: requests from any thread, served in micro-batches.

``complete`` and ``answer_logprob`` calls from any number of threads queue up; the worker takes
up to ``batch_size`` requests that arrive within ``batch_window`` seconds of the first, groups
the compatible ones (same kind, same decoding options) and runs each group in one padded forward
pass (``decoding``). Weights load on first use, once per process per (model, device): both roles
on one model share it (``acquire`` / ``release``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...domain import TaskError
from ...llm import LLMError, shorten
from ...prompting import Message
from .decoding import Decoder, GenerateJob, ScoreJob
from .loading import Loaded, default_dtype, load_pretrained
from .prompts import Prompt, render_prompt

#: How long the worker waits for more requests to join a batch it has started to collect.
BATCH_WINDOW_SECONDS = 0.002

Job = GenerateJob | ScoreJob
Queued = tuple[Job, Future[Any]]


@dataclass
class BatchStats:
    """What the worker did: requests served and batches (padded model runs) that served them."""

    requests: int = 0
    batches: int = 0
    largest_batch: int = 0


@dataclass
class LocalModel:
    """One model in this process: weights, tokenizer or processor, and the worker that runs them.

    Every model call happens on the worker thread; callers only render prompts and wait.
    """

    path: Path
    device: str
    batch_size: int = 8
    batch_window: float = BATCH_WINDOW_SECONDS
    stats: BatchStats = field(default_factory=BatchStats)

    def __post_init__(self) -> None:
        self.dtype = default_dtype(self.device)
        self.loaded: Loaded | None = None
        self._decoder: Decoder | None = None
        self._users = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[Queued | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._load_error: LLMError | None = None

    @property
    def model(self) -> Any:
        """The transformers model, or None before the first use."""
        return self.loaded.model if self.loaded is not None else None

    def load(self) -> Loaded:
        """Load tokenizer/processor and weights once (thread-safe); later calls return at once."""
        if self.loaded is not None:
            return self.loaded
        with self._lock:
            if self._load_error is not None:  # a broken model fails fast, not once per task
                raise self._load_error
            if self.loaded is None:
                try:
                    loaded = load_pretrained(self.path, self.device, self.dtype)
                except LLMError as exc:
                    self._load_error = exc
                    raise
                self._decoder = Decoder(loaded, self.device, self.dtype)
                self.loaded = loaded  # last: marks the load as done
            return self.loaded

    def render(self, messages: Sequence[Message]) -> Prompt:
        """The prompt text the model sees and its images (on the caller's thread)."""
        return render_prompt(messages, self.load(), self.path)

    def run(self, jobs: Sequence[Job]) -> list[Any]:
        """Queue ``jobs`` for the worker and wait for all their results (in order)."""
        self.load()
        self._start_worker()
        futures: list[Future[Any]] = []
        for job in jobs:
            future: Future[Any] = Future()
            self._queue.put((job, future))
            futures.append(future)
        return [f.result() for f in futures]

    def stop(self) -> None:
        """Stop the worker after the requests already queued (the model stays loaded)."""
        worker = self._worker
        if worker is not None and worker.is_alive():
            self._queue.put(None)
            worker.join(timeout=60)

    def _start_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            return
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._loop, name=f"act-transformers-{self.path.name}", daemon=True
                )
                self._worker.start()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            pending, stop = self._collect(first)
            groups: dict[tuple[Any, ...], list[Queued]] = {}
            for job, future in pending:
                groups.setdefault(job.key(), []).append((job, future))
            for group in groups.values():
                self._serve(group)
            if stop:
                return

    def _collect(self, first: Queued) -> tuple[list[Queued], bool]:
        """``first`` and what joins it within the window, up to ``batch_size``; and whether a
        stop request came."""
        pending = [first]
        deadline = time.monotonic() + self.batch_window
        while len(pending) < self.batch_size:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return pending, True
            pending.append(item)
        return pending, False

    def _serve(self, group: list[Queued]) -> None:
        """Run one batch; if it fails, retry its requests one by one so only the bad one fails."""
        jobs = [job for job, _ in group]
        assert self._decoder is not None  # run() loaded the model before queueing
        try:
            results = self._decoder.run(jobs)
        except Exception as exc:
            if len(group) > 1:
                for one in group:
                    self._serve([one])
                return
            error = exc if isinstance(exc, TaskError) else _engine_error(exc)
            group[0][1].set_exception(error)
            return
        self.stats.requests += len(jobs)
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
        for (_, future), result in zip(group, results, strict=True):
            future.set_result(result)


_MODELS: dict[tuple[str, str], LocalModel] = {}
_MODELS_LOCK = threading.Lock()


def acquire(path: Path, device: str, batch_size: int) -> LocalModel:
    """The process's LocalModel for (path, device), created on first request (not loaded)."""
    with _MODELS_LOCK:
        local = _MODELS.get((str(path), device))
        if local is None:
            local = _MODELS[(str(path), device)] = LocalModel(path, device, batch_size)
        local.batch_size = max(local.batch_size, batch_size)
        local._users += 1
        return local


def release(local: LocalModel) -> None:
    """Give ``local`` back; the last user stops its worker and frees it."""
    with _MODELS_LOCK:
        local._users -= 1
        if local._users > 0:
            return
        _MODELS.pop((str(local.path), local.device), None)
    local.stop()


def _engine_error(exc: Exception) -> LLMError:
    return LLMError("engine_error", f"{type(exc).__name__}: {shorten(str(exc))}")
