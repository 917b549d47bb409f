"""Pull the reviewed tasks of an ACT project into a weighted training set.

Lin et al., "ACT as Human", NeurIPS 2025, arXiv:2511.09833 (step 4, "Train"). One row per task
with an ACT prediction; a reviewed task carries both labels and the weights of the ACT loss

    w_machine = λ (1 − δ/π),   w_human = δ/π     (:func:`act_plugin.act_math.act_weights`),

where δ = 1 iff a human reviewed the task (in the drawn sample, or outside it: then π is taken as
1) and π is the task's inclusion probability from ``ls-act review`` (taken as 1 without a draw).

Which annotations count as a human review (Label Studio 1.23.2, read in its source and checked
on a real server): the task's annotations (drafts are separate objects and never count) that

- are not cancelled ("skipped", ``was_cancelled``);
- were not made by a model: ``completed_by`` not in ``bot_users``; ``last_action`` not one of
  "prediction", "propagated_annotation", "imported" (the Enterprise edition records these; the
  open-source edition never sets ``last_action``); not bulk-created by the server, which leaves
  ``updated_by`` empty (the Data Manager action "Create annotations from predictions", task
  import with annotations) while the labeling UI and the annotations API always set it; and
  not imported (``import_id`` set);

and of those the latest (``updated_at``, then id). Its label is its region of the control that
the machine label fills (``from_name``). A label outside the current label config, or a machine
label outside it (the config changed), makes the task a problem: its row is kept, not reviewed
(human_label None), and listed in :attr:`SyncResult.problems`.

Outputs (``training_set.jsonl``, ``.csv``, ``.parquet``, ``hf_dataset/``) are written to
temporary names and renamed only when everything was fetched and written, so a failure leaves
the previous outputs as they were. The same project state gives byte-identical files (the HF
dataset too: its fingerprint is the SHA-256 of the JSONL).

Incremental sync (verified on Label Studio 1.23.2): creating, updating, cancelling or deleting
an annotation, creating/updating/deleting a prediction, and editing a task's data or meta all
change the task's ``updated_at`` (and the counters ``total_annotations``,
``cancelled_annotations``, ``total_predictions`` where they apply); saving a draft does not.
So each sync lists every task's ``id, updated_at`` and counters (``include=``, no predictions
or annotations), fetches in full (``fields=all``) only tasks that are new or whose fingerprint
changed, drops tasks that disappeared, and rebuilds every output from the merged state in
``.act-sync-state.json`` (the raw task records, so a changed label config or model_version
needs no refetch). ``full=True`` ignores the state.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from label_studio_sdk import LabelStudio

from act_backend.labeling import LabelingSpec, UnsupportedConfig, parse_label_config
from act_plugin.act_math import act_weights
from act_plugin.ls_tasks import (
    META_KEY,
    LabelStudioError,
    act_prediction,
    get_project,
    list_tasks,
    model_versions,
    parse_time,
    resolve_model_version,
    suspicion_of,
)
from act_plugin.validation import check_lam

__all__ = [
    "COLUMNS",
    "FORMATS",
    "MODEL_LAST_ACTIONS",
    "OUTPUT_NAMES",
    "STATE_FILE",
    "Problem",
    "SyncError",
    "SyncResult",
    "build_rows",
    "sync_training_set",
]

logger = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (
    "task_id",
    "data",
    "machine_label",
    "human_label",
    "reviewed",
    "in_sample",
    "outside_sample",
    "pending",
    "suspicion",
    "pi",
    "delta",
    "weight_machine",
    "weight_human",
    "machine_correct",
    "model_version",
    "annotation_id",
    "annotator",
    "draw_id",
)
FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet", "hf")
OUTPUT_NAMES: dict[str, str] = {
    "jsonl": "training_set.jsonl",
    "csv": "training_set.csv",
    "parquet": "training_set.parquet",
    "hf": "hf_dataset",
}
STATE_FILE = ".act-sync-state.json"
STATE_VERSION = 1
#: ``Annotation.last_action`` values (tasks/choices.py, ActionType) meaning "not a person's label".
MODEL_LAST_ACTIONS = frozenset({"prediction", "propagated_annotation", "imported"})
#: Task fields whose change marks a task for refetching.
FINGERPRINT_FIELDS = (
    "updated_at",
    "total_annotations",
    "cancelled_annotations",
    "total_predictions",
)
_PREDICTION_FIELDS = ("id", "model_version", "score", "mislabeling", "result", "created_at")
_ANNOTATION_FIELDS = (
    "id", "result", "completed_by", "was_cancelled", "created_at", "updated_at",
    "last_action", "parent_prediction", "lead_time", "updated_by", "import_id",
)  # fmt: skip
#: Changed tasks are fetched in full this many ids per request.
ID_CHUNK = 200

#: ``on_progress(stage, done, total)``; stage "list" (fingerprints) or "fetch" (full tasks).
Progress = Callable[[str, int, int], None]


class SyncError(RuntimeError):
    """The training set could not be synced; nothing was written. The message says why."""


@dataclass(frozen=True)
class Problem:
    """A task (or, with ``task_id`` None, the draw) whose rows need a human's attention."""

    task_id: int | None
    reason: str


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


# --------------------------------------------------------------------------------------------
# Pure part: task records → rows
# --------------------------------------------------------------------------------------------


def build_rows(
    tasks: Iterable[Mapping[str, Any]],
    spec: LabelingSpec,
    *,
    model_version: str,
    lam: float = 1.0,
    bot_users: Iterable[int] = (),
) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Rows (sorted by task_id, columns :data:`COLUMNS`) and problems, from task dicts.

    ``tasks`` are Label Studio tasks with ``predictions``, ``annotations`` and ``meta``.
    """
    bots = {int(b) for b in bot_users}
    acts = [(t, p) for t in tasks if (p := act_prediction(t, model_version)) is not None]
    acts.sort(key=lambda item: int(item[0]["id"]))
    draw_id, draw_meta = _current_draw([t for t, _ in acts])
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for task, prediction in acts:
        row, reasons = _row(task, prediction, spec, draw_id, bots)
        rows.append(row)
        problems.extend(Problem(row["task_id"], r) for r in reasons)
    problems.extend(_draw_problems(rows, draw_id, draw_meta, model_version))
    _add_weights(rows, lam)
    return rows, problems


def _current_draw(tasks: Sequence[Mapping[str, Any]]) -> tuple[str | None, dict[str, Any]]:
    """The draw most tasks carry (ties: the newest); its meta as found on its first task."""
    carriers: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        act = _act_meta(task)
        if act is not None:
            carriers.setdefault(act["draw_id"], []).append(act)
    if not carriers:
        return None, {}
    draw_id = max(
        carriers,
        key=lambda d: (len(carriers[d]), parse_time(carriers[d][0].get("drawn_at")), d),
    )
    return draw_id, carriers[draw_id][0]


def _act_meta(task: Mapping[str, Any]) -> dict[str, Any] | None:
    meta = task.get("meta")
    act = meta.get(META_KEY) if isinstance(meta, dict) else None
    return act if isinstance(act, dict) and isinstance(act.get("draw_id"), str) else None


def _row(
    task: Mapping[str, Any],
    prediction: Mapping[str, Any],
    spec: LabelingSpec,
    draw_id: str | None,
    bots: set[int],
) -> tuple[dict[str, Any], list[str]]:
    """One row (without weights) and the reasons it is a problem."""
    task_id = int(task["id"])
    reasons: list[str] = []
    machine = _answer(prediction.get("result"), spec)
    machine_error = _invalid(machine, spec)
    if machine_error:
        reasons.append(f"machine label {machine!r} {machine_error}")
    annotation = _human_annotation(task.get("annotations") or [], bots)
    human = _answer(annotation.get("result"), spec) if annotation else None
    if annotation is not None and not machine_error:
        human_error = _invalid(human, spec)
        if human_error:
            reasons.append(f"annotation {annotation.get('id')}: label {human!r} {human_error}")
    reviewed = annotation is not None and not reasons

    act = _act_meta(task)
    pi = None
    in_sample = False
    if act is not None and act["draw_id"] != draw_id:
        reasons.append(f"carries draw {act['draw_id']}, not the current draw {draw_id}")
    elif act is not None:
        pi, in_sample = _stored_pi(act), act.get("delta") == 1
        if pi is None:
            reasons.append(f"meta of draw {draw_id} has no valid pi")
            in_sample = False
    outside = reviewed and not in_sample
    chosen = annotation if reviewed and annotation is not None else {}
    return {
        "task_id": task_id,
        "data": _normalized(task.get("data") or {}),
        "machine_label": machine if machine is not None else [],
        "human_label": human if reviewed else None,
        "reviewed": reviewed,
        "in_sample": in_sample,
        "outside_sample": outside,
        "pending": in_sample and not reviewed,
        "suspicion": suspicion_of(prediction),
        "pi": pi,
        "delta": int(reviewed),
        "weight_machine": 0.0,
        "weight_human": 0.0,
        "machine_correct": _same(machine, human, spec) if reviewed else None,
        "model_version": str(prediction.get("model_version")),
        "annotation_id": _int_or_none(chosen.get("id")),
        "annotator": _int_or_none(chosen.get("completed_by")),
        "draw_id": draw_id if act is not None and act["draw_id"] == draw_id else None,
    }, reasons


def _stored_pi(act: Mapping[str, Any]) -> float | None:
    pi = act.get("pi")
    if isinstance(pi, bool) or not isinstance(pi, (int, float)) or not 0.0 <= pi <= 1.0:
        return None
    if act.get("delta") == 1 and pi == 0.0:
        return None
    return float(pi)


def _is_human_review(annotation: Mapping[str, Any], bots: set[int]) -> bool:
    """Submitted by a person: see the module docstring."""
    return not (
        annotation.get("was_cancelled")
        or _int_or_none(annotation.get("completed_by")) in bots
        or annotation.get("last_action") in MODEL_LAST_ACTIONS
        or annotation.get("updated_by") is None
        or annotation.get("import_id") is not None
    )


def _human_annotation(
    annotations: Sequence[Mapping[str, Any]], bots: set[int]
) -> Mapping[str, Any] | None:
    """The latest human review among ``annotations`` (by updated_at, then id), or None."""
    eligible = [a for a in annotations if _is_human_review(a, bots)]
    if not eligible:
        return None
    return max(eligible, key=lambda a: (parse_time(a.get("updated_at")), a.get("id") or 0))


def _answer(result: object, spec: LabelingSpec) -> list[str] | None:
    """The labels of the regions of ``spec.control_name``.

    Choices: the union of the chosen values, sorted. TextArea: its texts joined by newlines,
    as one element. Without such a region: [] for a multiple choice (nothing chosen), else None.
    """
    name = spec.control_name
    items = result if isinstance(result, list) else []
    regions = [r for r in items if isinstance(r, dict) and r.get("from_name") == name]
    if not regions:
        return [] if spec.kind == "choices" and spec.multiple else None
    values = [r.get("value") if isinstance(r.get("value"), dict) else {} for r in regions]
    if spec.kind == "choices":
        return sorted({str(c) for v in values for c in v.get("choices") or []})
    texts = [str(t) for v in values for t in v.get("text") or []]
    return ["\n".join(texts)]


def _invalid(labels: list[str] | None, spec: LabelingSpec) -> str | None:
    """Why ``labels`` is not a valid answer under the current config, or None."""
    if labels is None:
        return f"is missing: no region of control {spec.control_name!r}"
    if spec.kind == "textarea":
        return None if labels[0].strip() else "is empty"
    unknown = [label for label in labels if label not in spec.labels]
    if unknown:
        return (
            f"is not in the current label config of {spec.control_name!r} "
            f"(choices: {', '.join(spec.labels)})"
        )
    if not spec.multiple and len(labels) != 1:
        return f"must be exactly one choice of {spec.control_name!r}"
    return None


def _same(machine: list[str] | None, human: list[str] | None, spec: LabelingSpec) -> bool:
    """Whether the machine label equals the human label (TextArea: after trimming spaces)."""
    machine, human = machine or [], human or []
    if spec.kind == "textarea":
        return [m.strip() for m in machine] == [h.strip() for h in human]
    return sorted(machine) == sorted(human)


def _draw_problems(
    rows: Sequence[Mapping[str, Any]],
    draw_id: str | None,
    draw_meta: Mapping[str, Any],
    model_version: str,
) -> list[Problem]:
    if draw_id is None:
        return []
    problems = []
    carried = sum(1 for row in rows if row["draw_id"] == draw_id)
    n_tasks = draw_meta.get("n_tasks")
    if isinstance(n_tasks, int) and carried < n_tasks:
        problems.append(
            Problem(
                None,
                f"draw {draw_id} covered {n_tasks} tasks but only {carried} carry it now: tasks "
                "were deleted since the draw (the rest is read without them), or `ls-act review` "
                "was interrupted (run it again to finish the draw)",
            )
        )
    drawn_version = draw_meta.get("model_version")
    if drawn_version and drawn_version != model_version:
        problems.append(
            Problem(
                None,
                f"draw {draw_id} was made from model_version {drawn_version!r}; these rows use "
                f"{model_version!r}",
            )
        )
    return problems


def _add_weights(rows: list[dict[str, Any]], lam: float) -> None:
    """Fill weight_machine = λ(1 − δ/π) and weight_human = δ/π (π = 1 outside the sample)."""
    if not rows:
        return
    delta = np.array([row["delta"] for row in rows], dtype=float)
    pi = np.array(
        [1.0 if row["outside_sample"] or row["pi"] is None else row["pi"] for row in rows]
    )
    machine, human = act_weights(delta, pi, lam=lam)
    for row, w_m, w_h in zip(rows, machine, human, strict=True):
        row["weight_machine"] = float(w_m) + 0.0  # + 0.0 turns −0.0 into 0.0
        row["weight_human"] = float(w_h) + 0.0


def _normalized(value: Any) -> Any:
    """JSON-able ``value`` with dict keys sorted (stable output whatever the key order)."""
    return json.loads(json.dumps(value, sort_keys=True, ensure_ascii=False))


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def sync_training_set(
    client: LabelStudio,
    project_id: int,
    out_dir: Path,
    *,
    formats: Sequence[str] = FORMATS,
    lam: float = 1.0,
    model_version: str | None = None,
    bot_users: Iterable[int] = (),
    full: bool = False,
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
    model_version : str or None
        The ACT predictions' model_version; default: the project's (or the only one present).
    bot_users : iterable of int
        Label Studio user ids whose annotations are machine-made, never human reviews.
    full : bool
        Ignore the state of the previous sync and fetch every task.
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
    bots = _check_bots(bot_users)
    if "parquet" in chosen or "hf" in chosen:
        _require("pyarrow", "hf" if "hf" in chosen else "parquet", chosen)
    if "hf" in chosen:
        _require("datasets", "hf", chosen)
    out_dir = Path(out_dir)
    try:
        project = get_project(client, project_id)
        previous = None if full else _load_state(out_dir, project)
        fetch = _fetch(client, int(project_id), previous, on_progress)
    except LabelStudioError as exc:
        raise SyncError(
            f"could not read project {project_id} from Label Studio: {exc}. Nothing was "
            "written; the previous outputs are unchanged."
        ) from exc
    try:
        version = resolve_model_version(
            model_version, project.get("model_version"), model_versions(fetch.records.values())
        )
        spec = parse_label_config(project.get("label_config") or "")
    except (ValueError, UnsupportedConfig) as exc:
        raise SyncError(f"project {project_id}: {exc}") from None
    rows, problems = build_rows(
        fetch.records.values(), spec, model_version=version, lam=lam, bot_users=bots
    )
    state = _state(project, fetch.records)
    paths = _write_outputs(out_dir, rows, chosen, state)
    return SyncResult(
        n_rows=len(rows),
        n_reviewed=sum(r["reviewed"] for r in rows),
        n_in_sample=sum(r["in_sample"] for r in rows),
        n_outside_sample=sum(r["outside_sample"] for r in rows),
        n_pending=sum(r["pending"] for r in rows),
        problems=sorted(problems, key=lambda p: (p.task_id is not None, p.task_id or 0)),
        paths=paths,
        fetched=fetch.fetched,
        incremental=fetch.incremental,
        model_version=version,
        deleted=fetch.deleted,
    )


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
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


# --------------------------------------------------------------------------------------------
# Fetching (full or incremental)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fetched:
    records: dict[int, dict[str, Any]]  # task id → compact task record, by id
    fetched: int  # tasks read in full
    deleted: list[int]  # ids of the previous state that are gone
    incremental: bool  # only new and changed tasks were read in full


def _fetch(
    client: LabelStudio,
    project_id: int,
    previous: Mapping[int, dict[str, Any]] | None,
    on_progress: Progress | None,
) -> _Fetched:
    """Every task's record: all read in full, or (with ``previous``) only what changed."""

    def report(stage: str) -> Callable[[int, int], None] | None:
        return (lambda done, total: on_progress(stage, done, total)) if on_progress else None

    if previous is None:
        tasks = list_tasks(client, project_id, on_page=report("fetch"))
        return _Fetched({int(t["id"]): _compact(t) for t in tasks}, len(tasks), [], False)
    listed = list_tasks(
        client,
        project_id,
        all_fields=False,
        include=("id", *FINGERPRINT_FIELDS),
        page_size=1000,
        on_page=report("list"),
    )
    current = {int(t["id"]): _fingerprint(t) for t in listed}
    changed = [
        i for i, fp in current.items() if i not in previous or _fingerprint(previous[i]) != fp
    ]
    if len(changed) > len(current) // 2:  # cheaper to read everything again
        tasks = list_tasks(client, project_id, on_page=report("fetch"))
        records = {int(t["id"]): _compact(t) for t in tasks}
        return _Fetched(records, len(tasks), sorted(set(previous) - set(records)), False)
    fresh: list[dict[str, Any]] = []
    for start in range(0, len(changed), ID_CHUNK):  # ids travel in the URL: keep it short
        fresh += list_tasks(client, project_id, task_ids=changed[start : start + ID_CHUNK])
        if on_progress:
            on_progress("fetch", min(start + ID_CHUNK, len(changed)), len(changed))
    records = {i: previous[i] for i in current if i not in changed}
    records.update({int(t["id"]): _compact(t) for t in fresh})
    deleted = sorted(set(previous) - set(current))
    return _Fetched(dict(sorted(records.items())), len(fresh), deleted, True)


def _fingerprint(task: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(task.get(name) for name in FINGERPRINT_FIELDS)


def _compact(task: Mapping[str, Any]) -> dict[str, Any]:
    """What rows are built from: the task's fingerprint, data, meta, predictions, annotations."""
    record: dict[str, Any] = {name: task.get(name) for name in ("id", *FINGERPRINT_FIELDS)}
    record["data"] = task.get("data") or {}
    record["meta"] = task.get("meta") or {}
    record["predictions"] = [
        {k: p.get(k) for k in _PREDICTION_FIELDS} for p in task.get("predictions") or []
    ]
    record["annotations"] = [
        {k: a.get(k) for k in _ANNOTATION_FIELDS} for a in task.get("annotations") or []
    ]
    return record


# --------------------------------------------------------------------------------------------
# State of the previous sync
# --------------------------------------------------------------------------------------------


def _state_key(project: Mapping[str, Any]) -> dict[str, Any]:
    """Identifies the project across URLs (ids repeat on another server, created_at does not)."""
    return {"project_id": project.get("id"), "project_created_at": project.get("created_at")}


def _state(project: Mapping[str, Any], records: Mapping[int, dict[str, Any]]) -> dict[str, Any]:
    stamps = [r.get("updated_at") for r in records.values() if r.get("updated_at")]
    return {
        "version": STATE_VERSION,
        **_state_key(project),
        "cursor": max(stamps, key=parse_time) if stamps else None,
        "tasks": [records[i] for i in sorted(records)],
    }


def _load_state(out_dir: Path, project: Mapping[str, Any]) -> dict[int, dict[str, Any]] | None:
    """Task records of the previous sync of this project, or None (then all is fetched)."""
    path = out_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("version") != STATE_VERSION:
            return None
        if {k: state.get(k) for k in _state_key(project)} != _state_key(project):
            logger.info("%s belongs to another project: fetching every task", path)
            return None
        return {int(t["id"]): t for t in state["tasks"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("ignoring unreadable %s (%s): fetching every task", path, exc)
        return None


# --------------------------------------------------------------------------------------------
# Writing (temporary files first, renamed at the end)
# --------------------------------------------------------------------------------------------


def _write_outputs(
    out_dir: Path, rows: list[dict[str, Any]], formats: Sequence[str], state: Mapping[str, Any]
) -> dict[str, Path]:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SyncError(f"cannot create the output directory {out_dir}: {exc}") from None
    jsonl = _jsonl_bytes(rows)
    writers: dict[str, Callable[[Path], object]] = {
        "jsonl": lambda path: path.write_bytes(jsonl),
        "csv": lambda path: path.write_bytes(_csv_bytes(rows)),
        "parquet": lambda path: _write_parquet(rows, path),
        "hf": lambda path: _write_hf(
            rows, path, fingerprint=hashlib.sha256(jsonl).hexdigest()[:16]
        ),
        STATE_FILE: lambda path: path.write_text(
            json.dumps(state, sort_keys=True, ensure_ascii=False), "utf-8"
        ),
    }
    staged: list[tuple[Path, Path]] = []  # (temporary, final), the state file last
    for key in (*formats, STATE_FILE):
        name = OUTPUT_NAMES.get(key, key)
        temporary = out_dir / f".tmp-{name}-{os.getpid()}"
        staged.append((temporary, out_dir / name))
        try:
            _remove(temporary)
            writers[key](temporary)
        except Exception as exc:
            for path, _ in staged:
                _remove(path)
            raise SyncError(
                f"could not write {name} to {out_dir}: {exc}. The previous outputs are unchanged."
            ) from exc
    for temporary, final in staged:
        _replace(temporary, final)
    return {fmt: out_dir / OUTPUT_NAMES[fmt] for fmt in formats}


def _replace(temporary: Path, final: Path) -> None:
    """Move ``temporary`` to ``final`` (a directory replaces the old one almost atomically)."""
    if temporary.is_dir():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        if final.exists():
            os.replace(final, old)
        os.replace(temporary, final)
        _remove(old)
    else:
        os.replace(temporary, final)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _jsonl_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes:
    lines = (json.dumps(r, sort_keys=True, ensure_ascii=False, allow_nan=False) for r in rows)
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_csv_cell(row[c]) for c in COLUMNS])
    return buffer.getvalue().encode("utf-8")


def _arrow_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The rows as a pyarrow Table with a fixed schema.

    ``data`` is a struct when pyarrow can type every task's data alike (the usual case: the
    same keys and value types); otherwise it is the JSON text.
    """
    import pyarrow as pa

    labels = pa.list_(pa.string())
    types = {
        "task_id": pa.int64(),
        "machine_label": labels,
        "human_label": labels,
        "reviewed": pa.bool_(),
        "in_sample": pa.bool_(),
        "outside_sample": pa.bool_(),
        "pending": pa.bool_(),
        "suspicion": pa.float64(),
        "pi": pa.float64(),
        "delta": pa.int64(),
        "weight_machine": pa.float64(),
        "weight_human": pa.float64(),
        "machine_correct": pa.bool_(),
        "model_version": pa.string(),
        "annotation_id": pa.int64(),
        "annotator": pa.int64(),
        "draw_id": pa.string(),
    }
    columns = {name: pa.array([r[name] for r in rows], type=t) for name, t in types.items()}
    columns["data"] = _data_column([r["data"] for r in rows])
    return pa.table({name: columns[name] for name in COLUMNS})


def _data_column(values: list[Any]) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        column = pa.array(values)
        if not pa.types.is_struct(column.type) or column.type.num_fields == 0:
            raise ValueError("not a struct with fields")
        pq.write_table(pa.table({"data": column}), io.BytesIO())  # can Parquet store it?
        return column
    except (pa.ArrowException, ValueError, TypeError):
        texts = [json.dumps(v, sort_keys=True, ensure_ascii=False) for v in values]
        return pa.array(texts, type=pa.string())


def _write_parquet(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(_arrow_table(rows), path)


def _write_hf(rows: Sequence[Mapping[str, Any]], path: Path, *, fingerprint: str) -> None:
    """``datasets.Dataset.save_to_disk`` with a fingerprint from the content (reproducible)."""
    import datasets
    from datasets.table import InMemoryTable
    from datasets.utils import logging as hf_logging

    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        dataset = datasets.Dataset(InMemoryTable(_arrow_table(rows)), fingerprint=fingerprint)
        dataset.save_to_disk(str(path))
    finally:
        if bars_were_enabled:
            hf_logging.enable_progress_bar()
