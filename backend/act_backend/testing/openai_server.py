"""Local server speaking the OpenAI chat-completions wire protocol, for tests and benchmarks.

Use it with the real ``openai`` client::

    with OpenAIStubServer(lambda req: "Yes", latency=0.05) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")
        client.chat.completions.create(model="stub-annotator", messages=[...])
        assert server.call_count == 1

Endpoints: ``POST /v1/chat/completions`` (non-streaming), ``GET /v1/models`` and
``GET /v1/models/<id>``. Errors use OpenAI's ``{"error": {...}}`` body. It binds to loopback
only. ``dialect`` imitates how a real server takes or refuses structured output (llama-cpp-python,
vLLM's guided decoding, no ``response_format`` at all: ``server_dialects``). CLI:
``python -m act_backend.testing.openai_server --port 0 --latency 0.3 [--dialect NAME]`` prints
``READY http://127.0.0.1:<port>/v1`` and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import itertools
import json
import math
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .server_dialects import SERVER_DIALECTS, pre_grammar, requested_form

__all__ = [
    "ChatRequest",
    "OpenAIStubServer",
    "Reply",
    "Responder",
    "example_from_schema",
    "main",
]

VALID_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_IMAGE_PROMPT_TOKENS = 85


@dataclass
class ChatRequest:
    """A chat-completions request as received and parsed by the server."""

    body: dict
    model: str
    messages: list[dict]
    text: str
    """All text content of all messages (string contents and text parts), joined with "\\n"."""
    images: list[str]
    """``image_url.url`` of every image part, in order."""
    json_schema: dict | None
    """The schema the answer must follow, in whichever form the request gave it (``dialect``)."""
    response_format_type: str | None
    logprobs: bool
    top_logprobs: int | None
    max_tokens: int | None
    """``max_tokens`` or ``max_completion_tokens``."""
    headers: dict
    """Request headers, keys lower-cased."""
    dialect: str | None = None
    """How it asked for structured output: ``json_schema``, ``json_object_schema`` (a schema
    beside ``json_object``), ``structured_outputs``, ``guided_json``, ``json_object``, or None."""


@dataclass
class Reply:
    """What the server answers to one chat request."""

    content: str | None = None
    """None → the default (schema-driven) answer, or the sampled tokens of ``top_logprobs``."""
    top_logprobs: list[dict[str, float]] | None = None
    """Per generated token: ``{token: logprob}``; the first key is the sampled token."""
    include_logprobs: bool = True
    """False simulates an endpoint that ignores ``logprobs=True``."""
    status: int = 200
    """Non-200 → OpenAI-style error body (``content``, if given, is the error message)."""
    retry_after: float | None = None
    delay: float | None = None
    """Seconds to wait before answering; overrides the server latency."""
    malformed: bool = False
    """Answer 200 with a truncated (invalid) JSON body."""
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


Responder = Callable[[ChatRequest], "Reply | str"]


class _APIError(Exception):
    """An error to answer with an OpenAI-style error body."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        err_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        default_type, default_code, default_message = _error_defaults(status)
        self.status = status
        self.message = message or default_message
        self.type = err_type or default_type
        self.code = code if code is not None else default_code
        self.param = param
        self.retry_after = retry_after

    def payload(self) -> bytes:
        err = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return _dumps({"error": err})


def _error_defaults(status: int) -> tuple[str, str | None, str]:
    if status == 401:
        return "invalid_request_error", "invalid_api_key", "Incorrect API key provided"
    if status == 403:
        return "invalid_request_error", "unsupported_country_region_territory", "Forbidden"
    if status == 404:
        return "invalid_request_error", "unknown_url", "Not found"
    if status == 429:
        return "requests", "rate_limit_exceeded", "Rate limit reached for requests (stub)."
    if status >= 500:
        msg = "The server had an error while processing your request. (stub)"
        if status in (502, 503, 504):
            msg = "The engine is currently overloaded, please try again later. (stub)"
        return "server_error", None, msg
    return "invalid_request_error", None, f"Request failed with status {status}."


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- request parsing


def _parse_chat_request(body: Any, headers: dict[str, str]) -> ChatRequest:
    """Validate a chat-completions body the way the real API does; raise ``_APIError(400)``."""
    if not isinstance(body, dict):
        raise _APIError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _APIError(400, "you must provide a model parameter", param="model")
    if body.get("stream"):
        raise _APIError(
            400,
            "Streaming (stream=true) is not supported by the OpenAI stub server; "
            "send non-streaming requests.",
            param="stream",
            code="unsupported_value",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _APIError(
            400, f"{messages!r} is too short - 'messages'", param="messages", code="empty_array"
        )
    texts: list[str] = []
    images: list[str] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _APIError(400, f"Invalid type for '{where}': expected an object.", param=where)
        role = msg.get("role")
        if role not in VALID_ROLES:
            roles = ", ".join(f"'{r}'" for r in sorted(VALID_ROLES))
            raise _APIError(
                400,
                f"Invalid value: {role!r}. Supported values are: {roles}.",
                param=f"{where}.role",
                code="invalid_value",
            )
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            _parse_parts(content, where, role, texts, images)
        elif content is None and role in ("assistant", "function"):
            pass
        else:
            raise _APIError(
                400,
                f"Invalid type for '{where}.content': expected a string or an array of parts.",
                param=f"{where}.content",
                code="invalid_type",
            )

    rf = body.get("response_format")
    rf_type = rf.get("type") if isinstance(rf, dict) else None
    dialect, schema = requested_form(body)

    top = body.get("top_logprobs")
    if top is not None and (
        not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20
    ):
        raise _APIError(
            400,
            f"Invalid 'top_logprobs': expected an integer between 0 and 20, got {top!r}.",
            param="top_logprobs",
        )
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    return ChatRequest(
        body=body,
        model=model,
        messages=messages,
        text="\n".join(texts),
        images=images,
        json_schema=schema,
        response_format_type=rf_type if isinstance(rf_type, str) else None,
        logprobs=bool(body.get("logprobs")),
        top_logprobs=top,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        headers=headers,
        dialect=dialect,
    )


def _parse_parts(parts: list, where: str, role: str, texts: list[str], images: list[str]) -> None:
    for j, part in enumerate(parts):
        pwhere = f"{where}.content[{j}]"
        ptype = part.get("type") if isinstance(part, dict) else None
        if ptype == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif ptype == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str) or not url:
                raise _APIError(
                    400,
                    f"Missing required parameter: '{pwhere}.image_url.url'.",
                    param=f"{pwhere}.image_url.url",
                    code="missing_required_parameter",
                )
            images.append(url)
        elif ptype == "refusal" and role == "assistant" and isinstance(part.get("refusal"), str):
            pass
        elif ptype == "text":
            raise _APIError(
                400,
                f"Missing required parameter: '{pwhere}.text'.",
                param=f"{pwhere}.text",
                code="missing_required_parameter",
            )
        else:
            raise _APIError(
                400,
                f"Invalid value: {ptype!r}. Supported values are: 'text' and 'image_url'.",
                param=f"{pwhere}.type",
                code="invalid_value",
            )


# --------------------------------------------------------------------------- default answers


def _stable_index(seed: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % n


def example_from_schema(schema: dict, seed: str = "") -> Any:
    """Return a small JSON value valid against ``schema`` (the default responder's answer).

    ``enum`` members are chosen by a stable hash of ``seed`` (and the value's path), so the
    same seed always yields the same value while different seeds spread over the members.
    Supports ``$ref`` into ``$defs``/``definitions``, ``anyOf``/``oneOf`` (first option),
    ``allOf``, ``const``, type lists and numeric/length/item-count bounds.
    """
    return _SchemaExample(schema, seed).value(schema, "$", 0)


class _SchemaExample:
    def __init__(self, root: dict, seed: str) -> None:
        self.root = root
        self.seed = seed

    def resolve(self, schema: Any) -> dict:
        seen = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < 32:
            ref = schema["$ref"]
            target: Any = self.root
            if ref.startswith("#"):
                for token in ref[1:].split("/"):
                    if token:
                        token = token.replace("~1", "/").replace("~0", "~")
                        target = target.get(token, {}) if isinstance(target, dict) else {}
            else:
                target = {}
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **extra} if extra and isinstance(target, dict) else target
            seen += 1
        return schema if isinstance(schema, dict) else {}

    def value(self, schema: Any, path: str, depth: int) -> Any:
        s = self.resolve(schema)
        if "const" in s:
            return s["const"]
        if isinstance(s.get("enum"), list) and s["enum"]:
            return s["enum"][_stable_index(f"{self.seed}\x00{path}", len(s["enum"]))]
        for key in ("anyOf", "oneOf"):
            options = s.get(key)
            if isinstance(options, list) and options:
                non_null = [o for o in options if self.resolve(o).get("type") != "null"]
                return self.value((non_null or options)[0], path, depth + 1)
        if isinstance(s.get("allOf"), list) and s["allOf"]:
            merged: dict = {k: v for k, v in s.items() if k != "allOf"}
            for sub in s["allOf"]:
                for k, v in self.resolve(sub).items():
                    if k == "properties" and isinstance(v, dict):
                        merged["properties"] = {**merged.get("properties", {}), **v}
                    elif k == "required" and isinstance(v, list):
                        merged["required"] = [*merged.get("required", []), *v]
                    else:
                        merged.setdefault(k, v)
            return self.value(merged, path, depth + 1)

        typ = s.get("type")
        if isinstance(typ, list):
            typ = next((t for t in typ if t != "null"), typ[0] if typ else None)
        if typ is None:
            if "properties" in s or "required" in s:
                typ = "object"
            elif "items" in s or "prefixItems" in s:
                typ = "array"
        if typ == "object":
            return self.object(s, path, depth)
        if typ == "array":
            return self.array(s, path, depth)
        if typ == "number":
            return _bounded(s, 0.5, integer=False)
        if typ == "integer":
            return _bounded(s, 0, integer=True)
        if typ == "boolean":
            return False
        if typ == "null":
            return None
        return _string(s)

    def object(self, s: dict, path: str, depth: int) -> dict:
        props = s.get("properties") if isinstance(s.get("properties"), dict) else {}
        required = [r for r in s.get("required", []) if isinstance(r, str)]
        # Past a reasonable depth only required keys are generated (recursive schemas).
        keys = list(props) if depth < 12 else [k for k in props if k in required]
        keys += [r for r in required if r not in props]
        extra = s.get("additionalProperties")
        out: dict = {}
        for key in keys:
            sub = props.get(key, extra if isinstance(extra, dict) else {"type": "string"})
            out[key] = self.value(sub, f"{path}.{key}", depth + 1)
        return out

    def array(self, s: dict, path: str, depth: int) -> list:
        prefix = s.get("prefixItems") if isinstance(s.get("prefixItems"), list) else []
        min_items = s.get("minItems", 0) if isinstance(s.get("minItems"), int) else 0
        max_items = s.get("maxItems") if isinstance(s.get("maxItems"), int) else None
        count = max(min_items, len(prefix), 1 if depth < 12 else 0)
        if max_items is not None:
            count = min(count, max_items)
        items = s.get("items") if isinstance(s.get("items"), dict) else {}
        out: list = []
        for i in range(count):
            if i < len(prefix):
                out.append(self.value(prefix[i], f"{path}[{i}]", depth + 1))
                continue
            item = self.resolve(items)
            enum = item.get("enum")
            if s.get("uniqueItems") and isinstance(enum, list) and enum:
                start = _stable_index(f"{self.seed}\x00{path}[]", len(enum))
                out.append(enum[(start + i) % len(enum)])
            else:
                out.append(self.value(items, f"{path}[{i}]", depth + 1))
        return out


def _bounded(s: dict, default: float, *, integer: bool) -> float | int:
    lo, lo_excl = s.get("minimum"), False
    hi, hi_excl = s.get("maximum"), False
    if isinstance(s.get("exclusiveMinimum"), (int, float)) and not isinstance(
        s.get("exclusiveMinimum"), bool
    ):
        lo, lo_excl = s["exclusiveMinimum"], True
    if isinstance(s.get("exclusiveMaximum"), (int, float)) and not isinstance(
        s.get("exclusiveMaximum"), bool
    ):
        hi, hi_excl = s["exclusiveMaximum"], True

    def ok(v: float) -> bool:
        if lo is not None and (v <= lo if lo_excl else v < lo):
            return False
        return not (hi is not None and (v >= hi if hi_excl else v > hi))

    if ok(default):
        return default
    if integer:
        first = math.floor(lo) + 1 if lo is not None and lo_excl else None
        if lo is not None and not lo_excl:
            first = math.ceil(lo)
        last = math.ceil(hi) - 1 if hi is not None and hi_excl else None
        if hi is not None and not hi_excl:
            last = math.floor(hi)
        return first if first is not None else last if last is not None else 0
    if lo is not None and hi is not None:
        return (lo + hi) / 2
    if lo is not None:
        return lo + 1 if lo_excl else lo
    if hi is not None:
        return hi - 1 if hi_excl else hi
    return default


_FORMAT_EXAMPLES = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "email": "stub@example.com",
    "uri": "https://example.com/stub",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def _string(s: dict) -> str:
    text = _FORMAT_EXAMPLES.get(s.get("format", ""), "stub")
    min_len = s.get("minLength")
    max_len = s.get("maxLength")
    if isinstance(min_len, int) and len(text) < min_len:
        text = (text * (min_len // len(text) + 1))[:min_len]
    if isinstance(max_len, int) and len(text) > max_len:
        text = text[:max_len]
    return text


def _default_content(req: ChatRequest) -> str:
    if req.json_schema is not None:
        return json.dumps(example_from_schema(req.json_schema, req.text))
    if req.dialect is not None:
        return "{}"
    return "No"


def _collect_enums(schema: dict | None) -> tuple[tuple[str, ...], ...]:
    """All string ``enum`` lists in a schema (following ``$ref``), for plausible logprobs."""
    if not schema:
        return ()
    found: list[tuple[str, ...]] = []
    stack: list[Any] = [schema]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            enum = node.get("enum")
            if isinstance(enum, list) and all(isinstance(e, str) for e in enum) and enum:
                found.append(tuple(enum))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return tuple(found)


@lru_cache(maxsize=256)
def _token_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    alts = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True) if w)
    generic = r"\s*\w+|\s*[^\w\s]|\s+"
    return re.compile(f"(?:{alts})|{generic}" if alts else generic)


def _tokenize(content: str, enums: tuple[tuple[str, ...], ...] = ()) -> list[str]:
    words = tuple(w for group in enums for w in group)
    return _token_pattern(words).findall(content)


_YES_NO_LOGPROBS = (-0.1, -2.4, -4.0, -6.5, -7.5)
_ENUM_LOGPROBS = (-0.3, -1.7, -3.2, -4.5, -5.8)
_OTHER_LOGPROBS = (-0.02, -5.0, -6.0, -7.0, -8.0)


def _default_top_logprobs(
    content: str, enums: tuple[tuple[str, ...], ...], want: int
) -> list[dict[str, float]]:
    """Plausible ``{token: logprob}`` per token of ``content`` (sampled token first)."""
    positions: list[dict[str, float]] = []
    for tok in _tokenize(content, enums):
        stripped = tok.strip()
        lead = tok[: len(tok) - len(tok.lstrip())]
        group = next((g for g in enums if stripped in g and len(g) > 1), None)
        if stripped.lower() in ("yes", "no"):
            other = "yes" if stripped.lower() == "no" else "no"
            if stripped.isupper() and len(stripped) > 1:
                other = other.upper()
            elif stripped[0].isupper():
                other = other.capitalize()
            cands = [tok, lead + other, " " + stripped.lower(), stripped.upper(), " " + stripped]
            lps = _YES_NO_LOGPROBS
        elif group is not None:
            cands = [tok] + [lead + g for g in group if g != stripped]
            lps = _ENUM_LOGPROBS
        else:
            base = stripped or tok
            if base[:1].isalnum() or base[:1] == "_":
                cands = [tok, base.lower(), base.upper(), base.capitalize(), " " + base, base + "s"]
            else:
                cands = [tok, " " + base, base + "\n", "\n", " "]
            lps = _OTHER_LOGPROBS
        cands = list(dict.fromkeys(cands))
        k = 0
        while len(cands) < want:
            cands = list(dict.fromkeys([*cands, f"<alt{k}>"]))
            k += 1
        extra = [lps[-1] - i for i in range(1, len(cands) - len(lps) + 1)]
        positions.append(dict(zip(cands, [*lps[: len(cands)], *extra], strict=True)))
    return positions


def _logprob_entry(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def _logprobs_payload(positions: list[dict[str, float]], top_n: int) -> dict:
    content = []
    for pos in positions:
        if not pos:
            continue
        sampled = next(iter(pos))
        entry = _logprob_entry(sampled, float(pos[sampled]))
        ranked = sorted(pos.items(), key=lambda kv: kv[1], reverse=True)[:top_n]
        entry["top_logprobs"] = [_logprob_entry(t, float(lp)) for t, lp in ranked]
        content.append(entry)
    return {"content": content, "refusal": None}


_MALFORMED_BODY = (
    b'{"id":"chatcmpl-stub-malformed","object":"chat.completion","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"Ye'
)


# --------------------------------------------------------------------------- HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True
    stub: OpenAIStubServer

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's socket.getfqdn(), which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client disconnects etc.: stay quiet


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openai-stub/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.stub._track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.stub._track_connection(self.connection, add=False)

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ValueError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        self.server.stub._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + payload)


# --------------------------------------------------------------------------- the server


@dataclass
class _Fault:
    status: int
    retry_after: float | None
    malformed: bool


class OpenAIStubServer:
    """Threaded local OpenAI chat-completions server (see module docstring)."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency: float = 0.0,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] = ("stub-annotator", "stub-critic"),
        dialect: str = "openai",
        pre_grammar_logprobs: bool | None = None,
        refusal_status: int | None = None,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"refusing to bind to non-loopback host {host!r}")
        self.set_dialect(
            dialect, pre_grammar_logprobs=pre_grammar_logprobs, refusal_status=refusal_status
        )
        self._responder = responder
        self._latency = float(latency)
        self.api_key = api_key
        self.host = host
        self.port = port
        self.models = tuple(models)
        self.requests: list[ChatRequest] = []
        self.max_concurrency_seen = 0
        self._inflight = 0
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._ids = itertools.count(1)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> OpenAIStubServer:
        """Bind and serve in a daemon thread; returns self. No-op if already running."""
        if self._httpd is not None:
            return self
        cls = _HTTPServer6 if ":" in self.host else _HTTPServer
        httpd = cls((self.host, self.port), _Handler)
        httpd.stub = self
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"openai-stub-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and all open connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._connections)
            self._connections.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenAIStubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        if not self.port:
            raise RuntimeError("server not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, for ``openai.OpenAI(base_url=...)``."""
        return self.url + "/v1"

    # ---- control

    def set_responder(self, responder: Responder | None) -> None:
        """Replace the responder (None → default schema-driven answers)."""
        self._responder = responder

    def set_dialect(
        self,
        dialect: str,
        *,
        pre_grammar_logprobs: bool | None = None,
        refusal_status: int | None = None,
    ) -> None:
        """Imitate a server's structured output (``server_dialects.SERVER_DIALECTS``).

        ``pre_grammar_logprobs`` (default: the server's own way) ranks the tokens a grammar
        masked above the constrained ones; ``refusal_status`` replaces the refusal's status.
        """
        if dialect not in SERVER_DIALECTS:
            known = ", ".join(SERVER_DIALECTS)
            raise ValueError(f"unknown server dialect {dialect!r}; choose one of {known}")
        self.dialect = SERVER_DIALECTS[dialect]
        self.pre_grammar_logprobs = (
            self.dialect.pre_grammar_logprobs
            if pre_grammar_logprobs is None
            else pre_grammar_logprobs
        )
        self._refusal_status = refusal_status

    def set_latency(self, seconds: float) -> None:
        """Seconds to wait before each answer (unless a Reply sets ``delay``)."""
        self._latency = float(seconds)

    def fail_next(
        self,
        n: int,
        *,
        status: int = 429,
        retry_after: float | None = None,
        malformed: bool = False,
    ) -> None:
        """Answer the next ``n`` chat requests with this fault (queued after earlier faults)."""
        with self._lock:
            self._faults.extend(_Fault(status, retry_after, malformed) for _ in range(n))

    def reset(self) -> None:
        """Clear recorded requests, pending faults and ``max_concurrency_seen``."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.max_concurrency_seen = self._inflight

    @property
    def call_count(self) -> int:
        """Number of chat requests recorded."""
        return len(self.requests)

    # ---- request handling

    def _track_connection(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _handle(self, h: _Handler) -> None:
        try:
            body = h.read_body()
        except (OSError, ValueError):
            h.close_connection = True
            return
        path = h.path.split("?", 1)[0].rstrip("/")
        try:
            if self.api_key is not None and path.startswith("/v1"):
                auth = h.headers.get("Authorization") or ""
                if auth != f"Bearer {self.api_key}":
                    raise _APIError(401)
            if path == "/v1/chat/completions" and h.command == "POST":
                self._chat(h, body)
            elif path == "/v1/models" and h.command in ("GET", "HEAD"):
                data = [
                    {"id": m, "object": "model", "created": 0, "owned_by": "act-stub"}
                    for m in self.models
                ]
                h.send(200, _dumps({"object": "list", "data": data}))
            elif path.startswith("/v1/models/") and h.command in ("GET", "HEAD"):
                model = path[len("/v1/models/") :]
                if model not in self.models:
                    raise _APIError(
                        404,
                        f"The model '{model}' does not exist",
                        code="model_not_found",
                        param="model",
                    )
                h.send(
                    200,
                    _dumps({"id": model, "object": "model", "created": 0, "owned_by": "act-stub"}),
                )
            else:
                raise _APIError(404, f"Invalid URL ({h.command} {h.path})")
        except _APIError as err:
            headers = {}
            if err.retry_after is not None:
                headers["Retry-After"] = f"{err.retry_after:g}"
            h.send(err.status, err.payload(), headers)

    def _chat(self, h: _Handler, raw: bytes) -> None:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            raise _APIError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly.)",
            ) from None
        headers = {k.lower(): v for k, v in h.headers.items()}
        req = _parse_chat_request(body, headers)
        with self._lock:
            self.requests.append(req)
            fault = self._faults.popleft() if self._faults else None
            self._inflight += 1
            self.max_concurrency_seen = max(self.max_concurrency_seen, self._inflight)
        try:
            if fault is not None:
                self._sleep(None)
                if fault.malformed:
                    h.send(200, _MALFORMED_BODY)
                    return
                raise _APIError(fault.status, retry_after=fault.retry_after)
            self._admit(req)
            reply = self._reply(req)
            self._sleep(reply.delay)
            if reply.malformed:
                h.send(200, _MALFORMED_BODY)
                return
            if reply.status != 200:
                raise _APIError(reply.status, reply.content, retry_after=reply.retry_after)
            h.send(200, _dumps(self._completion(req, reply)), {"x-request-id": "req_stub"})
        finally:
            with self._lock:
                self._inflight -= 1

    def _admit(self, req: ChatRequest) -> None:
        """Refuse a structured-output form the server refuses; drop one it ignores."""
        form = req.dialect
        if form is None or form in self.dialect.accepts:
            return
        if form in self.dialect.ignores:
            req.dialect, req.json_schema = None, None
            return
        status, err_type, message = self.dialect.refusal(form, req.body)
        raise _APIError(self._refusal_status or status, message, err_type=err_type)

    def _sleep(self, delay: float | None) -> None:
        seconds = self._latency if delay is None else delay
        if seconds > 0:
            time.sleep(seconds)

    def _reply(self, req: ChatRequest) -> Reply:
        responder = self._responder
        if responder is None:
            return Reply()
        try:
            reply = responder(req)
        except Exception as exc:
            raise _APIError(500, f"stub responder raised {type(exc).__name__}: {exc}") from None
        if reply is None:
            return Reply()
        return Reply(content=reply) if isinstance(reply, str) else reply

    def _completion(self, req: ChatRequest, reply: Reply) -> dict:
        positions = reply.top_logprobs
        content = reply.content
        if content is None:
            if positions:
                content = "".join(next(iter(p)) for p in positions if p)
            else:
                content = _default_content(req)
        logprobs = None
        n_tokens: int | None = None
        if req.logprobs and reply.include_logprobs:
            want = req.top_logprobs or 0
            if positions is None:
                positions = _default_top_logprobs(content, _collect_enums(req.json_schema), want)
                if self.pre_grammar_logprobs and req.dialect is not None:
                    positions = pre_grammar(positions)
            logprobs = _logprobs_payload(positions, want)
            n_tokens = len(logprobs["content"])
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = len(req.text.split()) + _IMAGE_PROMPT_TOKENS * len(req.images)
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = n_tokens if n_tokens is not None else len(_tokenize(content))
        return {
            "id": f"chatcmpl-stub{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": logprobs,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": "fp_stub",
        }


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stub server until SIGTERM/SIGINT; prints ``READY <base_url>`` once listening."""
    parser = argparse.ArgumentParser(
        prog="python -m act_backend.testing.openai_server",
        description="Local OpenAI chat-completions stub server (loopback only).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port (0 = pick a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    parser.add_argument(
        "--dialect",
        default="openai",
        choices=sorted(SERVER_DIALECTS),
        help="imitate this server's structured output (see server_dialects)",
    )
    args = parser.parse_args(argv)
    if not _is_loopback(args.host):
        parser.error(f"--host must be a loopback address, got {args.host!r}")

    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server = OpenAIStubServer(
        latency=args.latency,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        dialect=args.dialect,
    ).start()
    try:
        print(f"READY {server.base_url}", flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
