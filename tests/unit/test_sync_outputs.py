"""Sync's write phase: debris of a killed run is removed, a concurrent sync's files are not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from act_plugin.sync.fetch import STATE_FILE
from act_plugin.sync.outputs import OUTPUT_NAMES, REVIEW_FILE, write_outputs
from act_plugin.sync.rows import COLUMNS

# A sync's write phase in its own process: many rows, every format, so it runs for seconds.
WRITER = """
import sys
from pathlib import Path
from act_plugin.sync.outputs import FORMATS, write_outputs
from act_plugin.sync.rows import COLUMNS
n = int(sys.argv[2])
rows = [dict(dict.fromkeys(COLUMNS), task_id=i, data={"text": "x" * 200}) for i in range(n)]
write_outputs(Path(sys.argv[1]), rows, FORMATS, {"writer": "other"})
"""


def rows(n: int) -> list[dict]:
    return [dict(dict.fromkeys(COLUMNS), task_id=i, data={"text": f"t{i}"}) for i in range(n)]


def start_writer(out: Path, n_rows: int = 30_000) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(n_rows)])


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until ``path`` exists (the writer is in its write phase)."""
    until = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > until:
            proc.kill()
            pytest.fail(f"the writer never wrote {path.name}")
        time.sleep(0.005)


def test_a_sync_removes_the_temp_files_of_a_run_killed_in_its_write_phase(tmp_path):
    writer = start_writer(tmp_path)
    wait_for(tmp_path / f".tmp-hf_dataset-{writer.pid}", writer)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    debris = [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert f".tmp-training_set.jsonl-{writer.pid}" in debris  # what was left behind

    write_outputs(tmp_path, rows(3), ("jsonl", "hf"), {"writer": "us"})
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    assert len((tmp_path / "training_set.jsonl").read_text().splitlines()) == 3


def test_only_its_own_temp_names_are_removed(tmp_path):
    csv, hf = OUTPUT_NAMES["csv"], OUTPUT_NAMES["hf"]
    ours = [f".tmp-{csv}-123", f".old-{hf}-9", f".tmp-{STATE_FILE}-1", f".tmp-{REVIEW_FILE}-5"]
    foreign = [".tmp-notes-123", ".tmp-training_set.jsonl-abc", "my.tmp-file", ".old-x-1"]
    for name in ours + foreign:
        (tmp_path / name).write_text("x")
    (tmp_path / f".tmp-{hf}-77").mkdir()
    (tmp_path / f".tmp-{hf}-77" / "data.arrow").write_text("x")

    write_outputs(tmp_path, rows(1), ("jsonl",), {})
    left = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in ours if n in left] == [] and f".tmp-{hf}-77" not in left
    # no lock file either; review.json holds the plan of a review in rounds (none here)
    assert left == sorted([*foreign, OUTPUT_NAMES["jsonl"], REVIEW_FILE, STATE_FILE])
    assert json.loads((tmp_path / REVIEW_FILE).read_text()) is None


def test_a_concurrent_sync_is_waited_for_not_broken(tmp_path):
    writer = start_writer(tmp_path)
    wait_for(tmp_path / f".tmp-training_set.jsonl-{writer.pid}", writer)
    ours = threading.Thread(target=write_outputs, args=(tmp_path, rows(2), ("jsonl",), {"w": "us"}))
    ours.start()
    time.sleep(0.3)
    assert writer.poll() is None and ours.is_alive()  # we wait while it writes
    assert writer.wait(timeout=120) == 0  # its temp files were left alone: it completed
    ours.join(timeout=60)
    assert len((tmp_path / "training_set.jsonl").read_text().splitlines()) == 2  # ours, after
    assert json.loads((tmp_path / STATE_FILE).read_text()) == {"w": "us"}
    assert (tmp_path / OUTPUT_NAMES["hf"]).is_dir()  # its hf output stayed
