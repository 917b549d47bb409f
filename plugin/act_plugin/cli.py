"""``ls-act``: the command line. Thin shells over library functions; logs go to stderr."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from act_backend.settings import Settings, SettingsError, load_settings
from rich.console import Console
from rich.logging import RichHandler

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


@app.command("config")
def show_config(config: ConfigOption = None) -> None:
    """Print the settings in effect (secrets masked) as JSON."""
    settings = _settings(config)
    data = json.loads(settings.model_dump_json())
    data["model_version"] = settings.resolved_model_version
    typer.echo(json.dumps(data, indent=2))


def main() -> None:  # pragma: no cover - console entry point
    app()
