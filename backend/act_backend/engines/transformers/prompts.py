"""Chat messages → the prompt text a local model reads, and the images it is shown.

- Chat template: the tokenizer's (or processor's) ``apply_chat_template``. A template that
  rejects the system role gets the system text prepended to the first user turn. A model with no
  template gets ``FALLBACK_TEMPLATE``: one block per message, ``<|role|>`` on its own line then
  the content, then ``<|assistant|>`` and a newline to cue the answer; the tokenizer adds its own
  special tokens (BOS) to that text, and images become the processor's image token.
- Images: data-URL parts are decoded into PIL images for the processor; an image sent to a
  text-only model is a ``TaskError`` of kind ``engine_unsupported``.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...domain import TaskError
from ...llm import LLMError, shorten
from ...prompting import Message
from .loading import Loaded

#: Chat template for models without one (see the module docstring).
FALLBACK_TEMPLATE = (
    "{% for message in messages %}<|{{ message.role }}|>\n{{ message.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: its text, its images (in order) and whether the tokenizer should add
    its special tokens (only for the fallback template: real templates write their own)."""

    text: str
    images: tuple[Any, ...] = ()
    add_special_tokens: bool = False


def render_prompt(messages: Sequence[Message], loaded: Loaded, path: Path) -> Prompt:
    """Apply the chat template (or the fallback) and collect the images (see module)."""
    images: list[Any] = []
    conversation: list[dict[str, Any]] = []
    for message in messages:
        parts = []
        for part in _parts(message.get("content", "")):
            if part.get("type") == "image_url":
                if not loaded.is_vision:
                    raise TaskError(
                        "engine_unsupported",
                        f"the model in {path} is a text-only model "
                        f"({type(loaded.model).__name__}) and this task has images: use a "
                        "vision-language model for it",
                    )
                images.append(decode_image(str((part.get("image_url") or {}).get("url", ""))))
                parts.append({"type": "image"})
            elif part.get("type") == "text":
                parts.append({"type": "text", "text": str(part.get("text", ""))})
        conversation.append({"role": message["role"], "content": parts})
    templated = _template_owner(loaded).chat_template is not None
    if not loaded.is_vision or not templated:
        conversation = [
            {"role": m["role"], "content": _flatten(m["content"], loaded)} for m in conversation
        ]
    text = _apply_template(conversation, loaded, path) if templated else _fallback(conversation)
    return Prompt(text=text, images=tuple(images), add_special_tokens=not templated)


def decode_image(url: str) -> Any:
    """A ``data:image/...;base64,`` URL as an RGB PIL image; a TaskError (``media``) otherwise."""
    from PIL import Image, UnidentifiedImageError

    header, _, payload = url.partition(",")
    if not header.startswith("data:") or ";base64" not in header:
        raise TaskError("media", "the transformers engine takes images as base64 data URLs")
    try:
        data = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as exc:
        raise TaskError("media", f"cannot decode the image data URL: {exc}") from None


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [p for p in content if isinstance(p, dict)]
    raise TaskError("bad_task", f"unsupported message content of type {type(content).__name__}")


def _template_owner(loaded: Loaded) -> Any:
    return loaded.processor if loaded.processor is not None else loaded.tokenizer


def _flatten(parts: list[dict[str, Any]], loaded: Loaded) -> str:
    image_token = getattr(loaded.processor, "image_token", None) or "<image>"
    return "".join(image_token if p["type"] == "image" else p["text"] for p in parts)


def _apply_template(conversation: list[dict[str, Any]], loaded: Loaded, path: Path) -> str:
    attempts = [conversation]
    if len(conversation) >= 2 and conversation[0]["role"] == "system":
        # Templates such as Gemma's reject the system role: prepend it to the first turn.
        system, first, *rest = conversation
        content: Any = (
            f"{system['content']}\n\n{first['content']}"
            if isinstance(first["content"], str)
            else [*system["content"], {"type": "text", "text": "\n\n"}, *first["content"]]
        )
        attempts.append([{"role": first["role"], "content": content}, *rest])
    error: Exception | None = None
    for attempt in attempts:
        try:
            return _template_owner(loaded).apply_chat_template(
                attempt, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:
            error = error or exc
    raise LLMError(
        "chat_template",
        f"the chat template of the model in {path} failed: {shorten(str(error))}",
    )


def _fallback(conversation: list[dict[str, Any]]) -> str:
    import jinja2

    template = jinja2.Environment(autoescape=False).from_string(FALLBACK_TEMPLATE)
    return template.render(messages=conversation, add_generation_prompt=True)
