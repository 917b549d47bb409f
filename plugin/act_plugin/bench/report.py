"""Markdown tables of a benchmark result, and the verdict on the paper's claims.

Figures are mean ± sample standard deviation (ddof = 1) over seeds. Accuracies are in %, gaps
in percentage points: Δ = accuracy(method) − accuracy(full human), computed per seed (same split)
and then averaged. "share" is the realised share of pool items a human labelled, Σδ_i / N.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from act_plugin.bench.config import BASELINES, METHODS
from act_plugin.bench.methods import SOFT_METHODS
from act_plugin.bench.run import ENDPOINT_STAGE, BenchResult, DatasetResult

__all__ = ["METHOD_NAMES", "Verdict", "format_result", "gaps_to_full_human", "verdicts"]

METHOD_NAMES = {
    "full_human": "full human",
    "full_machine": "full machine",
    "normalized": "ACT normalized",
    "exponential": "ACT exponential",
    "thresholded": "ACT thresholded",
    "ours_thresholded": "ours: thresholded + floor",
    "ours_exponential": "ours: exponential + floor",
    "uniform": "random review (uniform, ACT)",
    "top_b": "top-B, no correction",
    "ours_rounds": "ours: rounds, critic updated (sequential weights)",
    "ours_rounds_last": "ours: rounds, critic updated (last-round weights)",
    "ours_soft": "ours: thresholded + floor, λ_i = 1 − calibrated ε̂",
    "ours_soft_raw": "ours: thresholded + floor, λ_i = 1 − ε̂",
    "ours_rounds_soft": "ours: rounds, last-round weights, λ_i = 1 − calibrated ε̂",
    "ours_rounds_soft_raw": "ours: rounds, last-round weights, λ_i = 1 − ε̂",
    "ours_rounds_model": "ours: rounds, last-round weights, λ_i from cross-fitted models",
    "ours_audit": "ours: search rounds + audit round (floor last), last-round weights",
    "ours_audit_model": "ours: search + audit rounds, λ_i from cross-fitted models",
}
#: Methods that count as "ACT" for the target (the paper's rules and ours): every method but
#: the baselines, random review and top-B.
ACT_METHODS = tuple(m for m in METHODS if m not in (*BASELINES, "uniform", "top_b"))
STABILIZER_NAMES = {
    "none": "none (raw loss, λ = 1)",
    "clip": "clip each item's term at 0",
    "power": "power tuning λ < 1",
    "early_stop": "early stopping (held-out ACT loss)",
}


def _soft_note(methods: Iterable[str], power: float) -> str:
    """The per-row λ map, when a method uses it."""
    if not any(m in SOFT_METHODS for m in methods):
        return ""
    return f" Per-row λ methods: λ_i = (1 − p_i)^k, k = {power:g}."


def _stats(values: Iterable[float]) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def _pm(values: Iterable[float], *, scale: float = 1.0, digits: int = 1) -> str:
    mean, std, n = _stats(values)
    if n == 0:
        return "–"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _pct(budget: float) -> str:
    return f"{budget * 100:g}%"


def gaps_to_full_human(ds: DatasetResult, by_seed: dict[int, float]) -> list[float]:
    """Points of test accuracy over full human, per seed that has both (100 · (acc − human))."""
    human = ds.accuracies("full_human")
    return [100.0 * (acc - human[s]) for s, acc in by_seed.items() if s in human]


def _signed(values: Sequence[float]) -> str:
    mean, _, n = _stats(values)
    if n == 0:
        return "–"
    shown = round(mean, 1)
    return f"{shown if shown != 0 else 0.0:+.1f}"  # no "-0.0"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


@dataclass(frozen=True)
class Verdict:
    """Best deployable ACT result at a budget ≤ the target budget, for one data set."""

    dataset: str
    met: bool
    method: str | None
    critic: str | None
    budget: float | None
    gap: float  # points, mean over seeds (negative = below full human)
    share: float  # realised human share (mean)
    smallest_budget_met: float | None  # over the whole grid, any deployable critic


def verdicts(result: BenchResult) -> list[Verdict]:
    """Per data set: does some ACT rule with a non-oracle critic reach gap ≥ −target_gap at a
    budget ≤ target_budget? (Gap = mean over seeds of the paired per-seed differences.)"""
    cfg = result.config
    out = []
    for ds in result.datasets:
        best: tuple[float, str, str, float, float] | None = None
        smallest: float | None = None
        names = dict.fromkeys(r.critic for r in ds.critics)
        critics = [c for c in names if c not in ("oracle", "random")]
        for method in (m for m in ACT_METHODS if m in cfg.methods):
            for critic in critics:
                for budget in cfg.budgets:
                    gaps = gaps_to_full_human(
                        ds, ds.accuracies(method, critic=critic, budget=budget)
                    )
                    gap, _, n = _stats(gaps)
                    if n == 0:
                        continue
                    share = _stats(ds.human_shares(method, critic=critic, budget=budget))[0]
                    if gap >= -cfg.target_gap and (smallest is None or budget < smallest):
                        smallest = budget
                    if budget <= cfg.target_budget + 1e-9 and (best is None or gap > best[0]):
                        best = (gap, method, critic, budget, share)
        if best is None:
            out.append(Verdict(ds.name, False, None, None, None, math.nan, math.nan, smallest))
        else:
            gap, method, critic, budget, share = best
            met = gap >= -cfg.target_gap
            out.append(Verdict(ds.name, met, method, critic, budget, gap, share, smallest))
    return out


def _dataset_section(result: BenchResult, ds: DatasetResult) -> list[str]:
    cfg = result.config
    lines = [
        f"## {ds.name} ({ds.modality}; annotator `{ds.annotator}`)",
        "",
        f"{ds.n_items} items, {ds.n_classes} classes; per seed a pool of {ds.n_pool} "
        f"(annotated, reviewed, trained on) and a held-out test split of {ds.n_test}. "
        f"Annotator accuracy on the pool: {_pm(ds.annotator_accuracy, scale=100)}% "
        f"(machine error rate {_pm(ds.error_rate, scale=100)}%)."
        + (" Features read from the cache." if ds.features_cached else ""),
        "",
        "Critics (detecting the wrong machine labels of the pool):",
        "",
    ]
    names = list(dict.fromkeys(r.critic for r in ds.critics))
    rows = []
    for critic in names:
        recs = [r for r in ds.critics if r.critic == critic]
        rows.append(
            [
                critic,
                _pm((r.auroc for r in recs), digits=3),
                _pm((r.recall_at_10 for r in recs), digits=3),
                _pm((r.recall_at_20 for r in recs), digits=3),
            ]
        )
    lines += _table(["critic", "AUROC", "recall@10%", "recall@20%"], rows)
    for critic in names:
        lines += [
            "",
            f"Downstream test accuracy, critic `{critic}`, trainer stabilizer "
            f"`{cfg.train.stabilizer}` (cell: accuracy % (Δ to full human, points; human share)):",
            "",
        ]
        rows = []
        for method in cfg.methods:
            row = [METHOD_NAMES[method]]
            for budget in cfg.budgets:
                if method in BASELINES:
                    acc = ds.accuracies(method)
                    share = _stats(ds.human_shares(method))[0]
                else:
                    acc = ds.accuracies(method, critic=critic, budget=budget)
                    share = _stats(ds.human_shares(method, critic=critic, budget=budget))[0]
                gap = "" if method == "full_human" else f"{_signed(gaps_to_full_human(ds, acc))}; "
                row.append(f"{_pm(acc.values(), scale=100)} ({gap}{share * 100:.1f}%)")
            rows.append(row)
        lines += _table(["method", *(_pct(b) for b in cfg.budgets)], rows)
    lines += _ablation_section(result, ds)
    return lines


def _ablation_section(result: BenchResult, ds: DatasetResult) -> list[str]:
    ab = result.config.ablation
    if ab is None or not any(r.ablation for r in ds.runs):
        return []
    lines = [
        "",
        f"ACT-loss collapse handling (critic `{ab.critic}`, same review draws for every "
        "stabilizer; cell: accuracy % (final raw ACT loss on the training items)); full "
        f"machine: {_pm(ds.accuracies('full_machine').values(), scale=100)}%:",
        "",
    ]
    columns = [(m, b) for m in ab.methods for b in ab.budgets]
    rows = []
    for stabilizer in ab.stabilizers:
        row = [STABILIZER_NAMES[stabilizer]]
        for method, budget in columns:
            runs = [
                r
                for r in ds.runs
                if r.ablation
                and r.stabilizer == stabilizer
                and r.method == method
                and r.budget is not None
                and math.isclose(r.budget, budget)
            ]
            loss = _stats(r.act_loss for r in runs)[0]
            row.append(f"{_pm((r.accuracy for r in runs), scale=100)} ({loss:.2f})")
        rows.append(row)
    header = ["stabilizer", *(f"{METHOD_NAMES[m]} @ {_pct(b)}" for m, b in columns)]
    return lines + _table(header, rows)


def _summary_section(result: BenchResult) -> list[str]:
    cfg = result.config
    critic = cfg.primary_critic
    budget = min(cfg.budgets, key=lambda b: abs(b - cfg.target_budget))
    lines = [
        f"## Paper-style summary (critic `{critic}`, budget {_pct(budget)}; test accuracy %)",
        "",
    ]
    header = ["training labels / loss", *(ds.name for ds in result.datasets)]
    rows = []
    for method in cfg.methods:
        row = [METHOD_NAMES[method]]
        for ds in result.datasets:
            if method in BASELINES:
                acc = ds.accuracies(method)
            else:
                acc = ds.accuracies(method, critic=critic, budget=budget)
            row.append(_pm(acc.values(), scale=100))
        rows.append(row)
    gap_row = ["gap human − best ACT (points)"]
    share_row = ["human budget (realised share)"]
    for ds in result.datasets:
        best = None
        for method in (m for m in ACT_METHODS if m in cfg.methods):
            gaps = gaps_to_full_human(ds, ds.accuracies(method, critic=critic, budget=budget))
            gap, _, n = _stats(gaps)
            if n and (best is None or gap > best[0]):
                best = (gap, method)
        if best is None:
            gap_row.append("–")
            share_row.append("–")
        else:
            gap_row.append(f"{-best[0]:.2f} ({METHOD_NAMES[best[1]]})")
            share = _stats(ds.human_shares(best[1], critic=critic, budget=budget))[0]
            share_row.append(f"{share * 100:.1f}%")
    rows += [gap_row, share_row]
    return lines + _table(header, rows)


def _verdict_section(result: BenchResult) -> list[str]:
    cfg = result.config
    found = verdicts(result)
    met = bool(found) and all(v.met for v in found)
    lines = [
        "## Verdict",
        "",
        f"Target: gap to full human ≤ {cfg.target_gap:g} point at ≤ {_pct(cfg.target_budget)} "
        "human budget on every data set, with a deployable critic (not the oracle, not random) "
        f"and any ACT rule: **{'MET' if met else 'NOT MET'}**.",
        "",
    ]
    for v in found:
        if v.method is None:
            lines.append(f"- {v.dataset}: no deployable critic was run.")
            continue
        smallest = (
            f"smallest budget in the grid meeting the target: {_pct(v.smallest_budget_met)}"
            if v.smallest_budget_met is not None
            else "no budget in the grid meets the target"
        )
        lines.append(
            f"- {v.dataset}: best at ≤ {_pct(cfg.target_budget)}: {METHOD_NAMES[v.method]}, "
            f"critic `{v.critic}`, budget {_pct(v.budget or 0)} (realised "
            f"{v.share * 100:.1f}%): gap {-v.gap:.2f} points → "
            f"{'met' if v.met else 'not met'}; {smallest}."
        )
    lines += _collapse_lines(result)
    return lines


def _collapse_lines(result: BenchResult) -> list[str]:
    cfg = result.config
    ab = cfg.ablation
    lines = ["", "Normalized rule at the lowest budget (the paper's low-budget collapse):", ""]
    for ds in result.datasets:
        machine = _stats(ds.accuracies("full_machine").values())[0]
        parts = [f"full machine {machine * 100:.1f}%"]
        if ab is not None and "normalized" in ab.methods:
            low = min(ab.budgets)
            for stabilizer in ab.stabilizers:
                runs = [
                    r.accuracy
                    for r in ds.runs
                    if r.ablation
                    and r.method == "normalized"
                    and r.stabilizer == stabilizer
                    and r.budget is not None
                    and math.isclose(r.budget, low)
                ]
                if runs:
                    parts.append(
                        f"{stabilizer} {_stats(runs)[0] * 100:.1f}% "
                        f"(critic `{ab.critic}`, {_pct(low)})"
                    )
            raw = [
                r.accuracy
                for r in ds.runs
                if r.ablation
                and r.method == "normalized"
                and r.stabilizer == "none"
                and r.budget is not None
                and math.isclose(r.budget, low)
            ]
            if raw:
                collapsed = _stats(raw)[0] < machine - 0.02
                parts.append(
                    "collapse REPRODUCED with the raw loss (below full machine)"
                    if collapsed
                    else "no collapse with the raw loss"
                )
        lines.append(f"- {ds.name}: " + "; ".join(parts) + ".")
    return lines


def _timing_section(result: BenchResult) -> list[str]:
    stages = list(dict.fromkeys(s for ds in result.datasets for s in ds.timings))
    rows = [
        [stage, *(f"{ds.timings.get(stage, 0.0):.1f}" for ds in result.datasets)]
        for stage in stages
    ]
    rows.append(
        ["total (all seeds)", *(f"{sum(ds.timings.values()):.1f}" for ds in result.datasets)]
    )
    lines = ["## Wall time per stage (seconds, summed over seeds)", ""]
    lines += _table(["stage", *(ds.name for ds in result.datasets)], rows)
    lines += ["", f"Whole run: {result.seconds:.1f} s."]
    return lines


def _endpoint_section(result: BenchResult) -> list[str]:
    used = [ds for ds in result.datasets if ds.endpoint is not None]
    if not used:
        return []
    rows = []
    for ds in used:
        e = ds.endpoint
        assert e is not None
        failed = ", ".join(f"{k} {v}" for k, v in sorted(e.failed.items())) or "0"
        rows.append(
            [
                ds.name,
                f"`{e.model_version}`",
                str(e.items),
                failed,
                f"{e.calls_per_item:.2f}",
                f"{e.prompt_tokens / max(e.items, 1):.0f}",
                f"{e.completion_tokens / max(e.items, 1):.0f}",
                str(e.cached_calls),
                f"{e.items / ds.timings[ENDPOINT_STAGE]:.2f}"
                if ds.timings.get(ENDPOINT_STAGE)
                else "–",
            ]
        )
    header = [
        "data set",
        "model version",
        "items",
        "failed",
        "LLM calls / item",
        "prompt tokens / item",
        "completion tokens / item",
        "cached calls",
        "items / s",
    ]
    return ["## LLM use (endpoint annotator + critic)", "", *_table(header, rows)]


def format_result(result: BenchResult) -> str:
    """The whole result as Markdown: per-data-set tables, summary, verdict, timings, LLM use."""
    cfg = result.config
    lines = [
        "# ACT benchmark",
        "",
        f"Seeds {', '.join(map(str, cfg.seeds))} (mean ± sample std over seeds); budgets "
        f"{', '.join(_pct(b) for b in cfg.budgets)} of the pool; floor ρ = {cfg.floor:g} for "
        f"`ours`; exponential β = {cfg.beta:g}. Downstream model: multinomial logistic "
        f"regression, {cfg.train.epochs} full-batch Adam epochs, weight decay "
        f"{cfg.train.weight_decay:g}, ACT-loss stabilizer `{cfg.train.stabilizer}`."
        + _soft_note(cfg.methods, cfg.soft_power),
        "",
    ]
    for ds in result.datasets:
        lines += [*_dataset_section(result, ds), ""]
    lines += [*_summary_section(result), ""]
    lines += [*_verdict_section(result), ""]
    lines += _timing_section(result)
    endpoint = _endpoint_section(result)
    if endpoint:
        lines += ["", *endpoint]
    return "\n".join(lines) + "\n"
