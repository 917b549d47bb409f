"""Secrets out of every message: the one place that knows them and masks them.

The process remembers every secret it is given (the roles' API keys, the Label Studio API key,
the basic-auth password, the tokens /setup sends) and :func:`redact` replaces each with ``***``
wherever it appears: in /predict errors, GET /health, ``ls-act`` output and, through
:class:`RedactingFilter`, in every log line, including text an upstream server echoed back
(a 401 body quoting the key). Credentials written into a URL (``http://user:pass@host``) and
``Bearer``/``Basic``/``Token`` (Label Studio's) credentials are masked whether remembered or
not.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import quote

from pydantic import SecretStr

__all__ = [
    "MASK",
    "RedactingFilter",
    "install_log_redaction",
    "redact",
    "redact_data",
    "remember",
    "remember_settings",
]

MASK = "***"
#: Shorter values are not masked: a 1-character "secret" would mask every such letter.
MIN_SECRET_LENGTH = 4
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]*@")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
#: Label Studio's legacy scheme, ``Authorization: Token <40 hex>``; case-sensitive and 20+
#: characters so that prose about tokens stays readable.
_LS_TOKEN = re.compile(r"\b(Token)\s+[A-Za-z0-9._~+/=-]{20,}")


class _Role(Protocol):
    api_key: SecretStr | None


class _Settings(Protocol):
    annotator: _Role
    critic: _Role
    label_studio_api_key: SecretStr | None
    basic_auth_password: SecretStr | None


class Redactor:
    """The secrets known so far (thread-safe) and the masking of text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def remember(self, values: Iterable[object]) -> None:
        """Add secrets to mask (and their URL-quoted forms); short or empty ones are ignored."""
        plain = (v.get_secret_value() if isinstance(v, SecretStr) else v for v in values)
        found = {form for v in plain if isinstance(v, str) for form in (v, quote(v, safe=""))}
        with self._lock:
            known = set(self._secrets) | {s for s in found if len(s) >= MIN_SECRET_LENGTH}
            self._secrets = tuple(sorted(known, key=len, reverse=True))  # longest first

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _URL_USERINFO.sub(rf"\1{MASK}@", text)
        text = _AUTH_SCHEME.sub(rf"\1 {MASK}", text)
        return _LS_TOKEN.sub(rf"\1 {MASK}", text)


_REDACTOR = Redactor()


def remember(*values: object) -> None:
    """Mask these values (strings or SecretStr; others are ignored) from now on, in this process."""
    _REDACTOR.remember(values)


def remember_settings(settings: _Settings) -> None:
    """Mask every secret the settings hold: both roles' API keys, Label Studio's, the password."""
    remember(
        settings.annotator.api_key,
        settings.critic.api_key,
        settings.label_studio_api_key,
        settings.basic_auth_password,
    )


def redact(text: str) -> str:
    """``text`` with every known secret, URL credential and bearer token replaced by ``***``.

    >>> remember("sk-doctest-key")
    >>> redact("HTTP 401: bad key sk-doctest-key at http://me:pw@llm.example/v1")
    'HTTP 401: bad key *** at http://***@llm.example/v1'
    """
    return _REDACTOR(text)


def redact_data(value: Any) -> Any:
    """A copy of JSON-like data with every string (values and keys) redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_data(k): redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and traceback) redacted; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(handler: logging.Handler) -> None:
    """Redact everything ``handler`` writes (once per handler)."""
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())
