"""Pure prompt building: an item and a spec in, OpenAI chat messages out.

Templates are Jinja2 files in ``act_backend/prompts``; a directory given as ``prompts_dir`` is
searched first, so a team overrides one template by dropping a file of the same name there.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jinja2

from .domain import Item, MachineLabel
from .labeling import LabelingSpec

PACKAGE_PROMPTS = Path(__file__).parent / "prompts"

Message = dict[str, Any]


class PromptBook:
    """Renders the prompt templates; one instance per settings, safe to share across threads."""

    def __init__(self, prompts_dir: Path | None = None) -> None:
        search = [str(prompts_dir)] if prompts_dir else []
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([*search, str(PACKAGE_PROMPTS)]),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
        )
        self.fingerprint = self._fingerprint(search)

    def render(self, name: str, **context: Any) -> str:
        """Render one template to text, stripped."""
        return self._env.get_template(f"{name}.j2").render(**context).strip()

    def annotation_messages(
        self, item: Item, spec: LabelingSpec, *, reasoning: bool
    ) -> list[Message]:
        ctx = _context(item, spec)
        return [
            {"role": "system", "content": self.render("annotator_system")},
            _user_message(self.render("annotate", reasoning=reasoning, **ctx), item),
        ]

    def critic_messages(
        self, item: Item, spec: LabelingSpec, label: MachineLabel, *, strategy: str
    ) -> list[Message]:
        ctx = _context(item, spec)
        text = self.render(
            f"critic_{strategy}",
            annotation=label.display(),
            reasoning=label.reasoning or "",
            **ctx,
        )
        return [
            {"role": "system", "content": self.render("critic_system")},
            _user_message(text, item),
        ]

    def _fingerprint(self, search: list[str]) -> str:
        """Hash of every template's text, so cached answers die when a prompt changes."""
        digest = hashlib.sha256()
        for name in sorted(self._env.list_templates(extensions=["j2"])):
            source, _, _ = self._env.loader.get_source(self._env, name)  # type: ignore[union-attr]
            digest.update(name.encode() + b"\0" + source.encode() + b"\0")
        return digest.hexdigest()[:16]


def _context(item: Item, spec: LabelingSpec) -> dict[str, Any]:
    fields = []
    image_index = 0
    for inp in spec.inputs:
        if inp.tag == "Image":
            image_index += 1
            fields.append({"name": inp.name, "tag": inp.tag, "image_index": image_index})
        else:
            fields.append({"name": inp.name, "tag": inp.tag, "text": item.texts.get(inp.name, "")})
    return {
        "fields": fields,
        "image_count": image_index,
        "kind": spec.kind,
        "labels": list(spec.labels),
        "hints": dict(spec.label_hints),
        "multiple": spec.multiple,
    }


def _user_message(text: str, item: Item) -> Message:
    if not item.images:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in item.images.values()]
    return {"role": "user", "content": parts}
