"""Every number of the ACT report, computed from the rows of ``ls-act sync``; pure, no I/O.

:func:`compute_report` parses the rows (``report.rows``) and computes a :class:`ReportFigures`
with the estimators and critic metrics of ``act_math``; each figure's formula is documented on
the class. Undefined figures are ``None`` (never NaN); :attr:`ReportFigures.undefined` says why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from act_plugin.act_math import (
    ESTIMATORS,
    AccuracyEstimate,
    ErrorCount,
    accuracy_from_errors,
    auroc,
    calibrate_suspicion,
    cross_fitted_probabilities,
    error_count_estimate,
    precision_at,
    recall_at_fraction,
    weighted_auroc,
)
from act_plugin.report.rows import Table, parse_rows
from act_plugin.sequential import Certificate, certificate, sequential_error_count
from act_plugin.validation import check_real

#: Shares of the reviewed rows (most suspicious first) at which the critic's recall is reported.
RECALL_FRACTIONS: tuple[float, ...] = (0.1, 0.2)
#: Default k of "precision among the k most suspicious reviewed rows".
DEFAULT_TOP_K = 10
#: The estimator of every error count and accuracy in the report (``act_math.ESTIMATORS``).
REPORT_ESTIMATOR = "model-assisted"
#: Equal-width suspicion bins of the calibration table and reliability diagram.
CALIBRATION_BINS = 10
#: Points of the fitted calibration curve, evenly spaced on [0, 1].
CURVE_POINTS = 21


@dataclass(frozen=True)
class LabelBreakdown:
    """One machine label (or label set, for multi-label tasks) of the per-label table.

    Attributes
    ----------
    label : str
        The machine label; several labels joined with ", " (sorted); "(no label)" if empty.
    count : int
        Rows with this machine label.
    reviewed : int
        Of these, rows a human reviewed.
    reviewed_wrong : int
        Of these, rows where the human disagreed with the machine.
    error_rate : float or None
        ACT estimate of the share of wrong machine labels among this label's rows in the
        estimate (see :class:`ReportFigures`): T̂_ℓ / N_ℓ, with T̂_ℓ the
        ``act_math.error_count_estimate`` of the label's rows (Horvitz–Thompson:
        (1/N_ℓ) Σ_{i: ŷ_i = ℓ} e_i δ_i/π_i). None when no such row was reviewed.
    error_ci : tuple of float or None
        Its interval at the report's confidence: the Fay–Feuer gamma bounds on T_ℓ, / N_ℓ.
    """

    label: str
    count: int
    reviewed: int
    reviewed_wrong: int
    error_rate: float | None
    error_ci: tuple[float, float] | None


@dataclass(frozen=True)
class CalibrationBin:
    """One suspicion bin of the calibration table: what the critic expected, what review found.

    Attributes
    ----------
    low, high : float
        The bin [low, high) of ε̂ (the last bin includes 1).
    rows : int
        Rows of the estimate in the bin.
    mean_suspicion : float or None
        Their mean ε̂ (None when the bin is empty).
    expected : float
        Σ ε̂_i over the bin: the errors the critic's suspicion predicts, taken as P(wrong).
    calibrated : float or None
        Σ p̂_i, p̂ the cross-fitted calibrated P(wrong) (``act_math.cross_fitted_probabilities``).
        None when nothing was reviewed.
    reviewed : int
        Rows of the bin a human reviewed (δ = 1).
    found : int
        Of these, wrong machine labels.
    estimated : float or None
        Horvitz–Thompson estimate of the bin's wrong labels, Σ δ e / π, with the interval
        ``estimated_ci`` (Fay–Feuer gamma). None when no row of the bin was reviewed.
    estimated_ci : tuple of float or None
    """

    low: float
    high: float
    rows: int
    mean_suspicion: float | None
    expected: float
    calibrated: float | None
    reviewed: int
    found: int
    estimated: float | None
    estimated_ci: tuple[float, float] | None


@dataclass(frozen=True)
class AnnotatorAgreement:
    """How often one reviewer kept the machine label: agreed / reviewed."""

    annotator: str
    reviewed: int
    agreed: int
    agreement: float


@dataclass(frozen=True)
class ReportFigures:
    """Every number of the ACT report. Undefined figures are None; ``undefined`` says why.

    Notation: N rows (tasks); δ_i ∈ {0, 1} the row's ``delta``; π_i its inclusion probability
    (``pi``; taken as 1 for rows reviewed outside the sample); e_i = 1(machine label ≠ human
    label), known where reviewed (from ``machine_correct``).

    Which rows enter the ACT estimate: rows with a draw (π known) that are not pending. Rows
    without a draw (π None) cannot be weighted; pending rows (drawn, not yet reviewed) have an
    unknown δ-outcome. Both are left out and counted separately, so with pending rows the
    estimate is provisional: it covers the resolved rows only, and errors on drawn low-π rows
    still pending are under-weighted until they are reviewed.

    Attributes
    ----------
    n_items : int
        N, all rows.
    n_reviewed : int
        Rows a human reviewed (in the sample, outside it, or without any draw).
    n_reviewed_wrong : int
        Reviewed rows where the human changed the machine label.
    n_drawn : int
        Rows drawn for review (``in_sample``).
    n_reviewed_in_sample : int
        Drawn rows already reviewed.
    n_pending : int
        Drawn rows not yet reviewed.
    n_outside_sample : int
        Rows reviewed though not drawn (π := 1, δ = 1).
    n_no_draw : int
        Rows without an inclusion probability (no draw covered them).
    n_estimate : int
        N_est, rows in the ACT estimate (with a draw, not pending).
    n_zero_pi : int
        Rows in the estimate with π = 0: the estimate takes their machine labels as right,
        which is unbiased only if the critic never misses an error there.
    expected_reviews : float or None
        Σ π_i over rows with a draw (outside-sample rows excluded): the budget B in
        expectation. None without a draw.
    human_share : float
        n_reviewed / N.
    estimator : str
        The estimator of the overall error count (``act_math.error_count_estimate``):
        "model-assisted" by default (:data:`REPORT_ESTIMATOR`), "horvitz-thompson" when that
        was asked for or when the design expects fewer than ``act_math.MIN_ASSISTED_REVIEWS``
        reviews among rows with 0 < π < 1. Per-label figures choose the same way on their rows.
    accuracy : AccuracyEstimate or None
        ACT estimate of the machine labels' accuracy over the N_est rows, 1 − T̂/N_est with
        T̂ from ``act_math.error_count_estimate`` (Horvitz–Thompson: acc = (1/N_est) Σ_i
        [1 − e_i δ_i/π_i]); interval 1 − [T_high, T_low]/N_est from Fay–Feuer's gamma bounds
        on T, which keep their coverage when a few low-π reviews carry large weights (the
        normal interval did not). None when no row of the estimate was reviewed (nothing to
        correct the machine with).
    estimated_remaining_errors : float or None
        Wrong machine labels estimated to remain on unreviewed rows of the estimate:
        T̂ − Σ_i e_i δ_i (estimated total errors minus those humans fixed).
    remaining_errors_ci : tuple of float or None
        Its interval, [T_low, T_high] − Σ_i e_i δ_i.
    naive_accuracy : float or None
        Share of reviewed rows whose machine label the human kept: 1 − n_reviewed_wrong /
        n_reviewed. BIASED when review targets suspicious rows (it then understates accuracy);
        shown for contrast only. The same number is the reviewers' agreement with the machine.
    annotators : tuple of AnnotatorAgreement
        Agreement with the machine per reviewer (``annotator``), most reviews first.
    auroc : float or None
        ``act_math.auroc`` of suspicion ε̂ vs e on the reviewed rows: P(ε̂_wrong > ε̂_right)
        + ½ P(tie). None if only one class was reviewed.
    weighted_auroc : float or None
        ``act_math.weighted_auroc``: the same, each reviewed row of the estimate weighted by
        1/π_i, Σ_{w wrong, r right} (1/π_w)(1/π_r) [1(ε̂_w > ε̂_r) + ½ 1(ε̂_w = ε̂_r)] /
        (Σ_w 1/π_w · Σ_r 1/π_r). A ratio estimate of the critic's AUROC over all rows of the
        estimate with π > 0 (rows with π = 0 are never seen); noisy when few low-π rows were
        reviewed.
    top_k : int or None
        k = min(requested k, n_reviewed).
    precision_at_k : float or None
        ``act_math.precision_at``: share of wrong labels among the k most suspicious reviewed
        rows.
    recall_at : tuple of (fraction, float or None)
        ``act_math.recall_at_fraction`` for each of :data:`RECALL_FRACTIONS`: share of the
        reviewed wrong labels found in the top fraction (by ε̂) of the reviewed rows, m =
        round(f · n_reviewed). None if no reviewed label was wrong.
    labels_avoided : int
        N − n_reviewed, rows labelled by the machine alone.
    labels_avoided_share : float
        (N − n_reviewed) / N.
    money_saved : float
        (N − n_reviewed) · cost_per_human_label − llm_cost (0 when not given), in the unit of
        ``cost_per_human_label``. Negative when the LLM cost more than the labels it replaced.
    money_saved_share : float or None
        money_saved / (N · cost_per_human_label), the saving against labelling every row by
        hand. None when the human label is free.
    per_label : tuple of LabelBreakdown
        By machine label, most frequent first.
    calibration : tuple of CalibrationBin
        :data:`CALIBRATION_BINS` equal-width bins of ε̂ over the rows of the estimate.
    calibration_curve : tuple of (float, float)
        (ε̂, calibrated P(wrong)) at :data:`CURVE_POINTS` points: ``act_math.calibrate_suspicion``
        fitted on the reviewed rows of the estimate with weights 1/π. Empty when none.
    undefined : mapping of str to str
        For each attribute that is None, a plain-English reason.
    """

    n_items: int
    n_reviewed: int
    n_reviewed_wrong: int
    n_drawn: int
    n_reviewed_in_sample: int
    n_pending: int
    n_outside_sample: int
    n_no_draw: int
    n_estimate: int
    n_zero_pi: int
    expected_reviews: float | None
    human_share: float
    confidence: float
    estimator: str
    accuracy: AccuracyEstimate | None
    estimated_remaining_errors: float | None
    remaining_errors_ci: tuple[float, float] | None
    naive_accuracy: float | None
    annotators: tuple[AnnotatorAgreement, ...]
    auroc: float | None
    weighted_auroc: float | None
    top_k: int | None
    precision_at_k: float | None
    recall_at: tuple[tuple[float, float | None], ...]
    cost_per_human_label: float
    llm_cost: float | None
    labels_avoided: int
    labels_avoided_share: float
    money_saved: float
    money_saved_share: float | None
    per_label: tuple[LabelBreakdown, ...]
    calibration: tuple[CalibrationBin, ...]
    calibration_curve: tuple[tuple[float, float], ...]
    certificate: Certificate | None = None
    undefined: Mapping[str, str] = field(default_factory=dict)

    @property
    def provisional(self) -> bool:
        """True while drawn rows are still waiting for review."""
        return self.n_pending > 0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable: None for undefined values, never NaN)."""
        result = dataclasses.asdict(self)
        result["undefined"] = dict(self.undefined)
        result["provisional"] = self.provisional
        return result


def _check_options(
    cost_per_human_label: object, llm_cost: object, confidence: object, top_k: object
) -> tuple[float, float | None, float, int]:
    def money(value: object, name: str) -> float:
        return check_real(value, name, low=0, high=math.inf, closed="left")

    cost = money(cost_per_human_label, "cost_per_human_label")
    llm = None if llm_cost is None else money(llm_cost, "llm_cost")
    level = check_real(confidence, "confidence", low=0, high=1, closed="neither")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1; got {top_k!r}")
    return cost, llm, level, int(top_k)


def compute_report(
    rows: Sequence[Mapping[str, Any]],
    *,
    cost_per_human_label: float = 0.10,
    llm_cost: float | None = None,
    confidence: float = 0.95,
    top_k: int = DEFAULT_TOP_K,
    estimator: str = REPORT_ESTIMATOR,
    plan: Mapping[str, Any] | None = None,
) -> ReportFigures:
    """Every figure of the ACT report from the rows of ``ls-act sync``; pure, no I/O.

    Parameters
    ----------
    rows : sequence of mappings
        One per Label Studio task, with the columns of ``ls-act sync``.
    cost_per_human_label : float >= 0
        Price of one human label (any currency unit; money figures use the same unit).
    llm_cost : float >= 0 or None
        What the machine labels and critic cost in total; subtracted from the saving. None =
        unknown (not subtracted; the report says so).
    confidence : float in (0, 1)
        Coverage of the accuracy intervals.
    top_k : int >= 1
        k of precision@k (capped at the number of reviewed rows).
    estimator : {"model-assisted", "horvitz-thompson"}
        The estimator of the error counts and accuracies (``act_math.error_count_estimate``).
    plan : mapping or None
        The plan of the review in rounds the rows come from (``review.json`` of ``ls-act
        sync``: ``total_budget``, ``target``, ``confidence``); with a target, the report
        carries the certificate (``sequential.certificate``) at the plan's confidence.

    Returns
    -------
    ReportFigures
        See its docstring for each formula and how pending and no-draw rows are treated.

    Raises
    ------
    ValueError
        If ``rows`` is empty, a row lacks or has an invalid column (the message quotes its
        index and task_id), or an option is out of range.
    """
    cost, llm, level, k = _check_options(cost_per_human_label, llm_cost, confidence, top_k)
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {list(ESTIMATORS)}; got {estimator!r}")
    table = parse_rows(rows)
    return _compute(
        table, cost=cost, llm_cost=llm, confidence=level, top_k=k, estimator=estimator, plan=plan
    )


def _compute(
    table: Table,
    *,
    cost: float,
    llm_cost: float | None,
    confidence: float,
    top_k: int,
    estimator: str,
    plan: Mapping[str, Any] | None,
) -> ReportFigures:
    undefined: dict[str, str] = {}
    n = table.reviewed.size
    reviewed = table.reviewed
    n_reviewed = int(reviewed.sum())
    n_wrong = int(table.wrong[reviewed].sum())
    in_est = table.in_estimate

    waiting = _before_audit(table, plan)
    if waiting is not None:
        errors = None
        for key in ("accuracy", "estimated_remaining_errors", "remaining_errors_ci"):
            undefined[key] = waiting
    else:
        errors = _errors(table, in_est, confidence, estimator, undefined)
    accuracy = None if errors is None else accuracy_from_errors(errors)

    naive = None
    if n_reviewed:
        naive = 1.0 - n_wrong / n_reviewed
    else:
        undefined["naive_accuracy"] = "no row has been reviewed yet"

    critic = _critic(table, top_k, undefined)

    avoided = n - n_reviewed
    saved = avoided * cost - (llm_cost or 0.0)
    saved_share = saved / (n * cost) if cost > 0 else None
    if saved_share is None:
        undefined["money_saved_share"] = "the cost per human label is 0"
    if llm_cost is None:
        undefined["llm_cost"] = "not given: the saving does not subtract what the LLM cost"

    design = table.in_design
    expected = float(table.pi[design].sum()) if design.any() else None
    if expected is None:
        undefined["expected_reviews"] = "no review draw yet (no row has an inclusion probability)"

    return ReportFigures(
        n_items=n,
        n_reviewed=n_reviewed,
        n_reviewed_wrong=n_wrong,
        n_drawn=int(table.in_sample.sum()),
        n_reviewed_in_sample=int((table.in_sample & reviewed).sum()),
        n_pending=int(table.pending.sum()),
        n_outside_sample=int(table.outside.sum()),
        n_no_draw=int(np.isnan(table.pi).sum()),
        n_estimate=int(in_est.sum()),
        n_zero_pi=int((in_est & (table.pi == 0.0)).sum()),
        expected_reviews=expected,
        human_share=n_reviewed / n,
        confidence=confidence,
        estimator=estimator if errors is None else errors.method,
        accuracy=accuracy,
        estimated_remaining_errors=None if errors is None else errors.remaining,
        remaining_errors_ci=None if errors is None else errors.remaining_ci,
        naive_accuracy=naive,
        annotators=_annotators(table),
        labels_avoided=avoided,
        labels_avoided_share=avoided / n,
        cost_per_human_label=cost,
        llm_cost=llm_cost,
        money_saved=saved,
        money_saved_share=saved_share,
        per_label=_per_label(table, in_est, confidence, estimator, estimate=waiting is None),
        calibration=_calibration(table, in_est, confidence),
        calibration_curve=_calibration_curve(table, in_est),
        certificate=_certificate(table, plan, undefined),
        undefined=undefined,
        **critic,
    )


def _error_count(table: Table, domain: np.ndarray, confidence: float, method: str) -> ErrorCount:
    """``act_math.error_count_estimate`` on the rows of ``domain`` (e_i is sync's
    machine_correct, multi-label order included); over a review in rounds,
    ``sequential.sequential_error_count``."""
    if table.pi_rounds is not None:
        pis, deltas = _round_design(table, domain)
        return sequential_error_count(
            table.wrong[domain],
            pis,
            deltas,
            suspicion=table.suspicion[domain] if method == "model-assisted" else None,
            confidence=confidence,
        )
    return error_count_estimate(
        table.wrong[domain],
        table.delta[domain],
        table.pi[domain],
        suspicion=table.suspicion[domain],
        method=method,
        confidence=confidence,
    )


def _certificate(
    table: Table, plan: Mapping[str, Any] | None, undefined: dict[str, str]
) -> Certificate | None:
    """``sequential.certificate`` of the rows under ``plan``; None (and why) when undefined."""
    if plan is None or plan.get("target") is None:
        undefined["certificate"] = "no target accuracy was set (ls-act review --target-accuracy)"
        return None
    if table.pending.any():
        undefined["certificate"] = "drawn rows still wait for review"
        return None
    domain = table.in_estimate
    if not table.delta[domain].any():
        undefined["certificate"] = "no drawn row has been reviewed yet"
        return None
    if table.pi_rounds is not None:
        pis, deltas = _round_design(table, domain)
    else:
        pis, deltas = [table.pi[domain]], [(table.delta & ~table.outside)[domain]]
    return certificate(
        table.wrong[domain],
        pis,
        deltas,
        total_budget=float(plan["total_budget"]),
        target=float(plan["target"]),
        confidence=float(plan.get("confidence") or 0.95),
        suspicion=table.suspicion[domain],
    )


def _round_design(table: Table, domain: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each round's (π, δ) over ``domain``; rounds with no budget there are left out (they
    drew none of its rows). Rows reviewed outside the sample count as not reviewed."""
    assert table.pi_rounds is not None
    pis, deltas = [], []
    for r, pi in enumerate(table.pi_rounds, start=1):
        if pi[domain].sum() > 0.0:
            pis.append(pi[domain])
            deltas.append(((table.round == r) & table.reviewed)[domain])
    return pis, deltas


def _before_audit(table: Table, plan: Mapping[str, Any] | None) -> str | None:
    """Why nothing is estimated yet in a series with search rounds whose audit round (the
    last, the only one with the floor) is not drawn yet; None otherwise."""
    if plan is None or plan.get("audit_floor") is None:
        return None
    drawn = 1 if table.pi_rounds is None else int(table.pi_rounds.shape[0])
    planned = int(plan.get("rounds") or 1)
    if drawn >= planned:
        return None
    return (
        f"search rounds: the estimate comes with the audit round (round {planned} of the "
        f"plan; {drawn} drawn so far), the only one that can draw every task"
    )


def _errors(
    table: Table,
    in_est: np.ndarray,
    confidence: float,
    estimator: str,
    undefined: dict[str, str],
) -> ErrorCount | None:
    if not in_est.any() or not table.delta[in_est].any():
        if np.isnan(table.pi).all():
            reason = "no review draw yet (no row has an inclusion probability)"
        elif not in_est.any():
            reason = "every drawn row is still pending review"
        else:
            reason = "no drawn row has been reviewed yet"
        for key in ("accuracy", "estimated_remaining_errors", "remaining_errors_ci"):
            undefined[key] = reason
        return None
    return _error_count(table, in_est, confidence, estimator)


def _calibration(table: Table, in_est: np.ndarray, confidence: float) -> tuple[CalibrationBin, ...]:
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    which = np.minimum(np.searchsorted(edges, table.suspicion, side="right") - 1, len(edges) - 2)
    reviewed_any = bool(table.delta[in_est].any())
    calibrated = np.full(table.suspicion.size, np.nan)
    if reviewed_any:
        calibrated[in_est] = cross_fitted_probabilities(
            table.suspicion[in_est],
            table.wrong[in_est],
            table.delta[in_est],
            table.pi[in_est],
        )
    bins = []
    for b in range(CALIBRATION_BINS):
        mine = in_est & (which == b)
        rows = int(mine.sum())
        estimated: ErrorCount | None = None
        if table.delta[mine].any():
            estimated = _error_count(table, mine, confidence, "horvitz-thompson")
        bins.append(
            CalibrationBin(
                low=float(edges[b]),
                high=float(edges[b + 1]),
                rows=rows,
                mean_suspicion=float(table.suspicion[mine].mean()) if rows else None,
                expected=float(table.suspicion[mine].sum()),
                calibrated=float(calibrated[mine].sum()) if reviewed_any else None,
                reviewed=int(table.delta[mine].sum()),
                found=int((table.delta & table.wrong)[mine].sum()),
                estimated=None if estimated is None else estimated.estimate,
                estimated_ci=None if estimated is None else (estimated.ci_low, estimated.ci_high),
            )
        )
    return tuple(bins)


def _calibration_curve(table: Table, in_est: np.ndarray) -> tuple[tuple[float, float], ...]:
    fit = table.delta & in_est
    if not fit.any():
        return ()
    calibrated = calibrate_suspicion(table.suspicion[fit], table.wrong[fit], 1.0 / table.pi[fit])
    grid = np.linspace(0.0, 1.0, CURVE_POINTS)
    return tuple(zip(grid.tolist(), calibrated(grid).tolist(), strict=True))


def _critic(table: Table, top_k: int, undefined: dict[str, str]) -> dict[str, Any]:
    reviewed = table.reviewed
    scores = table.suspicion[reviewed]
    wrong = table.wrong[reviewed]
    n_reviewed, n_wrong = int(reviewed.sum()), int(wrong.sum())
    result: dict[str, Any] = {
        "auroc": None,
        "weighted_auroc": None,
        "top_k": None,
        "precision_at_k": None,
        "recall_at": tuple((f, None) for f in RECALL_FRACTIONS),
    }
    if n_reviewed == 0:
        reason = "no row has been reviewed yet"
        for key in ("auroc", "weighted_auroc", "precision_at_k", "recall_at"):
            undefined[key] = reason
        return result
    k = min(top_k, n_reviewed)
    result["top_k"] = k
    result["precision_at_k"] = precision_at(scores, wrong, k=k)
    if n_wrong == 0:
        undefined["recall_at"] = "no reviewed machine label was wrong"
    else:
        result["recall_at"] = tuple(
            (f, recall_at_fraction(scores, wrong, fraction=f)) for f in RECALL_FRACTIONS
        )
    if n_wrong in (0, n_reviewed):
        kind = "right" if n_wrong == 0 else "wrong"
        reason = f"only one class reviewed (all {n_reviewed} reviewed machine labels were {kind})"
        undefined["auroc"] = undefined["weighted_auroc"] = reason
        return result
    result["auroc"] = auroc(scores, wrong)
    weighted = table.delta & table.in_estimate  # reviewed rows with a known π > 0
    w_wrong = table.wrong[weighted]
    if w_wrong.any() and not w_wrong.all():
        result["weighted_auroc"] = weighted_auroc(
            table.suspicion[weighted], w_wrong, 1.0 / table.pi[weighted]
        )
    else:
        undefined["weighted_auroc"] = "only one class among reviewed rows with a draw"
    return result


def _annotators(table: Table) -> tuple[AnnotatorAgreement, ...]:
    counts: dict[str, list[int]] = {}
    for i in np.flatnonzero(table.reviewed):
        entry = counts.setdefault(table.annotator[i], [0, 0])
        entry[0] += 1
        entry[1] += int(not table.wrong[i])
    ordered = sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))
    return tuple(
        AnnotatorAgreement(annotator=name, reviewed=r, agreed=a, agreement=a / r)
        for name, (r, a) in ordered
    )


def _per_label(
    table: Table, in_est: np.ndarray, confidence: float, estimator: str, *, estimate: bool = True
) -> tuple[LabelBreakdown, ...]:
    keys = np.array(table.label_key, dtype=object)
    result = []
    for label in sorted(set(table.label_key), key=lambda key: (-table.label_key.count(key), key)):
        mine = keys == label
        domain = mine & in_est
        error_rate: float | None = None
        error_ci: tuple[float, float] | None = None
        if estimate and table.delta[domain].any():
            est = _error_count(table, domain, confidence, estimator)
            size = int(domain.sum())
            error_rate = est.estimate / size
            error_ci = (est.ci_low / size, est.ci_high / size)
        result.append(
            LabelBreakdown(
                label=label,
                count=int(mine.sum()),
                reviewed=int((mine & table.reviewed).sum()),
                reviewed_wrong=int((mine & table.reviewed & table.wrong).sum()),
                error_rate=error_rate,
                error_ci=error_ci,
            )
        )
    return tuple(result)
