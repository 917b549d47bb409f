"""An ACT report: how good the machine labels are, how well the critic ranked them, what was saved.

Lin et al., "ACT as Human: Multimodal Large Language Model Data Annotation with Critical
Thinking", NeurIPS 2025, arXiv:2511.09833. See docs/method.md.

Two steps, as in cleanlab's scoring/report split:

- :func:`compute_report` (pure, no I/O) turns the training-set rows of ``ls-act sync`` into a
  :class:`ReportFigures`: every number of the report, each formula documented there.
- :func:`write_report` renders them: ``report.html`` (self-contained: inline CSS, plots as
  base64 PNG, no scripts and no external URLs) and ``report.png`` (one summary figure).

Modules, in reading order:

- ``rows``: the rows of ``ls-act sync`` parsed and validated into arrays (``Table``);
- ``figures``: the result types and :func:`compute_report` (estimates and critic metrics from
  ``act_math``);
- ``formatting``: how numbers are written; ``page``: the HTML page; ``plots``: the matplotlib
  figures (Agg, no display; matplotlib is imported only when drawing);
- ``write``: :func:`write_report`, which puts them on disk.
"""

from __future__ import annotations

from act_plugin.report.figures import (
    DEFAULT_TOP_K,
    RECALL_FRACTIONS,
    AnnotatorAgreement,
    CalibrationBin,
    LabelBreakdown,
    ReportFigures,
    compute_report,
)
from act_plugin.report.write import ReportPaths, write_report

__all__ = [
    "DEFAULT_TOP_K",
    "RECALL_FRACTIONS",
    "AnnotatorAgreement",
    "CalibrationBin",
    "LabelBreakdown",
    "ReportFigures",
    "ReportPaths",
    "compute_report",
    "write_report",
]
