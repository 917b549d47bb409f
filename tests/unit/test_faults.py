"""Bad input and failing endpoints: specific per-task errors, the rest of the batch intact."""

from __future__ import annotations

import json
import logging

import pytest

from act_backend.app import create_app
from act_backend.testing.openai_server import OpenAIStubServer, Reply
from tests.support.backend import predict, settings_for
from tests.support.configs import IMAGE, TEXT_SINGLE
from tests.support.llm import ScriptedLLM, is_critic


@pytest.fixture
def llm():
    with OpenAIStubServer() as server:
        yield server


def test_answer_outside_label_set_fails_only_that_task(llm, tmp_path):
    def responder(req):
        if is_critic(req):
            return json.dumps({"reasoning": "r", "probability_wrong": 0.2, "rationale": "r"})
        return json.dumps({"label": "furious" if "angry" in req.text else "negative"})

    llm.set_responder(responder)
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(["bad", "angry", "worse"], 1)]
    body = predict(llm, tmp_path, TEXT_SINGLE, tasks).json
    assert len(body["results"]) == 3
    assert body["results"][1] == []  # no prediction rather than a guessed label
    assert body["results"][0]["result"][0]["value"] == {"choices": ["negative"]}
    assert body["errors"] == [
        {
            "task": 2,
            "kind": "answer_out_of_set",
            "message": "the model answered 'furious', which is not one of the labels "
            "[positive, negative, neutral]",
        }
    ]


def test_case_only_difference_is_accepted_but_nothing_fuzzier(llm, tmp_path):
    def responder(req):
        if is_critic(req):
            return json.dumps({"reasoning": "r", "probability_wrong": 0.2, "rationale": "r"})
        return json.dumps({"label": " Positive " if "alpha" in req.text else "positiv"})

    llm.set_responder(responder)
    tasks = [{"id": 1, "data": {"text": "alpha"}}, {"id": 2, "data": {"text": "beta"}}]
    body = predict(llm, tmp_path, TEXT_SINGLE, tasks, ACT_ANNOTATOR_STRUCTURED_OUTPUT="none").json
    assert body["results"][0]["result"][0]["value"] == {"choices": ["positive"]}
    assert body["results"][1] == [] and body["errors"][0]["kind"] == "answer_out_of_set"


def test_unstructured_endpoint_answers_in_prose_with_fenced_json(llm, tmp_path):
    def responder(req):
        assert req.response_format_type is None  # structured output switched off
        if is_critic(req):
            verdict = '{"reasoning": "r", "probability_wrong": 0.4, "rationale": "x"}'
            return f"Sure.\n```json\n{verdict}\n```"
        return 'My answer is {"label": "neutral"} as requested.'

    llm.set_responder(responder)
    body = predict(
        llm,
        tmp_path,
        TEXT_SINGLE,
        [{"id": 1, "data": {"text": "ok"}}],
        ACT_ANNOTATOR_STRUCTURED_OUTPUT="none",
        ACT_CRITIC_STRUCTURED_OUTPUT="none",
    ).json
    assert body["results"][0]["score"] == pytest.approx(0.6)


def test_rate_limits_are_retried_with_backoff_and_succeed(llm, tmp_path):
    llm.set_responder(ScriptedLLM(default_label="neutral"))
    llm.fail_next(2, status=429, retry_after=0.05)
    body = predict(
        llm,
        tmp_path,
        TEXT_SINGLE,
        [{"id": 1, "data": {"text": "x"}}],
        ACT_ANNOTATOR_MAX_RETRIES="3",
        ACT_CRITIC_MAX_RETRIES="3",
    ).json
    assert body["errors"] == [] and body["results"][0]["result"]
    assert llm.call_count == 4  # 2 refused + annotator + critic


def test_server_errors_past_the_retries_fail_the_task_with_its_kind(llm, tmp_path):
    llm.set_responder(ScriptedLLM(default_label="neutral"))
    llm.fail_next(1, status=500)
    tasks = [{"id": 1, "data": {"text": "x"}}]
    body = predict(llm, tmp_path, TEXT_SINGLE, tasks).json  # max_retries=0 in tests
    assert body["results"] == [[]]
    assert body["errors"][0]["kind"] == "llm_server_error"
    assert body["errors"][0]["message"].startswith("HTTP 500")


def test_timeout_and_malformed_bodies_are_per_task_errors(llm, tmp_path):
    def responder(req):
        if "slow" in req.text:
            return Reply(content='{"label": "neutral"}', delay=2.0)
        if "garbled" in req.text:
            return Reply(malformed=True)
        return ScriptedLLM(default_label="neutral")(req)

    llm.set_responder(responder)
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(["slow", "garbled", "fine"], 1)]
    body = predict(
        llm,
        tmp_path,
        TEXT_SINGLE,
        tasks,
        ACT_ANNOTATOR_TIMEOUT="0.5",
        ACT_CRITIC_TIMEOUT="0.5",
    ).json
    kinds = {e["task"]: e["kind"] for e in body["errors"]}
    assert kinds[1] == "llm_timeout"
    assert kinds[2] in {"malformed_response", "llm_error"}
    assert 3 not in kinds and body["results"][2]["result"]


def test_malformed_tasks_and_missing_media_fail_alone(llm, tmp_path):
    llm.set_responder(ScriptedLLM(default_label="cat"))
    tasks = [
        "not a task",
        {"id": 2, "data": {}},
        {"id": 3, "data": {"image": "file:///etc/passwd"}},
        {"id": 4, "data": {"image": "/data/upload/1/x.png"}},
        {"id": 5, "data": {"image": "data:text/plain;base64,aGVsbG8="}},
        {"id": 6, "data": {"image": "http://169.254.169.254/latest/meta-data"}},
    ]
    response = predict(llm, tmp_path, IMAGE, tasks)
    assert response.status_code == 200
    body = response.json
    assert body["results"] == [[]] * 6
    errors = {e["task"]: e for e in body["errors"]}
    assert errors[None]["kind"] == "bad_task"
    assert "no data field 'image'" in errors[2]["message"]
    assert {errors[i]["kind"] for i in (3, 4, 5, 6)} == {"media"}
    assert "file" in errors[3]["message"]
    assert "no Label Studio URL is known" in errors[4]["message"]
    assert "169.254.169.254" in errors[6]["message"]
    assert llm.call_count == 0  # nothing reached the LLM, nothing was fetched from outside


def test_bad_request_bodies_get_clear_errors(llm, tmp_path):
    app = create_app(settings_for(llm, tmp_path))
    client = app.test_client()
    assert client.post("/predict", data="nope").status_code == 400
    missing = client.post("/predict", json={"tasks": [], "label_config": TEXT_SINGLE})
    assert missing.status_code == 400 and "tasks" in missing.json["error"]
    no_config = client.post("/predict", json={"tasks": [{"id": 1, "data": {}}]})
    assert no_config.status_code == 400 and "label_config" in no_config.json["error"]
    assert client.get("/nowhere").status_code == 404
    app.config["ACT_SERVICE"].close()


def test_api_keys_never_reach_logs_or_responses(llm, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    llm.set_responder(ScriptedLLM(default_label="neutral"))
    llm.fail_next(1, status=401)
    app = create_app(settings_for(llm, tmp_path, LABEL_STUDIO_API_KEY="ls-secret-token"))
    client = app.test_client()
    client.post(
        "/setup",
        json={
            "project": "1.1",
            "schema": TEXT_SINGLE,
            "hostname": "http://localhost:1",
            "access_token": "setup-secret",
        },
    )
    response = client.post(
        "/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}], "label_config": TEXT_SINGLE}
    )
    health = client.get("/health")
    app.config["ACT_SERVICE"].close()
    seen = caplog.text + response.get_data(as_text=True) + health.get_data(as_text=True)
    for secret in ("sk-test-secret", "ls-secret-token", "setup-secret"):
        assert secret not in seen
    assert response.json["errors"][0]["kind"] == "llm_auth"


def test_calls_made_before_a_task_failed_still_count_in_usage(llm, tmp_path):
    def responder(req):
        if is_critic(req):
            return json.dumps({"reasoning": "r", "probability_wrong": 7, "rationale": "r"})
        return json.dumps({"label": "furious" if "angry" in req.text else "neutral"})

    llm.set_responder(responder)
    tasks = [{"id": 1, "data": {"text": "angry"}}, {"id": 2, "data": {"text": "calm"}}]
    app = create_app(settings_for(llm, tmp_path))
    client = app.test_client()
    body = client.post("/predict", json={"tasks": tasks, "label_config": TEXT_SINGLE}).json
    stats = client.get("/health").json["stats"]
    app.config["ACT_SERVICE"].close()
    assert [e["kind"] for e in body["errors"]] == ["answer_out_of_set", "answer_unparseable"]
    # task 1: its annotator call; task 2: annotator and critic calls
    assert llm.call_count == 3 and stats["llm"]["calls"] == 3
    assert stats["llm"]["prompt_tokens"] > 0
