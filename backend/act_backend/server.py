"""Run the backend: gunicorn with threads in production, Flask's server with ``dev=True``."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from .app import create_app
from .settings import Settings

log = logging.getLogger(__name__)


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        self._app: Flask | None = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in {**self._options, "worker_exit": self._worker_exit}.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        # Built in the worker, after the fork: threads and SQLite handles don't survive a fork.
        self._app = self._factory()
        return self._app

    def _worker_exit(self, _arbiter: Any, _worker: Any) -> None:
        # Runs in the worker after its graceful stop (SIGTERM): store what was acknowledged.
        if self._app is not None:
            _close(self._app)


def _close(app: Flask) -> None:
    app.config["ACT_SERVICE"].close()


def _serve_dev(settings: Settings, host: str, port: int) -> None:
    """Flask's server; SIGTERM stops it like Ctrl-C, so the service closes either way."""
    app = create_app(settings)

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        _close(app)


def serve(
    settings: Settings, *, host: str, port: int, threads: int = 16, dev: bool = False
) -> None:
    """Serve until interrupted.

    One process: the LLM pool, the per-project /setup credentials and the counters live in it,
    and ``concurrency`` bounds LLM calls across all requests. ``threads`` request threads keep
    /health and /setup answering (Label Studio allows them 1 s and 3 s) while a long /predict
    runs. On SIGTERM the service closes after the requests in flight: every acknowledged
    webhook is stored first.
    """
    log.info(
        "label-studio-act serving model_version %r on http://%s:%d",
        settings.resolved_model_version,
        host,
        port,
    )
    if dev:
        _serve_dev(settings, host, port)
        return
    _Gunicorn(
        lambda: create_app(settings),
        {
            "bind": f"{host}:{port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": threads,
            # Label Studio waits up to 100 s for /predict; never cut a batch off before it does.
            "timeout": 300,
            "graceful_timeout": 30,
            "loglevel": settings.log_level.lower(),
            "accesslog": None,
        },
    ).run()
