"""End to end: reviewed tasks of a real Label Studio 1.23.2 become a weighted training set."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from act_plugin.labelstudio import gateway
from act_plugin.review import DrawParams, compute_draw, draw_sample
from act_plugin.sync import COLUMNS, REVIEW_FILE, STATE_FILE, SyncError, sync_training_set
from tests.support.faulty_proxy import FaultyProxy
from tests.support.projects import (
    CHOICES,
    MODEL_VERSION,
    TEXTAREA,
    choice,
    client_at,
    ls_http,
    rationale,
    read_tasks,
    review_records_of,
    task_ids,
    text_answer,
    write_act_predictions,
)

N_TASKS = 12
LAM = 0.7
DRAW = {"budget": 5, "rule": "exponential", "floor": 0.2}


def digest(out: Path) -> dict[str, str]:
    """SHA-256 of every file under ``out`` (relative path → hash)."""
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def jsonl_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "training_set.jsonl").read_text().splitlines()]


@pytest.fixture
def drawn_project(ls_client, make_project):
    """12 tasks with ACT predictions and a draw with ≥ 4 tasks in and ≥ 3 out of the sample."""
    project_id = make_project(CHOICES, [{"text": f"item {i}"} for i in range(N_TASKS)])
    ids = task_ids(ls_client, project_id)
    suspicion = {t: round(0.05 + 0.07 * ((5 * k) % N_TASKS), 3) for k, t in enumerate(ids)}
    machine = {t: ("positive" if k % 2 == 0 else "negative") for k, t in enumerate(ids)}
    write_act_predictions(ls_client, suspicion, labels=machine)
    ls_client.projects.update(id=project_id, model_version=MODEL_VERSION)
    eps = [suspicion[t] for t in ids]
    seed = next(
        s
        for s in range(500)
        if 4
        <= compute_draw(eps, DrawParams(**DRAW, beta=10.0, seed=s, model_version=""))[1].sum()
        <= N_TASKS - 3
    )
    draw = draw_sample(ls_client, project_id, seed=seed, **DRAW)
    return project_id, ids, machine, draw


@pytest.mark.e2e
def test_rows_and_weights_match_an_independent_computation(
    drawn_project, ls_client, label_studio, tmp_path
):
    project_id, ids, machine, draw = drawn_project
    inside = sorted(draw.task_ids)
    outside = [t for t in ids if t not in inside]
    flip = {"positive": "negative", "negative": "positive"}
    agree, disagree, cancelled, twice = inside[:4]
    ls_client.annotations.create(id=agree, result=choice(machine[agree]))
    ls_client.annotations.create(id=disagree, result=choice(flip[machine[disagree]]))
    ls_client.annotations.create(id=cancelled, result=[], was_cancelled=True)
    first = ls_client.annotations.create(id=twice, result=choice("neutral"))
    ls_client.annotations.create(id=twice, result=choice(machine[twice]))
    ls_client.annotations.update(id=first.id, result=choice("neutral"))  # now the latest
    ls_client.annotations.create(id=outside[0], result=choice(flip[machine[outside[0]]]))
    # "Create annotations from predictions" (Data Manager action): machine-made, not a review
    response = ls_http(label_studio).post(
        "/api/dm/actions",
        params={"id": "predictions_to_annotations", "project": project_id},
        json={"selectedItems": {"all": False, "included": [outside[1]]}},
    )
    assert response.status_code == 200, response.text

    result = sync_training_set(ls_client, project_id, tmp_path, lam=LAM)

    rows = jsonl_rows(tmp_path)
    assert [r["task_id"] for r in rows] == ids and all(list(r) == sorted(COLUMNS) for r in rows)
    assert result.problems == []
    tasks = read_tasks(ls_client, project_id)
    metas = review_records_of(ls_client, project_id)
    assert [t for t in ids if metas[t]] == list(draw.task_ids)  # only drawn tasks carry one
    eps = {t: tasks[t]["predictions"][0]["mislabeling"] for t in ids}
    params = DrawParams(**DRAW, beta=10.0, seed=draw.seed, model_version=MODEL_VERSION)
    pi_all, delta_all = compute_draw([eps[t] for t in ids], params)
    expected = {t: (float(p), bool(d)) for t, p, d in zip(ids, pi_all, delta_all, strict=True)}
    human = {
        agree: machine[agree],
        disagree: flip[machine[disagree]],
        twice: "neutral",
        outside[0]: flip[machine[outside[0]]],
    }
    for row in rows:
        t = row["task_id"]
        pi, drawn = expected[t]
        reviewed = t in human
        in_sample, out_sample = drawn, reviewed and not drawn
        delta = 1 if reviewed else 0
        pi_used = 1.0 if out_sample else pi
        assert row["data"] == {"text": f"item {ids.index(t)}"}
        assert row["machine_label"] == [machine[t]]
        assert row["human_label"] == ([human[t]] if reviewed else None)
        assert (row["reviewed"], row["in_sample"], row["outside_sample"], row["pending"]) == (
            reviewed, in_sample, out_sample, in_sample and not reviewed,
        )  # fmt: skip
        assert (row["pi"], row["delta"], row["draw_id"]) == (pi, delta, draw.draw_id)
        kept = 0.0 if row["pending"] else 1.0  # pending rows weigh nothing until reviewed
        assert row["weight_human"] == pytest.approx(kept * delta / pi_used)
        assert row["weight_machine"] == pytest.approx(kept * LAM * (1 - delta / pi_used))
        assert row["machine_correct"] == ((human[t] == machine[t]) if reviewed else None)
        assert row["suspicion"] == pytest.approx(eps[t])
        assert row["model_version"] == MODEL_VERSION
        assert (row["annotator"] is not None) == reviewed == (row["annotation_id"] is not None)
    by_id = {r["task_id"]: r for r in rows}
    assert by_id[twice]["annotation_id"] == first.id  # the latest by updated_at wins
    assert by_id[outside[0]]["weight_human"] == 1.0 and by_id[outside[0]]["weight_machine"] == 0
    assert (result.n_rows, result.n_reviewed, result.n_outside_sample) == (N_TASKS, 4, 1)
    assert (result.n_in_sample, result.n_pending) == (len(inside), len(inside) - 3)

    # every format holds the same rows
    with open(tmp_path / "training_set.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == list(COLUMNS) and len(table) == N_TASKS + 1
    assert json.loads(table[1][1]) == rows[0]["data"] and table[1][4] in ("true", "false")
    import datasets
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "training_set.parquet").to_pylist() == [
        {c: r[c] for c in COLUMNS} for r in rows
    ]
    assert datasets.load_from_disk(str(tmp_path / "hf_dataset")).to_list() == [
        {c: r[c] for c in COLUMNS} for r in rows
    ]

    # annotations of a bot user are never reviews
    me = ls_client.users.whoami().id
    bots = sync_training_set(ls_client, project_id, tmp_path / "bots", bot_users=[me])
    assert bots.n_reviewed == 0 and bots.n_pending == len(inside)


@pytest.mark.e2e
def test_a_textarea_project_without_a_draw(ls_client, make_project, tmp_path):
    questions = [{"question": f"q{i}"} for i in range(4)]
    project_id = make_project(TEXTAREA, questions)
    ids = task_ids(ls_client, project_id)
    for t in ids:
        ls_client.predictions.create(
            task=t,
            result=[*text_answer("a cat"), rationale("looks like one", "question")],
            score=0.8,
            model_version=MODEL_VERSION,
        )
    ls_client.annotations.create(id=ids[0], result=text_answer(" a cat "))
    ls_client.annotations.create(id=ids[1], result=text_answer("A dog"))

    result = sync_training_set(ls_client, project_id, tmp_path, formats=["jsonl"])

    rows = jsonl_rows(tmp_path)
    assert [r["machine_label"] for r in rows] == [["a cat"]] * 4  # not the rationale
    assert [r["human_label"] for r in rows] == [[" a cat "], ["A dog"], None, None]
    assert [r["machine_correct"] for r in rows] == [True, False, None, None]
    assert [r["suspicion"] for r in rows] == pytest.approx([0.2] * 4)  # 1 − score
    assert [r["pi"] for r in rows] == [None] * 4 and [r["draw_id"] for r in rows] == [None] * 4
    assert [r["outside_sample"] for r in rows] == [True, True, False, False]
    assert [(r["weight_machine"], r["weight_human"]) for r in rows] == [
        (0.0, 1.0), (0.0, 1.0), (1.0, 0.0), (1.0, 0.0),
    ]  # fmt: skip
    assert result.paths == {"jsonl": tmp_path / "training_set.jsonl"}
    assert not (tmp_path / "training_set.csv").exists()


@pytest.mark.e2e
def test_labels_outside_the_config_are_reported(drawn_project, ls_client, tmp_path):
    project_id, ids, _, draw = drawn_project
    odd, renamed = ids[0], ids[1]
    ls_client.annotations.create(id=odd, result=choice("maybe"))  # Label Studio accepts it
    # the machine said "neutral", a human reviewed it, then "neutral" left the label config
    write_act_predictions(ls_client, {renamed: 0.5}, labels={renamed: "neutral"})
    ls_client.annotations.create(id=renamed, result=choice("positive"))
    without_neutral = CHOICES.replace('<Choice value="neutral"/>', "")
    ls_client.projects.update(id=project_id, label_config=without_neutral)

    result = sync_training_set(ls_client, project_id, tmp_path, formats=["jsonl"])

    by_id = {r["task_id"]: r for r in jsonl_rows(tmp_path)}
    # the newer prediction of `renamed` changed a suspicion the draw was made from: said too
    draw_problem, *problems = result.problems
    assert draw_problem.task_id is None and "fingerprint differs" in draw_problem.reason
    reported = [(p.task_id, "not in the current label config" in p.reason) for p in problems]
    assert reported == [(odd, True), (renamed, True)]
    assert "'maybe'" in problems[0].reason and "'neutral'" in problems[1].reason
    for t in (odd, renamed):
        row = by_id[t]
        assert (row["reviewed"], row["human_label"], row["delta"], row["weight_human"]) == (
            False, None, 0, 0.0,
        )  # fmt: skip
        assert row["pending"] == (t in draw.task_ids)
    assert by_id[renamed]["machine_label"] == ["neutral"]
    assert result.n_reviewed == 0


@pytest.mark.e2e
def test_a_deleted_task_is_absent_and_its_draw_reported(drawn_project, ls_client, tmp_path):
    project_id, _, _, draw = drawn_project
    sync_training_set(ls_client, project_id, tmp_path, formats=["jsonl"])
    gone = draw.task_ids[0]
    ls_client.tasks.delete(id=gone)

    result = sync_training_set(ls_client, project_id, tmp_path, formats=["jsonl"])

    assert gone not in [r["task_id"] for r in jsonl_rows(tmp_path)]
    assert result.n_rows == N_TASKS - 1 and result.deleted == [gone] and result.incremental
    (problem,) = result.problems
    assert problem.task_id is None and f"covered {N_TASKS} tasks but only {N_TASKS - 1}" in (
        problem.reason
    )


@pytest.mark.e2e
def test_suspicions_changed_after_the_draw_are_a_problem_not_a_guess(
    drawn_project, ls_client, label_studio, tmp_path
):
    project_id, ids, _, draw = drawn_project
    before = {r["task_id"]: r for r in jsonl_rows_of(ls_client, project_id, tmp_path / "a")}
    assert all(r["pi"] is not None for r in before.values())  # recomputed for every row
    undrawn = next(t for t in ids if t not in draw.task_ids)
    write_act_predictions(ls_client, {undrawn: 0.99})  # a newer ACT prediction

    result = sync_training_set(label_studio.client(), project_id, tmp_path / "b")

    rows = {r["task_id"]: r for r in jsonl_rows(tmp_path / "b")}
    (problem,) = result.problems
    assert problem.task_id is None and "fingerprint differs" in problem.reason
    for t in ids:  # drawn rows keep their stored π; the others' π is unknown, weights are not
        expected = before[t]["pi"] if t in draw.task_ids else None
        assert (rows[t]["pi"], rows[t]["in_sample"]) == (expected, t in draw.task_ids)
        assert rows[t]["weight_machine"] == before[t]["weight_machine"]
        assert rows[t]["draw_id"] == draw.draw_id  # the view still says which tasks it covered


def jsonl_rows_of(client, project_id: int, out: Path) -> list[dict]:
    sync_training_set(client, project_id, out, formats=["jsonl"])
    return jsonl_rows(out)


@pytest.mark.e2e
def test_syncs_are_byte_identical_and_incremental(drawn_project, ls_client, tmp_path):
    project_id, ids, machine, draw = drawn_project
    ls_client.annotations.create(id=draw.task_ids[0], result=choice(machine[draw.task_ids[0]]))
    out = tmp_path / "out"

    first = sync_training_set(ls_client, project_id, out)
    before = digest(out)
    second = sync_training_set(ls_client, project_id, out)

    assert (first.fetched, first.incremental) == (N_TASKS, False)
    assert (second.fetched, second.incremental) == (0, True)
    assert digest(out) == before  # JSONL, CSV, Parquet, the HF dataset, the plan and the state
    assert {p.split("/")[0] for p in before} == {
        "training_set.jsonl", "training_set.csv", "training_set.parquet", "hf_dataset",
        REVIEW_FILE, STATE_FILE,
    }  # fmt: skip

    ls_client.annotations.create(id=ids[-1], result=choice("neutral"))
    third = sync_training_set(ls_client, project_id, out)

    assert (third.fetched, third.incremental, third.n_reviewed) == (1, True, 2)
    full = sync_training_set(ls_client, project_id, tmp_path / "full", full=True)
    assert full.fetched == N_TASKS
    assert digest(tmp_path / "full") == digest(out)  # incremental = full, byte for byte


@pytest.mark.e2e
@pytest.mark.parametrize(("mode", "fail_after"), [("503", 2), ("close", 3)])
def test_label_studio_failing_mid_sync_writes_nothing(
    drawn_project, ls_client, label_studio, tmp_path, monkeypatch, mode, fail_after
):
    project_id, ids, _, _ = drawn_project
    sync_training_set(ls_client, project_id, tmp_path)
    before = digest(tmp_path)
    ls_client.annotations.create(id=ids[0], result=choice("neutral"))
    monkeypatch.setattr(gateway, "RETRY_DELAYS", (0.05, 0.1))
    monkeypatch.setattr(gateway, "PAGE_SIZE", 5)  # 3 pages: the failure comes mid-list

    with FaultyProxy(label_studio.url, fail_after=fail_after, mode=mode) as proxy:
        flaky = client_at(proxy.url, label_studio.token)
        with pytest.raises(SyncError, match="Nothing was written"):
            sync_training_set(flaky, project_id, tmp_path, full=True)
    assert len(proxy.requests) == fail_after + 3  # the failing request was tried 3 times

    assert digest(tmp_path) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    assert sync_training_set(ls_client, project_id, tmp_path).n_reviewed == 1  # recovers


@pytest.mark.e2e
def test_the_rationale_field_is_named_as_for_annotate(ls_client, make_project, tmp_path):
    """A rationale TextArea named otherwise is the second target unless sync is told its name."""
    config = CHOICES.replace('name="act_rationale"', 'name="why"')
    project_id = make_project(config, [{"text": "a"}])
    write_act_predictions(ls_client, {task_ids(ls_client, project_id)[0]: 0.4})
    with pytest.raises(SyncError, match="exactly one"):
        sync_training_set(ls_client, project_id, tmp_path)
    assert sync_training_set(ls_client, project_id, tmp_path, rationale_field="why").n_rows == 1


@pytest.mark.e2e
def test_a_project_without_act_predictions(ls_client, make_project, tmp_path):
    project_id = make_project(CHOICES, [{"text": "a"}])
    with pytest.raises(SyncError, match="run `ls-act annotate` first"):
        sync_training_set(ls_client, project_id, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_hf_format_names_the_extra_when_datasets_is_missing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets → ImportError
    with pytest.raises(SyncError, match=r"label-studio-act\[hf\]"):
        sync_training_set(None, 1, tmp_path, formats=["jsonl", "hf"])  # type: ignore[arg-type]


def test_bad_options():
    with pytest.raises(SyncError, match="formats"):
        sync_training_set(None, 1, Path("x"), formats=["xlsx"])  # type: ignore[arg-type]
    for lam in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(SyncError, match="lam"):
            sync_training_set(None, 1, Path("x"), lam=lam)  # type: ignore[arg-type]


def test_weights_use_pi_one_outside_the_sample():
    """build_rows alone, on hand-made tasks (no server)."""
    from act_backend.labeling import parse_label_config
    from act_plugin.sync import build_rows

    spec = parse_label_config(CHOICES)
    act = {"draw_id": "d", "pi": 0.25, "delta": 1, "n_tasks": 2, "drawn_at": "2026-01-01T00:00Z"}
    prediction = {"model_version": "m", "score": 0.4, "result": choice("positive"), "id": 1}
    annotation = {"id": 5, "result": choice("negative"), "completed_by": 3, "updated_by": 3}
    tasks = [
        {"id": 2, "data": {}, "meta": {"act": act}, "predictions": [prediction],
         "annotations": [annotation]},
        {"id": 1, "data": {}, "meta": {"act": {**act, "delta": 0, "pi": 0.5}},
         "predictions": [prediction], "annotations": [annotation]},
    ]  # fmt: skip
    rows, problems = build_rows(tasks, spec, model_version="m", lam=0.5)
    assert problems == []
    assert [(r["task_id"], r["in_sample"], r["outside_sample"]) for r in rows] == [
        (1, False, True), (2, True, False),
    ]  # fmt: skip
    np.testing.assert_allclose([r["weight_human"] for r in rows], [1.0, 4.0])
    np.testing.assert_allclose([r["weight_machine"] for r in rows], [0.0, 0.5 * (1 - 4.0)])
    assert [r["pi"] for r in rows] == [0.5, 0.25]  # the draw's π is kept
