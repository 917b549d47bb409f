"""Configuration: file < environment < overrides, the openai client's own variables as fallback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from act_backend.engines import ENGINE_MODULES
from act_backend.settings import (
    DEFAULT_ANNOTATOR_MODEL,
    DEFAULT_CRITIC_MODEL,
    ENV_VARS,
    Engine,
    SettingsError,
    load_settings,
)
from act_backend.strategies import STRATEGIES
from act_plugin.cli import app


def test_only_openai_variables_give_sensible_defaults_for_both_roles():
    s = load_settings(env={"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1", "OPENAI_API_KEY": "k"})
    for role in (s.annotator, s.critic):
        assert role.base_url == "http://127.0.0.1:8000/v1"
        assert role.api_key.get_secret_value() == "k"
    assert (s.annotator.model, s.critic.model) == (DEFAULT_ANNOTATOR_MODEL, DEFAULT_CRITIC_MODEL)
    assert s.critic.strategy == "cot"
    assert s.resolved_model_version == f"act-{DEFAULT_ANNOTATOR_MODEL}+{DEFAULT_CRITIC_MODEL}-cot"


def test_roles_are_configured_independently_and_env_beats_file(tmp_path):
    config = tmp_path / "act.toml"
    config.write_text(
        'concurrency = 4\n[annotator]\nmodel = "big"\ntemperature = 0.3\n'
        '[critic]\nmodel = "small"\nstrategy = "naive"\nbase_url = "http://127.0.0.1:1/v1"\n'
    )
    env = {"ACT_CRITIC_STRATEGY": "p_yes", "OPENAI_BASE_URL": "http://127.0.0.1:2/v1"}
    s = load_settings(config, env=env)
    assert s.annotator.model == "big" and s.annotator.temperature == 0.3
    assert s.annotator.base_url == "http://127.0.0.1:2/v1"  # fallback fills what the file left
    assert s.critic.base_url == "http://127.0.0.1:1/v1"  # the file's own value wins over it
    assert s.critic.strategy == "p_yes" and s.concurrency == 4
    assert load_settings(config, env=env, overrides={"concurrency": 9}).concurrency == 9


def test_devils_advocate_turns_on_annotator_reasoning():
    assert not load_settings(env={}).wants_annotator_reasoning
    assert load_settings(env={"ACT_CRITIC_STRATEGY": "devils_advocate"}).wants_annotator_reasoning


def test_the_strategy_registry_names_real_engines_and_prompt_templates():
    engines = set(get_args(Engine))
    assert set(ENGINE_MODULES) == engines
    prompts = Path(__file__).parents[2] / "backend" / "act_backend" / "prompts"
    for strategy in STRATEGIES.values():
        assert strategy.engines and set(strategy.engines) <= engines, strategy.name
        if strategy.kind == "black-box":
            assert strategy.score_field in strategy.fields, strategy.name
        if strategy.kind != "knn":
            assert (prompts / f"critic_{strategy.template}.j2").is_file(), strategy.name


def test_a_strategy_its_engine_cannot_serve_names_the_engine_that_can():
    s = load_settings(env={"ACT_CRITIC_ENGINE": "openai", "ACT_CRITIC_STRATEGY": "perplexity"})
    with pytest.raises(SettingsError) as exc:
        s.critic.served_strategy()
    message = str(exc.value)
    assert "ACT_CRITIC_STRATEGY" in message and "ACT_CRITIC_ENGINE=transformers" in message
    assert "the openai engine serves only 'naive', 'confidence'" in message


def test_invalid_values_name_the_setting_and_variable_but_not_secrets():
    with pytest.raises(SettingsError) as exc:
        load_settings(env={"ACT_CRITIC_STRATEGY": "vibes", "ACT_CONCURRENCY": "-3"})
    message = str(exc.value)
    assert "critic.strategy" in message and "ACT_CRITIC_STRATEGY" in message
    assert "'vibes'" in message and "ACT_CONCURRENCY" in message


def test_missing_or_broken_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("concurrency = [")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad, env={})


def test_every_documented_variable_is_in_the_reference():
    reference = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    missing = [var for var in ENV_VARS if var not in reference]
    assert missing == []


def test_config_command_masks_secrets(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("ACT_BASIC_AUTH_PASSWORD", "hunter2")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert "sk-very-secret" not in result.output and "hunter2" not in result.output
    data = json.loads(result.output)
    assert data["annotator"]["api_key"] == "**********"
    assert data["model_version"].startswith("act-")
