"""Hostile request bodies: deep nesting, ids that are not ids, text that is not Unicode."""

from __future__ import annotations

import json

import pytest

from act_backend.app import MAX_JSON_DEPTH, create_app
from act_backend.testing.openai_server import OpenAIStubServer
from tests.support.backend import predict, settings_for
from tests.support.configs import TEXT_SINGLE
from tests.support.llm import ScriptedLLM


@pytest.fixture
def llm():
    with OpenAIStubServer(responder=ScriptedLLM(default_label="positive")) as server:
        yield server


@pytest.fixture
def client(llm, tmp_path):
    app = create_app(settings_for(llm, tmp_path))
    yield app.test_client()
    app.config["ACT_SERVICE"].close()


def nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


def nested_text(depth: int) -> str:
    """JSON text of ``depth`` nested arrays (built as text: json.dumps has a stack too)."""
    return "[" * depth + '"x"' + "]" * depth


def raw_json(client, path: str, text: str):
    return client.post(path, data=text, content_type="application/json")


@pytest.mark.parametrize(
    "template",
    [
        '{"tasks": DEEP, "label_config": "<View/>"}',
        '{"tasks": [{"id": 1, "data": {"text": "hi", "extra": DEEP}}]}',
        '{"action": "ANNOTATION_CREATED", "annotation": DEEP}',
    ],
    ids=["tasks", "task-data", "webhook"],
)
@pytest.mark.parametrize("path", ["/predict", "/webhook", "/setup"])
def test_deep_nesting_is_a_400_naming_the_limit(client, template, path):
    # 5,000 levels overflow the JSON parser's stack; MAX_JSON_DEPTH levels parse but are refused.
    for depth in (5_000, MAX_JSON_DEPTH):
        reply = raw_json(client, path, template.replace("DEEP", nested_text(depth)))
        assert reply.status_code == 400, (path, depth)
        assert f"nested more than {MAX_JSON_DEPTH} levels" in reply.json["error"]


def test_nesting_within_the_limit_is_served(llm, tmp_path):
    tasks = [{"id": 1, "data": {"text": "fine", "extra": nested(MAX_JSON_DEPTH - 5)}}]
    body = predict(llm, tmp_path, TEXT_SINGLE, tasks).json
    assert body["errors"] == [] and len(body["results"]) == 1


def test_boolean_ids_are_bad_tasks_and_the_rest_of_the_batch_is_served(llm, tmp_path):
    tasks = [{"id": True, "data": {"text": "a"}}, {"id": 2, "data": {"text": "b"}}]
    body = predict(llm, tmp_path, TEXT_SINGLE, tasks).json
    assert body["results"][0] == [] and body["results"][1]["result"]
    assert [e["kind"] for e in body["errors"]] == ["bad_task"]


def test_a_lone_surrogate_is_a_specific_error(client):
    text = (
        '{"tasks": [{"id": 1, "data": {"text": "ok \\ud800 no"}}, {"id": 2, "data": {"text": '
        f'"fine"}}}}], "label_config": {json.dumps(TEXT_SINGLE)}, "project": "1.1"}}'
    )
    body = raw_json(client, "/predict", text).json
    assert body["results"][0] == [] and body["results"][1]["result"]
    assert body["errors"] == [
        {
            "task": 1,
            "kind": "bad_text",
            "message": "task 1: 'text' is not valid Unicode (a lone surrogate at character 3); "
            "fix the task's text",
        }
    ]
