"""Structured output on each kind of server: the dialect negotiated, remembered, or forced.

The stub server imitates each server's way of taking or refusing structured output
(``act_backend.testing.server_dialects``); /predict and the ChatClient run against it on real HTTP.
"""

from __future__ import annotations

import json
import logging
import typing

import pytest

from act_backend.dialects import DIALECTS
from act_backend.llm import ChatClient, LLMError
from act_backend.settings import EngineSettings, StructuredOutput
from act_backend.testing.openai_server import OpenAIStubServer, Reply
from tests.support.backend import predict
from tests.support.configs import TEXT_SINGLE
from tests.support.llm import ScriptedLLM, is_critic

LABELS = {"positive", "negative", "neutral"}
TASKS = [{"id": i, "data": {"text": t}} for i, t in enumerate(["I love it", "awful", "ok"], 1)]
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["cat", "dog"]}},
    "required": ["label"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "user", "content": "Cat or dog? Answer in JSON."}]
RETRIES = {"ACT_ANNOTATOR_MAX_RETRIES": "3", "ACT_CRITIC_MAX_RETRIES": "3"}


def stub(dialect: str, **kw: object) -> OpenAIStubServer:
    server = OpenAIStubServer(dialect=dialect, **kw)  # type: ignore[arg-type]
    server.set_responder(ScriptedLLM(labels={"love": "positive"}, default_label="neutral"))
    return server


def forms(server: OpenAIStubServer) -> list[str | None]:
    return [r.dialect for r in server.requests]


def labels_of(body: dict) -> set[str]:
    return {label for r in body["results"] for label in r["result"][0]["value"]["choices"]}


def client(server: OpenAIStubServer, **settings: object) -> ChatClient:
    settings.setdefault("max_retries", 0)
    return ChatClient(EngineSettings(model="m", base_url=server.base_url, **settings))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("dialect", "refused", "accepted"),
    [
        ("llama_cpp_python", ["json_schema"], "json_object_schema"),
        ("vllm_structured_outputs", ["json_schema", "json_object_schema"], "structured_outputs"),
        (
            "vllm_guided_json",
            ["json_schema", "json_object_schema", "structured_outputs"],
            "guided_json",
        ),
        ("no_response_format", [*DIALECTS[:-1]], None),
    ],
)
def test_each_server_is_asked_in_the_first_form_it_takes_once_per_role(
    tmp_path, dialect, refused, accepted
):
    with stub(dialect) as llm:
        body = predict(llm, tmp_path, TEXT_SINGLE, TASKS, **RETRIES).json
    assert body["errors"] == [] and labels_of(body) <= LABELS
    annotator = [r.dialect for r in llm.requests if not is_critic(r)]
    # one refusal of each form before the accepted one, never retried, then only that form
    assert annotator == [*refused, *[accepted] * len(TASKS)]
    assert body["usage"]["total"]["calls"] == llm.call_count  # refused attempts counted


def test_llama_cpp_pythons_500_validation_error_is_not_retried(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="act_backend.llm")
    with OpenAIStubServer(dialect="llama_cpp_python") as llm:
        c = client(llm, max_retries=4)
        first = c.complete(MESSAGES, schema=SCHEMA)
        second = c.complete(MESSAGES, schema=SCHEMA)
    assert json.loads(first.text)["label"] in {"cat", "dog"}
    assert forms(llm) == ["json_schema", "json_object_schema", "json_object_schema"]
    assert (first.usage.calls, second.usage.calls) == (2, 1)  # remembered: no failed attempt
    said = [r.getMessage() for r in caplog.records if "structured output as" in r.getMessage()]
    assert said == [f"{llm.base_url}, model m: structured output as json_object_schema"]


def test_a_422_validation_error_also_moves_on_to_the_next_form(tmp_path):
    with OpenAIStubServer(dialect="llama_cpp_python", refusal_status=422) as llm:
        completion = client(llm, max_retries=4).complete(MESSAGES, schema=SCHEMA)
    assert forms(llm) == ["json_schema", "json_object_schema"]
    assert completion.usage.calls == 2


def test_the_dialect_is_remembered_in_the_cache_directory_across_a_restart(tmp_path):
    with stub("llama_cpp_python") as llm:
        predict(llm, tmp_path, TEXT_SINGLE, TASKS[:1])
        llm.reset()
        body = predict(llm, tmp_path, TEXT_SINGLE, TASKS[1:]).json  # a new app, a new client
    assert body["errors"] == []
    assert "json_schema" not in forms(llm) and set(forms(llm)) == {"json_object_schema"}


def test_without_a_cache_the_dialect_is_remembered_in_memory(tmp_path):
    with stub("vllm_guided_json") as llm:
        body = predict(llm, tmp_path, TEXT_SINGLE, TASKS, ACT_CACHE="false").json
    assert body["errors"] == []
    assert forms(llm).count("json_schema") == 2  # once for each role (two models)


def test_a_forced_dialect_is_the_only_one_tried(tmp_path):
    with stub("llama_cpp_python") as llm:
        env = {"ACT_ANNOTATOR_STRUCTURED_OUTPUT": "json_object_schema", **RETRIES}
        body = predict(llm, tmp_path, TEXT_SINGLE, TASKS, **env).json
    assert body["errors"] == [] and labels_of(body) <= LABELS
    assert "json_schema" not in [r.dialect for r in llm.requests if not is_critic(r)]


def test_a_forced_dialect_the_server_refuses_is_an_incompatibility_per_task(tmp_path):
    with stub("llama_cpp_python") as llm:
        env = {"ACT_ANNOTATOR_STRUCTURED_OUTPUT": "json_schema", **RETRIES}
        body = predict(llm, tmp_path, TEXT_SINGLE, TASKS, **env).json
    assert body["results"] == [[]] * len(TASKS)
    assert {e["kind"] for e in body["errors"]} == {"llm_incompatible"}
    message = body["errors"][0]["message"]
    assert message.startswith("the endpoint accepted none of json_schema for structured output")
    assert "Input should be 'text' or 'json_object'" in message and "HTTP 500" in message
    assert llm.call_count == len(TASKS)  # one attempt each: a validation error is final
    assert [t["calls"] for t in body["usage"]["tasks"]] == [1] * len(TASKS)


def test_an_endpoint_that_refuses_every_form_names_them_all(tmp_path):
    refuse = OpenAIStubServer(lambda req: Reply("Unsupported parameter: temperature", status=400))
    with refuse as llm, pytest.raises(LLMError) as caught:
        client(llm).complete(MESSAGES, schema=SCHEMA)
    assert caught.value.kind == "llm_incompatible"
    prefix = "the endpoint accepted none of " + ", ".join(DIALECTS) + " for structured output: "
    assert caught.value.message.startswith(prefix + "HTTP 400: ")
    assert "Unsupported parameter: temperature" in caught.value.message
    assert caught.value.usage.calls == len(DIALECTS) == llm.call_count


def test_a_context_length_error_is_the_tasks_own_not_the_dialects(tmp_path):
    too_long = "This model's maximum context length is 8192 tokens."
    with (
        OpenAIStubServer(lambda req: Reply(too_long, status=400)) as llm,
        pytest.raises(LLMError) as caught,
    ):
        client(llm).complete(MESSAGES, schema=SCHEMA)
    assert caught.value.kind == "llm_bad_request" and llm.call_count == 1


def test_usage_counts_every_attempt_retried_or_failed(tmp_path):
    with OpenAIStubServer() as llm:
        llm.fail_next(2, status=503, retry_after=0.01)
        ok = client(llm, max_retries=3).complete(MESSAGES)
        llm.fail_next(3, status=429, retry_after=0.01)
        with pytest.raises(LLMError) as caught:
            client(llm, max_retries=2).complete(MESSAGES)
    assert ok.usage.calls == 3 and ok.usage.completion_tokens > 0
    assert caught.value.kind == "llm_rate_limit" and caught.value.usage.calls == 3
    assert llm.call_count == 6


def test_usage_in_predict_counts_the_retried_attempts(tmp_path):
    with stub("openai") as llm:
        llm.fail_next(2, status=500, retry_after=0.01)
        body = predict(llm, tmp_path, TEXT_SINGLE, TASKS[:1], **RETRIES).json
    assert body["errors"] == []
    assert body["usage"]["total"]["calls"] == 4 == llm.call_count


def test_a_task_that_fails_past_its_retries_counts_them(tmp_path):
    with stub("openai") as llm:
        llm.fail_next(2, status=503, retry_after=0.01)
        env = {"ACT_ANNOTATOR_MAX_RETRIES": "1"}
        body = predict(llm, tmp_path, TEXT_SINGLE, TASKS[:1], **env).json
    assert body["errors"][0]["kind"] == "llm_server_error"
    assert body["usage"]["tasks"][0]["calls"] == 2


def test_pre_grammar_top_logprobs_beside_a_constrained_answer(tmp_path):
    with OpenAIStubServer(dialect="llama_cpp_python") as llm:
        completion = client(llm, structured_output="json_object_schema").complete(
            MESSAGES, schema=SCHEMA, top_logprobs=5
        )
    assert json.loads(completion.text)["label"] in {"cat", "dog"}
    first = completion.top_logprobs[0]
    assert max(first, key=first.__getitem__) == "JSON"  # the model's choice before the grammar
    assert completion.text.startswith('{"')


def test_the_setting_offers_auto_and_every_dialect():
    assert typing.get_args(StructuredOutput) == ("auto", *DIALECTS)
    assert EngineSettings(model="m").structured_output == "auto"


def test_once_one_caller_has_negotiated_the_others_ask_in_parallel(tmp_path):
    # 8 callers while no dialect is known: one negotiates, the other 7 must not queue behind
    # one another (each holding the negotiation lock for its whole call).
    from concurrent.futures import ThreadPoolExecutor

    with stub("llama_cpp_python", latency=0.3) as server:
        chat = client(server)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: chat.complete(MESSAGES, schema=SCHEMA), range(8)))
        chat.close()
    assert all("label" in json.loads(a.text) for a in answers)
    assert forms(server).count("json_schema") == 1  # negotiated once
    assert server.max_concurrency_seen >= 4
