"""/predict over each supported labeling config, against the stub LLM on real HTTP."""

from __future__ import annotations

import pytest
from label_studio_sdk.label_interface import LabelInterface

from act_backend.app import create_app
from act_backend.testing.openai_server import OpenAIStubServer
from tests.support.backend import predict, settings_for
from tests.support.configs import HYPERTEXT, IMAGE, TEXT_MULTI, TEXT_SINGLE, VQA, png_data_url
from tests.support.llm import ScriptedLLM


@pytest.fixture
def llm():
    with OpenAIStubServer() as server:
        yield server


def valid_for(config: str, prediction: dict) -> bool:
    return LabelInterface(config).validate_prediction(prediction)


def test_single_choice_text_labels_come_from_config_and_score_is_one_minus_suspicion(llm, tmp_path):
    llm.set_responder(
        ScriptedLLM(
            labels={"love": "positive", "awful": "negative"},
            suspicion={"love": 0.05, "awful": 0.7},
            default_label="neutral",
            default_p=0.3,
        )
    )
    tasks = [
        {"id": 1, "data": {"text": "I love it"}},
        {"id": 2, "data": {"text": "awful service"}},
        {"id": 3, "data": {"text": "it exists"}},
    ]
    body = predict(llm, tmp_path, TEXT_SINGLE, tasks).json
    labels = [r["result"][0]["value"]["choices"] for r in body["results"]]
    assert labels == [["positive"], ["negative"], ["neutral"]]
    assert [r["score"] for r in body["results"]] == pytest.approx([0.95, 0.3, 0.7])
    assert all(valid_for(TEXT_SINGLE, r) for r in body["results"])
    assert {r["model_version"] for r in body["results"]} == {body["model_version"]}
    # the annotator was constrained to the label set
    annotator_calls = [r for r in llm.requests if r.json_schema and "label" in str(r.json_schema)]
    assert annotator_calls[0].json_schema["properties"]["label"]["enum"] == [
        "positive",
        "negative",
        "neutral",
    ]


def test_multi_choice_gives_a_list_of_labels(llm, tmp_path):
    llm.set_responder(ScriptedLLM(labels={"match": "sports"}, default_label="tech"))
    tasks = [{"id": 7, "data": {"text": "the match ended 2-1"}}]
    body = predict(llm, tmp_path, TEXT_MULTI, tasks).json
    region = body["results"][0]["result"][0]
    assert region["value"] == {"choices": ["sports"]}
    assert region["from_name"] == "topics" and region["to_name"] == "text"
    schema = llm.requests[0].json_schema
    assert schema["properties"]["labels"]["type"] == "array"


def test_hypertext_is_sent_as_visible_text(llm, tmp_path):
    llm.set_responder(ScriptedLLM(labels={"WIN A PRIZE": "spam"}, default_label="ham"))
    tasks = [{"id": 3, "data": {"html": "<p>WIN A <b>PRIZE</b></p><script>evil()</script>"}}]
    body = predict(llm, tmp_path, HYPERTEXT, tasks).json
    assert body["results"][0]["result"][0]["value"] == {"choices": ["spam"]}
    assert "evil()" not in llm.requests[0].text and "<b>" not in llm.requests[0].text


def test_image_task_sends_image_part_and_fills_rationale_textarea(llm, tmp_path):
    llm.set_responder(ScriptedLLM(default_label="cat", default_p=0.4))
    url = png_data_url()
    body = predict(llm, tmp_path, IMAGE, [{"id": 11, "data": {"image": url}}]).json
    result = body["results"][0]["result"]
    assert result[0]["value"] == {"choices": ["cat"]}
    assert result[1]["from_name"] == "act_rationale"
    assert result[1]["value"]["text"][0].startswith("suspicion 0.40")
    assert llm.requests[0].images == [url]  # annotator saw the image
    assert llm.requests[1].images == [url]  # so did the critic
    assert valid_for(IMAGE, body["results"][0])


def test_vqa_textarea_answer_over_image_and_question(llm, tmp_path):
    llm.set_responder(ScriptedLLM(answer_text="red square", default_p=0.2))
    tasks = [{"id": 12, "data": {"image": png_data_url(), "question": "What colour is it?"}}]
    body = predict(llm, tmp_path, VQA, tasks).json
    region = body["results"][0]["result"][0]
    assert region["type"] == "textarea" and region["value"] == {"text": ["red square"]}
    assert "What colour is it?" in llm.requests[0].text
    assert "The annotator answered: red square" in llm.requests[1].text
    assert body["results"][0]["score"] == pytest.approx(0.8)


def test_rationale_field_name_is_configurable(llm, tmp_path):
    config = IMAGE.replace("act_rationale", "why")
    llm.set_responder(ScriptedLLM(default_label="dog"))
    tasks = [{"id": 1, "data": {"image": png_data_url()}}]
    body = predict(llm, tmp_path, config, tasks, ACT_RATIONALE_FIELD="why").json
    assert [r["from_name"] for r in body["results"][0]["result"]] == ["animal", "why"]
    # with the default name the extra TextArea is a second target: refused, naming the tags
    response = predict(llm, tmp_path, config, tasks)
    assert response.status_code == 422
    assert '<Choices name="animal">' in response.json["error"]
    assert '<TextArea name="why">' in response.json["error"]


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (
            '<View><Image name="img" value="$image"/><RectangleLabels name="box" toName="img">'
            '<Label value="car"/></RectangleLabels></View>',
            '<RectangleLabels name="box">',
        ),
        (
            '<View><Audio name="audio" value="$audio"/><Choices name="c" toName="audio">'
            '<Choice value="a"/></Choices></View>',
            '<Audio name="audio">',
        ),
        (
            '<View><Text name="t" value="$text"/><Choices name="c" toName="t" value="$options"/>'
            "</View>",
            '<Choices name="c">',
        ),
    ],
)
def test_unsupported_configs_are_refused_naming_the_tag_in_setup_and_predict(
    llm, tmp_path, config, named
):
    app = create_app(settings_for(llm, tmp_path))
    client = app.test_client()
    setup = client.post("/setup", json={"project": "1.1", "schema": config})
    assert setup.status_code == 422 and named in setup.json["error"]
    tasks = [{"id": 1, "data": {"text": "x", "image": png_data_url(), "audio": "a.wav"}}]
    response = client.post("/predict", json={"tasks": tasks, "label_config": config})
    assert response.status_code == 422 and named in response.json["error"]
    assert llm.call_count == 0
    app.config["ACT_SERVICE"].close()
