"""Shared test helpers: a scripted LLM for the stub server, and our backend on real HTTP."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from act_backend.app import create_app
from act_backend.settings import Settings, load_settings
from act_backend.testing.openai_server import ChatRequest, OpenAIStubServer, Reply

# shared/ lies beside the checkout, here and in CI.
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "label-studio-1.23"


def fixture(name: str) -> dict[str, Any]:
    """One captured Label Studio 1.23.2 request or response."""
    return json.loads((FIXTURES / name).read_text())


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


def settings_for(llm: OpenAIStubServer, cache_dir: Path, **env: str) -> Settings:
    """Settings that point both roles at the stub server, with a private cache."""
    base = {
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": "sk-test-secret",
        "ACT_CACHE_DIR": str(cache_dir),
        "ACT_ANNOTATOR_MAX_RETRIES": "0",
        "ACT_CRITIC_MAX_RETRIES": "0",
    }
    return load_settings(env={**base, **env})


@contextmanager
def serve_backend(settings: Settings, host: str = "127.0.0.1") -> Iterator[str]:
    """Our Flask app on real HTTP in a thread; yields its base URL."""
    app = create_app(settings)
    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        app.config["ACT_SERVICE"].close()
