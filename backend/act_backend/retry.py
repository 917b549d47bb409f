"""When a failed LLM call is tried again, and after how long: our own loop, so that every HTTP
attempt is counted in ``usage`` and a validation error is never retried.

The policy is the openai client's: timeouts, connection errors and HTTP 408/409/429/5xx are
transient (a server's ``x-should-retry`` header decides where it gives one), except a 5xx that
is a validation error (``dialects.is_validation_error``); the wait is the server's Retry-After
when it asks for at most a minute, else 0.5 s · 2ⁿ capped at 8 s, less up to 25 % jitter.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping

import openai

from .dialects import is_validation_error

MAX_RETRY_AFTER = 60.0
#: The pause before retry n (0-based) without a Retry-After: FIRST · 2ⁿ s, at most MAX s.
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 8.0
_TRANSIENT_STATUS = frozenset({408, 409, 429})


def is_transient(exc: openai.APIError) -> bool:
    """True when the same request may well succeed if sent again."""
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return True
    if not isinstance(exc, openai.APIStatusError):
        return False
    status = exc.status_code
    if is_validation_error(status, str(exc.message)):
        return False
    hint = exc.response.headers.get("x-should-retry")
    if hint in ("true", "false"):
        return hint == "true"
    return status in _TRANSIENT_STATUS or status >= 500


def retry_delay(exc: openai.APIError, retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (0-based) after ``exc``."""
    if isinstance(exc, openai.APIStatusError):
        asked = retry_after(exc.response.headers)
        if asked is not None:
            return asked
    return min(BACKOFF_FIRST * 2.0**retry, BACKOFF_MAX) * (1.0 - 0.25 * random.random())


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a server asked for (``retry-after-ms``, ``retry-after`` in seconds or as an HTTP
    date), if it is more than 0 and at most a minute.

    >>> retry_after({"retry-after": "1.5"}), retry_after({"retry-after-ms": "200"})
    (1.5, 0.2)
    >>> retry_after({"retry-after": "3600"}) is None
    True
    """
    seconds = _number(headers.get("retry-after-ms"), scale=0.001)
    if seconds is None:
        seconds = _number(headers.get("retry-after"), scale=1.0)
    if seconds is None:
        seconds = _http_date(headers.get("retry-after"))
    return seconds if seconds is not None and 0 < seconds <= MAX_RETRY_AFTER else None


def _number(value: str | None, *, scale: float) -> float | None:
    try:
        return float(value) * scale if value is not None else None
    except ValueError:
        return None


def _http_date(value: str | None) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time() if when is not None else None
