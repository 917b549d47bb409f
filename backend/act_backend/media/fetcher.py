"""The fetcher: one task media value in, checked :class:`Media` out, every redirect hop checked."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import httpx

from act_backend import __version__

from .auth import LabelStudioAuth
from .data_urls import decode_data_url
from .result import Media, MediaError
from .sniff import ContentRules
from .trust import LabelStudioTrust
from .urls import (
    DEFAULT_PORTS,
    REDIRECT_STATUSES,
    HostRule,
    LabelStudioURL,
    allowed_host,
    host_port,
    is_data_url,
    redact_url,
    task_url,
)

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3
_POOL_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=30)


@dataclass(frozen=True)
class _Request:
    """One GET to send: the token (if any) and the Label Studio base it is for, the deadline."""

    url: httpx.URL
    auth: LabelStudioAuth | None
    base: str
    deadline: float
    shown: str  # the URL as messages show it


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process: building one loads the CA bundle (~25 ms)."""
    return httpx.create_ssl_context()


class MediaFetcher:
    """Fetch task media as :class:`Media`, applying the SSRF rules in the package docstring.

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
        self._rules = ContentRules.of(max_bytes, allowed_mime_prefixes)
        self._trust = LabelStudioTrust(label_studio_url, label_studio_token)
        self._hosts = tuple(HostRule.parse(h) for h in allowed_hosts if h.strip())
        self._timeout = timeout
        self._client = httpx.Client(
            follow_redirects=False,  # redirects are followed by hand, checking every hop
            timeout=timeout,
            limits=_POOL_LIMITS,
            verify=_ssl_context(),
            headers={"User-Agent": f"label-studio-act/{__version__}"},
        )

    def __repr__(self) -> str:
        ls = self._trust.label_studio.base if self._trust.label_studio else None
        return (
            f"MediaFetcher(label_studio_url={ls!r}, label_studio_token="
            f"{'set' if self._trust.auth else None!r}, allowed_hosts={len(self._hosts)}, "
            f"max_bytes={self._rules.max_bytes}, timeout={self._timeout})"
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> MediaFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
        if is_data_url(value):
            return decode_data_url(value, self._rules)
        label_studio = self._trust.label_studio_for(label_studio_url)
        url = task_url(value, label_studio)
        auth = self._trust.auth_for(label_studio_token)
        return self._download(url, label_studio, auth)

    # ------------------------------------------------------------------ hop by hop

    def _download(
        self, url: httpx.URL, label_studio: LabelStudioURL | None, auth: LabelStudioAuth | None
    ) -> Media:
        """GET the URL, following at most MAX_REDIRECTS redirects, each hop checked first."""
        deadline = time.monotonic() + self._timeout
        previous: str | None = None
        # The token goes only to the Label Studio origin, and never again once a redirect has
        # left it: a foreign host could otherwise bounce us back to Label Studio with the token.
        chain_on_label_studio = True
        base = label_studio.base if label_studio is not None else ""
        for hop in range(MAX_REDIRECTS + 1):
            shown = redact_url(str(url))
            on_label_studio = self._check_hop(url, shown, previous, label_studio)
            chain_on_label_studio = chain_on_label_studio and on_label_studio
            hop_auth = auth if chain_on_label_studio else None
            request = _Request(url, hop_auth, base, deadline, shown)
            with self._get(request) as response:
                status = response.status_code
                if status in REDIRECT_STATUSES and "location" in response.headers:
                    previous, url = shown, _redirect_target(response, url, shown, hop)
                    continue
                if not 200 <= status < 300:
                    dropped = auth is not hop_auth
                    raise MediaError(
                        _refusal(status, shown, on_label_studio, hop_auth, dropped=dropped)
                    )
                declared = response.headers.get("content-type", "")
                data = self._read_body(response, request)
            media = self._rules.check(data, declared, shown)
            logger.debug("fetched %s (%s, %d bytes)", shown, media.mime, len(media.data))
            return media
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _check_hop(
        self, url: httpx.URL, shown: str, previous: str | None, label_studio: LabelStudioURL | None
    ) -> bool:
        """Refuse a hop to anywhere but Label Studio or an allowed host; True on Label Studio."""
        if url.scheme not in DEFAULT_PORTS:
            raise MediaError(
                f"refusing to follow the redirect from {previous} to {shown}: "
                f"unsupported scheme '{url.scheme}:'"
            )
        if not url.raw_host:
            raise MediaError(f"refusing to fetch {shown}: the URL has no host")
        on_label_studio = label_studio is not None and label_studio.same_origin(url)
        if not on_label_studio and not allowed_host(url, self._hosts):
            action = f"follow the redirect from {previous} to" if previous else "fetch"
            raise MediaError(
                f"refusing to {action} {shown}: host {host_port(url)} is not the Label "
                "Studio host nor in ACT_ALLOWED_MEDIA_HOSTS"
            )
        return on_label_studio

    # ------------------------------------------------------------------ one request

    @contextmanager
    def _get(self, request: _Request) -> Iterator[httpx.Response]:
        """A streamed GET; with a personal access token, one refresh and retry after a 401."""
        response = self._send(request)
        try:
            auth = request.auth
            if response.status_code == 401 and auth is not None:
                rejected = response.request.headers.get("authorization", "")
                if auth.invalidate(request.base, rejected):
                    response.close()
                    logger.info("Label Studio refused the access token (401); refreshing it")
                    response = self._send(request)
            yield response
        finally:
            response.close()

    def _send(self, request: _Request) -> httpx.Response:
        """Send one GET, streaming, with the token if the request carries one."""
        shown = request.shown
        headers = {
            "Accept": ", ".join(self._rules.patterns()) + ", */*;q=0.1",
            # Compressed bodies could inflate far beyond max_bytes within one chunk.
            "Accept-Encoding": "identity",
        }
        if request.auth is not None:
            headers["Authorization"] = request.auth.authorization(
                self._client, request.base, timeout=self._remaining(request.deadline, shown)
            )
        built = self._client.build_request(
            "GET", request.url, headers=headers, timeout=self._remaining(request.deadline, shown)
        )
        try:
            return self._client.send(built, stream=True)
        except httpx.TimeoutException:
            raise MediaError(self._timed_out(shown)) from None
        except httpx.HTTPError as exc:
            raise MediaError(
                f"could not download {shown}: {type(exc).__name__} connecting to "
                f"{host_port(request.url)}"
            ) from None

    def _remaining(self, deadline: float, shown: str) -> float:
        """Seconds left before the deadline; a :class:`MediaError` once it has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MediaError(self._timed_out(shown))
        return remaining

    def _read_body(self, response: httpx.Response, request: _Request) -> bytes:
        """Stream the body, stopping as soon as it passes ``max_bytes`` or the deadline.

        Content-Length is only used to refuse early: it may be absent or lie.
        """
        shown, deadline, max_bytes = request.shown, request.deadline, self._rules.max_bytes
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise MediaError(self._rules.too_large(shown))
        body = bytearray()
        try:
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise MediaError(self._rules.too_large(shown))
                if time.monotonic() > deadline:
                    raise MediaError(self._timed_out(shown))
        except httpx.TimeoutException:
            raise MediaError(self._timed_out(shown)) from None
        except httpx.HTTPError as exc:
            raise MediaError(f"the download of {shown} broke off ({type(exc).__name__})") from None
        return bytes(body)

    def _timed_out(self, shown: str) -> str:
        return f"timed out after {self._timeout:g} s downloading {shown}"


def _redirect_target(response: httpx.Response, url: httpx.URL, shown: str, hop: int) -> httpx.URL:
    """Where a redirect points; a :class:`MediaError` past MAX_REDIRECTS or for a bad URL."""
    if hop == MAX_REDIRECTS:
        raise MediaError(f"too many redirects fetching {shown} (more than {MAX_REDIRECTS})")
    try:
        next_url = url.join(response.headers["location"])
    except (httpx.InvalidURL, UnicodeError):
        raise MediaError(f"{shown} redirected to an invalid URL") from None
    logger.debug("%s redirected (%d) to %s", shown, response.status_code, redact_url(str(next_url)))
    return next_url


def _refusal(
    status: int, shown: str, on_label_studio: bool, auth: LabelStudioAuth | None, *, dropped: bool
) -> str:
    """The message for a download answered with a non-2xx, non-redirect status."""
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
