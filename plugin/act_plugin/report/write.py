"""Writing the report to disk: ``report.html`` (self-contained) and ``report.png`` (summary)."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from act_plugin.report.figures import ReportFigures
from act_plugin.report.page import render_page
from act_plugin.report.plots import PLOTS, plot_png, summary_png
from act_plugin.report.rows import parse_rows

__all__ = ["ReportPaths", "write_report"]


@dataclass(frozen=True)
class ReportPaths:
    """Files written by :func:`write_report`."""

    html: Path
    png: Path


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
        From :func:`~act_plugin.report.compute_report` on the same ``rows``.
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
    table = parse_rows(rows)
    if table.reviewed.size != figures.n_items:
        raise ValueError(
            f"rows has {table.reviewed.size} rows but the figures were computed on "
            f"{figures.n_items}: pass the same rows to compute_report and write_report"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = {
        name: base64.b64encode(plot_png(name, table, figures)).decode("ascii") for name in PLOTS
    }
    html_path, png_path = out / "report.html", out / "report.png"
    png_path.write_bytes(summary_png(table, figures, title=title))
    html_path.write_text(render_page(figures, title, images), encoding="utf-8")
    return ReportPaths(html=html_path, png=png_path)
