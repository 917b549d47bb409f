"""The on-disk cache makes re-runs free; batches run in parallel within the configured bound."""

from __future__ import annotations

import pytest

from act_backend.app import create_app
from act_backend.testing.openai_server import OpenAIStubServer
from tests.support.backend import settings_for
from tests.support.configs import TEXT_SINGLE
from tests.support.llm import ScriptedLLM

TASKS = [{"id": i, "data": {"text": f"review number {i}"}} for i in range(1, 7)]


@pytest.fixture
def llm():
    with OpenAIStubServer(responder=ScriptedLLM(default_label="neutral")) as server:
        yield server


def run(llm, cache_dir, tasks=TASKS, **env):
    app = create_app(settings_for(llm, cache_dir, **env))
    client = app.test_client()
    body = client.post("/predict", json={"tasks": tasks, "label_config": TEXT_SINGLE}).json
    stats = client.get("/health").json["stats"]
    app.config["ACT_SERVICE"].close()
    return body, stats


def test_rerun_of_the_same_batch_makes_zero_llm_calls_even_in_a_new_process(llm, tmp_path):
    first, stats1 = run(llm, tmp_path)
    assert llm.call_count == 12 and stats1["llm"]["calls"] == 12
    # token usage per task (annotator + critic) and in total, in the /predict answer itself
    per_task = first["usage"]["tasks"]
    assert [t["task"] for t in per_task] == [t["id"] for t in TASKS]
    assert all(t["calls"] == 2 and t["total_tokens"] > 0 for t in per_task)
    assert first["usage"]["total"]["total_tokens"] == sum(t["total_tokens"] for t in per_task)
    assert stats1["llm"]["total_tokens"] > 0
    second, stats2 = run(llm, tmp_path)  # a new app on the same cache dir
    assert llm.call_count == 12
    assert stats2["llm"]["calls"] == 0 and stats2["llm"]["cached_calls"] == 12
    assert second["results"] == first["results"]
    assert second["usage"]["total"]["cached_calls"] == 12


def test_cache_key_covers_strategy_model_and_task_content(llm, tmp_path):
    run(llm, tmp_path)
    run(llm, tmp_path, ACT_CRITIC_STRATEGY="naive")
    assert llm.call_count == 12 + 6  # annotations reused, critic asked anew
    run(llm, tmp_path, ACT_ANNOTATOR_MODEL="other-model")
    # new annotations; the critic sees the same item and label, so its answers are reused
    assert llm.call_count == 18 + 6
    changed = [dict(TASKS[0], data={"text": "a different text"})]
    run(llm, tmp_path, tasks=changed)
    assert llm.call_count == 24 + 2


def test_prompt_templates_are_part_of_the_key(llm, tmp_path):
    run(llm, tmp_path)
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "critic_system.j2").write_text("You are a strict reviewer. Answer in JSON.")
    run(llm, tmp_path, ACT_PROMPTS_DIR=str(prompts))
    assert llm.call_count == 12 + 6
    assert llm.requests[-1].messages[0]["content"] == "You are a strict reviewer. Answer in JSON."


def test_failed_answers_are_not_cached(llm, tmp_path):
    llm.fail_next(1, status=500)
    body, _ = run(llm, tmp_path, tasks=TASKS[:1])
    assert body["results"] == [[]]
    body, _ = run(llm, tmp_path, tasks=TASKS[:1])
    assert body["results"][0]["result"]


def test_cache_can_be_switched_off(llm, tmp_path):
    run(llm, tmp_path, ACT_CACHE="false")
    run(llm, tmp_path, ACT_CACHE="false")
    assert llm.call_count == 24


def test_batch_runs_in_parallel_up_to_the_concurrency_bound(llm, tmp_path):
    llm.set_latency(0.1)
    tasks = [{"id": i, "data": {"text": f"t{i}"}} for i in range(40)]
    run(llm, tmp_path, tasks=tasks, ACT_CONCURRENCY="8")
    # The stub counts a request in flight until its response is written, so a next request can
    # overlap the tail of the previous one: allow one extra. Without the bound it would be ~40.
    assert 4 <= llm.max_concurrency_seen <= 9
