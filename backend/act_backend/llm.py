"""A chat-completions client for one role, on any OpenAI-compatible endpoint.

Structured output is negotiated per endpoint and model (``dialects``): the first of
json_schema → json_object with a schema → vLLM's guided decoding → json_object → none that the
endpoint accepts is remembered (also across restarts, in the answer cache). Retries are ours
(``retry``): transient failures are retried with backoff, validation errors never, and every HTTP
attempt counts in ``usage.calls``. Failures surface as ``LLMError`` with a ``kind`` that batches
count per kind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar

import openai
from openai.types.chat import ChatCompletion

from .cache import ResultCache
from .dialects import AUTO, DialectMemory, candidates, is_validation_error, request_fields
from .domain import TaskError, Usage
from .retry import is_transient, retry_delay
from .settings import EngineSettings

T = TypeVar("T")
log = logging.getLogger(__name__)


class LLMError(TaskError):
    """An LLM call failed after the retries; ``kind`` says how. ``rejected``: the endpoint
    refused the form of the request (a validation error), so another dialect may pass."""

    def __init__(self, kind: str, message: str, *, rejected: bool = False) -> None:
        super().__init__(kind, message)
        self.rejected = rejected


@dataclass(frozen=True)
class Completion:
    """The answer text, the top log-probabilities per generated token if asked for, and usage."""

    text: str
    top_logprobs: tuple[dict[str, float], ...] | None
    usage: Usage

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "top_logprobs": list(self.top_logprobs) if self.top_logprobs is not None else None,
            "usage": [self.usage.prompt_tokens, self.usage.completion_tokens],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        """A cached completion: it cost no call now, so it counts as one cache hit."""
        top = data["top_logprobs"]
        return cls(
            text=data["text"],
            top_logprobs=tuple(top) if top is not None else None,
            usage=Usage(cached=1),
        )


@dataclass(frozen=True)
class AnswerLogprob:
    """log p(answer | messages) = Σ log p(tᵢ | prompt, t<ᵢ) over the answer's ``n_tokens``.

    Only white-box (local) engines can compute it; the perplexity critic needs it.
    """

    logprob: float
    n_tokens: int
    usage: Usage

    def to_json(self) -> dict[str, Any]:
        return {"logprob": self.logprob, "n_tokens": self.n_tokens}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnswerLogprob:
        """A cached score: it cost no call now, so it counts as one cache hit."""
        return cls(float(data["logprob"]), int(data["n_tokens"]), Usage(cached=1))


class CachedChat(ABC):
    """What every chat client shares: ``ask`` = ``complete`` + strict parse, cached on disk.

    A subclass supplies ``complete``, ``request_fingerprint`` (what besides the messages decides
    an answer; part of every cache key) and ``close``.
    """

    #: The engine this client belongs to (``settings.Engine``): what it can serve.
    engine: ClassVar[str]

    def __init__(self, cache: ResultCache | None = None) -> None:
        self._cache = cache

    def ask(
        self,
        messages: Sequence[dict[str, Any]],
        parse: Callable[[Completion], T],
        **options: Any,
    ) -> tuple[T, Completion]:
        """Complete and parse; a completion that parses is cached, so a re-run costs no call.

        ``options`` go to ``complete``. A cache hit costs nothing; ``usage.cached`` counts it.
        """
        key = self._cache_key(messages, options)
        hit = self._cache_get(key)
        if hit is not None:
            completion = Completion.from_json(hit)
            return parse(completion), completion
        completion = self.complete(messages, **options)
        try:
            result = parse(completion)
        except TaskError as exc:
            exc.usage = exc.usage + completion.usage  # the call was made: count it
            raise
        self._cache_put(key, completion.to_json())
        return result, completion

    @abstractmethod
    def complete(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = "answer",
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
    ) -> Completion:
        """One chat completion, uncached."""

    @abstractmethod
    def request_fingerprint(self) -> dict[str, Any]:
        """What, besides the messages, decides this role's answers (for cache keys)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections or models."""

    def _cache_key(self, messages: Sequence[dict[str, Any]], options: dict[str, Any]) -> str | None:
        """SHA-256 of the fingerprint, the messages and the options; None without a cache."""
        if self._cache is None:
            return None
        payload = {"request": self.request_fingerprint(), "messages": messages, "options": options}
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def _cache_get(self, key: str | None) -> dict[str, Any] | None:
        return self._cache.get(key) if self._cache is not None and key is not None else None

    def _cache_put(self, key: str | None, value: dict[str, Any]) -> None:
        if self._cache is not None and key is not None:
            self._cache.put(key, value)


class ChatClient(CachedChat):
    """One role's endpoint and sampling settings; thread-safe, one per role."""

    engine = "openai"

    def __init__(self, settings: EngineSettings, *, cache: ResultCache | None = None) -> None:
        super().__init__(cache)
        self.settings = settings
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            # Local servers (vLLM, Ollama, llama.cpp) take any key; the client insists on one.
            api_key=api_key or "no-key",
            timeout=settings.timeout,
            max_retries=0,  # ours (``_send``): every attempt counted, validation errors final
        )
        self.dialects = DialectMemory(settings.endpoint(), settings.model, cache)
        # Built once: it is part of every cache key, so of every ask.
        self._fingerprint = {
            "endpoint": settings.endpoint(),
            "model": settings.model,
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
            "structured_output": settings.structured_output,
        }

    def complete(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = "answer",
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
    ) -> Completion:
        """One chat completion; ``schema`` constrains the answer in the endpoint's dialect."""
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": list(messages),
            "temperature": self.settings.temperature,
            "max_tokens": max_tokens or self.settings.max_tokens,
        }
        if top_logprobs is not None:
            body.update(logprobs=True, top_logprobs=top_logprobs)
        if schema is None:
            return self._send(body)
        return self._structured(body, schema, schema_name)

    def request_fingerprint(self) -> dict[str, Any]:
        """What, besides the messages, decides this role's answers (for cache keys).

        The setting ``structured_output`` is in it, the dialect ``auto`` settles on is not: for
        one endpoint and model (both in it) negotiation always lands on the same dialect.
        """
        return self._fingerprint

    def close(self) -> None:
        self._client.close()

    def _structured(self, body: dict[str, Any], schema: dict[str, Any], name: str) -> Completion:
        """Ask in the known dialect; while none is known, one caller negotiates at a time."""
        setting = self.settings.structured_output
        known = self.dialects.get() if setting == AUTO else None
        if setting == AUTO and known is None:
            with self.dialects.negotiating:  # the others wait for it, then go on in parallel
                known = self.dialects.get()
                if known is None:
                    return self._negotiate(body, schema, name, candidates(setting, None))
        return self._negotiate(body, schema, name, candidates(setting, known))

    def _negotiate(
        self, body: dict[str, Any], schema: dict[str, Any], name: str, dialects: Sequence[str]
    ) -> Completion:
        """The first dialect the endpoint accepts answers; a refusal moves on to the next."""
        spent, last = Usage(), None
        for dialect in dialects:
            try:
                completion = self._send({**body, **request_fields(dialect, schema, name)})
            except LLMError as exc:
                spent, last = spent + exc.usage, exc
                if exc.rejected:
                    continue
                exc.usage = spent
                raise
            if self.settings.structured_output == AUTO and self.dialects.put(dialect):
                s = self.settings
                log.info(
                    "%s, model %s: structured output as %s", s.endpoint_label(), s.model, dialect
                )
            return replace(completion, usage=completion.usage + spent)
        error = incompatible(dialects, last, forced=self.settings.structured_output != AUTO)
        error.usage = spent
        raise error

    def _send(self, body: dict[str, Any]) -> Completion:
        """POST one chat completion; transient failures retried (``retry``), each attempt
        counted in ``usage.calls``, the answer's and the error's alike."""
        failed = 0
        while True:
            try:
                # The client's documented raw path: same auth and typed answer, without the
                # per-call walk of the request through its TypedDicts (~1 ms of CPU a call;
                # our messages are already in wire format).
                response = self._client.post("/chat/completions", body=body, cast_to=ChatCompletion)
            except openai.APIError as exc:
                failed += 1
                if failed > self.settings.max_retries or not is_transient(exc):
                    raise _spent(_classify(exc), failed) from None
                time.sleep(retry_delay(exc, failed - 1))
                continue
            except ValueError as exc:  # a 200 whose body is not JSON (proxies, crashed servers)
                error = LLMError("malformed_response", f"the endpoint's answer is not JSON: {exc}")
                raise _spent(error, failed + 1) from None
            try:
                completion = _completion(response)
            except LLMError as exc:
                raise _spent(exc, failed + 1) from None
            return replace(completion, usage=completion.usage + Usage(calls=failed))


def _completion(response: Any) -> Completion:
    if not getattr(response, "choices", None):
        raise LLMError("malformed_response", "the endpoint answered with no choices")
    choice = response.choices[0]
    text = choice.message.content if choice.message else None
    if text is None:
        refusal = getattr(choice.message, "refusal", None)
        detail = f"the model refused: {refusal}" if refusal else "the model returned no content"
        raise LLMError("malformed_response", detail)
    usage = response.usage
    return Completion(
        text=text,
        top_logprobs=_top_logprobs(choice),
        usage=Usage(
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            calls=1,
        ),
    )


def _top_logprobs(choice: Any) -> tuple[dict[str, float], ...] | None:
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs else None
    if not content:
        return None
    positions = []
    for token in content:
        candidates = {t.token: t.logprob for t in (token.top_logprobs or [])}
        candidates.setdefault(token.token, token.logprob)
        positions.append(candidates)
    return tuple(positions)


#: The kind of an openai exception: the first class it is an instance of.
_KINDS: list[tuple[type[Exception], str]] = [
    (openai.APITimeoutError, "llm_timeout"),
    (openai.APIConnectionError, "llm_connection"),
    (openai.RateLimitError, "llm_rate_limit"),
    (openai.AuthenticationError, "llm_auth"),
    (openai.PermissionDeniedError, "llm_auth"),
    (openai.NotFoundError, "llm_not_found"),
    (openai.BadRequestError, "llm_bad_request"),
    (openai.UnprocessableEntityError, "llm_bad_request"),
    (openai.InternalServerError, "llm_server_error"),
    (openai.APIResponseValidationError, "malformed_response"),
]


def _classify(exc: openai.APIError) -> LLMError:
    """Map an openai exception to a kind and a message that carries no secret."""
    status = getattr(exc, "status_code", None)
    kind = next((k for cls, k in _KINDS if isinstance(exc, cls)), "llm_error")
    text = _server_message(exc)
    prefix = f"HTTP {status}: " if status else ""
    return LLMError(kind, f"{prefix}{shorten(text)}", rejected=is_validation_error(status, text))


def _server_message(exc: openai.APIError) -> str:
    """The server's own error message when its body has one, else the client's summary."""
    body = exc.body if isinstance(exc, openai.APIStatusError) else None
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str) and message.strip():
        return message
    return getattr(exc, "message", None) or str(exc)


def _spent(error: LLMError, calls: int) -> LLMError:
    """``error`` carrying the ``calls`` HTTP attempts it took (they cost all the same)."""
    error.usage = error.usage + Usage(calls=calls)
    return error


def incompatible(tried: Sequence[str], last: LLMError | None, *, forced: bool) -> LLMError:
    """The error for an endpoint that refused every structured-output dialect tried."""
    hint = " (structured_output is forced; 'auto' tries the others)" if forced else ""
    detail = f": {last.message}" if last is not None else ""
    return LLMError(
        "llm_incompatible",
        f"the endpoint accepted none of {', '.join(tried)} for structured output{hint}{detail}",
    )


def shorten(text: str, limit: int = 300) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters with "…".

    >>> shorten("a  long   message", limit=8)
    'a long …'
    """
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
