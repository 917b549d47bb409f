"""End to end: draw the review sample against a real Label Studio 1.23.2 and read it back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from act_plugin import review
from act_plugin.act_math import inclusion_probabilities
from act_plugin.labelstudio import gateway
from act_plugin.review import (
    REVIEW_VIEW_TITLE,
    SUSPICIOUS_VIEW_TITLE,
    DrawParams,
    ReviewError,
    compute_draw,
    draw_sample,
)
from act_plugin.sync import sync_training_set
from tests.support.faulty_proxy import FaultyProxy
from tests.support.projects import (
    CHOICES,
    MODEL_VERSION,
    choice,
    client_at,
    ls_http,
    read_tasks,
    review_records_of,
    task_ids,
    view_task_ids,
    write_act_predictions,
)

pytestmark = pytest.mark.e2e

N_TASKS = 20
ACT_KEYS = {
    "draw_id", "rule", "budget", "floor", "beta", "seed", "model_version", "drawn_at",
    "n_tasks", "n_drawn", "suspicion_digest", "min_pi_undrawn", "suspicion", "pi", "delta",
}  # fmt: skip


@pytest.fixture
def act_project(ls_client, make_project):
    """20 tasks with distinct suspicions; every third written as the ML backend does."""
    project_id = make_project(CHOICES, [{"text": f"item {i}"} for i in range(N_TASKS)])
    ids = task_ids(ls_client, project_id)
    suspicion = {t: round(0.03 + 0.047 * ((7 * k) % N_TASKS), 3) for k, t in enumerate(ids)}
    write_act_predictions(ls_client, suspicion, backend_style=set(ids[::3]))
    ls_client.projects.update(id=project_id, model_version=MODEL_VERSION)
    return project_id, suspicion


def act_metas(client, project_id):
    return review_records_of(client, project_id)


def synced_rows(client, project_id, out):
    """The training-set rows ``ls-act sync`` makes, by task id."""
    sync_training_set(client, project_id, out, formats=["jsonl"])
    lines = (out / "training_set.jsonl").read_text().splitlines()
    return {row["task_id"]: row for row in map(json.loads, lines)}


def sample_views(http, project_id, title=REVIEW_VIEW_TITLE):
    views = http.get("/api/dm/views", params={"project": project_id}).json()
    return [v for v in views if v["data"].get("title") == title]


def test_only_drawn_tasks_carry_a_record_and_another_client_reads_the_same_draw(
    act_project, ls_client, label_studio, tmp_path
):
    project_id, suspicion = act_project
    some_task = min(suspicion)
    ls_client.tasks.update(id=some_task, meta={"source": "import-7"})

    draw = draw_sample(ls_client, project_id, budget=6, rule="exponential", floor=0.2, seed=11)

    other = label_studio.client()  # a fresh client, as on another machine
    tasks = read_tasks(other, project_id)
    assert tasks[some_task]["meta"]["source"] == "import-7"  # other meta keys kept
    ids = sorted(tasks)
    # π and δ computed here: tasks ordered by id, δ ~ Bernoulli(π) from the recorded seed
    pi = inclusion_probabilities(
        [suspicion[t] for t in ids], 6, rule="exponential", floor=0.2, beta=10.0
    )
    delta = np.random.default_rng(11).random(N_TASKS) < pi
    drawn = [t for t, d in zip(ids, delta, strict=True) if d]
    acts = review_records_of(ls_client, project_id)
    assert [t for t in ids if acts[t]] == drawn == list(draw.task_ids)  # nobody else has one
    # two writes: the first and the last drawn task carry the ledger of all of them, no other
    carried = {t: tasks[t]["meta"]["act"] for t in ids if "act" in tasks[t]["meta"]}
    assert list(carried) == [drawn[0], drawn[-1]]
    assert carried[drawn[0]] == carried[drawn[-1]]
    assert [entry[0] for entry in carried[drawn[0]]["drawn"]] == drawn
    for t in drawn:
        a = acts[t]
        assert set(a) == ACT_KEYS and a["draw_id"] == draw.draw_id and a["delta"] == 1
        assert (a["rule"], a["budget"], a["floor"], a["beta"], a["seed"], a["model_version"]) == (
            "exponential", 6, 0.2, 10.0, 11, MODEL_VERSION,
        )  # fmt: skip
        assert (a["n_tasks"], a["n_drawn"]) == (N_TASKS, len(drawn))
        assert a["suspicion"] == pytest.approx(suspicion[t])
        assert a["pi"] == pytest.approx(pi[ids.index(t)], abs=1e-9)
        assert a["min_pi_undrawn"] == pytest.approx(pi[~delta].min(), abs=1e-9)
    (view,) = sample_views(ls_http(label_studio), project_id)
    assert view["data"]["act"]["task_ids"] == [[ids[0], ids[-1]]]
    # budget accounting: Σπ = B, the floor share, more suspicious = more likely reviewed
    assert pi.sum() == pytest.approx(6.0, abs=1e-6) and draw.expected == pytest.approx(6.0)
    assert (pi >= 0.2 * 6 / N_TASKS - 1e-9).all()
    order = np.argsort([suspicion[t] for t in ids])
    assert (np.diff(pi[order]) >= -1e-12).all()
    assert (draw.drawn, draw.n_tasks, draw.n_without_prediction, draw.reused) == (
        len(drawn), N_TASKS, 0, False,
    )  # fmt: skip

    # sync from the other client gives every row its π, drawn or not
    rows = synced_rows(other, project_id, tmp_path)
    assert [rows[t]["pi"] for t in ids] == pytest.approx(list(pi), abs=1e-12)
    assert [rows[t]["in_sample"] for t in ids] == list(delta)
    assert {rows[t]["draw_id"] for t in ids} == {draw.draw_id}
    undrawn = [t for t in ids if t not in drawn]
    assert {(rows[t]["weight_machine"], rows[t]["weight_human"]) for t in undrawn} == {(1.0, 0.0)}


def test_rerun_keeps_the_draw_and_redraw_replaces_it(act_project, ls_client, label_studio):
    project_id, _ = act_project
    http = ls_http(label_studio)
    first = draw_sample(ls_client, project_id, budget=5, seed=1)
    before = read_tasks(ls_client, project_id)

    again = draw_sample(ls_client, project_id, budget=3, rule="uniform", seed=99)

    assert again.reused and "redraw" in again.note
    assert (again.draw_id, again.budget, again.rule, again.seed) == (
        first.draw_id,
        5,
        first.rule,
        1,
    )
    assert again.task_ids == first.task_ids and again.view_id == first.view_id
    after = read_tasks(ls_client, project_id)
    assert {t: (x["meta"], x["updated_at"]) for t, x in after.items()} == {
        t: (x["meta"], x["updated_at"]) for t, x in before.items()
    }  # not a single task written

    new = draw_sample(ls_client, project_id, budget=5, rule="uniform", seed=2, redraw=True)

    assert not new.reused and new.draw_id != first.draw_id
    acts = {t: a for t, a in act_metas(ls_client, project_id).items() if a}
    assert sorted(acts) == list(new.task_ids)  # the first draw's records are gone
    assert {a["draw_id"] for a in acts.values()} == {new.draw_id}
    assert {a["rule"] for a in acts.values()} == {"uniform"}
    views = sample_views(http, project_id)
    assert [v["id"] for v in views] == [new.view_id]  # the old sample view is gone
    assert sorted(view_task_ids(http, project_id, new.view_id)) == list(new.task_ids)
    suspicious = sample_views(http, project_id, SUSPICIOUS_VIEW_TITLE)
    assert [v["id"] for v in suspicious] == [first.suspicious_view_id] == [new.suspicious_view_id]


def test_thresholded_picks_the_top_b_and_the_view_lists_exactly_the_sample(
    act_project, ls_client, label_studio
):
    project_id, suspicion = act_project
    http = ls_http(label_studio)
    draw = draw_sample(ls_client, project_id, budget=5, rule="thresholded", floor=0.0, seed=0)

    by_suspicion = sorted(suspicion, key=lambda t: -suspicion[t])
    top = by_suspicion[:5]
    assert draw.task_ids == tuple(sorted(top))
    assert draw.expected == 5.0 and draw.drawn == 5
    acts = {t: a for t, a in act_metas(ls_client, project_id).items() if a}
    assert sorted(acts) == sorted(top) and all(a["pi"] == 1.0 for a in acts.values())
    assert {a["min_pi_undrawn"] for a in acts.values()} == {0.0}

    # the view shows exactly the sample, most suspicious first; so does the labeling stream
    assert view_task_ids(http, project_id, draw.view_id) == top
    next_task = http.get(f"/api/projects/{project_id}/next", params={"view": draw.view_id})
    assert next_task.json()["id"] == top[0]
    ls_client.annotations.create(id=top[0], result=choice("negative"))
    next_task = http.get(f"/api/projects/{project_id}/next", params={"view": draw.view_id})
    assert next_task.json()["id"] == top[1]
    # all tasks, most suspicious first
    assert view_task_ids(http, project_id, draw.suspicious_view_id) == by_suspicion


def test_budget_fraction_and_tasks_without_an_act_prediction(ls_client, make_project):
    tasks = [{"text": f"item {i}"} for i in range(N_TASKS + 3)]
    project_id = make_project(CHOICES, tasks)
    ids = task_ids(ls_client, project_id)
    act_ids, others = ids[:N_TASKS], ids[N_TASKS:]
    write_act_predictions(ls_client, {t: 0.01 * (k + 1) for k, t in enumerate(act_ids)})
    write_act_predictions(ls_client, {others[0]: 0.5}, model_version="another-model")
    ls_client.projects.update(id=project_id, model_version=MODEL_VERSION)

    draw = draw_sample(ls_client, project_id, budget=0.25, rule="normalized", floor=0.1, seed=5)

    assert draw.n_without_prediction == 3 and draw.n_tasks == N_TASKS
    assert draw.expected == pytest.approx(0.25 * N_TASKS, abs=1e-6)
    acts = act_metas(ls_client, project_id)
    assert all(acts[t] is None for t in others)
    assert [t for t in act_ids if acts[t]] == list(draw.task_ids)
    assert {acts[t]["n_tasks"] for t in draw.task_ids} == {N_TASKS}


def test_an_empty_sample_gives_an_empty_view(act_project, ls_client, label_studio, tmp_path):
    project_id, _ = act_project
    pi = np.full(N_TASKS, 1 / N_TASKS)
    seed = next(s for s in range(1000) if not (np.random.default_rng(s).random(N_TASKS) < pi).any())
    draw = draw_sample(ls_client, project_id, budget=1, rule="uniform", floor=0.0, seed=seed)
    assert draw.drawn == 0 and draw.task_ids == ()
    assert view_task_ids(ls_http(label_studio), project_id, draw.view_id) == []
    assert all(a is None for a in act_metas(ls_client, project_id).values())
    # the view's draw record alone gives every row its π
    rows = synced_rows(ls_client, project_id, tmp_path)
    assert [r["pi"] for r in rows.values()] == pytest.approx([1 / N_TASKS] * N_TASKS)
    assert {r["draw_id"] for r in rows.values()} == {draw.draw_id}


def test_clear_errors(act_project, ls_client, make_project):
    project_id, _ = act_project
    for budget in (0, -2, 1.5, 1.0, 0.0, True, "5", N_TASKS + 1):
        with pytest.raises(ReviewError, match="budget"):
            draw_sample(ls_client, project_id, budget=budget)
    with pytest.raises(ReviewError, match="rule must be one of"):
        draw_sample(ls_client, project_id, budget=3, rule="random")
    with pytest.raises(ReviewError, match="ls-act annotate"):
        draw_sample(ls_client, project_id, budget=3, model_version="not-there")
    empty = make_project(CHOICES, [{"text": "a"}, {"text": "b"}])
    with pytest.raises(ReviewError, match="run `ls-act annotate` first"):
        draw_sample(ls_client, empty, budget=1)
    assert all(a is None for a in act_metas(ls_client, project_id).values())  # nothing written


def test_an_interrupted_draw_is_finished_and_never_mixed(
    act_project, ls_client, label_studio, monkeypatch, tmp_path
):
    project_id, suspicion = act_project
    monkeypatch.setattr(gateway, "RETRY_DELAYS", (0.01,))
    monkeypatch.setattr(review, "RECORDS_PER_WRITE", 3)  # ledgers of 3 drawn tasks
    # project, task list, views, then 2 ledger writes (8 in flight: one ledger's 2 copies, or
    # one copy of each of 2 ledgers); the next writes fail
    with FaultyProxy(label_studio.url, fail_after=3 + 2) as proxy:
        flaky = client_at(proxy.url, label_studio.token)
        with pytest.raises(ReviewError, match=r"\(2 of \d+ written\).*again"):
            draw_sample(flaky, project_id, budget=12, rule="exponential", seed=None)
    partial = {t: a for t, a in act_metas(ls_client, project_id).items() if a}
    assert len(partial) in (3, 6) and len({a["draw_id"] for a in partial.values()}) == 1
    draw_id = next(iter(partial.values()))["draw_id"]
    seed = next(iter(partial.values()))["seed"]  # the random seed was recorded
    assert not sample_views(ls_http(label_studio), project_id)  # not committed

    # the next run (other options, no redraw) finishes that draw instead of starting another
    finished = draw_sample(ls_client, project_id, budget=7, rule="uniform")

    assert finished.draw_id == draw_id and "finished" in finished.note and not finished.reused
    acts = act_metas(ls_client, project_id)
    ids = sorted(acts)
    assert {t: acts[t] for t in partial} == partial  # the written part is untouched
    params = DrawParams("exponential", 12, review.DEFAULT_FLOOR, 10.0, seed, MODEL_VERSION)
    pi, delta = compute_draw([suspicion[t] for t in ids], params)
    drawn = [t for t, d in zip(ids, delta, strict=True) if d]
    assert [t for t in ids if acts[t]] == drawn == list(finished.task_ids)
    assert {acts[t]["draw_id"] for t in drawn} == {draw_id}
    carriers = [t for t, task in read_tasks(ls_client, project_id).items() if task["meta"]]
    runs = [drawn[i : i + 3] for i in range(0, len(drawn), 3)]
    assert carriers == sorted({t for run in runs for t in (run[0], run[-1])})
    assert [acts[t]["pi"] for t in drawn] == pytest.approx([pi[ids.index(t)] for t in drawn])
    rows = synced_rows(ls_client, project_id, tmp_path)
    assert [rows[t]["pi"] for t in ids] == pytest.approx(list(pi), abs=1e-12)


def test_deleting_a_drawn_task_loses_no_other_task_record(act_project, ls_client, tmp_path):
    project_id, _ = act_project
    draw = draw_sample(ls_client, project_id, budget=8, seed=4)
    before = act_metas(ls_client, project_id)
    first, *others = draw.task_ids
    assert len(others) >= 2

    ls_client.tasks.delete(id=first)  # it carried one copy of the ledger

    after = act_metas(ls_client, project_id)
    assert {t: after[t] for t in others} == {t: before[t] for t in others}
    rows = synced_rows(ls_client, project_id, tmp_path)
    assert all(rows[t]["in_sample"] and rows[t]["pi"] == before[t]["pi"] for t in others)


def test_an_interrupted_draw_over_changed_tasks_is_redone(
    act_project, ls_client, label_studio, monkeypatch
):
    project_id, _ = act_project
    monkeypatch.setattr(gateway, "RETRY_DELAYS", (0.01,))
    monkeypatch.setattr(review, "RECORDS_PER_WRITE", 1)
    with FaultyProxy(label_studio.url, fail_after=3 + 2, mode="close") as proxy:
        flaky = client_at(proxy.url, label_studio.token)
        with pytest.raises(ReviewError, match=r"\(2 of \d+ written\)"):
            draw_sample(flaky, project_id, budget=4, seed=3)
    partial = {t: a for t, a in act_metas(ls_client, project_id).items() if a}
    stale = {a["draw_id"] for a in partial.values()}
    assert len(partial) == 2 and len(stale) == 1
    # a newer ACT prediction changes the suspicion of a task already written: the partial draw
    # cannot be completed consistently any more (a change elsewhere that leaves the written π
    # and δ as they are is simply taken into the finished draw)
    write_act_predictions(ls_client, {min(partial): 0.999})

    redone = draw_sample(ls_client, project_id, budget=4, seed=3)

    assert redone.draw_id not in stale and "could not be finished" in redone.note
    acts = {t: a for t, a in act_metas(ls_client, project_id).items() if a}
    assert sorted(acts) == list(redone.task_ids)  # the partial draw's records are gone
    assert {a["draw_id"] for a in acts.values()} == {redone.draw_id}
