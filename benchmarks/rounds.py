"""Review in rounds: coverage, width and the certificate under optional stopping.

    python benchmarks/rounds.py                        # the full grid, 300 draws per cell
    python benchmarks/rounds.py --draws 100 --n 500    # a quick look
    python benchmarks/rounds.py --from-json a.json b.json --png rounds.png  # runs merged

For each cell (sampling rule × budget B × machine error rate × critic × N × rounds K, at the
default floor) the script makes a few seeded populations (suspicion ε̂ and errors e, from
``benchmarks/coverage.py``'s generator: the same populations for every K) and simulates the
review in K rounds of budget B/K each, as ``ls-act review`` plans them. Round r:

- pool U_r = the rows not reviewed in rounds 1 … r − 1;
- suspicion = the raw critic ε̂ in round 1; later the critic calibrated on every row reviewed
  so far (``act_math.calibrate_suspicion``, weights 1/π of the round that drew the row): the
  critic learns from the reviews;
- π_r = ``inclusion_probabilities(suspicion[U_r], B/K)`` placed into an N-array (0 outside
  U_r), δ_r ~ Bernoulli(π_r).

Then, with the shipped code of ``act_plugin.sequential``:

- ``sequential_error_count``, model-assisted with the raw critic (``assisted``) and
  Horvitz–Thompson (``ht``): coverage of the true T by the 95% interval, mean width in
  accuracy units ((high − low)/N), bias of T̂ in Monte-Carlo standard errors;
- ``certificate`` (model-assisted, raw critic, confidence 0.95, total budget B) after every
  round r: its lower bound on the accuracy of the training set of round r (human labels where
  reviewed, machine labels elsewhere), whose truth is 1 − (T − F_r)/N. ``wrong_any`` is the
  share of draws whose bound is above the truth at some round (the simultaneous claim; ≤ 0.05
  if the certificate holds). For targets t = m + offset (m the mean true accuracy of the final
  training set of the population, offsets −0.10, −0.05, −0.02, 0), stopping at the first round whose
  certificate is met (and t = the population's median final bound, ``median``, met about
  half the time by construction; ``half``: the median bound after round K/2, so that about
  half the reviews stop at round K/2): ``false`` = P(certified and the training set's true
  accuracy < t), which must be ≤ 0.05; ``met`` = P(certified at some round); ``spent`` = the
  mean budget spent (the rounds used × B/K, all of B when never met) as a share of B.

``--search-rounds``: rounds 1 … K − 1 without the floor, the floor in round K only (``ls-act
review --search-rounds``); the estimate then comes from the last round alone
(``sequential_error_count`` gives the search rounds weight 0), and no certificate is computed
(``ls-act`` refuses a target with search rounds). Thresholded rule only (``ls-act`` refuses
the others: without the floor their π is > 0 but tiny on most rows, so their rounds count).

Monte-Carlo SE of a share near 0.95 (or 0.05): √(0.95 · 0.05 / draws), 0.013 at 300 draws.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import itertools
import json
import math
import sys
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from act_plugin.act_math import DEFAULT_FLOOR, auroc, calibrate_suspicion, inclusion_probabilities
from act_plugin.sequential import certificate, sequential_error_count


def _coverage_module():
    """``benchmarks/coverage.py``, loaded by path (the name ``coverage`` is coverage.py's)."""
    name = "act_coverage_bench"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("coverage.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_COVERAGE = _coverage_module()
population = _COVERAGE.population

RULES = ("thresholded", "exponential")
BUDGETS = (0.10, 0.20, 0.30)
ERROR_RATES = (0.10, 0.20, 0.40)
CRITICS = ("0.65", "0.8", "0.95", "miss")
SIZES = (2000,)
ROUNDS = (1, 2, 4)
OFFSETS = (-0.10, -0.05, -0.02, 0.0)
METHODS = ("assisted", "ht")
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Cell(_COVERAGE.Cell):
    """One design of the grid: ``benchmarks/coverage.py``'s cell and K, the rounds."""

    rounds: int

    def design(self) -> str:
        """The cell without K: the seed of its populations, shared by every K."""
        return repr(dataclasses.replace(self, rounds=0))


def simulate(
    cell: Cell,
    eps: np.ndarray,
    wrong: np.ndarray,
    rng: np.random.Generator,
    *,
    search: bool = False,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One review in ``cell.rounds`` rounds: (π_r, δ_r) per round, each of shape (N,); with
    ``search``, the floor only in the last round."""
    n = eps.size
    per_round = cell.budget * n / cell.rounds
    reviewed = np.zeros(n, dtype=bool)
    inverse = np.zeros(n)  # 1/π of the round that drew each reviewed row
    pis: list[np.ndarray] = []
    deltas: list[np.ndarray] = []
    for r in range(cell.rounds):
        pool = ~reviewed
        if r == 0:
            suspicion = eps
        else:
            calibrated = calibrate_suspicion(eps[reviewed], wrong[reviewed], inverse[reviewed])
            suspicion = calibrated(eps)
        pi = np.zeros(n)
        floor = 0.0 if search and r < cell.rounds - 1 else cell.floor
        pi[pool] = inclusion_probabilities(
            suspicion[pool], per_round / pool.sum(), rule=cell.rule, floor=floor
        )
        delta = rng.random(n) < pi
        inverse[delta] = 1.0 / pi[delta]
        reviewed |= delta
        pis.append(pi)
        deltas.append(delta)
    return pis, deltas


def run_cell(
    cell: Cell,
    *,
    populations: int,
    draws: int,
    seed: int,
    stopping: bool = False,
    search: bool = False,
) -> dict[str, dict]:
    """Coverage, width and bias per method, and the certificate's figures per target; with
    ``stopping``, also the bias of the (model-assisted) estimate of T at the stopping round;
    with ``search``, search rounds and no certificate (its bounds are −inf)."""
    pop_rng = np.random.default_rng([seed, zlib.crc32(cell.design().encode())])
    rng = np.random.default_rng([seed, zlib.crc32(repr(cell).encode())])
    per_population = max(1, draws // populations)
    total = cell.budget * cell.n
    est = {m: [] for m in METHODS}
    low = {m: [] for m in METHODS}
    high = {m: [] for m in METHODS}
    truths, aurocs, errors = [], [], []
    bounds, accs, groups = [], [], []  # per draw: (K,) bound and true accuracy after round r
    prefix = []  # per draw: (K,) T̂ of rounds 1 … r (with ``stopping``)
    for p in range(populations):
        eps, wrong = population(cell, pop_rng)
        aurocs.append(auroc(eps, wrong))
        t = float(wrong.sum())
        for _ in range(per_population):
            pis, deltas = simulate(cell, eps, wrong, rng, search=search)
            for method, suspicion in (("assisted", eps), ("ht", None)):
                count = sequential_error_count(wrong, pis, deltas, suspicion=suspicion)
                est[method].append(count.estimate)
                low[method].append(count.ci_low)
                high[method].append(count.ci_high)
            truths.append(t)
            row_bounds, row_accs, row_est = [], [], []
            for r in range(cell.rounds):
                if stopping:
                    row_est.append(
                        sequential_error_count(
                            wrong, pis[: r + 1], deltas[: r + 1], suspicion=eps
                        ).estimate
                    )
                found = float((wrong & np.any(deltas[: r + 1], axis=0)).sum())
                row_accs.append(1.0 - (t - found) / cell.n)
                if search:
                    row_bounds.append(-math.inf)
                    continue
                try:
                    cert = certificate(
                        wrong, pis[: r + 1], deltas[: r + 1], total_budget=total,
                        target=1.0, confidence=CONFIDENCE, suspicion=eps,
                    )  # fmt: skip
                    row_bounds.append(cert.lower_bound)
                except ValueError as exc:  # recorded, not fatal: a finding of the run
                    errors.append(str(exc))
                    row_bounds.append(-math.inf)
            bounds.append(row_bounds)
            accs.append(row_accs)
            prefix.append(row_est)
            groups.append(p)
    truth = np.array(truths)
    result: dict[str, dict] = {}
    for method in METHODS:
        e, lo, hi = (np.array(x[method]) for x in (est, low, high))
        err = e - truth
        se = err.std(ddof=1) / math.sqrt(err.size)
        result[method] = {
            "coverage": float(((lo <= truth) & (truth <= hi)).mean()),
            "above": float((lo > truth).mean()),  # lower bound above T
            "width": float(((hi - lo) / cell.n).mean()),
            "bias_se": float(err.mean() / se) if se > 0 else 0.0,
            "draws": int(err.size),
        }
    bound, acc, group = np.array(bounds), np.array(accs), np.array(groups)
    final = np.array([acc[group == g, -1].mean() for g in range(populations)])[group]
    cert: dict[str, object] = {
        "wrong_any": float((bound > acc + 1e-12).any(axis=1).mean()),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "final_accuracy": float(acc[:, -1].mean()),
        "final_bound": float(bound[:, -1].mean()),
    }

    def median_bound(r: int) -> np.ndarray:
        return np.array([np.median(bound[group == g, r]) for g in range(populations)])[group]

    targets = [(f"{o:+.2f}", final + o) for o in OFFSETS]
    targets += [("median", median_bound(-1)), ("half", median_bound(max(cell.rounds // 2, 1) - 1))]
    for key, target in targets:
        met = bound >= target[:, None]
        ever = met.any(axis=1)
        stop = np.where(ever, met.argmax(axis=1), cell.rounds - 1)
        at_stop = acc[np.arange(acc.shape[0]), stop]
        cert[key] = {
            "met": float(ever.mean()),
            "false": float((ever & (at_stop < target - 1e-12)).mean()),
            "spent": float(np.where(ever, (stop + 1) / cell.rounds, 1.0).mean()),
        }
        if stopping:
            err = np.array(prefix)[np.arange(stop.size), stop] - truth
            se = err.std(ddof=1) / math.sqrt(err.size)
            cert[key]["stopped_bias_se"] = float(err.mean() / se) if se > 0 else 0.0
            cert[key]["stopped_bias_acc"] = float(-err.mean() / cell.n)
    result["certificate"] = cert
    result["observed"] = {"auroc": float(np.mean(aurocs))}
    return result


def grid(args: argparse.Namespace) -> list[Cell]:
    """Every cell selected on the command line, the costly (many rounds) first."""
    cells = [
        Cell(rule, budget, q, critic, n, args.floor, k)
        for k, n, rule, budget, q, critic in itertools.product(
            sorted(args.rounds, reverse=True),
            args.n,
            args.rules,
            args.budgets,
            args.error_rates,
            args.critics,
        )
    ]
    return cells


def _work(
    cell: Cell, populations: int, draws: int, seed: int, stopping: bool, search: bool
) -> tuple[Cell, dict]:
    return cell, run_cell(
        cell, populations=populations, draws=draws, seed=seed, stopping=stopping, search=search
    )


def _name(cell: Cell) -> str:
    return (
        f"{cell.rule}, B={cell.budget:.0%}, q={cell.error_rate:.0%}, critic {cell.critic}, "
        f"N={cell.n}, K={cell.rounds}"
    )


def _line(cell: Cell, result: dict) -> str:
    parts = [
        f"{cell.rule:<11} B={cell.budget:4.2f} q={cell.error_rate:4.2f} "
        f"critic={cell.critic:<4} (AUROC {result['observed']['auroc']:.2f}) N={cell.n:<5} "
        f"K={cell.rounds}"
    ]
    for method in METHODS:
        r = result[method]
        parts.append(f"{method} {r['coverage']:.3f}/{r['width']:.3f} b{r['bias_se']:+.1f}")
    cert = result["certificate"]
    parts.append(
        f"cert wrong {cert['wrong_any']:.3f} "
        + " ".join(
            f"{k}:{cert[k]['met']:.2f}/{cert[k]['false']:.3f}/{cert[k]['spent']:.2f}"
            for k in [f"{o:+.2f}" for o in OFFSETS] + ["median", "half"]
        )
        + "".join(
            f" stopped@{k} bias {cert[k]['stopped_bias_se']:+.1f} SE "
            f"({cert[k]['stopped_bias_acc']:+.4f} acc)"
            for k in ("half", "-0.05")
            if "stopped_bias_se" in cert[k]
        )
        + (f" ERRORS {cert['errors']}" if cert["errors"] else "")
    )
    return " | ".join(parts)


def summarize(results: Sequence[tuple[Cell, dict]], draws: int) -> list[str]:
    """The worst cells: coverage per method, bias, the certificate's false claims."""
    se = math.sqrt(0.95 * 0.05 / draws)
    lines = [f"Monte-Carlo SE of a share near 0.95 or 0.05: {se:.4f} ({draws} draws per cell)"]
    for method in METHODS:
        worst = sorted(results, key=lambda x: x[1][method]["coverage"])[:3]
        below = sum(1 for _, r in results if r[method]["coverage"] < 0.94)
        bias = max(results, key=lambda x: abs(x[1][method]["bias_se"]))
        lines.append(
            f"{method:<8} worst coverage: "
            + "; ".join(f"{r[method]['coverage']:.3f} ({_name(c)})" for c, r in worst)
            + f"; cells < 0.94: {below}/{len(results)}; max |bias|/SE "
            f"{bias[1][method]['bias_se']:+.1f} ({_name(bias[0])})"
        )
    worst = sorted(results, key=lambda x: -x[1]["certificate"]["wrong_any"])[:3]
    lines.append(
        "certificate above the truth at some round, worst: "
        + "; ".join(f"{r['certificate']['wrong_any']:.3f} ({_name(c)})" for c, r in worst)
    )
    for key in [f"{o:+.2f}" for o in OFFSETS] + ["median", "half"]:
        c, r = max(results, key=lambda x: x[1]["certificate"][key]["false"])
        over = sum(1 for _, x in results if x["certificate"][key]["false"] > 0.05)
        lines.append(
            f"target {key}: max P(certified, truth < target) {r['certificate'][key]['false']:.3f}"
            f" ({_name(c)}); cells > 0.05: {over}/{len(results)}"
        )
    failures = sum(r["certificate"]["errors"] for _, r in results)
    if failures:
        first = next(
            r["certificate"]["first_error"] for _, r in results if r["certificate"]["errors"]
        )
        lines.append(f"certificate raised {failures} times, e.g. {first}")
    return lines


def _cert(figures: list[dict]) -> str:
    return (
        f"{np.mean([x['met'] for x in figures]):.2f} / {max(x['false'] for x in figures):.3f} / "
        f"{np.mean([x['spent'] for x in figures]):.2f}"
    )


def markdown(results: Sequence[tuple[Cell, dict]]) -> list[str]:
    """Per rule × budget × K (over error rates and critics): the estimate and the certificate."""
    lines = [
        "| rule | budget | K | assisted: min cov. / mean width | ht: min cov. / mean width "
        "| max abs(bias)/SE | cert. wrong at some round (max) "
        "| target m − 5 pts: met / max false / budget spent "
        "| target median bound: met / max false / budget spent |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = {rule: i for i, rule in enumerate(RULES)}
    keys = sorted(
        {(c.n, c.rule, c.budget, c.rounds) for c, _ in results},
        key=lambda k: (k[0], order.get(k[1], 9), k[2], k[3]),
    )
    for n, rule, budget, k in keys:
        mine = [r for c, r in results if (c.n, c.rule, c.budget, c.rounds) == (n, rule, budget, k)]
        cov = [
            f"{min(r[m]['coverage'] for r in mine):.3f} / "
            f"{np.mean([r[m]['width'] for r in mine]):.3f}"
            for m in METHODS
        ]
        bias = max(abs(r[m]["bias_se"]) for r in mine for m in METHODS)
        cert = [r["certificate"] for r in mine]
        five, mid = [x["-0.05"] for x in cert], [x["median"] for x in cert]
        lines.append(
            f"| {rule}{'' if len({c.n for c, _ in results}) == 1 else f', N={n}'} "
            f"| {budget:.0%} | {k} | {cov[0]} | {cov[1]} | {bias:.1f} "
            f"| {max(x['wrong_any'] for x in cert):.3f} "
            f"| {_cert(five)} | {_cert(mid)} |"
        )
    return lines


def figure(results: Sequence[tuple[Cell, dict]], path: Path) -> None:
    """Against K: min and mean coverage (left), mean width (middle), the share of reviews
    whose certificate reaches m − 5 points at some round (right); one line per budget and rule."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    left, middle, right = fig.subplots(1, 3)
    ks = sorted({c.rounds for c, _ in results})
    styles = {"thresholded": "-", "exponential": "--"}
    for rule in sorted({c.rule for c, _ in results}):
        for budget in sorted({c.budget for c, _ in results}):

            def over(k: int, rule: str = rule, budget: float = budget) -> list[dict]:
                return [r for c, r in results if (c.rule, c.budget, c.rounds) == (rule, budget, k)]

            label = f"{rule}, B {budget:.0%}"
            line = left.plot(
                ks, [min(r["assisted"]["coverage"] for r in over(k)) for k in ks],
                styles.get(rule, ":"), marker="o", label=label,
            )[0]  # fmt: skip
            middle.plot(
                ks, [np.mean([r["assisted"]["width"] for r in over(k)]) for k in ks],
                styles.get(rule, ":"), marker="o", color=line.get_color(), label=label,
            )  # fmt: skip
            right.plot(
                ks, [np.mean([r["certificate"]["-0.05"]["met"] for r in over(k)]) for k in ks],
                styles.get(rule, ":"), marker="o", color=line.get_color(), label=label,
            )  # fmt: skip
    left.axhline(0.95, color="#888888", linestyle=":", linewidth=1)
    left.axhline(0.94, color="#c0392b", linestyle="--", linewidth=1)
    left.set_ylabel("min coverage over the cells (95% interval)")
    left.set_title("Coverage of sequential_error_count (assisted)")
    middle.set_ylabel("mean width (accuracy units)")
    middle.set_title("Width of the interval")
    right.set_ylabel("share of reviews certified")
    right.set_title("Certified at target m − 5 points")
    for ax in (left, middle, right):
        ax.set_xlabel("rounds K")
        ax.set_xticks(ks)
    middle.legend(fontsize="small", frameon=False)
    fig.savefig(path, format="png", metadata={"Software": None})


def _write_json(path: Path, results: Sequence[tuple[Cell, dict]]) -> None:
    records = [{**dataclasses.asdict(cell), **result} for cell, result in results]
    path.write_text(json.dumps(records, indent=1) + "\n")


def _read_json(paths: Sequence[Path]) -> list[tuple[Cell, dict]]:
    names = [f.name for f in dataclasses.fields(Cell)]
    results = []
    for path in paths:
        for record in json.loads(path.read_text()):
            cell = Cell(**{k: record.pop(k) for k in names})
            results.append((cell, record))
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    axes = (
        ("--rules", str, RULES),
        ("--budgets", float, BUDGETS),
        ("--error-rates", float, ERROR_RATES),
        ("--critics", str, CRITICS),
        ("--n", int, SIZES),
        ("--rounds", int, ROUNDS),
    )
    for flag, kind, default in axes:  # the grid's axes, each a list of values
        parser.add_argument(flag, nargs="+", type=kind, default=list(default))
    parser.add_argument("--floor", type=float, default=DEFAULT_FLOOR)
    parser.add_argument("--draws", type=int, default=300, help="draws per cell")
    parser.add_argument("--populations", type=int, default=4, help="populations per cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--stopping", action="store_true", help="also the bias of T̂ at the stopping round"
    )
    parser.add_argument(
        "--search-rounds", action="store_true", help="the floor in the last round only"
    )
    parser.add_argument("--json", type=Path, help="write every cell's figures here")
    parser.add_argument("--png", type=Path, help="write the figure here")
    parser.add_argument(
        "--from-json",
        nargs="+",
        type=Path,
        help="summarize the cells of earlier runs' --json files (merged) instead of running",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        results = _read_json(args.from_json)
        draws = min(int(r["assisted"]["draws"]) for _, r in results)
        for line in [*summarize(results, draws), "", *markdown(results)]:
            print(line)
        if args.png:
            figure(results, args.png)
        return
    cells = grid(args)
    start = time.perf_counter()
    work = functools.partial(
        _work,
        populations=args.populations,
        draws=args.draws,
        seed=args.seed,
        stopping=args.stopping,
        search=args.search_rounds,
    )
    results = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for cell, result in pool.map(work, cells):
            results.append((cell, result))
            print(_line(cell, result), flush=True)
            if args.json:  # after every cell, so an interrupted run keeps what it measured
                _write_json(args.json, results)
    print()
    for line in [*summarize(results, args.draws), "", *markdown(results)]:
        print(line)
    print(f"{len(cells)} cells in {time.perf_counter() - start:.0f} s")
    if args.png:
        figure(results, args.png)


if __name__ == "__main__":
    main()
