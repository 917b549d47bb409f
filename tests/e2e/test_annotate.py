"""`ls-act annotate` against a real Label Studio: predictions written, resumable, no duplicates."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from act_backend.testing.openai_server import OpenAIStubServer
from act_plugin.cli import app
from tests.support.configs import SCRIPT, TEXT
from tests.support.llm import ScriptedLLM, is_critic

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
        assert prediction["mislabeling"] == pytest.approx(suspicion)
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
