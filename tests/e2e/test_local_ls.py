"""End-to-end: the local Label Studio server, its tokens and the basic SDK calls."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from label_studio_sdk.core.api_error import ApiError

from act_plugin.local_ls import (
    CREDENTIALS_FILE,
    LocalLabelStudio,
    create_personal_access_token,
    start_label_studio,
)
from tests.support.configs import TEXT_CHOICES_CONFIG

pytestmark = pytest.mark.e2e


def test_server_is_loopback_and_healthy(label_studio: LocalLabelStudio) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", label_studio.url)
    assert label_studio.is_running()
    assert re.fullmatch(r"[0-9a-f]{40}", label_studio.token)
    health = httpx.get(f"{label_studio.url}/health", trust_env=False)
    assert health.status_code == 200
    assert health.json() == {"status": "UP"}
    assert (label_studio.data_dir / "label_studio.sqlite3").is_file()
    log = label_studio.log_path.read_text()
    assert f"Starting development server at {label_studio.url}/" in log


def test_legacy_token_works_with_sdk(label_studio: LocalLabelStudio, ls_client: Any) -> None:
    assert ls_client.users.whoami().email == label_studio.username
    raw = httpx.get(
        f"{label_studio.url}/api/projects", headers=label_studio.headers, trust_env=False
    )
    assert raw.status_code == 200
    bad = httpx.get(
        f"{label_studio.url}/api/projects",
        headers={"Authorization": "Token " + "0" * 40},
        trust_env=False,
    )
    assert bad.status_code == 401


def test_personal_access_token_works_with_sdk(label_studio: LocalLabelStudio) -> None:
    pat = create_personal_access_token(label_studio)
    assert pat.count(".") == 2  # a full JWT (header.payload.signature)
    client = label_studio.client(pat)
    assert client.users.whoami().email == label_studio.username
    assert client._client_wrapper.get_headers()["Authorization"].startswith("Bearer ")

    # the raw protocol: refresh token -> access token -> Bearer
    refreshed = httpx.post(
        f"{label_studio.url}/api/token/refresh/", json={"refresh": pat}, trust_env=False
    )
    assert refreshed.status_code == 200
    bearer = {"Authorization": f"Bearer {refreshed.json()['access']}"}
    projects = httpx.get(f"{label_studio.url}/api/projects", headers=bearer, trust_env=False)
    assert projects.status_code == 200

    # one PAT per user: a second one replaces (revokes) the first
    pat2 = create_personal_access_token(label_studio)
    assert label_studio.client(pat2).users.whoami().email == label_studio.username
    with pytest.raises(ApiError) as revoked:
        label_studio.client(pat).users.whoami()
    assert revoked.value.status_code == 401


def test_personal_access_tokens_get_enabled(label_studio: LocalLabelStudio, ls_client: Any) -> None:
    ls_client.jwt_settings.update(
        api_token_ttl_days=200 * 365, api_tokens_enabled=False, legacy_api_tokens_enabled=True
    )
    try:
        pat = create_personal_access_token(label_studio)
        assert ls_client.jwt_settings.get().api_tokens_enabled is True
        assert label_studio.client(pat).users.whoami().email == label_studio.username
    finally:
        ls_client.jwt_settings.update(
            api_token_ttl_days=200 * 365, api_tokens_enabled=True, legacy_api_tokens_enabled=True
        )


def test_projects_and_tasks_can_be_created_and_listed(ls_client: Any, make_project: Any) -> None:
    texts = ["great", "awful", "meh"]
    project_id = make_project(TEXT_CHOICES_CONFIG, [{"text": t} for t in texts])
    assert project_id in [p.id for p in ls_client.projects.list()]
    tasks = list(ls_client.tasks.list(project=project_id))
    assert sorted(t.data["text"] for t in tasks) == sorted(texts)


def _copy_data_dir(ls: LocalLabelStudio, target: Path) -> Path:
    """A consistent copy of a running server's data dir (sqlite backup API, .env, credentials)."""
    target.mkdir()
    for name in (".env", CREDENTIALS_FILE):
        shutil.copy2(ls.data_dir / name, target / name)
    with (
        sqlite3.connect(ls.data_dir / "label_studio.sqlite3") as src,
        sqlite3.connect(target / "label_studio.sqlite3") as dst,
    ):
        src.backup(dst)
    return target


def test_warm_start_keeps_user_token_and_data(
    label_studio: LocalLabelStudio, make_project: Any, tmp_path: Path
) -> None:
    project_id = make_project(TEXT_CHOICES_CONFIG, [{"text": "kept"}])
    data_dir = _copy_data_dir(label_studio, tmp_path / "copy")

    with pytest.raises(ValueError, match="applies --user-token"):
        start_label_studio(data_dir, token="f" * 40)

    for _ in range(2):  # warm start, then a restart of that one
        with start_label_studio(data_dir, startup_timeout=60) as warm:
            assert warm.url != label_studio.url
            assert (warm.token, warm.password) == (label_studio.token, label_studio.password)
            client = warm.client()
            assert client.users.whoami().email == label_studio.username
            assert project_id in [p.id for p in client.projects.list()]
        assert not warm.is_running()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{warm.url}/health", trust_env=False)


def test_failed_start_raises_with_log_tail(label_studio_installed: None, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"exited with code \d+ during startup") as err:
        start_label_studio(tmp_path, extra_env={"DJANGO_DB": "no-such-db"}, startup_timeout=60)
    assert "no-such-db" in str(err.value)  # the KeyError from Label Studio's settings
