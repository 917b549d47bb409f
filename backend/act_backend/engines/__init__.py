"""Engines: what annotates and what criticizes, behind two small protocols.

An engine is named in the settings (``annotator.engine``, ``critic.engine``) and built here:
- ``openai``: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp).
- ``transformers``: a local open-weights model through transformers (white-box critics).
- ``embedding``: the small offline default (sentence embeddings; zero-shot labels, kNN critic).

Chat engines (openai, transformers) share the prompt templates and the strict answer parsing of
``LLMAnnotator`` and ``LLMCritic``; they differ only in the chat client. An engine module
exposes ``make_annotator(settings, cache)`` and ``make_critic(settings, cache)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..cache import ResultCache
    from ..domain import Critique, Item, MachineLabel, TaskError, Usage
    from ..labeling import LabelingSpec
    from ..settings import Settings

ENGINE_MODULES = {
    "openai": "act_backend.engines.openai_engine",
    "transformers": "act_backend.engines.transformers",
    "embedding": "act_backend.engines.embedding",
}


class Annotator(Protocol):
    """Optionally also ``check(spec)``: raise TaskError for a config it can never serve, so the
    refusal comes once, at /setup and before a batch, not once per task."""

    def annotate(self, item: Item, spec: LabelingSpec) -> tuple[MachineLabel, Usage]:
        """The machine label of one item (raises TaskError on failure)."""
        ...


class Critic(Protocol):
    def criticize(
        self, item: Item, spec: LabelingSpec, label: MachineLabel
    ) -> tuple[Critique, Usage]:
        """Suspicion ε̂ ∈ [0, 1] that ``label`` is wrong, and a rationale."""
        ...


@runtime_checkable
class BatchCritic(Protocol):
    """A critic that judges a batch at once (e.g. by comparing items with their neighbours).

    The predictor annotates the whole batch first, then calls ``criticize_batch`` once with the
    items that were annotated; each entry of the answer is a (Critique, Usage) or a TaskError.
    """

    def criticize_batch(
        self, items: Sequence[Item], spec: LabelingSpec, labels: Sequence[MachineLabel]
    ) -> list[tuple[Critique, Usage] | TaskError]: ...


def make_annotator(settings: Settings, cache: ResultCache | None) -> Annotator:
    return _module(settings.annotator.engine).make_annotator(settings, cache)


def make_critic(settings: Settings, cache: ResultCache | None) -> Critic | BatchCritic:
    return _module(settings.critic.engine).make_critic(settings, cache)


def _module(engine: str) -> ModuleType:
    if engine not in ENGINE_MODULES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {sorted(ENGINE_MODULES)}")
    return importlib.import_module(ENGINE_MODULES[engine])
