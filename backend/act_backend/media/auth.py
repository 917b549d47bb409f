"""Label Studio tokens: legacy tokens as they are, personal access tokens exchanged and cached."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
from typing import Literal

import httpx

from .result import MediaError
from .urls import REDIRECT_STATUSES, redact_url

logger = logging.getLogger(__name__)

_JWT = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
# Refresh a cached access token this many seconds before its ``exp`` claim, to save a 401.
_EXPIRY_MARGIN = 10.0


class LabelStudioAuth:
    """How to authenticate to Label Studio when downloading its files.

    Two kinds of token exist in Label Studio 1.23:

    * a legacy token (40 hex characters), sent as ``Authorization: Token <token>``;
    * a personal access token, i.e. a JWT refresh token. It is exchanged at
      ``POST <ls>/api/token/refresh/`` for a short-lived access token sent as
      ``Authorization: Bearer <access>``. The access token is cached per Label Studio URL and
      refreshed when it expires or Label Studio answers 401.

    Thread-safe. The token never appears in ``repr``/``str``.

    >>> LabelStudioAuth("Token 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b")
    LabelStudioAuth(kind='legacy')
    """

    __slots__ = ("_access", "_kind", "_lock", "_token")

    def __init__(self, token: str) -> None:
        token = token.strip()
        # Accept a pasted header value too ("Token abc…", "Bearer eyJ…").
        for prefix in ("Token ", "Bearer "):
            if token[: len(prefix)].lower() == prefix.lower():
                token = token[len(prefix) :].strip()
        if not token:
            raise ValueError("the Label Studio token is empty")
        self._token = token
        # Anything not shaped like a JWT is sent as a legacy token: Label Studio lets
        # `--user-token` set legacy tokens that are not 40 hex characters.
        self._kind: Literal["legacy", "pat"] = "pat" if _JWT.fullmatch(token) else "legacy"
        self._lock = threading.Lock()
        self._access: dict[str, str] = {}

    @property
    def kind(self) -> Literal["legacy", "pat"]:
        """``"legacy"`` (``Token`` header) or ``"pat"`` (personal access token, ``Bearer``)."""
        return self._kind

    def __repr__(self) -> str:
        return f"LabelStudioAuth(kind={self._kind!r})"

    __str__ = __repr__

    def authorization(self, client: httpx.Client, base_url: str, *, timeout: float) -> str:
        """The ``Authorization`` header value for requests to the Label Studio at ``base_url``."""
        if self._kind == "legacy":
            return f"Token {self._token}"
        # One lock for refreshes: many threads hitting an expired token cause one refresh.
        with self._lock:
            access = self._access.get(base_url)
            if access is None or _jwt_expired(access):
                access = self._refresh(client, base_url, timeout=timeout)
                self._access[base_url] = access
        return f"Bearer {access}"

    def invalidate(self, base_url: str, rejected: str) -> bool:
        """Forget the access token behind the rejected header; False for a legacy token.

        Only the token that was rejected is dropped: another thread may already have cached a
        fresh one, which must not be thrown away.
        """
        if self._kind == "legacy":
            return False
        with self._lock:
            current = self._access.get(base_url)
            if current is not None and f"Bearer {current}" == rejected:
                del self._access[base_url]
        return True

    def _refresh(self, client: httpx.Client, base_url: str, *, timeout: float) -> str:
        """Exchange the personal access token for an access token at ``/api/token/refresh/``."""
        url = f"{base_url}/api/token/refresh/"
        shown = redact_url(url)
        try:
            response = client.post(
                url,
                json={"refresh": self._token},
                headers={"Accept": "application/json"},
                timeout=timeout,
            )
        except httpx.TimeoutException:
            raise MediaError(
                f"timed out refreshing the Label Studio personal access token at {shown}"
            ) from None
        except httpx.HTTPError as exc:
            raise MediaError(
                f"could not reach Label Studio at {shown} to refresh the personal access token "
                f"({type(exc).__name__})"
            ) from None
        access = _access_token(response, shown)
        logger.info("obtained a Label Studio access token from %s", shown)
        return access


def _access_token(response: httpx.Response, shown: str) -> str:
    """The access token in Label Studio's answer to a refresh, or a :class:`MediaError`."""
    status = response.status_code
    if status in (401, 403):
        raise MediaError(
            f"Label Studio rejected the personal access token (HTTP {status}) at {shown}: "
            "check LABEL_STUDIO_API_KEY (a personal access token of a user of this Label "
            "Studio, not revoked; or a legacy token)"
        )
    if status in REDIRECT_STATUSES:
        raise MediaError(
            f"Label Studio answered the token refresh at {shown} with a redirect "
            f"(HTTP {status}): set LABEL_STUDIO_URL to Label Studio's final address"
        )
    if status != 200:
        raise MediaError(
            f"refreshing the Label Studio personal access token at {shown} failed "
            f"with HTTP {status}"
        )
    try:
        access = response.json()["access"]
    except (ValueError, KeyError, TypeError):
        access = None
    if not isinstance(access, str) or not access:
        raise MediaError(
            f"Label Studio's answer to the token refresh at {shown} holds no access token"
        )
    return access


def _jwt_expired(token: str) -> bool:
    """Whether a JWT's ``exp`` claim is (nearly) past. Unreadable claims count as valid.

    The signature is not checked: this only avoids a round trip, Label Studio decides.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        return False
    return exp < time.time() + _EXPIRY_MARGIN
