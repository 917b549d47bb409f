"""``sync_training_set``: fetch, build the rows, write the outputs (see :mod:`act_plugin.sync`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from label_studio_sdk import LabelStudio

from act_backend.labeling import UnsupportedConfig, parse_label_config
from act_backend.records import DEFAULT_RATIONALE_FIELD, review_plan
from act_plugin.labelstudio import (
    Gateway,
    LabelStudioError,
    model_versions,
    resolve_model_version,
)
from act_plugin.validation import check_lam, check_soft_power

from .fetch import Fetched, Progress, fetch, load_state, state_of
from .outputs import FORMATS, OutputError, write_outputs
from .rows import Problem, build_rows

__all__ = ["SyncError", "SyncResult", "sync_training_set"]


class SyncError(RuntimeError):
    """The training set could not be synced; nothing was written. The message says why."""


@dataclass
class SyncResult:
    """What :func:`sync_training_set` did."""

    n_rows: int
    n_reviewed: int
    n_in_sample: int
    n_outside_sample: int
    n_pending: int
    problems: list[Problem]
    paths: dict[str, Path]  # format → file (or directory for "hf")
    fetched: int  # tasks fetched in full this time
    incremental: bool  # whether a previous state was used
    model_version: str = ""
    deleted: list[int] = field(default_factory=list)  # tasks gone since the previous sync


def sync_training_set(
    client: LabelStudio,
    project_id: int,
    out_dir: Path,
    *,
    formats: Sequence[str] = FORMATS,
    lam: float = 1.0,
    soft_power: float = 0.0,
    model_version: str | None = None,
    bot_users: Iterable[int] = (),
    full: bool = False,
    rationale_field: str = DEFAULT_RATIONALE_FIELD,
    on_progress: Progress | None = None,
) -> SyncResult:
    """Pull every task of ``project_id`` and write the weighted training set to ``out_dir``.

    Parameters
    ----------
    formats : sequence of {"jsonl", "csv", "parquet", "hf"}
        Outputs to write: ``training_set.jsonl`` (one JSON object per line, keys sorted),
        ``training_set.csv`` (``data`` and label lists as JSON, booleans ``true``/``false``,
        None as an empty cell), ``training_set.parquet`` and ``hf_dataset/`` (Hugging Face
        ``datasets``, ``save_to_disk``; needs the ``datasets`` package).
    lam : float in [0, 1]
        λ, the power-tuning factor on the machine rows.
    soft_power : float >= 0
        k > 0: λ per row, λ_i = λ · (1 − p̂_i)^k with p̂_i the critic's calibrated P(wrong)
        read without row i's own review (still unbiased; see ``sync.rows._row_lambda``), so
        the machine labels that look wrong weigh less. 0 (default): one λ for every row.
    model_version : str or None
        The ACT predictions' model_version; default: the project's (or the only one present).
    bot_users : iterable of int
        Label Studio user ids whose annotations are machine-made, never human reviews.
    full : bool
        Ignore the state of the previous sync and fetch every task.
    rationale_field : str
        Name of the rationale TextArea in the label config, as ``ls-act annotate`` was told.
    on_progress : callable or None
        ``on_progress(stage, done, total)``; stage "list" or "fetch".

    Raises
    ------
    SyncError
        Bad options, no ACT predictions, an unsupported label config, or Label Studio failing
        (after retries). Nothing is written then; the previous outputs stay.
    """
    chosen = _check_formats(formats)
    lam = _check_lam(lam)
    soft_power = _check_soft_power(soft_power)
    bots = _check_bots(bot_users)
    if "parquet" in chosen or "hf" in chosen:
        _require("pyarrow", "hf" if "hf" in chosen else "parquet", chosen)
    if "hf" in chosen:
        _require("datasets", "hf", chosen)
    out_dir = Path(out_dir)
    project, fetched = _read(Gateway(client), int(project_id), out_dir, full, on_progress)
    try:
        version = resolve_model_version(
            model_version, project.get("model_version"), model_versions(fetched.records.values())
        )
        config = project.get("label_config") or ""
        spec = parse_label_config(config, rationale_field=rationale_field)
    except (ValueError, UnsupportedConfig) as exc:
        raise SyncError(f"project {project_id}: {exc}") from None
    rows, problems = build_rows(
        fetched.records.values(),
        spec,
        model_version=version,
        lam=lam,
        soft_power=soft_power,
        bot_users=bots,
        draw=fetched.draw,
    )
    try:
        paths = write_outputs(
            out_dir, rows, chosen, state_of(project, fetched.records), review_plan(fetched.draw)
        )
    except OutputError as exc:
        raise SyncError(str(exc)) from exc
    return SyncResult(
        n_rows=len(rows),
        n_reviewed=sum(r["reviewed"] for r in rows),
        n_in_sample=sum(r["in_sample"] for r in rows),
        n_outside_sample=sum(r["outside_sample"] for r in rows),
        n_pending=sum(r["pending"] for r in rows),
        problems=sorted(problems, key=lambda p: (p.task_id is not None, p.task_id or 0)),
        paths=paths,
        fetched=fetched.fetched,
        incremental=fetched.incremental,
        model_version=version,
        deleted=fetched.deleted,
    )


def _read(
    gateway: Gateway, project_id: int, out_dir: Path, full: bool, on_progress: Progress | None
) -> tuple[dict[str, Any], Fetched]:
    """The project and its task records (only what changed, given a previous state)."""
    try:
        project = gateway.get_project(project_id)
        previous = None if full else load_state(out_dir, project)
        return project, fetch(gateway, project_id, previous, on_progress)
    except LabelStudioError as exc:
        raise SyncError(
            f"could not read project {project_id} from Label Studio: {exc}. Nothing was "
            "written; the previous outputs are unchanged."
        ) from exc


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """The chosen formats in :data:`FORMATS` order."""
    if isinstance(formats, str):
        formats = (formats,)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise SyncError(
            f"formats must be a non-empty selection of {', '.join(FORMATS)}; got {list(formats)!r}"
        )
    return tuple(f for f in FORMATS if f in formats)


def _check_lam(lam: object) -> float:
    try:
        return check_lam(lam)
    except ValueError as err:
        raise SyncError(str(err)) from None


def _check_soft_power(power: object) -> float:
    try:
        return check_soft_power(power)
    except ValueError as err:
        raise SyncError(str(err)) from None


def _check_bots(bot_users: Iterable[int]) -> set[int]:
    bots = list(bot_users)
    bad = [b for b in bots if isinstance(b, bool) or not isinstance(b, int)]
    if bad:
        raise SyncError(f"bot_users must be Label Studio user ids (ints); got {bad!r}")
    return set(bots)


def _require(module: str, extra: str, formats: Sequence[str]) -> None:
    """SyncError naming the package and the extra to install when ``module`` is missing."""
    try:
        __import__(module)
    except ImportError:
        needs = " and ".join(f"'{f}'" for f in formats if f in ("parquet", "hf"))
        raise SyncError(
            f"the {needs} format needs the `{module}` package: "
            f"pip install 'label-studio-act[{extra}]' (or pip install {module}), "
            "or choose other formats"
        ) from None
