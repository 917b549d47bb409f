"""End to end: a review in rounds with a certificate, against a real Label Studio 1.23.2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from act_plugin import review
from act_plugin.act_math import platt_map
from act_plugin.labelstudio import gateway
from act_plugin.report import compute_report
from act_plugin.review import REVIEW_VIEW_TITLE, ReviewError
from act_plugin.rounds import review_in_rounds
from act_plugin.sequential import last_round_weights
from act_plugin.sync import REVIEW_FILE, sync_training_set
from tests.support.cli import run_ok
from tests.support.faulty_proxy import FaultyProxy
from tests.support.projects import (
    CHOICES,
    MODEL_VERSION,
    choice,
    client_at,
    ls_http,
    review_records_of,
    task_ids,
    view_task_ids,
    write_act_predictions,
)

pytestmark = pytest.mark.e2e

N_TASKS = 40
#: The truth: the machine says "positive" everywhere; these tasks are really "negative".
WRONG_EVERY = 5


@pytest.fixture
def round_project(ls_client, make_project):
    """40 tasks; every 5th machine label is wrong and the critic suspects those most."""
    project_id = make_project(CHOICES, [{"text": f"item {i}"} for i in range(N_TASKS)])
    ids = task_ids(ls_client, project_id)
    wrong = {t for k, t in enumerate(ids) if k % WRONG_EVERY == 0}
    suspicion = {t: (0.7 if t in wrong else 0.2) + 0.001 * k for k, t in enumerate(ids)}
    write_act_predictions(ls_client, suspicion)
    ls_client.projects.update(id=project_id, model_version=MODEL_VERSION)
    return project_id, ids, wrong


def review_drawn(client, http, project_id, wrong):
    """Reviewers label the current round's tasks (the review view) with the truth."""
    view = next(
        v
        for v in http.get("/api/dm/views", params={"project": project_id}).json()
        if v["data"].get("title") == REVIEW_VIEW_TITLE
    )
    for task_id in view_task_ids(http, project_id, view["id"]):
        client.annotations.create(
            id=task_id, result=choice("negative" if task_id in wrong else "positive")
        )


def synced_rows(client, project_id, out, **options):
    sync_training_set(client, project_id, out, formats=["jsonl"], **options)
    lines = (out / "training_set.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_rounds_wait_for_reviews_recalibrate_and_stop_when_certified(
    round_project, ls_client, label_studio, tmp_path
):
    project_id, _, wrong = round_project
    http = ls_http(label_studio)
    options = dict(budget=0.5, rounds=4, target=0.9, confidence=0.9, seed=3)

    first = review_in_rounds(ls_client, project_id, **options)
    assert (first.state, first.round, first.rounds) == ("drawn", 1, 4)
    assert first.draw is not None and first.draw.expected == pytest.approx(5.0)  # B/K = 20/4
    again = review_in_rounds(label_studio.client(), project_id, **options)  # another machine
    assert (again.state, again.round, again.pending) == ("waiting", 1, first.draw.drawn)

    states = [first]
    while states[-1].state in ("drawn", "waiting") and len(states) < 12:
        review_drawn(ls_client, http, project_id, wrong)
        states.append(review_in_rounds(ls_client, project_id, **options))
    final = states[-1]
    assert final.state in ("certified", "done"), [s.message for s in states]
    assert final.certificate is not None
    rows = synced_rows(ls_client, project_id, tmp_path)
    by_round = {r["round"] for r in rows if r["round"] is not None}
    assert by_round == set(range(1, final.round + 1))
    # the certificate holds: everything wrong left is counted from the truth
    reviewed = {r["task_id"] for r in rows if r["reviewed"]}
    left = len(wrong - reviewed)
    true_accuracy = 1 - left / N_TASKS
    assert final.certificate.lower_bound <= true_accuracy
    if final.state == "certified":
        assert final.certificate.lower_bound >= 0.9
    # later rounds were drawn with the critic recalibrated on the reviews before them
    metas = [m for m in review_records_of(ls_client, project_id).values() if m]
    calibrations = {m["round"]: m["calibration"] for m in metas}
    assert calibrations[1] is None
    assert all(len(calibrations[r]) == 2 for r in calibrations if r > 1)
    assert len({m["series"] for m in metas}) == 1


def test_synced_weights_are_the_last_rounds_and_pending_rows_weigh_nothing(
    round_project, ls_client, label_studio, tmp_path
):
    project_id, _, wrong = round_project
    http = ls_http(label_studio)
    options = dict(budget=0.5, rounds=2, seed=5)
    review_in_rounds(ls_client, project_id, **options)
    review_drawn(ls_client, http, project_id, wrong)
    second = review_in_rounds(ls_client, project_id, **options)
    assert (second.state, second.round) == ("drawn", 2)

    rows = synced_rows(ls_client, project_id, tmp_path)
    assert all(len(r["pi_rounds"]) == 2 for r in rows)
    pending = [r for r in rows if r["pending"]]
    assert len(pending) == second.draw.drawn
    assert all(r["weight_machine"] == r["weight_human"] == 0.0 for r in pending)
    # a row drawn in round 1 is in no later pool; the rest are in round 2's
    for row in rows:
        if row["round"] == 1:
            assert row["pi_rounds"][1] == 0.0
        else:
            assert row["pi_rounds"][1] > 0.0
    pis = [np.array([r["pi_rounds"][k] for r in rows]) for k in range(2)]
    deltas = [np.array([r["round"] == k + 1 for r in rows]) for k in range(2)]
    machine, human = last_round_weights(pis, deltas)
    for row, w_m, w_h in zip(rows, machine, human, strict=True):
        if not row["pending"]:
            assert (row["weight_machine"], row["weight_human"]) == pytest.approx((w_m, w_h))

    # --soft-lambda: λ_i from the calibration round 2's π was computed with (rounds 1's reviews)
    (view,) = [v for v in http.get("/api/dm/views", params={"project": project_id}).json()
               if v["data"].get("title") == REVIEW_VIEW_TITLE]  # fmt: skip
    a, b = view["data"]["act"]["calibration"]
    soft = synced_rows(ls_client, project_id, tmp_path / "soft", soft_power=3)
    lam = (1 - platt_map(a, b)([r["suspicion"] for r in soft])) ** 3
    machine, human = last_round_weights(pis, deltas, lam=lam)
    for row, w_m, w_h in zip(soft, machine, human, strict=True):
        if not row["pending"]:
            assert (row["weight_machine"], row["weight_human"]) == pytest.approx((w_m, w_h))
    untouched = [s["weight_machine"] for s, r in zip(soft, rows, strict=True) if r["round"] is None]
    assert max(untouched) <= 1.0 and min(untouched) < 1.0


def test_the_cli_runs_the_rounds_and_the_report_states_the_certificate(
    round_project, ls_client, label_studio, tmp_path
):
    project_id, _, wrong = round_project
    http = ls_http(label_studio)
    command = ["review", "--project", str(project_id), "--budget", "0.5", "--rounds", "2",
               "--target-accuracy", "0.99", "--confidence", "0.9", "--seed", "9",
               "--label-studio-url", label_studio.url, "--api-key", label_studio.token]  # fmt: skip
    run_ok(*command)
    review_drawn(ls_client, http, project_id, wrong)
    run_ok(*command)  # round 2
    review_drawn(ls_client, http, project_id, wrong)
    run_ok(*command)  # both rounds reviewed: the budget is spent
    out = tmp_path / "set"
    run_ok("sync", "--project", str(project_id), "--out", str(out), "--formats", "jsonl",
           "--label-studio-url", label_studio.url, "--api-key", label_studio.token)  # fmt: skip
    plan = json.loads((out / REVIEW_FILE).read_text())
    assert (plan["rounds"], plan["round"], plan["target"]) == (2, 2, 0.99)
    assert plan["total_budget"] == pytest.approx(20.0)
    rows = [json.loads(line) for line in (out / "training_set.jsonl").read_text().splitlines()]
    figures = compute_report(rows, plan=plan)
    cert = figures.certificate
    assert cert is not None and cert.rounds == 2 and cert.confidence == 0.9
    assert cert.alpha_spent == pytest.approx(0.1)
    reviewed = {r["task_id"] for r in rows if r["reviewed"]}
    assert cert.lower_bound <= 1 - len(wrong - reviewed) / N_TASKS
    low, high = figures.accuracy.ci_low, figures.accuracy.ci_high
    assert low <= 1 - len(wrong) / N_TASKS <= high
    run_ok("report", "--training-set", str(out))
    page = next(out.glob("*.html")).read_text()
    assert "Certificate: the training set" in page


def test_an_interrupted_round_is_finished_by_the_next_run(
    round_project, ls_client, label_studio, monkeypatch
):
    project_id, _, wrong = round_project
    http = ls_http(label_studio)
    monkeypatch.setattr(gateway, "RETRY_DELAYS", (0.01,))
    monkeypatch.setattr(review, "RECORDS_PER_WRITE", 1)  # a ledger per drawn task
    options = dict(budget=0.5, rounds=2, seed=13)
    review_in_rounds(ls_client, project_id, **options)
    review_drawn(ls_client, http, project_id, wrong)
    # project, task list, views, then 2 record writes of round 2 succeed
    with (
        FaultyProxy(label_studio.url, fail_after=3 + 2) as proxy,
        pytest.raises(ReviewError, match=r"\(2 of \d+ written\).*again"),
    ):
        review_in_rounds(client_at(proxy.url, label_studio.token), project_id, **options)
    partial = {t: m for t, m in round_metas(ls_client, project_id).items() if m["round"] == 2}
    assert len(partial) == 2

    finished = review_in_rounds(ls_client, project_id, **options)

    assert (finished.state, finished.round) == ("drawn", 2)
    assert "interrupted" in finished.message
    metas = round_metas(ls_client, project_id)
    second = {t: m for t, m in metas.items() if m["round"] == 2}
    assert {t: second[t] for t in partial} == partial  # the written part is untouched
    assert sorted(second) == list(finished.draw.task_ids)
    assert len({m["draw_id"] for m in second.values()}) == 1
    first = {t for t, m in metas.items() if m["round"] == 1}
    assert not first & set(second)  # round 2 drew from the tasks round 1 did not draw
    view = next(
        v
        for v in http.get("/api/dm/views", params={"project": project_id}).json()
        if v["data"].get("title") == REVIEW_VIEW_TITLE
    )
    assert sorted(view_task_ids(http, project_id, view["id"])) == sorted(second)
    assert [r["round"] for r in view["data"]["act"]["earlier_rounds"]] == [1]


def round_metas(client, project_id):
    """Each drawn task's review record, by task id."""
    return {t: m for t, m in review_records_of(client, project_id).items() if m}


def test_search_rounds_keep_the_floor_for_the_audit_round_and_estimate_from_it(
    round_project, ls_client, label_studio, tmp_path
):
    """Rounds 1 … K − 1 draw the most suspicious tasks without the floor; round K, the audit,
    with it. Sync's weights are the audit's ACT weights and the report's error count is the
    audit round's estimate alone (the search rounds weigh 0); a target is refused."""
    project_id, _, wrong = round_project
    http = ls_http(label_studio)
    options = dict(budget=0.5, rounds=3, seed=11, search_rounds=True)
    with pytest.raises(ReviewError, match="search rounds leave tasks out"):
        review_in_rounds(ls_client, project_id, **options, target=0.9)
    with pytest.raises(ReviewError, match="search rounds need the thresholded rule"):
        review_in_rounds(ls_client, project_id, **options, rule="exponential")
    run_ok("review", "--project", str(project_id), "--budget", "0.5", "--rounds", "3",
           "--search-rounds", "--seed", "11", "--label-studio-url", label_studio.url,
           "--api-key", label_studio.token)  # fmt: skip  # round 1, as a user draws it
    states = [review_in_rounds(ls_client, project_id, **options)]
    assert (states[0].state, states[0].round) == ("waiting", 1)
    review_drawn(ls_client, http, project_id, wrong)
    early = synced_rows(ls_client, project_id, tmp_path / "early")
    plan = json.loads((tmp_path / "early" / REVIEW_FILE).read_text())
    before = compute_report(early, plan=plan)  # no interval before the audit round
    assert before.accuracy is None and "audit round" in before.undefined["accuracy"]
    assert all(label.error_rate is None for label in before.per_label)
    plain = compute_report(early)  # the same rows as a single draw: an estimate appears
    assert plain.accuracy is not None
    states.append(review_in_rounds(ls_client, project_id, **options))
    while states[-1].state == "drawn":
        review_drawn(ls_client, http, project_id, wrong)
        states.append(review_in_rounds(ls_client, project_id, **options))
    assert [s.state for s in states] == ["waiting", "drawn", "drawn", "done"]
    assert "(a search round)" in states[1].message and "(the audit)" in states[2].message
    floors = {
        m["round"]: m["floor"] for m in review_records_of(ls_client, project_id).values() if m
    }
    assert floors == {1: 0.0, 2: 0.0, 3: pytest.approx(0.3)}

    rows = synced_rows(ls_client, project_id, tmp_path)
    pis = [np.array([r["pi_rounds"][k] for r in rows]) for k in range(3)]
    deltas = [np.array([r["round"] == k + 1 for r in rows]) for k in range(3)]
    left = ~(deltas[0] | deltas[1])
    assert (pis[0] == 0.0).sum() > N_TASKS / 2 and np.all(pis[2][left] > 0.0)
    machine, human = last_round_weights(pis, deltas)
    for row, w_m, w_h in zip(rows, machine, human, strict=True):
        assert (row["weight_machine"], row["weight_human"]) == pytest.approx((w_m, w_h))

    # the report: known errors of the search rounds + the audit's Horvitz–Thompson estimate
    plan = json.loads((tmp_path / REVIEW_FILE).read_text())
    assert plan["audit_floor"] == pytest.approx(0.3)
    figures = compute_report(rows, estimator="horvitz-thompson", plan=plan)
    is_wrong = np.array([r["machine_correct"] is False for r in rows])
    known = float((is_wrong & ~left).sum())
    audit = float(((is_wrong & deltas[2]) / np.where(pis[2] > 0, pis[2], 1.0)).sum())
    assert figures.accuracy is not None
    assert figures.accuracy.estimate == pytest.approx(1.0 - (known + audit) / N_TASKS)
