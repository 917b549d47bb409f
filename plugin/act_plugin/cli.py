"""``ls-act``: the command line. Thin shells over library functions; logs go to stderr."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from act_backend.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    name="ls-act",
    help="ACT for Label Studio: LLM labels, critic suspicion scores, budgeted human review.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (also ACT_CONFIG).", exists=True),
]


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, overrides=overrides)
    except SettingsError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=err, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    # The HTTP clients log every request at INFO; keep them quiet (and credential-free).
    for noisy in ("httpx", "httpcore", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9090,
    config: ConfigOption = None,
    threads: Annotated[int, typer.Option(help="Request threads (gunicorn gthread).")] = 16,
    dev: Annotated[bool, typer.Option("--dev", help="Use Flask's development server.")] = False,
) -> None:
    """Serve the ML backend to Label Studio (predictions + critic suspicion scores)."""
    settings = _settings(config)
    _setup_logging(settings.log_level)
    from act_backend.server import serve as run

    err.print(
        f"model_version [bold]{settings.resolved_model_version}[/]  "
        "(give the ML backend this exact title in Label Studio, or run `ls-act connect`)"
    )
    run(settings, host=host, port=port, threads=threads, dev=dev)


@app.command()
def connect(
    project: Annotated[int, typer.Option(help="Label Studio project id.")],
    backend_url: Annotated[
        str, typer.Option(help="URL Label Studio uses to reach the backend.")
    ] = "http://127.0.0.1:9090",
    label_studio_url: Annotated[
        str, typer.Option(envvar="LABEL_STUDIO_URL", help="Label Studio URL.")
    ] = "http://localhost:8080",
    api_key: Annotated[
        str,
        typer.Option(
            envvar="LABEL_STUDIO_API_KEY",
            help="Label Studio legacy token or personal access token.",
            show_default=False,
        ),
    ] = "",
    model_version: Annotated[
        str | None,
        typer.Option(help="Defaults to what the backend reports at GET /health."),
    ] = None,
    basic_auth_user: Annotated[str | None, typer.Option(envvar="ACT_BASIC_AUTH_USER")] = None,
    basic_auth_password: Annotated[
        str | None, typer.Option(envvar="ACT_BASIC_AUTH_PASSWORD", show_default=False)
    ] = None,
) -> None:
    """Connect the backend to a project so the score column and suspicion ordering work."""
    from label_studio_sdk import LabelStudio

    from act_plugin.connect import ConnectError, backend_model_version, connect_backend

    if not api_key:
        err.print("[red]error:[/] give --api-key or set LABEL_STUDIO_API_KEY")
        raise typer.Exit(2)
    auth = (basic_auth_user, basic_auth_password or "") if basic_auth_user else None
    try:
        version = model_version or backend_model_version(backend_url, basic_auth=auth)
        client = LabelStudio(base_url=label_studio_url, api_key=api_key)
        connection = connect_backend(
            client, project, backend_url, model_version=version, basic_auth=auth
        )
    except ConnectError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    verb = "connected" if connection.created else "updated"
    err.print(
        f"{verb} ML backend {connection.ml_backend_id} for project {project}; "
        f"model_version [bold]{version}[/]. In the Data Manager: Actions → Retrieve predictions, "
        "sort Prediction score ascending, then Label → Label Tasks As Displayed."
    )


@app.command("config")
def show_config(config: ConfigOption = None) -> None:
    """Print the settings in effect (secrets masked) as JSON."""
    settings = _settings(config)
    data = json.loads(settings.model_dump_json())
    data["model_version"] = settings.resolved_model_version
    typer.echo(json.dumps(data, indent=2))


def main() -> None:  # pragma: no cover - console entry point
    app()
