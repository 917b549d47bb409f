"""How the report writes numbers: percentages, decimals, money; "—" for an undefined value."""

from __future__ import annotations

from act_plugin.report.figures import ReportFigures

__all__ = ["accuracy_text", "money", "num", "pct"]


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100.0 * value:.{digits}f}%"


def num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def money(value: float) -> str:
    return f"{value:,.2f}"


def accuracy_text(fig: ReportFigures) -> str:
    acc = fig.accuracy
    if acc is None:
        return "undefined: " + fig.undefined.get("accuracy", "")
    level = round(100 * fig.confidence)
    return f"{pct(acc.estimate)} ({level}% CI {pct(acc.ci_low)} – {pct(acc.ci_high)})"
