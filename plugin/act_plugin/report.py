"""An ACT report: how good the machine labels are, how well the critic ranked them, what was saved.

Lin et al., "ACT as Human: Multimodal Large Language Model Data Annotation with Critical
Thinking", NeurIPS 2025, arXiv:2511.09833. See docs/method.md.

Two steps, as in cleanlab's scoring/report split:

- :func:`compute_report` (pure, no I/O) turns the training-set rows of ``ls-act sync`` into a
  :class:`ReportFigures`: every number of the report, each formula documented there.
- :func:`write_report` renders them: ``report.html`` (self-contained: inline CSS, plots as
  base64 PNG, no scripts and no external URLs) and ``report.png`` (one summary figure).

Rows are mappings with the columns of ``ls-act sync``: ``task_id``, ``machine_label``,
``human_label``, ``reviewed``, ``in_sample``, ``outside_sample``, ``pending``, ``suspicion``,
``pi``, ``delta``, ``machine_correct``, ``annotator`` (others are ignored).

Undefined figures are ``None`` (never NaN); :attr:`ReportFigures.undefined` says why.
matplotlib (Agg, no display) is imported only by :func:`write_report`.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from act_plugin.act_math import (
    AccuracyEstimate,
    accuracy_estimate,
    auroc,
    precision_at,
    recall_at_fraction,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "RECALL_FRACTIONS",
    "AnnotatorAgreement",
    "LabelBreakdown",
    "ReportFigures",
    "ReportPaths",
    "compute_report",
    "write_report",
]

#: Shares of the reviewed rows (most suspicious first) at which the critic's recall is reported.
RECALL_FRACTIONS: tuple[float, ...] = (0.1, 0.2)
#: Default k of "precision among the k most suspicious reviewed rows".
DEFAULT_TOP_K = 10
_NO_LABEL = "(no label)"
_UNKNOWN_ANNOTATOR = "unknown"
_HIST_BINS = 20

# Colours (colour-blind safe pairs: blue/orange for review state, green/red-ish kept distinct
# in lightness too).
_C_CORRECT = "#3a86c8"
_C_WRONG = "#e07b39"
_C_UNREVIEWED = "#c9c9c9"
_C_OUTSIDE = "#7b5ea7"
_C_PENDING = "#f2c14e"
_C_NO_DRAW = "#2a9d8f"
_C_ACT = "#1f4e79"
_C_NAIVE = "#9a9a9a"


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


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
        estimate (see :class:`ReportFigures`): 1 − the domain's accuracy estimate,
        (1/N_ℓ) Σ_{i: ŷ_i = ℓ} e_i δ_i/π_i. None when no such row was reviewed.
    error_ci : tuple of float or None
        Its interval at the report's confidence (same normal interval as the overall one).
    """

    label: str
    count: int
    reviewed: int
    reviewed_wrong: int
    error_rate: float | None
    error_ci: tuple[float, float] | None


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
    accuracy : AccuracyEstimate or None
        ACT (Horvitz–Thompson) estimate of the machine labels' accuracy over the N_est rows,
        ``act_math.accuracy_estimate``: acc = (1/N_est) Σ_i [1 − e_i δ_i/π_i], interval
        acc ± z √V̂ with V̂ = (1/N_est²) Σ_i δ_i e_i (1 − π_i)/π_i², clipped to [0, 1]. None when
        no row of the estimate was reviewed (nothing to correct the machine with).
    estimated_remaining_errors : float or None
        Wrong machine labels estimated to remain on unreviewed rows of the estimate:
        Σ_i e_i δ_i/π_i − Σ_i e_i δ_i (estimated total errors minus those humans fixed).
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
        Same, with each reviewed row of the estimate weighted by 1/π_i:
        Σ_{w wrong, r right} (1/π_w)(1/π_r) [1(ε̂_w > ε̂_r) + ½ 1(ε̂_w = ε̂_r)] /
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
    accuracy: AccuracyEstimate | None
    estimated_remaining_errors: float | None
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


@dataclass(frozen=True)
class ReportPaths:
    """Files written by :func:`write_report`."""

    html: Path
    png: Path


# --------------------------------------------------------------------------------------------
# Parsing rows (the public edge)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    """The rows as arrays; validated."""

    label_key: list[str]
    annotator: list[str]
    reviewed: np.ndarray  # bool
    wrong: np.ndarray  # bool; False where not reviewed
    suspicion: np.ndarray  # float in [0, 1]
    pi: np.ndarray  # float; NaN where no draw; 1 for outside-sample rows
    delta: np.ndarray  # bool
    in_design: np.ndarray  # bool: has a drawn π (outside-sample rows excluded)
    in_sample: np.ndarray  # bool
    outside: np.ndarray  # bool
    pending: np.ndarray  # bool

    @property
    def in_estimate(self) -> np.ndarray:
        return ~np.isnan(self.pi) & ~self.pending


def _row_error(row: Mapping[str, Any], index: int, message: str) -> ValueError:
    task = row.get("task_id", "?") if isinstance(row, Mapping) else "?"
    return ValueError(f"row {index} (task_id {task!r}): {message}")


def _flag(row: Mapping[str, Any], index: int, key: str) -> bool:
    value = row.get(key, False)
    if value is None:
        return False
    if isinstance(value, (bool, np.bool_)) or value in (0, 1):
        return bool(value)
    raise _row_error(row, index, f"{key} must be a boolean; got {value!r}")


def _label_key(labels: object) -> str:
    if labels is None:
        return _NO_LABEL
    if isinstance(labels, str):
        return labels or _NO_LABEL
    items = sorted(str(label) for label in labels)  # type: ignore[attr-defined]
    return ", ".join(items) if items else _NO_LABEL


def _is_wrong(row: Mapping[str, Any], index: int) -> bool:
    """e_i from ``machine_correct``; if that is missing, label sets compared as sorted lists."""
    correct = row.get("machine_correct")
    if correct is not None:
        if not isinstance(correct, (bool, np.bool_)):
            raise _row_error(row, index, f"machine_correct must be a boolean; got {correct!r}")
        return not bool(correct)
    human = row.get("human_label")
    if human is None:
        raise _row_error(row, index, "reviewed, but both machine_correct and human_label are None")
    return _label_key(row.get("machine_label")) != _label_key(human)


def _number(row: Mapping[str, Any], index: int, key: str) -> float:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _row_error(row, index, f"{key} must be a number in [0, 1]; got {value!r}")
    number = float(value)
    if not 0.0 <= number <= 1.0:  # also rejects NaN
        raise _row_error(row, index, f"{key} must lie in [0, 1]; got {value!r}")
    return number


def _parse(rows: Sequence[Mapping[str, Any]]) -> _Table:
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        raise ValueError(f"rows must be a sequence of mappings; got {type(rows).__name__}")
    if len(rows) == 0:
        raise ValueError("rows is empty: nothing to report (run `ls-act sync` first?)")
    n = len(rows)
    reviewed = np.zeros(n, dtype=bool)
    wrong = np.zeros(n, dtype=bool)
    suspicion = np.zeros(n)
    pi = np.full(n, np.nan)
    delta = np.zeros(n, dtype=bool)
    in_design = np.zeros(n, dtype=bool)
    in_sample = np.zeros(n, dtype=bool)
    outside = np.zeros(n, dtype=bool)
    pending = np.zeros(n, dtype=bool)
    label_key: list[str] = []
    annotator: list[str] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"row {i} must be a mapping; got {type(row).__name__}")
        reviewed[i] = _flag(row, i, "reviewed")
        in_sample[i] = _flag(row, i, "in_sample")
        outside[i] = _flag(row, i, "outside_sample")
        pending[i] = _flag(row, i, "pending")
        delta_value = row.get("delta", 0)
        if delta_value not in (0, 1):  # True/False pass too
            raise _row_error(row, i, f"delta must be 0 or 1; got {delta_value!r}")
        delta[i] = delta_value == 1
        suspicion[i] = _number(row, i, "suspicion")
        if outside[i]:
            pi[i] = 1.0
        elif row.get("pi") is not None:
            pi[i] = _number(row, i, "pi")
            in_design[i] = True
        if delta[i] and not reviewed[i]:
            raise _row_error(row, i, "delta is 1 but the row is not reviewed")
        if delta[i] and not pi[i] > 0.0:
            raise _row_error(row, i, f"delta is 1 but pi is {row.get('pi')!r} (must be > 0)")
        if pending[i] and reviewed[i]:
            raise _row_error(row, i, "pending and reviewed at once")
        if reviewed[i]:
            wrong[i] = _is_wrong(row, i)
        label_key.append(_label_key(row.get("machine_label")))
        who = row.get("annotator")
        annotator.append(_UNKNOWN_ANNOTATOR if who is None else str(who))
    return _Table(
        label_key=label_key,
        annotator=annotator,
        reviewed=reviewed,
        wrong=wrong,
        suspicion=suspicion,
        pi=pi,
        delta=delta,
        in_design=in_design,
        in_sample=in_sample,
        outside=outside,
        pending=pending,
    )


def _check_options(
    cost_per_human_label: object, llm_cost: object, confidence: object, top_k: object
) -> tuple[float, float | None, float, int]:
    def money(value: object, name: str) -> float:
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, bool
        )
        if not ok or not math.isfinite(float(value)) or float(value) < 0.0:  # type: ignore[arg-type]
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
        return float(value)  # type: ignore[arg-type]

    cost = money(cost_per_human_label, "cost_per_human_label")
    llm = None if llm_cost is None else money(llm_cost, "llm_cost")
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float, np.floating))
        or not 0.0 < float(confidence) < 1.0
    ):
        raise ValueError(f"confidence must lie in (0, 1); got {confidence!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1; got {top_k!r}")
    return cost, llm, float(confidence), int(top_k)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def compute_report(
    rows: Sequence[Mapping[str, Any]],
    *,
    cost_per_human_label: float = 0.10,
    llm_cost: float | None = None,
    confidence: float = 0.95,
    top_k: int = DEFAULT_TOP_K,
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
    return _compute(_parse(rows), cost=cost, llm_cost=llm, confidence=level, top_k=k)


def _compute(
    table: _Table, *, cost: float, llm_cost: float | None, confidence: float, top_k: int
) -> ReportFigures:
    undefined: dict[str, str] = {}
    n = table.reviewed.size
    reviewed = table.reviewed
    n_reviewed = int(reviewed.sum())
    n_wrong = int(table.wrong[reviewed].sum())
    in_est = table.in_estimate

    accuracy, remaining = _accuracy(table, in_est, confidence, undefined)

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
        accuracy=accuracy,
        estimated_remaining_errors=remaining,
        naive_accuracy=naive,
        annotators=_annotators(table),
        labels_avoided=avoided,
        labels_avoided_share=avoided / n,
        cost_per_human_label=cost,
        llm_cost=llm_cost,
        money_saved=saved,
        money_saved_share=saved_share,
        per_label=_per_label(table, in_est, confidence),
        undefined=undefined,
        **critic,
    )


def _accuracy(
    table: _Table, in_est: np.ndarray, confidence: float, undefined: dict[str, str]
) -> tuple[AccuracyEstimate | None, float | None]:
    delta = table.delta[in_est]
    if not in_est.any() or not delta.any():
        if np.isnan(table.pi).all():
            reason = "no review draw yet (no row has an inclusion probability)"
        elif not in_est.any():
            reason = "every drawn row is still pending review"
        else:
            reason = "no drawn row has been reviewed yet"
        undefined["accuracy"] = reason
        undefined["estimated_remaining_errors"] = reason
        return None, None
    pi = table.pi[in_est]
    wrong = table.wrong[in_est] & delta
    # accuracy_estimate compares labels with !=; pass e_i itself so that what counts as
    # "wrong" is sync's machine_correct (multi-label order included), not a re-comparison.
    estimate = accuracy_estimate(
        [False] * wrong.size, wrong.tolist(), delta, pi, confidence=confidence
    )
    found = float(wrong.sum())
    total = float(np.sum(1.0 / pi[wrong]))
    return estimate, total - found


def _weighted_auroc(scores: np.ndarray, wrong: np.ndarray, weights: np.ndarray) -> float:
    """Weighted Mann–Whitney AUROC (ties count ½); assumes both classes have positive weight."""
    values, group = np.unique(scores, return_inverse=True)
    w_wrong = np.bincount(group, weights=np.where(wrong, weights, 0.0), minlength=values.size)
    w_right = np.bincount(group, weights=np.where(wrong, 0.0, weights), minlength=values.size)
    right_below = np.cumsum(w_right) - w_right  # right-label weight strictly below each score
    pairs = float(np.sum(w_wrong * (right_below + 0.5 * w_right)))
    return pairs / (float(w_wrong.sum()) * float(w_right.sum()))


def _critic(table: _Table, top_k: int, undefined: dict[str, str]) -> dict[str, Any]:
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
        result["weighted_auroc"] = _weighted_auroc(
            table.suspicion[weighted], w_wrong, 1.0 / table.pi[weighted]
        )
    else:
        undefined["weighted_auroc"] = "only one class among reviewed rows with a draw"
    return result


def _annotators(table: _Table) -> tuple[AnnotatorAgreement, ...]:
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


def _per_label(table: _Table, in_est: np.ndarray, confidence: float) -> tuple[LabelBreakdown, ...]:
    keys = np.array(table.label_key, dtype=object)
    result = []
    for label in sorted(set(table.label_key), key=lambda key: (-table.label_key.count(key), key)):
        mine = keys == label
        domain = mine & in_est
        error_rate: float | None = None
        error_ci: tuple[float, float] | None = None
        if table.delta[domain].any():
            delta = table.delta[domain]
            wrong = table.wrong[domain] & delta
            est = accuracy_estimate(
                [False] * wrong.size,
                wrong.tolist(),
                delta,
                table.pi[domain],
                confidence=confidence,
            )
            error_rate, error_ci = 1.0 - est.estimate, (1.0 - est.ci_high, 1.0 - est.ci_low)
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


def _roc_points(scores: np.ndarray, wrong: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every distinct threshold, from (0, 0) to (1, 1); ties move diagonally."""
    order = np.argsort(-scores, kind="stable")
    scores, wrong = scores[order], wrong[order]
    last_of_group = np.r_[scores[1:] != scores[:-1], True]
    tp = np.cumsum(wrong)[last_of_group]
    fp = np.cumsum(~wrong)[last_of_group]
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100.0 * value:.{digits}f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _accuracy_text(fig: ReportFigures) -> str:
    acc = fig.accuracy
    if acc is None:
        return "undefined: " + fig.undefined.get("accuracy", "")
    level = round(100 * fig.confidence)
    return f"{_pct(acc.estimate)} ({level}% CI {_pct(acc.ci_low)} – {_pct(acc.ci_high)})"


def _headline(fig: ReportFigures) -> str:
    parts = []
    if fig.accuracy is not None:
        parts.append(
            f"An estimated <b>{_pct(fig.accuracy.estimate)}</b> of the machine labels are right "
            f"({round(100 * fig.confidence)}% CI {_pct(fig.accuracy.ci_low)} – "
            f"{_pct(fig.accuracy.ci_high)}, over {fig.n_estimate:,} rows)."
        )
    else:
        parts.append(
            "The machine labels' accuracy cannot be estimated yet: "
            f"{html.escape(fig.undefined.get('accuracy', ''))}."
        )
    parts.append(
        f"Humans reviewed <b>{fig.n_reviewed:,}</b> of {fig.n_items:,} items "
        f"(<b>{_pct(fig.human_share)}</b>); the machine alone labelled "
        f"{fig.labels_avoided:,} ({_pct(fig.labels_avoided_share)})."
    )
    return " ".join(parts)


def _caveats(fig: ReportFigures) -> list[str]:
    notes = []
    if fig.provisional:
        notes.append(
            f"<b>Provisional.</b> {fig.n_pending:,} drawn rows still wait for review. They are "
            "left out of the estimate, which covers the other rows; until they are reviewed, "
            "errors among them (and the weight of any low-probability draws) are missing."
        )
    if fig.n_no_draw:
        notes.append(
            f"{fig.n_no_draw:,} rows have no inclusion probability (no review draw covered "
            "them) and are left out of the estimate. Reviewed ones still count in the naive "
            "figures."
        )
    if fig.n_zero_pi:
        notes.append(
            f"{fig.n_zero_pi:,} rows in the estimate could never be drawn (π = 0): the estimate "
            "takes their machine labels as right. It is unbiased only if the critic never misses "
            "an error there; a sampling floor (π ≥ π_min > 0) removes this assumption."
        )
    acc = fig.accuracy
    if acc is not None and acc.stderr == 0.0 and fig.n_estimate > acc.n_reviewed:
        notes.append(
            "The accuracy interval has zero width: no wrong label was found among rows reviewed "
            'with π &lt; 1, so the estimate shows no sampling error. Read it as "no evidence of '
            'further errors among rarely drawn rows", not as certainty.'
        )
    if fig.n_reviewed and fig.auroc is not None:
        notes.append(
            "Critic figures are measured on the reviewed rows only. Review was driven by the "
            "critic's own suspicion, so this sample is biased toward suspicious rows; the "
            "inverse-π-weighted AUROC corrects for that where π &gt; 0."
        )
    return notes


def _row(name: str, value: str, meaning: str) -> str:
    return f"<tr><th scope='row'>{name}</th><td class='v'>{value}</td><td>{meaning}</td></tr>"


def _section(title: str) -> str:
    return f"<tr class='group'><th colspan='3'>{title}</th></tr>"


def _or_reason(fig: ReportFigures, key: str, text: str) -> str:
    reason = fig.undefined.get(key)
    if reason is None:
        return text
    return f"<span class='undef'>undefined: {html.escape(reason)}</span>"


def _recall_ceiling(fig: ReportFigures, fraction: float) -> float:
    """The best recall a perfect ranking reaches in the top fraction: min(1, m / n_wrong)."""
    m = min(math.floor(fraction * fig.n_reviewed + 0.5), fig.n_reviewed)
    return min(1.0, m / max(fig.n_reviewed_wrong, 1))


def _figures_table(fig: ReportFigures) -> str:
    level = round(100 * fig.confidence)
    recall_rows = [
        _row(
            f"Recall in top {round(100 * f)}% most suspicious",
            _or_reason(
                fig, "recall_at", f"{_pct(value)} (at most {_pct(_recall_ceiling(fig, f))})"
            ),
            f"Share of the wrong labels found among the {round(100 * f)}% most suspicious "
            "reviewed rows. Random order ≈ that share; the ceiling is lower when more of the "
            "reviewed labels are wrong than fit in the top share.",
        )
        for f, value in fig.recall_at
    ]
    budget = (
        "—"
        if fig.expected_reviews is None
        else f"{fig.expected_reviews:,.1f} expected · {fig.n_drawn:,} drawn"
    )
    llm = "not given" if fig.llm_cost is None else _money(fig.llm_cost)
    rows = [
        _section("Machine-label quality"),
        _row(
            "ACT accuracy estimate",
            _or_reason(fig, "accuracy", _accuracy_text(fig)),
            "Share of machine labels a human would accept, estimated from the reviewed sample "
            f"with weights 1/π ({level}% confidence interval).",
        ),
        _row(
            "Wrong labels left (estimate)",
            _or_reason(
                fig,
                "estimated_remaining_errors",
                _num(fig.estimated_remaining_errors, 1),
            ),
            "Wrong machine labels estimated to remain on rows no human reviewed.",
        ),
        _row(
            "Naive accuracy (reviewed rows only, biased)",
            _or_reason(fig, "naive_accuracy", _pct(fig.naive_accuracy)),
            "Share of reviewed rows where the reviewer kept the machine label. Review targets "
            "suspicious rows, so this understates accuracy; for contrast only.",
        ),
        _section("Human review and budget"),
        _row(
            "Reviewed by a human",
            f"{fig.n_reviewed:,} of {fig.n_items:,} ({_pct(fig.human_share)})",
            f"{fig.n_reviewed_wrong:,} of them had a wrong machine label.",
        ),
        _row(
            "Review budget",
            budget,
            "Σπ: the number of reviews the draw expects; drawn: rows actually drawn.",
        ),
        _row(
            "Drawn and reviewed / pending",
            f"{fig.n_reviewed_in_sample:,} / {fig.n_pending:,}",
            "Pending rows are drawn but not reviewed yet; they are left out of the estimate.",
        ),
        _row(
            "Reviewed outside the sample",
            f"{fig.n_outside_sample:,}",
            "Reviewed although not drawn; counted with π = 1 (their label is known exactly).",
        ),
        _row(
            "Rows without a draw",
            f"{fig.n_no_draw:,}",
            "No inclusion probability: left out of the estimate.",
        ),
        _row(
            "Reviewer agreement with the machine",
            _or_reason(fig, "naive_accuracy", _pct(fig.naive_accuracy)),
            "Share of reviews that kept the machine label (per reviewer below).",
        ),
        _section("Critic quality (on the reviewed sample: biased toward suspicious rows)"),
        _row(
            "AUROC",
            _or_reason(fig, "auroc", _num(fig.auroc)),
            "Chance that a wrong label gets a higher suspicion than a right one "
            "(0.5 = random, 1 = perfect).",
        ),
        _row(
            "AUROC, inverse-π weighted",
            _or_reason(fig, "weighted_auroc", _num(fig.weighted_auroc)),
            "Same, each reviewed row weighted by 1/π to stand for the rows it represents.",
        ),
        _row(
            f"Precision in top {fig.top_k or '—'} most suspicious",
            _or_reason(fig, "precision_at_k", _pct(fig.precision_at_k)),
            "Share of wrong labels among the k most suspicious reviewed rows.",
        ),
        *recall_rows,
        _section("Cost"),
        _row(
            "Human labels avoided",
            f"{fig.labels_avoided:,} ({_pct(fig.labels_avoided_share)})",
            "Rows labelled by the machine alone.",
        ),
        _row(
            "Money saved",
            f"{_money(fig.money_saved)}"
            + (
                ""
                if fig.money_saved_share is None
                else f" ({_pct(fig.money_saved_share)} of labelling everything by hand)"
            ),
            f"Labels avoided × {_money(fig.cost_per_human_label)} per human label − LLM cost "
            f"({llm}).",
        ),
    ]
    return "<table class='figures'>" + "".join(rows) + "</table>"


def _per_label_table(fig: ReportFigures) -> str:
    head = (
        "<tr><th>Machine label</th><th>Rows</th><th>Reviewed</th><th>Reviewed wrong</th>"
        f"<th>Estimated error rate ({round(100 * fig.confidence)}% CI)</th></tr>"
    )
    body = []
    for item in fig.per_label:
        if item.error_rate is None or item.error_ci is None:
            error = "<span class='undef'>no reviews</span>"
        else:
            error = f"{_pct(item.error_rate)} ({_pct(item.error_ci[0])} – {_pct(item.error_ci[1])})"
        body.append(
            f"<tr><td>{html.escape(item.label)}</td><td class='v'>{item.count:,}</td>"
            f"<td class='v'>{item.reviewed:,}</td><td class='v'>{item.reviewed_wrong:,}</td>"
            f"<td class='v'>{error}</td></tr>"
        )
    return "<table class='grid'>" + head + "".join(body) + "</table>"


def _annotator_table(fig: ReportFigures) -> str:
    if not fig.annotators:
        return "<p class='undef'>No reviews yet.</p>"
    head = (
        "<tr><th>Reviewer (Label Studio user id)</th><th>Reviews</th>"
        "<th>Kept the machine label</th></tr>"
    )
    body = "".join(
        f"<tr><td>{html.escape(a.annotator)}</td><td class='v'>{a.reviewed:,}</td>"
        f"<td class='v'>{a.agreed:,} ({_pct(a.agreement)})</td></tr>"
        for a in fig.annotators
    )
    return "<table class='grid'>" + head + body + "</table>"


_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  color:#222;margin:0;background:#f6f7f9;line-height:1.45}
main{max-width:1080px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:1.6em;margin:0 0 4px}
h2{font-size:1.2em;margin:32px 0 10px;border-bottom:1px solid #e3e5e8;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}
.headline{font-size:1.1em;background:#eef4fa;border-left:4px solid #1f4e79;padding:12px 16px}
.caveats{background:#fff8e6;border-left:4px solid #f2c14e;padding:8px 16px;margin:12px 0}
.caveats li{margin:4px 0}
table{border-collapse:collapse;width:100%;font-size:0.94em}
th,td{padding:6px 10px;text-align:left;vertical-align:top;border-bottom:1px solid #eceef1}
table.figures th[scope=row]{width:28%;font-weight:600}
table.figures td.v{width:26%;white-space:nowrap}
tr.group th{background:#f0f2f5;font-size:0.95em;color:#1f4e79;padding-top:10px}
table.grid th{background:#f0f2f5}
td.v{font-variant-numeric:tabular-nums}
.undef{color:#8a6d00;font-style:italic;white-space:normal}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:18px}
figure{margin:0}
figure img{width:100%;height:auto;border:1px solid #eceef1}
figcaption{font-size:0.9em;color:#555;margin-top:4px}
.howto li{margin:6px 0}
footer{color:#777;font-size:0.85em;margin-top:32px}
"""


def _html(fig: ReportFigures, title: str, images: Mapping[str, str]) -> str:
    caveats = _caveats(fig)
    caveat_html = (
        "<ul class='caveats'>" + "".join(f"<li>{c}</li>" for c in caveats) + "</ul>"
        if caveats
        else ""
    )
    captions = {
        "accuracy": "ACT estimate with its interval, next to the naive share on reviewed rows.",
        "budget": "Who labelled what: reviewed rows, pending draws and machine-only rows.",
        "suspicion": "Critic suspicion of every row, split by what review found.",
        "roc": "ROC curve of the critic on the reviewed rows (wrong label = positive).",
    }
    plots = "".join(
        f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{captions[name]}</figcaption></figure>"
        for name, data in images.items()
    )
    level = round(100 * fig.confidence)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body><main>
<h1>{html.escape(title)}</h1>
<p class="sub">ACT report (Annotation with Critical Thinking) · {fig.n_items:,} items</p>
<p class="headline">{_headline(fig)}</p>
{caveat_html}
<h2>Figures</h2>
{_figures_table(fig)}
<h2>Plots</h2>
<div class="plots">{plots}</div>
<h2>By machine label</h2>
{_per_label_table(fig)}
<h2>By reviewer</h2>
{_annotator_table(fig)}
<h2>How to read this</h2>
<ul class="howto">
<li><b>ACT accuracy estimate</b> is the number to trust. Each reviewed row stands for 1/π rows
(π = its chance of being drawn), so errors found among rarely-drawn rows count for many. It is
unbiased when every row that could be wrong had π &gt; 0; the {level}% interval is a normal
approximation, optimistic when few low-π rows were reviewed.</li>
<li><b>Naive accuracy</b> looks only at reviewed rows. Review targets the rows the critic
suspects, so it is usually far below the true accuracy: do not quote it as the labels'
quality.</li>
<li><b>Critic quality</b> says how well the suspicion score ranks wrong labels first. AUROC 0.5
is a coin flip, 1.0 perfect. A good critic has most wrong labels (orange) at the right of the
suspicion histogram.</li>
<li><b>Savings</b> count every row that no human labelled. The ACT loss uses the human label
where there is one and the machine label elsewhere, reweighted so training stays unbiased.</li>
</ul>
<footer>Method: Lin et al., "ACT as Human: Multimodal Large Language Model Data Annotation with
Critical Thinking", NeurIPS 2025 (arXiv:2511.09833). Generated by label-studio-act.</footer>
</main></body></html>
"""


def _plot_suspicion(ax: Axes, table: _Table) -> None:
    from matplotlib.ticker import MaxNLocator

    groups = [
        (table.suspicion[~table.reviewed], "not reviewed", _C_UNREVIEWED),
        (table.suspicion[table.reviewed & ~table.wrong], "reviewed: machine right", _C_CORRECT),
        (table.suspicion[table.reviewed & table.wrong], "reviewed: machine wrong", _C_WRONG),
    ]
    bins = np.linspace(0.0, 1.0, _HIST_BINS + 1)
    ax.hist(
        [g[0] for g in groups],
        bins=bins,
        stacked=True,
        color=[g[2] for g in groups],
        label=[f"{g[1]} ({g[0].size:,})" for g in groups],
        edgecolor="white",
        linewidth=0.5,
    )
    ax.set_xlim(0.0, 1.0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    ax.set_xlabel("critic suspicion ε̂ (higher = more likely wrong)")
    ax.set_ylabel("rows")
    ax.set_title("Suspicion by review outcome")
    ax.legend(loc="best", fontsize="small", frameon=False)


def _plot_roc(ax: Axes, table: _Table, fig: ReportFigures) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color="#aaaaaa", linewidth=1, label="random")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate (right labels flagged)")
    ax.set_ylabel("true-positive rate (wrong labels caught)")
    ax.set_title("Critic ROC on the reviewed rows")
    if fig.auroc is None:
        reason = fig.undefined.get("auroc", "")
        ax.text(
            0.5,
            0.5,
            "undefined:\n" + textwrap.fill(reason, 36),
            ha="center",
            va="center",
            fontsize="small",
            color="#8a6d00",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.9},
        )
        return
    fpr, tpr = _roc_points(table.suspicion[table.reviewed], table.wrong[table.reviewed])
    ax.plot(
        fpr, tpr, color=_C_ACT, linewidth=2, clip_on=False, label=f"critic (AUROC {fig.auroc:.3f})"
    )
    ax.legend(loc="lower right", fontsize="small", frameon=False)


def _undefined_note(ax: Axes, y: float, text: str) -> None:
    ax.text(
        0.5,
        y,
        textwrap.fill(f"undefined: {text}", 48),
        ha="center",
        va="center",
        fontsize="small",
        color="#8a6d00",
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.9},
        transform=ax.get_yaxis_transform(),
    )


def _plot_accuracy(ax: Axes, fig: ReportFigures) -> None:
    ax.set_title("Machine-label accuracy")
    ax.set_yticks([1, 0], ["ACT estimate", "naive\n(reviewed only,\nbiased)"])
    ax.set_ylim(-0.6, 1.6)
    ax.set_xlabel("accuracy")
    ax.grid(axis="x", color="#eeeeee")
    lows = []
    acc = fig.accuracy
    if acc is not None:
        # the estimate is not clipped to [0, 1] but its interval is: keep the bars >= 0
        xerr = [[max(0.0, acc.estimate - acc.ci_low)], [max(0.0, acc.ci_high - acc.estimate)]]
        ax.errorbar(
            [acc.estimate],
            [1],
            xerr=xerr,
            fmt="o",
            color=_C_ACT,
            capsize=6,
            markersize=8,
            linewidth=2,
        )
        ax.annotate(
            f"{_pct(acc.estimate)}\n[{_pct(acc.ci_low)}, {_pct(acc.ci_high)}]",
            (acc.estimate, 1),
            textcoords="offset points",
            xytext=(0, 12),
            ha="center",
            fontsize="small",
            color=_C_ACT,
        )
        lows.append(min(acc.ci_low, acc.estimate))
    else:
        _undefined_note(ax, 1, fig.undefined.get("accuracy", ""))
    if fig.naive_accuracy is not None:
        ax.plot([fig.naive_accuracy], [0], "s", color=_C_NAIVE, markersize=8)
        ax.annotate(
            _pct(fig.naive_accuracy),
            (fig.naive_accuracy, 0),
            textcoords="offset points",
            xytext=(0, 10),
            ha="center",
            fontsize="small",
            color="#555555",
        )
        lows.append(fig.naive_accuracy)
    else:
        _undefined_note(ax, 0, fig.undefined.get("naive_accuracy", ""))
    low = max(0.0, min(lows) - 0.05) if lows else 0.0
    ax.set_xlim(low, 1.0 + (1.0 - low) * 0.04)


def _plot_budget(ax: Axes, fig: ReportFigures) -> None:
    n = fig.n_items
    no_draw = fig.n_reviewed - fig.n_reviewed_in_sample - fig.n_outside_sample
    segments = [
        (fig.n_reviewed_in_sample, "reviewed (drawn)", _C_ACT),
        (fig.n_outside_sample, "reviewed outside sample", _C_OUTSIDE),
        (no_draw, "reviewed (no draw)", _C_NO_DRAW),
        (fig.n_pending, "pending review", _C_PENDING),
        (n - fig.n_reviewed - fig.n_pending, "machine only", _C_UNREVIEWED),
    ]
    left = 0
    for count, label, color in segments:
        if count <= 0:
            continue
        ax.barh([0], [count], left=left, color=color, label=f"{label}: {count:,}", height=0.6)
        if count / n > 0.06:
            dark = color in (_C_ACT, _C_OUTSIDE, _C_NO_DRAW)
            ax.text(
                left + count / 2,
                0,
                f"{100 * count / n:.0f}%",
                ha="center",
                va="center",
                color="white" if dark else "#222222",
                fontsize="small",
            )
        left += count
    if fig.expected_reviews is not None:
        ax.axvline(
            fig.expected_reviews,
            ymax=0.55,
            color="#c0392b",
            linestyle=":",
            linewidth=1.8,
            label=f"expected reviews Σπ: {fig.expected_reviews:,.1f}",
        )
    ax.set_xlim(0, n)
    ax.set_ylim(-0.45, 1.35)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("items")
    ax.set_title(f"Human coverage: {_pct(fig.human_share)} of {n:,} items reviewed")
    ax.legend(loc="upper center", ncol=2, fontsize="small", frameon=False)


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)  # Agg: no display, no pyplot global state
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _draw(name: str, ax: Axes, table: _Table, fig: ReportFigures) -> None:
    if name == "accuracy":
        _plot_accuracy(ax, fig)
    elif name == "budget":
        _plot_budget(ax, fig)
    elif name == "suspicion":
        _plot_suspicion(ax, table)
    else:
        _plot_roc(ax, table, fig)


_PLOTS = ("accuracy", "budget", "suspicion", "roc")


def write_report(
    figures: ReportFigures,
    rows: Sequence[Mapping[str, Any]],
    out_dir: Path,
    *,
    title: str,
) -> ReportPaths:
    """Write ``report.html`` (self-contained) and ``report.png`` (summary figure) to ``out_dir``.

    Parameters
    ----------
    figures : ReportFigures
        From :func:`compute_report` on the same ``rows``.
    rows : sequence of mappings
        The rows, for the plots (suspicion histogram, ROC curve).
    out_dir : Path
        Created if missing; existing ``report.html``/``report.png`` are overwritten.
    title : str
        Shown as the page title and heading (HTML-escaped).

    Returns
    -------
    ReportPaths
        The two paths written.
    """
    table = _parse(rows)
    if table.reviewed.size != figures.n_items:
        raise ValueError(
            f"rows has {table.reviewed.size} rows but the figures were computed on "
            f"{figures.n_items}: pass the same rows to compute_report and write_report"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    images = {}
    sizes = {
        "accuracy": (6.0, 3.4),
        "budget": (6.0, 3.4),
        "suspicion": (6.0, 4.2),
        "roc": (6.0, 4.2),
    }
    for name in _PLOTS:
        figure = _new_figure(*sizes[name])
        _draw(name, figure.add_subplot(), table, figures)
        images[name] = base64.b64encode(_png(figure)).decode("ascii")

    summary = _new_figure(13.0, 8.5)
    axes = summary.subplot_mosaic(
        [["accuracy", "budget"], ["suspicion", "roc"]], height_ratios=[1.0, 1.5]
    )
    for name in _PLOTS:
        _draw(name, axes[name], table, figures)
    summary.suptitle(f"{title} — machine accuracy {_accuracy_text(figures)}", fontsize="large")

    html_path, png_path = out / "report.html", out / "report.png"
    png_path.write_bytes(_png(summary))
    html_path.write_text(_html(figures, title, images), encoding="utf-8")
    return ReportPaths(html=html_path, png=png_path)
