"""The Flask app speaking Label Studio 1.23's ML-backend contract.

Routes stay thin: validate the request, hand it to the Service, shape the answer. No traceback
or secret ever reaches a response or a log line.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException

from . import __version__
from .access import CHALLENGE, UNAUTHORIZED_MESSAGE, basic_auth_ok
from .domain import TaskError, Usage
from .labeling import LabelingSpec, UnsupportedConfig, parse_label_config
from .predictor import Credentials, Predictor, build_predictor, to_prediction
from .records import answer_labels
from .redaction import redact, redact_data, remember, remember_settings
from .settings import Settings
from .webhook import WebhookRecorder, reviewed_task

log = logging.getLogger(__name__)

#: Request bodies nested deeper are refused (400): deep nesting exhausts the parser's stack.
MAX_JSON_DEPTH = 64


@dataclass
class Service:
    """Everything the routes use, built once from settings."""

    settings: Settings
    predictor: Predictor
    webhooks: WebhookRecorder
    model_version: str
    _credentials: dict[str, Credentials] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def remember_setup(self, project: str, url: str | None, token: str | None) -> None:
        remember(token)  # masked in every message from now on
        with self._lock:
            self._credentials[_project_id(project)] = Credentials(url, token)

    def credentials_for(self, project: Any) -> Credentials:
        with self._lock:
            return self._credentials.get(_project_id(project), Credentials())

    def spec(self, label_config: str) -> LabelingSpec:
        """The parsed config, if the engines can serve it; UnsupportedConfig otherwise."""
        spec = parse_label_config(label_config, rationale_field=self.settings.rationale_field)
        try:
            self.predictor.check(spec)
        except TaskError as exc:
            raise UnsupportedConfig(exc.message) from None
        return spec

    def describe(self) -> dict[str, Any]:
        """What GET /health shows: engines, endpoints (no credentials), counters."""
        s = self.settings
        health = {
            "status": "UP",
            "model_class": "ACT",
            "version": __version__,
            "model_version": self.model_version,
            "annotator": {
                "engine": s.annotator.engine,
                "model": s.annotator.model,
                "endpoint": s.annotator.endpoint_label(),
            },
            "critic": {
                "engine": s.critic.engine,
                "model": s.critic.model,
                "endpoint": s.critic.endpoint_label(),
                "strategy": s.critic.strategy,
            },
            "offline_roles": list(s.offline_roles),
            "notice": s.offline_notice(),
            "stats": self.predictor.stats.snapshot(),
            "webhooks": self.webhooks.counts(),
            "predict_deadline": s.predict_deadline,
        }
        return redact_data(health)

    def close(self) -> None:
        self.predictor.close()
        self.webhooks.close()


def build_service(settings: Settings) -> Service:
    """Wire the prediction pipeline and the webhook recorder from settings; reviewers'
    annotations reaching the webhook are given to the critic (:func:`learn_from_review`)."""
    remember_settings(settings)
    predictor = build_predictor(settings)
    return Service(
        settings=settings,
        predictor=predictor,
        webhooks=WebhookRecorder(
            settings.cache_dir, on_event=lambda event: learn_from_review(predictor, event)
        ),
        model_version=settings.resolved_model_version,
    )


def learn_from_review(predictor: Predictor, payload: Any) -> bool:
    """Hand a reviewer's label from an annotation webhook event to the critic (the ``knn``
    critic remembers it as a human-labelled neighbour). False when the event is no review,
    its config is not served, or its label is not a set of the config's choices."""
    reviewed = reviewed_task(payload)
    if reviewed is None:
        return False
    task, config, result = reviewed
    try:
        spec = parse_label_config(config)
    except (UnsupportedConfig, ValueError):
        return False
    labels = answer_labels(result, spec) if spec.kind == "choices" else None
    if not labels:
        return False
    try:
        return predictor.learn(task, spec, labels)
    except TaskError:
        return False


def create_app(settings: Settings, *, service: Service | None = None) -> Flask:
    """Application factory: one app per settings; tests build their own."""
    app = Flask(__name__)
    app.config["ACT_SERVICE"] = service or build_service(settings)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_blueprint(routes)
    app.before_request(_check_basic_auth)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


routes = Blueprint("act", __name__)


def _service() -> Service:
    return current_app.config["ACT_SERVICE"]


@routes.get("/")
@routes.get("/health")
def health() -> Any:
    return jsonify(_service().describe())


@routes.post("/setup")
def setup() -> Any:
    body = _json_body()
    service = _service()
    schema = body.get("schema")
    if schema:
        try:
            service.spec(schema)
        except UnsupportedConfig as exc:
            return _error(422, f"cannot serve this labeling config: {exc}")
    if body.get("project") is not None:
        service.remember_setup(str(body["project"]), body.get("hostname"), body.get("access_token"))
    return jsonify({"model_version": service.model_version})


@routes.post("/predict")
def predict() -> Any:
    """Predictions for Label Studio's tasks, answered by the deadline (``predict_deadline``)."""
    started = time.monotonic()
    body = _json_body()
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        return _error(400, "'tasks' must be a non-empty list of Label Studio tasks")
    label_config = body.get("label_config")
    if not isinstance(label_config, str):
        return _error(400, "'label_config' (the project's labeling config) is missing")
    service = _service()
    try:
        spec = service.spec(label_config)
    except UnsupportedConfig as exc:
        return _error(422, f"cannot serve this labeling config: {exc}")
    outcomes = service.predictor.predict(
        tasks,
        spec,
        service.credentials_for(body.get("project")),
        deadline=started + service.settings.predict_deadline,
    )
    results = [to_prediction(o, spec, service.model_version) for o in outcomes]
    errors = [
        {"task": o.task_id, "kind": o.error.kind, "message": redact(o.error.message)}
        for o in outcomes
        if o.error is not None
    ]
    total = sum((o.usage for o in outcomes), Usage())
    usage = {
        "total": total.as_dict(),
        "tasks": [{"task": o.task_id, **o.usage.as_dict()} for o in outcomes],
    }
    return jsonify(
        {
            "results": results,
            "model_version": service.model_version,
            "errors": errors,
            "usage": usage,
        }
    )


@routes.post("/webhook")
def webhook() -> Any:
    body = _json_body()
    queued = _service().webhooks.submit(body)
    return jsonify({"status": "queued" if queued else "dropped"}), 200 if queued else 503


@routes.get("/versions")
def versions() -> Any:
    return jsonify({"versions": [_service().model_version]})


def _json_body() -> dict[str, Any]:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # the parser itself ran out of stack
        body = None
        depth = MAX_JSON_DEPTH + 1
    else:
        depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise BadRequest(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar is 0), without recursion.

    >>> json_depth({"tasks": [{"data": {"text": "x"}}]})
    4
    """
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in node)
    return deepest


def _check_basic_auth() -> Any:
    """The same check as the ASGI front's, for the dev server and for tests of the app alone."""
    credentials = _service().settings.basic_auth()
    if credentials is None or basic_auth_ok(request.headers.get("Authorization"), *credentials):
        return None
    response = _error(401, UNAUTHORIZED_MESSAGE)
    response.headers["WWW-Authenticate"] = CHALLENGE
    return response


def _error(status: int, message: str) -> Any:
    response = jsonify({"error": message, "status": status})
    response.status_code = status
    return response


def _http_error(exc: HTTPException) -> Any:
    return _error(exc.code or 500, exc.description or exc.name)


def _unexpected_error(exc: Exception) -> Any:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error(500, f"internal error ({type(exc).__name__}); see the backend log")


def _project_id(project: Any) -> str:
    """Label Studio sends projects as "<id>.<created timestamp>"; the id is what matters."""
    return str(project).split(".", 1)[0]
