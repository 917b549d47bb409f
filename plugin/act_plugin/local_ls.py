"""Run a real Label Studio (1.23.x) server on 127.0.0.1 for end-to-end tests and `ls-act demo`.

The server is started the way docs/label-studio.md describes: headless, telemetry off,
loopback only, SSRF protection off (our ML backend lives on 127.0.0.1 too), a fixed admin user
and a legacy API token. Credentials are remembered in the data dir, because Label Studio applies
``--user-token`` and ``--password`` only when it first creates the user.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

__all__ = [
    "CREDENTIALS_FILE",
    "HEADLESS_ENV",
    "LabelStudioNotInstalledError",
    "LocalLabelStudio",
    "create_personal_access_token",
    "find_label_studio_executable",
    "free_port",
    "start_label_studio",
]

CREDENTIALS_FILE = "ls-act-credentials.json"
LOG_FILE = "ls-act-server.log"

#: Environment for a quiet, offline, loopback-only server that accepts ML backends on 127.0.0.1.
HEADLESS_ENV: dict[str, str] = {
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "COLLECT_ANALYTICS": "false",
    "LATEST_VERSION_CHECK": "false",
    "FEATURE_FLAGS_OFFLINE": "true",
    "ML_BLOCK_LOCAL_IP": "false",
    "SSRF_PROTECTION_ENABLED": "false",
    "PYTHONUNBUFFERED": "1",  # so the log shows "Starting development server at ..." at once
}

# Label Studio reads each setting from LABEL_STUDIO_<X>, HEARTEX_<X> or plain <X>. Inherited values
# of these would point the server at another database, data dir, host name or port.
_SCRUBBED_SETTINGS = (
    "BASE_DATA_DIR",
    "DATABASE_NAME",
    "DJANGO_DB",
    "HOST",
    "PORT",
    "USERNAME",
    "PASSWORD",
    "USER_TOKEN",
    "DEBUG",
    "DISABLE_SIGNUP_WITHOUT_LINK",
)
_LOOPBACK_NO_PROXY = "127.0.0.1,localhost,::1"

# Same as the `label-studio` console script, run with this very interpreter. When
# LS_ACT_PARENT_PID is set (Linux), the server asks the kernel to SIGTERM it if we die.
_ENTRY_POINT = """\
import os, signal, sys
_ppid = os.environ.pop("LS_ACT_PARENT_PID", "")
if _ppid and sys.platform.startswith("linux"):
    import ctypes
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() != int(_ppid):
        sys.exit("ls-act: parent process exited before Label Studio started")
from label_studio.server import main
sys.argv[0] = "label-studio"
sys.exit(main())
"""

_SERVER_LINE = re.compile(r"Starting development server at http://[^:/\s]+:(\d+)/")

_live: set[LocalLabelStudio] = set()
_live_lock = threading.Lock()


class LabelStudioNotInstalledError(RuntimeError):
    """The `label-studio` package is not installed in this Python environment."""


@dataclass(eq=False)
class LocalLabelStudio:
    """A Label Studio server process started by :func:`start_label_studio`."""

    url: str
    username: str
    password: str = field(repr=False)
    token: str = field(repr=False)
    data_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header with the legacy token, for plain HTTP calls."""
        return {"Authorization": f"Token {self.token}"}

    def client(self, api_key: str | None = None) -> LabelStudio:
        """SDK 2.x client; with the legacy token unless `api_key` (e.g. a PAT) is given."""
        from label_studio_sdk import LabelStudio

        return LabelStudio(
            base_url=self.url,
            api_key=api_key or self.token,
            timeout=60,
            # loopback: never route through an HTTP(S)_PROXY from the environment
            httpx_client=httpx.Client(timeout=60, follow_redirects=True, trust_env=False),
        )

    def is_running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def stop(self, timeout: float = 20) -> None:
        """Terminate the server's whole process group and wait for it (SIGKILL after `timeout`)."""
        with _live_lock:
            _live.discard(self)
        proc = self.process
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(10)

    def __enter__(self) -> LocalLabelStudio:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_label_studio_executable() -> list[str]:
    """Command prefix that runs `label-studio` from this interpreter's environment."""
    if importlib.util.find_spec("label_studio") is None:
        raise LabelStudioNotInstalledError(
            f"Label Studio is not installed in this Python environment ({sys.executable}). "
            "Install it with: pip install 'label-studio==1.23.2' "
            "(or: pip install 'label-studio-act[e2e]')."
        )
    return [sys.executable, "-c", _ENTRY_POINT]


def start_label_studio(
    data_dir: Path,
    *,
    port: int | None = None,
    username: str = "admin@example.com",
    password: str | None = None,
    token: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    startup_timeout: float = 240,
    die_with_parent: bool = True,
) -> LocalLabelStudio:
    """Start Label Studio on 127.0.0.1 with `data_dir` and wait until the token works.

    `password` and `token` default to the ones remembered in `data_dir` for `username`, else to
    new random values. A warm restart on the same data dir keeps user and token.
    `die_with_parent` (Linux): the server gets SIGTERM when the thread that started it exits,
    so start it from a long-lived thread. Raises RuntimeError with the log tail on failure.
    """
    command = find_label_studio_executable()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)

    stored = _read_credentials(data_dir).get(username, {})
    initialised = (data_dir / "label_studio.sqlite3").exists()
    password = password or stored.get("password") or secrets.token_urlsafe(12)
    token = token or stored.get("token") or secrets.token_hex(20)
    if (
        initialised
        and stored
        and (stored.get("token"), stored.get("password")) != (token, password)
    ):
        raise ValueError(
            f"{data_dir} already holds user {username} with another token or password; Label "
            "Studio applies --user-token/--password only when it creates the user. Omit them to "
            "reuse the stored ones."
        )
    _write_credentials(data_dir, username, password, token)

    port = port or free_port()
    # Password and token go through the environment (LABEL_STUDIO_PASSWORD/_USER_TOKEN, read by
    # the CLI when the flags are absent), so `ps` does not show them. "--opt=value" keeps values
    # that start with "-" from being taken for options.
    args = [
        *command, "start", "--no-browser", "--internal-host=127.0.0.1", f"--port={port}",
        f"--data-dir={data_dir}", f"--username={username}", "--enable-legacy-api-token",
    ]  # fmt: skip
    env = _server_env(data_dir, extra_env)
    env["LABEL_STUDIO_PASSWORD"] = password
    env["LABEL_STUDIO_USER_TOKEN"] = token
    if die_with_parent:
        env["LS_ACT_PARENT_PID"] = str(os.getpid())

    log_path = data_dir / LOG_FILE
    with open(log_path, "ab") as log:
        log.write(f"\n=== ls-act: starting Label Studio on 127.0.0.1:{port} ===\n".encode())
        log.flush()
        log_offset = log.tell()
        process = subprocess.Popen(
            args,
            cwd=data_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ls = LocalLabelStudio(
        url=f"http://127.0.0.1:{port}",
        username=username,
        password=password,
        token=token,
        data_dir=data_dir,
        process=process,
        log_path=log_path,
    )
    with _live_lock:
        _live.add(ls)
    try:
        _wait_until_ready(ls, log_offset, startup_timeout, warm=initialised)
    except BaseException:
        ls.stop()
        raise
    return ls


def create_personal_access_token(
    ls: LocalLabelStudio | LabelStudio, *, replace_existing: bool = True
) -> str:
    """Create a personal access token (JWT refresh token) for the user behind `ls`.

    Enables personal access tokens for the organization if they are off (the server accepts
    them only then), then ``POST /api/token/``. Label Studio allows one live PAT per user
    (409 otherwise): with `replace_existing` the old one is revoked (blacklisted) first, else
    a RuntimeError is raised.
    """
    client = ls.client() if isinstance(ls, LocalLabelStudio) else ls
    jwt = client.jwt_settings.get()
    if not jwt.api_tokens_enabled:
        client.jwt_settings.update(
            api_token_ttl_days=jwt.api_token_ttl_days or 200 * 365,  # ignored by the OSS server
            api_tokens_enabled=True,
            legacy_api_tokens_enabled=jwt.legacy_api_tokens_enabled,
        )
    existing = [t.token for t in client.tokens.list() if t.token]  # truncated: header.payload
    if existing and not replace_existing:
        raise RuntimeError(
            "this user already has a personal access token and Label Studio allows only one; "
            "pass replace_existing=True to revoke it"
        )
    for old in existing:
        client.tokens.blacklist(refresh=old)
    # no retries: the SDK retries 409 Conflict with backoff, which only delays the error
    created = client.tokens.create(request_options={"max_retries": 0})
    if not created.token:
        raise RuntimeError("Label Studio answered POST /api/token/ without a token")
    return created.token


def _server_env(data_dir: Path, extra_env: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    for name in _SCRUBBED_SETTINGS:
        for prefix in ("LABEL_STUDIO_", "HEARTEX_", ""):
            env.pop(prefix + name, None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(HEADLESS_ENV)
    # set before the CLI parses --data-dir, else Label Studio first creates ~/.local/share/...
    env["LABEL_STUDIO_BASE_DATA_DIR"] = str(data_dir)
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = ",".join(filter(None, [env.get(key, ""), _LOOPBACK_NO_PROXY]))
    env.update(extra_env or {})
    return env


def _wait_until_ready(ls: LocalLabelStudio, log_offset: int, timeout: float, warm: bool) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5, trust_env=False) as http:
        while True:
            code = ls.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"Label Studio exited with code {code} during startup.\n"
                    f"--- {ls.log_path} (tail) ---\n{_tail(ls.log_path, 40, log_offset)}"
                )
            _adopt_actual_port(ls, log_offset)
            if _answers(http, f"{ls.url}/health", {}) == 200:
                status = _answers(http, f"{ls.url}/api/projects", ls.headers)
                if status == 200:
                    return
                if status == 401:
                    hint = (
                        " This data dir was initialised earlier with another token, or without "
                        "--enable-legacy-api-token."
                        if warm
                        else ""
                    )
                    raise RuntimeError(
                        f"Label Studio at {ls.url} is up but rejects the token for "
                        f"{ls.username} (401).{hint}\n"
                        f"--- {ls.log_path} (tail) ---\n{_tail(ls.log_path, 20, log_offset)}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Label Studio did not become ready at {ls.url} within {timeout:.0f} s.\n"
                    f"--- {ls.log_path} (tail) ---\n{_tail(ls.log_path, 40, log_offset)}"
                )
            time.sleep(0.25)


def _adopt_actual_port(ls: LocalLabelStudio, log_offset: int) -> None:
    """Label Studio silently moves to the next port if ours got taken; follow it."""
    match = _SERVER_LINE.search(_read_from(ls.log_path, log_offset))
    if match:
        ls.url = f"http://127.0.0.1:{match.group(1)}"


def _answers(http: httpx.Client, url: str, headers: Mapping[str, str]) -> int | None:
    try:
        return http.get(url, headers=dict(headers)).status_code
    except httpx.TransportError:
        return None


def _read_from(path: Path, offset: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int, offset: int = 0) -> str:
    return "\n".join(_read_from(path, offset).splitlines()[-lines:])


def _read_credentials(data_dir: Path) -> dict[str, dict[str, str]]:
    try:
        users = json.loads((data_dir / CREDENTIALS_FILE).read_text()).get("users", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return users if isinstance(users, dict) else {}


def _write_credentials(data_dir: Path, username: str, password: str, token: str) -> None:
    users: dict[str, Any] = _read_credentials(data_dir)
    users[username] = {"password": password, "token": token}
    path = data_dir / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"users": users}, f, indent=2)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, sig)  # start_new_session: the group id is the leader's pid
        else:  # pragma: no cover - Windows
            proc.kill()


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        servers = list(_live)
    for ls in servers:
        with contextlib.suppress(Exception):
            ls.stop(timeout=10)
