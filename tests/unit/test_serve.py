"""`ls-act serve` as a user runs it (uvicorn behind our front, or --dev), in its own process."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from act_backend.testing.openai_server import OpenAIStubServer, Reply
from tests.support.configs import TEXT_SINGLE
from tests.support.fixtures import fixture
from tests.support.llm import ScriptedLLM

LS_ACT = [sys.executable, "-c", "from act_plugin.cli import app; app()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(
    args: list[str], env: dict[str, str], log: Path, auth: tuple[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [*LS_ACT, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ls-act serve exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(url + "/health", timeout=1, auth=auth).ok:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"ls-act serve did not come up: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def llm():
    with OpenAIStubServer(responder=ScriptedLLM(default_label="positive")) as server:
        yield server


def _env(llm: OpenAIStubServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("ACT_", "OPENAI_"))}
    return {
        **keep,
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": "sk-serve-secret",
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        **extra,
    }


@pytest.mark.parametrize("mode", [[], ["--dev"]], ids=["serve", "dev"])
def test_serve_with_only_openai_variables(llm, tmp_path, mode):
    proc, url = _start(mode, _env(llm, tmp_path), tmp_path / "serve.log")
    try:
        health = requests.get(url + "/health", timeout=5).json()
        assert health["model_version"] == "act-gpt-4o+gpt-4o-mini-cot"
        body = fixture("backend_POST_predict_retrieve_text.json")["request"]["json_body"]
        reply = requests.post(url + "/predict", json=body, timeout=60).json()
        assert len(reply["results"]) == len(body["tasks"]) and reply["errors"] == []
        assert {r.model for r in llm.requests} == {"gpt-4o", "gpt-4o-mini"}
        # /setup keeps answering while a slow batch is running
        llm.set_latency(1.0)
        slow = threading.Thread(
            target=requests.post,
            args=(url + "/predict",),
            kwargs={
                "json": {
                    **body,
                    "tasks": [
                        dict(t, data={"text": t["data"]["text"] + "!"}) for t in body["tasks"]
                    ],
                },
                "timeout": 60,
            },
        )
        slow.start()
        time.sleep(0.3)
        started = time.monotonic()
        setup = requests.post(
            url + "/setup",
            json=fixture("backend_POST_setup.json")["request"]["json_body"],
            timeout=3,
        )
        assert setup.ok and time.monotonic() - started < 3
        slow.join()
    finally:
        _stop(proc)
    log = (tmp_path / "serve.log").read_text()
    assert "sk-serve-secret" not in log
    assert (tmp_path / "xdg" / "label-studio-act" / "llm-cache.sqlite3").exists()


def test_the_log_and_health_never_show_a_key_the_endpoint_echoes(llm, tmp_path):
    key, url_password = "sk-echoed-7f3a9c1e", "url-pw-52b0d6"
    llm.set_responder(lambda req: Reply(status=401, content=f"Incorrect API key: {key}"))
    base_url = llm.base_url.replace("://", f"://user:{url_password}@")
    env = _env(llm, tmp_path, OPENAI_API_KEY=key, OPENAI_BASE_URL=base_url, ACT_LOG_LEVEL="DEBUG")
    proc, url = _start([], env, tmp_path / "serve.log")
    try:
        body = {"tasks": [{"id": 1, "data": {"text": "x"}}], "label_config": TEXT_SINGLE}
        reply = requests.post(url + "/predict", json=body, timeout=30).json()
        health = requests.get(url + "/health", timeout=5).text
    finally:
        _stop(proc)
    log = (tmp_path / "serve.log").read_text()
    assert reply["errors"][0]["kind"] == "llm_auth" and "Incorrect API key: ***" in log
    for shown in (log, health, json.dumps(reply)):
        assert key not in shown and url_password not in shown


def test_basic_auth_guards_every_route(llm, tmp_path):
    env = _env(llm, tmp_path, ACT_BASIC_AUTH_USER="ls", ACT_BASIC_AUTH_PASSWORD="pw")
    proc, url = _start([], env, tmp_path / "serve.log", auth=("ls", "pw"))
    try:
        for method, path in [
            ("GET", "/"),
            ("GET", "/health"),
            ("POST", "/setup"),
            ("POST", "/predict"),
            ("POST", "/webhook"),
            ("GET", "/versions"),
        ]:
            denied = requests.request(method, url + path, json={}, timeout=5)
            assert denied.status_code == 401, path
            assert denied.headers["WWW-Authenticate"].startswith("Basic")
            wrong = requests.request(method, url + path, json={}, auth=("ls", "nope"), timeout=5)
            assert wrong.status_code == 401, path
        ok = requests.post(url + "/setup", json={"project": "1.1"}, auth=("ls", "pw"), timeout=5)
        assert ok.status_code == 200
    finally:
        _stop(proc)


@pytest.mark.parametrize("mode", [[], ["--dev"]], ids=["serve", "dev"])
def test_sigterm_keeps_every_acknowledged_webhook(llm, tmp_path, mode):
    proc, url = _start(mode, _env(llm, tmp_path), tmp_path / "serve.log")
    event = fixture("backend_POST_webhook_ANNOTATION_CREATED.json")["request"]["json_body"]

    def send(i: int) -> bool:
        body = {**event, "annotation": {**event["annotation"], "id": i}}
        reply = session.post(url + "/webhook", json=body, timeout=10)
        return reply.ok and reply.json()["status"] == "queued"

    try:
        with requests.Session() as session, ThreadPoolExecutor(8) as pool:
            acknowledged = sum(pool.map(send, range(1000)))
    finally:
        _stop(proc)
    # uvicorn re-raises SIGTERM once it has shut down (-15); -9 would mean _stop had to kill it
    assert proc.returncode not in (None, -signal.SIGKILL)
    db = tmp_path / "xdg" / "label-studio-act" / "webhook-events.sqlite3"
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT annotation FROM events")}
    assert acknowledged == 1000
    assert stored == set(range(1000))


def _stall(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head)
    return sock


def _upload_head(length: int, auth: str = "") -> bytes:
    return (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {length}\r\n\r\n{{"
    ).encode()


def test_stalled_uploads_do_not_starve_the_server(llm, tmp_path):
    proc, url = _start([], _env(llm, tmp_path, ACT_READ_TIMEOUT="2"), tmp_path / "serve.log")
    port = int(url.rsplit(":", 1)[1])
    body = fixture("backend_POST_predict_retrieve_text.json")["request"]["json_body"]
    try:
        stalled = [_stall(port, _upload_head(1000)) for _ in range(200)]
        time.sleep(0.5)
        started = time.monotonic()
        assert requests.get(url + "/health", timeout=5).ok
        assert requests.post(url + "/predict", json=body, timeout=5).json()["errors"] == []
        assert time.monotonic() - started < 1.5
        # the stalled uploads run out of time: 408, not a thread held for ever
        stalled[0].settimeout(10)
        assert stalled[0].recv(200).startswith(b"HTTP/1.1 408")
        for sock in stalled:
            sock.close()
    finally:
        _stop(proc)


def test_unauthenticated_and_oversized_uploads_are_refused_before_their_body(llm, tmp_path):
    env = _env(
        llm, tmp_path, ACT_BASIC_AUTH_USER="ls", ACT_BASIC_AUTH_PASSWORD="pw",
        ACT_MAX_BODY_BYTES="4096",
    )  # fmt: skip
    proc, url = _start([], env, tmp_path / "serve.log", auth=("ls", "pw"))
    port = int(url.rsplit(":", 1)[1])
    good = "Authorization: Basic bHM6cHc=\r\n"  # ls:pw
    try:
        for head, status in [
            (_upload_head(1000), b"401"),
            (_upload_head(1000, "Authorization: Basic bHM6bm9wZQ==\r\n"), b"401"),  # ls:nope
            (_upload_head(10_000, good), b"413"),
        ]:
            sock = _stall(port, head)  # the body never comes: the answer must not wait for it
            sock.settimeout(3)
            assert sock.recv(200).split(b" ")[1] == status
            sock.close()
    finally:
        _stop(proc)
