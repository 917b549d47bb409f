"""Tests for the local OpenAI stub server, driven through the real ``openai`` client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx
import openai
import pytest
from pydantic import BaseModel, Field

from act_backend.testing.openai_server import (
    ChatRequest,
    OpenAIStubServer,
    Reply,
    example_from_schema,
)

jsonschema = pytest.importorskip("jsonschema")
pytestmark = pytest.mark.timeout(30)

USER = [{"role": "user", "content": "Is this spam?"}]

LABEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"$ref": "#/$defs/Label"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
    },
    "required": ["label", "confidence", "reason"],
    "additionalProperties": False,
    "$defs": {"Label": {"type": "string", "enum": ["positive", "negative", "neutral", "mixed"]}},
}


def make_client(server: OpenAIStubServer, **kw: Any) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    kw.setdefault("api_key", "test-key")
    return openai.OpenAI(
        base_url=server.base_url,
        timeout=10,
        http_client=openai.DefaultHttpxClient(trust_env=False),
        **kw,
    )


def schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}


def test_plain_text_default_answer_and_response_shape() -> None:
    with OpenAIStubServer() as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.url == f"http://127.0.0.1:{server.port}"
        client = make_client(server)
        messages = [
            {"role": "system", "content": "You label posts."},
            {"role": "user", "content": [{"type": "text", "text": "Is this spam?"}]},
        ]
        resp = client.chat.completions.create(model="stub-critic", messages=messages, max_tokens=5)
        choice = resp.choices[0]
        assert choice.message.content == "No"
        assert choice.message.role == "assistant"
        assert choice.finish_reason == "stop"
        assert choice.logprobs is None
        assert resp.model == "stub-critic"
        assert resp.object == "chat.completion"
        assert resp.id.startswith("chatcmpl-")
        assert resp.system_fingerprint
        assert resp.usage is not None
        assert resp.usage.prompt_tokens == 6  # words of all text
        assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens

        assert server.call_count == 1
        req = server.requests[0]
        assert req.model == "stub-critic"
        assert req.text == "You label posts.\nIs this spam?"
        assert req.messages == messages
        assert req.max_tokens == 5
        assert req.logprobs is False
        assert req.response_format_type is None
        assert req.headers["authorization"] == "Bearer test-key"


def test_custom_responder_string_and_reply() -> None:
    seen: list[ChatRequest] = []

    def responder(req: ChatRequest) -> Reply | str:
        seen.append(req)
        if "usage" in req.text:
            return Reply(content="counted", prompt_tokens=7, completion_tokens=3)
        return req.text.upper()

    with OpenAIStubServer(responder) as server:
        client = make_client(server)
        resp = client.chat.completions.create(model="m", messages=USER)
        assert resp.choices[0].message.content == "IS THIS SPAM?"
        resp = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "usage"}]
        )
        assert resp.choices[0].message.content == "counted"
        assert resp.usage is not None
        assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (7, 3)
        assert len(seen) == 2

        server.set_responder(None)
        resp = client.chat.completions.create(model="m", messages=USER)
        assert resp.choices[0].message.content == "No"


def test_image_parts_recorded_in_order() -> None:
    with OpenAIStubServer() as server:
        client = make_client(server)
        urls = ["data:image/png;base64,iVBORw0KGgo=", "https://example.com/b.jpg"]
        content = [
            {"type": "text", "text": "Describe"},
            {"type": "image_url", "image_url": {"url": urls[0], "detail": "low"}},
            {"type": "image_url", "image_url": {"url": urls[1]}},
        ]
        resp = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": content}]
        )
        assert server.requests[0].images == urls
        assert server.requests[0].text == "Describe"
        assert resp.usage is not None
        assert resp.usage.prompt_tokens == 1 + 2 * 85


def test_json_schema_default_is_valid_stable_and_varies() -> None:
    with OpenAIStubServer() as server:
        client = make_client(server)

        def ask(text: str) -> dict:
            resp = client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": text}],
                response_format=schema_format(LABEL_SCHEMA),  # type: ignore[arg-type]
            )
            return json.loads(resp.choices[0].message.content or "")

        answers = {f"item {i}": ask(f"item {i}") for i in range(16)}
        for answer in answers.values():
            jsonschema.validate(answer, LABEL_SCHEMA)
            assert answer["label"] in LABEL_SCHEMA["$defs"]["Label"]["enum"]
        assert ask("item 3") == answers["item 3"]  # stable per text
        assert len({a["label"] for a in answers.values()}) >= 2  # spread across texts
        req = server.requests[0]
        assert req.response_format_type == "json_schema"
        assert req.json_schema == LABEL_SCHEMA


def test_pydantic_parse_with_defs() -> None:
    class Span(BaseModel):
        start: int = Field(ge=3)
        label: Literal["PER", "ORG", "LOC"]

    class Annotation(BaseModel):
        sentiment: Literal["positive", "negative", "neutral"]
        confidence: float = Field(ge=0, le=1)
        spans: list[Span]
        note: str | None
        best: Span | None

    with OpenAIStubServer() as server:
        client = make_client(server)
        resp = client.chat.completions.parse(model="m", messages=USER, response_format=Annotation)
        parsed = resp.choices[0].message.parsed
        assert isinstance(parsed, Annotation)
        assert parsed.spans and parsed.spans[0].start >= 3
        assert parsed.best is not None
        schema = server.requests[0].json_schema
        assert schema is not None and "$defs" in schema


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "exclusiveMinimum": 4, "maximum": 9},
        {"type": "number", "minimum": 2, "maximum": 3},
        {"type": "number", "exclusiveMaximum": 0},
        {"type": "string", "minLength": 10, "maxLength": 12},
        {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 2, "uniqueItems": True},
        {"type": "array", "items": {"type": "integer"}, "maxItems": 0},
        {"type": ["null", "boolean"]},
        {"oneOf": [{"const": "x"}, {"type": "integer"}]},
        {
            "allOf": [
                {"properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "integer", "minimum": 1}}},
            ]
        },
        {"type": "object", "required": ["free"], "additionalProperties": {"type": "integer"}},
        {"type": "string", "format": "date-time"},
        {
            "definitions": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "v": {"type": "integer"},
                        "kids": {"type": "array", "items": {"$ref": "#/definitions/Node"}},
                    },
                    "required": ["v", "kids"],
                }
            },
            "$ref": "#/definitions/Node",
        },
    ],
)
def test_example_from_schema_is_valid(schema: dict) -> None:
    value = example_from_schema(schema, seed="some text")
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
    assert value == example_from_schema(schema, seed="some text")


def test_json_object_default() -> None:
    with OpenAIStubServer() as server:
        resp = make_client(server).chat.completions.create(
            model="m", messages=USER, response_format={"type": "json_object"}
        )
        assert resp.choices[0].message.content == "{}"
        assert server.requests[0].response_format_type == "json_object"
        assert server.requests[0].json_schema is None


def test_default_logprobs_parsed_by_client() -> None:
    with OpenAIStubServer() as server:
        client = make_client(server)
        resp = client.chat.completions.create(
            model="m", messages=USER, logprobs=True, top_logprobs=2
        )
        lp = resp.choices[0].logprobs
        assert lp is not None and lp.content is not None
        first = lp.content[0]
        assert (first.token, first.logprob, first.bytes) == ("No", -0.1, [78, 111])
        assert [t.token for t in first.top_logprobs] == ["No", "Yes"]
        assert first.top_logprobs[1].logprob == -2.4
        assert "".join(t.token for t in lp.content) == resp.choices[0].message.content
        assert server.requests[0].logprobs is True
        assert server.requests[0].top_logprobs == 2

        # Enum positions get the other enum members as alternatives.
        resp = client.chat.completions.create(
            model="m",
            messages=USER,
            response_format=schema_format(LABEL_SCHEMA),  # type: ignore[arg-type]
            logprobs=True,
            top_logprobs=4,
        )
        label = json.loads(resp.choices[0].message.content or "")["label"]
        lp = resp.choices[0].logprobs
        assert lp is not None and lp.content is not None
        assert "".join(t.token for t in lp.content) == resp.choices[0].message.content
        pos = next(t for t in lp.content if t.token.strip() == label)
        assert {t.token for t in pos.top_logprobs} == set(LABEL_SCHEMA["$defs"]["Label"]["enum"])
        assert pos.top_logprobs[0].token == label


def test_custom_top_logprobs_limited_and_sorted() -> None:
    positions = [
        {"Yes": -0.5, "No": -1.0, "Maybe": -3.0, "yes": -0.9},
        {".": -0.01, "!": -4.0},
    ]
    with OpenAIStubServer(lambda req: Reply(top_logprobs=positions)) as server:
        resp = make_client(server).chat.completions.create(
            model="m", messages=USER, logprobs=True, top_logprobs=3
        )
        choice = resp.choices[0]
        assert choice.message.content == "Yes."  # concatenated sampled tokens
        assert choice.logprobs is not None and choice.logprobs.content is not None
        first, second = choice.logprobs.content
        assert (first.token, first.logprob) == ("Yes", -0.5)
        assert [(t.token, t.logprob) for t in first.top_logprobs] == [
            ("Yes", -0.5),
            ("yes", -0.9),
            ("No", -1.0),
        ]
        assert [t.token for t in second.top_logprobs] == [".", "!"]
        assert resp.usage is not None and resp.usage.completion_tokens == 2

        # Sampled token need not be the most likely one; it is still reported as the token.
        server.set_responder(lambda req: Reply(top_logprobs=[{"No": -2.0, "Yes": -0.2}]))
        resp = make_client(server).chat.completions.create(
            model="m", messages=USER, logprobs=True, top_logprobs=1
        )
        lp = resp.choices[0].logprobs
        assert lp is not None and lp.content is not None
        assert (lp.content[0].token, lp.content[0].logprob) == ("No", -2.0)
        assert [t.token for t in lp.content[0].top_logprobs] == ["Yes"]


def test_logprobs_absent_when_not_requested_or_ignored() -> None:
    positions = [{"Yes": -0.1, "No": -2.0}]
    with OpenAIStubServer(lambda req: Reply(top_logprobs=positions)) as server:
        client = make_client(server)
        resp = client.chat.completions.create(model="m", messages=USER)
        assert resp.choices[0].logprobs is None
        assert resp.choices[0].message.content == "Yes"

        server.set_responder(lambda req: Reply("Yes", include_logprobs=False))
        resp = client.chat.completions.create(
            model="m", messages=USER, logprobs=True, top_logprobs=5
        )
        assert resp.choices[0].logprobs is None
        assert resp.choices[0].message.content == "Yes"


def test_fail_next_429_is_retried_by_client() -> None:
    with OpenAIStubServer() as server:
        server.fail_next(2, status=429, retry_after=0.01)
        client = make_client(server, max_retries=3)
        start = time.perf_counter()
        resp = client.chat.completions.create(model="m", messages=USER)
        assert time.perf_counter() - start < 2.0  # Retry-After honoured, not default backoff
        assert resp.choices[0].message.content == "No"
        assert server.call_count == 3

        # Without retries the 429 surfaces as RateLimitError with an OpenAI error body.
        server.fail_next(1, status=429, retry_after=7)
        with pytest.raises(openai.RateLimitError) as exc_info:
            make_client(server).chat.completions.create(model="m", messages=USER)
        assert exc_info.value.response.headers["retry-after"] == "7"
        assert exc_info.value.code == "rate_limit_exceeded"
        assert server.call_count == 4

        # reset() clears recorded requests and pending faults.
        server.fail_next(5)
        server.reset()
        assert server.call_count == 0
        make_client(server).chat.completions.create(model="m", messages=USER)
        assert server.call_count == 1


def test_500_without_retries_raises_internal_server_error() -> None:
    with OpenAIStubServer() as server:
        server.fail_next(1, status=500)
        client = make_client(server, max_retries=0)
        with pytest.raises(openai.InternalServerError) as exc_info:
            client.chat.completions.create(model="m", messages=USER)
        assert exc_info.value.status_code == 500
        assert exc_info.value.type == "server_error"
        # Fault consumed: normal service resumes.
        assert client.chat.completions.create(model="m", messages=USER).choices[0].message

        # A responder can also return error statuses; its content becomes the message.
        server.set_responder(lambda req: Reply("overloaded!", status=503))
        with pytest.raises(openai.InternalServerError, match="overloaded!"):
            client.chat.completions.create(model="m", messages=USER)

        def boom(req: ChatRequest) -> str:
            raise RuntimeError("kaput")

        server.set_responder(boom)
        with pytest.raises(openai.InternalServerError, match="kaput"):
            client.chat.completions.create(model="m", messages=USER)


def test_malformed_body() -> None:
    # A 200 with an invalid JSON body (application/json): openai 1.x does not wrap this in an
    # APIError -- response.json() raises json.JSONDecodeError (a ValueError), not retried.
    with OpenAIStubServer() as server:
        server.fail_next(1, malformed=True)
        client = make_client(server, max_retries=2)
        with pytest.raises(json.JSONDecodeError):
            client.chat.completions.create(model="m", messages=USER)
        assert server.call_count == 1
        assert not issubclass(json.JSONDecodeError, openai.APIError)

        server.set_responder(lambda req: Reply(malformed=True))
        with pytest.raises(ValueError):
            client.chat.completions.create(model="m", messages=USER)


def test_api_key_required() -> None:
    with OpenAIStubServer(api_key="sekrit") as server:
        with pytest.raises(openai.AuthenticationError) as exc_info:
            make_client(server, api_key="wrong").chat.completions.create(model="m", messages=USER)
        assert exc_info.value.code == "invalid_api_key"
        assert exc_info.value.body == {
            "message": "Incorrect API key provided",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        assert server.call_count == 0

        client = make_client(server, api_key="sekrit")
        assert client.chat.completions.create(model="m", messages=USER).choices[0].message
        assert [m.id for m in client.models.list()] == ["stub-annotator", "stub-critic"]
        with pytest.raises(openai.AuthenticationError):
            make_client(server, api_key="wrong").models.list()


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": ["hello"]}, "messages[0]"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "audio", "x": 1}]}]},
            "messages[0].content[0].type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0].image_url.url",
        ),
        ({"messages": USER, "top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ({"messages": USER, "stream": True}, "stream"),
    ],
)
def test_bad_requests_are_400(kwargs: dict, param: str) -> None:
    with OpenAIStubServer() as server:
        with pytest.raises(openai.BadRequestError) as exc_info:
            make_client(server).chat.completions.create(model="m", **kwargs)
        assert exc_info.value.param == param
        assert exc_info.value.type == "invalid_request_error"
        assert server.call_count == 0


def test_raw_http_errors_and_models() -> None:
    with OpenAIStubServer(models=["a", "b"]) as server, httpx.Client(trust_env=False) as http:
        r = http.get(server.url + "/v1/nope")
        assert r.status_code == 404
        assert r.json()["error"]["type"] == "invalid_request_error"
        r = http.post(server.base_url + "/chat/completions", content=b"{not json")
        assert r.status_code == 400 and "error" in r.json()
        r = http.get(server.base_url + "/models")
        assert r.json() == {
            "object": "list",
            "data": [
                {"id": "a", "object": "model", "created": 0, "owned_by": "act-stub"},
                {"id": "b", "object": "model", "created": 0, "owned_by": "act-stub"},
            ],
        }
        assert http.get(server.base_url + "/models/b").json()["id"] == "b"
        assert http.get(server.base_url + "/models/zzz").status_code == 404
        # Keep-alive connection still usable after errors.
        assert (
            http.post(
                server.base_url + "/chat/completions", json={"model": "a", "messages": USER}
            ).json()["choices"][0]["message"]["content"]
            == "No"
        )


def test_concurrency_with_latency() -> None:
    with OpenAIStubServer(latency=0.3) as server:
        client = make_client(server)
        client.chat.completions.create(model="m", messages=USER)  # warm-up
        server.reset()
        released: list[float] = []
        barrier = threading.Barrier(32, action=lambda: released.append(time.perf_counter()))

        def call(i: int) -> str | None:
            barrier.wait()
            msgs: list[Any] = [{"role": "user", "content": f"item {i}"}]
            resp = client.chat.completions.create(model="m", messages=msgs)
            return resp.choices[0].message.content

        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(call, range(32)))
        elapsed = time.perf_counter() - released[0]
        assert results == ["No"] * 32
        assert server.call_count == 32
        assert elapsed < 1.5, f"32 concurrent calls took {elapsed:.2f}s"
        assert elapsed >= 0.3
        assert server.max_concurrency_seen >= 16


def test_latency_and_reply_delay() -> None:
    with OpenAIStubServer(latency=0.0) as server:
        client = make_client(server)
        server.set_responder(lambda req: Reply("slow", delay=0.25))
        start = time.perf_counter()
        client.chat.completions.create(model="m", messages=USER)
        assert time.perf_counter() - start >= 0.25
        server.set_responder(lambda req: Reply("fast", delay=0.0))
        server.set_latency(5.0)  # overridden by delay=0
        start = time.perf_counter()
        client.chat.completions.create(model="m", messages=USER)
        assert time.perf_counter() - start < 1.0
        server.set_responder(None)
        server.set_latency(0.2)
        server.fail_next(1, status=500)  # latency applies to faults too
        start = time.perf_counter()
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=USER)
        assert time.perf_counter() - start >= 0.2


def test_stop_frees_port_and_rejects_non_loopback() -> None:
    server = OpenAIStubServer().start()
    port = server.port
    make_client(server).chat.completions.create(model="m", messages=USER)  # open keep-alive conn
    start = time.perf_counter()
    server.stop()
    assert time.perf_counter() - start < 2.0
    server.stop()  # idempotent
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    with OpenAIStubServer(port=port) as again:  # port can be bound again
        assert again.port == port
    with pytest.raises(ValueError, match="loopback"):
        OpenAIStubServer(host="0.0.0.0")


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    backend = str(Path(__file__).resolve().parents[2] / "backend")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (backend, env.get("PYTHONPATH")) if p)
    return env


def test_cli_subprocess_serves_and_stops_on_sigterm() -> None:
    cmd = [
        sys.executable,
        "-m",
        "act_backend.testing.openai_server",
        "--port",
        "0",
        "--latency",
        "0.05",
        "--api-key",
        "k",
        "--dialect",
        "llama_cpp_python",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_cli_env()
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:"), line
        base_url = line.split(" ", 1)[1]
        assert base_url.endswith("/v1")
        client = openai.OpenAI(
            base_url=base_url,
            api_key="k",
            max_retries=0,
            timeout=10,
            http_client=openai.DefaultHttpxClient(trust_env=False),
        )
        resp = client.chat.completions.create(model="stub-annotator", messages=USER)
        assert resp.choices[0].message.content == "No"
        with pytest.raises(openai.InternalServerError):  # as llama-cpp-python refuses it
            client.chat.completions.create(
                model="stub-annotator", messages=USER, response_format=schema_format({})
            )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_refuses_non_loopback_host() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "act_backend.testing.openai_server", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        env=_cli_env(),
        timeout=30,
    )
    assert proc.returncode == 2
    assert "loopback" in proc.stderr
    assert "READY" not in proc.stdout


def test_llama_cpp_python_dialect_refuses_json_schema_with_500_takes_json_object_schema() -> None:
    with OpenAIStubServer(dialect="llama_cpp_python") as server:
        client = make_client(server)
        with pytest.raises(openai.InternalServerError) as refused:
            client.chat.completions.create(
                model="m", messages=USER, response_format=schema_format(LABEL_SCHEMA)
            )
        assert "Input should be 'text' or 'json_object'" in refused.value.body["message"]  # type: ignore[index]
        assert refused.value.type == "internal_server_error"
        resp = client.chat.completions.create(
            model="m",
            messages=USER,
            response_format={"type": "json_object", "schema": LABEL_SCHEMA},  # type: ignore[typeddict-unknown-key]
        )
        jsonschema.validate(json.loads(resp.choices[0].message.content or ""), LABEL_SCHEMA)
        # fields it does not know are dropped silently: the answer is unconstrained
        resp = client.chat.completions.create(
            model="m", messages=USER, extra_body={"guided_json": LABEL_SCHEMA}
        )
        assert resp.choices[0].message.content == "No"
    assert [r.dialect for r in server.requests] == ["json_schema", "json_object_schema", None]
    assert server.requests[1].json_schema == LABEL_SCHEMA


@pytest.mark.parametrize(
    ("dialect", "taken", "refused", "message"),
    [
        ("vllm_guided_json", "guided_json", "structured_outputs", "Extra inputs are not permitted"),
        ("vllm_structured_outputs", "structured_outputs", "guided_json", "extra_forbidden"),
        ("no_response_format", None, "guided_json", "Unrecognized request argument supplied"),
    ],
)
def test_guided_and_plain_dialects(
    dialect: str, taken: str | None, refused: str, message: str
) -> None:
    bodies = {
        "guided_json": {"guided_json": LABEL_SCHEMA},
        "structured_outputs": {"structured_outputs": {"json": LABEL_SCHEMA}},
        None: {},
    }
    with OpenAIStubServer(dialect=dialect) as server:
        client = make_client(server)
        with pytest.raises(openai.BadRequestError, match=message):
            client.chat.completions.create(model="m", messages=USER, extra_body=bodies[refused])
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="m", messages=USER, response_format=schema_format(LABEL_SCHEMA)
            )
        resp = client.chat.completions.create(model="m", messages=USER, extra_body=bodies[taken])
        content = resp.choices[0].message.content or ""
        if taken is None:
            assert content == "No"
        else:
            jsonschema.validate(json.loads(content), LABEL_SCHEMA)
    assert [r.dialect for r in server.requests] == [refused, "json_schema", taken]


def test_pre_grammar_logprobs_rank_masked_tokens_above_the_constrained_one() -> None:
    with OpenAIStubServer(dialect="llama_cpp_python") as server:
        resp = make_client(server).chat.completions.create(
            model="m",
            messages=USER,
            response_format={"type": "json_object", "schema": LABEL_SCHEMA},  # type: ignore[typeddict-unknown-key]
            logprobs=True,
            top_logprobs=3,
        )
    first = resp.choices[0].logprobs.content[0]  # type: ignore[union-attr]
    assert first.token == "{"
    assert [t.token for t in first.top_logprobs] == ["JSON", "The", "Sure"]


def test_unknown_server_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown server dialect 'tgi'"):
        OpenAIStubServer(dialect="tgi")
