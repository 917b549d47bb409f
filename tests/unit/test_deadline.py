"""The /predict deadline: what is finished is answered in time, the rest is `[]` + `deadline`."""

from __future__ import annotations

import time

import pytest
import requests

from act_backend.labeling import parse_label_config
from act_backend.predictor import build_predictor
from act_backend.settings import load_settings
from act_backend.testing.openai_server import OpenAIStubServer, Reply
from tests.support.backend import serve_backend, settings_for
from tests.support.configs import TEXT_SINGLE
from tests.support.llm import ScriptedLLM, is_critic

DEADLINE = 2.0
SLACK = 1.0  # the answer leaves within the deadline plus this


@pytest.fixture
def llm():
    with OpenAIStubServer() as server:
        yield server


def slow_annotator(seconds: float):
    """Annotator calls on texts containing "slow" take ``seconds``; the rest answer at once."""
    script = ScriptedLLM(default_label="neutral")

    def respond(req):
        reply = script(req)
        if "slow" in req.text and not is_critic(req):
            return Reply(content=reply, delay=seconds)
        return reply

    return respond


def warm_up(url: str) -> None:
    """One fast task first: the chat client settles its structured-output dialect once."""
    post_predict(url, [{"id": 999, "data": {"text": "warm-up"}}])


def post_predict(url: str, tasks: list[dict]) -> tuple[dict, float]:
    started = time.monotonic()
    body = {"tasks": tasks, "label_config": TEXT_SINGLE, "project": "1.1"}
    reply = requests.post(url + "/predict", json=body, timeout=30)
    reply.raise_for_status()
    return reply.json(), time.monotonic() - started


def test_unfinished_tasks_come_back_empty_with_kind_deadline_in_time(llm, tmp_path):
    llm.set_responder(slow_annotator(DEADLINE + 1.5))
    tasks = [{"id": i, "data": {"text": f"{'slow' if i % 2 else 'fast'} {i}"}} for i in range(1, 7)]
    settings = settings_for(llm, tmp_path, ACT_PREDICT_DEADLINE=str(DEADLINE))
    with serve_backend(settings) as url:
        warm_up(url)
        body, seconds = post_predict(url, tasks)
        assert DEADLINE - 0.1 <= seconds <= DEADLINE + SLACK
        finished = [r for r in body["results"] if r]
        assert len(body["results"]) == 6 and len(finished) == 3
        assert all(body["results"][i - 1] for i in (2, 4, 6))
        kinds = {e["task"]: e["kind"] for e in body["errors"]}
        assert kinds == {1: "deadline", 3: "deadline", 5: "deadline"}
        assert "ACT_PREDICT_DEADLINE" in body["errors"][0]["message"]

        time.sleep(2.0)  # the slow calls finish after the answer left: into the cache only
        calls = llm.call_count
        again, seconds = post_predict(url, tasks)
        assert again["errors"] == [] and all(again["results"])
        assert llm.call_count == calls and seconds < DEADLINE  # all six from the cache


def test_tasks_still_queued_at_the_deadline_never_call_the_llm(llm, tmp_path):
    llm.set_responder(slow_annotator(DEADLINE + 0.5))
    tasks = [{"id": i, "data": {"text": f"slow {i}"}} for i in range(1, 11)]
    settings = settings_for(llm, tmp_path, ACT_PREDICT_DEADLINE=str(DEADLINE), ACT_CONCURRENCY="2")
    with serve_backend(settings) as url:
        warm_up(url)
        body, seconds = post_predict(url, tasks)
        assert seconds <= DEADLINE + SLACK
        assert [e["kind"] for e in body["errors"]] == ["deadline"] * 10
        time.sleep(1.5)
        stats = requests.get(url + "/health", timeout=5).json()["stats"]
    assert llm.call_count == 2 + 2 + 2  # warm-up; the two started tasks (annotator + critic)
    assert stats["tasks"] == 11 and stats["errors"] == {"deadline": 10}
    assert stats["llm"]["calls"] == 6  # their calls count, though their outcomes came too late


def test_a_batch_critic_gets_the_tasks_annotated_by_the_deadline(llm, tmp_path):
    """The batch critic (local) runs after the deadline on what was annotated by then."""
    llm.set_responder(slow_annotator(DEADLINE + 4.0))
    tasks = [{"id": i, "data": {"text": f"{'slow' if i > 2 else 'fast'} {i}"}} for i in range(1, 5)]
    settings = settings_for(
        llm, tmp_path, ACT_PREDICT_DEADLINE=str(DEADLINE), ACT_CRITIC_STRATEGY="knn"
    )
    assert settings.critic.engine == "embedding"  # criticizes the whole batch at once
    with serve_backend(settings) as url:
        warm_up(url)  # loads the embedding model
        body, seconds = post_predict(url, tasks)
    assert seconds < DEADLINE + 3.0  # the kNN critic's own time on top, on a busy machine
    assert [bool(r) for r in body["results"]] == [True, True, False, False]
    assert {e["task"]: e["kind"] for e in body["errors"]} == {3: "deadline", 4: "deadline"}


def test_bulk_annotation_is_not_cut_by_the_predict_deadline(llm, tmp_path):
    llm.set_responder(slow_annotator(1.5))
    settings = settings_for(llm, tmp_path, ACT_PREDICT_DEADLINE="0.5")
    predictor = build_predictor(settings)
    tasks = [{"id": i, "data": {"text": f"slow {i}"}} for i in range(1, 4)]
    try:
        outcomes = list(predictor.predict_iter(tasks, parse_label_config(TEXT_SINGLE)))
    finally:
        predictor.close()
    assert sorted(o.task_id for o in outcomes if o.ok) == [1, 2, 3]


def test_default_calls_with_all_their_retries_fit_inside_the_default_deadline():
    settings = load_settings(env={"OPENAI_API_KEY": "k"})
    assert settings.predict_deadline < 100  # Label Studio 1.23's ML_TIMEOUT_PREDICT default
    for role in (settings.annotator, settings.critic):
        assert role.max_retries >= 1
        assert role.worst_case_seconds() <= settings.predict_deadline
    assert settings.deadline_notice() is None
    long = load_settings(env={"OPENAI_API_KEY": "k", "ACT_CRITIC_TIMEOUT": "60"})
    assert "ACT_CRITIC_TIMEOUT" in (long.deadline_notice() or "")
