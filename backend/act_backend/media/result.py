"""What the media package hands back (:class:`Media`) and raises (:class:`MediaError`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field


class MediaError(Exception):
    """A task's media could not be used; the message is safe to show (no secrets) and specific."""


@dataclass(frozen=True)
class Media:
    """Decoded media: the mime type read from the content (or declared) and the raw bytes.

    >>> Media("image/png", b"abc").data_url()
    'data:image/png;base64,YWJj'
    """

    mime: str
    data: bytes = field(repr=False)

    def data_url(self) -> str:
        """The media as a base64 ``data:`` URL, the form OpenAI image content parts accept."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def __repr__(self) -> str:
        return f"Media(mime={self.mime!r}, size={len(self.data)})"
