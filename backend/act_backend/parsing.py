"""Strict parsing of model answers: a JSON object in, checked values out, or a TaskError.

Nothing is guessed: an answer outside the label set is an ``answer_out_of_set`` error, not the
nearest label. The only leniency is case and surrounding white space when that match is unique.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from .domain import TaskError
from .scoring import check_probability

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def json_object(text: str) -> dict[str, Any]:
    """The JSON object in a model's answer (bare, fenced, or the first one in prose)."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        value = _first_object(stripped)
    if not isinstance(value, dict):
        raise TaskError("answer_unparseable", f"expected a JSON object, got: {_quote(text)}")
    return value


def choose_labels(
    answer: dict[str, Any], labels: Sequence[str], *, multiple: bool
) -> tuple[str, ...]:
    """The label(s) an annotator chose, each one checked against the config's label set."""
    key = "labels" if multiple else "label"
    raw = answer.get(key)
    if multiple and isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list if multiple else str):
        raise TaskError("answer_unparseable", f"the answer has no valid '{key}': {_quote(answer)}")
    chosen = raw if multiple else [raw]
    matched = tuple(dict.fromkeys(match_label(str(value), labels) for value in chosen))
    if not matched:
        raise TaskError("answer_unparseable", "the answer chose no label")
    return matched


def match_label(value: str, labels: Sequence[str]) -> str:
    """``value`` if it is one of ``labels``; a unique case-insensitive match; else an error."""
    if value in labels:
        return value
    folded = [label for label in labels if label.strip().casefold() == value.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise TaskError(
        "answer_out_of_set",
        f"the model answered {_quote(value)}, which is not one of the labels [{', '.join(labels)}]",
    )


def text_field(answer: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    """A string field of the answer; missing or empty is an error when required."""
    value = answer.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if required:
        raise TaskError("answer_unparseable", f"the answer has no text '{key}': {_quote(answer)}")
    return None


def probability_field(answer: dict[str, Any], key: str) -> float:
    """A probability field of the answer, which must be a number in [0, 1]."""
    value = answer.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TaskError("answer_unparseable", f"the answer has no number '{key}': {_quote(answer)}")
    try:
        return check_probability(float(value), key)
    except ValueError as exc:
        raise TaskError("answer_unparseable", str(exc)) from None


def _first_object(text: str) -> Any:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
            return value
        except json.JSONDecodeError:
            continue
    raise TaskError("answer_unparseable", f"no JSON object in the answer: {_quote(text)}")


def _quote(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
