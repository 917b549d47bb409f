"""The OpenAI-compatible chat engine (OpenAI, vLLM, Ollama, llama.cpp server)."""

from __future__ import annotations

from ..annotator import LLMAnnotator
from ..cache import ResultCache
from ..critics import LLMCritic
from ..llm import ChatClient
from ..prompting import PromptBook
from ..settings import Settings


def make_annotator(settings: Settings, cache: ResultCache | None) -> LLMAnnotator:
    return LLMAnnotator(
        ChatClient(settings.annotator, cache=cache),
        PromptBook(settings.prompts_dir),
        reasoning=settings.wants_annotator_reasoning,
    )


def make_critic(settings: Settings, cache: ResultCache | None) -> LLMCritic:
    return LLMCritic(
        ChatClient(settings.critic, cache=cache),
        PromptBook(settings.prompts_dir),
        strategy=settings.critic.strategy,
        top_logprobs=settings.critic.top_logprobs,
    )
