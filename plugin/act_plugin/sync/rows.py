"""Row rules: Label Studio task records → training-set rows (pure; no Label Studio, no files).

One row per task with an ACT prediction (:data:`COLUMNS`). Which annotation counts as a human
review, what makes a task a problem and how rows are weighted is told in :mod:`act_plugin.sync`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from act_backend.labeling import LabelingSpec
from act_backend.records import answer_labels, record_pi, review_record_of, suspicion_of
from act_plugin.act_math import act_weights
from act_plugin.labelstudio import act_prediction, parse_time

__all__ = ["COLUMNS", "MODEL_LAST_ACTIONS", "Problem", "build_rows"]

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
#: ``Annotation.last_action`` values (tasks/choices.py, ActionType) meaning "not a person's label".
MODEL_LAST_ACTIONS = frozenset({"prediction", "propagated_annotation", "imported"})


@dataclass(frozen=True)
class Problem:
    """A task (or, with ``task_id`` None, the draw) whose rows need a human's attention."""

    task_id: int | None
    reason: str


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
        act = review_record_of(task.get("meta"))
        if act is not None:
            carriers.setdefault(act["draw_id"], []).append(act)
    if not carriers:
        return None, {}
    draw_id = max(
        carriers,
        key=lambda d: (len(carriers[d]), parse_time(carriers[d][0].get("drawn_at")), d),
    )
    return draw_id, carriers[draw_id][0]


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
    machine = answer_labels(prediction.get("result"), spec)
    machine_error = _invalid(machine, spec)
    if machine_error:
        reasons.append(f"machine label {machine!r} {machine_error}")
    annotation = _human_annotation(task.get("annotations") or [], bots)
    human = answer_labels(annotation.get("result"), spec) if annotation else None
    if annotation is not None and not machine_error:
        human_error = _invalid(human, spec)
        if human_error:
            reasons.append(f"annotation {annotation.get('id')}: label {human!r} {human_error}")
    reviewed = annotation is not None and not reasons

    act = review_record_of(task.get("meta"))
    pi = None
    in_sample = False
    if act is not None and act["draw_id"] != draw_id:
        reasons.append(f"carries draw {act['draw_id']}, not the current draw {draw_id}")
    elif act is not None:
        pi, in_sample = record_pi(act), act.get("delta") == 1
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


def _is_human_review(annotation: Mapping[str, Any], bots: set[int]) -> bool:
    """Submitted by a person: see the module docstring of :mod:`act_plugin.sync`."""
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
    """Fill weight_machine = λ(1 − δ/π) and weight_human = δ/π (π = 1 outside the sample).

    Pending rows (drawn, not reviewed yet: their δ is 1 but no human label exists) get both
    weights 0: read with δ = 0 they would put the machine label at weight λ on exactly the rows
    chosen for review, and take away the 1/π weight their review will carry. They stay flagged
    (``pending``) and re-enter with their weights once reviewed.
    """
    if not rows:
        return
    delta = np.array([row["delta"] for row in rows], dtype=float)
    pi = np.array(
        [1.0 if row["outside_sample"] or row["pi"] is None else row["pi"] for row in rows]
    )
    machine, human = act_weights(delta, pi, lam=lam)
    for row, w_m, w_h in zip(rows, machine, human, strict=True):
        kept = 0.0 if row["pending"] else 1.0
        row["weight_machine"] = kept * float(w_m) + 0.0  # + 0.0 turns −0.0 into 0.0
        row["weight_human"] = kept * float(w_h) + 0.0


def _normalized(value: Any) -> Any:
    """JSON-able ``value`` with dict keys sorted (stable output whatever the key order)."""
    return json.loads(json.dumps(value, sort_keys=True, ensure_ascii=False))


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
