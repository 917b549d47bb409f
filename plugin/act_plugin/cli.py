"""``ls-act``: the command line. Thin shells over library functions; logs go to stderr."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from label_studio_sdk import LabelStudio
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

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


ProjectOption = Annotated[int, typer.Option("--project", "-p", help="Label Studio project id.")]
LabelStudioUrlOption = Annotated[
    str, typer.Option(envvar="LABEL_STUDIO_URL", help="Label Studio URL.")
]
ApiKeyOption = Annotated[
    str,
    typer.Option(
        envvar="LABEL_STUDIO_API_KEY",
        help="Label Studio legacy token or personal access token.",
        show_default=False,
    ),
]
DEFAULT_LS_URL = "http://localhost:8080"


def _label_studio(url: str, api_key: str) -> LabelStudio:
    if not api_key:
        err.print("[red]error:[/] give --api-key or set LABEL_STUDIO_API_KEY")
        raise typer.Exit(2)
    return LabelStudio(base_url=url.rstrip("/"), api_key=api_key)


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
    project: ProjectOption,
    backend_url: Annotated[
        str, typer.Option(help="URL Label Studio uses to reach the backend.")
    ] = "http://127.0.0.1:9090",
    label_studio_url: LabelStudioUrlOption = DEFAULT_LS_URL,
    api_key: ApiKeyOption = "",
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
    from act_plugin.connect import ConnectError, backend_model_version, connect_backend

    client = _label_studio(label_studio_url, api_key)
    auth = (basic_auth_user, basic_auth_password or "") if basic_auth_user else None
    try:
        version = model_version or backend_model_version(backend_url, basic_auth=auth)
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


@app.command()
def annotate(
    project: ProjectOption,
    label_studio_url: LabelStudioUrlOption = DEFAULT_LS_URL,
    api_key: ApiKeyOption = "",
    config: ConfigOption = None,
    limit: Annotated[int | None, typer.Option(help="Annotate at most this many tasks.")] = None,
) -> None:
    """Annotate every task lacking a current ACT prediction (parallel, resumable).

    Exit codes: 0 all written, 3 some tasks failed (see the table), 130 interrupted.
    """
    from act_backend.predictor import Credentials, build_predictor
    from act_plugin.annotate import AnnotateError, annotate_project

    settings = _settings(config)
    _setup_logging("WARNING")
    client = _label_studio(label_studio_url, api_key)
    if settings.label_studio_url is None:  # uploaded media come from the same Label Studio
        settings = settings.model_copy(
            update={"label_studio_url": label_studio_url, "label_studio_api_key": api_key}
        )
    predictor = build_predictor(settings)
    with _task_progress("annotating") as (progress, bar):
        try:
            result = annotate_project(
                client,
                project,
                predictor,
                model_version=settings.resolved_model_version,
                credentials=Credentials(label_studio_url, api_key),
                rationale_field=settings.rationale_field,
                limit=limit,
                on_start=lambda n: progress.update(bar, total=n),
                on_task=lambda outcome: progress.advance(bar),
            )
        except AnnotateError as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from None
        finally:
            predictor.close()
    _print_annotate_summary(result)
    if result.interrupted:
        raise typer.Exit(130)
    if result.n_failed:
        raise typer.Exit(3)


@contextmanager
def _task_progress(description: str) -> Iterator[tuple[Progress, TaskID]]:
    """A rich progress bar on stderr; the total is set once known."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    ) as progress:
        yield progress, progress.add_task(description, total=None)


def _print_annotate_summary(result: Any) -> None:
    table = Table(title=f"ls-act annotate ({result.model_version})", show_header=False)
    table.add_row("tasks in project", str(result.n_tasks))
    table.add_row("already annotated (skipped)", str(result.n_skipped))
    table.add_row("predictions written", str(result.n_written))
    table.add_row("failed", str(result.n_failed))
    usage = result.usage
    table.add_row("LLM calls (cache hits)", f"{usage.calls} ({usage.cached})")
    table.add_row(
        "tokens (prompt + completion)", f"{usage.prompt_tokens} + {usage.completion_tokens}"
    )
    table.add_row("time", f"{result.seconds:.1f} s")
    for kind, count in result.errors.most_common():
        table.add_row(f"[red]error {kind}[/]", f"{count}, e.g. {result.examples[kind]}")
    if result.interrupted:
        table.add_row("[yellow]interrupted[/]", "run again to continue where it stopped")
    err.print(table)


@app.command("config")
def show_config(config: ConfigOption = None) -> None:
    """Print the settings in effect (secrets masked) as JSON."""
    settings = _settings(config)
    data = json.loads(settings.model_dump_json())
    data["model_version"] = settings.resolved_model_version
    typer.echo(json.dumps(data, indent=2))


def main() -> None:  # pragma: no cover - console entry point
    app()
