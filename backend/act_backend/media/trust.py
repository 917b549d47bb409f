"""Which Label Studio URL and token a request's media is fetched with.

The configured ones win over the ``hostname`` and ``access_token`` Label Studio sends with a
request: a configured Label Studio URL is the only one trusted. Without one, the request's URL is
trusted, so whoever can call the backend chooses where relative paths are fetched from.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from .auth import LabelStudioAuth
from .urls import LabelStudioURL, redact_url

logger = logging.getLogger(__name__)

_MAX_CACHED_AUTHS = 16
_MAX_WARNED_URLS = 16


class LabelStudioTrust:
    """The configured Label Studio URL and token, and the per-request ones allowed in their place.

    Thread-safe: per-request tokens are cached (one :class:`LabelStudioAuth` each, so access
    tokens are reused) and each ignored URL is warned about once, both within fixed bounds.
    """

    def __init__(self, label_studio_url: str | None, label_studio_token: str | None) -> None:
        self.label_studio = LabelStudioURL.parse(label_studio_url) if label_studio_url else None
        self.auth = LabelStudioAuth(label_studio_token) if label_studio_token else None
        self._lock = threading.Lock()
        self._auths: OrderedDict[str, LabelStudioAuth] = OrderedDict()
        self._warned: set[str] = set()

    def label_studio_for(self, per_request: str | None) -> LabelStudioURL | None:
        """The configured Label Studio; else the one Label Studio named in the request."""
        per_request = (per_request or "").strip() or None
        if self.label_studio is not None:
            if per_request is not None and not _same_base(per_request, self.label_studio):
                self._warn_once(
                    per_request,
                    "ignoring the Label Studio URL %s sent with the request: only the "
                    "configured LABEL_STUDIO_URL %s is trusted",
                    redact_url(per_request),
                    self.label_studio.base,
                )
            return self.label_studio
        if per_request is None:
            return None
        try:
            return LabelStudioURL.parse(per_request)
        except ValueError as exc:
            self._warn_once(
                per_request, "ignoring the Label Studio URL sent with the request: %s", exc
            )
            return None

    def auth_for(self, per_request: str | None) -> LabelStudioAuth | None:
        """The configured token; else the request's, one cached object per token."""
        if self.auth is not None:
            return self.auth
        per_request = (per_request or "").strip()
        if not per_request:
            return None
        with self._lock:
            auth = self._auths.get(per_request)
            if auth is None:
                auth = LabelStudioAuth(per_request)
                self._auths[per_request] = auth
                while len(self._auths) > _MAX_CACHED_AUTHS:
                    self._auths.popitem(last=False)
            else:
                self._auths.move_to_end(per_request)
        return auth

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        with self._lock:
            if key in self._warned or len(self._warned) >= _MAX_WARNED_URLS:
                return
            self._warned.add(key)
        logger.warning(message, *args)


def _same_base(raw: str, label_studio: LabelStudioURL) -> bool:
    """Whether a Label Studio URL names the same base URL; False if it does not parse."""
    try:
        return LabelStudioURL.parse(raw).base == label_studio.base
    except ValueError:
        return False
