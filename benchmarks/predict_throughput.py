"""/predict throughput: one 250-task "Retrieve predictions" call, sequential vs parallel.

Runs the real backend (`ls-act serve`, gunicorn) and the local OpenAI-compatible stub server, each
in its own process, on 127.0.0.1, and times POST /predict the way Label Studio sends it (all tasks
in one call). Every call of the stub takes a fixed latency, so the best any client can do is the
lower bound ceil(calls / concurrency) × latency. Figures are measured side by side in one run:

    python benchmarks/predict_throughput.py            # 250 tasks, 300 ms per LLM call
    python benchmarks/predict_throughput.py --tasks 100 --latency 0.1

Targets (issue 3): parallel ≥ 20× sequential, within 1.3× of the lower bound, backend overhead
≤ 2 ms per task, and zero LLM calls when the same batch is sent again (cache).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests
from rich.console import Console
from rich.table import Table

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>
  </Choices>
</View>"""
CALLS_PER_TASK = 2  # annotator + critic
console = Console(width=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def stub_llm(latency: float):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "act_backend.testing.openai_server",
            "--port",
            "0",
            "--latency",
            str(latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"stub server did not start: {line!r}")
    try:
        yield line.split(" ", 1)[1]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@contextmanager
def serving(argv: list[str], env: dict[str, str], url: str):
    """Run ``argv`` in its own session until it answers GET ``url``/health; yield ``url``."""
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(300):
            try:
                if requests.get(url + "/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{argv[-1]} did not start")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def backend_env(base_url: str, cache_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a backend whose roles both use the stub at ``base_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACT_", "OPENAI_"))}
    env.update(
        OPENAI_BASE_URL=base_url,
        OPENAI_API_KEY="bench",
        ACT_CACHE_DIR=str(cache_dir),
        ACT_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


@contextmanager
def backend(base_url: str, concurrency: int | None, cache_dir: Path, **extra: str):
    """``ls-act serve`` on the stub at ``base_url`` with ``extra`` settings (environment);
    ``concurrency`` None keeps the default."""
    port = free_port()
    argv = [sys.executable, "-c", "from act_plugin.cli import app; app()"]
    argv += ["serve", "--host", "127.0.0.1", "--port", str(port)]
    if concurrency is not None:
        extra["ACT_CONCURRENCY"] = str(concurrency)
    env = backend_env(base_url, cache_dir, **extra)
    with serving(argv, env, f"http://127.0.0.1:{port}") as url:
        yield url


def tasks(n: int, salt: str) -> list[dict]:
    return [
        {"id": i, "data": {"text": f"review {salt}-{i}: the product was fine"}}
        for i in range(1, n + 1)
    ]


def timed_predict(url: str, batch: list[dict]) -> tuple[float, int, int]:
    """Wall seconds of one /predict, LLM calls it made, and tasks that failed."""
    before = requests.get(url + "/health", timeout=5).json()["stats"]["llm"]["calls"]
    started = time.perf_counter()
    reply = requests.post(
        url + "/predict",
        json={"tasks": batch, "label_config": CONFIG, "project": "1.1"},
        timeout=3600,
    ).json()
    wall = time.perf_counter() - started
    after = requests.get(url + "/health", timeout=5).json()["stats"]["llm"]["calls"]
    if len(reply["results"]) != len(batch):
        raise RuntimeError("result count differs from task count")
    return wall, after - before, len(reply["errors"])


def run(n_tasks: int, latency: float, concurrency: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, stub_llm(latency) as llm_url:
        calls = n_tasks * CALLS_PER_TASK
        for conc in (1, concurrency):
            with backend(llm_url, conc, Path(tmp) / f"cache-{conc}") as url:
                wall, made, failed = timed_predict(url, tasks(n_tasks, f"c{conc}"))
                bound = math.ceil(calls / conc) * latency
                rows.append((f"concurrency {conc}", wall, made, failed, bound))
                if conc == concurrency:
                    hit_wall, hit_calls, hit_failed = timed_predict(url, tasks(n_tasks, f"c{conc}"))
                    rows.append(("same batch again (cache)", hit_wall, hit_calls, hit_failed, 0.0))
    with (
        tempfile.TemporaryDirectory() as tmp,
        stub_llm(0.0) as llm_url,
        backend(llm_url, concurrency, Path(tmp)) as url,
    ):
        timed_predict(url, tasks(8, "warm"))
        zero_wall, zero_calls, zero_failed = timed_predict(url, tasks(n_tasks, "zero"))
    report(n_tasks, latency, concurrency, rows, zero_wall, zero_calls, zero_failed)


def report(n_tasks, latency, concurrency, rows, zero_wall, zero_calls, zero_failed) -> None:
    table = Table(title=f"POST /predict, {n_tasks} tasks, {latency * 1000:.0f} ms per LLM call")
    for col in ("run", "wall s", "tasks/s", "LLM calls", "failed", "lower bound s", "wall/bound"):
        table.add_column(col, justify="right")
    for name, wall, made, failed, bound in rows:
        ratio = f"{wall / bound:.2f}" if bound else "-"
        table.add_row(
            name,
            f"{wall:.2f}",
            f"{n_tasks / wall:.1f}",
            str(made),
            str(failed),
            f"{bound:.2f}" if bound else "-",
            ratio,
        )
    table.add_row(
        f"latency 0, concurrency {concurrency}",
        f"{zero_wall:.2f}",
        f"{n_tasks / zero_wall:.1f}",
        str(zero_calls),
        str(zero_failed),
        "-",
        "-",
    )
    console.print(table)
    seq, par, hit = rows[0], rows[1], rows[2]
    speedup = seq[1] / par[1]
    to_bound = par[1] / par[4]
    overhead_ms = (par[1] - par[4]) / n_tasks * 1000
    zero_ms = zero_wall / n_tasks * 1000
    console.print(f"speed-up parallel vs sequential: {speedup:.1f}x   (target >= 20x)")
    console.print(f"parallel wall / lower bound:     {to_bound:.2f}   (target <= 1.3)")
    console.print(f"overhead above the bound:        {overhead_ms:.2f} ms per task (target <= 2)")
    console.print(
        f"whole path at zero LLM latency:  {zero_ms:.2f} ms per task "
        "(backend + stub server + HTTP, 2 calls per task)"
    )
    console.print(f"cache-hit re-run LLM calls:      {hit[2]}   (target 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=250)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per LLM call")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    run(args.tasks, args.latency, args.concurrency)


if __name__ == "__main__":
    main()
