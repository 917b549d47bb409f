"""Coverage and width of the report's intervals over a grid of review designs (issue 10).

    python benchmarks/coverage.py                      # the full grid, 1,000 draws per cell
    python benchmarks/coverage.py --draws 200 --n 500  # a quick look

For each cell (sampling rule × budget × machine error rate × critic × N, at the default floor)
the script makes a few seeded populations (suspicion ε̂ and errors e), computes the inclusion
probabilities with ``act_math.inclusion_probabilities`` and draws δ ~ Bernoulli(π) many times
(vectorised: one array of draws × rows). On every draw it computes, with the shipped code of
``act_math``, the number of wrong labels T and three 95% intervals for it:

- ``normal``: the old interval, Horvitz–Thompson T̂ ± z √V̂;
- ``gamma``: Horvitz–Thompson with the Fay–Feuer gamma interval;
- ``assisted_raw``: the model-assisted (cross-fitted difference) estimator with its
  Fay–Feuer-type gamma interval, on every draw;
- ``assisted``: the same where at least ``MIN_ASSISTED_REVIEWS`` rows with 0 < π < 1 were
  reviewed, ``gamma`` elsewhere: what ``error_count_estimate`` ships.

It prints, per cell and method, the coverage of the true T, the mean width in accuracy units
((high − low)/N), the share of zero-width intervals and the bias of T̂ in Monte-Carlo standard
errors; then the worst cells and the widths at the targets. Coverage has a Monte-Carlo SE of
√(c(1 − c)/draws) ≈ 0.007 at c = 0.95 and 1,000 draws.

Critics: ε̂ ~ Beta(q·c, (1 − q)·c) and e ~ Bernoulli(ε̂), so the critic is calibrated with
mean error rate q; the concentration c is solved for the target AUROC (0.65, 0.8, 0.95).
``miss``: the AUROC-0.8 critic, then 30% of the errors get ε̂ ~ U(0, 0.02) (confidently missed).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import math
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

from act_plugin.act_math import (
    CROSS_FIT_FOLDS,
    DEFAULT_FLOOR,
    _assisted_applies,
    _cross_fitted,
    _ht_totals,
    _ma_totals,
    auroc,
    inclusion_probabilities,
)

RULES = ("thresholded", "exponential", "normalized", "uniform")
BUDGETS = (0.05, 0.10, 0.20, 0.30)
ERROR_RATES = (0.10, 0.20, 0.40)
CRITICS = ("0.65", "0.8", "0.95", "miss")
SIZES = (500, 2000)
METHODS = ("normal", "gamma", "assisted_raw", "assisted")
CONFIDENCE = 0.95
_MISS_SHARE = 0.3


@dataclass(frozen=True)
class Cell:
    """One design of the grid."""

    rule: str
    budget: float
    error_rate: float
    critic: str
    n: int
    floor: float


@functools.cache
def concentration(error_rate: float, target: float) -> float:
    """c such that ε̂ ~ Beta(q c, (1 − q) c), e ~ Bernoulli(ε̂) has AUROC ≈ target (bisection
    on log c over one seeded sample of 40,000)."""
    rng = np.random.default_rng(12345)
    uniform_e = rng.random(40_000)
    lo, hi = math.log(0.05), math.log(200.0)
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        c = math.exp(mid)
        eps = np.random.default_rng(777).beta(error_rate * c, (1 - error_rate) * c, 40_000)
        if auroc(eps, uniform_e < eps) > target:  # more spread (small c) = higher AUROC
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def population(cell: Cell, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(ε̂, e) for one population of the cell."""
    target = 0.8 if cell.critic == "miss" else float(cell.critic)
    c = concentration(cell.error_rate, target)
    eps = np.clip(rng.beta(cell.error_rate * c, (1 - cell.error_rate) * c, cell.n), 0.0, 1.0)
    wrong = rng.random(cell.n) < eps
    if cell.critic == "miss":
        errors = np.flatnonzero(wrong)
        missed = errors[rng.random(errors.size) < _MISS_SHARE]
        eps[missed] = rng.uniform(0.0, 0.02, missed.size)
    return eps, wrong


def intervals(
    eps: np.ndarray, wrong: np.ndarray, pi: np.ndarray, delta: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(estimate, low, high) of T per draw (rows of ``delta``) for each of :data:`METHODS`."""
    alpha = 1.0 - CONFIDENCE
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    e = wrong[None, :] & delta
    ht = _ht_totals(e, delta, pi, alpha)
    half = z * np.sqrt(ht.variance)
    n = pi.size
    folds = np.arange(n) % CROSS_FIT_FOLDS
    raw = _ma_totals(e, delta, pi, _cross_fitted(eps, e, delta, pi, folds), alpha)
    ma = raw if _assisted_applies(pi) else ht  # what _assisted_totals returns, not refitted
    return {
        "normal": (ht.estimate, *np.clip([ht.estimate - half, ht.estimate + half], 0, n)),
        "gamma": (ht.estimate, ht.low, ht.high),
        "assisted_raw": (raw.estimate, raw.low, raw.high),
        "assisted": (ma.estimate, ma.low, ma.high),
    }


def run_cell(cell: Cell, *, populations: int, draws: int, seed: int) -> dict[str, dict[str, float]]:
    """Coverage, mean width, zero-width share and bias (in MC SE) per method, plus the AUROC."""
    rng = np.random.default_rng([seed, zlib.crc32(repr(cell).encode())])
    hits: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    above: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    widths: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    errors: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    aurocs = []
    per_population = max(1, draws // populations)
    for _ in range(populations):
        eps, wrong = population(cell, rng)
        aurocs.append(auroc(eps, wrong))
        pi = inclusion_probabilities(eps, cell.budget, rule=cell.rule, floor=cell.floor)
        delta = rng.random((per_population, cell.n)) < pi
        truth = float(wrong.sum())
        for method, (est, low, high) in intervals(eps, wrong, pi, delta).items():
            hits[method].append((low <= truth) & (truth <= high))
            above[method].append(low > truth)
            widths[method].append((high - low) / cell.n)
            errors[method].append(est - truth)
    result: dict[str, dict[str, float]] = {}
    for method in METHODS:
        hit, high, width, err = (np.concatenate(x[method]) for x in (hits, above, widths, errors))
        se = err.std(ddof=1) / math.sqrt(err.size)
        result[method] = {
            "coverage": float(hit.mean()),
            "miss_low": float(high.mean()),  # share of draws whose lower bound is above T
            "width": float(width.mean()),
            "zero_width": float((width == 0).mean()),
            "bias_se": float(err.mean() / se) if se > 0 else 0.0,
            "draws": float(hit.size),
        }
    result["observed"] = {"auroc": float(np.mean(aurocs))}
    return result


def grid(args: argparse.Namespace) -> list[Cell]:
    """Every cell of the grid selected on the command line."""
    return [
        Cell(rule, budget, q, critic, n, args.floor)
        for n, rule, budget, q, critic in itertools.product(
            args.n, args.rules, args.budgets, args.error_rates, args.critics
        )
    ]


def _work(cell: Cell, populations: int, draws: int, seed: int) -> tuple[Cell, dict]:
    return cell, run_cell(cell, populations=populations, draws=draws, seed=seed)


def _line(cell: Cell, result: dict[str, dict[str, float]]) -> str:
    parts = [
        f"{cell.rule:<11} B={cell.budget:4.2f} q={cell.error_rate:4.2f} "
        f"critic={cell.critic:<4} (AUROC {result['observed']['auroc']:.2f}) N={cell.n:<5}"
    ]
    for method in METHODS:
        r = result[method]
        parts.append(
            f"{method} {r['coverage']:.3f}/{r['width']:.3f} (above {r['miss_low']:.3f})"
            + (f" z{r['zero_width']:.2f}" if r["zero_width"] else "")
            + f" b{r['bias_se']:+.1f}"
        )
    return " | ".join(parts)


def summarize(results: Sequence[tuple[Cell, dict]], draws: int) -> list[str]:
    """The worst coverage per method (and where), bias outliers, and the widths at the targets."""
    se = math.sqrt(0.95 * 0.05 / draws)
    lines = [f"Monte-Carlo SE of a coverage near 0.95: {se:.4f} ({draws} draws per cell)"]
    for method in METHODS:
        covs = [(r[method]["coverage"], c) for c, r in results]
        worst, cell = min(covs, key=lambda x: x[0])
        below = sum(1 for c, _ in covs if c < 0.94)
        zero = max(r[method]["zero_width"] for _, r in results)
        bias = max(abs(r[method]["bias_se"]) for _, r in results)
        lines.append(
            f"{method:<9} min coverage {worst:.3f} ({cell.rule}, B={cell.budget}, "
            f"q={cell.error_rate}, critic {cell.critic}, N={cell.n}); cells < 0.94: "
            f"{below}/{len(covs)}; max zero-width share {zero:.2f}; max |bias|/SE {bias:.1f}"
        )
    return lines


def markdown(results: Sequence[tuple[Cell, dict]]) -> list[str]:
    """Per rule × budget (over error rates, critics and N): min coverage and mean width."""
    lines = [
        "| rule | budget | " + " | ".join(f"{m}: min cov. / mean width" for m in METHODS) + " |",
        "|---|---|" + "---|" * len(METHODS),
    ]
    keys = sorted({(c.rule, c.budget) for c, _ in results}, key=lambda k: (RULES.index(k[0]), k[1]))
    for rule, budget in keys:
        mine = [r for c, r in results if (c.rule, c.budget) == (rule, budget)]
        cells = [
            f"{min(r[m]['coverage'] for r in mine):.3f} / "
            f"{np.mean([r[m]['width'] for r in mine]):.3f}"
            for m in METHODS
        ]
        lines.append(f"| {rule} | {budget:.0%} | " + " | ".join(cells) + " |")
    return lines


def figure(results: Sequence[tuple[Cell, dict]], path: Path) -> None:
    """Coverage of every cell, sorted, per method (left); mean width vs coverage (right)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    for method in METHODS:
        cov = np.sort([r[method]["coverage"] for _, r in results])
        left.plot(np.arange(cov.size), cov, label=method)
        right.scatter(
            [r[method]["width"] for _, r in results],
            [r[method]["coverage"] for _, r in results],
            s=6,
            label=method,
        )
    for ax in (left, right):
        ax.axhline(0.95, color="#888888", linestyle=":", linewidth=1)
        ax.axhline(0.94, color="#c0392b", linestyle="--", linewidth=1)
        ax.set_ylabel("coverage of the 95% interval")
        ax.legend(fontsize="small", frameon=False)
    left.set_xlabel("cells of the grid, sorted by coverage")
    left.set_title(f"Coverage over {len(results)} cells")
    right.set_xlabel("mean width (accuracy units)")
    right.set_title("Coverage against width, per cell")
    fig.savefig(path, format="png", metadata={"Software": None})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", nargs="+", default=list(RULES))
    parser.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS))
    parser.add_argument("--error-rates", nargs="+", type=float, default=list(ERROR_RATES))
    parser.add_argument("--critics", nargs="+", default=list(CRITICS))
    parser.add_argument("--n", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--floor", type=float, default=DEFAULT_FLOOR)
    parser.add_argument("--draws", type=int, default=1000, help="draws per cell")
    parser.add_argument("--populations", type=int, default=4, help="populations per cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write every cell's figures here")
    parser.add_argument("--png", type=Path, help="write the coverage figure here")
    args = parser.parse_args(argv)
    cells = grid(args)
    start = time.perf_counter()
    work = functools.partial(_work, populations=args.populations, draws=args.draws, seed=args.seed)
    results = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for cell, result in pool.map(work, cells):
            results.append((cell, result))
            print(_line(cell, result), flush=True)
    print()
    for line in [*summarize(results, args.draws), "", *markdown(results)]:
        print(line)
    print(f"{len(cells)} cells in {time.perf_counter() - start:.0f} s")
    if args.json:
        records = [{**dataclasses.asdict(cell), **result} for cell, result in results]
        args.json.write_text(json.dumps(records, indent=1) + "\n")
    if args.png:
        figure(results, args.png)


if __name__ == "__main__":
    main()
