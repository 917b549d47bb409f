"""/predict under Label Studio's 100 s ML timeout: 2,000 tasks at 1 s per LLM call.

Label Studio 1.23 abandons a /predict after ``ML_TIMEOUT_PREDICT`` (100 s by default). The
backend answers by its own deadline (``ACT_PREDICT_DEADLINE``, 90 s by default) with what is
finished; a task not finished by then comes back ``[]`` with error kind ``deadline``. This times
one "Retrieve predictions" of ``--tasks`` tasks (2 LLM calls each, annotator then critic) against
the stub LLM at ``--latency`` seconds per call, side by side in one run:

- the defaults (concurrency and deadline as shipped);
- the old default concurrency of 32 under the same deadline, then Label Studio's second ask
  for the tasks that came back ``deadline`` (their late answers are in the cache by then).

    python benchmarks/predict_deadline.py                    # 2,000 tasks, 1 s per call
    python benchmarks/predict_deadline.py --tasks 400 --latency 0.2

Target (issue 11): at the defaults, 2,000 tasks at 1 s per call come back complete in < 95 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import requests
from predict_throughput import CONFIG, backend, console, stub_llm, tasks
from rich.table import Table

from act_backend.settings import Settings

LS_TIMEOUT = 100.0  # Label Studio 1.23's ML_TIMEOUT_PREDICT default
TARGET = 95.0


def one_call(url: str, batch: list[dict]) -> tuple[float, dict]:
    """Wall seconds of one /predict and its JSON answer."""
    started = time.perf_counter()
    reply = requests.post(
        url + "/predict",
        json={"tasks": batch, "label_config": CONFIG, "project": "1.1"},
        timeout=3600,
    )
    reply.raise_for_status()
    return time.perf_counter() - started, reply.json()


def row(name: str, batch: list[dict], wall: float, body: dict) -> tuple[str, ...]:
    done = sum(1 for r in body["results"] if r)
    late = sum(1 for e in body["errors"] if e["kind"] == "deadline")
    other = len(body["errors"]) - late
    in_time = "yes" if wall < LS_TIMEOUT else "no"
    return (name, str(len(batch)), f"{wall:.1f}", str(done), str(late), str(other), in_time)


def run(n_tasks: int, latency: float, old_concurrency: int, env: dict[str, str]) -> None:
    defaults = Settings()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, stub_llm(latency) as llm_url:
        batch = tasks(n_tasks, "defaults")
        with backend(llm_url, None, Path(tmp) / "defaults", **env) as url:
            wall, body = one_call(url, batch)
            rows.append(row(f"defaults (concurrency {defaults.concurrency})", batch, wall, body))
        batch = tasks(n_tasks, "old")
        with backend(llm_url, old_concurrency, Path(tmp) / "old", **env) as url:
            wall, body = one_call(url, batch)
            rows.append(row(f"concurrency {old_concurrency}", batch, wall, body))
            late = {e["task"] for e in body["errors"] if e["kind"] == "deadline"}
            retry = [t for t in batch if t["id"] in late]
            if retry:
                time.sleep(2 * latency)  # the calls running at the deadline land in the cache
                wall, body = one_call(url, retry)
                rows.append(row("  second ask, the deadline tasks only", retry, wall, body))
    report(n_tasks, latency, defaults, rows)


def report(n_tasks: int, latency: float, defaults: Settings, rows: list[tuple[str, ...]]) -> None:
    title = (
        f"POST /predict, {n_tasks} tasks x 2 calls at {latency:g} s per call; deadline "
        f"{defaults.predict_deadline:g} s, Label Studio gives up at {LS_TIMEOUT:g} s"
    )
    table = Table(title=title)
    for col in ("run", "tasks", "wall s", "predicted", "deadline", "other errors", "< 100 s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*r)
    console.print(table)
    sent, wall, done = rows[0][1:4]
    met = int(done) == int(sent) and float(wall) < TARGET
    console.print(
        f"defaults: {done}/{sent} tasks predicted in {wall} s "
        f"(target: all, in < {TARGET:g} s): {'met' if met else 'MISSED'}"
    )
    a = defaults.annotator
    console.print(
        f"one call with every retry timing out: {a.worst_case_seconds():.1f} s "
        f"(timeout {a.timeout:g} s x {a.max_retries + 1} attempts + backoff) "
        f"<= deadline {defaults.predict_deadline:g} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per LLM call")
    parser.add_argument("--old-concurrency", type=int, default=32)
    parser.add_argument(
        "--structured-output", help="force this dialect for both roles (default: the default)"
    )
    args = parser.parse_args()
    dialect = args.structured_output
    roles = ("ANNOTATOR", "CRITIC") if dialect else ()
    env = {f"ACT_{role}_STRUCTURED_OUTPUT": dialect for role in roles}
    run(args.tasks, args.latency, args.old_concurrency, env)


if __name__ == "__main__":
    main()
