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
import numpy.typing as npt

from act_backend.labeling import LabelingSpec
from act_backend.records import (
    answer_labels,
    ids_in,
    is_lean,
    record_pi,
    review_records,
    suspicion_of,
)
from act_plugin.act_math import act_weights, cross_fitted_probabilities, platt_map, soft_lambda
from act_plugin.labelstudio import act_prediction, parse_time
from act_plugin.review import draw_pi
from act_plugin.sequential import last_round_weights

__all__ = ["COLUMNS", "MODEL_LAST_ACTIONS", "Problem", "build_rows", "wrong_probabilities"]

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
    "round",
    "pi_rounds",
)
#: ``Annotation.last_action`` values (tasks/choices.py, ActionType) meaning "not a person's label".
MODEL_LAST_ACTIONS = frozenset({"prediction", "propagated_annotation", "imported"})


@dataclass(frozen=True)
class _Round:
    """One round of a review in rounds, as the rows read it."""

    draw_id: str
    record: Mapping[str, Any]
    drawn: frozenset[int]  # tasks carrying its record with delta 1
    pi: dict[int, float] | None  # π over its pool, recomputed; None when impossible


@dataclass(frozen=True)
class _Draw:
    """The current draw as the rows read it."""

    draw_id: str
    record: Mapping[str, Any]  # its facts: the review view's draw record, else a task's record
    drawn_carriers: int  # tasks carrying its record with delta 1
    members: frozenset[int] | None  # the tasks it was made over, when the view says
    pi: dict[int, float] | None  # π of each of its tasks, recomputed; None when impossible
    rounds: tuple[_Round, ...] = ()  # a review in rounds: every round so far, this one last

    @property
    def lean(self) -> bool:
        return is_lean(self.record)


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
    soft_power: float = 0.0,
    wrong_probability: npt.ArrayLike | None = None,
    bot_users: Iterable[int] = (),
    draw: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Rows (sorted by task_id, columns :data:`COLUMNS`) and problems, from task dicts.

    ``tasks`` are Label Studio tasks with ``predictions``, ``annotations`` and ``meta``;
    ``draw`` is the draw record the review view names
    (:func:`act_backend.records.draw_record_of`), if any. ``soft_power`` k > 0 makes λ per
    row (:func:`_row_lambda`); 0 keeps the one ``lam``. ``wrong_probability``, one p̂ per row in
    task-id order, replaces the p̂ computed from these rows alone (a caller that has more rows,
    as ``ls-act scale sync`` over its blocks, computes it with :func:`wrong_probabilities`).
    """
    bots = {int(b) for b in bot_users}
    acts = [(t, p) for t in tasks if (p := act_prediction(t, model_version)) is not None]
    acts.sort(key=lambda item: int(item[0]["id"]))
    records = review_records({int(t["id"]): t.get("meta") for t, _ in acts})
    current = _current_draw(acts, draw, records)
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for task, prediction in acts:
        row, reasons = _row(task, prediction, spec, current, bots, records.get(int(task["id"])))
        rows.append(row)
        problems.extend(Problem(row["task_id"], r) for r in reasons)
    problems.extend(_draw_problems(rows, current, model_version))
    rounds = current.rounds if current is not None else ()
    _add_rounds(rows, rounds)
    if soft_power:
        given = None if wrong_probability is None else np.asarray(wrong_probability, float)
        if given is not None and given.shape != (len(rows),):
            raise ValueError(f"wrong_probability must hold {len(rows)} values (one per row)")
        _add_weights(rows, _row_lambda(rows, lam, soft_power, rounds, given), rounds)
    else:
        _add_weights(rows, lam, rounds)
    return rows, problems


def _current_draw(
    acts: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    named: Mapping[str, Any] | None,
    records: Mapping[int, Mapping[str, Any]],
) -> _Draw | None:
    """The draw the review view names, else the newest the tasks' ``records`` hold (ties: the
    most records), with the π of its tasks recomputed when it wrote drawn tasks only."""
    carriers: dict[str, list[Mapping[str, Any]]] = {}
    for task_id in sorted(records):
        act = records[task_id]
        carriers.setdefault(act["draw_id"], []).append(act)
    has_facts = named is not None and "n_tasks" in named
    if named is not None and (has_facts or named["draw_id"] in carriers):
        draw_id = named["draw_id"]
    elif carriers:
        draw_id = max(
            carriers,
            key=lambda d: (parse_time(carriers[d][0].get("drawn_at")), len(carriers[d]), d),
        )
    else:
        return None
    mine = carriers.get(draw_id, [])
    record = named if has_facts and named["draw_id"] == draw_id else mine[0]  # type: ignore[index]
    members = ids_in(record.get("task_ids"))
    pairs = [
        (int(t["id"]), suspicion_of(p))
        for t, p in acts
        if members is None or int(t["id"]) in members
    ]
    return _Draw(
        draw_id=draw_id,
        record=record,
        drawn_carriers=sum(a.get("delta") == 1 for a in mine),
        members=frozenset(members) if members is not None else None,
        pi=draw_pi(record, pairs) if is_lean(record) else None,
        rounds=_series_rounds(acts, record, records) if record.get("series") else (),
    )


def _series_rounds(
    acts: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    record: Mapping[str, Any],
    records: Mapping[int, Mapping[str, Any]],
) -> tuple[_Round, ...]:
    """Every round of the current draw's series, in order; () when one cannot be found.

    A round's facts come from its drawn tasks' records or the view's ``earlier_rounds``; its
    pool from its ``task_ids``, else the tasks not drawn in an earlier round.
    """
    series = record["series"]
    facts: dict[int, Mapping[str, Any]] = {}
    drawn: dict[str, set[int]] = {}
    for earlier in record.get("earlier_rounds") or []:
        if isinstance(earlier, dict) and isinstance(earlier.get("round"), int):
            facts[earlier["round"]] = earlier
    for task_id in sorted(records):
        act = records[task_id]
        if act.get("series") == series and isinstance(act.get("round"), int):
            facts.setdefault(act["round"], act)
            if act.get("delta") == 1:
                drawn.setdefault(act["draw_id"], set()).add(task_id)
    facts[int(record["round"])] = record
    if sorted(facts) != list(range(1, len(facts) + 1)):
        return ()
    suspicion = {int(t["id"]): suspicion_of(p) for t, p in acts}
    rounds: list[_Round] = []
    before: set[int] = set()
    for number in sorted(facts):
        fact = facts[number]
        members = ids_in(fact.get("task_ids"))
        pool = members if members is not None else set(suspicion) - before
        pairs = [(i, suspicion[i]) for i in sorted(pool) if i in suspicion]
        mine = frozenset(drawn.get(fact["draw_id"], set()))
        rounds.append(_Round(fact["draw_id"], fact, mine, draw_pi(fact, pairs)))
        before |= mine
    return tuple(rounds)


def _row(
    task: Mapping[str, Any],
    prediction: Mapping[str, Any],
    spec: LabelingSpec,
    current: _Draw | None,
    bots: set[int],
    act: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], list[str]]:
    """One row (without weights) and the reasons it is a problem; ``act`` is the task's
    review record."""
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

    pi, in_sample, in_draw, reason = _draw_pi(task_id, act, current)
    reasons.extend([reason] if reason else [])
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
        "draw_id": current.draw_id if in_draw and current is not None else None,
    }, reasons


def _draw_pi(
    task_id: int, act: Mapping[str, Any] | None, current: _Draw | None
) -> tuple[float | None, bool, bool, str | None]:
    """(π, drawn, in the draw, a problem) of a task: π from its record when it carries the
    current draw's, else recomputed; a record of another draw is a problem unless the current
    draw wrote drawn tasks only (then it is an older record, ignored)."""
    if current is not None and act is not None and act["draw_id"] == current.draw_id:
        pi = record_pi(act)
        if pi is None:
            return None, False, True, f"meta of draw {current.draw_id} has no valid pi"
        return pi, act.get("delta") == 1, True, None
    if current is not None and current.pi is not None and task_id in current.pi:
        return current.pi[task_id], False, True, None
    earlier = {r.draw_id for r in current.rounds[:-1]} if current is not None else set()
    if act is not None and act["draw_id"] in earlier:  # drawn in an earlier round
        pi = record_pi(act)
        if pi is None:
            return None, False, True, f"meta of draw {act['draw_id']} has no valid pi"
        return pi, act.get("delta") == 1, True, None
    if act is not None and current is not None and not current.lean:
        return (
            None,
            False,
            False,
            f"carries draw {act['draw_id']}, not the current draw " + (current.draw_id),
        )
    return None, False, current is not None and task_id in (current.members or ()), None


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
    rows: Sequence[Mapping[str, Any]], current: _Draw | None, model_version: str
) -> list[Problem]:
    if current is None:
        return []
    reasons = [_coverage(rows, current)]
    drawn_version = current.record.get("model_version")
    if drawn_version and drawn_version != model_version:
        reasons.append(
            f"draw {current.draw_id} was made from model_version {drawn_version!r}; these rows "
            f"use {model_version!r}"
        )
    return [Problem(None, reason) for reason in reasons if reason]


def _coverage(rows: Sequence[Mapping[str, Any]], current: _Draw) -> str | None:
    """What is missing of the draw: deleted tasks, unwritten records, changed suspicions."""
    draw_id, n_tasks = current.draw_id, current.record.get("n_tasks")
    unknown_pi = "the π of the rows not drawn cannot be recomputed (left empty; their weights "
    unknown_pi += "do not depend on π)"
    if not current.lean:
        carried = sum(1 for row in rows if row["draw_id"] == draw_id)
        if isinstance(n_tasks, int) and carried < n_tasks:
            return (
                f"draw {draw_id} covered {n_tasks} tasks but only {carried} carry it now: tasks "
                "were deleted since the draw (the rest is read without them), or `ls-act review` "
                "was interrupted (run it again to finish the draw)"
            )
        return None
    present = {int(row["task_id"]) for row in rows}
    if current.members is not None and not current.members <= present:
        left = len(current.members & present)
        return (
            f"draw {draw_id} covered {n_tasks} tasks but only {left} are left: tasks were "
            f"deleted since the draw, so {unknown_pi}"
        )
    n_drawn = current.record.get("n_drawn")
    if isinstance(n_drawn, int) and current.drawn_carriers < n_drawn:
        return (
            f"draw {draw_id} drew {n_drawn} tasks but only {current.drawn_carriers} have its "
            "record: `ls-act review` was interrupted (run it again to finish the draw), or "
            "drawn tasks were deleted"
        )
    if current.pi is None:
        return (
            f"the suspicions of the tasks of draw {draw_id} are not those it was drawn from "
            f"(its fingerprint differs: a newer ACT prediction, or tasks deleted), so {unknown_pi}"
        )
    return None


def _add_rounds(rows: list[dict[str, Any]], rounds: Sequence[_Round]) -> None:
    """Fill ``round`` (the round that drew the row) and ``pi_rounds`` (its π in each round, 0
    where it was not in the pool; None for a round whose π cannot be recomputed) of a review
    in rounds; both None otherwise."""
    for row in rows:
        task_id = row["task_id"]
        row["round"] = next(
            (n for n, r in enumerate(rounds, 1) if task_id in r.drawn and row["in_sample"]), None
        )
        row["pi_rounds"] = (
            [None if r.pi is None else r.pi.get(task_id, 0.0) for r in rounds] if rounds else None
        )


def _row_lambda(
    rows: Sequence[Mapping[str, Any]],
    lam: float,
    power: float,
    rounds: Sequence[_Round],
    given: np.ndarray | None = None,
) -> np.ndarray:
    """λ_i = λ · (1 − p̂_i)^k (:func:`act_plugin.act_math.soft_lambda`), p̂_i the critic's
    P(wrong) read without row i's own review, so the weights stay unbiased: over a review in
    rounds, the last round's stored calibration (fitted on the earlier rounds); for one draw,
    ``given`` or :func:`wrong_probabilities` of the rows."""
    if len(rounds) > 1:
        suspicion = np.array([row["suspicion"] for row in rows], dtype=float)
        calibration = rounds[-1].record.get("calibration")
        usable = isinstance(calibration, list) and len(calibration) == 2
        p = platt_map(*calibration)(suspicion) if usable else suspicion
    else:
        p = wrong_probabilities(rows) if given is None else given
    return lam * soft_lambda(p, power=power)


def wrong_probabilities(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """p̂_i of one draw's rows (columns ``suspicion``, ``pi``, ``outside_sample``, ``delta``,
    ``machine_correct``): :func:`act_plugin.act_math.cross_fitted_probabilities` over the rows
    of the design (π known, not reviewed outside the sample), the raw suspicion elsewhere."""
    p = np.array([row["suspicion"] for row in rows], dtype=float)
    design = np.array([r["pi"] is not None and not r["outside_sample"] for r in rows], dtype=bool)
    if design.any():
        chosen = [row for row, d in zip(rows, design, strict=True) if d]
        wrong = [row["machine_correct"] is False for row in chosen]
        delta = [row["delta"] for row in chosen]
        pi = [row["pi"] for row in chosen]
        p[design] = cross_fitted_probabilities(p[design], wrong, delta, pi)
    return p


def _add_weights(
    rows: list[dict[str, Any]], lam: float | np.ndarray, rounds: Sequence[_Round] = ()
) -> None:
    """Fill weight_machine = λ(1 − δ/π) and weight_human = δ/π (π = 1 outside the sample);
    over a review in rounds, the last round's (:func:`act_plugin.sequential.last_round_weights`:
    rows drawn in earlier rounds weigh 0 and 1).

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
    if len(rounds) > 1:
        machine, human = _round_weights(rows, rounds, lam)
    else:
        machine, human = act_weights(delta, pi, lam=lam)
    for row, w_m, w_h in zip(rows, machine, human, strict=True):
        kept = 0.0 if row["pending"] else 1.0
        row["weight_machine"] = kept * float(w_m) + 0.0  # + 0.0 turns −0.0 into 0.0
        row["weight_human"] = kept * float(w_h) + 0.0


def _round_weights(
    rows: Sequence[Mapping[str, Any]], rounds: Sequence[_Round], lam: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The last round's ACT weights (``sequential.last_round_weights``) from each drawn row's
    own π; rows reviewed outside the sample weigh (0, 1), as with one draw."""
    n = len(rows)
    pis = [np.zeros(n) for _ in rounds]
    deltas = [np.zeros(n, dtype=bool) for _ in rounds]
    for i, row in enumerate(rows):
        if row["round"] is not None and row["pi"] is not None:
            pis[row["round"] - 1][i] = row["pi"]
            deltas[row["round"] - 1][i] = True
    machine, human = last_round_weights(pis, deltas, lam=lam)
    outside = np.array([bool(row["outside_sample"]) for row in rows])
    return np.where(outside, 0.0, machine), np.where(outside, 1.0, human)


def _normalized(value: Any) -> Any:
    """JSON-able ``value`` with dict keys sorted (stable output whatever the key order)."""
    return json.loads(json.dumps(value, sort_keys=True, ensure_ascii=False))


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
