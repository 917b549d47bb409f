"""End to end: a real Label Studio 1.23.2 asks our backend for predictions, over real HTTP.

Label Studio (subprocess, SQLite, 127.0.0.1) → our backend (Flask on 127.0.0.1) → the stub
OpenAI-compatible server. Nothing of ours is mocked; the SDK drives Label Studio as a user would.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from act_backend.testing.openai_server import OpenAIStubServer
from act_plugin.cli import app
from act_plugin.connect import connect_backend
from act_plugin.local_ls import create_personal_access_token
from tests.support.backend import serve_backend, settings_for
from tests.support.configs import IMAGE, SCRIPT, TEXT, VQA, png_data_url
from tests.support.llm import ScriptedLLM

pytestmark = pytest.mark.e2e

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


@pytest.fixture
def llm():
    responder = ScriptedLLM(
        labels={k: v[0] for k, v in SCRIPT.items()} | {"ref-red": "cat"},
        suspicion={k: v[1] for k, v in SCRIPT.items()},
        default_label="dog",
        default_p=0.3,
        answer_text="a square",
    )
    with OpenAIStubServer(responder=responder) as server:
        yield server


@pytest.fixture
def backend(llm, tmp_path):
    settings = settings_for(llm, tmp_path)
    with serve_backend(settings) as url:
        yield url, settings.resolved_model_version


def ls_http(label_studio) -> httpx.Client:
    return httpx.Client(base_url=label_studio.url, headers=label_studio.headers, timeout=120)


def retrieve_predictions(http: httpx.Client, project_id: int) -> None:
    """The Data Manager action a user clicks: Actions → Retrieve predictions, all tasks."""
    response = http.post(
        "/api/dm/actions",
        params={"id": "retrieve_tasks_predictions", "project": project_id},
        json={"selectedItems": {"all": True, "excluded": []}},
    )
    assert response.status_code == 200, response.text


def tasks_of(http: httpx.Client, project_id: int, **params: Any) -> list[dict]:
    response = http.get(
        "/api/tasks", params={"project": project_id, "fields": "all", "page_size": 100, **params}
    )
    assert response.status_code == 200, response.text
    return response.json()["tasks"]


def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.2)


def test_text_project_predictions_ordering_next_and_webhook(
    label_studio, ls_client, make_project, backend
):
    backend_url, model_version = backend
    project_id = make_project(TEXT, [{"text": text} for text in SCRIPT])
    connection = connect_backend(ls_client, project_id, backend_url, model_version=model_version)
    assert ls_client.projects.get(id=project_id).model_version == model_version

    with ls_http(label_studio) as http:
        retrieve_predictions(http, project_id)
        tasks = tasks_of(http, project_id)

        # every task has our prediction, labels from the config, score = 1 - suspicion
        for task in tasks:
            (prediction,) = task["predictions"]
            assert prediction["model_version"] == model_version
            label, suspicion = SCRIPT[task["data"]["text"]]
            regions = {r["from_name"]: r for r in prediction["result"]}
            assert regions["sentiment"]["value"]["choices"] == [label]
            assert regions["act_rationale"]["value"]["text"][0].startswith(
                f"suspicion {suspicion:.2f}"
            )
            assert prediction["score"] == pytest.approx(1 - suspicion)
            assert task["predictions_score"] == pytest.approx(1 - suspicion)  # no trap

        # a view sorted by score ascending lists the most suspicious first
        view = ls_client.views.create(
            project=project_id,
            data={"title": "most suspicious first", "ordering": ["tasks:predictions_score"]},
        )
        ordered = [t["data"]["text"] for t in tasks_of(http, project_id, view=view.id)]
        assert ordered == sorted(SCRIPT, key=lambda text: -SCRIPT[text][1])

        # the labeling stream follows that view
        nxt = http.get(f"/api/projects/{project_id}/next", params={"view": view.id})
        assert nxt.status_code == 200, nxt.text
        assert nxt.json()["data"]["text"] == "review bravo"

        # a reviewer's annotation reaches our /webhook (Label Studio added it on connect)
        ls_client.annotations.create(
            id=nxt.json()["id"],
            result=[
                {
                    "from_name": "sentiment",
                    "to_name": "text",
                    "type": "choices",
                    "value": {"choices": ["positive"]},
                }
            ],
        )

    def webhook_recorded() -> bool:
        health = httpx.get(backend_url + "/health").json()
        return health["webhooks"]["recorded"].get("ANNOTATION_CREATED", 0) >= 1

    wait_for(webhook_recorded)
    # a second "Retrieve predictions" skips tasks that have a current prediction
    before = httpx.get(backend_url + "/health").json()["stats"]["tasks"]
    with ls_http(label_studio) as http:
        retrieve_predictions(http, project_id)
    assert httpx.get(backend_url + "/health").json()["stats"]["tasks"] == before
    assert connection.model_version == model_version


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, format="PNG")
    return buf.getvalue()


def test_uploaded_images_are_fetched_from_label_studio_with_its_token(
    label_studio, ls_client, make_project, backend, llm
):
    backend_url, model_version = backend
    project_id = make_project(IMAGE)
    with ls_http(label_studio) as http:
        files = {
            f"file{i}": (f"ref-{name}.png", _png(rgb), "image/png")
            for i, (name, rgb) in enumerate(COLOURS.items())
        }
        imported = http.post(f"/api/projects/{project_id}/import", files=files)
        assert imported.status_code == 201, imported.text
        connect_backend(ls_client, project_id, backend_url, model_version=model_version)
        retrieve_predictions(http, project_id)
        tasks = tasks_of(http, project_id)
    assert len(tasks) == 3
    for task in tasks:
        assert task["data"]["image"].startswith("/data/upload/")
        (prediction,) = task["predictions"]
        assert prediction["result"][0]["value"]["choices"][0] in {"cat", "dog"}
    # the LLM saw the real image bytes Label Studio stored
    seen = {url for req in llm.requests for url in req.images}
    assert len(seen) == 3 and all(url.startswith("data:image/png;base64,") for url in seen)


def test_vqa_project_gets_free_text_answers(label_studio, ls_client, make_project, backend):
    backend_url, model_version = backend
    tasks = [
        {"image": png_data_url(rgb), "question": f"What colour is {name}?"}
        for name, rgb in COLOURS.items()
    ]
    project_id = make_project(VQA, tasks)
    connect_backend(ls_client, project_id, backend_url, model_version=model_version)
    with ls_http(label_studio) as http:
        retrieve_predictions(http, project_id)
        stored = tasks_of(http, project_id)
    assert len(stored) == 3
    for task in stored:
        (prediction,) = task["predictions"]
        region = prediction["result"][0]
        assert region["from_name"] == "answer" and region["value"]["text"] == ["a square"]
        assert task["predictions_score"] == pytest.approx(0.7)


def test_ls_act_connect_reads_the_version_from_the_backend(
    label_studio, ls_client, make_project, backend
):
    backend_url, model_version = backend
    project_id = make_project(TEXT, [{"text": "review alpha"}])
    args = [
        "connect",
        "--project",
        str(project_id),
        "--backend-url",
        backend_url,
        "--label-studio-url",
        label_studio.url,
        "--api-key",
        label_studio.token,
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert ls_client.projects.get(id=project_id).model_version == model_version
    (ml,) = ls_client.ml.list(project=project_id)
    assert ml.title == model_version
    again = CliRunner().invoke(app, args)  # idempotent: still one backend
    assert again.exit_code == 0 and len(ls_client.ml.list(project=project_id)) == 1


def test_images_fetched_with_a_configured_personal_access_token(
    label_studio, ls_client, make_project, llm, tmp_path
):
    pat = create_personal_access_token(label_studio)
    settings = settings_for(
        llm, tmp_path, LABEL_STUDIO_URL=label_studio.url, LABEL_STUDIO_API_KEY=pat
    )
    project_id = make_project(IMAGE)
    with serve_backend(settings) as backend_url, ls_http(label_studio) as http:
        files = {"file0": ("ref-red.png", _png(COLOURS["red"]), "image/png")}
        assert http.post(f"/api/projects/{project_id}/import", files=files).status_code == 201
        connect_backend(
            ls_client, project_id, backend_url, model_version=settings.resolved_model_version
        )
        retrieve_predictions(http, project_id)
        (task,) = tasks_of(http, project_id)
    assert task["predictions"][0]["result"][0]["value"]["choices"] == ["dog"]
    assert llm.requests[0].images[0].startswith("data:image/png;base64,")
    assert pat not in (tmp_path / "webhook-events.sqlite3").read_bytes().decode("latin-1")
