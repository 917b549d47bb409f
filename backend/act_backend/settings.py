"""Backend settings: defaults < TOML config file < environment variables < CLI flags.

Settings are read once, at the entry point (``ls-act serve``), and passed down; nothing in the
package reads the environment on its own. Every environment variable is listed in ``ENV_VARS``,
which is also the source of the configuration reference in docs/configuration.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .media.urls import redact_url
from .strategies import STRATEGIES, Strategy, get_strategy, served_by, strategy_problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# ``auto`` negotiates per endpoint and model; any other forces that dialect (``dialects``).
StructuredOutput = Literal[
    "auto",
    "json_schema",
    "json_object_schema",
    "structured_outputs",
    "guided_json",
    "json_object",
    "none",
]
Engine = Literal["openai", "transformers", "embedding"]

DEFAULT_ANNOTATOR_MODEL = "gpt-4o"
DEFAULT_CRITIC_MODEL = "gpt-4o-mini"
# With no LLM configured for a role, it runs offline on sentence embeddings (engines/embedding/).
OFFLINE_ENGINE = "embedding"
OFFLINE_MODEL = "all-MiniLM-L6-v2"
OFFLINE_CRITIC_STRATEGY = served_by(OFFLINE_ENGINE)[0]
#: Label Studio 1.23 abandons a /predict after ML_TIMEOUT_PREDICT seconds (default 100).
LABEL_STUDIO_ML_TIMEOUT = 100.0
#: The backend answers /predict by then (reading the body and sending the answer fit the rest).
DEFAULT_PREDICT_DEADLINE = LABEL_STUDIO_ML_TIMEOUT - 10.0


class SettingsError(ValueError):
    """The configuration is invalid; the message names the setting and where it came from."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EngineSettings(_Model):
    """One role (annotator or critic): which engine, which model, and how to sample.

    ``base_url``, ``api_key``, ``timeout``, ``max_retries`` and ``structured_output`` concern the
    ``openai`` engine; ``device`` and ``batch_size`` the local ``transformers`` engine, where
    ``model`` is a local path or a name in the local Hugging Face cache.
    """

    engine: Engine = "openai"
    model: str
    base_url: str | None = None
    api_key: SecretStr | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(1024, ge=1)
    # 4 attempts of 20 s + backoff = 83.5 s: one call with every retry fits the /predict deadline.
    timeout: float = Field(20.0, gt=0)
    max_retries: int = Field(3, ge=0, le=20)
    structured_output: StructuredOutput = "auto"
    device: str = "auto"
    batch_size: int = Field(8, ge=1, le=1024)

    def endpoint(self) -> str:
        """Where this role's calls go, in full: it keys caches and is never shown (may hold
        credentials or a query)."""
        if self.engine != "openai":
            return f"local ({self.engine})"
        return self.base_url or "https://api.openai.com/v1"

    def endpoint_label(self) -> str:
        """:meth:`endpoint` without credentials or query values (safe to show)."""
        return redact_url(self.endpoint()) if self.engine == "openai" else self.endpoint()

    def worst_case_seconds(self) -> float:
        """How long one call can take when every attempt times out: attempts × timeout + the
        backoff between them (``act_backend.retry``; a server's Retry-After comes on top)."""
        from .retry import BACKOFF_FIRST, BACKOFF_MAX  # imports openai: only when asked

        backoff = sum(min(BACKOFF_FIRST * 2**n, BACKOFF_MAX) for n in range(self.max_retries))
        return (self.max_retries + 1) * self.timeout + backoff


class CriticSettings(EngineSettings):
    """The critic role: an engine and one of its strategies (``strategies.STRATEGIES``)."""

    strategy: str = "cot"
    top_logprobs: int = Field(20, ge=1, le=20)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        get_strategy(value)
        return value

    def served_strategy(self) -> Strategy:
        """The registry entry of ``strategy``; SettingsError if ``engine`` cannot serve it."""
        problem = strategy_problem(self.strategy, self.engine)
        if problem is not None:
            raise SettingsError(f"setting 'critic.strategy' (env ACT_CRITIC_STRATEGY): {problem}")
        return STRATEGIES[self.strategy]


class Settings(_Model):
    annotator: EngineSettings = Field(
        default_factory=lambda: EngineSettings(model=DEFAULT_ANNOTATOR_MODEL)
    )
    critic: CriticSettings = Field(
        default_factory=lambda: CriticSettings(model=DEFAULT_CRITIC_MODEL)
    )
    annotator_reasoning: bool | None = None
    prompts_dir: Path | None = None
    concurrency: int = Field(128, ge=1, le=512)
    predict_deadline: float = Field(DEFAULT_PREDICT_DEADLINE, gt=0)
    cache: bool = True
    cache_dir: Path = Field(default_factory=lambda: _default_cache_dir(os.environ))
    label_studio_url: str | None = None
    label_studio_api_key: SecretStr | None = None
    allowed_media_hosts: list[str] = Field(default_factory=list)
    max_media_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    rationale_field: str = "act_rationale"
    basic_auth_user: str | None = None
    basic_auth_password: SecretStr | None = None
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    read_timeout: float = Field(30.0, gt=0)
    model_version: str | None = None
    log_level: str = "INFO"

    @field_validator("allowed_media_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @property
    def wants_annotator_reasoning(self) -> bool:
        """The annotator gives its reasoning when asked to, or when the critic argues against it."""
        if self.annotator_reasoning is not None:
            return self.annotator_reasoning
        return STRATEGIES[self.critic.strategy].shows_reasoning

    @property
    def offline_roles(self) -> tuple[str, ...]:
        """The roles served by the offline embedding engine (no LLM, nothing downloaded)."""
        roles = (("annotator", self.annotator), ("critic", self.critic))
        return tuple(name for name, role in roles if role.engine == OFFLINE_ENGINE)

    def offline_notice(self) -> str | None:
        """What to tell a user whose roles run on the offline default, or None."""
        if self.offline_default:
            return (
                "offline default: no LLM configured (no OPENAI_BASE_URL/OPENAI_API_KEY, "
                "ACT_<ROLE>_* or config file): annotating by zero-shot sentence embeddings "
                f"({OFFLINE_MODEL}) and criticizing with the {OFFLINE_CRITIC_STRATEGY} strategy; "
                "text <Choices> configs only. Set OPENAI_BASE_URL and OPENAI_API_KEY (or "
                "ACT_ANNOTATOR_ENGINE) for LLM annotation."
            )
        if self.offline_roles:
            role = self.offline_roles[0]
            return (
                f"{role}: offline ({OFFLINE_ENGINE}) because no LLM is configured for it; set "
                f"ACT_{role.upper()}_BASE_URL/ACT_{role.upper()}_API_KEY or OPENAI_*"
            )
        return None

    def basic_auth(self) -> tuple[str, str] | None:
        """(user, password) when basic authentication is configured, else None."""
        if not self.basic_auth_user:
            return None
        password = self.basic_auth_password
        return self.basic_auth_user, password.get_secret_value() if password else ""

    def deadline_notice(self) -> str | None:
        """A warning when one LLM call with its retries can outlive the /predict deadline."""
        for name in ("annotator", "critic"):
            role: EngineSettings = getattr(self, name)
            worst = role.worst_case_seconds()
            if role.engine == "openai" and worst > self.predict_deadline:
                env = f"ACT_{name.upper()}"
                return (
                    f"{name}: one call with its retries can take {worst:.0f} s ({env}_TIMEOUT "
                    f"{role.timeout:g} s x {role.max_retries + 1} attempts + backoff), more than "
                    f"the /predict deadline of {self.predict_deadline:g} s (ACT_PREDICT_DEADLINE); "
                    f"lower {env}_TIMEOUT or {env}_MAX_RETRIES"
                )
        return None

    @property
    def offline_default(self) -> bool:
        """Both roles run offline: what an empty configuration gives (see ``load_settings``)."""
        return len(self.offline_roles) == 2

    @property
    def resolved_model_version(self) -> str:
        """Stable name of what produced a prediction: annotator, critic and strategy.

        Give the ML backend in Label Studio this exact title, or its score column stays empty.
        """
        if self.model_version:
            return self.model_version
        return f"act-{self.annotator.model}+{self.critic.model}-{self.critic.strategy}"


# Environment variable -> dotted setting path. Engine settings exist for both roles.
_ENGINE_FIELDS = (
    "model",
    "base_url",
    "api_key",
    "temperature",
    "max_tokens",
    "timeout",
    "max_retries",
    "structured_output",
    "engine",
    "device",
    "batch_size",
)
ENV_VARS: dict[str, str] = {
    **{f"ACT_ANNOTATOR_{f.upper()}": f"annotator.{f}" for f in _ENGINE_FIELDS},
    **{f"ACT_CRITIC_{f.upper()}": f"critic.{f}" for f in _ENGINE_FIELDS},
    "ACT_CRITIC_STRATEGY": "critic.strategy",
    "ACT_CRITIC_TOP_LOGPROBS": "critic.top_logprobs",
    "ACT_ANNOTATOR_REASONING": "annotator_reasoning",
    "ACT_PROMPTS_DIR": "prompts_dir",
    "ACT_CONCURRENCY": "concurrency",
    "ACT_PREDICT_DEADLINE": "predict_deadline",
    "ACT_CACHE": "cache",
    "ACT_CACHE_DIR": "cache_dir",
    "LABEL_STUDIO_URL": "label_studio_url",
    "LABEL_STUDIO_API_KEY": "label_studio_api_key",
    "ACT_ALLOWED_MEDIA_HOSTS": "allowed_media_hosts",
    "ACT_MAX_MEDIA_BYTES": "max_media_bytes",
    "ACT_RATIONALE_FIELD": "rationale_field",
    "ACT_BASIC_AUTH_USER": "basic_auth_user",
    "ACT_BASIC_AUTH_PASSWORD": "basic_auth_password",
    "ACT_MAX_BODY_BYTES": "max_body_bytes",
    "ACT_READ_TIMEOUT": "read_timeout",
    "ACT_MODEL_VERSION": "model_version",
    "ACT_LOG_LEVEL": "log_level",
}
# The openai client's own variables serve both roles when no role-specific one is set.
OPENAI_FALLBACKS = {"OPENAI_BASE_URL": "base_url", "OPENAI_API_KEY": "api_key"}
CONFIG_ENV_VAR = "ACT_CONFIG"


def load_settings(
    config_path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build settings from an optional TOML file, the environment and explicit overrides.

    ``overrides`` uses dotted paths (``{"critic.strategy": "p_yes"}``) and wins over everything.
    A role for which nothing names an LLM (see ``_fill_role``) runs on the offline engine.
    """
    env = os.environ if env is None else env
    path = config_path or (Path(env[CONFIG_ENV_VAR]) if env.get(CONFIG_ENV_VAR) else None)
    data: dict[str, Any] = _read_toml(path) if path else {}
    for var, dotted in ENV_VARS.items():
        if env.get(var, "") != "":
            _set_dotted(data, dotted, env[var])
    for var, field in OPENAI_FALLBACKS.items():
        if env.get(var):
            for role in ("annotator", "critic"):
                data.setdefault(role, {}).setdefault(field, env[var])
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value)
    for role, default in (("annotator", DEFAULT_ANNOTATOR_MODEL), ("critic", DEFAULT_CRITIC_MODEL)):
        if isinstance(data.setdefault(role, {}), dict):
            _fill_role(role, data[role], default)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, path)) from None


def _fill_role(role: str, section: dict[str, Any], llm_model: str) -> None:
    """Default a role's engine, model and (critic) strategy.

    A role whose engine, model, base_url and api_key are all unset (file, ACT_<ROLE>_* and
    OPENAI_* alike), and for the critic whose strategy is unset or ``knn``, runs offline:
    engine ``embedding``, model all-MiniLM-L6-v2, critic strategy ``knn`` (the one the strategy
    registry gives that engine). A critic asked for ``knn`` without an engine gets ``embedding``
    too. Otherwise the LLM defaults apply.
    """
    strategy = section.get("strategy") if role == "critic" else None
    names_llm = any(section.get(k) for k in ("engine", "model", "base_url", "api_key"))
    if (not names_llm and strategy in (None, OFFLINE_CRITIC_STRATEGY)) or (
        strategy == OFFLINE_CRITIC_STRATEGY and not section.get("engine")
    ):
        section["engine"] = OFFLINE_ENGINE
    if section.get("engine") == OFFLINE_ENGINE:
        section.setdefault("model", OFFLINE_MODEL)
        if role == "critic":
            section.setdefault("strategy", OFFLINE_CRITIC_STRATEGY)
    section.setdefault("model", llm_model)


def _default_cache_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "label-studio-act"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def _describe(exc: ValidationError, path: Path | None) -> str:
    env_for = {dotted: var for var, dotted in ENV_VARS.items()}
    lines = []
    for err in exc.errors():
        dotted = ".".join(str(p) for p in err["loc"])
        where = f" (env {env_for[dotted]})" if dotted in env_for else ""
        shown = "***" if "key" in dotted or "password" in dotted else repr(err.get("input"))
        lines.append(f"setting '{dotted}'{where}: {err['msg']}; got {shown}")
    source = f" in {path} or the environment" if path else ""
    return f"invalid configuration{source}:\n  " + "\n  ".join(lines)
