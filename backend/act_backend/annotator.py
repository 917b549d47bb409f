"""The annotator: asks the LLM for the machine label of one item, constrained to the label set."""

from __future__ import annotations

from typing import Any

from .domain import Item, MachineLabel, TaskError, Usage
from .labeling import LabelingSpec
from .llm import CachedChat, Completion
from .parsing import choose_labels, json_object, text_field
from .prompting import PromptBook


class LLMAnnotator:
    """Labels items through a chat model; ``reasoning`` asks for its reasoning first."""

    def __init__(self, chat: CachedChat, prompts: PromptBook, *, reasoning: bool = False) -> None:
        self.chat = chat
        self.prompts = prompts
        self.reasoning = reasoning

    def annotate(self, item: Item, spec: LabelingSpec) -> tuple[MachineLabel, Usage]:
        messages = self.prompts.annotation_messages(item, spec, reasoning=self.reasoning)

        def parse(completion: Completion) -> MachineLabel:
            answer = json_object(completion.text)
            reasoning = text_field(answer, "reasoning", required=False) if self.reasoning else None
            if spec.kind == "choices":
                labels = choose_labels(answer, spec.labels, multiple=spec.multiple)
                return MachineLabel(labels=labels, reasoning=reasoning)
            answer_text = text_field(answer, "answer")
            if answer_text is None:  # pragma: no cover - text_field raises when required
                raise TaskError("answer_unparseable", "empty answer")
            return MachineLabel(answer=answer_text, reasoning=reasoning)

        label, completion = self.chat.ask(
            messages,
            parse,
            schema=annotation_schema(spec, reasoning=self.reasoning),
            schema_name="annotation",
        )
        return label, completion.usage


def annotation_schema(spec: LabelingSpec, *, reasoning: bool) -> dict[str, Any]:
    """JSON schema of the annotator's answer: the label set as an enum (strict-mode safe)."""
    props: dict[str, Any] = {"reasoning": {"type": "string"}} if reasoning else {}
    if spec.kind == "choices" and spec.multiple:
        props["labels"] = {"type": "array", "items": {"type": "string", "enum": list(spec.labels)}}
    elif spec.kind == "choices":
        props["label"] = {"type": "string", "enum": list(spec.labels)}
    else:
        props["answer"] = {"type": "string"}
    return object_schema(props)


def object_schema(props: dict[str, Any]) -> dict[str, Any]:
    """An object schema in the form OpenAI's strict structured outputs accept."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }
