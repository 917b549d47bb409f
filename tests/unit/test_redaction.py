"""Secrets never reach a message: /predict errors, /health, logs, `ls-act config`, the summary."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import uuid
from collections import Counter

import pytest
import requests
from typer.testing import CliRunner

from act_backend.domain import Usage
from act_backend.redaction import RedactingFilter, install_log_redaction, redact, remember
from act_backend.testing.openai_server import OpenAIStubServer, Reply
from act_plugin import cli
from act_plugin.annotate import AnnotateResult
from tests.support.backend import serve_backend, settings_for
from tests.support.configs import TEXT_SINGLE
from tests.support.llm import ScriptedLLM, is_critic


def secret(name: str) -> str:
    """A value no other test uses, so that only this test's redaction can hide it."""
    return f"{name}-{uuid.uuid4().hex}"


@pytest.fixture
def llm():
    with OpenAIStubServer() as server:
        yield server


def test_an_endpoint_echoing_every_secret_gets_none_into_errors_health_or_logs(
    llm, tmp_path, caplog
):
    keys = {role: secret(f"sk-{role}") for role in ("annotator", "critic")}
    ls_key, password, token = secret("ls-key"), secret("pw"), secret("setup-token")
    url_password = secret("url-pw")

    def echo(req):  # a proxy that quotes what it was sent, and more, in its 401
        if is_critic(req):
            seen = req.headers.get("authorization")
            echoed = f"{keys['annotator']} {ls_key} {password} {token}"
            return Reply(status=401, content=f"bad key {seen} ({echoed})")
        return ScriptedLLM(default_label="neutral")(req)

    llm.set_responder(echo)
    caplog.handler.addFilter(RedactingFilter())  # what `ls-act serve` puts on its handler
    caplog.set_level(logging.DEBUG)
    settings = settings_for(
        llm,
        tmp_path,
        ACT_ANNOTATOR_BASE_URL=llm.base_url.replace("://", f"://user:{url_password}@"),
        ACT_CRITIC_BASE_URL=llm.base_url,
        ACT_ANNOTATOR_API_KEY=keys["annotator"],
        ACT_CRITIC_API_KEY=keys["critic"],
        LABEL_STUDIO_API_KEY=ls_key,
        ACT_BASIC_AUTH_USER="ls",
        ACT_BASIC_AUTH_PASSWORD=password,
    )
    with serve_backend(settings) as url, requests.Session() as http:
        http.auth = ("ls", password)
        setup = {"project": "1.1", "schema": TEXT_SINGLE, "access_token": token}
        assert http.post(url + "/setup", json=setup, timeout=10).ok
        body = {"tasks": [{"id": 1, "data": {"text": "x"}}], "label_config": TEXT_SINGLE}
        predict = http.post(url + "/predict", json={**body, "project": "1.1"}, timeout=30)
        health = http.get(url + "/health", timeout=10)
    error = predict.json()["errors"][0]
    assert error["kind"] == "llm_auth" and "bad key Bearer ***" in error["message"]
    assert health.json()["annotator"]["endpoint"] == llm.base_url  # without user:password
    seen = predict.text + health.text + caplog.text
    assert "bad key" in caplog.text  # the echo was logged, masked
    for value in (*keys.values(), ls_key, password, token, url_password):
        assert value not in seen


def test_config_shows_no_key_password_or_url_credentials(monkeypatch):
    values = [secret("sk"), secret("ls"), secret("pw"), secret("url-pw"), secret("q")]
    api_key, ls_key, password, url_password, query_key = values
    env = {
        "OPENAI_API_KEY": api_key,
        "OPENAI_BASE_URL": f"https://me:{url_password}@llm.example.com/v1?key={query_key}",
        "LABEL_STUDIO_API_KEY": ls_key,
        "ACT_BASIC_AUTH_PASSWORD": password,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli.app, ["config"])
    assert result.exit_code == 0, result.output
    assert not [v for v in values if v in result.output]
    data = json.loads(result.output)
    assert data["critic"]["base_url"] == "https://llm.example.com/v1?key=…"


def test_the_annotate_summary_masks_secrets_in_error_examples(capsys):
    key = secret("sk")
    remember(key)
    result = AnnotateResult(model_version="v", usage=Usage(), errors=Counter(llm_auth=1))
    result.examples["llm_auth"] = f"task 1: HTTP 401: Incorrect API key provided: {key}"
    cli._print_annotate_summary(result)
    shown = capsys.readouterr().err
    assert key not in shown and "***" in shown


def test_the_log_filter_masks_messages_arguments_and_tracebacks():
    key, bearer = secret("sk"), secret("derived-token")
    remember(key)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    install_log_redaction(handler)
    install_log_redaction(handler)  # once per handler
    logger = logging.getLogger(f"test-redaction-{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("sent %s to %s", key, "http://u:p4ss@h/v1")
    try:
        raise RuntimeError(f"upstream said Authorization: Bearer {bearer}")
    except RuntimeError:
        logger.exception("failed")
    text = stream.getvalue()
    assert len(handler.filters) == 1
    assert key not in text and "p4ss" not in text and bearer not in text
    assert "sent *** to http://***@h/v1" in text and "Bearer ***" in text


def test_credentials_in_an_authorization_header_are_masked_unremembered():
    ls_key = "0123456789abcdef0123456789abcdef01234567"
    echoed = f"proxy: Authorization: Token {ls_key}; Bearer {secret('jwt')}; Basic dXNlcjpwYXNz"
    shown = redact(echoed)
    assert ls_key not in shown and "dXNlcjpwYXNz" not in shown
    assert shown.count("***") == 3 and "Token ***" in shown
    prose = "Token budget exceeded; token counting is off"
    assert redact(prose) == prose


def test_short_values_are_not_masked_and_longest_secrets_win():
    remember("ab", f"{secret('k')}")
    assert redact("a tab") == "a tab"
    long = secret("abc")
    remember(long[:8], long)
    assert redact(f"[{long}]") == "[***]"


def test_commands_without_a_logging_set_up_still_log_redacted():
    key = secret("sk")
    script = (
        "import logging, act_plugin.cli\n"
        "from act_backend.redaction import remember\n"
        f"remember({key!r})\n"
        f"logging.getLogger('act_plugin.sync').warning('retrying with %s', {key!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "retrying with ***" in done.stderr and key not in done.stderr
