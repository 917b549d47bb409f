"""The report's plots (matplotlib, Agg backend, no display and no pyplot state).

matplotlib is imported inside the functions, so importing the report does not need it.
"""

from __future__ import annotations

import io
import textwrap
from typing import TYPE_CHECKING

import numpy as np

from act_plugin.act_math import roc_points
from act_plugin.report.figures import ReportFigures
from act_plugin.report.formatting import accuracy_text, pct
from act_plugin.report.rows import Table

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PLOTS", "plot_png", "summary_png"]

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


def _plot_suspicion(ax: Axes, table: Table) -> None:
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


def _unit_square(ax: Axes, title: str, axes_labels: tuple[str, str], diagonal: str) -> None:
    """[0, 1]² axes with a dashed diagonal (chance for ROC, perfect calibration)."""
    ax.plot([0, 1], [0, 1], linestyle="--", color="#aaaaaa", linewidth=1, label=diagonal)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel(axes_labels[0])
    ax.set_ylabel(axes_labels[1])
    ax.set_title(title)


def _plot_roc(ax: Axes, table: Table, fig: ReportFigures) -> None:
    _unit_square(
        ax,
        "Critic ROC on the reviewed rows",
        ("false-positive rate (right labels flagged)", "true-positive rate (wrong labels caught)"),
        "random",
    )
    ax.set_aspect("equal")
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
    fpr, tpr = roc_points(table.suspicion[table.reviewed], table.wrong[table.reviewed])
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
            f"{pct(acc.estimate)}\n[{pct(acc.ci_low)}, {pct(acc.ci_high)}]",
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
            pct(fig.naive_accuracy),
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
    ax.set_title(f"Human coverage: {pct(fig.human_share)} of {n:,} items reviewed")
    ax.legend(loc="upper center", ncol=2, fontsize="small", frameon=False)


def _plot_calibration(ax: Axes, fig: ReportFigures) -> None:
    _unit_square(
        ax,
        "Critic calibration (reliability)",
        ("critic suspicion ε̂ (bin mean)", "share of wrong labels"),
        "ε̂ = P(wrong)",
    )
    shown = [b for b in fig.calibration if b.estimated is not None and b.mean_suspicion]
    if shown:
        x = np.array([b.mean_suspicion for b in shown], dtype=float)
        rate = np.array([b.estimated / b.rows for b in shown], dtype=float)
        low = np.array([b.estimated_ci[0] / b.rows for b in shown if b.estimated_ci])
        high = np.array([b.estimated_ci[1] / b.rows for b in shown if b.estimated_ci])
        ax.errorbar(
            x,
            np.clip(rate, 0.0, 1.0),
            yerr=[np.clip(rate - low, 0.0, None), np.clip(high - rate, 0.0, None)],
            fmt="o",
            color=_C_WRONG,
            capsize=3,
            label="found by review (weights 1/π)",
        )
    if fig.calibration_curve:
        grid, curve = zip(*fig.calibration_curve, strict=True)
        ax.plot(grid, curve, color=_C_ACT, linewidth=2, label="calibrated P(wrong)")
    if not shown and not fig.calibration_curve:
        _undefined_note(ax, 0.5, "no row has been reviewed yet")
    ax.legend(loc="upper left", fontsize="small", frameon=False)


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


def _draw(name: str, ax: Axes, table: Table, fig: ReportFigures) -> None:
    if name == "accuracy":
        _plot_accuracy(ax, fig)
    elif name == "budget":
        _plot_budget(ax, fig)
    elif name == "suspicion":
        _plot_suspicion(ax, table)
    elif name == "calibration":
        _plot_calibration(ax, fig)
    else:
        _plot_roc(ax, table, fig)


#: The plots, in page order, and their size in inches when drawn alone.
PLOTS: dict[str, tuple[float, float]] = {
    "accuracy": (6.0, 3.4),
    "budget": (6.0, 3.4),
    "suspicion": (6.0, 4.2),
    "roc": (6.0, 4.2),
    "calibration": (6.0, 4.2),
}


def plot_png(name: str, table: Table, fig: ReportFigures) -> bytes:
    """One of :data:`PLOTS` alone, as PNG bytes."""
    figure = _new_figure(*PLOTS[name])
    _draw(name, figure.add_subplot(), table, fig)
    return _png(figure)


def summary_png(table: Table, fig: ReportFigures, *, title: str) -> bytes:
    """Every plot on one page (accuracy and budget, suspicion and ROC, calibration), as PNG."""
    summary = _new_figure(13.0, 12.5)
    axes = summary.subplot_mosaic(
        [["accuracy", "budget"], ["suspicion", "roc"], ["calibration", "."]],
        height_ratios=[1.0, 1.5, 1.5],
    )
    for name in PLOTS:
        _draw(name, axes[name], table, fig)
    summary.suptitle(f"{title} — machine accuracy {accuracy_text(fig)}", fontsize="large")
    return _png(summary)
