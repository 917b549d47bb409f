"""Turn task media references into ``data:`` URLs for an LLM, without becoming an SSRF proxy.

Label Studio tasks reference images in three ways:

* ``data:`` URLs, decoded locally;
* paths relative to Label Studio (``/data/upload/<project>/<file>``, ``/data/local-files/?d=…``,
  ``/storage-data/uploaded/?filepath=…``, ``/tasks/<id>/resolve/?fileuri=…``), fetched from the
  Label Studio URL with the Label Studio token (Label Studio answers 401 without it);
* absolute ``http(s)`` URLs, fetched only from the Label Studio origin or an allow-listed host.

Whoever can write task data chooses these URLs, so every hop (redirects included) is checked
against the allow-list before any connection is made, the Label Studio token only ever goes to the
Label Studio origin, bodies are size-capped while streaming, and the media type is read from the
bytes. Error messages, reprs and log records quote URLs with credentials and query values removed.

The modules, leaves first:

* ``result``: :class:`Media` (what a fetch returns) and :class:`MediaError` (what it raises);
* ``urls``: which media URLs and hosts are accepted, the Label Studio origin, :func:`redact_url`;
* ``sniff``: :func:`sniff_mime` and the size and type rules every piece of media passes;
* ``data_urls``: ``data:`` URLs decoded locally;
* ``auth``: :class:`LabelStudioAuth`, legacy tokens and personal access tokens;
* ``trust``: which Label Studio URL and token a request's media is fetched with;
* ``fetcher``: :class:`MediaFetcher`, which downloads hop by hop with all of the above.
"""

from __future__ import annotations

from .auth import LabelStudioAuth
from .fetcher import MAX_REDIRECTS, MediaFetcher
from .result import Media, MediaError
from .sniff import sniff_mime
from .urls import redact_url

__all__ = [
    "MAX_REDIRECTS",
    "LabelStudioAuth",
    "Media",
    "MediaError",
    "MediaFetcher",
    "redact_url",
    "sniff_mime",
]
