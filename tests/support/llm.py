"""A scripted LLM for the stub OpenAI-compatible server: answers keyed by the item's text."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from act_backend.testing.openai_server import ChatRequest, Reply


def is_critic(req: ChatRequest) -> bool:
    """Critic requests are the ones whose prompt shows an existing annotation."""
    return "The annotator chose:" in req.text or "The annotator answered:" in req.text


@dataclass
class ScriptedLLM:
    """Answers annotator and critic calls from rules keyed by a substring of the item text.

    ``labels``: substring → label the annotator gives (first match wins; else ``default_label``).
    ``suspicion``: substring → probability_wrong / P(yes) the critic gives (else ``default_p``).
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    suspicion: Mapping[str, float] = field(default_factory=dict)
    default_label: str | None = None
    default_p: float = 0.1
    answer_text: str = "blue"

    def __call__(self, req: ChatRequest) -> Reply | str:
        if is_critic(req):
            return self._critic(req)
        return self._annotator(req)

    def _lookup(self, table: Mapping[str, Any], text: str, default: Any) -> Any:
        return next((v for k, v in table.items() if k in text), default)

    def _annotator(self, req: ChatRequest) -> str:
        props = (req.json_schema or {}).get("properties", {})
        answer: dict[str, Any] = {}
        if "reasoning" in props or '"reasoning"' in req.text:
            answer["reasoning"] = "It looks like this because of its wording."
        if "answer" in props or '"answer"' in req.text:
            answer["answer"] = self.answer_text
            return json.dumps(answer)
        label = self._lookup(self.labels, req.text, self.default_label)
        if "labels" in props:
            answer["labels"] = [label]
        else:
            answer["label"] = label
        return json.dumps(answer)

    def _critic(self, req: ChatRequest) -> Reply | str:
        p = float(self._lookup(self.suspicion, req.text, self.default_p))
        if req.logprobs:
            yes, no = max(p, 1e-9), max(1 - p, 1e-9)
            top = (
                {"No": math.log(no), "Yes": math.log(yes)}
                if no >= yes
                else {"Yes": math.log(yes), "No": math.log(no)}
            )
            return Reply(top_logprobs=[top])
        props = (req.json_schema or {}).get("properties", {})
        if "confidence" in props or '"confidence"' in req.text:
            return json.dumps({"confidence": 1 - p, "rationale": "checked"})
        answer: dict[str, Any] = {}
        for key in ("reasoning", "counterargument"):
            if key in props or f'"{key}"' in req.text:
                answer[key] = "step by step"
        answer["probability_wrong"] = p
        answer["rationale"] = f"p={p}"
        return json.dumps(answer)
