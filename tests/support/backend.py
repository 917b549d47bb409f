"""Our backend for tests: settings pointing at the stub LLM, and the app on real HTTP."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from act_backend.app import create_app
from act_backend.settings import Settings, load_settings
from act_backend.testing.openai_server import OpenAIStubServer
from act_plugin.demo import serve_in_thread


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


def serve_backend(settings: Settings) -> AbstractContextManager[str]:
    """Our Flask app on real HTTP (127.0.0.1, a free port) in a thread; yields its base URL."""
    return serve_in_thread(settings, 0)


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
