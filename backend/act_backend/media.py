"""Turn task media references into ``data:`` URLs for an LLM, without becoming an SSRF proxy.

Label Studio tasks reference images in three ways:

* ``data:`` URLs, decoded locally;
* paths relative to Label Studio (``/data/upload/<project>/<file>``, ``/data/local-files/?d=…``,
  ``/storage-data/uploaded/?filepath=…``, ``/tasks/<id>/resolve/?fileuri=…``), fetched from the
  Label Studio URL with the Label Studio token (Label Studio answers 401 without it);
* absolute ``http(s)`` URLs, fetched only from the Label Studio origin or an allow-listed host.

Whoever can write task data chooses these URLs, so every hop (redirects included) is checked
against the allow-list before any connection is made, the Label Studio token only ever goes to the
Label Studio origin, bodies are size-capped while streaming, and the media type is read from the
bytes. Error messages, reprs and log records quote URLs with credentials and query values removed.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal
from urllib.parse import unquote, unquote_to_bytes, urlsplit, urlunsplit

import httpx

from act_backend import __version__

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Paths Label Studio 1.23.2 itself puts into task data or serves media from: data_import/urls.py
# (data/upload, storage-data/uploaded), io_storages/urls.py (data/local-files, tasks|projects
# /<id>/resolve|presign). Anything else starting with "/" is most likely a path on someone's disk.
_LABEL_STUDIO_PATH = re.compile(
    r"/(?:data/|storage-data/|(?:tasks|projects)/\d+/(?:resolve|presign)/)", re.IGNORECASE
)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_LEGACY_TOKEN = re.compile(r"[0-9a-fA-F]{40}")
_JWT = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
_QUERY_KEY = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,40}")
# Refresh a cached access token this many seconds before its ``exp`` claim, to save a 401.
_EXPIRY_MARGIN = 10.0
_MAX_CACHED_AUTHS = 16
_MAX_WARNED_URLS = 16
_POOL_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=30)
_SHOWN_LIMIT = 200


class MediaError(Exception):
    """A task's media could not be used; the message is safe to show (no secrets) and specific."""


@dataclass(frozen=True)
class Media:
    """Decoded media: the mime type read from the content (or declared) and the raw bytes."""

    mime: str
    data: bytes = field(repr=False)

    def data_url(self) -> str:
        """The media as a base64 ``data:`` URL, the form OpenAI image content parts accept."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def __repr__(self) -> str:
        return f"Media(mime={self.mime!r}, size={len(self.data)})"


# --------------------------------------------------------------------------- Label Studio auth


class LabelStudioAuth:
    """How to authenticate to Label Studio when downloading its files.

    Two kinds of token exist in Label Studio 1.23:

    * a legacy token (40 hex characters), sent as ``Authorization: Token <token>``;
    * a personal access token, i.e. a JWT refresh token. It is exchanged at
      ``POST <ls>/api/token/refresh/`` for a short-lived access token sent as
      ``Authorization: Bearer <access>``. The access token is cached per Label Studio URL and
      refreshed when it expires or Label Studio answers 401.

    Thread-safe. The token never appears in ``repr``/``str``.
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
        status = response.status_code
        if status in (401, 403):
            raise MediaError(
                f"Label Studio rejected the personal access token (HTTP {status}) at {shown}: "
                "check LABEL_STUDIO_API_KEY (a personal access token of a user of this Label "
                "Studio, not revoked; or a legacy token)"
            )
        if status in _REDIRECT_STATUSES:
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
        logger.info("obtained a Label Studio access token from %s", shown)
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


# --------------------------------------------------------------------------- URLs and hosts


def redact_url(value: str) -> str:
    """A URL safe to show: no userinfo, no fragment, query values replaced by ``…``, shortened.

    ``data:`` URLs are shown by their header and length only.
    """
    if value[:5].lower() == "data:":
        header = value[5:].partition(",")[0][:60]
        return f"data:{header},… ({len(value)} chars)"
    try:
        url = httpx.URL(value)
        scheme, host, port = url.scheme, url.raw_host.decode("ascii"), url.port
        path, query = url.path, url.query.decode("ascii", "replace")
    except (httpx.InvalidURL, UnicodeError, ValueError):
        try:
            parts = urlsplit(value)
            scheme, host, port = parts.scheme, parts.hostname or "", parts.port
            path, query = parts.path, parts.query
        except ValueError:
            return "<unparseable URL>"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    if query:
        # Keep parameter names (``?d=…`` says what kind of link it is), never values.
        items = (item.partition("=") for item in query.split("&"))
        query = "&".join(f"{k}=…" if eq and _QUERY_KEY.fullmatch(k) else "…" for k, eq, _ in items)
    shown = urlunsplit((scheme, netloc, path, query, ""))
    if not scheme and not netloc:  # a relative path
        shown = path + (f"?{query}" if query else "")
    return shown if len(shown) <= _SHOWN_LIMIT else shown[: _SHOWN_LIMIT - 1] + "…"


def _host_of(url: httpx.URL) -> str:
    """Normalised host for comparisons: IDNA-encoded, lower case, no trailing dot."""
    return url.raw_host.decode("ascii").lower().rstrip(".")


def _port_of(url: httpx.URL) -> int | None:
    return url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme)


def _host_port(url: httpx.URL) -> str:
    host = url.raw_host.decode("ascii")
    host = f"[{host}]" if ":" in host else host
    return host if url.port is None else f"{host}:{url.port}"


@dataclass(frozen=True)
class _HostRule:
    """One ``allowed_hosts`` entry: ``host``, ``host:port`` or ``*.domain[:port]``."""

    host: str
    wildcard: bool
    port: int | None

    @classmethod
    def parse(cls, entry: str) -> _HostRule:
        text = entry.strip()
        if "://" in text:  # tolerate "https://cdn.example.com"
            text = urlsplit(text).netloc
        wildcard = text.startswith("*.")
        if wildcard:
            text = text[2:]
        if not text or any(c in text for c in "/@?#*") or text.startswith("."):
            raise ValueError(
                f"bad allowed media host {entry!r}: use 'host', 'host:port' or '*.domain'"
            )
        try:
            url = httpx.URL(f"http://{text}/")
        except httpx.InvalidURL as exc:
            raise ValueError(f"bad allowed media host {entry!r}: {exc}") from None
        if not url.raw_host:
            raise ValueError(f"bad allowed media host {entry!r}: no host")
        return cls(host=_host_of(url), wildcard=wildcard, port=url.port)

    def matches(self, host: str, port: int | None) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


@dataclass(frozen=True)
class _LabelStudio:
    """A Label Studio base URL (scheme, host, port and optional path prefix)."""

    base: str
    scheme: str
    host: str
    port: int | None

    @classmethod
    def parse(cls, raw: str) -> _LabelStudio:
        text = raw.strip().rstrip("/")
        try:
            url = httpx.URL(text)
        except httpx.InvalidURL:
            raise ValueError(f"Label Studio URL {redact_url(text)!r} is not a valid URL") from None
        if url.scheme not in _DEFAULT_PORTS or not url.raw_host:
            raise ValueError(
                f"Label Studio URL {redact_url(text)!r} must be an http(s) URL with a host, "
                "e.g. http://localhost:8080"
            )
        if url.userinfo or url.query or url.fragment:
            raise ValueError(
                f"Label Studio URL {redact_url(text)!r} must not hold credentials, a query or a "
                "fragment (put the token in LABEL_STUDIO_API_KEY)"
            )
        return cls(
            base=str(url).rstrip("/"), scheme=url.scheme, host=_host_of(url), port=_port_of(url)
        )

    def same_origin(self, url: httpx.URL) -> bool:
        """Same scheme, host and port: the only URLs that may receive the Label Studio token."""
        return (
            url.scheme == self.scheme and _host_of(url) == self.host and _port_of(url) == self.port
        )

    def join(self, path: str) -> httpx.URL:
        return httpx.URL(self.base + path)


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process: building one loads the CA bundle (~25 ms)."""
    return httpx.create_ssl_context()


def _format_size(n: int) -> str:
    mib, kib = 1024 * 1024, 1024
    if n >= mib and n % mib == 0:
        return f"{n // mib} MB"
    if n >= kib and n % kib == 0:
        return f"{n // kib} KB"
    return f"{n} bytes"


# --------------------------------------------------------------------------- media types


def sniff_mime(data: bytes) -> str | None:
    """The media type told by the content's magic bytes, or None if not recognised.

    HTML is recognised too, so an error page served as ``image/png`` is still refused.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"BM") and len(data) >= 26:
        return "image/bmp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix"):
            return "image/heic"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "text/html"
    return None


# --------------------------------------------------------------------------- the fetcher


class MediaFetcher:
    """Fetch task media as :class:`Media`, applying the SSRF rules in the module docstring.

    One instance is meant to be shared by all worker threads: it holds one ``httpx.Client``
    (a connection pool) and locks around its caches.

    ``label_studio_url`` / ``label_studio_token`` configured here win over the per-request values
    Label Studio sends in ``/setup`` (``hostname``, ``access_token``): a configured Label Studio
    URL is the only one trusted. Without one, the per-request URL is trusted, so whoever can call
    the backend chooses where relative paths are fetched from; configure LABEL_STUDIO_URL in
    production.
    """

    def __init__(
        self,
        *,
        label_studio_url: str | None,
        label_studio_token: str | None,
        allowed_hosts: Sequence[str] = (),
        max_bytes: int = 20 * 1024 * 1024,
        timeout: float = 20.0,
        allowed_mime_prefixes: Sequence[str] = ("image/",),
    ) -> None:
        if isinstance(allowed_hosts, str):
            raise TypeError("allowed_hosts must be a sequence of host names, not one string")
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        prefixes = tuple(p.strip().lower() for p in allowed_mime_prefixes if p.strip())
        if not prefixes:
            raise ValueError("allowed_mime_prefixes must name at least one type, e.g. 'image/'")
        self._label_studio = _LabelStudio.parse(label_studio_url) if label_studio_url else None
        self._auth = LabelStudioAuth(label_studio_token) if label_studio_token else None
        self._rules = tuple(_HostRule.parse(h) for h in allowed_hosts if h.strip())
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._prefixes = prefixes
        self._lock = threading.Lock()
        self._auths: OrderedDict[str, LabelStudioAuth] = OrderedDict()
        self._warned: set[str] = set()
        self._client = httpx.Client(
            follow_redirects=False,  # redirects are followed by hand, checking every hop
            timeout=timeout,
            limits=_POOL_LIMITS,
            verify=_ssl_context(),
            headers={"User-Agent": f"label-studio-act/{__version__}"},
        )

    def __repr__(self) -> str:
        ls = self._label_studio.base if self._label_studio else None
        return (
            f"MediaFetcher(label_studio_url={ls!r}, label_studio_token="
            f"{'set' if self._auth else None!r}, allowed_hosts={len(self._rules)}, "
            f"max_bytes={self._max_bytes}, timeout={self._timeout})"
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> MediaFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public entry point

    def fetch(
        self,
        value: str,
        *,
        label_studio_url: str | None = None,
        label_studio_token: str | None = None,
    ) -> Media:
        """Resolve one task data value (``data:`` URL, Label Studio path or http(s) URL).

        ``label_studio_url`` / ``label_studio_token``: the ``hostname`` and ``access_token``
        Label Studio sent to ``/setup``; used only where the fetcher has none configured.
        Raises :class:`MediaError` with a message safe to show.
        """
        if not isinstance(value, str):
            raise MediaError(f"task media must be a URL string, got {type(value).__name__}")
        value = value.strip()
        if not value:
            raise MediaError("task media is empty")
        if value[:5].lower() == "data:":
            return self._from_data_url(value)

        shown = redact_url(value)
        label_studio = self._resolve_label_studio(label_studio_url)
        if value.startswith("/"):
            url = self._label_studio_path(value, shown, label_studio)
        else:
            match = _SCHEME.match(value)
            if match is None:
                raise MediaError(
                    f"task media {shown!r} is neither a URL nor a Label Studio path "
                    "(/data/upload/…)"
                )
            scheme = match.group(1).lower()
            if scheme not in _DEFAULT_PORTS:
                raise MediaError(
                    f"task media {shown!r} uses the unsupported scheme '{scheme}:' "
                    "(only data:, http:, https: and Label Studio paths are fetched)"
                )
            try:
                url = httpx.URL(value)
            except httpx.InvalidURL:
                raise MediaError(f"task media {shown!r} is not a valid URL") from None
        auth = self._resolve_auth(label_studio_token)
        return self._download(url, label_studio, auth)

    # ------------------------------------------------------------------ data: URLs

    def _from_data_url(self, value: str) -> Media:
        header, sep, payload = value[5:].partition(",")
        if not sep:
            raise MediaError("malformed data: URL: no ',' between the media type and the data")
        params = [p.strip() for p in header.split(";")]
        declared = params[0].lower() or "text/plain"  # RFC 2397's default
        if declared.count("/") != 1 or " " in declared:
            raise MediaError(
                f"malformed data: URL: media type {declared[:60]!r} is not type/subtype"
            )
        if any(p.lower() == "base64" for p in params[1:]):
            compact = re.sub(r"\s+", "", unquote(payload) if "%" in payload else payload)
            # Refuse before decoding: the decoded size is 3/4 of the text.
            if (len(compact) // 4) * 3 > self._max_bytes + 3:
                raise MediaError(
                    f"data: URL is larger than the {_format_size(self._max_bytes)} limit"
                )
            compact += "=" * (-len(compact) % 4)
            urlsafe = "-" in compact or "_" in compact
            try:
                data = base64.b64decode(compact, altchars=b"-_" if urlsafe else None, validate=True)
            except (binascii.Error, ValueError):
                raise MediaError("malformed data: URL: the base64 data is invalid") from None
        else:
            data = unquote_to_bytes(payload)
        return self._checked(data, declared, "data: URL")

    # ------------------------------------------------------------------ Label Studio

    @staticmethod
    def _label_studio_path(value: str, shown: str, label_studio: _LabelStudio | None) -> httpx.URL:
        """The absolute URL of a Label Studio media path, after checking its shape."""
        if value.startswith("//"):
            raise MediaError(
                f"task media {shown!r} is a scheme-relative URL; give the full http(s) URL"
            )
        if not _LABEL_STUDIO_PATH.match(value):
            raise MediaError(
                f"task media {shown!r} is a path, but not a Label Studio media path "
                "(/data/upload/…, /data/local-files/…, /storage-data/…): is it a file on disk?"
            )
        path = value.split("?", 1)[0]
        if ".." in unquote(path).replace("\\", "/").split("/"):
            raise MediaError(f"task media {shown!r} contains a '..' path segment")
        if label_studio is None:
            raise MediaError(
                f"task media {shown!r} is relative to Label Studio, but no Label Studio URL is "
                "known: set LABEL_STUDIO_URL or connect the backend from Label Studio"
            )
        try:
            return label_studio.join(value)
        except httpx.InvalidURL:
            raise MediaError(f"task media {shown!r} is not a valid path") from None

    def _resolve_label_studio(self, per_request: str | None) -> _LabelStudio | None:
        """The configured Label Studio; else the one Label Studio named in the request."""
        per_request = (per_request or "").strip() or None
        if self._label_studio is not None:
            if per_request is not None:
                try:
                    differs = _LabelStudio.parse(per_request).base != self._label_studio.base
                except ValueError:
                    differs = True
                if differs:
                    self._warn_once(
                        per_request,
                        "ignoring the Label Studio URL %s sent with the request: only the "
                        "configured LABEL_STUDIO_URL %s is trusted",
                        redact_url(per_request),
                        self._label_studio.base,
                    )
            return self._label_studio
        if per_request is None:
            return None
        try:
            return _LabelStudio.parse(per_request)
        except ValueError as exc:
            self._warn_once(
                per_request, "ignoring the Label Studio URL sent with the request: %s", exc
            )
            return None

    def _resolve_auth(self, per_request: str | None) -> LabelStudioAuth | None:
        """The configured token; else the request's, one cached object per token."""
        if self._auth is not None:
            return self._auth
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

    # ------------------------------------------------------------------ HTTP

    def _allowed_host(self, url: httpx.URL) -> bool:
        host, port = _host_of(url), _port_of(url)
        return any(rule.matches(host, port) for rule in self._rules)

    def _download(
        self, url: httpx.URL, label_studio: _LabelStudio | None, auth: LabelStudioAuth | None
    ) -> Media:
        deadline = time.monotonic() + self._timeout
        previous: str | None = None
        # The token goes only to the Label Studio origin, and never again once a redirect has
        # left it: a foreign host could otherwise bounce us back to Label Studio with the token.
        chain_on_label_studio = True
        for hop in range(MAX_REDIRECTS + 1):
            shown = redact_url(str(url))
            if url.scheme not in _DEFAULT_PORTS:
                raise MediaError(
                    f"refusing to follow the redirect from {previous} to {shown}: "
                    f"unsupported scheme '{url.scheme}:'"
                )
            if not url.raw_host:
                raise MediaError(f"refusing to fetch {shown}: the URL has no host")
            on_label_studio = label_studio is not None and label_studio.same_origin(url)
            if not on_label_studio and not self._allowed_host(url):
                action = f"follow the redirect from {previous} to" if previous else "fetch"
                raise MediaError(
                    f"refusing to {action} {shown}: host {_host_port(url)} is not the Label "
                    "Studio host nor in ACT_ALLOWED_MEDIA_HOSTS"
                )
            chain_on_label_studio = chain_on_label_studio and on_label_studio
            hop_auth = auth if chain_on_label_studio else None
            base = label_studio.base if label_studio is not None else ""
            with self._get(url, hop_auth, base, deadline, shown) as response:
                status = response.status_code
                if status in _REDIRECT_STATUSES and "location" in response.headers:
                    if hop == MAX_REDIRECTS:
                        raise MediaError(
                            f"too many redirects fetching {shown} (more than {MAX_REDIRECTS})"
                        )
                    try:
                        next_url = url.join(response.headers["location"])
                    except (httpx.InvalidURL, UnicodeError):
                        raise MediaError(f"{shown} redirected to an invalid URL") from None
                    logger.debug(
                        "%s redirected (%d) to %s", shown, status, redact_url(str(next_url))
                    )
                    previous, url = shown, next_url
                    continue
                if not 200 <= status < 300:
                    raise MediaError(
                        self._status_message(
                            status, shown, on_label_studio, hop_auth, dropped=auth is not hop_auth
                        )
                    )
                declared = response.headers.get("content-type", "")
                data = self._read_body(response, shown, deadline)
            media = self._checked(data, declared, shown)
            logger.debug("fetched %s (%s, %d bytes)", shown, media.mime, len(media.data))
            return media
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    @contextmanager
    def _get(
        self,
        url: httpx.URL,
        auth: LabelStudioAuth | None,
        base: str,
        deadline: float,
        shown: str,
    ) -> Iterator[httpx.Response]:
        """A streamed GET; with a personal access token, one refresh and retry after a 401."""
        response = self._send(url, auth, base, deadline, shown)
        try:
            if response.status_code == 401 and auth is not None:
                rejected = response.request.headers.get("authorization", "")
                if auth.invalidate(base, rejected):
                    response.close()
                    logger.info("Label Studio refused the access token (401); refreshing it")
                    response = self._send(url, auth, base, deadline, shown)
            yield response
        finally:
            response.close()

    def _send(
        self,
        url: httpx.URL,
        auth: LabelStudioAuth | None,
        base: str,
        deadline: float,
        shown: str,
    ) -> httpx.Response:
        headers = {
            "Accept": ", ".join(f"{p}*" if p.endswith("/") else p for p in self._prefixes)
            + ", */*;q=0.1",
            # Compressed bodies could inflate far beyond max_bytes within one chunk.
            "Accept-Encoding": "identity",
        }
        if auth is not None:
            headers["Authorization"] = auth.authorization(
                self._client, base, timeout=self._remaining(deadline, shown)
            )
        request = self._client.build_request(
            "GET", url, headers=headers, timeout=self._remaining(deadline, shown)
        )
        try:
            return self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise MediaError(f"timed out after {self._timeout:g} s downloading {shown}") from None
        except httpx.HTTPError as exc:
            raise MediaError(
                f"could not download {shown}: {type(exc).__name__} connecting to {_host_port(url)}"
            ) from None

    def _remaining(self, deadline: float, shown: str) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MediaError(f"timed out after {self._timeout:g} s downloading {shown}")
        return remaining

    def _read_body(self, response: httpx.Response, shown: str, deadline: float) -> bytes:
        """Stream the body, stopping as soon as it passes ``max_bytes`` or the deadline.

        Content-Length is only used to refuse early: it may be absent or lie.
        """
        too_large = f"{shown} is larger than the {_format_size(self._max_bytes)} limit"
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self._max_bytes:
            raise MediaError(too_large)
        body = bytearray()
        try:
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise MediaError(too_large)
                if time.monotonic() > deadline:
                    raise MediaError(f"timed out after {self._timeout:g} s downloading {shown}")
        except httpx.TimeoutException:
            raise MediaError(f"timed out after {self._timeout:g} s downloading {shown}") from None
        except httpx.HTTPError as exc:
            raise MediaError(f"the download of {shown} broke off ({type(exc).__name__})") from None
        return bytes(body)

    @staticmethod
    def _status_message(
        status: int,
        shown: str,
        on_label_studio: bool,
        auth: LabelStudioAuth | None,
        *,
        dropped: bool,
    ) -> str:
        if on_label_studio and status == 401:
            if dropped:
                return (
                    f"Label Studio refused the download of {shown} (401): the token is not sent "
                    "after a redirect through another host"
                )
            if auth is None:
                return (
                    f"Label Studio refused the download of {shown} (401): set "
                    "LABEL_STUDIO_API_KEY to a Label Studio access token (or connect the backend "
                    "from Label Studio, which sends one)"
                )
            return (
                f"Label Studio refused the download of {shown} (401): the {auth.kind} token was "
                "rejected; check LABEL_STUDIO_API_KEY (legacy tokens must be enabled for the "
                "organization)"
            )
        if on_label_studio and status == 403:
            return (
                f"Label Studio refused the download of {shown} (403): the token's user may not "
                "access this file"
            )
        if status == 404:
            return f"{shown} was not found (404)"
        if status in (401, 403):
            return f"{shown} refused the download ({status})"
        return f"downloading {shown} failed with HTTP {status}"

    # ------------------------------------------------------------------ checks

    def _checked(self, data: bytes, declared: str, shown: str) -> Media:
        """Apply the size, emptiness and type rules shared by data: URLs and downloads."""
        if not data:
            raise MediaError(f"{shown} is empty")
        if len(data) > self._max_bytes:
            raise MediaError(f"{shown} is larger than the {_format_size(self._max_bytes)} limit")
        mime = sniff_mime(data) or declared.split(";")[0].strip().lower()
        if not mime:
            mime = "application/octet-stream"
        if not mime.startswith(self._prefixes):
            wanted = (
                "an image"
                if self._prefixes == ("image/",)
                else "one of "
                + ", ".join(f"{p}*" if p.endswith("/") else p for p in self._prefixes)
            )
            raise MediaError(f"{shown} is {mime[:80]}, not {wanted}")
        return Media(mime=mime, data=data)
