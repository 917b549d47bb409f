"""Basic authentication of requests to the backend, checked from the Authorization header."""

from __future__ import annotations

import base64
import binascii
import hmac

#: The body and header of the refusal, the same from the ASGI front and from the Flask app.
UNAUTHORIZED_MESSAGE = "basic authentication required"
CHALLENGE = 'Basic realm="label-studio-act"'


def basic_auth_ok(header: str | None, user: str, password: str) -> bool:
    """True when ``header`` is ``Basic base64(user:password)`` with these credentials.

    Both parts are compared in constant time, and both always, so timing tells nothing.

    >>> basic_auth_ok("Basic " + base64.b64encode(b"ls:pw").decode(), "ls", "pw")
    True
    >>> basic_auth_ok("Basic bm9wZQ==", "ls", "pw"), basic_auth_ok(None, "ls", "pw")
    (False, False)
    """
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    given_user, colon, given_password = decoded.partition(":")
    user_ok = hmac.compare_digest(given_user.encode(), user.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    return bool(colon) and user_ok and password_ok
