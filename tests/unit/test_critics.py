"""Each critic strategy turns a real chat-completions answer into the documented suspicion."""

from __future__ import annotations

import json
import math

import pytest

from act_backend.testing.openai_server import OpenAIStubServer, Reply
from tests.support.backend import predict
from tests.support.configs import TEXT_SINGLE
from tests.support.llm import ScriptedLLM, is_critic

TASKS = [{"id": 1, "data": {"text": "I love it"}}, {"id": 2, "data": {"text": "meh"}}]


@pytest.fixture
def llm():
    with OpenAIStubServer() as server:
        yield server


@pytest.mark.parametrize("strategy", ["naive", "confidence", "cot", "devils_advocate"])
def test_black_box_strategies_give_suspicion_from_the_answer(llm, tmp_path, strategy):
    llm.set_responder(
        ScriptedLLM(default_label="positive", suspicion={"love": 0.15}, default_p=0.65)
    )
    body = predict(llm, tmp_path, TEXT_SINGLE, TASKS, ACT_CRITIC_STRATEGY=strategy).json
    assert [r["score"] for r in body["results"]] == pytest.approx([0.85, 0.35])
    critic_requests = [r for r in llm.requests if is_critic(r)]
    assert len(critic_requests) == 2
    fields = list(critic_requests[0].json_schema["properties"])
    expected_first = {
        "naive": "probability_wrong",
        "confidence": "confidence",
        "cot": "reasoning",  # chain of thought comes before the judgement
        "devils_advocate": "counterargument",
    }[strategy]
    assert fields[0] == expected_first
    assert body["model_version"].endswith(f"-{strategy}")


def test_devils_advocate_shows_the_annotators_own_reasoning_to_the_critic(llm, tmp_path):
    def responder(req):
        if is_critic(req):
            assert "The annotator's reasoning:" in req.text
            assert "because the word love is positive" in req.text
            return json.dumps({"counterargument": "c", "probability_wrong": 0.5, "rationale": "r"})
        assert "reasoning" in req.json_schema["properties"]
        return json.dumps({"reasoning": "because the word love is positive", "label": "positive"})

    llm.set_responder(responder)
    body = predict(llm, tmp_path, TEXT_SINGLE, TASKS[:1], ACT_CRITIC_STRATEGY="devils_advocate")
    assert body.json["errors"] == []
    assert body.json["results"][0]["score"] == pytest.approx(0.5)


def test_p_yes_is_yes_over_yes_plus_no_summing_token_variants(llm, tmp_path):
    top = {
        "No": math.log(0.5),
        " no": math.log(0.1),
        "Yes": math.log(0.2),
        "YES": math.log(0.1),
        "Maybe": math.log(0.05),
    }

    def responder(req):
        if is_critic(req):
            assert req.logprobs and req.top_logprobs == 20 and req.max_tokens == 1
            return Reply(top_logprobs=[top])
        return json.dumps({"label": "positive"})

    llm.set_responder(responder)
    body = predict(llm, tmp_path, TEXT_SINGLE, TASKS[:1], ACT_CRITIC_STRATEGY="p_yes").json
    suspicion = (0.2 + 0.1) / (0.2 + 0.1 + 0.5 + 0.1)
    assert body["results"][0]["score"] == pytest.approx(1 - suspicion)


def test_p_yes_without_logprobs_is_a_clear_error_not_a_constant(llm, tmp_path):
    def responder(req):
        if is_critic(req):
            return Reply(content="No", include_logprobs=False)
        return json.dumps({"label": "positive"})

    llm.set_responder(responder)
    body = predict(llm, tmp_path, TEXT_SINGLE, TASKS, ACT_CRITIC_STRATEGY="p_yes").json
    assert body["results"] == [[], []]
    assert {e["kind"] for e in body["errors"]} == {"logprobs_unavailable"}
    assert "returned no logprobs" in body["errors"][0]["message"]


def test_critic_probability_outside_unit_interval_is_an_error(llm, tmp_path):
    def responder(req):
        if is_critic(req):
            return json.dumps({"reasoning": "r", "probability_wrong": 85, "rationale": "x"})
        return json.dumps({"label": "neutral"})

    llm.set_responder(responder)
    body = predict(llm, tmp_path, TEXT_SINGLE, TASKS[:1]).json
    assert body["results"] == [[]]
    assert body["errors"][0]["kind"] == "answer_unparseable"
    assert "from 0 to 1" in body["errors"][0]["message"]


def test_p_yes_reads_the_first_position_that_answers_yes_or_no(tmp_path):
    positions = [
        {"\n": math.log(0.9), "No": math.log(0.04), "Yes": math.log(0.02)},
        {"\u2581No": math.log(0.6), "\u0120yes": math.log(0.2), "YES": math.log(0.2)},
    ]

    def responder(req):
        if is_critic(req):
            assert req.dialect is None and req.max_tokens == 1  # a plain one-token question
            return Reply(top_logprobs=positions)
        return json.dumps({"label": "positive"})

    with OpenAIStubServer(responder, dialect="llama_cpp_python") as llm:
        body = predict(llm, tmp_path, TEXT_SINGLE, TASKS[:1], ACT_CRITIC_STRATEGY="p_yes").json
    assert body["results"][0]["score"] == pytest.approx(1 - 0.4)


def test_p_yes_without_top_logprobs_alternatives_is_logprobs_unavailable(tmp_path):
    def responder(req):
        if is_critic(req):
            return Reply(top_logprobs=[{"No": -0.01}])  # only the generated token's logprob
        return json.dumps({"label": "positive"})

    with OpenAIStubServer(responder) as llm:
        body = predict(llm, tmp_path, TEXT_SINGLE, TASKS[:1], ACT_CRITIC_STRATEGY="p_yes").json
    assert body["errors"][0]["kind"] == "logprobs_unavailable"
    assert "no top_logprobs alternatives" in body["errors"][0]["message"]
