"""``data:`` URLs (RFC 2397) decoded locally, base64 or percent-encoded, within the size limit."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote, unquote_to_bytes

from .result import Media, MediaError
from .sniff import ContentRules


def decode_data_url(value: str, rules: ContentRules) -> Media:
    """The media a ``data:`` URL holds, checked against the rules.

    >>> rules = ContentRules(max_bytes=1024, prefixes=("image/",))
    >>> decode_data_url("data:image/gif;base64,R0lGODlhAQABAAAAACw=", rules)
    Media(mime='image/gif', size=14)
    """
    header, sep, payload = value[5:].partition(",")
    if not sep:
        raise MediaError("malformed data: URL: no ',' between the media type and the data")
    params = [p.strip() for p in header.split(";")]
    declared = params[0].lower() or "text/plain"  # RFC 2397's default
    if declared.count("/") != 1 or " " in declared:
        raise MediaError(f"malformed data: URL: media type {declared[:60]!r} is not type/subtype")
    if any(p.lower() == "base64" for p in params[1:]):
        data = _decode_base64(payload, rules)
    else:
        data = unquote_to_bytes(payload)
    return rules.check(data, declared, "data: URL")


def _decode_base64(payload: str, rules: ContentRules) -> bytes:
    """The bytes of a base64 payload (standard or URL-safe, padding optional)."""
    compact = re.sub(r"\s+", "", unquote(payload) if "%" in payload else payload)
    # Refuse before decoding: the decoded size is 3/4 of the text.
    if (len(compact) // 4) * 3 > rules.max_bytes + 3:
        raise MediaError(rules.too_large("data: URL"))
    compact += "=" * (-len(compact) % 4)
    urlsafe = "-" in compact or "_" in compact
    try:
        return base64.b64decode(compact, altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("malformed data: URL: the base64 data is invalid") from None
