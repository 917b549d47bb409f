"""``ls-act scale annotate``: the backend's annotator and critic over a data set, on Ray Data.

Each input block (:mod:`.source`) is one Ray Data row; a pool of actors (``map_batches`` with an
actor pool) each holds one :class:`act_backend.predictor.Predictor` built by ``build_predictor``
from the same settings as the backend, so prompts, parsers, critics, retries and the answer cache
are the backend's by construction. An actor reads its block, runs ``Predictor.predict_iter``
over it (``settings.concurrency`` tasks in flight), and writes ``annotations/part-NNNNNN.parquet``
before it reports the block done. A re-run skips blocks whose part exists, so a run killed at any
point (even ``kill -9``) resumes without duplicated or lost rows. The driver holds only the plan
(one entry per block) and one summary per block: memory is flat in the number of items.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from act_backend.domain import Usage
from act_backend.labeling import LabelingSpec, UnsupportedConfig, parse_label_config
from act_backend.predictor import Outcome, Predictor, build_predictor
from act_backend.prompting import PromptBook
from act_backend.settings import Settings

from .cluster import connect
from .source import Block, Task, detect_format, plan_blocks, read_block
from .store import ANNOTATION_SCHEMA, Store

__all__ = [
    "ANNOTATIONS",
    "BlockAnnotator",
    "BlockSummary",
    "ScaleAnnotateResult",
    "annotate_block",
    "annotate_dataset",
    "outcome_table",
]

log = logging.getLogger(__name__)

ANNOTATIONS = "annotations"
DEFAULT_BLOCK_SIZE = 1000


class ScaleError(RuntimeError):
    """A scale run cannot start or go on; the message says what to do."""


@dataclass(frozen=True)
class BlockSummary:
    """What one block gave: rows, failures per kind (one example each), LLM usage, seconds."""

    index: int
    rows: int
    errors: dict[str, int]
    examples: dict[str, str]
    usage: dict[str, int]
    seconds: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BlockSummary:
        return cls(**json.loads(text))


@dataclass
class ScaleAnnotateResult:
    """What a run did (blocks skipped because their part existed count as done before)."""

    model_version: str
    prompt_hash: str
    n_blocks: int = 0
    n_rows: int = 0
    n_blocks_skipped: int = 0
    n_blocks_done: int = 0
    n_annotated: int = 0  # rows annotated by this run
    usage: Usage = field(default_factory=Usage)
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def n_failed(self) -> int:
        return sum(self.errors.values())

    @property
    def complete(self) -> bool:
        return self.n_blocks_skipped + self.n_blocks_done == self.n_blocks

    def add(self, summary: BlockSummary) -> None:
        self.n_blocks_done += 1
        self.n_annotated += summary.rows
        self.errors.update(summary.errors)
        for kind, example in summary.examples.items():
            self.examples.setdefault(kind, example)
        u = summary.usage
        self.usage = self.usage + Usage(
            u["prompt_tokens"], u["completion_tokens"], u["calls"], u["cached_calls"]
        )


# --------------------------------------------------------------------------------------------
# One block (runs in an actor, or anywhere)
# --------------------------------------------------------------------------------------------


def outcome_table(
    tasks: Sequence[Task],
    outcomes: Iterable[Outcome],
    spec: LabelingSpec,
    *,
    model_version: str,
    prompt_hash: str,
) -> pa.Table:
    """The block's rows (:data:`.store.ANNOTATION_SCHEMA`), in row order."""
    by_row = {o.task_id: o for o in outcomes}
    columns: dict[str, list[Any]] = {name: [] for name in ANNOTATION_SCHEMA.names}
    for task in tasks:
        outcome = by_row.get(task.row) or Outcome(task_id=task.row)
        label = outcome.label
        values = {
            "row": task.row,
            "item_id": task.item_id,
            "data": json.dumps(task.data, sort_keys=True, ensure_ascii=False),
            "machine_label": None if label is None else _label_list(label, spec),
            "suspicion": outcome.suspicion,
            "rationale": outcome.rationale if outcome.ok else None,
            "model_version": model_version,
            "prompt_hash": prompt_hash,
            "llm_calls": outcome.usage.calls,
            "cached_calls": outcome.usage.cached,
            "prompt_tokens": outcome.usage.prompt_tokens,
            "completion_tokens": outcome.usage.completion_tokens,
            "error_kind": outcome.error.kind if outcome.error else None,
            "error_message": outcome.error.message if outcome.error else None,
        }
        if task.row not in by_row:  # the predictor gave no outcome: never a made-up label
            values.update(error_kind="internal", error_message="no outcome for this row")
        for name, value in values.items():
            columns[name].append(value)
    return pa.table(columns, schema=ANNOTATION_SCHEMA)


def _label_list(label: Any, spec: LabelingSpec) -> list[str]:
    return [str(label.answer)] if spec.kind == "textarea" else list(label.labels)


def annotate_block(
    predictor: Predictor,
    spec: LabelingSpec,
    block: Block,
    store: Store,
    *,
    id_column: str | None,
    model_version: str,
    prompt_hash: str,
) -> BlockSummary:
    """Annotate one block and write its part (atomically); what it gave."""
    started = time.monotonic()
    tasks = read_block(block, id_column)
    payload = [{"id": t.row, "data": t.data} for t in tasks]
    # As many tasks submitted as the pool runs: predict_iter's default window (4 × concurrency)
    # makes each completion wait on 4× the futures, per-item CPU that bounds a busy actor.
    outcomes = list(predictor.predict_iter(payload, spec, window=predictor.concurrency))
    table = outcome_table(
        tasks, outcomes, spec, model_version=model_version, prompt_hash=prompt_hash
    )
    store.write_part(table, ANNOTATIONS, block.index)
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    usage = Usage()
    for outcome in outcomes:
        usage = usage + outcome.usage
        if outcome.error is not None:
            errors[outcome.error.kind] += 1
            examples.setdefault(outcome.error.kind, f"row {outcome.task_id}: {outcome.error}")
    return BlockSummary(
        block.index, len(tasks), dict(errors), examples, usage.as_dict(),
        time.monotonic() - started,
    )  # fmt: skip


class BlockAnnotator:
    """A Ray Data actor: one predictor for its life, one block per call."""

    def __init__(self, settings: Settings, run: Mapping[str, Any], output: str) -> None:
        logging.getLogger("act_backend").setLevel(logging.ERROR)  # failures are in the parts
        self.predictor = build_predictor(settings)
        self.spec = parse_label_config(run["label_config"], rationale_field=run["rationale_field"])
        self.store = Store(output)
        self.run = run

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        summaries = [
            annotate_block(
                self.predictor, self.spec, Block(**json.loads(str(text))), self.store,
                id_column=self.run["id_column"],
                model_version=self.run["model_version"],
                prompt_hash=self.run["prompt_hash"],
            ).to_json()
            for text in batch["block"]
        ]  # fmt: skip
        return {"summary": np.array(summaries, dtype=object)}


# --------------------------------------------------------------------------------------------
# The run (driver)
# --------------------------------------------------------------------------------------------


def annotate_dataset(
    input_url: str,
    output_url: str,
    settings: Settings,
    label_config: str,
    *,
    fmt: str | None = None,
    id_column: str | None = "id",
    block_size: int = DEFAULT_BLOCK_SIZE,
    actors: int = 2,
    actor_cpus: float = 1.0,
    max_blocks: int | None = None,
    ray_address: str | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_block: Callable[[BlockSummary], None] | None = None,
) -> ScaleAnnotateResult:
    """Annotate and criticize every row of ``input_url`` into ``output_url`` (resumable).

    ``max_blocks`` stops after that many blocks (the rest is done by a later run);
    ``on_start(blocks to do, rows to do)`` and ``on_block(summary)`` report progress.
    """
    started = time.monotonic()
    spec = _spec(label_config, settings.rationale_field)
    _check_engines(settings, spec)
    store = Store(output_url)
    blocks = plan_blocks(input_url, fmt or detect_format(input_url), block_size)
    manifest = _manifest(input_url, settings, label_config, id_column, block_size, blocks)
    run = store.open_run(manifest)
    result = ScaleAnnotateResult(run["model_version"], run["prompt_hash"], len(blocks))
    result.n_rows = run["n_rows"]
    todo = [blocks[i] for i in store.missing_parts(ANNOTATIONS)]
    result.n_blocks_skipped = len(blocks) - len(todo)
    todo = todo[:max_blocks] if max_blocks is not None else todo
    if on_start:
        on_start(len(todo), sum(b.length for b in todo))
    if todo:
        for summary in _run_on_ray(todo, settings, run, store.url, actors, actor_cpus, ray_address):
            result.add(summary)
            if on_block:
                on_block(summary)
    result.seconds = time.monotonic() - started
    return result


def _run_on_ray(
    todo: Sequence[Block],
    settings: Settings,
    run: Mapping[str, Any],
    output: str,
    actors: int,
    actor_cpus: float,
    ray_address: str | None,
) -> Iterable[BlockSummary]:
    """Stream the blocks through the actor pool; summaries as blocks finish."""
    ray = connect(ray_address)
    items = [{"block": json.dumps(b.as_dict())} for b in todo]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    annotated = dataset.map_batches(
        BlockAnnotator,
        fn_constructor_kwargs={"settings": settings, "run": dict(run), "output": output},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=max(1, min(actors, len(todo)))),
        num_cpus=actor_cpus,  # Ray Data restarts a lost actor and retries its block
    )
    for batch in annotated.iter_batches(batch_size=1, batch_format="numpy"):
        for text in batch["summary"]:
            yield BlockSummary.from_json(str(text))


def _spec(label_config: str, rationale_field: str) -> LabelingSpec:
    try:
        return parse_label_config(label_config, rationale_field=rationale_field)
    except UnsupportedConfig as exc:
        raise ScaleError(str(exc)) from None


def _check_engines(settings: Settings, spec: LabelingSpec) -> None:
    """Build the predictor once on the driver: a bad setting or config fails here, not per block."""
    predictor = build_predictor(settings)
    try:
        predictor.check(spec)
    except Exception as exc:
        raise ScaleError(f"the engines cannot serve this label config: {exc}") from None
    finally:
        predictor.close()


def _manifest(
    input_url: str,
    settings: Settings,
    label_config: str,
    id_column: str | None,
    block_size: int,
    blocks: Sequence[Block],
) -> dict[str, Any]:
    """What makes a run the same run: input, plan, config and what produces the labels."""
    return {
        "input": str(input_url),
        "format": blocks[0].fmt,
        "id_column": id_column or None,
        "block_size": block_size,
        "n_rows": sum(b.length for b in blocks),
        "label_config": label_config,
        "rationale_field": settings.rationale_field,
        "model_version": settings.resolved_model_version,
        "prompt_hash": PromptBook(settings.prompts_dir).fingerprint,
        "blocks": [b.as_dict() for b in blocks],
    }
