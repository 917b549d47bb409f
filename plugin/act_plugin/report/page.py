"""The self-contained HTML page of the report: inline CSS, plots as base64 PNG, no scripts."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping

from act_plugin.report.figures import ReportFigures
from act_plugin.report.formatting import accuracy_text, money, num, pct

__all__ = ["CAPTIONS", "render_page"]

#: What each plot shows, under its image.
CAPTIONS: Mapping[str, str] = {
    "accuracy": "ACT estimate with its interval, next to the naive share on reviewed rows.",
    "budget": "Who labelled what: reviewed rows, pending draws and machine-only rows.",
    "suspicion": "Critic suspicion of every row, split by what review found.",
    "roc": "ROC curve of the critic on the reviewed rows (wrong label = positive).",
    "calibration": "Reliability diagram: the error rate review found per suspicion bin "
    "(weights 1/π, with its interval) against the suspicion, and the calibration fitted on "
    "the reviewed rows.",
}


def _headline(fig: ReportFigures) -> str:
    parts = []
    if fig.accuracy is not None:
        parts.append(
            f"An estimated <b>{pct(fig.accuracy.estimate)}</b> of the machine labels are right "
            f"({round(100 * fig.confidence)}% CI {pct(fig.accuracy.ci_low)} – "
            f"{pct(fig.accuracy.ci_high)}, over {fig.n_estimate:,} rows)."
        )
    else:
        parts.append(
            "The machine labels' accuracy cannot be estimated yet: "
            f"{html.escape(fig.undefined.get('accuracy', ''))}."
        )
    cert = fig.certificate
    if cert is not None:
        verdict = "reached" if cert.met else "<b>not reached</b>"
        parts.append(
            f"Certificate: the training set (human labels where reviewed, machine labels "
            f"elsewhere) is at least <b>{pct(cert.lower_bound)}</b> accurate at "
            f"{round(100 * cert.confidence)}% confidence, after {cert.rounds} round(s); the "
            f"target {pct(cert.target)} is {verdict}. The bound stays valid however the review "
            "was stopped (its error rate is spent across the rounds)."
        )
    parts.append(
        f"Humans reviewed <b>{fig.n_reviewed:,}</b> of {fig.n_items:,} items "
        f"(<b>{pct(fig.human_share)}</b>); the machine alone labelled "
        f"{fig.labels_avoided:,} ({pct(fig.labels_avoided_share)})."
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
    if fig.certificate is not None and fig.certificate.met:
        notes.append(
            "The review stopped when the certificate reached its target. The certificate "
            "stays valid under that stopping; the accuracy estimate above does not stay "
            "unbiased: stopping when few errors were found makes it optimistic (by 0.4–0.8 "
            "points in the simulations of benchmarks/rounds.py). Quote the certificate."
        )
    acc = fig.accuracy
    if acc is not None and acc.ci_low == acc.ci_high and fig.n_estimate > acc.n_reviewed:
        notes.append(
            "The accuracy interval has zero width: every row that could have been drawn with "
            "0 &lt; π &lt; 1 was reviewed, so only rows with π = 0 are unknown, and the estimate "
            "takes them as right."
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


def _remaining_text(fig: ReportFigures) -> str:
    if fig.remaining_errors_ci is None:
        return num(fig.estimated_remaining_errors, 1)
    low, high = fig.remaining_errors_ci
    return f"{num(fig.estimated_remaining_errors, 1)} ({num(low, 1)} – {num(high, 1)})"


def _figures_table(fig: ReportFigures) -> str:
    level = round(100 * fig.confidence)
    recall_rows = [
        _row(
            f"Recall in top {round(100 * f)}% most suspicious",
            _or_reason(fig, "recall_at", f"{pct(value)} (at most {pct(_recall_ceiling(fig, f))})"),
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
    llm = "not given" if fig.llm_cost is None else money(fig.llm_cost)
    rows = [
        _section("Machine-label quality"),
        _row(
            "ACT accuracy estimate",
            _or_reason(fig, "accuracy", accuracy_text(fig)),
            "Share of machine labels a human would accept, estimated from the reviewed sample "
            f"with weights 1/π ({level}% confidence interval; {fig.estimator} estimator).",
        ),
        _row(
            "Wrong labels left (estimate)",
            _or_reason(
                fig,
                "estimated_remaining_errors",
                _remaining_text(fig),
            ),
            f"Wrong machine labels estimated to remain on rows no human reviewed ({level}% "
            "confidence interval).",
        ),
        _row(
            "Naive accuracy (reviewed rows only, biased)",
            _or_reason(fig, "naive_accuracy", pct(fig.naive_accuracy)),
            "Share of reviewed rows where the reviewer kept the machine label. Review targets "
            "suspicious rows, so this understates accuracy; for contrast only.",
        ),
        _section("Human review and budget"),
        _row(
            "Reviewed by a human",
            f"{fig.n_reviewed:,} of {fig.n_items:,} ({pct(fig.human_share)})",
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
            _or_reason(fig, "naive_accuracy", pct(fig.naive_accuracy)),
            "Share of reviews that kept the machine label (per reviewer below).",
        ),
        _section("Critic quality (on the reviewed sample: biased toward suspicious rows)"),
        _row(
            "AUROC",
            _or_reason(fig, "auroc", num(fig.auroc)),
            "Chance that a wrong label gets a higher suspicion than a right one "
            "(0.5 = random, 1 = perfect).",
        ),
        _row(
            "AUROC, inverse-π weighted",
            _or_reason(fig, "weighted_auroc", num(fig.weighted_auroc)),
            "Same, each reviewed row weighted by 1/π to stand for the rows it represents.",
        ),
        _row(
            f"Precision in top {fig.top_k or '—'} most suspicious",
            _or_reason(fig, "precision_at_k", pct(fig.precision_at_k)),
            "Share of wrong labels among the k most suspicious reviewed rows.",
        ),
        *recall_rows,
        _section("Cost"),
        _row(
            "Human labels avoided",
            f"{fig.labels_avoided:,} ({pct(fig.labels_avoided_share)})",
            "Rows labelled by the machine alone.",
        ),
        _row(
            "Money saved",
            f"{money(fig.money_saved)}"
            + (
                ""
                if fig.money_saved_share is None
                else f" ({pct(fig.money_saved_share)} of labelling everything by hand)"
            ),
            f"Labels avoided × {money(fig.cost_per_human_label)} per human label − LLM cost "
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
            error = f"{pct(item.error_rate)} ({pct(item.error_ci[0])} – {pct(item.error_ci[1])})"
        body.append(
            f"<tr><td>{html.escape(item.label)}</td><td class='v'>{item.count:,}</td>"
            f"<td class='v'>{item.reviewed:,}</td><td class='v'>{item.reviewed_wrong:,}</td>"
            f"<td class='v'>{error}</td></tr>"
        )
    return "<table class='grid'>" + head + "".join(body) + "</table>"


def _calibration_table(fig: ReportFigures) -> str:
    level = round(100 * fig.confidence)
    head = (
        "<tr><th>Suspicion ε̂</th><th>Rows</th><th>Reviewed</th><th>Wrong found</th>"
        "<th>Critic expects (Σ ε̂)</th><th>Calibrated expects (Σ p̂)</th>"
        f"<th>Estimated wrong ({level}% CI)</th></tr>"
    )
    body = []
    for b in fig.calibration:
        if not b.rows:
            continue
        if b.estimated is None or b.estimated_ci is None:
            estimated = "<span class='undef'>no reviews</span>"
        else:
            low, high = b.estimated_ci
            estimated = f"{num(b.estimated, 1)} ({num(low, 1)} – {num(high, 1)})"
        calibrated = "—" if b.calibrated is None else num(b.calibrated, 1)
        body.append(
            f"<tr><td>{b.low:.1f} – {b.high:.1f}</td><td class='v'>{b.rows:,}</td>"
            f"<td class='v'>{b.reviewed:,}</td><td class='v'>{b.found:,}</td>"
            f"<td class='v'>{num(b.expected, 1)}</td><td class='v'>{calibrated}</td>"
            f"<td class='v'>{estimated}</td></tr>"
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
        f"<td class='v'>{a.agreed:,} ({pct(a.agreement)})</td></tr>"
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


def render_page(fig: ReportFigures, title: str, images: Mapping[str, str]) -> str:
    """The report page: ``images`` maps plot names (keys of :data:`CAPTIONS`) to base64 PNG."""
    caveats = _caveats(fig)
    caveat_html = (
        "<ul class='caveats'>" + "".join(f"<li>{c}</li>" for c in caveats) + "</ul>"
        if caveats
        else ""
    )
    plots = "".join(
        f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{CAPTIONS[name]}</figcaption></figure>"
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
<h2>Critic calibration: expected vs found errors</h2>
<p>Per suspicion bin: the wrong labels the critic's suspicion predicts if read as a
probability, the same after calibration on the reviewed rows (cross-fitted: each row predicted
by a fit on the other rows' reviews), and the wrong labels the review sample estimates
(Σ δe/π). A well-calibrated critic has the three close.</p>
{_calibration_table(fig)}
<h2>By reviewer</h2>
{_annotator_table(fig)}
<h2>How to read this</h2>
<ul class="howto">
<li><b>ACT accuracy estimate</b> is the number to trust. Each reviewed row stands for 1/π rows
(π = its chance of being drawn), so errors found among rarely-drawn rows count for many. It is
unbiased when every row that could be wrong had π &gt; 0. The {level}% interval is
Fay–Feuer's gamma interval, built for sums of a few heavily weighted findings: it stays wide
while few low-π rows were reviewed (an error there counts for 1/π rows), and it is never a
point while some unreviewed row could still have been drawn.</li>
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
