"""The demo tells the truth: its report's intervals contain the true figures (issue 10).

The demo's data (the 360 packaged Debian package descriptions with their true sections) on a
real Label Studio 1.23.2: setup → annotate (the offline default engine) → review (the demo's
budget and seed) → every drawn task reviewed with its true section, through the SDK as a
reviewer would → sync → report. The true accuracy of the machine labels and the true number of
wrong labels left must lie inside the report's intervals.
"""

from __future__ import annotations

import json
import os

import pytest

from act_backend.settings import load_settings
from act_plugin.demo import DEMO_SEED, demo_label_config
from act_plugin.demo_data import load_debian_dataset
from tests.support.backend import serve_backend
from tests.support.cli import run_ok
from tests.support.projects import choice

pytestmark = pytest.mark.e2e


@pytest.fixture
def offline_backend(tmp_path, label_studio, monkeypatch):
    for key in list(os.environ):
        if key.startswith(("ACT_", "OPENAI_", "LABEL_STUDIO_")):
            monkeypatch.delenv(key)
    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "ACT_CACHE_DIR": str(tmp_path / "cli-cache"),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
    }.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(env={"ACT_CACHE_DIR": str(tmp_path / "backend-cache")})
    with serve_backend(settings) as url:
        yield url


def rows_of(out) -> list[dict]:
    return [json.loads(line) for line in (out / "training_set.jsonl").read_text().splitlines()]


def test_demo_report_intervals_contain_the_truth(
    offline_backend, ls_client, make_project, tmp_path
):
    truth = {r["text"]: r["section"] for r in load_debian_dataset()}
    project_id = make_project(demo_label_config(), [{"text": text} for text in truth])
    pid = str(project_id)
    run_ok("setup", "--project", pid, "--backend-url", offline_backend)
    run_ok("annotate", "--project", pid)
    run_ok("review", "--project", pid, "--budget", "0.2", "--seed", str(DEMO_SEED))

    out = tmp_path / "training-set"
    run_ok("sync", "--project", pid, "--out", str(out), "--formats", "jsonl")
    drawn = [row for row in rows_of(out) if row["pending"]]
    assert 40 <= len(drawn) <= 110  # about 20% of 360
    assert all(row["weight_machine"] == row["weight_human"] == 0.0 for row in drawn)
    for row in drawn:  # the reviewers: the true section of every drawn task
        label = truth[row["data"]["text"]]
        ls_client.annotations.create(id=row["task_id"], result=choice(label, control="section"))

    run_ok("sync", "--project", pid, "--out", str(out), "--formats", "jsonl")
    rows = rows_of(out)
    assert len(rows) == len(truth) and not any(row["pending"] for row in rows)
    wrong = {row["task_id"]: row["machine_label"] != [truth[row["data"]["text"]]] for row in rows}
    true_accuracy = 1.0 - sum(wrong.values()) / len(rows)
    true_left = sum(wrong[row["task_id"]] for row in rows if not row["reviewed"])

    report = run_ok("report", "--training-set", str(out))
    figures = json.loads(report[report.index("{") :])
    accuracy = figures["accuracy"]
    assert accuracy["ci_low"] <= true_accuracy <= accuracy["ci_high"], (accuracy, true_accuracy)
    assert accuracy["ci_low"] < accuracy["ci_high"]  # unreviewed rows with π < 1 remain
    low, high = figures["remaining_errors_ci"]
    assert low <= true_left <= high, (figures["estimated_remaining_errors"], low, high, true_left)
    found = sum(wrong[row["task_id"]] for row in rows if row["reviewed"])
    assert figures["n_reviewed_wrong"] == found
