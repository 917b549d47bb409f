"""The harness's figure: gap to full human against the human budget, one panel per data set.

``python benchmarks/act_bench.py --png gaps.png`` draws it from the run; the lines are the
methods of :data:`FIGURE_METHODS` that the run has, for the config's primary critic, each point
the mean over seeds with ± 1 standard error, and a horizontal line at −``target_gap``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from act_plugin.bench.report import METHOD_NAMES, gaps_to_full_human
from act_plugin.bench.run import BenchResult

__all__ = ["FIGURE_METHODS", "Series", "gap_figure", "gap_series"]

#: What the figure shows when the run has it: the paper's best rule, our one-draw design, and
#: the review in rounds with λ = 1, with the critic's λ_i and with the model critic's.
FIGURE_METHODS: tuple[str, ...] = (
    "full_machine",
    "thresholded",
    "ours_thresholded",
    "ours_rounds_last",
    "ours_rounds_soft",
    "ours_rounds_model",
    "ours_audit_model",
)
#: (data set, method) → [(budget, mean gap, standard error)], budgets ascending.
Series = dict[tuple[str, str], list[tuple[float, float, float]]]


def gap_series(
    result: BenchResult, *, critic: str | None = None, methods: Sequence[str] = FIGURE_METHODS
) -> Series:
    """The figure's points: per data set and method (of ``methods`` the run has), the mean gap
    to full human over seeds at every budget, and its standard error (0 for one seed)."""
    config = result.config
    chosen = critic or config.primary_critic
    series: Series = {}
    for ds in result.datasets:
        for method in (m for m in methods if m in config.methods):
            points = []
            for budget in sorted(config.budgets):
                by_seed = ds.accuracies(method, critic=chosen, budget=budget)  # baselines: any
                gaps = gaps_to_full_human(ds, by_seed)
                if gaps:
                    se = (
                        float(np.std(gaps, ddof=1) / math.sqrt(len(gaps))) if len(gaps) > 1 else 0.0
                    )
                    points.append((float(budget), float(np.mean(gaps)), se))
            if points:
                series[(ds.name, method)] = points
    return series


def gap_figure(
    result: BenchResult,
    path: Path,
    *,
    critic: str | None = None,
    methods: Sequence[str] = FIGURE_METHODS,
) -> Series:
    """Draw :func:`gap_series` to the PNG ``path``; returns the series drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = gap_series(result, critic=critic, methods=methods)
    names = [ds.name for ds in result.datasets]
    fig = Figure(figsize=(5.2 * len(names), 5.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    target = result.config.target_gap
    for ax, name in zip(axes, names, strict=True):
        for method in methods:
            points = series.get((name, method))
            if not points:
                continue
            x, y, se = (np.array(v) for v in zip(*points, strict=True))
            style = ":" if method == "full_machine" else "-"
            ax.errorbar(
                100 * x, y, yerr=se, fmt=style, marker="o", capsize=3, label=METHOD_NAMES[method]
            )
        ax.axhline(0.0, color="#888888", linewidth=1)
        ax.axhline(
            -target,
            color="#c0392b",
            linestyle="--",
            linewidth=1,
            label=f"target: −{target:g} point{'' if target == 1 else 's'}",
        )
        ax.set_title(f"{name} (critic {critic or result.config.primary_critic})")
        ax.set_xlabel("human budget (% of the pool)")
        ax.set_ylabel("test accuracy − full human (points)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize="small")
    fig.savefig(path, format="png", metadata={"Software": None})
    return series
