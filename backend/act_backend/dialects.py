"""Structured-output dialects: the ways OpenAI-compatible servers are asked for JSON of a schema.

========================  ===================================================  ==================
dialect                   request fields                                       servers
========================  ===================================================  ==================
``json_schema``           ``response_format: {type: json_schema, json_schema:  OpenAI, vLLM,
                          {name, schema, strict: true}}``                      llama.cpp's
                                                                               llama-server,
                                                                               Ollama ≥ 0.5
``json_object_schema``    ``response_format: {type: json_object, schema}``     llama-cpp-python
``structured_outputs``    ``structured_outputs: {json: schema}``               vLLM (newer)
``guided_json``           ``guided_json: schema``                              vLLM before 0.12
``json_object``           ``response_format: {type: json_object}``             JSON mode, no schema
``none``                  nothing: the prompt asks for JSON                    any
========================  ===================================================  ==================

``auto`` (the default setting) tries them in this order and keeps the first the endpoint
accepts (``DialectMemory``). Whatever the dialect, the answer is parsed strictly (``parsing``).
A server that silently ignores fields it does not know (vLLM ≥ 0.12, llama-cpp-python) accepts
an unknown dialect unconstrained; the strict parser still judges its answers.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from .cache import ResultCache

Fields = Callable[[dict[str, Any], str], dict[str, Any]]

_FIELDS: dict[str, Fields] = {
    "json_schema": lambda schema, name: {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        }
    },
    "json_object_schema": lambda schema, name: {
        "response_format": {"type": "json_object", "schema": schema}
    },
    "structured_outputs": lambda schema, name: {"structured_outputs": {"json": schema}},
    "guided_json": lambda schema, name: {"guided_json": schema},
    "json_object": lambda schema, name: {"response_format": {"type": "json_object"}},
    "none": lambda schema, name: {},
}
#: Every dialect, in the order ``auto`` tries them: the most constraining first.
DIALECTS: tuple[str, ...] = tuple(_FIELDS)
AUTO = "auto"

# A refusal of the request's form, also when a server wraps it in a 500 (llama-cpp-python
# answers its pydantic validation errors with HTTP 500).
_VALIDATION_MARKERS = (
    "validation error",
    "input should be",
    "literal_error",
    "extra inputs are not permitted",
    "extra_forbidden",
    "unrecognized request argument",
    "response_format",
    "json_schema",
    "guided_json",
    "structured_outputs",
)
# A 400 about the task itself, which no other dialect would cure.
_REQUEST_PROBLEMS = ("context length", "context_length", "context window")


def request_fields(dialect: str, schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The request-body fields that ask for JSON of ``schema`` in ``dialect``.

    >>> request_fields("guided_json", {"type": "object"}, "answer")
    {'guided_json': {'type': 'object'}}
    >>> request_fields("none", {"type": "object"}, "answer")
    {}
    """
    return _FIELDS[dialect](schema, name)


def candidates(setting: str, known: str | None) -> tuple[str, ...]:
    """The dialects to try: the forced one; or for ``auto`` the known one first, then the rest.

    >>> candidates("json_object", None)
    ('json_object',)
    >>> candidates("auto", "guided_json")[:2]
    ('guided_json', 'json_schema')
    """
    if setting != AUTO:
        return (setting,)
    if known is None:
        return DIALECTS
    return (known, *(d for d in DIALECTS if d != known))


def is_validation_error(status: int | None, message: str) -> bool:
    """True when the endpoint refused the form of the request: a 400/422, or a 5xx that says so.

    Such an error is never transient (no retry) and sends a structured request to the next
    dialect. A 400 about the context length is the task's own problem, not the form's.

    >>> is_validation_error(500, "Input should be 'text' or 'json_object'")
    True
    >>> is_validation_error(500, "The server had an error"), is_validation_error(429, "slow down")
    (False, False)
    """
    text = message.lower()
    if status is None or any(marker in text for marker in _REQUEST_PROBLEMS):
        return False
    if status in (400, 422):
        return True
    return status >= 500 and any(marker in text for marker in _VALIDATION_MARKERS)


class DialectMemory:
    """The dialect one endpoint and model last accepted: in memory, and in the answer cache when
    there is one, so that a restart does not negotiate again. Thread-safe."""

    def __init__(self, endpoint: str, model: str, cache: ResultCache | None) -> None:
        blob = json.dumps({"dialect_of": [endpoint, model]}, sort_keys=True)
        self._key = "dialect:" + hashlib.sha256(blob.encode()).hexdigest()
        self._cache = cache
        self._known: str | None = None
        self._lock = threading.Lock()
        #: Held by the one caller that negotiates while no dialect is known.
        self.negotiating = threading.Lock()

    def get(self) -> str | None:
        """The remembered dialect, or None before any was accepted."""
        with self._lock:
            if self._known is None and self._cache is not None:
                stored = (self._cache.get(self._key) or {}).get("dialect")
                self._known = stored if stored in DIALECTS else None
            return self._known

    def put(self, dialect: str) -> bool:
        """Remember that the endpoint accepted ``dialect``; True when that is news."""
        with self._lock:
            if dialect == self._known:
                return False
            self._known = dialect
            if self._cache is not None:
                self._cache.put(self._key, {"dialect": dialect})
            return True
