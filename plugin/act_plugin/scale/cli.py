"""``ls-act scale``: the typer sub-app (annotate, review, sync). Thin shells over the stages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from act_plugin.act_math import DEFAULT_BETA, DEFAULT_FLOOR

scale_app = typer.Typer(
    name="scale",
    help="ACT over a whole data set on Ray Data: Parquet in, review sample to Label Studio, "
    "training set out.",
    no_args_is_help=True,
)

OutputOption = Annotated[
    str, typer.Option("--output", "-o", help="Run directory (local path or fsspec URL).")
]
LabelStudioUrl = Annotated[str, typer.Option(envvar="LABEL_STUDIO_URL", help="Label Studio URL.")]
ApiKey = Annotated[
    str,
    typer.Option(envvar="LABEL_STUDIO_API_KEY", help="Label Studio token.", show_default=False),
]


def _main() -> Any:
    """The main CLI module (its console, settings and progress helpers), imported when used."""
    from act_plugin import cli

    return cli


def _fail(message: str, code: int = 1) -> typer.Exit:
    _main().err.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


@scale_app.command("annotate")
def annotate(
    input: Annotated[str, typer.Option("--input", "-i", help="Parquet, JSONL or HF dataset.")],
    output: OutputOption,
    label_config: Annotated[
        Path, typer.Option(help="The Label Studio labeling config (XML file).", exists=True)
    ],
    fmt: Annotated[
        str | None, typer.Option("--format", help="parquet, jsonl or hf (default: guessed).")
    ] = None,
    id_column: Annotated[
        str, typer.Option(help="Column of integer item ids; '' or absent: row numbers.")
    ] = "id",
    block_size: Annotated[int, typer.Option(help="Rows per block (one part file each).")] = 1000,
    actors: Annotated[int, typer.Option(help="Predictor actors (each runs ACT_CONCURRENCY).")] = 2,
    actor_cpus: Annotated[float, typer.Option(help="CPUs reserved per actor.")] = 1.0,
    max_blocks: Annotated[
        int | None, typer.Option(help="Stop after this many blocks (a later run goes on).")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(envvar="RAY_ADDRESS", help="Ray cluster (default: local).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", exists=True)] = None,
) -> None:
    """Annotate and criticize every row into <output>/annotations (resumable, kill-safe).

    Exit codes: 0 all rows annotated, 3 some rows failed (kept with their error), 4 blocks left.
    """
    from act_plugin.scale.annotate import ScaleError, annotate_dataset
    from act_plugin.scale.cluster import RayMissing
    from act_plugin.scale.source import SourceError
    from act_plugin.scale.store import StoreError

    main = _main()
    settings = main._settings(config)
    main._setup_logging("WARNING")
    with main._task_progress("annotating rows") as (progress, bar):
        try:
            result = annotate_dataset(
                input, output, settings, label_config.read_text(encoding="utf-8"),
                fmt=fmt, id_column=id_column or None, block_size=block_size, actors=actors,
                actor_cpus=actor_cpus, max_blocks=max_blocks, ray_address=ray_address,
                on_start=lambda blocks, rows: progress.update(bar, total=rows),
                on_block=lambda summary: progress.advance(bar, summary.rows),
            )  # fmt: skip
        except (ScaleError, SourceError, StoreError, RayMissing) as exc:
            raise _fail(str(exc)) from None
    _annotate_summary(main, result, output)
    if not result.complete:
        raise typer.Exit(4)
    if result.n_failed:
        raise typer.Exit(3)


def _annotate_summary(main: Any, result: Any, output: str) -> None:
    table = main._kv_table(f"ls-act scale annotate ({result.model_version})")
    table.add_row("rows in the input", str(result.n_rows))
    table.add_row("blocks", f"{result.n_blocks} ({result.n_blocks_skipped} done before)")
    table.add_row("blocks done now", str(result.n_blocks_done))
    table.add_row("rows annotated now (failed)", f"{result.n_annotated} ({result.n_failed})")
    usage = result.usage
    table.add_row("LLM calls (cache hits)", f"{usage.calls} ({usage.cached})")
    table.add_row("prompt hash", result.prompt_hash)
    table.add_row("time", f"{result.seconds:.1f} s")
    for kind, count in result.errors.most_common():
        table.add_row(f"[red]error {kind}[/]", f"{count}, e.g. {result.examples[kind]}")
    if not result.complete:
        table.add_row("[yellow]not finished[/]", "run the same command again to go on")
    table.add_row("output", f"{output}/annotations")
    main.err.print(table)


@scale_app.command("review")
def review(
    output: OutputOption,
    budget: Annotated[float, typer.Option(help="Reviews: a count (e.g. 500) or a fraction.")],
    rule: Annotated[str, typer.Option(help="normalized, exponential, thresholded, uniform.")] = (
        "thresholded"
    ),
    floor: Annotated[float, typer.Option(help="Share of the budget reviewed at random.")] = (
        DEFAULT_FLOOR
    ),
    beta: Annotated[float, typer.Option(help="Steepness of the exponential rule.")] = DEFAULT_BETA,
    seed: Annotated[int | None, typer.Option(help="Seed of the draw (default: random).")] = None,
    redraw: Annotated[bool, typer.Option("--redraw", help="Replace the stored draw.")] = False,
    shard_size: Annotated[int, typer.Option(help="Tasks per Label Studio project.")] = 100_000,
    chunk_size: Annotated[int, typer.Option(help="Tasks per import request.")] = 500,
    title: Annotated[str, typer.Option(help="Title prefix of the shard projects.")] = "ACT review",
    label_studio_url: LabelStudioUrl = "http://localhost:8080",
    api_key: ApiKey = "",
) -> None:
    """Draw the review sample from the Parquet; import only the drawn rows into Label Studio."""
    from act_plugin.labelstudio import LabelStudioError
    from act_plugin.scale.annotate import ScaleError
    from act_plugin.scale.review import (
        DRAW_FILE,
        REVIEW,
        draw_dataset,
        draw_params,
        import_sample,
    )
    from act_plugin.scale.store import Store, StoreError

    main = _main()
    client = main._label_studio(label_studio_url, api_key)
    count: int | float = int(budget) if budget >= 1 and float(budget).is_integer() else budget
    store = Store(output)
    kept = not redraw and store.exists(REVIEW, DRAW_FILE)
    with main._task_progress("drawing") as (progress, bar):
        try:
            draw = draw_dataset(
                store, draw_params(count, rule, floor, beta, seed), redraw=redraw,
                on_progress=main._stage_progress(progress, bar),
            )  # fmt: skip
            result = import_sample(
                client, store, title=title, shard_size=shard_size, chunk_size=chunk_size,
                on_progress=main._stage_progress(progress, bar),
            )  # fmt: skip
        except (ScaleError, StoreError, LabelStudioError, ValueError) as exc:
            raise _fail(str(exc)) from None
    table = main._kv_table(f"review sample {draw['draw_id']}")
    status = "stored draw kept (--redraw replaces it)" if kept else "new draw"
    table.add_row("status", status)
    table.add_row("rule", f"{draw['rule']} (floor {draw['floor']}, seed {draw['seed']})")
    table.add_row("rows in the draw", str(draw["n_tasks"]))
    table.add_row("imported now / already there", f"{result.imported} / {result.skipped}")
    for shard, project_id in result.projects.items():
        table.add_row(f"shard {shard + 1}", f"project {project_id}")
    main.err.print(table)


@scale_app.command("sync")
def sync(
    output: OutputOption,
    out: Annotated[
        Path | None, typer.Option(help="Training set directory (default <output>/train).")
    ] = None,
    formats: Annotated[str, typer.Option(help="Comma-separated: jsonl, csv, parquet.")] = (
        "jsonl,parquet"
    ),
    lam: Annotated[float, typer.Option("--lambda", help="λ on the machine terms (0..1).")] = 1.0,
    soft_lambda: Annotated[
        float,
        typer.Option(
            "--soft-lambda",
            help="k > 0: per-row λ_i = λ·(1 − p̂_i)^k as `ls-act sync --soft-lambda`, p̂ "
            "calibrated on the reviews of every block. 0 = off.",
        ),
    ] = 0.0,
    bot_user: Annotated[list[int] | None, typer.Option(help="User id that is not human.")] = None,
    label_studio_url: LabelStudioUrl = "http://localhost:8080",
    api_key: ApiKey = "",
) -> None:
    """Join the reviews in Label Studio with the Parquet into the weighted training set."""
    from act_plugin.labelstudio import LabelStudioError
    from act_plugin.scale.annotate import ScaleError
    from act_plugin.scale.store import Store, StoreError
    from act_plugin.scale.sync import sync_dataset

    main = _main()
    client = main._label_studio(label_studio_url, api_key)
    store = Store(output)
    target = out or Path(store.root) / "train"
    with main._task_progress("reading reviews") as (progress, bar):
        try:
            result = sync_dataset(
                client, store, target,
                formats=[f.strip() for f in formats.split(",") if f.strip()],
                lam=lam, soft_power=soft_lambda, bot_users=bot_user or (),
                on_progress=main._stage_progress(progress, bar),
            )  # fmt: skip
        except (ScaleError, StoreError, LabelStudioError) as exc:
            raise _fail(str(exc)) from None
    table = main._kv_table("scale training set")
    table.add_row("rows (annotated items)", str(result.n_rows))
    table.add_row("reviewed by a human", str(result.n_reviewed))
    table.add_row("drawn, not reviewed yet", str(result.n_pending))
    table.add_row("failed rows (no row)", str(result.n_failed_rows))
    for fmt, path in result.paths.items():
        table.add_row(f"wrote {fmt}", str(path))
    for problem in result.problems[:20]:
        table.add_row("[yellow]problem[/]", f"item {problem.task_id}: {problem.reason}")
    main.err.print(table)
