"""A small HTTP proxy on 127.0.0.1 in front of a real server that starts failing on demand."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import httpx

_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length", "content-encoding",
}  # fmt: skip

Mode = Literal["503", "close"]


class FaultyProxy:
    """Forwards requests to ``upstream``; after ``fail_after`` of them, fails every request.

    ``mode="503"`` answers 503 Service Unavailable; ``mode="close"`` drops the connection
    without an answer (the server "goes away"). ``fail_after=None`` never fails.
    ``lose_answer_to``: the first request whose "METHOD path" contains it reaches the server,
    but its answer is dropped (the client cannot know that it was done).
    """

    def __init__(
        self,
        upstream: str,
        *,
        fail_after: int | None = None,
        mode: Mode = "503",
        lose_answer_to: str | None = None,
    ):
        self.upstream = upstream.rstrip("/")
        self.fail_after = fail_after
        self.mode = mode
        self.lose_answer_to = lose_answer_to
        self.lost: list[str] = []  # the request whose answer was dropped
        self.requests: list[str] = []  # "METHOD path" of every request received
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=60, trust_env=False)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def _should_fail(self, line: str) -> bool:
        with self._lock:
            self.requests.append(line)
            return self.fail_after is not None and len(self.requests) > self.fail_after

    def _loses_answer(self, line: str) -> bool:
        with self._lock:
            if self.lost or not self.lose_answer_to or self.lose_answer_to not in line:
                return False
            self.lost.append(line)
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._should_fail(f"{self.command} {self.path}"):
                    if proxy.mode == "close":
                        self.close_connection = True
                        self.connection.close()
                        return
                    payload = b'{"detail": "injected failure"}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = proxy._http.request(
                    self.command, proxy.upstream + self.path, headers=headers, content=body
                )
                if proxy._loses_answer(f"{self.command} {self.path}"):
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

        return Handler
