"""Replays of what Label Studio 1.23.2 really sent (tests/fixtures), over real HTTP."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from label_studio_sdk.label_interface import LabelInterface
from PIL import Image

from act_backend.testing.openai_server import OpenAIStubServer
from tests.support.backend import serve_backend, settings_for
from tests.support.fixtures import fixture, fixture_names
from tests.support.llm import ScriptedLLM

PREDICT_FIXTURES = fixture_names("backend_POST_predict_*.json")
WEBHOOK_FIXTURES = fixture_names("backend_POST_webhook_*.json")
LS_TOKEN = "0123456789abcdef0123456789abcdef01234567"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 128, 255)).save(buf, format="PNG")
    return buf.getvalue()


class _UploadsHandler(BaseHTTPRequestHandler):
    """Serves /data/upload/* like Label Studio does: 401 without its token."""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Token {LS_TOKEN}":
            self.send_response(401)
            self.end_headers()
            return
        body = _png()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def uploads_host():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _UploadsHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def backend(tmp_path):
    responder = ScriptedLLM(default_label="neutral", answer_text="blue")

    def any_label(req):
        # choose the first label of whatever config the request carries
        enum = (req.json_schema or {}).get("properties", {}).get("label", {}).get("enum")
        if enum:
            return json.dumps({"label": enum[0]})
        return responder(req)

    with (
        OpenAIStubServer(responder=any_label) as llm,
        serve_backend(settings_for(llm, tmp_path)) as url,
    ):
        yield url, llm, tmp_path


def replay(url: str, name: str) -> requests.Response:
    request = fixture(name)["request"]
    return requests.request(
        request["method"], url + request["path"], json=request["json_body"], timeout=60
    )


def test_health_and_versions(backend):
    url, _, _ = backend
    health = replay(url, "backend_GET_health.json")
    assert health.status_code == 200 and health.json()["status"] == "UP"
    versions = replay(url, "backend_GET_versions.json").json()
    assert versions == {"versions": [health.json()["model_version"]]}


def test_setup_answers_model_version_without_calling_any_model(backend):
    url, llm, _ = backend
    response = replay(url, "backend_POST_setup.json")
    assert response.status_code == 200
    assert response.json()["model_version"] == requests.get(url).json()["model_version"]
    assert llm.call_count == 0


@pytest.mark.parametrize("name", PREDICT_FIXTURES)
def test_every_captured_predict_gets_one_valid_result_per_task_in_order(
    backend, uploads_host, name
):
    url, _, _ = backend
    body = fixture(name)["request"]["json_body"]
    # what /setup told the backend before the batch (hostname + token of Label Studio)
    requests.post(
        url + "/setup",
        json={
            "project": body["project"],
            "schema": body["label_config"],
            "hostname": uploads_host,
            "access_token": LS_TOKEN,
        },
        timeout=10,
    )
    response = requests.post(url + "/predict", json=body, timeout=60)
    assert response.status_code == 200
    reply = response.json()
    assert len(reply["results"]) == len(body["tasks"])
    assert reply["errors"] == []
    interface = LabelInterface(body["label_config"])
    for task, item in zip(body["tasks"], reply["results"], strict=True):
        assert interface.validate_prediction(item)
        assert item["result"][0]["id"] == f"act-{task['id']}-{item['result'][0]['from_name']}"
        assert 0.0 <= item["score"] <= 1.0
        assert item["model_version"] == reply["model_version"]


def test_uploaded_images_are_fetched_from_label_studio_with_its_token(backend, uploads_host):
    url, llm, _ = backend
    body = fixture("backend_POST_predict_retrieve_image_uploaded.json")["request"]["json_body"]
    # without /setup (and no LABEL_STUDIO_URL) the relative URL cannot be resolved
    no_setup = requests.post(url + "/predict", json=body, timeout=60).json()
    assert no_setup["results"] == [[]] * len(body["tasks"])
    assert {e["kind"] for e in no_setup["errors"]} == {"media"}
    requests.post(
        url + "/setup",
        json={"project": body["project"], "hostname": uploads_host, "access_token": LS_TOKEN},
        timeout=10,
    )
    reply = requests.post(url + "/predict", json=body, timeout=60).json()
    assert reply["errors"] == []
    assert all(r.images and r.images[0].startswith("data:image/png;base64,") for r in llm.requests)


def test_a_one_task_call_returns_exactly_one_result(backend):
    url, _, _ = backend
    replayed = fixture("backend_POST_predict_count_mismatch_one_by_one.json")
    for follow in replayed["followed_by"]:
        body = follow["json_body"]
        body["tasks"][0]["data"]["image"] = "data:image/png;base64,iVBORw0KGgo="  # no upload host
        reply = requests.post(url + "/predict", json=body, timeout=60).json()
        assert len(reply["results"]) == 1


@pytest.mark.parametrize("name", WEBHOOK_FIXTURES)
def test_webhooks_are_answered_at_once_and_recorded_without_the_project_token(backend, name):
    url, llm, cache_dir = backend
    response = replay(url, name)
    assert response.status_code == 200 and response.json() == {"status": "queued"}
    action = fixture(name)["request"]["json_body"]["action"]
    for _ in range(200):
        if requests.get(url + "/health").json()["webhooks"]["recorded"].get(action):
            break
        threading.Event().wait(0.02)
    assert requests.get(url + "/health").json()["webhooks"]["recorded"] == {action: 1}
    rows = (
        sqlite3.connect(cache_dir / "webhook-events.sqlite3")
        .execute("SELECT action, payload FROM events")
        .fetchall()
    )
    assert rows[0][0] == action and "<TOKEN>" not in rows[0][1]
    assert llm.call_count == 0
