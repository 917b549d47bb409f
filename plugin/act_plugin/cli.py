"""``ls-act``: the command line. Thin shells over library functions; logs go to stderr."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from label_studio_sdk import LabelStudio
from pydantic import SecretStr
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
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

from act_backend.media import redact_url
from act_backend.redaction import (
    install_log_redaction,
    redact,
    redact_data,
    remember,
    remember_settings,
)
from act_backend.settings import Settings, SettingsError, load_settings
from act_plugin.act_math import DEFAULT_FLOOR
from act_plugin.scale.cli import scale_app

app = typer.Typer(
    name="ls-act",
    help="ACT for Label Studio: LLM labels, critic suspicion scores, budgeted human review.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(scale_app, name="scale")
err = Console(stderr=True)
if logging.lastResort is not None:  # what prints the warnings of commands with no logging set-up
    install_log_redaction(logging.lastResort)

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
DEFAULT_DEMO_DIR = Path.home() / ".local" / "share" / "label-studio-act" / "demo"


def _error(message: object) -> None:
    """An error line on stderr, with every known secret masked."""
    err.print(f"[red]error:[/] {escape(redact(str(message)))}")  # "[offline]" is no markup


def _label_studio(url: str, api_key: str) -> LabelStudio:
    remember(api_key)
    if not api_key:
        err.print("[red]error:[/] give --api-key or set LABEL_STUDIO_API_KEY")
        raise typer.Exit(2)
    return LabelStudio(base_url=url.rstrip("/"), api_key=api_key)


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        settings = load_settings(config, overrides=overrides)
    except SettingsError as exc:
        _error(exc)
        raise typer.Exit(2) from None
    remember_settings(settings)
    return settings


def _connect(
    client: LabelStudio,
    project: int,
    backend_url: str,
    auth: tuple[str, str] | None,
    model_version: str | None = None,
) -> Any:
    """Connect the backend under the model_version it reports (or the one given)."""
    remember(auth[1] if auth else None)
    from act_plugin.connect import ConnectError, backend_model_version, connect_backend

    try:
        version = model_version or backend_model_version(backend_url, basic_auth=auth)
        return connect_backend(client, project, backend_url, model_version=version, basic_auth=auth)
    except ConnectError as exc:
        _error(exc)
        raise typer.Exit(1) from None


def _kv_table(title: str) -> Table:
    """A two-column summary table whose values wrap instead of being cut (URLs, commands)."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    return table


def _check_engines(settings: Settings) -> None:
    """Build the engines once up front, so a bad engine setting is a message, not a traceback."""
    from act_backend.predictor import build_predictor

    try:
        build_predictor(settings).close()
    except (SettingsError, ValueError) as exc:
        _error(exc)
        raise typer.Exit(2) from None


def _setup_logging(level: str) -> None:
    """Log to stderr, every line redacted (:mod:`act_backend.redaction`)."""
    handler = RichHandler(console=err, show_path=False, rich_tracebacks=False)
    install_log_redaction(handler)
    logging.basicConfig(
        level=level.upper(), format="%(name)s: %(message)s", handlers=[handler], force=True
    )
    # The HTTP clients and the demo's request log write a line per request at INFO; keep them
    # quiet (and credential-free). Model loading shows no progress bars of its own.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for noisy in ("httpx", "httpcore", "openai", "werkzeug"):
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
    if settings.offline_notice():
        err.print(f"[yellow]{settings.offline_notice()}[/]")
    _check_engines(settings)
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
    client = _label_studio(label_studio_url, api_key)
    auth = (basic_auth_user, basic_auth_password or "") if basic_auth_user else None
    connection = _connect(client, project, backend_url, auth, model_version)
    version = connection.model_version
    verb = "connected" if connection.created else "updated"
    err.print(
        f"{verb} ML backend {connection.ml_backend_id} for project {project}; "
        f"model_version [bold]{version}[/]. In the Data Manager: Actions → Retrieve predictions, "
        "sort Prediction score ascending, then Label → Label Tasks As Displayed."
    )


@app.command()
def setup(
    project: ProjectOption,
    backend_url: Annotated[
        str, typer.Option(help="URL Label Studio uses to reach the backend.")
    ] = "http://127.0.0.1:9090",
    label_studio_url: LabelStudioUrlOption = DEFAULT_LS_URL,
    api_key: ApiKeyOption = "",
    basic_auth_user: Annotated[str | None, typer.Option(envvar="ACT_BASIC_AUTH_USER")] = None,
    basic_auth_password: Annotated[
        str | None, typer.Option(envvar="ACT_BASIC_AUTH_PASSWORD", show_default=False)
    ] = None,
) -> None:
    """Wire a project: connect the backend and create the "most suspicious first" view."""
    from act_plugin.review import ReviewError, ensure_suspicious_view

    client = _label_studio(label_studio_url, api_key)
    auth = (basic_auth_user, basic_auth_password or "") if basic_auth_user else None
    connection = _connect(client, project, backend_url, auth)
    version = connection.model_version
    try:
        view_id = ensure_suspicious_view(client, project)
    except ReviewError as exc:
        _error(exc)
        raise typer.Exit(1) from None
    base = label_studio_url.rstrip("/")
    table = _kv_table(f"project {project} is wired for ACT")
    table.add_row("ML backend", f"{backend_url} (id {connection.ml_backend_id}, title {version})")
    table.add_row(
        "view", f'"ACT most suspicious first": {base}/projects/{project}/data?tab={view_id}'
    )
    table.add_row(
        "1. machine labels",
        f"ls-act annotate --project {project}  (or Data Manager → "
        "select tasks → Actions → Retrieve predictions)",
    )
    table.add_row("2. review sample", f"ls-act review --project {project} --budget 0.2")
    table.add_row(
        "3. reviewers",
        'open the "ACT review sample" tab, then Label → '
        '"Label Tasks As Displayed" (most suspicious first)',
    )
    table.add_row(
        "4. training set", f"ls-act sync --project {project} --out training-set, then ls-act report"
    )
    err.print(table)


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
            update={
                "label_studio_url": label_studio_url,
                "label_studio_api_key": SecretStr(api_key),
            }
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
            _error(exc)
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


def _stage_progress(progress: Progress, bar: TaskID) -> Callable[[str, int, int], None]:
    """An ``on_progress(stage, done, total)`` callback that drives one progress bar."""

    def update(stage: str, done: int, total: int) -> None:
        progress.update(bar, description=stage, completed=done, total=total)

    return update


def _print_annotate_summary(result: Any) -> None:
    table = _kv_table(f"ls-act annotate ({result.model_version})")
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
        example = escape(redact(result.examples[kind]))
        table.add_row(f"[red]error {kind}[/]", f"{count}, e.g. {example}")
    if result.interrupted:
        table.add_row("[yellow]interrupted[/]", "run again to continue where it stopped")
    err.print(table)


@app.command()
def review(
    project: ProjectOption,
    budget: Annotated[
        float, typer.Option(help="Reviews to spend: a count (e.g. 50) or a fraction (e.g. 0.2).")
    ],
    rule: Annotated[
        str, typer.Option(help="normalized, exponential, thresholded or uniform.")
    ] = "thresholded",
    floor: Annotated[
        float,
        typer.Option(help="Share of the budget reviewed uniformly at random (keeps π > 0)."),
    ] = DEFAULT_FLOOR,
    beta: Annotated[float, typer.Option(help="Steepness of the exponential rule.")] = 10.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the draw (default: random).")] = None,
    redraw: Annotated[
        bool, typer.Option("--redraw", help="Replace an existing draw (never done without).")
    ] = False,
    rounds: Annotated[
        int,
        typer.Option(
            min=1,
            help="Spend the budget in this many rounds: each run draws the next round once the "
            "last one is reviewed, with the critic recalibrated on the reviews.",
        ),
    ] = 1,
    target_accuracy: Annotated[
        float | None,
        typer.Option(
            help="Stop drawing rounds once the training set is certified at least this "
            "accurate (e.g. 0.95).",
        ),
    ] = None,
    confidence: Annotated[
        float, typer.Option(help="Confidence of the certificate (with --target-accuracy).")
    ] = 0.95,
    search_rounds: Annotated[
        bool,
        typer.Option(
            "--search-rounds",
            help="With rounds: spend rounds 1 … K−1 on the most suspicious tasks only and keep "
            "the floor's random share for the last round, the audit. Trains better; the "
            "label-quality interval comes with the last round; no --target-accuracy.",
        ),
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="With rounds: wait for the reviewers and go on until the end."
        ),
    ] = False,
    poll_seconds: Annotated[
        float, typer.Option(min=1.0, help="With --watch: how often to look for new reviews.")
    ] = 30.0,
    label_studio_url: LabelStudioUrlOption = DEFAULT_LS_URL,
    api_key: ApiKeyOption = "",
) -> None:
    """Draw the budgeted review sample, store it in Label Studio, and queue it for reviewers."""
    from act_plugin.review import ReviewError, draw_sample

    client = _label_studio(label_studio_url, api_key)
    count: int | float = int(budget) if budget >= 1 and float(budget).is_integer() else budget
    if rounds > 1 or target_accuracy is not None:
        plan = dict(budget=count, rounds=rounds, target=target_accuracy, confidence=confidence,
                    rule=rule, floor=floor, beta=beta, seed=seed, redraw=redraw,
                    search_rounds=search_rounds)  # fmt: skip
        _review_rounds(client, project, plan, watch=watch, poll_seconds=poll_seconds)
        return
    with _task_progress("storing the draw") as (progress, bar):
        try:
            draw = draw_sample(
                client,
                project,
                budget=count,
                rule=rule,
                floor=floor,
                beta=beta,
                seed=seed,
                redraw=redraw,
                on_progress=_stage_progress(progress, bar),
            )
        except ReviewError as exc:
            _error(exc)
            raise typer.Exit(1) from None
    _print_draw(draw, project)


def _review_rounds(
    client: Any, project: int, plan: dict[str, Any], *, watch: bool, poll_seconds: float
) -> None:
    """`ls-act review --rounds/--target-accuracy`: the next step, or every step with --watch."""
    import time

    from act_plugin.review import ReviewError
    from act_plugin.rounds import review_in_rounds

    while True:
        with _task_progress("review in rounds") as (progress, bar):
            try:
                status = review_in_rounds(
                    client, project, **plan, on_progress=_stage_progress(progress, bar)
                )
            except ReviewError as exc:
                _error(exc)
                raise typer.Exit(1) from None
        plan["redraw"] = False  # a --redraw starts one new series, not one per step
        if status.draw is not None:
            _print_draw(status.draw, project)
        _print_round(status)
        if not watch or status.state in ("certified", "done"):
            return
        time.sleep(poll_seconds)


def _print_round(status: Any) -> None:
    table = _kv_table(f"review in rounds {status.series}")
    table.add_row("status", status.message)
    table.add_row("round", f"{status.round} of {status.rounds}")
    table.add_row("budget (expected reviews)", f"{status.spent:.1f} of {status.total_budget:.1f}")
    cert = status.certificate
    if cert is not None:
        verdict = "reached" if cert.met else "not reached"
        table.add_row(
            "certificate",
            f"training set ≥ {cert.lower_bound:.1%} accurate at {cert.confidence:.0%} "
            f"confidence; target {cert.target:.1%} {verdict} (α spent so far "
            f"{cert.alpha_spent:.3f}; valid whenever the review stops)",
        )
    err.print(table)


def _print_draw(draw: Any, project: int) -> None:
    table = _kv_table(f"review sample {draw.draw_id}")
    table.add_row(
        "status",
        "existing draw kept (use --redraw to replace it)"
        if draw.reused
        else "new draw stored in the tasks' meta",
    )
    table.add_row("rule", f"{draw.rule} (floor {draw.floor}, beta {draw.beta}, seed {draw.seed})")
    table.add_row("tasks in the draw", str(draw.n_tasks))
    table.add_row("expected reviews (Σπ)", f"{draw.expected:.1f}")
    table.add_row("drawn (Σδ)", str(draw.drawn))
    if draw.n_without_prediction:
        table.add_row("tasks without an ACT prediction", str(draw.n_without_prediction))
    if draw.note:
        table.add_row("note", draw.note)
    err.print(table)
    err.print(
        f'Reviewers: open the "ACT review sample" tab (view {draw.view_id}) in project {project}, '
        'then Label → "Label Tasks As Displayed" (most suspicious first).'
    )


@app.command()
def sync(
    project: ProjectOption,
    out: Annotated[Path, typer.Option(help="Directory for the training set.")] = Path(
        "training-set"
    ),
    formats: Annotated[
        str, typer.Option(help="Comma-separated: jsonl, csv, parquet, hf.")
    ] = "jsonl,csv,parquet",
    lam: Annotated[
        float, typer.Option("--lambda", help="Power-tuning λ on the machine terms (0..1).")
    ] = 1.0,
    soft_lambda: Annotated[
        float,
        typer.Option(
            "--soft-lambda",
            help="k > 0: per-row λ_i = λ·(1 − p̂_i)^k, p̂ the critic's P(wrong) calibrated on "
            "the reviews (still unbiased); down-weights machine labels that look wrong. 0 = off.",
        ),
    ] = 0.0,
    bot_user: Annotated[
        list[int] | None, typer.Option(help="User id whose annotations are not human reviews.")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Ignore the previous sync state.")] = False,
    label_studio_url: LabelStudioUrlOption = DEFAULT_LS_URL,
    api_key: ApiKeyOption = "",
    config: ConfigOption = None,
) -> None:
    """Pull predictions and reviews into a weighted training set (ACT weights per row)."""
    from act_plugin.sync import SyncError, sync_training_set

    settings = _settings(config)  # the rationale field's name, as annotate was told
    client = _label_studio(label_studio_url, api_key)
    with _task_progress("reading tasks") as (progress, bar):
        try:
            result = sync_training_set(
                client,
                project,
                out,
                formats=tuple(f.strip() for f in formats.split(",") if f.strip()),
                lam=lam,
                soft_power=soft_lambda,
                bot_users=bot_user or (),
                full=full,
                rationale_field=settings.rationale_field,
                on_progress=_stage_progress(progress, bar),
            )
        except SyncError as exc:
            _error(exc)
            raise typer.Exit(1) from None
    table = _kv_table(f"training set of project {project}")
    table.add_row("rows (tasks with an ACT prediction)", str(result.n_rows))
    table.add_row("reviewed by a human", str(result.n_reviewed))
    table.add_row("in the review sample", str(result.n_in_sample))
    table.add_row(
        "drawn, not reviewed yet (pending)",
        f"{result.n_pending} (flagged `pending`, weight 0 until reviewed)"
        if result.n_pending
        else "0",
    )
    table.add_row("reviewed outside the sample (π = 1)", str(result.n_outside_sample))
    table.add_row(
        "tasks fetched", f"{result.fetched} ({'incremental' if result.incremental else 'full'})"
    )
    for fmt, path in result.paths.items():
        table.add_row(f"wrote {fmt}", str(path))
    for problem in result.problems[:20]:
        table.add_row("[yellow]problem[/]", f"task {problem.task_id}: {problem.reason}")
    if len(result.problems) > 20:
        table.add_row("[yellow]problems[/]", f"… {len(result.problems) - 20} more")
    err.print(table)


@app.command()
def report(
    training_set: Annotated[
        Path, typer.Option(help="Directory written by `ls-act sync` (needs training_set.jsonl).")
    ] = Path("training-set"),
    out: Annotated[Path | None, typer.Option(help="Where to write the report.")] = None,
    cost_per_label: Annotated[
        float, typer.Option(help="What one human label costs (for the savings).")
    ] = 0.10,
    llm_cost: Annotated[
        float | None, typer.Option(help="What the LLM calls cost in total, if known.")
    ] = None,
    title: Annotated[str, typer.Option(help="Report title.")] = "ACT label quality report",
) -> None:
    """Label quality (ACT estimate with a 95% interval), critic quality and money saved."""
    from act_plugin.report import compute_report, write_report
    from act_plugin.sync import REVIEW_FILE

    if importlib.util.find_spec("matplotlib") is None:  # e.g. the slim Docker image
        _error(
            "ls-act report draws its plots with matplotlib, which is not installed: "
            "pip install 'label-studio-act[report]' (or pip install matplotlib)"
        )
        raise typer.Exit(1)
    source = training_set / "training_set.jsonl"
    if not source.exists():
        err.print(f"[red]error:[/] {source} not found: run `ls-act sync` first")
        raise typer.Exit(1)
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    plan_file = training_set / REVIEW_FILE  # the review in rounds' plan, for the certificate
    plan = json.loads(plan_file.read_text()) if plan_file.exists() else None
    try:
        figures = compute_report(
            rows, cost_per_human_label=cost_per_label, llm_cost=llm_cost, plan=plan
        )
    except ValueError as exc:
        _error(exc)
        raise typer.Exit(1) from None
    paths = write_report(figures, rows, out or training_set, title=title)
    est = figures.as_dict()
    err.print(f"wrote {paths.html} and {paths.png}")
    typer.echo(json.dumps(est, indent=2))


@app.command()
def demo(
    data_dir: Annotated[
        Path, typer.Option(help="Where Label Studio and the backend keep their data.")
    ] = DEFAULT_DEMO_DIR,
    port: Annotated[int, typer.Option(help="Label Studio port.")] = 8080,
    backend_port: Annotated[int, typer.Option(help="Backend port.")] = 9090,
    budget: Annotated[float, typer.Option(help="Review budget (fraction).")] = 0.2,
    config: ConfigOption = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Keep serving until Ctrl-C.")
    ] = True,
) -> None:
    """Run the whole loop locally: Label Studio, the backend, a real data set, annotation,
    and a review sample. No API key needed (offline default engine). Ctrl-C stops it all."""
    import time

    from act_plugin.demo import instructions, run_demo

    settings = _settings(config)
    _setup_logging("WARNING")
    err.print(f"engines: {_engine_line(settings)}")
    if settings.offline_notice():
        err.print(f"[yellow]{settings.offline_notice()}[/]")
    try:
        with ExitStack() as stack:
            with _task_progress("annotating") as (progress, bar):
                state = stack.enter_context(
                    run_demo(
                        settings,
                        data_dir,
                        ls_port=port,
                        backend_port=backend_port,
                        budget=budget,
                        on_stage=lambda stage: progress.console.print(f"[bold]»[/] {stage}"),
                        on_annotate_start=lambda n: progress.update(bar, total=n),
                        on_task=lambda outcome: progress.advance(bar),
                    )
                )
            _print_annotate_summary(state.annotation)
            table = _kv_table("ACT demo is running")
            for name, value in instructions(state):
                table.add_row(name, str(value))
            err.print(table)
            if wait:
                err.print("Press Ctrl-C to stop Label Studio and the backend.")
                while True:
                    time.sleep(1)
    except KeyboardInterrupt:
        err.print("stopped Label Studio and the backend.")


def _engine_line(settings: Settings) -> str:
    a, c = settings.annotator, settings.critic
    return f"annotator {a.engine}:{a.model}, critic {c.engine}:{c.model} ({c.strategy})"


@app.command("config")
def show_config(config: ConfigOption = None) -> None:
    """Print the settings in effect (secrets and URL credentials masked) as JSON."""
    settings = _settings(config)
    data = json.loads(settings.model_dump_json())
    for role in ("annotator", "critic"):
        if data[role]["base_url"]:
            data[role]["base_url"] = redact_url(data[role]["base_url"])
    data["model_version"] = settings.resolved_model_version
    typer.echo(json.dumps(redact_data(data), indent=2))


def main() -> None:  # pragma: no cover - console entry point
    app()
