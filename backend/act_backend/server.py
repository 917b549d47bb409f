"""Run the backend: uvicorn behind our guarded ASGI front, or Flask's server with ``dev=True``."""

from __future__ import annotations

import logging
import signal
from typing import Any

import uvicorn
from flask import Flask

from .app import create_app
from .front import GuardedFront
from .settings import Settings

log = logging.getLogger(__name__)


def serve(
    settings: Settings, *, host: str, port: int, threads: int = 16, dev: bool = False
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM).

    One process: the LLM pool, the per-project /setup credentials and the counters live in it,
    and ``concurrency`` bounds LLM calls across all requests. ``threads`` request threads keep
    /health and /setup answering (Label Studio allows them 1 s and 3 s) while a long /predict
    runs; slow clients never hold one (see :mod:`act_backend.front`). On SIGTERM the requests
    in flight finish, then the service closes: every acknowledged webhook is stored first.
    """
    log.info(
        "label-studio-act serving model_version %r on http://%s:%d",
        settings.resolved_model_version,
        host,
        port,
    )
    notice = settings.deadline_notice()
    if notice:
        log.warning("%s", notice)
    app = create_app(settings)
    if dev:
        _serve_dev(app, host, port)
        return
    front = GuardedFront(
        app,
        max_body_bytes=settings.max_body_bytes,
        read_timeout=settings.read_timeout,
        threads=threads,
        basic_auth=settings.basic_auth(),
        on_shutdown=lambda: _close(app),
    )
    uvicorn.run(
        front,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,  # keep our logging set-up
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=30,
    )


def _close(app: Flask) -> None:
    app.config["ACT_SERVICE"].close()


def _serve_dev(app: Flask, host: str, port: int) -> None:
    """Flask's server; SIGTERM stops it like Ctrl-C, so the service closes either way."""

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        _close(app)
