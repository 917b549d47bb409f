"""URL rules: which task media URLs are accepted, which hosts may be fetched, how URLs are shown.

Nothing here opens a connection: these are the checks made before one is opened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from .result import MediaError

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Paths Label Studio 1.23.2 itself puts into task data or serves media from: data_import/urls.py
# (data/upload, storage-data/uploaded), io_storages/urls.py (data/local-files, tasks|projects
# /<id>/resolve|presign). Anything else starting with "/" is most likely a path on someone's disk.
_LABEL_STUDIO_PATH = re.compile(
    r"/(?:data/|storage-data/|(?:tasks|projects)/\d+/(?:resolve|presign)/)", re.IGNORECASE
)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_QUERY_KEY = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,40}")
_SHOWN_LIMIT = 200


# --------------------------------------------------------------------------- showing URLs


def is_data_url(value: str) -> bool:
    """Whether the value is a ``data:`` URL (the scheme is case-insensitive)."""
    return value[:5].lower() == "data:"


def redact_url(value: str) -> str:
    """A URL safe to show: no userinfo, no fragment, query values replaced by ``…``, shortened.

    ``data:`` URLs are shown by their header and length only.

    >>> redact_url("https://user:secret@ls.example.com/data/local-files/?d=img/a.png#x")
    'https://ls.example.com/data/local-files/?d=…'
    >>> redact_url("data:image/png;base64,iVBORw0KGgo=")
    'data:image/png;base64,… (34 chars)'
    """
    if is_data_url(value):
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
    query = _redact_query(query)
    shown = urlunsplit((scheme, netloc, path, query, ""))
    if not scheme and not netloc:  # a relative path
        shown = path + (f"?{query}" if query else "")
    return shown if len(shown) <= _SHOWN_LIMIT else shown[: _SHOWN_LIMIT - 1] + "…"


def _redact_query(query: str) -> str:
    """Keep parameter names (``?d=…`` says what kind of link it is), never values."""
    if not query:
        return query
    items = (item.partition("=") for item in query.split("&"))
    return "&".join(f"{k}=…" if eq and _QUERY_KEY.fullmatch(k) else "…" for k, eq, _ in items)


# --------------------------------------------------------------------------- hosts


def host_of(url: httpx.URL) -> str:
    """Normalised host for comparisons: IDNA-encoded, lower case, no trailing dot."""
    return url.raw_host.decode("ascii").lower().rstrip(".")


def port_of(url: httpx.URL) -> int | None:
    """The port, the scheme's default one when the URL names none."""
    return url.port if url.port is not None else DEFAULT_PORTS.get(url.scheme)


def host_port(url: httpx.URL) -> str:
    """``host`` or ``host:port`` as written in the URL, for messages."""
    host = url.raw_host.decode("ascii")
    host = f"[{host}]" if ":" in host else host
    return host if url.port is None else f"{host}:{url.port}"


@dataclass(frozen=True)
class HostRule:
    """One ``allowed_hosts`` entry: ``host``, ``host:port`` or ``*.domain[:port]``.

    >>> rule = HostRule.parse("*.example.org")
    >>> rule.matches("img.example.org", 443), rule.matches("example.org", 443)
    (True, False)
    """

    host: str
    wildcard: bool
    port: int | None

    @classmethod
    def parse(cls, entry: str) -> HostRule:
        """The rule an entry states; ValueError for anything else than a host pattern."""
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
        return cls(host=host_of(url), wildcard=wildcard, port=url.port)

    def matches(self, host: str, port: int | None) -> bool:
        """Whether a normalised host and port fall under this rule."""
        if self.port is not None and self.port != port:
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


def allowed_host(url: httpx.URL, rules: tuple[HostRule, ...]) -> bool:
    """Whether any of the rules allows the URL's host and port."""
    host, port = host_of(url), port_of(url)
    return any(rule.matches(host, port) for rule in rules)


# --------------------------------------------------------------------------- Label Studio


@dataclass(frozen=True)
class LabelStudioURL:
    """A Label Studio base URL (scheme, host, port and optional path prefix)."""

    base: str
    scheme: str
    host: str
    port: int | None

    @classmethod
    def parse(cls, raw: str) -> LabelStudioURL:
        """The base URL, checked: http(s), a host, no credentials, query or fragment."""
        text = raw.strip().rstrip("/")
        try:
            url = httpx.URL(text)
        except httpx.InvalidURL:
            raise ValueError(f"Label Studio URL {redact_url(text)!r} is not a valid URL") from None
        if url.scheme not in DEFAULT_PORTS or not url.raw_host:
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
            base=str(url).rstrip("/"), scheme=url.scheme, host=host_of(url), port=port_of(url)
        )

    def same_origin(self, url: httpx.URL) -> bool:
        """Same scheme, host and port: the only URLs that may receive the Label Studio token."""
        return url.scheme == self.scheme and host_of(url) == self.host and port_of(url) == self.port

    def join(self, path: str) -> httpx.URL:
        """The absolute URL of a path on this Label Studio."""
        return httpx.URL(self.base + path)


# --------------------------------------------------------------------------- task media values


def task_url(value: str, label_studio: LabelStudioURL | None) -> httpx.URL:
    """The URL a (non-``data:``) task media value names: a Label Studio path or http(s) URL.

    Raises :class:`MediaError` for other schemes, other paths and malformed values.
    """
    shown = redact_url(value)
    if value.startswith("/"):
        return _label_studio_path(value, shown, label_studio)
    _check_scheme(value, shown)
    try:
        return httpx.URL(value)
    except httpx.InvalidURL:
        raise MediaError(f"task media {shown!r} is not a valid URL") from None


def _check_scheme(value: str, shown: str) -> None:
    """Refuse a value that has no URL scheme, or another one than http(s)."""
    match = _SCHEME.match(value)
    if match is None:
        raise MediaError(
            f"task media {shown!r} is neither a URL nor a Label Studio path (/data/upload/…)"
        )
    scheme = match.group(1).lower()
    if scheme not in DEFAULT_PORTS:
        raise MediaError(
            f"task media {shown!r} uses the unsupported scheme '{scheme}:' "
            "(only data:, http:, https: and Label Studio paths are fetched)"
        )


def _label_studio_path(value: str, shown: str, label_studio: LabelStudioURL | None) -> httpx.URL:
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
