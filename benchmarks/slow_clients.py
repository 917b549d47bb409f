"""Slow clients: does the backend keep answering while many uploads stall?

Each server runs the same Flask app (our backend, both roles on the local stub LLM) on
127.0.0.1 in its own process. With ``--stalled`` connections that send ``POST /predict``
headers announcing 1,000 bytes and then only ``{``, it times GET /health and a 10-task
/predict, and compares with the same calls on an idle server. Side by side, in one run:

- ``gunicorn gthread``: what ``ls-act serve`` ran before (1 worker, 16 threads);
- ``waitress``: buffers bodies in its I/O thread (16 threads, connection_limit 1,000);
- ``ls-act serve``: uvicorn + our guarded front (act_backend.front), the default now.

    pip install gunicorn waitress       # the two servers compared against
    python benchmarks/slow_clients.py                 # 200 stalled connections
    python benchmarks/slow_clients.py --stalled 16

Target (issue 11): 200 stalled connections delay /health and a normal /predict by < 1 s.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests
from predict_throughput import CONFIG, backend_env, console, free_port, serving, stub_llm
from rich.table import Table

TIMEOUT = 5.0  # a call slower than this counts as "no answer"
_SNIPPETS = {
    "gunicorn gthread": """
import sys
from gunicorn.app.base import BaseApplication
from act_backend.app import create_app
from act_backend.settings import load_settings
class App(BaseApplication):
    def load_config(self):
        for k, v in {"bind": sys.argv[1], "workers": 1, "worker_class": "gthread",
                     "threads": 16, "timeout": 300}.items():
            self.cfg.set(k, v)
    def load(self):
        return create_app(load_settings())
App().run()
""",
    "waitress": """
import sys
import waitress
from act_backend.app import create_app
from act_backend.settings import load_settings
waitress.serve(create_app(load_settings()), listen=sys.argv[1], threads=16,
               connection_limit=1000, channel_timeout=30)
""",
    "ls-act serve": """
import sys
from act_plugin.cli import app
host, port = sys.argv[1].split(":")
sys.argv = ["ls-act", "serve", "--host", host, "--port", port]
app()
""",
}


@contextmanager
def server(kind: str, llm_url: str, cache_dir: Path):
    port = free_port()
    env = backend_env(llm_url, cache_dir, ACT_CACHE="false")
    argv = [sys.executable, "-c", _SNIPPETS[kind], f"127.0.0.1:{port}"]
    with serving(argv, env, f"http://127.0.0.1:{port}") as url:
        yield url, port


@contextmanager
def stalled(port: int, n: int):
    """``n`` connections that send headers for a 1,000-byte body, then one byte, then nothing."""
    socks = []
    head = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    try:
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(head)
            socks.append(sock)
        time.sleep(0.5)  # let the server hand them to whatever reads bodies
        yield
    finally:
        for sock in socks:
            sock.close()


def health_latency(url: str, calls: int = 20) -> tuple[float, int]:
    """Median seconds of GET /health (TIMEOUT for a call with no answer) and the unanswered."""
    times, missed = [], 0
    for _ in range(calls):
        started = time.perf_counter()
        try:
            requests.get(url + "/health", timeout=TIMEOUT).raise_for_status()
            times.append(time.perf_counter() - started)
        except requests.RequestException:
            times.append(TIMEOUT)
            missed += 1
    return statistics.median(times), missed


def predict_seconds(url: str, salt: str) -> float:
    tasks = [{"id": i, "data": {"text": f"{salt} review {i}"}} for i in range(1, 11)]
    started = time.perf_counter()
    try:
        reply = requests.post(
            url + "/predict",
            json={"tasks": tasks, "label_config": CONFIG, "project": "1.1"},
            timeout=TIMEOUT,
        )
        reply.raise_for_status()
    except requests.RequestException:
        return TIMEOUT
    return time.perf_counter() - started


def measure(kind: str, llm_url: str, n: int, cache_dir: Path) -> list[str]:
    with server(kind, llm_url, cache_dir) as (url, port):
        idle_health, _ = health_latency(url)
        idle_predict = predict_seconds(url, "idle")
        with stalled(port, n):
            busy_health, missed = health_latency(url)
            busy_predict = predict_seconds(url, "busy")
    return [
        kind,
        f"{idle_health * 1000:.1f} ms",
        f"{busy_health * 1000:.1f} ms",
        f"{missed}/20",
        f"{idle_predict:.2f} s",
        f"{busy_predict:.2f} s" + (" (no answer)" if busy_predict >= TIMEOUT else ""),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--servers", nargs="*", default=list(_SNIPPETS))
    args = parser.parse_args()
    table = Table(title=f"{args.stalled} stalled uploads; /health median of 20, /predict 10 tasks")
    for column in ("server", "/health idle", "/health stalled", "unanswered", "/predict idle"):
        table.add_column(column, justify="right")
    table.add_column("/predict stalled", justify="right")
    with stub_llm(0.0) as llm_url, tempfile.TemporaryDirectory() as tmp:
        for kind in args.servers:
            table.add_row(*measure(kind, llm_url, args.stalled, Path(tmp, kind.replace(" ", "-"))))
    console.print(table)


if __name__ == "__main__":
    main()
