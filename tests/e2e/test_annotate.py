"""`ls-act annotate` against a real Label Studio: predictions written, resumable, no duplicates."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from act_backend.predictor import build_predictor
from act_backend.records import suspicion_of
from act_backend.testing.openai_server import OpenAIStubServer
from act_plugin import annotate as annotate_module
from act_plugin.annotate import annotate_project
from act_plugin.cli import app
from act_plugin.labelstudio import gateway
from tests.support.backend import settings_for
from tests.support.configs import SCRIPT, TEXT
from tests.support.faulty_proxy import FaultyProxy
from tests.support.llm import ScriptedLLM, is_critic
from tests.support.projects import client_at, task_ids

pytestmark = pytest.mark.e2e


@pytest.fixture
def llm():
    responder = ScriptedLLM(
        labels={k: v[0] for k, v in SCRIPT.items()},
        suspicion={k: v[1] for k, v in SCRIPT.items()},
        default_label="neutral",
    )
    with OpenAIStubServer(responder=responder) as server:
        yield server


@pytest.fixture
def env(llm, tmp_path, label_studio, monkeypatch):
    for key, value in {
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": "sk-test",
        "ACT_CACHE_DIR": str(tmp_path / "cache"),
        "ACT_ANNOTATOR_MAX_RETRIES": "0",
        "ACT_CRITIC_MAX_RETRIES": "0",
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
    }.items():
        monkeypatch.setenv(key, value)


def annotate(project_id: int, *extra: str):
    return CliRunner().invoke(app, ["annotate", "--project", str(project_id), *extra])


def predictions_by_text(ls_client, project_id: int) -> dict[str, list]:
    tasks = ls_client.tasks.list(project=project_id, fields="all")
    return {t.data["text"]: list(t.predictions or []) for t in tasks}


def test_annotate_writes_scored_predictions_and_resumes_without_duplicates(
    env, llm, ls_client, make_project
):
    project_id = make_project(TEXT, [{"text": text} for text in SCRIPT])

    first = annotate(project_id, "--limit", "2")  # an interrupted run, in effect
    assert first.exit_code == 0, first.output
    assert sum(bool(p) for p in predictions_by_text(ls_client, project_id).values()) == 2

    second = annotate(project_id)
    assert second.exit_code == 0, second.output
    assert "predictions written" in second.output
    by_text = predictions_by_text(ls_client, project_id)
    for text, (label, suspicion) in SCRIPT.items():
        (prediction,) = by_text[text]  # exactly one each: nothing written twice
        prediction = prediction if isinstance(prediction, dict) else prediction.model_dump()
        assert prediction["model_version"] == "act-gpt-4o+gpt-4o-mini-cot"
        assert prediction["score"] == pytest.approx(1 - suspicion)
        assert suspicion_of(prediction) == pytest.approx(suspicion)  # the import drops mislabeling
        regions = {r["from_name"]: r for r in prediction["result"]}
        assert regions["sentiment"]["value"]["choices"] == [label]
        assert "act_rationale" in regions

    calls = llm.call_count
    third = annotate(project_id)
    assert third.exit_code == 0 and llm.call_count == calls  # all skipped, no LLM call


def test_failed_tasks_are_counted_per_kind_and_exit_3(env, llm, ls_client, make_project):
    def responder(req):
        if is_critic(req):
            return json.dumps({"reasoning": "r", "probability_wrong": 0.2, "rationale": "r"})
        return json.dumps({"label": "sarcastic" if "bravo" in req.text else "neutral"})

    llm.set_responder(responder)
    project_id = make_project(TEXT, [{"text": "review alpha"}, {"text": "review bravo"}])
    result = annotate(project_id)
    assert result.exit_code == 3, result.output
    assert "answer_out_of_set" in result.output and "sarcastic" in result.output
    by_text = predictions_by_text(ls_client, project_id)
    assert len(by_text["review alpha"]) == 1 and by_text["review bravo"] == []


def test_unsupported_config_is_a_clear_error(env, make_project):
    config = (
        '<View><Image name="img" value="$image"/><RectangleLabels name="box" toName="img">'
        '<Label value="car"/></RectangleLabels></View>'
    )
    project_id = make_project(config, [{"image": "data:image/png;base64,AAAA"}])
    result = annotate(project_id)
    assert result.exit_code == 1
    assert '<RectangleLabels name="box">' in result.output


def predictions_by_task(ls_client, project_id: int) -> dict[int, list]:
    tasks = ls_client.tasks.list(project=project_id, fields="all")
    return {t.id: [p if isinstance(p, dict) else p.model_dump() for p in t.predictions or []]
            for t in tasks}  # fmt: skip


def run_annotate(client, project_id, llm, tmp_path, on_task=None):
    settings = settings_for(llm, tmp_path / "cache")
    predictor = build_predictor(settings)
    try:
        return annotate_project(
            client,
            project_id,
            predictor,
            model_version=settings.resolved_model_version,
            on_task=on_task,
        )
    finally:
        predictor.close()


@pytest.fixture
def many(llm, ls_client, make_project, monkeypatch):
    """23 tasks written in chunks of 5 (so 5 imports, the last one short)."""
    monkeypatch.setattr(annotate_module, "CHUNK_SIZE", 5)
    project_id = make_project(TEXT, [{"text": f"review {i:02d}"} for i in range(23)])
    return project_id, task_ids(ls_client, project_id)


def test_bulk_writes_exactly_one_prediction_per_task_and_a_deleted_task_fails_alone(
    llm, ls_client, many, tmp_path
):
    project_id, ids = many
    gone = ids[7]

    def delete_once(outcome, done=[]):  # noqa: B006 - before any chunk is written
        if not done:
            ls_client.tasks.delete(id=gone)  # the import of its chunk is refused (400)
            done.append(gone)

    result = run_annotate(ls_client, project_id, llm, tmp_path, on_task=delete_once)

    assert (result.n_tasks, result.n_written, dict(result.errors)) == (23, 22, {"ls_write": 1})
    assert result.examples["ls_write"].startswith(f"task {gone}: HTTP 400")
    by_task = predictions_by_task(ls_client, project_id)
    assert sorted(by_task) == [t for t in ids if t != gone]
    assert all(len(p) == 1 and p[0]["model_version"] == result.model_version
               for p in by_task.values())  # fmt: skip


def test_a_prediction_the_import_drops_is_written_alone(
    llm, ls_client, label_studio, many, tmp_path
):
    """The import silently drops a prediction the label config does not allow (Label Studio
    1.23.2); it is found missing and sent alone, which Label Studio accepts (or refuses)."""
    project_id, ids = many
    llm.set_responder(ScriptedLLM(labels={"review 03": "neutral"}, default_label="positive"))
    without_neutral = TEXT.replace('<Choice value="neutral"/>', "")

    def change_config_once(outcome, done=[]):  # noqa: B006 - before any chunk is written
        if not done:
            ls_client.projects.update(id=project_id, label_config=without_neutral)
            done.append(True)

    with FaultyProxy(label_studio.url) as proxy:  # only records the requests
        client = client_at(proxy.url, label_studio.token)
        result = run_annotate(client, project_id, llm, tmp_path, on_task=change_config_once)

    assert (result.n_written, result.n_failed) == (23, 0)
    assert proxy.requests.count("POST /api/predictions/") == 1
    by_task = predictions_by_task(ls_client, project_id)
    assert [len(by_task[t]) for t in ids] == [1] * 23
    assert by_task[ids[3]][0]["result"][0]["value"]["choices"] == ["neutral"]


def test_an_import_whose_answer_is_lost_is_read_back_not_repeated(
    llm, ls_client, label_studio, many, tmp_path, monkeypatch
):
    """The chunk is stored but the client never hears so (as before a kill -9): no duplicate."""
    project_id, _ = many
    monkeypatch.setattr(gateway, "RETRY_DELAYS", (0.05, 0.1))
    with FaultyProxy(label_studio.url, lose_answer_to="/import/predictions") as proxy:
        result = run_annotate(client_at(proxy.url, label_studio.token), project_id, llm, tmp_path)
    assert proxy.lost == [f"POST /api/projects/{project_id}/import/predictions"]
    assert (result.n_written, result.n_failed) == (23, 0)
    assert [len(p) for p in predictions_by_task(ls_client, project_id).values()] == [1] * 23

    again = run_annotate(ls_client, project_id, llm, tmp_path)  # the re-run finds them all
    assert (again.n_skipped, again.n_written) == (23, 0)
