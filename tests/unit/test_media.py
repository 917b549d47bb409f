"""Tests for act_backend.media against real HTTP servers on 127.0.0.1 imitating Label Studio.

Two servers run for the module: ``ls`` plays Label Studio (``/data/upload/…`` needs a token,
``/api/token/refresh/`` exchanges a personal access token) and ``cdn`` plays another host. The
same ``ls`` server reached as ``localhost`` counts as a different host. A guard around
``socket.create_connection`` records every connection and refuses any off-loopback one, so tests
can assert that refused URLs were refused without touching the network.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import struct
import threading
import time
import traceback
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, quote_from_bytes, urlsplit

import httpx
import pytest

from act_backend.media import LabelStudioAuth, Media, MediaError, MediaFetcher

LEGACY = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, object], signature: bytes = b"signature-not-checked") -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    return f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(signature)}"


PAT = make_jwt({"token_type": "refresh", "user_id": 1, "jti": "pat-jti"}, b"PAT-SIGNATURE-SECRET")


def make_png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A minimal valid RGB PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def pillow_image(fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (10, 120, 240)).save(buffer, format=fmt)
    return buffer.getvalue()


PNG = make_png()
JPEG = pillow_image("JPEG")
HTML = b"<!DOCTYPE html><html><head><title>Login</title></head><body>Sign in</body></html>"
UNKNOWN = b"\x00\x01\x02\x03 not a known magic number" * 4


# --------------------------------------------------------------------------- fake servers


@dataclass
class Seen:
    method: str
    host: str
    path: str
    authorization: str | None
    status: int = 0


@dataclass
class FakeLabelStudio:
    """Routes shared by both servers; state reset before every test."""

    files: dict[str, tuple[bytes, str | None]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    access: dict[str, int | None] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)
    refreshes: int = 0
    one_use_access: bool = True
    access_lifetime: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.access.clear()
            self.refreshes = 0
            self.one_use_access = True
            self.access_lifetime = None

    def authorized(self, header: str | None) -> bool:
        if header == f"Token {LEGACY}":
            return True
        if header is None or not header.startswith("Bearer "):
            return False
        token = header[len("Bearer ") :]
        with self.lock:
            if token not in self.access:
                return False
            uses = self.access[token]
            if uses is not None:
                if uses <= 1:
                    del self.access[token]
                else:
                    self.access[token] = uses - 1
        return True

    def issue(self) -> str:
        claims: dict[str, object] = {"token_type": "access", "jti": uuid.uuid4().hex}
        if self.access_lifetime is not None:
            claims["exp"] = int(time.time() + self.access_lifetime)
        token = make_jwt(claims, b"ACCESS-SIGNATURE")
        with self.lock:
            self.access[token] = 1 if self.one_use_access else None
            self.issued.append(token)
            self.refreshes += 1
        return token

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        path, query = parts.path, parse_qs(parts.query)
        seen = Seen(method, h.headers.get("Host", ""), h.path, h.headers.get("Authorization"))
        with self.lock:
            self.requests.append(seen)
        port = h.server.server_address[1]

        def send(
            status: int,
            body: bytes = b"",
            ctype: str | None = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            seen.status = status
            h.send_response(status)
            if ctype:
                h.send_header("Content-Type", ctype)
            for key, value in (headers or {}).items():
                h.send_header(key, value)
            if "Content-Length" not in (headers or {}):
                h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        unauthorized = b'{"detail": "Authentication credentials were not provided."}'
        if method == "POST" and path == "/api/token/refresh/":
            length = int(h.headers.get("Content-Length", "0"))
            body = json.loads(h.rfile.read(length) or b"{}")
            if body.get("refresh") != PAT:
                send(401, b'{"detail": "Token is invalid or expired", "code": "token_not_valid"}')
            else:
                send(200, json.dumps({"access": self.issue()}).encode())
        elif path.startswith(("/data/", "/storage-data/", "/tasks/")):
            if path.rstrip("/") in (
                "/data/upload/1/x.png",
                "/data/local-files",
                "/tasks/7/resolve",
                "/storage-data/uploaded",
            ):
                if self.authorized(seen.authorization):
                    send(200, PNG, "image/png")
                else:
                    send(401, unauthorized)
            else:
                send(404, b'{"detail": "Not found."}')
        elif path.startswith("/public/") and path[len("/public/") :] in self.files:
            data, ctype = self.files[path[len("/public/") :]]
            send(200, data, ctype)
        elif path == "/echo.png":
            send(200, PNG, "image/png")
        elif path == "/redirect":
            target = query["to"][0].replace("{port}", str(port))
            send(int(query.get("status", ["302"])[0]), b"", None, {"Location": target})
        elif path.startswith("/hops/"):
            n = int(path.rsplit("/", 1)[1])
            if n == 0:
                send(200, PNG, "image/png")
            else:
                send(302, b"", None, {"Location": f"/hops/{n - 1}"})
        elif path.startswith("/status/"):
            send(int(path.rsplit("/", 1)[1]), b'{"detail": "error page"}')
        elif path == "/empty":
            send(200, b"", "image/png")
        elif path == "/chunked-big":
            # 256 KB in chunks, no Content-Length, then the connection is held open: a client
            # that does not stop at max_bytes would wait here until it times out.
            seen.status = 200
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            block = PNG + b"\x00" * (16 * 1024 - len(PNG))
            for _ in range(16):
                h.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            h.wfile.flush()
            time.sleep(3)
            h.wfile.write(b"0\r\n\r\n")
        elif path == "/declared-big":
            # Announces a huge body, sends a few bytes and stalls.
            seen.status = 200
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", query.get("length", ["30000000"])[0])
            h.end_headers()
            h.wfile.write(PNG[:16])
            h.wfile.flush()
            time.sleep(3)
        elif path == "/slow":
            time.sleep(1.5)
            send(200, PNG, "image/png")
        elif path == "/drip":
            # Each byte arrives well within a read timeout; only a total deadline stops it.
            seen.status = 200
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", str(len(PNG)))
            h.end_headers()
            for byte in PNG:
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
                time.sleep(0.05)
        else:
            send(404, b'{"detail": "Not found."}')


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as a real server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _dispatch(self, method: str) -> None:
        try:
            self.server.app.handle(self, method)  # type: ignore[attr-defined]
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")


@dataclass
class Server:
    app: FakeLabelStudio
    port: int

    def url(self, path: str = "", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def base(self) -> str:
        return self.url()

    def seen(self, path_prefix: str = "") -> list[Seen]:
        with self.app.lock:
            return [r for r in self.app.requests if r.path.startswith(path_prefix)]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops bursts of connections

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients aborting on purpose (size limit, timeout) reset connections: not an error."""


def _start(app: FakeLabelStudio) -> tuple[ThreadingHTTPServer, Server]:
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    httpd.app = app  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, Server(app, httpd.server_address[1])


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    files: dict[str, tuple[bytes, str | None]] = {
        "cat.png": (PNG, "image/png"),
        "photo.jpg": (JPEG, "image/jpeg"),
        "page.html": (HTML, "text/html; charset=utf-8"),
        "disguised.png": (HTML, "image/png"),
        "custom.img": (UNKNOWN, "image/x-portable-pixmap"),
        "untyped.bin": (UNKNOWN, None),
    }
    for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"):
        files[f"octet.{fmt.lower()}"] = (pillow_image(fmt), "application/octet-stream")
    started = [_start(FakeLabelStudio(files=dict(files))) for _ in range(2)]
    yield started[0][1], started[1][1]
    for httpd, _ in started:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def ls(servers: tuple[Server, Server]) -> Server:
    servers[0].app.reset()
    return servers[0]


@pytest.fixture
def cdn(servers: tuple[Server, Server]) -> Server:
    servers[1].app.reset()
    return servers[1]


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Hosts of every TCP connection opened; off-loopback connections are refused."""
    hosts: list[str] = []
    real = socket.create_connection

    def guarded(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        hosts.append(address[0])
        if address[0] not in ("127.0.0.1", "localhost", "::1"):
            raise ConnectionRefusedError(f"test guard: no connection to {address[0]}")
        return real(address, *args, **kwargs)  # type: ignore[arg-type]

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(socket, "create_connection", guarded)
    return hosts


@pytest.fixture
def make_fetcher() -> Iterator[Callable[..., MediaFetcher]]:
    made: list[MediaFetcher] = []

    def make(**kwargs: object) -> MediaFetcher:
        kwargs.setdefault("label_studio_url", None)
        kwargs.setdefault("label_studio_token", None)
        kwargs.setdefault("timeout", 2.0)
        fetcher = MediaFetcher(**kwargs)  # type: ignore[arg-type]
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# --------------------------------------------------------------------------- rule 1: data: URLs


def test_data_url_base64_round_trip(make_fetcher: Callable[..., MediaFetcher]) -> None:
    from PIL import Image

    media = make_fetcher().fetch(data_url(PNG))
    assert media == Media(mime="image/png", data=PNG)
    assert media.data_url() == data_url(PNG)
    assert Image.open(io.BytesIO(media.data)).size == (2, 2)  # the hand-made PNG is valid
    assert "size=" in repr(media) and "\\x89" not in repr(media)


@pytest.mark.parametrize(
    "value",
    [
        "data:image/png," + quote_from_bytes(PNG),  # percent-encoded, no base64
        "DATA:image/png;BASE64," + base64.b64encode(PNG).decode(),  # case-insensitive
        "data:image/png;base64," + base64.b64encode(PNG).decode().rstrip("="),  # no padding
        "data:image/png;base64," + "\n".join(base64.b64encode(PNG).decode()),  # whitespace
        "data:image/png;base64," + base64.urlsafe_b64encode(PNG).decode(),  # url-safe alphabet
        "data:image/png;base64," + quote(base64.b64encode(PNG).decode(), safe=""),  # %2B, %3D
        "  data:image/png;name=x.png;base64," + base64.b64encode(PNG).decode() + "  ",
    ],
)
def test_data_url_encodings(make_fetcher: Callable[..., MediaFetcher], value: str) -> None:
    assert make_fetcher().fetch(value) == Media("image/png", PNG)


def test_data_url_mime_comes_from_content(make_fetcher: Callable[..., MediaFetcher]) -> None:
    assert make_fetcher().fetch(data_url(PNG, "image/jpg")).mime == "image/png"
    assert make_fetcher().fetch(data_url(JPEG, "image/png")).mime == "image/jpeg"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("data:image/png;base64", "no ','"),
        ("data:image/png;base64,iVBO*w0KGgo=", "base64 data is invalid"),
        ("data:image/png;base64,iVBORw0KG", "base64 data is invalid"),
        ("data:imagepng;base64,AAAA", "is not type/subtype"),
        ("data:image/png;base64,", "data: URL is empty"),
        ("data:text/plain,hello", "data: URL is text/plain, not an image"),
        ("data:,hello", "is text/plain, not an image"),
        (data_url(HTML, "image/png"), "is text/html, not an image"),
    ],
)
def test_data_url_malformed_or_refused(
    make_fetcher: Callable[..., MediaFetcher], value: str, expected: str
) -> None:
    with pytest.raises(MediaError, match=expected.replace("(", r"\(")):
        make_fetcher().fetch(value)


def test_data_url_size_limit(make_fetcher: Callable[..., MediaFetcher]) -> None:
    big = make_png(40, 40, (1, 2, 3)) + b"\x00" * 2000
    small = make_fetcher(max_bytes=1024)
    with pytest.raises(MediaError, match="data: URL is larger than the 1 KB limit"):
        small.fetch(data_url(big))
    with pytest.raises(MediaError, match="larger than the 1 KB limit"):
        small.fetch("data:image/png," + quote_from_bytes(big))
    assert make_fetcher(max_bytes=len(big)).fetch(data_url(big)).data == big


# --------------------------------------------------------------------------- rule 2: relative paths


def test_relative_upload_with_configured_legacy_token(
    ls: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base + "/", label_studio_token=LEGACY)
    assert fetcher.fetch("/data/upload/1/x.png") == Media("image/png", PNG)
    assert [r.authorization for r in ls.seen("/data/")] == [f"Token {LEGACY}"]


@pytest.mark.parametrize(
    "path",
    [
        "/data/local-files/?d=images/x.png",
        "/storage-data/uploaded/?filepath=upload/1/x.png",
        "/tasks/7/resolve/?fileuri=czM6Ly9idWNrZXQveC5wbmc=",
    ],
)
def test_other_label_studio_paths_are_joined(
    ls: Server, make_fetcher: Callable[..., MediaFetcher], path: str
) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=LEGACY)
    assert fetcher.fetch(path).mime == "image/png"
    assert [r.path for r in ls.seen()] == [path]


def test_label_studio_url_with_path_prefix(
    ls: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(label_studio_url=ls.url("/prefix/"), label_studio_token=LEGACY)
    with pytest.raises(MediaError, match=r"/prefix/data/upload/1/x\.png was not found \(404\)"):
        fetcher.fetch("/data/upload/1/x.png")


def test_per_request_url_and_token_used_when_none_configured(
    ls: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher()
    media = fetcher.fetch(
        "/data/upload/1/x.png", label_studio_url=ls.base, label_studio_token=LEGACY
    )
    assert media.data == PNG
    assert ls.seen("/data/")[0].authorization == f"Token {LEGACY}"


def test_configured_url_beats_per_request_and_warns_once(
    ls: Server,
    cdn: Server,
    make_fetcher: Callable[..., MediaFetcher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=LEGACY)
    with caplog.at_level(logging.WARNING, logger="act_backend.media"):
        for _ in range(2):
            assert fetcher.fetch("/data/upload/1/x.png", label_studio_url=cdn.base).data == PNG
        # The per-request host is not trusted for absolute URLs either.
        with pytest.raises(MediaError, match="refusing to fetch"):
            fetcher.fetch(cdn.url("/echo.png"), label_studio_url=cdn.base)
    assert len(ls.seen("/data/")) == 2
    assert cdn.seen() == []
    warnings = [r for r in caplog.records if "ignoring the Label Studio URL" in r.getMessage()]
    assert len(warnings) == 1
    assert cdn.base in warnings[0].getMessage()


def test_same_per_request_url_does_not_warn(
    ls: Server, make_fetcher: Callable[..., MediaFetcher], caplog: pytest.LogCaptureFixture
) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=LEGACY)
    with caplog.at_level(logging.WARNING, logger="act_backend.media"):
        fetcher.fetch("/data/upload/1/x.png", label_studio_url=ls.base + "/")
    assert not caplog.records


def test_configured_token_beats_per_request(
    ls: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=LEGACY)
    fetcher.fetch("/data/upload/1/x.png", label_studio_token="0" * 40)
    assert ls.seen("/data/")[0].authorization == f"Token {LEGACY}"


def test_no_label_studio_url(
    make_fetcher: Callable[..., MediaFetcher], connections: list[str]
) -> None:
    with pytest.raises(MediaError) as info:
        make_fetcher(label_studio_token=LEGACY).fetch("/data/upload/2/bbcf3aa3-img1.png")
    assert str(info.value) == (
        "task media '/data/upload/2/bbcf3aa3-img1.png' is relative to Label Studio, but no Label "
        "Studio URL is known: set LABEL_STUDIO_URL or connect the backend from Label Studio"
    )
    assert connections == []


def test_missing_token_is_reported_as_401(
    ls: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    with pytest.raises(MediaError) as info:
        make_fetcher(label_studio_url=ls.base).fetch("/data/upload/1/x.png")
    message = str(info.value)
    assert message.startswith("Label Studio refused the download of ")
    assert "(401): set LABEL_STUDIO_API_KEY" in message
    assert ls.seen("/data/")[0].authorization is None


def test_wrong_legacy_token_is_reported(
    ls: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    wrong = "0123456789" * 4
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=wrong)
    with pytest.raises(MediaError, match=r"\(401\): the legacy token was rejected") as info:
        fetcher.fetch("/data/upload/1/x.png")
    assert wrong not in str(info.value)
    assert len(ls.seen("/data/")) == 1  # a legacy token is not retried


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/etc/passwd", "not a Label Studio media path"),
        ("//169.254.169.254/latest/meta-data/", "scheme-relative"),
        ("/data/upload/../../api/projects", "'..' path segment"),
        ("/data/upload/%2e%2e/%2E%2E/api/projects", "'..' path segment"),
        ("images/cat.png", "neither a URL nor a Label Studio path"),
    ],
)
def test_non_label_studio_paths_refused(
    ls: Server,
    make_fetcher: Callable[..., MediaFetcher],
    connections: list[str],
    value: str,
    expected: str,
) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=LEGACY)
    with pytest.raises(MediaError, match=expected):
        fetcher.fetch(value)
    assert connections == []


# --------------------------------------------------------------------------- personal access tokens


def test_auth_kinds_and_repr() -> None:
    legacy, pat = LabelStudioAuth(LEGACY), LabelStudioAuth(f"  Bearer {PAT} ")
    assert (legacy.kind, pat.kind) == ("legacy", "pat")
    assert LabelStudioAuth(f"Token {LEGACY}").kind == "legacy"
    assert LabelStudioAuth("custom-user-token").kind == "legacy"
    for auth in (legacy, pat):
        for text in (repr(auth), str(auth), f"{auth}"):
            assert LEGACY not in text and PAT not in text and "SIGNATURE" not in text
    with pytest.raises(ValueError, match="empty"):
        LabelStudioAuth("  ")


def test_pat_is_exchanged_and_refreshed_after_401(
    ls: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=PAT)
    assert fetcher.fetch("/data/upload/1/x.png").data == PNG
    assert fetcher.fetch("/data/upload/1/x.png").data == PNG  # cached token used up: 401, retry
    uploads = ls.seen("/data/")
    assert [r.status for r in uploads] == [200, 401, 200]
    assert all(r.authorization and r.authorization.startswith("Bearer ") for r in uploads)
    assert uploads[0].authorization == uploads[1].authorization != uploads[2].authorization
    assert ls.app.refreshes == 2
    assert [r.path for r in ls.seen("/api/")] == ["/api/token/refresh/"] * 2


def test_pat_cached_while_valid(ls: Server, make_fetcher: Callable[..., MediaFetcher]) -> None:
    ls.app.one_use_access = False
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=PAT)
    for _ in range(3):
        fetcher.fetch("/data/upload/1/x.png")
    assert ls.app.refreshes == 1


def test_pat_expired_claim_is_refreshed_before_use(
    ls: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    ls.app.one_use_access = False
    ls.app.access_lifetime = -60  # already expired according to its exp claim
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=PAT)
    fetcher.fetch("/data/upload/1/x.png")
    fetcher.fetch("/data/upload/1/x.png")
    assert ls.app.refreshes == 2
    assert [r.status for r in ls.seen("/data/")] == [200, 200]  # no 401 round trip


def test_pat_per_request_token(ls: Server, make_fetcher: Callable[..., MediaFetcher]) -> None:
    fetcher = make_fetcher()
    fetcher.fetch("/data/upload/1/x.png", label_studio_url=ls.base, label_studio_token=PAT)
    assert ls.app.refreshes == 1


def test_pat_rejected(ls: Server, make_fetcher: Callable[..., MediaFetcher]) -> None:
    bad = make_jwt({"token_type": "refresh", "jti": "revoked"}, b"REVOKED-SIGNATURE")
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=bad)
    with pytest.raises(
        MediaError, match=r"rejected the personal access token \(HTTP 401\)"
    ) as info:
        fetcher.fetch("/data/upload/1/x.png")
    assert bad not in str(info.value)
    assert ls.seen("/data/") == []


# --------------------------------------------------------------------------- rule 3: hosts, schemes


def test_allowed_host_gets_no_label_studio_token(
    ls: Server, cdn: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(
        label_studio_url=ls.base, label_studio_token=LEGACY, allowed_hosts=[f"127.0.0.1:{cdn.port}"]
    )
    assert fetcher.fetch(cdn.url("/public/photo.jpg")) == Media("image/jpeg", JPEG)
    assert [r.authorization for r in cdn.seen()] == [None]


def test_absolute_label_studio_url_gets_token(
    ls: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=LEGACY)
    assert fetcher.fetch(ls.url("/data/upload/1/x.png")).data == PNG
    assert ls.seen("/data/")[0].authorization == f"Token {LEGACY}"


def test_allowed_host_port_must_match_when_named(
    cdn: Server, make_fetcher: Callable[..., MediaFetcher], connections: list[str]
) -> None:
    wrong_port = make_fetcher(allowed_hosts=[f"127.0.0.1:{cdn.port + 1}"])
    with pytest.raises(MediaError, match=f"host 127.0.0.1:{cdn.port} is not the Label Studio"):
        wrong_port.fetch(cdn.url("/public/cat.png"))
    assert connections == []
    any_port = make_fetcher(allowed_hosts=["127.0.0.1"])
    assert any_port.fetch(cdn.url("/public/cat.png")).data == PNG


def test_localhost_is_not_the_same_host_as_127_0_0_1(
    ls: Server, make_fetcher: Callable[..., MediaFetcher], connections: list[str]
) -> None:
    url = ls.url("/data/upload/1/x.png", host="localhost")
    strict = make_fetcher(label_studio_url=ls.base, label_studio_token=LEGACY)
    with pytest.raises(MediaError, match=f"host localhost:{ls.port} is not the Label Studio host"):
        strict.fetch(url)
    assert connections == []
    # Allowed as a plain host: fetched, but without the Label Studio token.
    allowed = make_fetcher(
        label_studio_url=ls.base, label_studio_token=LEGACY, allowed_hosts=["LOCALHOST"]
    )
    with pytest.raises(MediaError, match=r"refused the download \(401\)"):
        allowed.fetch(url)
    assert ls.seen("/data/")[0].authorization is None


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal"),
        ("https://10.0.0.7:8443/admin", "10.0.0.7:8443"),
        ("http://[::1]:6379/", "[::1]:6379"),
        ("http://evil.example.com\\@127.0.0.1/x", "127.0.0.1"),
    ],
)
def test_unlisted_hosts_refused_without_network(
    make_fetcher: Callable[..., MediaFetcher], connections: list[str], url: str, host: str
) -> None:
    fetcher = make_fetcher(allowed_hosts=["images.example.com"], label_studio_token=LEGACY)
    with pytest.raises(MediaError) as info:
        fetcher.fetch(url)
    assert f": host {host} is not the Label Studio host nor in ACT_ALLOWED_MEDIA_HOSTS" in str(
        info.value
    )
    assert str(info.value).startswith("refusing to fetch http")
    assert connections == []


def test_refusal_message_redacts_credentials_and_query(
    make_fetcher: Callable[..., MediaFetcher], connections: list[str]
) -> None:
    url = "http://admin:hunter2@169.254.169.254/latest/meta-data/?token=s3cr3t&X-Sig=abc123#frag"
    with pytest.raises(MediaError) as info:
        make_fetcher().fetch(url)
    message = str(info.value)
    assert message.startswith(
        "refusing to fetch http://169.254.169.254/latest/meta-data/?token=…&X-Sig=…: host "
    )
    for secret in ("admin", "hunter2", "s3cr3t", "abc123", "frag"):
        assert secret not in message
    assert connections == []


@pytest.mark.parametrize(
    ("value", "scheme"),
    [
        ("file:///etc/passwd", "file:"),
        ("ftp://ftp.example.com/x.png", "ftp:"),
        ("gopher://127.0.0.1:6379/_INFO", "gopher:"),
        ("s3://bucket/images/x.png", "s3:"),
        ("gs://bucket/x.png", "gs:"),
        ("javascript:alert(1)", "javascript:"),
    ],
)
def test_other_schemes_refused_without_network(
    make_fetcher: Callable[..., MediaFetcher], connections: list[str], value: str, scheme: str
) -> None:
    with pytest.raises(MediaError, match=f"unsupported scheme '{scheme}'"):
        make_fetcher(allowed_hosts=["127.0.0.1", "bucket"]).fetch(value)
    assert connections == []


def test_wildcard_allowed_hosts(make_fetcher: Callable[..., MediaFetcher]) -> None:
    fetcher = make_fetcher(allowed_hosts=["*.example.org", "cdn.example.com:8443"])
    asked: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"})

    fetcher._client.close()
    fetcher._client = httpx.Client(transport=httpx.MockTransport(respond))
    for ok in (
        "http://img.example.org/a.png",
        "https://a.b.EXAMPLE.org./a.png",
        "https://cdn.example.com:8443/a.png",
    ):
        assert fetcher.fetch(ok).data == PNG
    for refused in (
        "http://example.org/a.png",
        "http://evilexample.org/a.png",
        "http://example.org.evil.com/a.png",
        "https://cdn.example.com/a.png",
        "https://cdn.example.com:9443/a.png",
    ):
        with pytest.raises(MediaError, match="refusing to fetch"):
            fetcher.fetch(refused)
    assert len(asked) == 3


@pytest.mark.parametrize("entry", ["*", "*.", "host/path", "user@host", ".example.org"])
def test_bad_allowed_host_entries(entry: str) -> None:
    with pytest.raises(ValueError, match="bad allowed media host"):
        MediaFetcher(label_studio_url=None, label_studio_token=None, allowed_hosts=[entry])


def test_bad_label_studio_url() -> None:
    with pytest.raises(ValueError, match="must not hold credentials") as info:
        MediaFetcher(label_studio_url="http://admin:pw@ls:8080", label_studio_token=None)
    assert "pw" not in str(info.value)
    with pytest.raises(ValueError, match="http\\(s\\) URL with a host"):
        MediaFetcher(label_studio_url="localhost:8080", label_studio_token=None)


# --------------------------------------------------------------------------- rule 4: redirects


def test_same_origin_redirect_keeps_token(
    ls: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=LEGACY)
    assert fetcher.fetch(ls.url("/redirect?to=/data/upload/1/x.png")).data == PNG
    assert [r.authorization for r in ls.seen()] == [f"Token {LEGACY}"] * 2


def test_redirect_to_unlisted_host_refused(
    ls: Server, make_fetcher: Callable[..., MediaFetcher], connections: list[str]
) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=LEGACY)
    start = ls.url("/redirect?to=http://localhost:{port}/echo.png")
    with pytest.raises(MediaError) as info:
        fetcher.fetch(start)
    assert str(info.value) == (
        f"refusing to follow the redirect from {ls.url('/redirect?to=…')} to "
        f"http://localhost:{ls.port}/echo.png: host localhost:{ls.port} is not the Label Studio "
        "host nor in ACT_ALLOWED_MEDIA_HOSTS"
    )
    assert len(ls.seen()) == 1
    assert connections == ["127.0.0.1"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_allowed_host_drops_authorization(
    ls: Server, make_fetcher: Callable[..., MediaFetcher], status: int
) -> None:
    fetcher = make_fetcher(
        label_studio_url=ls.base, label_studio_token=LEGACY, allowed_hosts=["localhost"]
    )
    start = ls.url(f"/redirect?status={status}&to=http://localhost:{{port}}/echo.png")
    assert fetcher.fetch(start).data == PNG
    first, second = ls.seen()
    assert (first.host, first.authorization) == (f"127.0.0.1:{ls.port}", f"Token {LEGACY}")
    assert (second.host, second.authorization) == (f"localhost:{ls.port}", None)


def test_token_not_resent_after_leaving_label_studio(
    ls: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(
        label_studio_url=ls.base, label_studio_token=LEGACY, allowed_hosts=["localhost"]
    )
    back = quote(ls.url("/data/upload/1/x.png"), safe="")
    bounce = quote(f"http://localhost:{ls.port}/redirect?to={back}", safe="")
    with pytest.raises(MediaError, match="not sent after a redirect through another host"):
        fetcher.fetch(ls.url(f"/redirect?to={bounce}"))
    assert [r.authorization for r in ls.seen()] == [f"Token {LEGACY}", None, None]


def test_at_most_three_redirects(ls: Server, make_fetcher: Callable[..., MediaFetcher]) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base)
    assert fetcher.fetch(ls.url("/hops/3")).data == PNG
    ls.app.reset()
    with pytest.raises(MediaError, match=r"too many redirects fetching .*/hops/1 \(more than 3\)"):
        fetcher.fetch(ls.url("/hops/4"))
    assert len(ls.seen()) == 4


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("http://169.254.169.254/latest/meta-data/", "host 169.254.169.254 is not the Label"),
        ("file:///etc/passwd", "unsupported scheme 'file:'"),
    ],
)
def test_redirect_to_forbidden_target_refused(
    ls: Server,
    make_fetcher: Callable[..., MediaFetcher],
    connections: list[str],
    target: str,
    expected: str,
) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=LEGACY)
    with pytest.raises(MediaError, match=expected):
        fetcher.fetch(ls.url(f"/redirect?to={quote(target, safe='')}"))
    assert set(connections) == {"127.0.0.1"}


# --------------------------------------------------------------------------- rule 5: size


def test_oversized_chunked_body_is_aborted(
    cdn: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(allowed_hosts=["127.0.0.1"], max_bytes=64 * 1024, timeout=2.5)
    started = time.monotonic()
    with pytest.raises(MediaError, match=r"/chunked-big is larger than the 64 KB limit"):
        fetcher.fetch(cdn.url("/chunked-big"))
    assert time.monotonic() - started < 1.5  # did not wait for the stalled end of the body


def test_declared_oversize_is_refused_before_reading(
    cdn: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(allowed_hosts=["127.0.0.1"], timeout=2.5)  # default 20 MB limit
    started = time.monotonic()
    with pytest.raises(MediaError, match=r"is larger than the 20 MB limit"):
        fetcher.fetch(cdn.url("/declared-big?length=30000000"))
    assert time.monotonic() - started < 1.5


def test_body_of_exactly_max_bytes_is_accepted(
    cdn: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(allowed_hosts=["127.0.0.1"], max_bytes=len(JPEG))
    assert fetcher.fetch(cdn.url("/public/photo.jpg")).data == JPEG
    smaller = make_fetcher(allowed_hosts=["127.0.0.1"], max_bytes=len(JPEG) - 1)
    with pytest.raises(MediaError, match=f"larger than the {len(JPEG) - 1} bytes limit"):
        smaller.fetch(cdn.url("/public/photo.jpg"))


# --------------------------------------------------------------------------- rule 6: type


@pytest.mark.parametrize("fmt", ["png", "jpeg", "gif", "webp", "bmp", "tiff"])
def test_mime_is_read_from_content(
    cdn: Server, make_fetcher: Callable[..., MediaFetcher], fmt: str
) -> None:
    media = make_fetcher(allowed_hosts=["127.0.0.1"]).fetch(cdn.url(f"/public/octet.{fmt}"))
    assert media.mime == f"image/{fmt}"
    assert media.data == cdn.app.files[f"octet.{fmt}"][0]
    assert media.data_url().startswith(f"data:image/{fmt};base64,")


@pytest.mark.parametrize("name", ["page.html", "disguised.png"])
def test_html_is_refused(cdn: Server, make_fetcher: Callable[..., MediaFetcher], name: str) -> None:
    with pytest.raises(MediaError, match=f"/public/{name} is text/html, not an image"):
        make_fetcher(allowed_hosts=["127.0.0.1"]).fetch(cdn.url(f"/public/{name}"))


def test_content_type_is_the_fallback(
    cdn: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(allowed_hosts=["127.0.0.1"])
    assert fetcher.fetch(cdn.url("/public/custom.img")).mime == "image/x-portable-pixmap"
    with pytest.raises(MediaError, match="is application/octet-stream, not an image"):
        fetcher.fetch(cdn.url("/public/untyped.bin"))


def test_allowed_mime_prefixes(cdn: Server, make_fetcher: Callable[..., MediaFetcher]) -> None:
    fetcher = make_fetcher(allowed_hosts=["127.0.0.1"], allowed_mime_prefixes=("image/png",))
    assert fetcher.fetch(cdn.url("/public/cat.png")).mime == "image/png"
    with pytest.raises(MediaError, match="is image/jpeg, not one of image/png"):
        fetcher.fetch(cdn.url("/public/photo.jpg"))


# --------------------------------------------------------------------------- rule 7: errors


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/status/404", "/status/404?sig=… was not found (404)"),
        ("/status/403", "/status/403?sig=… refused the download (403)"),
        ("/status/401", "/status/401?sig=… refused the download (401)"),
        (
            "/status/500",
            "downloading http://127.0.0.1:{port}/status/500?sig=… failed with HTTP 500",
        ),
        ("/status/503", "/status/503?sig=… failed with HTTP 503"),
        ("/empty", "/empty?sig=… is empty"),
    ],
)
def test_http_errors(
    cdn: Server, make_fetcher: Callable[..., MediaFetcher], path: str, expected: str
) -> None:
    with pytest.raises(MediaError) as info:
        make_fetcher(allowed_hosts=["127.0.0.1"]).fetch(cdn.url(f"{path}?sig=SECRETSIG"))
    assert expected.replace("{port}", str(cdn.port)) in str(info.value)
    assert "SECRETSIG" not in str(info.value)


def test_label_studio_403_and_404(ls: Server, make_fetcher: Callable[..., MediaFetcher]) -> None:
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=LEGACY)
    with pytest.raises(MediaError, match=r"Label Studio refused the download of .* \(403\)"):
        fetcher.fetch(ls.url("/status/403"))
    with pytest.raises(MediaError, match=r"/data/upload/9/gone\.png was not found \(404\)"):
        fetcher.fetch("/data/upload/9/gone.png")


def test_timeout(cdn: Server, make_fetcher: Callable[..., MediaFetcher]) -> None:
    fetcher = make_fetcher(allowed_hosts=["127.0.0.1"], timeout=0.3)
    started = time.monotonic()
    with pytest.raises(MediaError, match=r"timed out after 0.3 s downloading http://127\.0\.0\.1"):
        fetcher.fetch(cdn.url("/slow"))
    assert time.monotonic() - started < 1.0


def test_timeout_is_a_total_deadline(
    cdn: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(allowed_hosts=["127.0.0.1"], timeout=0.4)
    started = time.monotonic()
    with pytest.raises(MediaError, match=r"timed out after 0.4 s downloading .*/drip"):
        fetcher.fetch(cdn.url("/drip"))
    assert time.monotonic() - started < 1.0


def test_connection_refused(make_fetcher: Callable[..., MediaFetcher]) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        MediaError, match=f"could not download .*: ConnectError connecting to 127.0.0.1:{port}"
    ):
        make_fetcher(allowed_hosts=["127.0.0.1"]).fetch(f"http://127.0.0.1:{port}/x.png")


def test_non_string_value(make_fetcher: Callable[..., MediaFetcher]) -> None:
    with pytest.raises(MediaError, match="must be a URL string, got dict"):
        make_fetcher().fetch({"url": "x"})  # type: ignore[arg-type]
    with pytest.raises(MediaError, match="task media is empty"):
        make_fetcher().fetch("   ")


# ------------------------------------------------------------------ rule 8: threads, secrets


def test_one_fetcher_shared_by_many_threads(
    ls: Server, cdn: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    fetcher = make_fetcher(
        label_studio_url=ls.base, label_studio_token=LEGACY, allowed_hosts=[f"127.0.0.1:{cdn.port}"]
    )
    jobs = ["/data/upload/1/x.png", cdn.url("/public/photo.jpg"), data_url(PNG)] * 20
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(fetcher.fetch, jobs))
    assert [m.mime for m in results] == ["image/png", "image/jpeg", "image/png"] * 20
    assert len(ls.seen("/data/")) == 20 and len(cdn.seen()) == 20


def test_concurrent_pat_users_share_one_refresh(
    ls: Server, make_fetcher: Callable[..., MediaFetcher]
) -> None:
    ls.app.one_use_access = False
    fetcher = make_fetcher(label_studio_url=ls.base, label_studio_token=PAT)
    barrier = threading.Barrier(12)

    def fetch(_: int) -> Media:
        barrier.wait()
        return fetcher.fetch("/data/upload/1/x.png")

    with ThreadPoolExecutor(max_workers=12) as pool:
        assert all(m.data == PNG for m in pool.map(fetch, range(12)))
    assert ls.app.refreshes == 1


def test_secrets_never_appear_in_errors_reprs_or_logs(
    ls: Server,
    cdn: Server,
    make_fetcher: Callable[..., MediaFetcher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    revoked = make_jwt({"token_type": "refresh"}, b"REVOKED-PAT-SIGNATURE")
    legacy = make_fetcher(
        label_studio_url=ls.base, label_studio_token=LEGACY, allowed_hosts=["localhost"]
    )
    pat = make_fetcher(label_studio_url=ls.base, label_studio_token=PAT)
    per_request = make_fetcher(allowed_hosts=["127.0.0.1"], timeout=0.3)
    attempts: list[tuple[MediaFetcher, str, dict[str, str]]] = [
        (legacy, "/data/upload/1/x.png", {}),
        (legacy, "/data/upload/1/missing.png", {}),
        (legacy, ls.url("/redirect?to=http://localhost:{port}/echo.png"), {}),
        (legacy, "http://169.254.169.254/latest/", {"label_studio_url": cdn.base}),
        (legacy, "file:///etc/passwd", {}),
        (pat, "/data/upload/1/x.png", {}),
        (pat, "/data/upload/1/x.png", {}),
        (pat, ls.url("/status/500"), {}),
        (
            per_request,
            "/data/upload/1/x.png",
            {"label_studio_url": ls.base, "label_studio_token": revoked},
        ),
        (per_request, cdn.url("/slow"), {"label_studio_token": LEGACY}),
        (
            per_request,
            "/data/upload/1/x.png",
            {"label_studio_url": "not a url", "label_studio_token": LEGACY},
        ),
    ]
    texts: list[str] = [repr(f) for f in (legacy, pat, per_request)]
    with caplog.at_level(logging.DEBUG):
        for fetcher, value, kwargs in attempts:
            try:
                texts.append(repr(fetcher.fetch(value, **kwargs)))
            except MediaError as exc:
                texts.append(str(exc))
                texts.extend(traceback.format_exception(exc))
    texts.extend(record.getMessage() for record in caplog.records)
    texts.extend(caplog.text.splitlines())
    assert any("Label Studio refused" in t or "rejected" in t for t in texts)  # errors happened
    assert ls.app.issued  # access tokens were issued, so there is something to leak
    secrets = [LEGACY, PAT, revoked, *PAT.split(".")[1:], *ls.app.issued]
    leaked = [(s[:12], t) for s in secrets for t in texts if s in t]
    assert leaked == []
