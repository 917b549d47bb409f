"""Review in rounds, and the label-quality certificate, kept in Label Studio.

``ls-act review --budget B --rounds K [--target-accuracy A --confidence C]``. Each call looks at
the project and does the next step of its series of rounds:

1. no series yet (or ``redraw``): round 1, a draw (:mod:`act_plugin.review`) of B/K expected
   reviews over every task with an ACT prediction;
2. a round whose drawn tasks are not all reviewed yet: nothing is drawn ("waiting"; run again
   when the reviewers are done, or ``--watch``);
3. a round fully reviewed: the certificate (:func:`act_plugin.sequential.certificate`) is
   computed; the series stops when it reaches the target ("certified") or K rounds are done
   ("done"); otherwise round r + 1 is drawn over the tasks not drawn yet, with B/K expected
   reviews and π computed from the critic recalibrated on every review so far (Platt,
   :func:`act_plugin.act_math.platt_parameters`, weights 1/π of the round that drew each row).

Each round is an ordinary draw with its own ``draw_id`` whose records add the
:data:`act_backend.records.ROUND_FIELDS`; earlier rounds' drawn tasks keep their records, and
the review view (the current round's tasks) lists the earlier rounds' draw records, so every
machine sees the same rounds. An interrupted round is finished by the next call, as a draw is.
π of round r is fixed given rounds 1 … r − 1 (it depends only on their reviews), which is what
keeps the estimators and weights unbiased (:mod:`act_plugin.sequential`).

Search rounds (``search_rounds``): rounds 1 … K − 1 draw without the floor (the budget goes to
the most suspicious tasks left) and only round K, the audit, with it. The training weights
``ls-act sync`` exports (the last round's loss, ``sequential.last_round_weights``) need π > 0
only in the last round, and the error count is then estimated from the audit round alone
(``sequential.sequential_error_count`` gives a round that leaves tasks out weight 0); in the
ACT harness at a 20% budget this trained 0.8 / 1.5 points (debian / digits) closer to full
human with the suspicion recalibrated only, as here, and 1.3 / 2.9 with the kNN critic
re-scored between rounds (docs/benchmarks.md). The price: an interval about twice as wide at
K = 4, none before the audit round (the report says so), and no certificate (it may stop after
any round, so every round needs the floor).

The calibration is monotone in the suspicion, so the order of the "most suspicious first" view
(Label Studio's prediction score) does not change between rounds and no score is rewritten;
what changes is π (with the exponential rule) and the pool.
"""

from __future__ import annotations

import numbers
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
from label_studio_sdk import LabelStudio

from act_backend.labeling import UnsupportedConfig, parse_label_config
from act_backend.records import ROUND_FIELDS
from act_plugin.act_math import DEFAULT_BETA, DEFAULT_FLOOR, platt_parameters
from act_plugin.labelstudio import Gateway, LabelStudioError
from act_plugin.review import (
    DrawParams,
    Progress,
    ReviewDraw,
    ReviewError,
    _act_tasks,
    _check_options,
    _latest_draw,
    _model_version,
    _params_from_meta,
    _reproduces,
    _score_note,
    _Task,
    _write_draw,
)
from act_plugin.sequential import Certificate, certificate
from act_plugin.sync.fetch import draw_in
from act_plugin.sync.rows import build_rows
from act_plugin.validation import budget_count

__all__ = ["RoundStatus", "review_in_rounds"]

_SEED_MASK = 2**32 - 1


@dataclass(frozen=True)
class RoundStatus:
    """What :func:`review_in_rounds` found and did."""

    state: str  # "drawn" (a new round), "waiting", "certified" or "done"
    round: int  # the current round (1-based)
    rounds: int  # rounds planned
    series: str
    pending: int  # drawn tasks of the current round not reviewed yet
    draw: ReviewDraw | None  # the round drawn now, if any
    certificate: Certificate | None  # after the last fully reviewed round, with a target
    total_budget: float
    spent: float  # Σ b_r of the rounds drawn (expected reviews)
    message: str


@dataclass(frozen=True)
class _Series:
    """The project's series as read: its current round's facts and the earlier rounds'."""

    facts: dict[str, Any]
    earlier: list[dict[str, Any]]

    @property
    def number(self) -> int:
        return int(self.facts["round"])

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every round's draw record, for the next round's view."""
        current = {k: v for k, v in self.facts.items() if k != "earlier_rounds"}
        return [*self.earlier, current]


def review_in_rounds(
    client: LabelStudio,
    project_id: int,
    *,
    budget: int | float,
    rounds: int,
    target: float | None = None,
    confidence: float = 0.95,
    rule: str = "thresholded",
    floor: float = DEFAULT_FLOOR,
    beta: float = DEFAULT_BETA,
    seed: int | None = None,
    redraw: bool = False,
    model_version: str | None = None,
    bot_users: Iterable[int] = (),
    on_progress: Progress | None = None,
    search_rounds: bool = False,
) -> RoundStatus:
    """Do the next step of the project's review in rounds (module docstring).

    Parameters
    ----------
    budget : int or float
        B for the whole series: a number of tasks or a fraction of the tasks with an ACT
        prediction; each round spends B/K (expected reviews).
    rounds : int ≥ 1
        K, the rounds planned.
    target : float in (0, 1] or None
        The accuracy the final training set must be certified to have; the series stops as
        soon as the certificate reaches it.
    confidence : float in (0, 1)
        Of the certificate (α = 1 − confidence is spent across the rounds).
    rule, floor, beta, seed, redraw, model_version
        As in :func:`act_plugin.review.draw_sample`; rule, floor and beta of a running series
        are its own, whatever is passed.
    bot_users : iterable of int
        User ids whose annotations are not human reviews (as in ``ls-act sync``).
    search_rounds : bool
        Rounds 1 … K − 1 without the floor, the floor in round K only (module docstring);
        the thresholded rule only, not with a ``target``. A running series keeps its design.
    """
    _check_options(rule, floor, beta, seed)
    _check_plan(rounds, target, confidence, search_rounds, rule, floor)
    try:
        return _next_step(
            Gateway(client), int(project_id), budget=budget, rounds=rounds, target=target,
            confidence=confidence, params=DrawParams(rule, budget, float(floor), float(beta),
            int(seed) if seed is not None else _random_seed(), ""), redraw=redraw,
            model_version=model_version, bot_users=bot_users, on_progress=on_progress,
            audit_floor=float(floor) if search_rounds else None,
        )  # fmt: skip
    except LabelStudioError as exc:
        raise ReviewError(f"project {project_id}: {exc}") from exc


def _check_plan(
    rounds: object,
    target: object,
    confidence: object,
    search_rounds: bool,
    rule: str,
    floor: float,
) -> None:
    if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral) or rounds < 1:
        raise ReviewError(f"rounds must be an int >= 1; got {rounds!r}")
    if target is not None and not (isinstance(target, numbers.Real) and 0.0 < target <= 1.0):
        raise ReviewError(f"target accuracy must be a number in (0, 1]; got {target!r}")
    if not (isinstance(confidence, numbers.Real) and 0.0 < confidence < 1.0):
        raise ReviewError(f"confidence must be a number in (0, 1); got {confidence!r}")
    if search_rounds and target is not None:
        raise ReviewError(
            "search rounds leave tasks out until the last round, so no certificate can stop "
            "earlier: drop the target accuracy or the search rounds"
        )
    if search_rounds and rule != "thresholded":
        raise ReviewError(
            f"search rounds need the thresholded rule (got {rule!r}): another rule gives every "
            "task a π > 0 without the floor, tiny for most, so its rounds would count in the "
            "estimate with a huge variance"
        )
    if search_rounds and floor <= 0.0:
        raise ReviewError("search rounds need a floor > 0 for the last (audit) round; got floor=0")


def _random_seed() -> int:
    return int(np.random.SeedSequence().generate_state(1)[0])


def _next_step(
    gateway: Gateway,
    project_id: int,
    *,
    budget: int | float,
    rounds: int,
    target: float | None,
    confidence: float,
    params: DrawParams,
    redraw: bool,
    model_version: str | None,
    bot_users: Iterable[int],
    on_progress: Progress | None,
    audit_floor: float | None,
) -> RoundStatus:
    project = gateway.get_project(project_id)
    try:
        spec = parse_label_config(str(project.get("label_config") or ""))
    except (ValueError, UnsupportedConfig) as exc:
        raise ReviewError(f"project {project_id}: {exc}") from None
    raw = gateway.list_tasks(project_id)  # every field, as `ls-act sync` reads the tasks
    version = _model_version(model_version, project, raw)
    tasks = _act_tasks(raw, version)
    views = gateway.list_views(project_id)
    named = draw_in(views)
    context = _Context(gateway, project_id, tasks, views, len(raw) - len(tasks), on_progress,
                       _score_note(project, version))  # fmt: skip

    interrupted = _interrupted_round(tasks, views)
    if interrupted is not None and not redraw:
        return _finish(context, interrupted, named)
    series = _series_of(named)
    if series is None or redraw:
        total = _total_budget(budget, len(tasks), project_id)
        plan = {"series": uuid.uuid4().hex, "rounds": int(rounds), "total_budget": total,
                "target": target, "confidence": float(confidence),
                "audit_floor": audit_floor}  # fmt: skip
        return _draw_round(context, plan, 1, replace(params, model_version=version), None,
                           earlier=[])  # fmt: skip

    rows, _ = build_rows(raw, spec, model_version=version, draw=named, bot_users=bot_users)
    return _after_round(context, series, rows, version)


@dataclass(frozen=True)
class _Context:
    gateway: Gateway
    project_id: int
    tasks: list[_Task]
    views: list[dict[str, Any]]
    n_without: int
    on_progress: Progress | None
    score_note: str


def _total_budget(budget: int | float, n_tasks: int, project_id: int) -> float:
    try:
        return float(budget_count(budget, n_tasks))
    except ValueError as exc:
        raise ReviewError(
            f"project {project_id} ({n_tasks} tasks with an ACT prediction): {exc}"
        ) from None


def _series_of(named: Mapping[str, Any] | None) -> _Series | None:
    """The series the review view's draw record belongs to, if it is a round."""
    if named is None or not named.get("series") or not isinstance(named.get("round"), int):
        return None
    earlier = [dict(r) for r in named.get("earlier_rounds") or [] if isinstance(r, dict)]
    return _Series(dict(named), earlier)


#: The series' plan: its round fields but the round's own number and calibration.
_PLAN_FIELDS = tuple(f for f in ROUND_FIELDS if f not in ("round", "calibration"))


def _plan_of(facts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: facts.get(k) for k in _PLAN_FIELDS}


def _is_audit(plan: Mapping[str, Any], number: int) -> bool | None:
    """With search rounds, whether round ``number`` is the audit (the last); None without."""
    if plan.get("audit_floor") is None:
        return None
    return number >= int(plan["rounds"])


def _round_floor(plan: Mapping[str, Any], number: int, floor: float) -> float:
    """The floor of round ``number``: the series' own, or with search rounds 0 before the last
    round and ``audit_floor`` in it."""
    audit = _is_audit(plan, number)
    if audit is None:
        return floor
    return float(plan["audit_floor"]) if audit else 0.0


def _round_budget(plan: Mapping[str, Any], pool: int) -> int | float:
    """B/K expected reviews over a pool of ``pool`` tasks: a fraction, or all of them."""
    share = float(plan["total_budget"]) / int(plan["rounds"])
    return pool if share >= pool else share / pool


def _draw_round(
    context: _Context,
    plan: Mapping[str, Any],
    number: int,
    params: DrawParams,
    calibration: tuple[float, float] | None,
    *,
    earlier: Sequence[Mapping[str, Any]],
    spent_before: float = 0.0,
) -> RoundStatus:
    """Draw round ``number`` over the tasks not drawn in ``earlier`` rounds."""
    drawn_before = _drawn_ids(context.tasks, plan["series"])
    pool = [t for t in context.tasks if t.task_id not in drawn_before]
    if not pool:
        raise ReviewError(f"project {context.project_id}: every task was drawn already")
    round_params = replace(params, budget=_round_budget(plan, len(pool)),
                           seed=_round_seed(params.seed, number),
                           floor=_round_floor(plan, number, params.floor))  # fmt: skip
    facts = {**plan, "round": number, "calibration": list(calibration) if calibration else None}
    draw = _write_draw(
        context.gateway, context.project_id, pool, round_params, context.views,
        draw_id=uuid.uuid4().hex, drawn_at=datetime.now(timezone.utc).isoformat(),
        n_without=context.n_without, note=context.score_note, on_progress=context.on_progress,
        round_facts=facts, earlier=earlier,
    )  # fmt: skip
    return RoundStatus(
        state="drawn", round=number, rounds=int(plan["rounds"]), series=plan["series"],
        pending=draw.drawn, draw=draw, certificate=None,
        total_budget=float(plan["total_budget"]), spent=spent_before + draw.expected,
        message=f"round {number} of {plan['rounds']}{_kind(plan, number)} drawn: {draw.drawn} "
        "tasks to review",
    )  # fmt: skip


def _kind(plan: Mapping[str, Any], number: int) -> str:
    audit = _is_audit(plan, number)
    if audit is None:
        return ""
    return " (the audit)" if audit else " (a search round)"


def _round_seed(seed: int, number: int) -> int:
    """Round 1 uses the series' seed; later rounds a seed derived from it and the round."""
    if number == 1:
        return seed
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0]) & _SEED_MASK


def _drawn_ids(tasks: Sequence[_Task], series: str) -> set[int]:
    return {
        t.task_id
        for t in tasks
        if t.act is not None and t.act.get("series") == series and t.act.get("delta") == 1
    }


def _interrupted_round(tasks: Sequence[_Task], views: Sequence[Mapping[str, Any]]) -> Any:
    """The newest draw when it is a round whose view was not committed (a write was cut)."""
    existing = _latest_draw(tasks, views)
    if existing is None or existing.committed or not existing.first.get("series"):
        return None
    return existing


def _finish(context: _Context, existing: Any, named: Mapping[str, Any] | None) -> RoundStatus:
    """Finish writing an interrupted round (its π and δ are recomputed from its record)."""
    facts = existing.first
    params = _params_from_meta(facts)
    number = int(facts["round"])
    series = _series_of(named)
    earlier = series.records if series is not None and series.facts.get("series") == facts[
        "series"] else []  # fmt: skip
    drawn_before = {
        t.task_id
        for t in context.tasks
        if t.act is not None
        and t.act.get("series") == facts["series"]
        and t.act.get("round", number) < number
        and t.act.get("delta") == 1
    }
    pool = [t for t in context.tasks if t.task_id not in drawn_before]
    if params is None or not _reproduces(existing, pool, params):
        raise ReviewError(
            f"project {context.project_id}: round {number} of series {facts['series']} was "
            "interrupted and the tasks changed since; pass redraw=True (--redraw) to start a "
            "new series"
        )
    draw = _write_draw(
        context.gateway, context.project_id, pool, params, context.views,
        draw_id=existing.draw_id, drawn_at=str(facts.get("drawn_at")),
        n_without=context.n_without, note="finished an interrupted round",
        on_progress=context.on_progress,
        round_facts={**_plan_of(facts), "round": number, "calibration": facts.get("calibration")},
        earlier=earlier,
    )  # fmt: skip
    return RoundStatus(
        state="drawn", round=number, rounds=int(facts["rounds"]), series=facts["series"],
        pending=draw.drawn, draw=draw, certificate=None,
        total_budget=float(facts["total_budget"]), spent=_spent(earlier) + draw.expected,
        message=f"finished writing the interrupted round {number}: {draw.drawn} tasks to review",
    )  # fmt: skip


def _after_round(
    context: _Context, series: _Series, rows: Sequence[Mapping[str, Any]], version: str
) -> RoundStatus:
    """The current round reviewed or not; then the certificate, and the next round if due."""
    facts = series.facts
    plan = _plan_of(facts)
    number, planned = series.number, int(facts["rounds"])
    spent = _spent(series.records)
    pending = sum(1 for row in rows if row["pending"])
    common = dict(round=number, rounds=planned, series=plan["series"],
                  total_budget=float(plan["total_budget"]), spent=spent)  # fmt: skip
    if pending:
        return RoundStatus(
            state="waiting", pending=pending, draw=None, certificate=None, **common,
            message=f"round {number} of {planned}: {pending} drawn tasks still await review; "
            "run again when they are reviewed",
        )  # fmt: skip
    cert = _certificate(rows, plan) if plan.get("target") is not None else None
    if cert is not None and cert.met:
        return RoundStatus(
            state="certified", pending=0, draw=None, certificate=cert, **common,
            message=f"certified after round {number}: the training set is at least "
            f"{cert.lower_bound:.1%} accurate at {cert.confidence:.0%} confidence (target "
            f"{cert.target:.1%}); no more rounds drawn",
        )  # fmt: skip
    if number >= planned:
        reached = (
            ""
            if cert is None
            else (
                f"; the certificate did not reach the target: at least {cert.lower_bound:.1%} "
                f"accurate (target {cert.target:.1%}) at {cert.confidence:.0%} confidence"
            )
        )
        return RoundStatus(
            state="done", pending=0, draw=None, certificate=cert, **common,
            message=f"all {planned} rounds are drawn and reviewed: the budget is spent{reached}",
        )  # fmt: skip
    params = _params_from_meta(facts)
    if params is None:
        raise ReviewError(f"project {context.project_id}: the current round's record is unusable")
    status = _draw_round(context, plan, number + 1, params, _calibration(rows),
                         earlier=series.records, spent_before=spent)  # fmt: skip
    return replace(status, certificate=cert)


def _spent(records: Sequence[Mapping[str, Any]]) -> float:
    return float(sum(budget_count(r["budget"], int(r["n_tasks"])) for r in records))


def _reviewed_in_sample(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if r["round"] is not None and r["reviewed"] and r["pi"]]


def _calibration(rows: Sequence[Mapping[str, Any]]) -> tuple[float, float] | None:
    """Platt (a, b) fitted on every review so far, weights 1/π; None before any review."""
    reviewed = _reviewed_in_sample(rows)
    if not reviewed:
        return None
    return platt_parameters(
        [r["suspicion"] for r in reviewed],
        [not r["machine_correct"] for r in reviewed],
        [1.0 / r["pi"] for r in reviewed],
    )


def _certificate(rows: Sequence[Mapping[str, Any]], plan: Mapping[str, Any]) -> Certificate | None:
    """The certificate over the rows' rounds; None when a round's π cannot be recomputed."""
    if not rows or any(row["pi_rounds"] is None or None in row["pi_rounds"] for row in rows):
        return None
    n_rounds = len(rows[0]["pi_rounds"])
    pis = [np.array([row["pi_rounds"][r] for row in rows]) for r in range(n_rounds)]
    deltas = [np.array([row["round"] == r + 1 for row in rows]) for r in range(n_rounds)]
    wrong = np.array([bool(row["reviewed"] and row["machine_correct"] is False) for row in rows])
    return certificate(
        wrong, pis, deltas,
        total_budget=float(plan["total_budget"]), target=float(plan["target"]),
        confidence=float(plan["confidence"]), suspicion=[row["suspicion"] for row in rows],
    )  # fmt: skip
