"""Connect an ML backend to a Label Studio project without falling into the model_version trap.

Label Studio's prediction score column (``predictions_score``, used for ordering and Uncertainty
sampling) averages only predictions whose ``model_version`` equals ``project.model_version``,
and connecting a backend sets ``project.model_version`` to the backend's TITLE. So the backend
is given ``title=model_version`` and the project's model_version is checked (and PATCHed).
Label Studio is reached through :class:`act_plugin.labelstudio.Gateway` (its retry policy).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from label_studio_sdk import LabelStudio

from act_plugin.labelstudio import Gateway, LabelStudioError

__all__ = ["ConnectError", "Connection", "backend_model_version", "connect_backend"]

logger = logging.getLogger(__name__)

_SSRF_HINT = (
    " Label Studio blocks ML backends on loopback/private addresses by default: start the Label "
    "Studio server with ML_BLOCK_LOCAL_IP=false and SSRF_PROTECTION_ENABLED=false in its "
    "environment, or serve the backend on a non-private address."
)


class ConnectError(RuntimeError):
    """Label Studio refused to connect the ML backend to the project."""


@dataclass
class Connection:
    """Result of :func:`connect_backend`."""

    ml_backend_id: int
    project_id: int
    model_version: str
    created: bool  # False when an existing backend with that URL was updated


def connect_backend(
    client: LabelStudio,
    project_id: int,
    backend_url: str,
    *,
    model_version: str,
    basic_auth: tuple[str, str] | None = None,
    interactive: bool = False,
) -> Connection:
    """Create or update the project's ML backend at `backend_url`, titled `model_version`.

    Idempotent: an existing backend of the project with the same URL is updated, not duplicated.
    Afterwards ``project.model_version == model_version``, so predictions carrying that version
    fill the prediction score column. Raises :class:`ConnectError` when Label Studio refuses.
    """
    if not model_version:
        raise ValueError("model_version must be a non-empty string")
    url = backend_url.rstrip("/")
    gateway = Gateway(client)
    fields = _backend_fields(project_id, url, model_version, basic_auth, interactive)
    backend_id, created = _upsert_backend(gateway, project_id, url, fields)
    _set_project_version(gateway, project_id, url, model_version)
    return Connection(
        ml_backend_id=backend_id,
        project_id=project_id,
        model_version=model_version,
        created=created,
    )


def _backend_fields(
    project_id: int,
    url: str,
    model_version: str,
    basic_auth: tuple[str, str] | None,
    interactive: bool,
) -> dict[str, Any]:
    """The ML backend as Label Studio stores it, titled with the model_version."""
    # PATCH needs url and project too: Label Studio re-runs /health and /setup with them
    fields: dict[str, Any] = {
        "project": project_id,
        "url": url,
        "title": model_version,
        "is_interactive": interactive,
    }
    if basic_auth is None:
        fields["auth_method"] = "NONE"
    else:
        fields["auth_method"] = "BASIC_AUTH"
        fields["basic_auth_user"], fields["basic_auth_pass"] = basic_auth
    return fields


def _upsert_backend(
    gateway: Gateway, project_id: int, url: str, fields: dict[str, Any]
) -> tuple[int, bool]:
    """(id, created): the project's backend at ``url`` updated, or a new one."""

    def refused(action: str, err: LabelStudioError) -> ConnectError:
        return ConnectError(
            f"Label Studio refused to {action} ML backend {url} for project {project_id}: "
            f"{_explain(err)}"
        )

    try:
        existing = [b for b in gateway.list_ml_backends(project_id) if _same_url(b.get("url"), url)]
    except LabelStudioError as err:
        raise refused("look up", err) from err
    created = not existing
    if len(existing) > 1:
        logger.warning(
            "project %s has %d ML backends at %s; updating id=%s only",
            project_id, len(existing), url, existing[0]["id"],
        )  # fmt: skip
    try:
        if created:
            backend = gateway.create_ml_backend(fields)
        else:
            backend = gateway.update_ml_backend(existing[0]["id"], fields)
    except LabelStudioError as err:
        raise refused("create" if created else "update", err) from err
    backend = backend if isinstance(backend, dict) else {}
    if backend.get("id") is None:
        raise ConnectError(
            f"Label Studio returned no id for ML backend {url} (project {project_id})"
        )
    reported = backend.get("model_version")
    if reported and reported != fields["title"]:
        logger.warning(
            "ML backend %s reports model_version %r through /setup, not %r: its predictions "
            "will not count in the score column of project %s",
            url, reported, fields["title"], project_id,
        )  # fmt: skip
    return int(backend["id"]), created


def _set_project_version(gateway: Gateway, project_id: int, url: str, model_version: str) -> None:
    """PATCH the project's model_version when it differs, and check that it holds."""
    try:
        if gateway.get_project(project_id).get("model_version") != model_version:
            gateway.update_project(project_id, model_version=model_version)
        actual = gateway.get_project(project_id).get("model_version")
    except LabelStudioError as err:
        raise ConnectError(
            f"Connected ML backend {url} to project {project_id}, but Label Studio refused to set "
            f"the project's model_version to {model_version!r}: {_explain(err)}"
        ) from err
    if actual != model_version:
        raise ConnectError(
            f"Project {project_id} kept model_version {actual!r} instead of {model_version!r} "
            f"after connecting ML backend {url}"
        )


def backend_model_version(
    backend_url: str, *, basic_auth: tuple[str, str] | None = None, timeout: float = 10.0
) -> str:
    """The model_version an ACT backend reports at GET /health (what its predictions carry)."""
    url = backend_url.rstrip("/") + "/health"
    try:
        response = httpx.get(url, auth=basic_auth, timeout=timeout)
        response.raise_for_status()
        version = response.json().get("model_version")
    except (httpx.HTTPError, ValueError) as err:
        raise ConnectError(f"could not read the model_version from {url}: {err}") from None
    if not isinstance(version, str) or not version:
        raise ConnectError(f"{url} reports no model_version: is it a label-studio-act backend?")
    return version


def _same_url(a: str | None, b: str) -> bool:
    return (a or "").rstrip("/") == b


def _explain(err: LabelStudioError) -> str:
    """Status plus what Label Studio said, with a hint for the SSRF refusal."""
    body = err.body
    if err.status_code is None:  # Label Studio stayed away: the message says how
        return str(err)
    parts: list[str] = []
    if isinstance(body, dict):
        if body.get("detail"):
            parts.append(str(body["detail"]))
        parts.extend(_flatten(body.get("validation_errors")))
        if not parts:
            parts.append(str(body))
    elif body:
        parts.append(str(body))
    text = f"HTTP {err.status_code}: " + re.sub(r"<[^>]+>", "", "; ".join(parts))  # <a href>
    if "reserved network address" in text or (err.status_code == 403 and "URL" in text):
        text += "." + _SSRF_HINT
    return text


def _flatten(errors: Any) -> Iterable[str]:
    if isinstance(errors, dict):
        for key, value in errors.items():
            for msg in _flatten(value):
                yield msg if key == "non_field_errors" else f"{key}: {msg}"
    elif isinstance(errors, list):
        for item in errors:
            yield from _flatten(item)
    elif errors:
        yield str(errors)
