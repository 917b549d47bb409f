"""``TransformersChat``: a local model behind the chat-client interface (``CachedChat``).

It answers like ``ChatClient`` (``ask``/``complete``/``request_fingerprint``/``close``), so
``LLMAnnotator`` and ``LLMCritic`` run unchanged on a local model: its ``top_logprobs`` are the
model's own next-token log-probabilities (the p_yes critic), and it adds what only open weights
give, ``answer_logprob`` (the perplexity critic).

Structured output: a schema with a single string field with an ``enum`` (the annotator's one
label) is answered by scoring, not generating: each candidate answer ``{"<field>": "<label>"}``
(``json.dumps``) is scored by its log-likelihood log p(answer | prompt) = Σ log p(tᵢ | prompt,
t<ᵢ) (no length normalisation: the probability that the model writes exactly that answer), and
the best (first on ties) is returned as the JSON text, so the label is always in the set. Any
other schema (several fields, several labels, free text) is generated and judged by the strict
parser as for an API model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...cache import ResultCache
from ...domain import Usage
from ...llm import AnswerLogprob, CachedChat, Completion
from ...prompting import Message
from ...settings import EngineSettings
from .decoding import GenerateJob, Scored, ScoreJob
from .loading import directory_signature, resolve_device, resolve_model
from .prompts import Prompt
from .worker import acquire, release

#: Version of this engine's decoding rules: part of every cache key.
ENGINE_REVISION = "transformers-1"


class TransformersChat(CachedChat):
    """One role on a local model; thread-safe. The model loads on first use and is shared."""

    engine = "transformers"

    def __init__(self, settings: EngineSettings, *, cache: ResultCache | None = None) -> None:
        super().__init__(cache)
        self.settings = settings
        self.path = resolve_model(settings.model)
        self.local = acquire(self.path, resolve_device(settings.device), settings.batch_size)
        self._fingerprint = {
            "engine": "transformers",
            "revision": ENGINE_REVISION,
            "model": settings.model,
            "weights": directory_signature(self.path),
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
        }
        self._closed = False

    def render_prompt(self, messages: Sequence[Message]) -> Prompt:
        """The prompt text the model sees (chat template applied) and the images it gets."""
        return self.local.render(messages)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = "answer",
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
    ) -> Completion:
        """One completion: enum scoring for a one-label schema, else generation (see module).

        A scored answer is the argmax whatever the temperature, and has no ``top_logprobs``.
        """
        prompt = self.render_prompt(messages)
        choice = enum_field(schema)
        if choice is not None:
            return self._choose(prompt, *choice)
        if top_logprobs is not None and top_logprobs < 1:
            raise ValueError(f"top_logprobs must be >= 1; got {top_logprobs!r}")
        job = GenerateJob(
            prompt,
            max_new_tokens=max_tokens or self.settings.max_tokens,
            top_logprobs=top_logprobs,
            temperature=self.settings.temperature,
        )
        return self.local.run([job])[0]

    def answer_logprob(self, messages: Sequence[Message], answer: str) -> AnswerLogprob:
        """log p(answer | prompt) summed over the answer's tokens, and their number (cached)."""
        key = self._cache_key(messages, {"answer_logprob": answer})
        hit = self._cache_get(key)
        if hit is not None:
            return AnswerLogprob.from_json(hit)
        scored: Scored = self.local.run([ScoreJob(self.render_prompt(messages), answer)])[0]
        result = AnswerLogprob(
            logprob=scored.logprob,
            n_tokens=scored.n_tokens,
            usage=Usage(scored.prompt_tokens, scored.n_tokens, calls=1),
        )
        self._cache_put(key, result.to_json())
        return result

    def request_fingerprint(self) -> dict[str, Any]:
        return dict(self._fingerprint)

    def close(self) -> None:
        """Give the shared model back; the last user stops its worker and frees it."""
        if not self._closed:
            self._closed = True
            release(self.local)

    def _choose(self, prompt: Prompt, name: str, labels: Sequence[str]) -> Completion:
        candidates = [json.dumps({name: label}, ensure_ascii=False) for label in labels]
        scored: list[Scored] = self.local.run([ScoreJob(prompt, c) for c in candidates])
        best = max(range(len(candidates)), key=lambda i: (scored[i].logprob, -i))
        return Completion(
            text=candidates[best],
            top_logprobs=None,
            usage=Usage(scored[best].prompt_tokens, scored[best].n_tokens, calls=1),
        )


def enum_field(schema: dict[str, Any] | None) -> tuple[str, list[str]] | None:
    """(field, labels) when ``schema`` is an object with one string field with an ``enum``.

    >>> enum_field({"type": "object", "properties": {"label": {"type": "string", "enum": ["a"]}}})
    ('label', ['a'])
    >>> enum_field({"properties": {"answer": {"type": "string"}}}) is None
    True
    """
    props = (schema or {}).get("properties")
    if not isinstance(props, dict) or len(props) != 1:
        return None
    ((name, prop),) = props.items()
    values = prop.get("enum") if isinstance(prop, dict) else None
    if prop.get("type") != "string" or not isinstance(values, list) or not values:
        return None
    if not all(isinstance(v, str) for v in values):
        return None
    return name, list(values)
