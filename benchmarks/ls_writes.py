"""Label Studio writes of `ls-act annotate` and `ls-act review`: per task (before) vs bulk/lean.

Starts a real Label Studio 1.23.2 (SQLite) and the OpenAI-compatible stub server (fixed latency
per call) on 127.0.0.1, then, on one project of N tasks per path, side by side in one run:

- annotate: the per-task path writes each prediction with ``POST /api/predictions/`` as soon as
  it is ready (the code before issue 13, selected here by swapping the writer); the bulk path
  writes chunks through ``POST /api/projects/{id}/import/predictions``. The lower bound is the
  LLM work alone: ceil(2 N / concurrency) × latency.
- review: the per-task path writes a review record on every task (one PATCH each, as before
  issue 13); then, on the bulk path's project, ``ls-act review`` as it is (the drawn tasks'
  records as ledgers: one PATCH per 2,000 drawn tasks) and, as a redraw, the first lean version
  (one PATCH per drawn task).

    python benchmarks/ls_writes.py                   # 1,000 tasks, 300 ms per call, 32 in flight
    python benchmarks/ls_writes.py --tasks 200 --skip-before

Targets (issue 13): annotate within 1.5× the LLM bound; review ≤ 10 s at 1,000 tasks.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from predict_throughput import CALLS_PER_TASK, stub_llm
from predict_throughput import CONFIG as SENTIMENT
from rich.console import Console
from rich.table import Table

from act_backend.predictor import build_predictor
from act_backend.records import review_record, suspicion_of, with_review_record
from act_backend.settings import load_settings
from act_plugin import annotate, review
from act_plugin.labelstudio import Gateway, act_prediction
from act_plugin.labelstudio.predictions import Item
from act_plugin.local_ls import start_label_studio

#: The sentiment config of predict_throughput, with the rationale TextArea the critic fills.
CONFIG = SENTIMENT.replace(
    "</View>", '  <TextArea name="act_rationale" toName="text" editable="false"/>\n</View>'
)
console = Console(width=120)


def per_task_writes(
    gateway: Gateway, project_id: int, items: list[Item], model_version: str
) -> dict[int, str]:
    """The annotate writer before issue 13: one ``POST /api/predictions/`` per prediction."""
    for task_id, prediction in items:
        gateway.create_prediction(task_id, prediction)
    return {}


def new_project(client, n_tasks: int, name: str) -> int:
    project_id = client.projects.create(title=f"bench {name}", label_config=CONFIG).id
    tasks = [{"data": {"text": f"review {name}-{i}: the product was fine"}} for i in range(n_tasks)]
    client.projects.import_tasks(id=project_id, request=tasks)
    return project_id


def run_annotate(client, project_id: int, llm_url: str, cache: Path, per_task: bool) -> float:
    """Wall seconds of one annotate run; checks one prediction per task."""
    settings = load_settings(
        env={
            "OPENAI_BASE_URL": llm_url,
            "OPENAI_API_KEY": "bench",
            "ACT_CACHE_DIR": str(cache),
            "ACT_CONCURRENCY": "32",
        }
    )
    predictor = build_predictor(settings)
    writer, chunk = annotate.write_predictions, annotate.CHUNK_SIZE
    if per_task:
        annotate.write_predictions, annotate.CHUNK_SIZE = per_task_writes, 1
    try:
        started = time.perf_counter()
        result = annotate.annotate_project(
            client, project_id, predictor, model_version=settings.resolved_model_version
        )
        wall = time.perf_counter() - started
    finally:
        annotate.write_predictions, annotate.CHUNK_SIZE = writer, chunk
        predictor.close()
    tasks = Gateway(client).list_tasks(project_id)
    counts = {len(t["predictions"]) for t in tasks}
    if result.n_failed or counts != {1}:
        raise RuntimeError(f"annotate: {dict(result.errors)}, predictions per task {counts}")
    return wall


def review_every_task(client, project_id: int, budget: float, seed: int) -> int:
    """The review writes before issue 13: a record on every task, then the view."""
    gateway = Gateway(client)
    tasks = gateway.list_tasks(project_id)
    version = tasks[0]["predictions"][0]["model_version"]
    eps = [suspicion_of(act_prediction(t, version) or {}) for t in tasks]
    params = review.DrawParams(
        "thresholded", budget, review.DEFAULT_FLOOR, review.DEFAULT_BETA, seed, version
    )
    pi, delta = review.compute_draw(eps, params)
    draw = {
        "draw_id": uuid.uuid4().hex,
        **params.__dict__,
        "drawn_at": datetime.now(timezone.utc).isoformat(),
        "n_tasks": len(tasks),
        "n_drawn": int(delta.sum()),
        "suspicion_digest": "",
        "min_pi_undrawn": None,
    }
    for task, e, p, d in zip(tasks, eps, pi, delta, strict=True):
        record = review_record(draw, suspicion=e, pi=float(p), delta=bool(d))
        gateway.update_task_meta(task["id"], with_review_record(task.get("meta"), record))
    drawn = [t["id"] for t, d in zip(tasks, delta, strict=True) if d]
    gateway.create_view(project_id, {"title": "per-task draw"}, drawn)
    return len(drawn)


def one_path(
    client, n_tasks: int, llm_url: str, tmp: Path, budget: float, per_task: bool
) -> list[tuple[str, str, float, str]]:
    """Annotate then review a new project of ``n_tasks`` by one write path; the table rows."""
    name = "before" if per_task else "after"
    project_id = new_project(client, n_tasks, name)
    wall = run_annotate(client, project_id, llm_url, tmp / name, per_task)
    label = "per task" if per_task else "bulk import"
    rows = [("annotate", label, wall, "")]
    console.print(f"annotate {label}: {wall:.1f} s", highlight=False)
    started = time.perf_counter()
    if per_task:
        label, drawn = "record on every task", review_every_task(client, project_id, budget, 1)
    else:
        label = f"ledgers of {review.RECORDS_PER_WRITE} drawn tasks"
        drawn = review.draw_sample(client, project_id, budget=budget, seed=1).drawn
    wall = time.perf_counter() - started
    console.print(f"review {label}: {wall:.1f} s", highlight=False)
    rows.append(("review", label, wall, f"{drawn} drawn"))
    if not per_task:
        rows.append(review_per_drawn_task(client, project_id, budget))
    return rows


def review_per_drawn_task(client, project_id: int, budget: float) -> tuple[str, str, float, str]:
    """The review writes of the first lean version: one PATCH per drawn task (a ledger of 1),
    as a redraw of the same project (which also removes the ledger drawn before)."""
    ledger = review.RECORDS_PER_WRITE
    review.RECORDS_PER_WRITE = 1
    try:
        started = time.perf_counter()
        drawn = review.draw_sample(client, project_id, budget=budget, seed=2, redraw=True).drawn
        wall = time.perf_counter() - started
    finally:
        review.RECORDS_PER_WRITE = ledger
    console.print(f"review record per drawn task: {wall:.1f} s", highlight=False)
    return ("review", "record per drawn task (redraw)", wall, f"{drawn} drawn")


def run(n_tasks: int, latency: float, budget: float, skip_before: bool) -> None:
    bound = math.ceil(CALLS_PER_TASK * n_tasks / 32) * latency
    rows: list[tuple[str, str, float, str]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        stub_llm(latency) as llm_url,
        start_label_studio(Path(tmp) / "ls") as ls,
    ):
        client = ls.client()
        for per_task in (False,) if skip_before else (True, False):
            rows += one_path(client, n_tasks, llm_url, Path(tmp), budget, per_task)
    title = f"{n_tasks} tasks, {latency * 1000:.0f} ms per LLM call (32 in flight), budget {budget}"
    table = Table(title=title)
    for column in ("step", "writes", "wall s", "tasks/s", "note"):
        table.add_column(column)
    for step, label, wall, note in rows:
        if step == "annotate":
            note = f"{wall / bound:.2f}× the LLM bound {bound:.1f} s"
        table.add_row(step, label, f"{wall:.1f}", f"{n_tasks / wall:.1f}", note)
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--budget", type=float, default=0.2)
    parser.add_argument("--skip-before", action="store_true", help="only the current paths")
    args = parser.parse_args()
    run(args.tasks, args.latency, args.budget, args.skip_before)


if __name__ == "__main__":
    sys.exit(main())
