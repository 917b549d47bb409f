"""The ASGI front of ``ls-act serve``: slow or hostile clients never tie up a request thread.

uvicorn reads every connection asynchronously; this front then, before any thread is used:

1. refuses a request without valid basic-auth credentials (when configured) from its headers,
   before reading its body (401);
2. refuses a body larger than ``max_body_bytes`` from its Content-Length, or once it grows past
   it (413);
3. reads the whole body within ``read_timeout`` seconds (408 otherwise);

and only then hands the request, body in memory, to the Flask app in a pool of ``threads``
(through a2wsgi). So stalled uploads cost a socket and a coroutine, not a thread, and
``/health`` keeps answering. At shutdown (SIGTERM), uvicorn finishes the requests in flight and
the lifespan hook calls ``on_shutdown`` (the service closes: acknowledged webhooks are stored).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from a2wsgi import WSGIMiddleware

from .access import CHALLENGE, UNAUTHORIZED_MESSAGE, basic_auth_ok

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    """The body grew past the limit while it was read."""


class GuardedFront:
    """ASGI app: checks credentials, size and read time, then serves ``wsgi_app`` in threads."""

    def __init__(
        self,
        wsgi_app: Any,
        *,
        max_body_bytes: int,
        read_timeout: float,
        threads: int,
        basic_auth: tuple[str, str] | None = None,
        on_shutdown: Callable[[], None] = lambda: None,
    ) -> None:
        self._wsgi = WSGIMiddleware(wsgi_app, workers=threads)
        self._max_body = max_body_bytes
        self._read_timeout = read_timeout
        self._basic_auth = basic_auth
        self._on_shutdown = on_shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        try:
            body = await asyncio.wait_for(self._read_body(receive), self._read_timeout)
        except asyncio.TimeoutError:
            await _answer(send, 408, f"the request body took over {self._read_timeout:g} s")
            return
        except BodyTooLarge:
            await _answer(send, 413, self._too_large())
            return
        await self._wsgi(scope, _replay(body, receive), send)

    def _refusal(self, headers: dict[str, str]) -> tuple[int, str, list[tuple[str, str]]] | None:
        """(status, message, extra headers) when the headers alone settle the request."""
        if self._basic_auth and not basic_auth_ok(headers.get("authorization"), *self._basic_auth):
            return 401, UNAUTHORIZED_MESSAGE, [("www-authenticate", CHALLENGE)]
        length = headers.get("content-length", "0")
        if not length.isdigit():
            return 400, "Content-Length must be a number of bytes", []
        if int(length) > self._max_body:
            return 413, self._too_large(), []
        return None

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _too_large(self) -> str:
        return f"the request body exceeds {self._max_body:,} bytes (ACT_MAX_BODY_BYTES)"

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Off the event loop: draining the webhook queue may take a moment.
                await asyncio.get_running_loop().run_in_executor(None, self._on_shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the buffered body at once, then waits for the client to leave."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(
    send: Send, status: int, message: str, headers: list[tuple[str, str]] | None = None
) -> None:
    """The backend's JSON error shape, ``{"error": ..., "status": ...}``; the connection closes."""
    body = json.dumps({"error": message, "status": status}).encode()
    raw = [(b"content-type", b"application/json"), (b"connection", b"close")]
    raw += [(k.encode(), v.encode()) for k, v in headers or []]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
