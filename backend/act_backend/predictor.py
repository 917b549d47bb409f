"""A batch of Label Studio tasks → one outcome per task: machine label, suspicion, rationale.

Data flows one way per task: task → item (texts, fetched media) → annotator → critic → outcome.
Tasks run in parallel on a pool bounded by ``concurrency``; a task that fails yields an outcome
with an error (and no prediction), never a failed batch or a made-up label. A batch may have a
deadline: tasks not finished by then yield an error of kind ``deadline``, and what they still
compute afterwards reaches the answer cache, never the batch's answer.
"""

from __future__ import annotations

import html
import logging
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, TypeVar

from .cache import ResultCache
from .domain import Critique, Item, MachineLabel, TaskError, Usage
from .engines import Annotator, BatchCritic, Critic, make_annotator, make_critic
from .labeling import LabelingSpec
from .media import MediaError, MediaFetcher
from .records import encode_prediction
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
DEADLINE_KIND = "deadline"
DEADLINE_MESSAGE = (
    "not finished before the /predict deadline (ACT_PREDICT_DEADLINE, kept below Label "
    "Studio's ML_TIMEOUT_PREDICT); retrieve predictions again: answers that arrive later are "
    "cached"
)


@dataclass(frozen=True)
class Outcome:
    """What became of one task. ``label`` and ``suspicion`` are None when ``error`` is set."""

    task_id: int | None
    label: MachineLabel | None = None
    suspicion: float | None = None
    rationale: str = ""
    error: TaskError | None = None
    usage: Usage = field(default_factory=Usage)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Credentials:
    """Where task media relative to Label Studio live, as /setup told us (may be unknown)."""

    label_studio_url: str | None = None
    token: str | None = None

    def __repr__(self) -> str:  # never show the token
        return f"Credentials(label_studio_url={self.label_studio_url!r}, token=***)"


class Stats:
    """Thread-safe running totals, shown on GET /health."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tasks = 0
        self.errors: Counter[str] = Counter()
        self.usage = Usage()

    def record(self, outcome: Outcome) -> None:
        with self._lock:
            self.tasks += 1
            if outcome.error is not None:
                self.errors[outcome.error.kind] += 1
            self.usage = self.usage + outcome.usage

    def spent(self, usage: Usage) -> None:
        """LLM calls of a task whose outcome came too late to be delivered."""
        with self._lock:
            self.usage = self.usage + usage

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "tasks": self.tasks,
                "errors": dict(self.errors),
                "llm": self.usage.as_dict(),
            }


class Predictor:
    """Runs annotator and critic over batches of tasks, ``concurrency`` tasks at a time."""

    def __init__(
        self,
        annotator: Annotator,
        critic: Critic | BatchCritic,
        fetcher: MediaFetcher,
        *,
        concurrency: int = 32,
    ) -> None:
        self.annotator = annotator
        self.critic = critic
        self.fetcher = fetcher
        self.stats = Stats()
        # One pool for the process: concurrent /predict calls share the bound on LLM calls.
        self.concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="act-task")

    def check(self, spec: LabelingSpec) -> None:
        """Raise TaskError when an engine can never serve this config (e.g. images, offline)."""
        for engine in (self.annotator, self.critic):
            check = getattr(engine, "check", None)
            if check is not None:
                check(spec)

    def predict(
        self,
        tasks: Sequence[Any],
        spec: LabelingSpec,
        credentials: Credentials = Credentials(),
        *,
        deadline: float | None = None,
    ) -> list[Outcome]:
        """One outcome per task, in the order given.

        ``deadline`` (a ``time.monotonic()`` instant) bounds the wait: a task not finished by
        then gets a ``deadline`` error; one not started yet never starts.
        """
        started = time.perf_counter()
        if isinstance(self.critic, BatchCritic):
            outcomes = self._predict_batch_critic(tasks, spec, credentials, deadline)
        else:
            futures = [self._pool.submit(self._one, t, spec, credentials) for t in tasks]
            outcomes = self._collect(tasks, futures, deadline)
        for outcome in outcomes:
            self.stats.record(outcome)
        self._log_batch(outcomes, time.perf_counter() - started)
        return outcomes

    def predict_iter(
        self,
        tasks: Iterable[Any],
        spec: LabelingSpec,
        credentials: Credentials = Credentials(),
        *,
        window: int | None = None,
    ) -> Iterator[Outcome]:
        """Outcomes as they complete (any order), keeping at most ``window`` tasks in flight.

        For bulk runs over whole projects: memory stays bounded, there is no deadline, and a
        consumer that stops early (Ctrl-C) leaves no more than ``window`` tasks started. A
        batch critic needs the whole batch, so with one the outcomes come after all tasks are
        annotated.
        """
        if isinstance(self.critic, BatchCritic):
            yield from self._delivered(self._predict_batch_critic(list(tasks), spec, credentials))
            return
        window = window or 4 * self.concurrency
        pending: set[Future[Outcome]] = set()
        # Futures report themselves here when done: waiting costs O(1) per completion, where
        # concurrent.futures.wait over the pending set cost O(window) (46% of a bulk run's
        # main-thread time, docs/benchmarks.md "scale").
        finished: queue.SimpleQueue[Future[Outcome]] = queue.SimpleQueue()

        def settle() -> Iterator[Outcome]:
            future = finished.get()
            pending.discard(future)
            yield from self._delivered([future.result()])

        try:
            for task in tasks:
                future = self._pool.submit(self._one, task, spec, credentials)
                pending.add(future)
                future.add_done_callback(finished.put)
                while len(pending) >= window:
                    yield from settle()
            while pending:
                yield from settle()
        finally:
            for future in pending:
                future.cancel()

    def learn(self, task: Any, spec: LabelingSpec, labels: Sequence[str]) -> bool:
        """Give the critic a reviewer's labels of a task when it learns from reviews (the
        ``knn`` critic); configs with images are skipped (their media would be fetched for a
        critic that reads text only). Whether the critic took it."""
        learn = getattr(self.critic, "learn", None)
        if learn is None or any(inp.tag == "Image" for inp in spec.inputs):
            return False
        item = build_item(task, spec, self.fetcher, Credentials())
        return bool(learn([item], spec, [MachineLabel(labels=tuple(labels))]))

    def _delivered(self, outcomes: Iterable[Outcome]) -> Iterator[Outcome]:
        for outcome in outcomes:
            self.stats.record(outcome)
            yield outcome

    def _collect(
        self, tasks: Sequence[Any], futures: list[Future[T]], deadline: float | None
    ) -> list[T | Outcome]:
        """The futures' results in order, a ``deadline`` outcome for the tasks not done by then:
        these are cancelled if not started, else left to finish (their calls still count in the
        stats)."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        done, late = wait(futures, timeout=timeout)
        for future in late:
            if not future.cancel():
                future.add_done_callback(self._count_late)
        return [f.result() if f in done else _late(t) for t, f in zip(tasks, futures, strict=True)]

    def _count_late(self, future: Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        result = future.result()
        self.stats.spent(result.usage if isinstance(result, Outcome) else result[2])

    def _log_batch(self, outcomes: Sequence[Outcome], seconds: float) -> None:
        failed = sum(not o.ok for o in outcomes)
        late = sum(o.error is not None and o.error.kind == DEADLINE_KIND for o in outcomes)
        log.info("predicted %d tasks in %.2fs (%d failed)", len(outcomes), seconds, failed)
        if late:
            log.warning("deadline: %d of %d tasks not finished in time", late, len(outcomes))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _one(self, task: Any, spec: LabelingSpec, credentials: Credentials) -> Outcome:
        annotated = self._annotate(task, spec, credentials)
        if isinstance(annotated, Outcome):
            return annotated
        item, label, usage = annotated
        return self._guarded(
            item.task_id,
            lambda: self._finish(item, label, usage, self.critic.criticize(item, spec, label)),  # type: ignore[union-attr]
            spent=usage,
        )

    def _predict_batch_critic(
        self,
        tasks: Sequence[Any],
        spec: LabelingSpec,
        credentials: Credentials,
        deadline: float | None = None,
    ) -> list[Outcome]:
        """Annotate in parallel (up to ``deadline``), then criticize the annotated in one go."""
        futures = [self._pool.submit(self._annotate, t, spec, credentials) for t in tasks]
        annotated = self._collect(tasks, futures, deadline)
        ready = [a for a in annotated if not isinstance(a, Outcome)]
        verdicts = self.critic.criticize_batch(  # type: ignore[union-attr]
            [a[0] for a in ready], spec, [a[1] for a in ready]
        )
        by_item = {id(a): v for a, v in zip(ready, verdicts, strict=True)}
        outcomes = []
        for a in annotated:
            if isinstance(a, Outcome):
                outcomes.append(a)
                continue
            item, label, usage = a
            verdict = by_item[id(a)]
            if isinstance(verdict, TaskError):
                outcomes.append(self._failed(item.task_id, verdict, spent=usage))
            else:
                outcomes.append(self._finish(item, label, usage, verdict))
        return outcomes

    def _annotate(
        self, task: Any, spec: LabelingSpec, credentials: Credentials
    ) -> tuple[Item, MachineLabel, Usage] | Outcome:
        """Phase one for one task: its item and machine label, or a failed outcome."""
        task_id = _task_id(task)

        def run() -> tuple[Item, MachineLabel, Usage]:
            item = build_item(task, spec, self.fetcher, credentials)
            label, usage = self.annotator.annotate(item, spec)
            return item, label, usage

        return self._guarded(task_id, run)

    def _finish(
        self,
        item: Item,
        label: MachineLabel,
        usage: Usage,
        verdict: tuple[Critique, Usage],
    ) -> Outcome:
        critique, critic_usage = verdict
        return Outcome(
            task_id=item.task_id,
            label=label,
            suspicion=critique.suspicion,
            rationale=critique.rationale,
            usage=usage + critic_usage,
        )

    def _failed(self, task_id: Any, error: TaskError, *, spent: Usage | None = None) -> Outcome:
        """A failed outcome; it still counts the LLM calls made before the failure."""
        log.warning("task %s: %s", task_id, error)
        return Outcome(task_id=task_id, error=error, usage=(spent or Usage()) + error.usage)

    def _guarded(
        self, task_id: Any, run: Callable[[], T], *, spent: Usage | None = None
    ) -> T | Outcome:
        """Run one step; a TaskError or any bug becomes a failed outcome for that task only."""
        try:
            return run()
        except TaskError as exc:
            return self._failed(task_id, exc, spent=spent)
        except Exception as exc:  # one task's bug must not fail the batch
            log.exception("task %s: unexpected error", task_id)
            return self._failed(task_id, TaskError("internal", type(exc).__name__), spent=spent)


def _task_id(task: Any) -> Any:
    """The task's ``id`` as given (checked by ``build_item``), or None for a non-object."""
    return task.get("id") if isinstance(task, dict) else None


def _late(task: Any) -> Outcome:
    """The outcome of a task not finished by the deadline."""
    return Outcome(task_id=_task_id(task), error=TaskError(DEADLINE_KIND, DEADLINE_MESSAGE))


def build_predictor(settings: Settings) -> Predictor:
    """The annotator + critic pipeline the settings describe (shared by backend and CLI)."""
    cache = ResultCache(settings.cache_dir) if settings.cache else None
    ls_key = settings.label_studio_api_key
    fetcher = MediaFetcher(
        label_studio_url=settings.label_studio_url,
        label_studio_token=ls_key.get_secret_value() if ls_key else None,
        allowed_hosts=settings.allowed_media_hosts,
        max_bytes=settings.max_media_bytes,
    )
    return Predictor(
        make_annotator(settings, cache),
        make_critic(settings, cache),
        fetcher,
        concurrency=settings.concurrency,
    )


def build_item(
    task: Any, spec: LabelingSpec, fetcher: MediaFetcher, credentials: Credentials
) -> Item:
    """Read the inputs the config names from a task's data; fetch its images safely."""
    task_id = _task_id(task)
    if isinstance(task_id, bool) or not isinstance(task_id, int):  # JSON true is no id
        raise TaskError("bad_task", "the task is not an object with an integer 'id'")
    data = task.get("data")
    if not isinstance(data, dict):
        raise TaskError("bad_task", f"task {task['id']} has no 'data' object")
    texts: dict[str, str] = {}
    images: dict[str, str] = {}
    for inp in spec.inputs:
        value = data.get(inp.data_key)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise TaskError(
                "bad_task",
                f"task {task['id']} has no data field '{inp.data_key}' "
                f'(needed by <{inp.tag} name="{inp.name}">)',
            )
        if inp.tag == "Image":
            if not isinstance(value, str):
                raise TaskError("bad_task", f"task {task['id']}: '{inp.data_key}' is not a URL")
            try:
                media = fetcher.fetch(
                    value,
                    label_studio_url=credentials.label_studio_url,
                    label_studio_token=credentials.token,
                )
            except MediaError as exc:
                raise TaskError("media", str(exc)) from None
            images[inp.name] = media.data_url()
        elif inp.tag == "HyperText":
            texts[inp.name] = html_to_text(_encodable(str(value), task_id, inp.data_key))
        else:
            texts[inp.name] = _encodable(str(value), task_id, inp.data_key)
    return Item(task_id=task_id, texts=texts, images=images)


def _encodable(text: str, task_id: int, key: str) -> str:
    """``text`` if it can be sent as UTF-8; a lone surrogate (e.g. ``"\\ud800"`` in JSON) cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TaskError(
            "bad_text",
            f"task {task_id}: '{key}' is not valid Unicode (a lone surrogate at character "
            f"{exc.start}); fix the task's text",
        ) from None
    return text


def to_prediction(outcome: Outcome, spec: LabelingSpec, model_version: str) -> Any:
    """The /predict result item for one outcome (:func:`act_backend.records.encode_prediction`).

    A failed task gives an empty list: Label Studio then stores no prediction for it (and asks
    again next time), while the result count still matches the task count.
    """
    if outcome.error is not None or outcome.label is None or outcome.suspicion is None:
        return []
    return encode_prediction(
        spec,
        outcome.task_id or 0,
        outcome.label,
        outcome.suspicion,
        outcome.rationale,
        model_version,
    )


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in ("p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment (scripts and styles dropped, white space folded).

    >>> html_to_text("<p>Hello <b>world</b></p><script>x()</script>")
    'Hello world'
    """
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = html.unescape("".join(parser.parts))
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)
