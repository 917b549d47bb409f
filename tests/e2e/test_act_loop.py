"""The whole ACT loop from the CLI on a real Label Studio 1.23.2.

setup → annotate (stub OpenAI-compatible LLM) → review (budgeted draw stored in Label Studio) →
human annotations through the SDK, as reviewers would → sync → report. Rows, weights and the
report's figures are checked against values computed here, independently of our modules.
"""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from act_backend.records import review_records
from act_backend.testing.openai_server import OpenAIStubServer
from act_plugin.cli import app
from tests.support.backend import serve_backend, settings_for
from tests.support.cli import run_ok
from tests.support.configs import TEXT
from tests.support.llm import ScriptedLLM
from tests.support.projects import choice

pytestmark = pytest.mark.e2e

LABELS = ("positive", "negative", "neutral")
# 16 reviews: text → (true label, machine label, critic suspicion). Machine is wrong on 5.
ITEMS = {
    f"review {i:02d} {word}": (true, machine, p)
    for i, (word, true, machine, p) in enumerate(
        [
            ("great", "positive", "positive", 0.05),
            ("awful", "negative", "negative", 0.10),
            ("meh", "neutral", "positive", 0.80),  # wrong, caught
            ("superb", "positive", "positive", 0.15),
            ("broken", "negative", "neutral", 0.70),  # wrong, caught
            ("fine", "neutral", "neutral", 0.20),
            ("lovely", "positive", "negative", 0.90),  # wrong, caught
            ("terrible", "negative", "negative", 0.08),
            ("okay", "neutral", "neutral", 0.30),
            ("nice", "positive", "positive", 0.12),
            ("bad", "negative", "positive", 0.25),  # wrong, missed by the critic
            ("average", "neutral", "neutral", 0.40),
            ("wonderful", "positive", "positive", 0.03),
            ("poor", "negative", "negative", 0.18),
            ("so-so", "neutral", "negative", 0.65),  # wrong, caught
            ("fantastic", "positive", "positive", 0.07),
        ]
    )
}


@pytest.fixture
def env(tmp_path, label_studio, monkeypatch):
    responder = ScriptedLLM(
        labels={text: machine for text, (_, machine, _) in ITEMS.items()},
        suspicion={text: p for text, (_, _, p) in ITEMS.items()},
        default_label="neutral",
    )
    with OpenAIStubServer(responder=responder) as llm:
        settings = settings_for(llm, tmp_path / "backend-cache")
        for key, value in {
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "sk-test",
            "ACT_CACHE_DIR": str(tmp_path / "cli-cache"),
            "LABEL_STUDIO_URL": label_studio.url,
            "LABEL_STUDIO_API_KEY": label_studio.token,
        }.items():
            monkeypatch.setenv(key, value)
        with serve_backend(settings) as backend_url:
            yield backend_url


def test_setup_annotate_review_sync_report(env, ls_client, make_project, tmp_path):
    project_id = make_project(TEXT, [{"text": text} for text in ITEMS])
    pid = str(project_id)
    run_ok("setup", "--project", pid, "--backend-url", env)
    run_ok("annotate", "--project", pid)

    # review: thresholded with a floor, 6 reviews expected, fixed seed
    run_ok(
        "review",
        "--project",
        pid,
        "--budget",
        "6",
        "--rule",
        "thresholded",
        "--floor",
        "0.2",
        "--seed",
        "7",
    )
    tasks = {t.data["text"]: t for t in ls_client.tasks.list(project=project_id, fields="all")}
    # only the drawn tasks have a review record (the others' π is recomputed by sync)
    records = review_records({t.id: t.meta for t in tasks.values()})
    meta = {text: records.get(t.id) for text, t in tasks.items()}
    drawn = [text for text, m in meta.items() if m]
    # π: the floor 0.2·6/16 = 0.075 for all, and the top ⌊0.8·6⌋ = 4 suspicions get π = 1
    top4 = sorted(ITEMS, key=lambda t: -ITEMS[t][2])[:4]
    assert all(meta[t]["pi"] == pytest.approx(1.0) for t in top4)
    assert all(meta[t]["pi"] >= 0.075 - 1e-9 and meta[t]["delta"] == 1 for t in drawn)

    # a second review run without --redraw keeps the draw
    run_ok("review", "--project", pid, "--budget", "3", "--seed", "99")
    listed = list(ls_client.tasks.list(project=project_id, fields="all"))
    records = review_records({t.id: t.meta for t in listed})
    again = {t.data["text"]: records.get(t.id) for t in listed}
    assert again == meta

    # reviewers label every drawn task with the truth; one extra task is reviewed outside the
    # sample; one cancelled annotation must not count
    outside = next(text for text in ITEMS if text not in drawn)
    for text in drawn:
        ls_client.annotations.create(id=tasks[text].id, result=choice(ITEMS[text][0]))
    ls_client.annotations.create(id=tasks[outside].id, result=choice(ITEMS[outside][0]))
    cancelled = next(t for t in ITEMS if t not in drawn and t != outside)
    ls_client.annotations.create(
        id=tasks[cancelled].id, result=choice("negative"), was_cancelled=True
    )

    out = tmp_path / "training-set"
    run_ok("sync", "--project", pid, "--out", str(out), "--formats", "jsonl,csv,parquet")
    rows = {r["data"]["text"]: r for r in map(json.loads, (out / "training_set.jsonl").open())}
    assert len(rows) == len(ITEMS)
    assert sum(row["pi"] for row in rows.values()) == pytest.approx(6, abs=1e-6)
    assert all(row["pi"] >= 0.075 - 1e-9 for row in rows.values())
    for text, row in rows.items():
        true, machine, p = ITEMS[text]
        assert row["machine_label"] == [machine]
        assert row["suspicion"] == pytest.approx(p)
        reviewed = text in drawn or text == outside
        assert row["reviewed"] is reviewed
        assert row["human_label"] == ([true] if reviewed else None)
        # not drawn and not reviewed: the weights do not depend on π
        pi = meta[text]["pi"] if meta[text] else 1.0
        delta = 1 if reviewed else 0
        assert row["delta"] == delta
        assert row["outside_sample"] is (text == outside)
        assert row["weight_human"] == pytest.approx(delta / pi)
        assert row["weight_machine"] == pytest.approx(1 - delta / pi)
    first = (out / "training_set.jsonl").read_bytes(), (out / "training_set.parquet").read_bytes()
    run_ok("sync", "--project", pid, "--out", str(out), "--formats", "jsonl,csv,parquet")
    second = (out / "training_set.jsonl").read_bytes(), (out / "training_set.parquet").read_bytes()
    assert first == second  # same project state, byte-identical output

    figures = json.loads(_report_json(out))
    # ACT accuracy estimate, computed independently: 1 − (1/N) Σ e_i δ_i / π_i
    n = len(ITEMS)
    wrong_weight = 0.0
    for text, (true, machine, _) in ITEMS.items():
        reviewed = text in drawn or text == outside
        if reviewed and true != machine:
            wrong_weight += 1 / (1.0 if text == outside else meta[text]["pi"])
    expected = 1 - wrong_weight / n
    accuracy = figures["accuracy"]
    assert accuracy["estimate"] == pytest.approx(expected)
    assert accuracy["ci_low"] <= expected <= accuracy["ci_high"]
    assert figures["n_reviewed"] == len(drawn) + 1
    assert figures["labels_avoided"] == n - len(drawn) - 1
    assert math.isclose(figures["human_share"], (len(drawn) + 1) / n)
    assert (out / "report.html").exists() and (out / "report.png").exists()


def _report_json(out) -> str:
    result = CliRunner().invoke(app, ["report", "--training-set", str(out)])
    assert result.exit_code == 0, result.output
    return result.stdout[result.stdout.index("{") :]
