"""Scale: `ls-act scale annotate` on Ray Data against the single-process `Predictor.predict_iter`.

Both paths annotate and criticize the same Parquet file of N items against the local
OpenAI-compatible stub server (its own process, a fixed latency per call, no answer cache), each
path in a fresh process so its peak memory is its own. Figures, side by side per N:

- items/s, and its ratio to the endpoint bound: with C calls in flight and a latency L per call,
  no client can do better than C / (2 L) items/s (2 calls per item: annotator + critic);
- peak RSS of the driver (the process that reads the input and collects the results), and for
  the Ray path also the peak of all its processes together (driver, raylet, GCS, actors).

    python benchmarks/scale.py                          # 10k and 100k items, 50 ms per call
    python benchmarks/scale.py --items 10000 --latency 0.02 --actors 2 --concurrency 64

The Ray path runs on a local instance (``--num-cpus``, default 2); with ``--ray-address`` (or
RAY_ADDRESS) it runs on a cluster. Linux only (peak memory is read from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from predict_throughput import CONFIG, backend_env, stub_llm
from rich.console import Console
from rich.table import Table

CALLS_PER_ITEM = 2  # annotator + critic
_TICKS = os.sysconf("SC_CLK_TCK")
WRITE_BATCH = 50_000
console = Console(width=200)


# --------------------------------------------------------------------------------------------
# Input and memory
# --------------------------------------------------------------------------------------------


def make_input(path: Path, n: int) -> Path:
    """N items of text (distinct, so no two prompts are the same), written in batches."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.int64()), ("text", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n, WRITE_BATCH):
            ids = list(range(start, min(n, start + WRITE_BATCH)))
            texts = [f"review {i}: the product was fine, delivery slow" for i in ids]
            writer.write_table(pa.table({"id": ids, "text": texts}, schema=schema))
    return path


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@contextmanager
def tree_usage(every: float = 0.5) -> Iterator[dict[str, float]]:
    """Samples this process and all its descendants: ``peak_mb``, the peak of their summed RSS,
    and ``cpu_s``, the CPU they used meanwhile (a process's last half second may be missed)."""
    usage = {"peak_mb": 0.0, "cpu_s": 0.0}
    me = os.getpid()
    before = {pid: cpu_seconds(pid) for pid in [me, *_descendants(me)]}
    seen: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        pids = [me, *_descendants(me)]
        usage["peak_mb"] = max(usage["peak_mb"], sum(_rss_mb(pid) for pid in pids))
        for pid in pids:
            seen[pid] = max(seen.get(pid, 0.0), cpu_seconds(pid))

    def loop() -> None:
        while not stop.wait(every):
            sample()

    sampler = threading.Thread(target=loop, daemon=True)
    sampler.start()
    try:
        yield usage
    finally:
        stop.set()
        sampler.join()
        sample()
        usage["cpu_s"] = sum(cpu - before.get(pid, 0.0) for pid, cpu in seen.items())


def _peak_self_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------
# The two paths (each in a child process)
# --------------------------------------------------------------------------------------------


def _tasks(path: Path) -> Iterator[dict]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=1000):
        for row in batch.to_pylist():
            yield {"id": row["id"], "data": {"text": row["text"]}}


def child_single(path: Path) -> dict:
    """`Predictor.predict_iter` over the file, outcomes counted (nothing written)."""
    from act_backend.labeling import parse_label_config
    from act_backend.predictor import build_predictor
    from act_backend.settings import load_settings

    predictor = build_predictor(load_settings())
    spec = parse_label_config(CONFIG)
    done = failed = 0
    with tree_usage() as usage:
        started = time.perf_counter()
        for outcome in predictor.predict_iter(_tasks(path), spec):
            done += 1
            failed += not outcome.ok
        seconds = time.perf_counter() - started
    predictor.close()
    return {"items": done, "failed": failed, "seconds": seconds, "driver_mb": _peak_self_mb(),
            "cpu_s": usage["cpu_s"]}  # fmt: skip


def child_ray(path: Path, out: Path, args: argparse.Namespace) -> dict:
    """`ls-act scale annotate` (the library call) into ``out``; the Ray start-up is excluded."""
    from act_backend.settings import load_settings
    from act_plugin.scale.annotate import annotate_dataset
    from act_plugin.scale.cluster import connect

    connect(args.ray_address, num_cpus=args.num_cpus)  # start-up, not timed
    with tree_usage() as usage:
        started = time.perf_counter()
        result = annotate_dataset(
            str(path), str(out), load_settings(), CONFIG,
            block_size=args.block_size, actors=args.actors, actor_cpus=args.actor_cpus,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    return {
        "items": result.n_annotated,
        "failed": result.n_failed,
        "seconds": seconds,
        "driver_mb": _peak_self_mb(),
        "all_mb": usage["peak_mb"],
        "cpu_s": usage["cpu_s"],
    }


def _stub_pid() -> int | None:
    """The stub server's process (a child of this one)."""
    for pid in _descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"act_backend.testing.openai_server" in cmdline.read():
                    return pid
        except OSError:
            continue
    return None


def measure(mode: str, path: Path, base_url: str, args: argparse.Namespace, work: Path) -> dict:
    """Run one path in a fresh process; its figures, the stub's CPU and the load average."""
    concurrency = args.concurrency if mode == "ray" else args.concurrency * args.actors
    env = backend_env(base_url, work / "cache", ACT_CACHE="false",
                      ACT_CONCURRENCY=str(concurrency))  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    argv = [sys.executable, __file__, "--child", mode, "--input", str(path)]
    argv += ["--output", str(work / f"out-{mode}-{path.stem}")]
    argv += _forwarded(args)
    stub = _stub_pid()
    stub_before, load_before = cpu_seconds(stub) if stub else 0.0, os.getloadavg()[0]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["in_flight"] = args.concurrency * args.actors
    figures["stub_cpu_s"] = cpu_seconds(stub) - stub_before if stub else float("nan")
    figures["load"] = (load_before, os.getloadavg()[0])
    return figures


def _forwarded(args: argparse.Namespace) -> list[str]:
    argv = ["--actors", str(args.actors), "--actor-cpus", str(args.actor_cpus)]
    argv += ["--block-size", str(args.block_size), "--num-cpus", str(args.num_cpus)]
    return argv + (["--ray-address", args.ray_address] if args.ray_address else [])


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def report(rows: list[tuple[int, str, dict]], latency: float) -> Table:
    """Per run: rate, endpoint bound, CPU per item (the path's processes, the stub) and the
    rate that CPU allows on this machine's cores, memory, and the 1-minute load average."""
    table = Table(title=f"scale: annotate + critic, {latency * 1000:.0f} ms per LLM call")
    for name in ("items", "path", "in flight", "seconds", "items/s", "bound items/s",
                 "of bound", "client CPU ms/item", "stub CPU ms/item", "CPU bound items/s",
                 "failed", "driver peak RSS", "all processes peak RSS", "load"):  # fmt: skip
        table.add_column(name, justify="right")
    for n, mode, f in rows:
        rate = f["items"] / f["seconds"]
        bound = f["in_flight"] / (CALLS_PER_ITEM * latency) if latency > 0 else float("inf")
        client_ms, stub_ms = (1000 * f[k] / f["items"] for k in ("cpu_s", "stub_cpu_s"))
        table.add_row(
            f"{n:,}",
            "Ray Data" if mode == "ray" else "predict_iter",
            str(f["in_flight"]),
            f"{f['seconds']:.1f}",
            f"{rate:,.0f}",
            f"{bound:,.0f}" if bound != float("inf") else "-",
            f"{rate / bound:.2f}" if bound != float("inf") else "-",
            f"{client_ms:.2f}",
            f"{stub_ms:.2f}",
            f"{1000 * (os.cpu_count() or 1) / (client_ms + stub_ms):,.0f}",
            str(f["failed"]),
            f"{f['driver_mb']:,.0f} MB",
            f"{f['all_mb']:,.0f} MB" if "all_mb" in f else "-",
            "{:.1f}–{:.1f}".format(*f["load"]),
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--actor-cpus", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight per actor")
    parser.add_argument("--block-size", type=int, default=1000)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS"))
    parser.add_argument("--paths", nargs="+", default=["single", "ray"])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--child", choices=["single", "ray"])
    parser.add_argument("--input", type=Path)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.child == "single":
        print(json.dumps(child_single(args.input)))
        return
    if args.child == "ray":
        print(json.dumps(child_ray(args.input, args.output, args)))
        return
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="act-scale-bench-") as tmp,
        stub_llm(args.latency) as url,
    ):
        work = Path(tmp)
        for n in args.items:
            path = make_input(work / f"items-{n}.parquet", n)
            for mode in args.paths:
                console.print(f"[bold]»[/] {n:,} items, {mode}")
                rows.append((n, mode, measure(mode, path, url, args, work)))
                console.print(report(rows, args.latency))
    console.print(report(rows, args.latency))
    if args.json:
        args.json.write_text(json.dumps([[n, mode, f] for n, mode, f in rows], indent=1))


if __name__ == "__main__":
    main()
