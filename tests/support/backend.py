"""Our backend for tests: settings pointing at the stub LLM, and the app on real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from act_backend.app import create_app
from act_backend.settings import Settings, load_settings
from act_backend.testing.openai_server import OpenAIStubServer


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


def predict(llm: OpenAIStubServer, tmp_path: Path, config: str, tasks: list, **env: str) -> Any:
    """One ``POST /predict`` through the app's test client; the Flask response."""
    app = create_app(settings_for(llm, tmp_path, **env))
    try:
        response = app.test_client().post(
            "/predict", json={"tasks": tasks, "label_config": config, "project": "1.1"}
        )
    finally:
        app.config["ACT_SERVICE"].close()
    return response
