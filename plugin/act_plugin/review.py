"""Draw the budgeted human-review sample of an ACT project and keep it in Label Studio.

Lin et al., "ACT as Human", NeurIPS 2025, arXiv:2511.09833 (step 3, "Review"). Each task with an
ACT prediction gets π_i = π_B(ε̂_i) from :func:`act_plugin.act_math.inclusion_probabilities`
and δ_i ~ Bernoulli(π_i) from :func:`act_plugin.act_math.draw_review` (tasks ordered by id, so a
seed reproduces the draw). ε̂_i is the prediction's ``mislabeling``, or 1 − ``score`` when that
is 0 or absent (predictions made by the ML backend).

Everything lives in Label Studio, so any machine sees the same draw:

- each drawn task's review record (:mod:`act_backend.records`) = the draw's fields
  ``{draw_id, rule, budget, floor, beta, seed, model_version, drawn_at, n_tasks, n_drawn,
  suspicion_digest, min_pi_undrawn}`` and its own ``{suspicion, pi, delta}``. Tasks not drawn
  have no record: their weights do not depend on π, and their π is recomputed from the draw's
  parameters and the suspicions (:func:`draw_pi`), checked against ``suspicion_digest``. Label
  Studio 1.23 has no bulk meta write, so the records go in ledgers: the first and the last of
  every :data:`RECORDS_PER_WRITE` drawn tasks (by id) carry in ``meta["act"]`` the draw's
  fields and ``drawn``, the ``[task_id, suspicion, pi]`` of all of them (the task's other meta
  keys are kept): two PATCHes per ledger, not one per task, and deleting a task
  loses no other task's record;
- a Data Manager view "ACT review sample" whose task set is exactly the drawn tasks (δ = 1),
  most suspicious first. Label Studio 1.23.2 applies a view's ``selected_items`` to
  ``GET /api/tasks?view=`` and to the labeling stream ``/api/projects/{id}/next?view=``
  (verified), but accepts ``selected_items`` only when a view is created, so a new draw makes a
  new view and deletes the old one. The view's ``data.act_draw_id`` marks the draw as complete,
  and its ``data.act`` holds the draw record (the fields above and the ids of the N tasks): the
  draw-level facts live in both places because the Data Manager may rewrite a view's data when
  someone edits the tab, while a draw of zero tasks has no task to carry them;
- a view "ACT most suspicious first": all tasks by ascending prediction score.

Consistency: a draw is complete when its view exists or when all its drawn tasks have its
record (draws of earlier versions, which wrote every task: all ``n_tasks``). An interrupted draw
(some records written) is finished on the next run when its stored parameters reproduce the
draw (same tasks and suspicions, by the digest, and the π and δ already written); otherwise it
is redone. Records of older draws are removed once the new draw's records are written. Without
``redraw=True`` a complete draw is never changed.
"""

from __future__ import annotations

import logging
import math
import numbers
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from label_studio_sdk import LabelStudio

from act_backend.records import (
    LEDGER_KEY,
    REVIEW_VIEW_TITLE,
    draw_record,
    draw_record_of,
    ids_in,
    is_lean,
    ledger_record,
    review_record_of,
    review_records,
    suspicion_digest,
    suspicion_of,
    with_review_record,
    without_review_record,
)
from act_plugin.act_math import (
    DEFAULT_BETA,
    DEFAULT_FLOOR,
    SAMPLING_RULES,
    draw_review,
    inclusion_probabilities,
    platt_map,
)
from act_plugin.labelstudio import (
    Gateway,
    LabelStudioError,
    act_prediction,
    model_versions,
    parse_time,
    resolve_model_version,
)
from act_plugin.validation import budget_count

__all__ = [
    "REVIEW_VIEW_TITLE",
    "SUSPICIOUS_VIEW_TITLE",
    "DrawParams",
    "ReviewDraw",
    "ReviewError",
    "compute_draw",
    "draw_facts",
    "draw_pi",
    "draw_sample",
]

logger = logging.getLogger(__name__)

SUSPICIOUS_VIEW_TITLE = "ACT most suspicious first"
#: Ascending prediction score = most suspicious first (score = 1 − suspicion).
SCORE_ASCENDING = ["tasks:predictions_score"]
_NO_FILTERS: dict[str, Any] = {"conjunction": "and", "items": []}
# An empty selected_items means "all tasks" to Label Studio; an empty sample needs a filter that
# matches nothing (task ids start at 1).
_MATCH_NOTHING: dict[str, Any] = {
    "conjunction": "and",
    "items": [{"filter": "filter:tasks:id", "operator": "equal", "type": "Number", "value": 0}],
}
_TOLERANCE = 1e-12
_SEED_BITS = 32
#: Drawn tasks whose review records one ledger holds, written on the first and the last of them
#: (Label Studio 1.23 has no bulk meta write, and a task PATCH costs it 60–110 ms: two queries
#: of the full Data Manager task set and its prefetches). At about 50 bytes per task a ledger
#: stays near 100 kB.
RECORDS_PER_WRITE = 2000
#: Metas are written this many at a time (8 writers took half the time of one on a 2-core
#: machine).
META_WRITERS = 8
#: Tasks are read in pages of this many (fewer, larger pages are faster), with these fields only
#: (half the time of all of them).
PAGE_SIZE = 500
_TASK_FIELDS = ("id", "meta", "predictions")

#: ``on_progress(stage, done, total)``; stage "read" (tasks fetched) or "write" (metas written).
Progress = Callable[[str, int, int], None]


class ReviewError(RuntimeError):
    """The review sample cannot be drawn; the message says what to do."""


@dataclass(frozen=True)
class DrawParams:
    """What determines a draw, given the tasks' suspicions (ordered by task id)."""

    rule: str
    budget: int | float
    floor: float
    beta: float
    seed: int
    model_version: str


@dataclass(frozen=True)
class ReviewDraw:
    """The review sample of a project, as stored in Label Studio."""

    draw_id: str
    rule: str
    budget: int | float
    floor: float
    beta: float
    seed: int
    model_version: str
    drawn_at: str
    n_tasks: int  # tasks in the draw (those with an ACT prediction when it was drawn)
    n_without_prediction: int  # tasks without an ACT prediction: not in the draw
    expected: float  # Σ π over the draw's tasks still in Label Studio (the budget B)
    drawn: int  # Σ δ: tasks to review
    view_id: int  # the "ACT review sample" view
    reused: bool  # an existing complete draw was returned unchanged
    task_ids: tuple[int, ...]  # drawn tasks (δ = 1), by id
    n_not_in_draw: int = 0  # tasks with an ACT prediction added after the draw
    suspicious_view_id: int | None = None  # the "ACT most suspicious first" view
    note: str = ""  # what happened, for the user


@dataclass(frozen=True)
class _Task:
    """A task with an ACT prediction: its meta as stored, and its review record (carried, or
    held for it by a ledger on another task: :func:`act_backend.records.review_records`)."""

    task_id: int
    suspicion: float
    meta: dict[str, Any]
    act: dict[str, Any] | None


@dataclass(frozen=True)
class _Existing:
    """The newest draw found in the tasks' meta or the review view."""

    draw_id: str
    first: dict[str, Any]  # the draw's facts: the view's draw record, else a task's record
    carriers: dict[int, dict[str, Any]]  # task id → its review record
    committed: bool  # the review view names this draw
    members: frozenset[int] | None  # the tasks the draw was made over, when the view says

    @property
    def lean(self) -> bool:
        return is_lean(self.first)

    @property
    def drawn_ids(self) -> tuple[int, ...]:
        return tuple(sorted(t for t, act in self.carriers.items() if act.get("delta") == 1))


# --------------------------------------------------------------------------------------------
# Pure part
# --------------------------------------------------------------------------------------------


def compute_draw(
    suspicion: Sequence[float] | np.ndarray,
    params: DrawParams,
    calibration: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(π, δ) for tasks ordered by id; deterministic for given suspicions and ``params``.

    ``calibration`` = (a, b): π is computed from σ(a + b · logit ε̂) instead of ε̂ (a round of a
    review in rounds, after the critic was recalibrated on the reviews so far).
    """
    eps = calibrated(suspicion, calibration)
    pi = inclusion_probabilities(
        eps, params.budget, rule=params.rule, floor=params.floor, beta=params.beta
    )
    return pi, draw_review(pi, seed=params.seed)


def calibrated(
    suspicion: Sequence[float] | np.ndarray, calibration: Sequence[float] | None
) -> np.ndarray:
    """σ(a + b · logit ε̂) for ``calibration`` = (a, b); ε̂ itself for None."""
    eps = np.asarray(suspicion, dtype=float)
    if calibration is None:
        return eps
    a, b = (float(x) for x in calibration)
    return platt_map(a, b)(eps)


def draw_pi(
    record: Mapping[str, Any], tasks: Sequence[tuple[int, float]]
) -> dict[int, float] | None:
    """π of every task of a draw, recomputed from its record's parameters, by task id.

    ``tasks`` are (task id, suspicion) pairs by id. None unless they are exactly those the
    draw was made from (same ids and suspicions: its ``suspicion_digest``) or the record is
    unusable.
    """
    params = _params_from_meta(record)
    ids = [task_id for task_id, _ in tasks]
    suspicions = [suspicion for _, suspicion in tasks]
    calibration = _calibration_of(record)
    if (
        params is None
        or calibration is False
        or len(tasks) != record.get("n_tasks")
        or suspicion_digest(ids, suspicions) != record.get("suspicion_digest")
    ):
        return None
    pi = inclusion_probabilities(
        calibrated(suspicions, calibration),
        params.budget,
        rule=params.rule,
        floor=params.floor,
        beta=params.beta,
    )
    return dict(zip(ids, (float(p) for p in pi), strict=True))


def _calibration_of(record: Mapping[str, Any]) -> tuple[float, float] | bool | None:
    """The record's calibration (a, b), None without one, False when it is malformed."""
    value = record.get("calibration")
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 2 and all(_is_real(x) for x in value):
        return float(value[0]), float(value[1])
    return False


def _digest(tasks: Sequence[_Task]) -> str:
    return suspicion_digest([t.task_id for t in tasks], [t.suspicion for t in tasks])


def _check_options(rule: object, floor: object, beta: object, seed: object) -> None:
    """The options that do not depend on the tasks (the budget is checked against N)."""
    if rule not in SAMPLING_RULES:
        raise ReviewError(f"rule must be one of {', '.join(SAMPLING_RULES)}; got {rule!r}")
    if not _is_real(floor) or not 0.0 <= float(floor) < 1.0:  # type: ignore[arg-type]
        raise ReviewError(f"floor must be a number in [0, 1); got {floor!r}")
    if not _is_real(beta) or not float(beta) > 0.0:  # type: ignore[arg-type]
        raise ReviewError(f"beta must be a positive number; got {beta!r}")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0
    ):
        raise ReviewError(f"seed must be a non-negative int or None; got {seed!r}")


def _is_real(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(float(value))
    )


def _params_from_meta(act: Mapping[str, Any]) -> DrawParams | None:
    """The parameters a stored draw was made with; None when they are unusable."""
    try:
        params = DrawParams(
            rule=act["rule"],
            budget=act["budget"],
            floor=float(act["floor"]),
            beta=float(act["beta"]),
            seed=act["seed"],
            model_version=act["model_version"],
        )
        _check_options(params.rule, params.floor, params.beta, params.seed)
        budget_count(params.budget, act["n_tasks"])
    except (KeyError, TypeError, ValueError, ReviewError):
        return None
    return params if isinstance(params.model_version, str) else None


def _latest_draw(tasks: Sequence[_Task], views: Sequence[Mapping[str, Any]]) -> _Existing | None:
    """The newest draw in the tasks' meta and the review view (by drawn_at, then size)."""
    carriers: dict[str, dict[int, dict[str, Any]]] = {}
    for task in tasks:
        if task.act is not None:
            carriers.setdefault(task.act["draw_id"], {})[task.task_id] = task.act
    named = {r["draw_id"]: r for view in views if (r := draw_record_of(view)) is not None}
    found = []
    for draw_id in {*carriers, *named}:
        mine = carriers.get(draw_id, {})
        record = named.get(draw_id, {})
        first = record if "n_tasks" in record else mine.get(min(mine)) if mine else None
        if first is not None:
            members = ids_in(record.get("task_ids"))
            found.append(
                _Existing(draw_id, first, mine, draw_id in named, frozenset(members or ()) or None)
            )
    if not found:
        return None
    return max(
        found, key=lambda e: (parse_time(e.first.get("drawn_at")), len(e.carriers), e.draw_id)
    )


def _reproduces(existing: _Existing, tasks: Sequence[_Task], params: DrawParams) -> bool:
    """Whether recomputing the draw over ``tasks`` gives the π and δ already written."""
    if existing.first.get("n_tasks") != len(tasks):
        return False
    if existing.lean and existing.first.get("suspicion_digest") != _digest(tasks):
        return False
    calibration = _calibration_of(existing.first)
    if calibration is False:
        return False
    try:
        pi, delta = compute_draw([t.suspicion for t in tasks], params, calibration)
    except ValueError:
        return False
    for index, task in enumerate(tasks):
        stored = existing.carriers.get(task.task_id)
        if stored is None:
            continue
        try:
            same = (
                abs(float(stored["suspicion"]) - task.suspicion) <= _TOLERANCE
                and abs(float(stored["pi"]) - float(pi[index])) <= _TOLERANCE
                and int(stored["delta"]) == int(delta[index])
            )
        except (KeyError, TypeError, ValueError):
            return False
        if not same:
            return False
    return True


def draw_facts(
    params: DrawParams,
    task_ids: Sequence[int],
    suspicions: Sequence[float],
    pi: np.ndarray,
    delta: np.ndarray,
    *,
    draw_id: str | None = None,
    drawn_at: str | None = None,
) -> dict[str, Any]:
    """A new draw's facts, what every review record of it repeats
    (:data:`act_backend.records.DRAW_FIELDS`): its parameters, N, Σδ, the fingerprint of the
    (task id, suspicion) pairs drawn from and the smallest π not drawn. A fresh id and the
    current time unless given. Used by ``ls-act review`` and ``ls-act scale review``."""
    undrawn = pi[~delta.astype(bool)]
    return {
        "draw_id": draw_id or uuid.uuid4().hex,
        **asdict(params),
        "drawn_at": drawn_at or datetime.now(timezone.utc).isoformat(),
        "n_tasks": len(task_ids),
        "n_drawn": int(delta.sum()),
        "suspicion_digest": suspicion_digest(task_ids, suspicions),
        "min_pi_undrawn": float(undrawn.min()) if undrawn.size else None,
    }


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def draw_sample(
    client: LabelStudio,
    project_id: int,
    *,
    budget: int | float,
    rule: str = "thresholded",
    floor: float = DEFAULT_FLOOR,
    beta: float = DEFAULT_BETA,
    seed: int | None = None,
    redraw: bool = False,
    model_version: str | None = None,
    on_progress: Progress | None = None,
) -> ReviewDraw:
    """Draw (or return the existing) review sample of ``project_id`` and store it in Label Studio.

    Parameters
    ----------
    budget : int or float
        B: a number of tasks (int ≥ 1) or a fraction of the tasks with an ACT prediction in
        (0, 1). It is the expected number of reviews (exact for the thresholded rule).
    rule, floor, beta
        See :func:`act_plugin.act_math.inclusion_probabilities`.
    seed : int or None
        Seed of δ; None draws a random one, which is recorded in the tasks' meta.
    redraw : bool
        Replace an existing complete draw. Without it, an existing complete draw is returned
        unchanged (``reused=True``) whatever the other options say.
    model_version : str or None
        The ACT predictions' model_version; default: the project's (or the only one present).
    on_progress : callable or None
        ``on_progress(stage, done, total)``, stage "read" or "write".

    Raises
    ------
    ReviewError
        Bad options, no ACT predictions ("run `ls-act annotate` first"), or Label Studio
        failing; an interrupted write is finished by running again.
    """
    _check_options(rule, floor, beta, seed)
    try:
        return _draw_sample(
            Gateway(client),
            int(project_id),
            budget=budget,
            rule=rule,
            floor=float(floor),
            beta=float(beta),
            seed=seed,
            redraw=redraw,
            model_version=model_version,
            on_progress=on_progress,
        )
    except LabelStudioError as exc:
        raise ReviewError(f"project {project_id}: {exc}") from exc


def _draw_sample(
    gateway: Gateway,
    project_id: int,
    *,
    budget: int | float,
    rule: str,
    floor: float,
    beta: float,
    seed: int | None,
    redraw: bool,
    model_version: str | None,
    on_progress: Progress | None,
) -> ReviewDraw:
    project = gateway.get_project(project_id)
    raw = gateway.list_tasks(
        project_id,
        include=_TASK_FIELDS,
        page_size=PAGE_SIZE,
        on_page=(lambda done, total: on_progress("read", done, total)) if on_progress else None,
    )
    version = _model_version(model_version, project, raw)
    tasks = _act_tasks(raw, version)
    try:
        budget_count(budget, len(tasks))
    except ValueError as exc:
        raise ReviewError(
            f"project {project_id} ({len(tasks)} tasks with an ACT prediction of {version!r}): "
            f"{exc}"
        ) from None
    n_without = len(raw) - len(tasks)
    views = gateway.list_views(project_id)
    score_note = _score_note(project, version)

    existing = _latest_draw(tasks, views)
    note = ""
    if existing is not None and not redraw:
        kept = _keep_or_finish(
            gateway, project_id, existing, tasks, views, n_without, score_note, on_progress
        )
        if kept is not None:
            return kept
        note = (
            f"an interrupted draw ({existing.draw_id}) could not be finished because the tasks "
            "changed since; made a new draw"
        )

    params = DrawParams(
        rule=rule,
        budget=int(budget) if isinstance(budget, numbers.Integral) else float(budget),
        floor=floor,
        beta=beta,
        seed=int(seed) if seed is not None else secrets.randbits(_SEED_BITS),
        model_version=version,
    )
    return _write_draw(
        gateway, project_id, tasks, params, views,
        draw_id=uuid.uuid4().hex,
        drawn_at=datetime.now(timezone.utc).isoformat(),
        n_without=n_without,
        note=_join(note or ("replaced the previous draw" if existing else "new draw"), score_note),
        on_progress=on_progress,
    )  # fmt: skip


def _keep_or_finish(
    gateway: Gateway,
    project_id: int,
    existing: _Existing,
    tasks: Sequence[_Task],
    views: Sequence[Mapping[str, Any]],
    n_without: int,
    score_note: str,
    on_progress: Progress | None,
) -> ReviewDraw | None:
    """The existing draw, complete or finished now; None when it cannot be finished."""
    if _is_complete(existing):
        return _reuse(gateway, project_id, existing, tasks, n_without, views, score_note)
    params = _params_from_meta(existing.first)
    if params is None or not _reproduces(existing, tasks, params):
        return None
    return _write_draw(
        gateway, project_id, tasks, params, views,
        draw_id=existing.draw_id,
        drawn_at=str(existing.first.get("drawn_at")),
        n_without=n_without,
        note=_join("finished an interrupted draw", score_note),
        on_progress=on_progress,
    )  # fmt: skip


def _model_version(
    asked: str | None, project: Mapping[str, Any], raw: Sequence[Mapping[str, Any]]
) -> str:
    """The ACT predictions' model_version (:func:`resolve_model_version`); ReviewError."""
    try:
        return resolve_model_version(asked, project.get("model_version"), model_versions(raw))
    except ValueError as exc:
        raise ReviewError(f"project {project.get('id')}: {exc}") from None


def _act_tasks(raw: Sequence[Mapping[str, Any]], model_version: str) -> list[_Task]:
    records = review_records({int(task["id"]): task.get("meta") for task in raw})
    tasks = []
    for task in raw:
        prediction = act_prediction(task, model_version)
        if prediction is not None:
            meta = task.get("meta")
            tasks.append(
                _Task(
                    task_id=int(task["id"]),
                    suspicion=suspicion_of(prediction),
                    meta=dict(meta) if isinstance(meta, dict) else {},
                    act=records.get(int(task["id"])),
                )
            )
    return sorted(tasks, key=lambda t: t.task_id)


def _is_complete(existing: _Existing) -> bool:
    if existing.committed:
        return True
    if existing.lean:
        return len(existing.drawn_ids) == existing.first.get("n_drawn")
    return existing.first.get("n_tasks") == len(existing.carriers)


def _reuse(
    gateway: Gateway,
    project_id: int,
    existing: _Existing,
    tasks: Sequence[_Task],
    n_without: int,
    views: Sequence[Mapping[str, Any]],
    score_note: str,
) -> ReviewDraw:
    """The complete draw as stored; its view and the removal of older records redone if due."""
    first = existing.first
    drawn_ids = existing.drawn_ids
    members, pi = _members_and_pi(existing, tasks)
    _clear_older_records(gateway, tasks, existing.draw_id, (), None)
    record = draw_record(first, members) if existing.lean and members is not None else None
    view_id = _commit_view(gateway, project_id, existing.draw_id, record, drawn_ids, views)
    suspicious_id = _ensure_suspicious_view(gateway, project_id, views)
    n_tasks = first.get("n_tasks")
    return ReviewDraw(
        draw_id=existing.draw_id,
        rule=first.get("rule", ""),
        budget=first.get("budget", 0),
        floor=float(first.get("floor", 0.0)),
        beta=float(first.get("beta", 0.0)),
        seed=int(first.get("seed", 0)),
        model_version=str(first.get("model_version", "")),
        drawn_at=str(first.get("drawn_at", "")),
        n_tasks=int(n_tasks) if isinstance(n_tasks, int) else len(existing.carriers),
        n_without_prediction=n_without,
        expected=float(sum(pi.values())),
        drawn=len(drawn_ids),
        view_id=view_id,
        reused=True,
        task_ids=drawn_ids,
        n_not_in_draw=sum(t.task_id not in members for t in tasks) if members else 0,
        suspicious_view_id=suspicious_id,
        note=_join("kept the existing complete draw (pass redraw=True to replace it)", score_note),
    )


def _members_and_pi(
    existing: _Existing, tasks: Sequence[_Task]
) -> tuple[frozenset[int] | None, dict[int, float]]:
    """The draw's tasks (None if unknown) and the π known for them (the stored ones when the
    draw cannot be recomputed)."""
    stored = {t: float(a.get("pi", 0.0)) for t, a in existing.carriers.items()}
    if not existing.lean:
        return frozenset(existing.carriers), stored
    members = existing.members
    if members is None and _digest(tasks) == existing.first.get("suspicion_digest"):
        members = frozenset(t.task_id for t in tasks)
    pairs = [(t.task_id, t.suspicion) for t in tasks if members and t.task_id in members]
    return members, draw_pi(existing.first, pairs) or stored


def _write_draw(
    gateway: Gateway,
    project_id: int,
    tasks: Sequence[_Task],
    params: DrawParams,
    views: Sequence[Mapping[str, Any]],
    *,
    draw_id: str,
    drawn_at: str,
    n_without: int,
    note: str,
    on_progress: Progress | None,
    round_facts: Mapping[str, Any] | None = None,
    earlier: Sequence[Mapping[str, Any]] = (),
) -> ReviewDraw:
    """Compute the draw, write the drawn tasks' records (the ledgers not written yet), remove
    older records, then commit the view. A round of a review in rounds passes its
    ``round_facts`` (:data:`act_backend.records.ROUND_FIELDS`), ``tasks`` = its pool, and the
    draw records of the earlier rounds."""
    facts = dict(round_facts or {})
    try:
        pi, delta = compute_draw([t.suspicion for t in tasks], params, facts.get("calibration"))
    except ValueError as exc:
        raise ReviewError(f"project {project_id}: {exc}") from None
    ids, suspicions = [t.task_id for t in tasks], [t.suspicion for t in tasks]
    draw = draw_facts(params, ids, suspicions, pi, delta, draw_id=draw_id, drawn_at=drawn_at)
    draw |= facts
    drawn = [(t, float(p)) for t, p, d in zip(tasks, pi, delta, strict=True) if d]
    todo = _ledger_writes(draw, drawn)
    _write_metas(gateway, todo, on_progress)
    drawn_ids = tuple(t.task_id for t, _ in drawn)
    _clear_older_records(gateway, tasks, draw_id, [t for t, _ in todo], on_progress)
    record = draw_record(draw, [t.task_id for t in tasks], earlier)
    view_id = _commit_view(gateway, project_id, draw_id, record, drawn_ids, views)
    return ReviewDraw(
        draw_id=draw_id,
        rule=params.rule,
        budget=params.budget,
        floor=params.floor,
        beta=params.beta,
        seed=params.seed,
        model_version=params.model_version,
        drawn_at=drawn_at,
        n_tasks=len(tasks),
        n_without_prediction=n_without,
        expected=float(pi.sum()),
        drawn=len(drawn_ids),
        view_id=view_id,
        reused=False,
        task_ids=drawn_ids,
        suspicious_view_id=_ensure_suspicious_view(gateway, project_id, views),
        note=note,
    )


def _ledger_writes(
    draw: Mapping[str, Any], drawn: Sequence[tuple[_Task, float]]
) -> list[tuple[int, dict[str, Any]]]:
    """The metas to write for the drawn tasks' records: each run of :data:`RECORDS_PER_WRITE`
    drawn tasks (by id) as a ledger on its first and its last task (two copies, so deleting
    one task loses no other task's record), except on a carrier that holds it already (an
    interrupted draw being finished)."""
    writes = []
    for start in range(0, len(drawn), RECORDS_PER_WRITE):
        run = drawn[start : start + RECORDS_PER_WRITE]
        ledger = ledger_record(draw, [(t.task_id, t.suspicion, p) for t, p in run])
        carriers = [run[0][0]] if len(run) == 1 else [run[0][0], run[-1][0]]
        for carrier in carriers:
            held = review_record_of(carrier.meta) or {}
            if held.get("draw_id") != draw["draw_id"] or LEDGER_KEY not in held:
                writes.append((carrier.task_id, with_review_record(carrier.meta, ledger)))
    return writes


def _clear_older_records(
    gateway: Gateway,
    tasks: Sequence[_Task],
    draw_id: str,
    carriers: Sequence[int],
    on_progress: Progress | None,
) -> None:
    """Remove the records (and ledgers) of other draws from ``tasks``, except from the
    ``carriers`` just written with this draw's ledgers (``tasks`` holds their meta before)."""
    keep = set(carriers)
    older = [
        (t.task_id, without_review_record(t.meta))
        for t in tasks
        if (own := review_record_of(t.meta)) is not None
        and own["draw_id"] != draw_id
        and t.task_id not in keep
    ]
    _write_metas(gateway, older, on_progress)


def _write_metas(
    gateway: Gateway, metas: Sequence[tuple[int, dict[str, Any]]], on_progress: Progress | None
) -> None:
    """Replace the tasks' meta, :data:`META_WRITERS` at a time; ReviewError at the first
    failure (what is not started then is not written)."""
    stop = threading.Event()

    def write(item: tuple[int, dict[str, Any]]) -> LabelStudioError | bool:
        """True when written, False when skipped after a failure, else the failure."""
        if stop.is_set():
            return False
        try:
            gateway.update_task_meta(*item)
        except LabelStudioError as exc:
            stop.set()
            return exc
        return True

    written, failed = 0, None
    with ThreadPoolExecutor(META_WRITERS) as pool:
        for (task_id, _), outcome in zip(metas, pool.map(write, metas), strict=True):
            if isinstance(outcome, LabelStudioError):
                failed = failed or (task_id, outcome)
            elif outcome:
                written += 1
                if on_progress:
                    on_progress("write", written, len(metas))
    if failed is not None:
        raise ReviewError(
            f"writing the review draw stopped at task {failed[0]} ({written} of {len(metas)} "
            f"written): {failed[1]}. Run the same command again: the interrupted draw is "
            "detected and finished."
        ) from failed[1]


# --------------------------------------------------------------------------------------------
# Data Manager views
# --------------------------------------------------------------------------------------------


def _title(view: Mapping[str, Any]) -> str | None:
    data = view.get("data")
    return data.get("title") if isinstance(data, dict) else None


def _view_draw_id(view: Mapping[str, Any]) -> str | None:
    data = view.get("data")
    if _title(view) != REVIEW_VIEW_TITLE or not isinstance(data, dict):
        return None
    return data.get("act_draw_id")


def _commit_view(
    gateway: Gateway,
    project_id: int,
    draw_id: str,
    record: Mapping[str, Any] | None,
    drawn_ids: Sequence[int],
    views: Sequence[Mapping[str, Any]],
) -> int:
    """The sample view of ``draw_id`` (created if missing; older sample views are deleted).

    Its ``data.act_draw_id`` is the commit mark of the draw, ``data.act`` its ``record``.
    """
    for view in views:
        if _view_draw_id(view) == draw_id:
            return int(view["id"])
    data: dict[str, Any] = {
        "title": REVIEW_VIEW_TITLE,
        "ordering": SCORE_ASCENDING,
        "filters": _NO_FILTERS if drawn_ids else _MATCH_NOTHING,
        "act_draw_id": draw_id,
    }
    if record is not None:
        data["act"] = dict(record)
    created = gateway.create_view(project_id, data, drawn_ids)
    for view in views:
        if _title(view) == REVIEW_VIEW_TITLE:
            gateway.delete_view(int(view["id"]))
    return created


def ensure_suspicious_view(client: LabelStudio, project_id: int) -> int:
    """The id of the project's "ACT most suspicious first" view (created when missing)."""
    gateway = Gateway(client)
    try:
        return _ensure_suspicious_view(gateway, project_id, gateway.list_views(project_id))
    except LabelStudioError as exc:
        raise ReviewError(f"project {project_id}: {exc}") from exc


def _ensure_suspicious_view(
    gateway: Gateway, project_id: int, views: Sequence[Mapping[str, Any]]
) -> int:
    for view in views:
        if _title(view) == SUSPICIOUS_VIEW_TITLE:
            return int(view["id"])
    return gateway.create_view(
        project_id, {"title": SUSPICIOUS_VIEW_TITLE, "ordering": SCORE_ASCENDING}
    )


def _score_note(project: Mapping[str, Any], version: str) -> str:
    if project.get("model_version") == version:
        return ""
    return (
        f"the project's model_version is {project.get('model_version')!r}, not {version!r}: Label "
        "Studio's score column, and so the views' order, ignores these predictions until the "
        "project's model_version is set to it"
    )


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
