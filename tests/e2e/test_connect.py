"""connect_backend against a real Label Studio, with a throwaway ML backend on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from label_studio_sdk import LabelStudio

from act_plugin.connect import ConnectError, connect_backend
from act_plugin.local_ls import LocalLabelStudio, free_port
from tests.support.configs import TEXT_CHOICES_CONFIG

e2e = pytest.mark.e2e
VERSION = "act-test-v1"
TEXTS = ["good film", "bad film", "a film"]


@dataclass
class FakeBackend:
    """Minimal ML backend: /health, /setup, /webhook, /predict; records every request."""

    model_version: str
    basic_auth: tuple[str, str] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def expected_authorization(self) -> str | None:
        if self.basic_auth is None:
            return None
        return "Basic " + base64.b64encode(":".join(self.basic_auth).encode()).decode()

    def reply(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/health":
            return 200, {"status": "UP", "model_class": "FakeBackend"}
        if method == "POST" and path == "/setup":
            return 200, {"model_version": self.model_version}
        if method == "POST" and path == "/predict":
            region = {
                "from_name": "label",
                "to_name": "text",
                "type": "choices",
                "value": {"choices": ["positive"]},
            }
            tasks = body.get("tasks", []) if isinstance(body, dict) else []
            results = [
                {"result": [region], "score": 0.5, "model_version": self.model_version}
                for _ in tasks
            ]
            return 200, {"results": results}
        return 200, {}  # /webhook and anything else


@pytest.fixture
def fake_backend() -> Iterator[Callable[..., FakeBackend]]:
    """`fake_backend(model_version=..., basic_auth=None)` starts one on a free 127.0.0.1 port."""
    servers: list[ThreadingHTTPServer] = []

    def start(
        model_version: str = VERSION, basic_auth: tuple[str, str] | None = None
    ) -> FakeBackend:
        backend = FakeBackend(model_version=model_version, basic_auth=basic_auth)

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?")[0]
                auth = self.headers.get("Authorization")
                backend.requests.append(
                    {"method": self.command, "path": path, "authorization": auth, "body": body}
                )
                expected = backend.expected_authorization()
                if expected is not None and auth != expected:
                    status, payload = 401, {"error": "bad credentials"}
                else:
                    status, payload = backend.reply(self.command, path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        backend.url = f"http://127.0.0.1:{server.server_address[1]}"
        return backend

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _text_project(make_project: Any) -> int:
    return make_project(TEXT_CHOICES_CONFIG, [{"text": t} for t in TEXTS])


def _task_ids(ls_client: Any, project_id: int) -> list[int]:
    return sorted(t.id for t in ls_client.tasks.list(project=project_id))


def _post_predictions(ls_client: Any, task_ids: list[int], model_version: str) -> dict[int, float]:
    scores = {task_id: round(0.2 + 0.3 * i, 2) for i, task_id in enumerate(task_ids)}
    for task_id, score in scores.items():
        ls_client.predictions.create(
            task=task_id,
            result=[
                {
                    "from_name": "label",
                    "to_name": "text",
                    "type": "choices",
                    "value": {"choices": ["negative"]},
                }
            ],
            score=score,
            model_version=model_version,
        )
    return scores


def _score_column(ls: LocalLabelStudio, project_id: int) -> dict[int, float | None]:
    """`predictions_score` per task, as the Data Manager task list shows it."""
    response = httpx.get(
        f"{ls.url}/api/tasks",
        params={"project": project_id, "fields": "all", "page_size": 100},
        headers=ls.headers,
        trust_env=False,
    )
    response.raise_for_status()
    return {t["id"]: t["predictions_score"] for t in response.json()["tasks"]}


@e2e
def test_connect_titles_backend_and_sets_project_model_version(
    ls_client: Any, make_project: Any, fake_backend: Any
) -> None:
    backend = fake_backend()
    project_id = _text_project(make_project)

    conn = connect_backend(ls_client, project_id, backend.url, model_version=VERSION)

    assert conn.created is True
    assert (conn.project_id, conn.model_version) == (project_id, VERSION)
    [ml] = ls_client.ml.list(project=project_id)
    assert (ml.id, ml.title, ml.url, ml.is_interactive) == (
        conn.ml_backend_id,
        VERSION,
        backend.url,
        False,
    )
    assert ml.model_version == VERSION  # what the backend reported through /setup
    assert ls_client.projects.get(id=project_id).model_version == VERSION
    seen = {(r["method"], r["path"]) for r in backend.requests}
    assert {("GET", "/health"), ("POST", "/setup")} <= seen
    assert all(r["authorization"] is None for r in backend.requests)


@e2e
def test_connect_twice_updates_instead_of_duplicating(
    ls_client: Any, make_project: Any, fake_backend: Any
) -> None:
    backend = fake_backend()
    project_id = _text_project(make_project)

    first = connect_backend(ls_client, project_id, backend.url, model_version=VERSION)
    second = connect_backend(
        ls_client, project_id, backend.url + "/", model_version=VERSION, interactive=True
    )

    assert (first.created, second.created) == (True, False)
    assert second.ml_backend_id == first.ml_backend_id
    [ml] = ls_client.ml.list(project=project_id)
    assert ml.is_interactive is True
    assert ls_client.projects.get(id=project_id).model_version == VERSION


@e2e
def test_scores_fill_the_score_column_after_connect(
    label_studio: LocalLabelStudio, ls_client: Any, make_project: Any, fake_backend: Any
) -> None:
    backend = fake_backend()
    project_id = _text_project(make_project)
    connect_backend(ls_client, project_id, backend.url, model_version=VERSION)

    scores = _post_predictions(ls_client, _task_ids(ls_client, project_id), VERSION)

    column = _score_column(label_studio, project_id)
    assert column.keys() == scores.keys()
    for task_id, score in scores.items():
        assert column[task_id] == pytest.approx(score)


@e2e
def test_score_column_is_empty_when_title_differs_until_connect_fixes_it(
    label_studio: LocalLabelStudio, ls_client: Any, make_project: Any, fake_backend: Any
) -> None:
    """The trap itself: a backend added by hand keeps its own title as project.model_version."""
    backend = fake_backend()
    project_id = _text_project(make_project)
    ls_client.ml.create(project=project_id, url=backend.url, title="My model")
    assert ls_client.projects.get(id=project_id).model_version == "My model"

    scores = _post_predictions(ls_client, _task_ids(ls_client, project_id), VERSION)
    assert set(_score_column(label_studio, project_id).values()) == {None}

    conn = connect_backend(ls_client, project_id, backend.url, model_version=VERSION)

    assert conn.created is False
    assert len(ls_client.ml.list(project=project_id)) == 1
    column = _score_column(label_studio, project_id)
    assert {k: pytest.approx(v) for k, v in scores.items()} == column


@e2e
def test_connect_patches_a_preexisting_project_model_version(
    label_studio: LocalLabelStudio, ls_client: Any, make_project: Any, fake_backend: Any
) -> None:
    """Label Studio only sets model_version to the title when it was empty; we PATCH it."""
    backend = fake_backend()
    project_id = _text_project(make_project)
    task_ids = _task_ids(ls_client, project_id)
    _post_predictions(ls_client, task_ids[:1], "imported-v0")
    ls_client.projects.update(id=project_id, model_version="imported-v0")

    connect_backend(ls_client, project_id, backend.url, model_version=VERSION)

    assert ls_client.projects.get(id=project_id).model_version == VERSION
    scores = _post_predictions(ls_client, task_ids, VERSION)
    column = _score_column(label_studio, project_id)
    assert all(column[t] is not None for t in task_ids)
    assert column[task_ids[-1]] == pytest.approx(scores[task_ids[-1]])


@e2e
def test_basic_auth_is_passed_to_the_backend(
    ls_client: Any, make_project: Any, fake_backend: Any
) -> None:
    backend = fake_backend(basic_auth=("act", "s3cret"))
    project_id = _text_project(make_project)

    with pytest.raises(ConnectError) as refused:
        connect_backend(ls_client, project_id, backend.url, model_version=VERSION)
    assert f"project {project_id}" in str(refused.value)
    assert backend.url in str(refused.value)
    assert "authentication" in str(refused.value)
    assert ls_client.ml.list(project=project_id) == []

    backend.requests.clear()
    conn = connect_backend(
        ls_client, project_id, backend.url, model_version=VERSION, basic_auth=("act", "s3cret")
    )

    [ml] = ls_client.ml.list(project=project_id)
    assert (ml.id, ml.auth_method, ml.basic_auth_user) == (conn.ml_backend_id, "BASIC_AUTH", "act")
    assert backend.requests, "Label Studio never called the backend"
    assert {r["authorization"] for r in backend.requests} == {backend.expected_authorization()}
    assert ls_client.projects.get(id=project_id).model_version == VERSION


@e2e
def test_warns_when_backend_reports_another_version(
    ls_client: Any, make_project: Any, fake_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    backend = fake_backend(model_version="something-else")
    project_id = _text_project(make_project)
    with caplog.at_level(logging.WARNING, logger="act_plugin.connect"):
        connect_backend(ls_client, project_id, backend.url, model_version=VERSION)
    assert "'something-else'" in caplog.text and "score column" in caplog.text


@e2e
def test_unreachable_backend_raises_connect_error(ls_client: Any, make_project: Any) -> None:
    project_id = _text_project(make_project)
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectError, match=rf"{url} for project {project_id}: HTTP 400"):
        connect_backend(ls_client, project_id, url, model_version=VERSION)
    assert ls_client.ml.list(project=project_id) == []


def test_ssrf_refusal_explains_the_server_settings() -> None:
    """The 403 body as Label Studio 1.23.2 sends it when SSRF protection is on (captured)."""
    body = {
        "id": "c9754474-912b-439c-9eaf-26cde0790c8d",
        "status_code": 403,
        "version": "1.23.2",
        "detail": "URL resolves to a reserved network address (block: 127.0.0.0/8)",
        "exc_info": None,
    }

    def label_studio(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # the project's ML backends: none
            return httpx.Response(200, json=[])
        return httpx.Response(403, json=body)  # creating one

    client = LabelStudio(
        base_url="http://label-studio.invalid",
        api_key="token",
        httpx_client=httpx.Client(transport=httpx.MockTransport(label_studio)),
    )
    with pytest.raises(ConnectError) as err:
        connect_backend(client, 7, "http://127.0.0.1:9090", model_version=VERSION)
    message = str(err.value)
    assert "project 7" in message and "http://127.0.0.1:9090" in message
    assert "reserved network address" in message
    assert "ML_BLOCK_LOCAL_IP=false" in message and "SSRF_PROTECTION_ENABLED=false" in message
