"""The OpenAI-compatible chat engine (OpenAI, vLLM, Ollama, llama.cpp server)."""

from __future__ import annotations

from ..annotator import LLMAnnotator
from ..cache import ResultCache
from ..critics import LLMCritic
from ..llm import CachedChat, ChatClient
from ..prompting import PromptBook
from ..settings import Settings


def make_annotator(settings: Settings, cache: ResultCache | None) -> LLMAnnotator:
    return chat_annotator(settings, ChatClient(settings.annotator, cache=cache))


def make_critic(settings: Settings, cache: ResultCache | None) -> LLMCritic:
    return chat_critic(settings, ChatClient(settings.critic, cache=cache))


def chat_annotator(settings: Settings, chat: CachedChat) -> LLMAnnotator:
    """The prompt-driven annotator on any chat client (shared by the chat engines)."""
    return LLMAnnotator(
        chat, PromptBook(settings.prompts_dir), reasoning=settings.wants_annotator_reasoning
    )


def chat_critic(settings: Settings, chat: CachedChat) -> LLMCritic:
    """The prompt-driven critic on any chat client (shared by the chat engines)."""
    return LLMCritic(
        chat,
        PromptBook(settings.prompts_dir),
        strategy=settings.critic.strategy,
        top_logprobs=settings.critic.top_logprobs,
    )
