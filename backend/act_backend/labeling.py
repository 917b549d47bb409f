"""What a Label Studio labeling config asks of the annotator, parsed with the SDK's LabelInterface.

Supported: one ``<Choices>`` (single or multiple choice) or one free-text ``<TextArea>`` control
over ``<Text>``, ``<HyperText>`` and ``<Image>`` objects, plus an optional ``<TextArea>`` reserved
for the critic's rationale (by name, ``act_rationale`` unless configured otherwise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from label_studio_sdk.label_interface import LabelInterface

SUPPORTED_OBJECTS = ("Text", "HyperText", "Image")
SUPPORTED_CONTROLS = ("Choices", "TextArea")


class UnsupportedConfig(ValueError):
    """The labeling config asks for something this backend cannot serve; names the tag."""


@dataclass(frozen=True)
class InputField:
    """One object tag the annotator reads: its name, tag and the task data key it shows."""

    name: str
    tag: Literal["Text", "HyperText", "Image"]
    data_key: str


@dataclass(frozen=True)
class LabelingSpec:
    """The annotation task a config defines, reduced to what prompts and regions need."""

    kind: Literal["choices", "textarea"]
    control_name: str
    to_name: str
    labels: tuple[str, ...]
    label_hints: tuple[tuple[str, str], ...]
    multiple: bool
    inputs: tuple[InputField, ...]
    rationale_name: str | None
    rationale_to_name: str | None
    interface: Any  # LabelInterface; builds and validates regions

    @property
    def has_images(self) -> bool:
        return any(f.tag == "Image" for f in self.inputs)

    def rationale_region(self, task_id: int, text: str) -> dict[str, Any] | None:
        """The critic's rationale as a TextArea region, when the config reserves one."""
        if self.rationale_name is None:
            return None
        control = self.interface.get_control(self.rationale_name)
        region = control.label(text=[text], to_name=self.rationale_to_name)
        return _region_dict(region, f"act-{task_id}-{self.rationale_name}")


def parse_label_config(config: str, *, rationale_field: str = "act_rationale") -> LabelingSpec:
    """Parse a labeling config; raise UnsupportedConfig naming the tag that cannot be served."""
    return _parse_cached(config, rationale_field)


@lru_cache(maxsize=64)
def _parse_cached(config: str, rationale_field: str) -> LabelingSpec:
    if not config or not config.strip():
        raise UnsupportedConfig("the labeling config is empty")
    try:
        interface = LabelInterface(config)
    except Exception as exc:  # the SDK raises lxml and assorted errors on bad XML
        raise UnsupportedConfig(f"the labeling config could not be parsed: {exc}") from None

    inputs = tuple(_input_field(obj) for obj in interface.objects)
    if not inputs:
        raise UnsupportedConfig("the labeling config has no object tag (Text, HyperText or Image)")

    rationale = None
    targets = []
    for control in interface.controls:
        if control.tag == "TextArea" and control.name == rationale_field:
            rationale = control
        elif control.tag in SUPPORTED_CONTROLS:
            targets.append(control)
        else:
            raise UnsupportedConfig(
                f'<{control.tag} name="{control.name}"> is not supported: this backend serves '
                "one <Choices> or one free-text <TextArea> per config"
            )
    if len(targets) != 1:
        found = ", ".join(f'<{c.tag} name="{c.name}">' for c in targets) or "none"
        raise UnsupportedConfig(
            "the labeling config must have exactly one <Choices> or <TextArea> to fill "
            f"(besides the rationale TextArea '{rationale_field}'); found {found}"
        )
    target = targets[0]
    is_choices = target.tag == "Choices"
    if is_choices and not target.labels:
        raise UnsupportedConfig(f'<Choices name="{target.name}"> has no <Choice> values')
    if is_choices and target.attr.get("value"):
        raise UnsupportedConfig(
            f'<Choices name="{target.name}"> takes its choices from task data '
            "(value=...); only choices written in the config are supported"
        )
    hints = tuple(
        (label, attrs.attr.get("hint") or attrs.attr.get("alias") or "")
        for label, attrs in (target.labels_attrs or {}).items()
        if attrs.attr.get("hint") or attrs.attr.get("alias")
    )
    return LabelingSpec(
        kind="choices" if is_choices else "textarea",
        control_name=target.name,
        to_name=target.to_name[0],
        labels=tuple(target.labels) if is_choices else (),
        label_hints=hints,
        multiple=is_choices and target.is_multiple_choice,
        inputs=inputs,
        rationale_name=rationale.name if rationale else None,
        rationale_to_name=rationale.to_name[0] if rationale else None,
        interface=interface,
    )


def _input_field(obj: Any) -> InputField:
    if obj.tag not in SUPPORTED_OBJECTS:
        raise UnsupportedConfig(
            f'<{obj.tag} name="{obj.name}"> is not supported: objects may be '
            + ", ".join(f"<{t}>" for t in SUPPORTED_OBJECTS)
        )
    if not obj.value or not obj.value_is_variable:
        raise UnsupportedConfig(
            f'<{obj.tag} name="{obj.name}"> must take its value from task data (value="$field")'
        )
    if obj.tag == "Text" and obj.value_type == "url":
        raise UnsupportedConfig(f'<Text name="{obj.name}" valueType="url"> is not supported')
    return InputField(name=obj.name, tag=obj.tag, data_key=obj.value_name)


def _region_dict(region: Any, region_id: str) -> dict[str, Any]:
    region.id = region_id
    return json.loads(region.to_json())
