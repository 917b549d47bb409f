"""What media is, read from its bytes, and the size and type rules every piece of media passes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .result import Media, MediaError


def sniff_mime(data: bytes) -> str | None:
    """The media type told by the content's magic bytes, or None if not recognised.

    HTML is recognised too, so an error page served as ``image/png`` is still refused.

    >>> sniff_mime(b"\\x89PNG\\r\\n\\x1a\\n...")
    'image/png'
    >>> sniff_mime(b"<!DOCTYPE html><p>Not found</p>")
    'text/html'
    >>> sniff_mime(b"plain text") is None
    True
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"BM") and len(data) >= 26:
        return "image/bmp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix"):
            return "image/heic"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "text/html"
    return None


def format_size(n: int) -> str:
    """A byte count as people write limits.

    >>> format_size(20 * 1024 * 1024), format_size(2048), format_size(1000)
    ('20 MB', '2 KB', '1000 bytes')
    """
    mib, kib = 1024 * 1024, 1024
    if n >= mib and n % mib == 0:
        return f"{n // mib} MB"
    if n >= kib and n % kib == 0:
        return f"{n // kib} KB"
    return f"{n} bytes"


@dataclass(frozen=True)
class ContentRules:
    """At most ``max_bytes``, not empty, and a media type starting with one of ``prefixes``."""

    max_bytes: int
    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, max_bytes: int, mime_prefixes: Sequence[str]) -> ContentRules:
        """The rules, the prefixes trimmed and lower-cased; at least one prefix is required."""
        prefixes = tuple(p.strip().lower() for p in mime_prefixes if p.strip())
        if not prefixes:
            raise ValueError("allowed_mime_prefixes must name at least one type, e.g. 'image/'")
        return cls(max_bytes=max_bytes, prefixes=prefixes)

    def patterns(self) -> list[str]:
        """The prefixes as media-range patterns: ``image/`` becomes ``image/*``."""
        return [f"{p}*" if p.endswith("/") else p for p in self.prefixes]

    def too_large(self, shown: str) -> str:
        """The message for media over the limit."""
        return f"{shown} is larger than the {format_size(self.max_bytes)} limit"

    def check(self, data: bytes, declared: str, shown: str) -> Media:
        """The media, if it is not empty, within the size limit and of an allowed type.

        The type is sniffed from the bytes; the ``declared`` one is used only when that fails.
        """
        if not data:
            raise MediaError(f"{shown} is empty")
        if len(data) > self.max_bytes:
            raise MediaError(self.too_large(shown))
        mime = sniff_mime(data) or declared.split(";")[0].strip().lower()
        if not mime:
            mime = "application/octet-stream"
        if not mime.startswith(self.prefixes):
            wanted = (
                "an image"
                if self.prefixes == ("image/",)
                else "one of " + ", ".join(self.patterns())
            )
            raise MediaError(f"{shown} is {mime[:80]}, not {wanted}")
        return Media(mime=mime, data=data)
