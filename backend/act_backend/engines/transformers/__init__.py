"""The local open-weights engine: a transformers model behind the chat-client interface.

- ``chat``: ``TransformersChat``, what the annotator and the critics talk to (enum scoring).
- ``loading``: finding a model on disk (never the network), the device, the dtype, the weights.
- ``prompts``: the chat template (or the fallback) and the images of a prompt.
- ``worker``: one thread per loaded model, batching the requests of every thread.
- ``decoding``: one padded forward pass: greedy or sampled generation, answer scoring.

Importing this package needs torch and transformers (the ``local`` extra); ``engines`` imports
it only when a role names the ``transformers`` engine.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the transformers engine needs torch and transformers: "
        "pip install 'label-studio-act[local]'"
    ) from exc

from ...annotator import LLMAnnotator
from ...cache import ResultCache
from ...critics import LLMCritic
from ...settings import Settings
from ..openai_engine import chat_annotator, chat_critic
from .chat import TransformersChat


def make_annotator(settings: Settings, cache: ResultCache | None) -> LLMAnnotator:
    return chat_annotator(settings, TransformersChat(settings.annotator, cache=cache))


def make_critic(settings: Settings, cache: ResultCache | None) -> LLMCritic:
    return chat_critic(settings, TransformersChat(settings.critic, cache=cache))
