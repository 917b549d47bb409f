"""`ls-act demo` on a fresh data dir, offline default engine, then again on the same dir."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from act_plugin.cli import app
from act_plugin.local_ls import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def offline_env(monkeypatch, label_studio_installed):
    for key in list(os.environ):
        if key.startswith(("ACT_", "OPENAI_", "LABEL_STUDIO_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_demo_runs_offline_and_reuses_its_data_dir(offline_env, tmp_path):
    args = [
        "demo",
        "--data-dir",
        str(tmp_path / "demo"),
        "--port",
        str(free_port()),
        "--backend-port",
        str(free_port()),
        "--no-wait",
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "engines: annotator embedding:all-MiniLM-L6-v2" in first.output
    assert "ACT demo is running" in first.output and "Label Tasks As Displayed" in first.output
    assert "predictions written" in first.output and "360" in first.output

    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    # nothing new to annotate, and the review sample is the one drawn the first time
    assert "already annotated (skipped)" in second.output
    skipped_row = next(line for line in second.output.splitlines() if "already annotated" in line)
    assert "360" in skipped_row
