"""Webhook bursts: how fast `ls-act serve` acknowledges and stores events, and what SIGTERM keeps.

Runs the real backend (`ls-act serve`) on 127.0.0.1 and sends a burst of ANNOTATION_CREATED events
from several client threads, twice:

1. steady: acknowledge rate (events/s answered "queued") and storage rate (events/s written to
   webhook-events.sqlite3, read from GET /health) for the whole burst;
2. shutdown: the same burst, SIGTERM at once after the last acknowledgement, then the events in
   the store are counted against those acknowledged.

    python benchmarks/webhook_burst.py                    # 1,000 events, 8 client threads
    python benchmarks/webhook_burst.py --events 5000 --threads 16

Target (issue 11): no acknowledged event lost on SIGTERM; storage keeps up with 1,000-event bursts.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from predict_throughput import backend, console, stub_llm
from rich.table import Table


def burst(url: str, n: int, threads: int, offset: int) -> tuple[int, float]:
    """Events acknowledged as queued, and the seconds the burst took."""
    session = requests.Session()

    def send(i: int) -> bool:
        body = {"action": "ANNOTATION_CREATED", "annotation": {"id": offset + i, "task": i}}
        reply = session.post(url + "/webhook", json=body, timeout=30)
        return reply.ok and reply.json().get("status") == "queued"

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        acknowledged = sum(pool.map(send, range(n)))
    return acknowledged, time.perf_counter() - started


def recorded(url: str) -> int:
    counts = requests.get(url + "/health", timeout=5).json()["webhooks"]["recorded"]
    return int(sum(counts.values()))


def stored(cache_dir: Path) -> int:
    with sqlite3.connect(cache_dir / "webhook-events.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


def steady(base_url: str, n: int, threads: int, cache_dir: Path) -> tuple[float, float]:
    with backend(base_url, 8, cache_dir) as url:
        started = time.perf_counter()
        acknowledged, seconds = burst(url, n, threads, 0)
        while recorded(url) < acknowledged and time.perf_counter() - started < 120:
            time.sleep(0.01)
        stored_after = time.perf_counter() - started
    return acknowledged / seconds, acknowledged / stored_after


def shutdown(base_url: str, n: int, threads: int, cache_dir: Path) -> tuple[int, int]:
    with backend(base_url, 8, cache_dir) as url:  # leaving the block sends SIGTERM at once
        acknowledged, _ = burst(url, n, threads, 0)
    return acknowledged, stored(cache_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with stub_llm(0.0) as base_url, tempfile.TemporaryDirectory() as tmp:
        ack_rate, store_rate = steady(base_url, args.events, args.threads, Path(tmp, "steady"))
        acknowledged, kept = shutdown(base_url, args.events, args.threads, Path(tmp, "stop"))
    table = Table(title=f"{args.events} webhooks from {args.threads} client threads")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_row("acknowledged per second", f"{ack_rate:,.0f}")
    table.add_row("stored per second (burst start → last stored)", f"{store_rate:,.0f}")
    table.add_row("acknowledged before SIGTERM", f"{acknowledged:,}")
    table.add_row("stored after SIGTERM", f"{kept:,}")
    table.add_row("lost", f"{acknowledged - kept:,}")
    console.print(table)


if __name__ == "__main__":
    main()
