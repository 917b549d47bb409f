"""The wire formats ACT writes into Label Studio and reads back, in one place.

- **ACT prediction**: ``result`` (the machine label as a region of the control to fill, plus the
  critic's rationale as a region of the rationale TextArea when the config reserves one),
  ``score = 1 − ε̂`` (Label Studio's score column: ascending order is most suspicious first),
  ``mislabeling = ε̂`` and ``model_version``. Label Studio's ML backend integration stores only
  result, score and model_version of what ``/predict`` returns; :func:`suspicion_of` then reads
  ε̂ back as 1 − score.
- **Review record** of a drawn task: the draw it belongs to (:data:`DRAW_FIELDS`) and the
  task's own ``suspicion``, ``pi`` (inclusion probability) and ``delta`` (1). Only drawn tasks
  have one: the weights of the others do not depend on π (λ for the machine label, 0 for a
  human one), and their π is recomputed from the draw's parameters and the suspicions, checked
  against the draw's ``suspicion_digest``. The records are written as ledgers
  (:func:`ledger_record`): the first and the last of up to a few thousand drawn tasks carry in
  ``meta["act"]`` the draw's facts and every one's ``[task_id, suspicion, pi]`` under
  :data:`LEDGER_KEY` (Label Studio 1.23 has no bulk meta write, and one PATCH costs 60–110 ms);
  :func:`review_records` gives every task its record.
  Earlier versions wrote one record per drawn task (read the same way), and before that one on
  every task of the draw (records without ``n_drawn``).
- **Draw record** ``data["act"]`` of the "ACT review sample" view: the :data:`DRAW_FIELDS` and
  ``task_ids``, the tasks the draw was made over as ``[first, last]`` id ranges.
- **Review in rounds**: each round is a draw over the tasks not drawn in an earlier round. Its
  records add the :data:`ROUND_FIELDS` (the series it belongs to, its number, the rounds
  planned, the whole budget, the critic calibration its π was computed with, the certificate's
  target and confidence, and ``audit_floor``: None when every round has the floor, else the
  floor of the last round, the audit, after search rounds without one), and the view's draw
  record lists the earlier rounds' draw records under ``earlier_rounds``.

Writers and readers (the backend, ``ls-act annotate``, ``review`` and ``sync``) all use this
module, so a change of format is made here once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .domain import MachineLabel
from .labeling import LabelingSpec
from .scoring import prediction_score

__all__ = [
    "DEFAULT_RATIONALE_FIELD",
    "DRAW_FIELDS",
    "LEDGER_KEY",
    "META_KEY",
    "REVIEW_VIEW_TITLE",
    "ROUND_FIELDS",
    "answer_labels",
    "answer_region",
    "draw_fields",
    "draw_record",
    "draw_record_of",
    "encode_prediction",
    "id_ranges",
    "ids_in",
    "is_lean",
    "ledger_record",
    "parse_time",
    "record_pi",
    "review_plan",
    "review_record",
    "review_record_of",
    "review_records",
    "suspicion_digest",
    "suspicion_of",
    "with_review_record",
    "without_review_record",
]

#: Name of the TextArea that shows the critic's rationale, unless configured otherwise.
DEFAULT_RATIONALE_FIELD = "act_rationale"
#: Key of the task ``meta`` that holds the review record.
META_KEY = "act"
#: What a review record says about its draw (the same on every record of the draw), in order:
#: the parameters, N (``n_tasks``), Σδ (``n_drawn``), the fingerprint of the (task id, suspicion)
#: pairs drawn from and the smallest π among the tasks not drawn (None when all were drawn).
DRAW_FIELDS: tuple[str, ...] = (
    "draw_id", "rule", "budget", "floor", "beta", "seed", "model_version", "drawn_at", "n_tasks",
    "n_drawn", "suspicion_digest", "min_pi_undrawn",
)  # fmt: skip
#: What a draw of a review in rounds adds to :data:`DRAW_FIELDS`: the series id, its round
#: (1-based), the rounds planned, the whole budget in expected reviews, the Platt calibration
#: ``[a, b]`` applied to the suspicion for π (None in round 1) and the certificate's target
#: accuracy (None without one) and confidence.
ROUND_FIELDS: tuple[str, ...] = (
    "series", "round", "rounds", "total_budget", "calibration", "target", "confidence",
    "audit_floor",
)  # fmt: skip
#: Key of a drawn task's review record that holds the records of the drawn tasks written with
#: it, as ``[task_id, suspicion, pi]`` (a ledger): a draw is then a few writes, not one per task.
LEDGER_KEY = "drawn"
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
#: Title of the Data Manager view that holds the drawn tasks (and the draw record).
REVIEW_VIEW_TITLE = "ACT review sample"
_SCORE_DIGITS = 6

# --------------------------------------------------------------------------------------------
# ACT predictions
# --------------------------------------------------------------------------------------------


def encode_prediction(
    spec: LabelingSpec,
    task_id: int,
    label: MachineLabel,
    suspicion: float,
    rationale: str,
    model_version: str,
) -> dict[str, Any]:
    """The ACT prediction of one task: result regions, score, mislabeling, model_version."""
    answer = str(label.answer) if spec.kind == "textarea" else list(label.labels)
    result = [answer_region(spec, task_id, answer)]
    shown = spec.rationale_region(task_id, f"suspicion {suspicion:.2f}: {rationale}".strip())
    if shown is not None:
        result.append(shown)
    return {
        "result": result,
        "score": round(prediction_score(suspicion), _SCORE_DIGITS),
        "mislabeling": float(suspicion),
        "model_version": model_version,
    }


def answer_region(spec: LabelingSpec, task_id: int, answer: list[str] | str) -> dict[str, Any]:
    """The machine label as a Label Studio region (labels validated against the config)."""
    control = spec.interface.get_control(spec.control_name)
    if spec.kind == "choices":
        region = control.label(list(answer), to_name=spec.to_name)
    else:
        region = control.label(text=[str(answer)], to_name=spec.to_name)
    region.id = f"act-{task_id}-{spec.control_name}"
    return json.loads(region.to_json())


def answer_labels(result: object, spec: LabelingSpec) -> list[str] | None:
    """The labels of the regions of ``spec.control_name`` in a result (prediction or annotation).

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


def suspicion_of(prediction: Mapping[str, Any]) -> float:
    """ε̂ ∈ [0, 1] of an ACT prediction: ``mislabeling`` when positive, else 1 − ``score``.

    Predictions made by the ML backend may leave ``mislabeling`` at 0 and carry only
    ``score = 1 − suspicion``; with neither, the suspicion is 0. Clipped to [0, 1].

    >>> suspicion_of({"score": 0.75, "mislabeling": 0.0}), suspicion_of({})
    (0.25, 0.0)
    """
    mislabeling = _number(prediction.get("mislabeling"))
    score = _number(prediction.get("score"))
    if mislabeling is not None and mislabeling > 0.0:
        value = mislabeling
    elif score is not None:
        value = 1.0 - score
    else:
        value = 0.0
    return min(1.0, max(0.0, value))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if number == number else None  # NaN → None


# --------------------------------------------------------------------------------------------
# Review records (task meta["act"])
# --------------------------------------------------------------------------------------------


def review_record(
    draw: Mapping[str, Any], *, suspicion: float, pi: float, delta: bool
) -> dict[str, Any]:
    """One task's ``meta["act"]``: the draw's :data:`DRAW_FIELDS`, then suspicion, π and δ.

    >>> draw = dict.fromkeys(DRAW_FIELDS, 0) | {"draw_id": "d"}
    >>> review_record(draw, suspicion=0.5, pi=0.25, delta=True)["delta"]
    1
    """
    return {
        **draw_fields(draw),
        "suspicion": float(suspicion),
        "pi": float(pi),
        "delta": int(bool(delta)),
    }


def review_record_of(meta: object) -> dict[str, Any] | None:
    """The review record in a task's ``meta``; None without one (or when it has no draw_id).

    >>> review_record_of({"act": {"draw_id": "d"}}), review_record_of({"act": {"draw_id": 1}})
    ({'draw_id': 'd'}, None)
    """
    record = meta.get(META_KEY) if isinstance(meta, Mapping) else None
    return record if isinstance(record, dict) and isinstance(record.get("draw_id"), str) else None


def ledger_record(
    draw: Mapping[str, Any], entries: Sequence[tuple[int, float, float]]
) -> dict[str, Any]:
    """The ``meta["act"]`` of a ledger's carriers: the draw's facts (:func:`draw_fields`) and
    the drawn tasks ``entries`` as ``[task_id, suspicion, pi]`` under :data:`LEDGER_KEY`.

    >>> draw = dict.fromkeys(DRAW_FIELDS, 0) | {"draw_id": "d"}
    >>> ledger_record(draw, [(3, 0.5, 0.25), (7, 0.9, 1.0)])[LEDGER_KEY]
    [[3, 0.5, 0.25], [7, 0.9, 1.0]]
    """
    entries = [[int(t), float(s), float(p)] for t, s, p in entries]
    return {**draw_fields(draw), LEDGER_KEY: entries}


def review_records(metas: Mapping[int, object]) -> dict[int, dict[str, Any]]:
    """Task id → its review record, from the tasks' ``meta`` by task id: the record a task
    carries, or the one a ledger (on it or on another task) holds for it, as
    :func:`review_record` makes it (the newest draw's, by ``drawn_at``, when a task has
    several). Ledger entries that are not ``[id, suspicion, pi]`` are left out (the draw then
    misses them).

    >>> draw = dict.fromkeys(DRAW_FIELDS, 0) | {"draw_id": "d", "drawn_at": "2026-01-01"}
    >>> metas = {3: {META_KEY: ledger_record(draw, [(3, 0.5, 0.25), (7, 0.9, 1.0)])}, 7: {}}
    >>> {t: r["pi"] for t, r in review_records(metas).items()}
    {3: 0.25, 7: 1.0}
    """
    found: dict[int, dict[str, Any]] = {}

    def keep(task_id: int, record: dict[str, Any]) -> None:
        held = found.get(task_id)
        if held is None or _drawn_at(record) > _drawn_at(held):
            found[task_id] = record

    for task_id, meta in metas.items():
        record = review_record_of(meta)
        if record is None:
            continue
        if LEDGER_KEY not in record:
            keep(int(task_id), record)
            continue
        ledger = record[LEDGER_KEY]
        facts = {k: v for k, v in record.items() if k != LEDGER_KEY}
        for entry in ledger if isinstance(ledger, list) else ():
            if _is_entry(entry):
                keep(entry[0], {**facts, "suspicion": entry[1], "pi": entry[2], "delta": 1})
    return found


def _is_entry(entry: object) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 3
        and type(entry[0]) is int
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in entry[1:])
    )


def _drawn_at(record: Mapping[str, Any]) -> datetime:
    return parse_time(record.get("drawn_at"))


def parse_time(value: object) -> datetime:
    """A Label Studio timestamp (ISO 8601, ``Z`` suffix) as an aware datetime; epoch if absent.

    >>> parse_time("2026-01-02T03:04:05Z").isoformat()
    '2026-01-02T03:04:05+00:00'
    >>> parse_time(None) == parse_time("not a time")
    True
    """
    if not isinstance(value, str) or not value:
        return _EPOCH
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return _EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def with_review_record(meta: object, record: Mapping[str, Any]) -> dict[str, Any]:
    """The task's ``meta`` with ``record`` as its review record (other keys kept)."""
    kept = dict(meta) if isinstance(meta, Mapping) else {}
    return {**kept, META_KEY: dict(record)}


def without_review_record(meta: object) -> dict[str, Any]:
    """The task's ``meta`` without a review record (other keys kept)."""
    kept = dict(meta) if isinstance(meta, Mapping) else {}
    kept.pop(META_KEY, None)
    return kept


def is_lean(record: Mapping[str, Any]) -> bool:
    """Whether the record's draw wrote records on its drawn tasks only (``n_drawn`` is set)."""
    return isinstance(record.get("n_drawn"), int)


def suspicion_digest(task_ids: Sequence[int], suspicions: Sequence[float]) -> str:
    """Fingerprint of the (task id, suspicion) pairs a draw was made from, in the given order.

    >>> suspicion_digest([1, 2], [0.5, 0.25]) == suspicion_digest([1, 2], [0.5, 0.25 + 1e-12])
    False
    """
    pairs = [[int(t), float(s)] for t, s in zip(task_ids, suspicions, strict=True)]
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()[:32]


def id_ranges(task_ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids as ``[first, last]`` runs of consecutive ids.

    >>> id_ranges([5, 1, 2, 3, 7])
    [[1, 3], [5, 5], [7, 7]]
    """
    ranges: list[list[int]] = []
    for task_id in sorted(set(task_ids)):
        if ranges and task_id == ranges[-1][1] + 1:
            ranges[-1][1] = task_id
        else:
            ranges.append([task_id, task_id])
    return ranges


def ids_in(ranges: object) -> set[int] | None:
    """The ids of :func:`id_ranges` runs; None when ``ranges`` is not such a list.

    >>> sorted(ids_in([[1, 3], [7, 7]])), ids_in("1-3")
    ([1, 2, 3, 7], None)
    """
    if not isinstance(ranges, list):
        return None
    ids: set[int] = set()
    for run in ranges:
        if not (isinstance(run, list) and len(run) == 2 and all(type(x) is int for x in run)):
            return None
        ids.update(range(run[0], run[1] + 1))
    return ids


def draw_fields(draw: Mapping[str, Any]) -> dict[str, Any]:
    """The draw's :data:`DRAW_FIELDS`, and its :data:`ROUND_FIELDS` when it is a round;
    ValueError naming the draw fields it lacks."""
    missing = [name for name in DRAW_FIELDS if name not in draw]
    if missing:
        raise ValueError(f"a review record needs the draw's {', '.join(missing)}")
    facts = {name: draw[name] for name in DRAW_FIELDS}
    if draw.get("series") is not None:
        facts.update({name: draw.get(name) for name in ROUND_FIELDS})
    return facts


def draw_record(
    draw: Mapping[str, Any],
    task_ids: Iterable[int],
    earlier_rounds: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The review view's ``data["act"]``: the draw's facts (:func:`draw_fields`), its tasks,
    and for a round after the first, the draw records of the series' earlier rounds."""
    record = {**draw_fields(draw), "task_ids": id_ranges(task_ids)}
    if earlier_rounds:
        record["earlier_rounds"] = [dict(r) for r in earlier_rounds]
    return record


def draw_record_of(view: Mapping[str, Any]) -> dict[str, Any] | None:
    """The draw the review view names: its record (``data["act"]``), or ``{"draw_id": ...}``
    when only its commit mark ``data["act_draw_id"]`` is left; None for any other view."""
    data = view.get("data")
    if not isinstance(data, Mapping) or data.get("title") != REVIEW_VIEW_TITLE:
        return None
    record = data.get(META_KEY)
    if isinstance(record, dict) and isinstance(record.get("draw_id"), str):
        return record
    draw_id = data.get("act_draw_id")
    return {"draw_id": draw_id} if isinstance(draw_id, str) else None


def review_plan(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The plan of the review in rounds a draw record belongs to (series, rounds planned, the
    whole budget, the certificate's target and confidence, the current round); None when the
    record is not a round.

    >>> review_plan({"series": "s", "round": 2, "rounds": 4, "total_budget": 20.0})["round"]
    2
    """
    if not isinstance(record, Mapping) or not isinstance(record.get("series"), str):
        return None
    return {name: record.get(name) for name in ROUND_FIELDS if name != "calibration"}


def record_pi(record: Mapping[str, Any]) -> float | None:
    """The record's π when usable: a number in [0, 1], and above 0 for a drawn task.

    >>> record_pi({"pi": 0.5, "delta": 1}), record_pi({"pi": 0.0, "delta": 1}), record_pi({})
    (0.5, None, None)
    """
    pi = record.get("pi")
    if isinstance(pi, bool) or not isinstance(pi, (int, float)) or not 0.0 <= pi <= 1.0:
        return None
    if record.get("delta") == 1 and pi == 0.0:
        return None
    return float(pi)
