"""Run the benchmark: annotate → criticize → review (simulated) → train → evaluate.

Per data set: features (and the zero-shot scores, or the endpoint's answers) are computed once.
Per seed: a stratified pool/test split; the pool is annotated (the few-shot annotator draws its
examples per seed), each critic scores the pool's machine labels, each method × budget × critic
chooses who is reviewed (the true labels answer as the human), one model per choice is trained
on the ACT loss, and every model is tested on the held-out split. All methods of a seed share
the split, the machine labels and the critics' scores, so differences between methods are
paired; a review draw depends on (seed, data set, critic, method, budget) only, so the
stabilizer ablation compares trainers on identical draws.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from act_plugin.act_math import auroc, recall_at_fraction
from act_plugin.bench.annotators import (
    EndpointLabels,
    endpoint_labels,
    nearest_centroid,
    zero_shot,
)
from act_plugin.bench.config import BASELINES, BenchConfig, DatasetConfig
from act_plugin.bench.critics import (
    KnnCritic,
    knn_consistency,
    oracle_suspicion,
    out_of_fold_suspicion,
    random_suspicion,
)
from act_plugin.bench.data import BenchData, load_data, stratified_split
from act_plugin.bench.methods import (
    AUDIT_METHODS,
    MODEL_METHODS,
    ROUND_METHODS,
    SOFT_METHODS,
    Rescore,
    ReviewPlan,
    review_plan,
    rounds_review,
    soft_plan,
)
from act_plugin.bench.model_critic import Probability, model_lambda, post_review_probability
from act_plugin.bench.train import fit_act_models

if TYPE_CHECKING:
    from act_backend.settings import Settings

__all__ = [
    "BenchResult",
    "CriticRecord",
    "DatasetResult",
    "EndpointUsage",
    "RunRecord",
    "run_benchmark",
]

log = logging.getLogger(__name__)
ProgressCallback = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class RunRecord:
    """One trained model: its method, budget (fraction; None for baselines), critic (None for
    baselines), stabilizer, test accuracy (0–1), realised human share Σδ/N, and the raw ACT loss
    it ended at on its training items."""

    seed: int
    method: str
    critic: str | None
    budget: float | None
    stabilizer: str
    accuracy: float
    human_share: float
    act_loss: float
    ablation: bool = False


@dataclass(frozen=True)
class CriticRecord:
    """A critic's detection of wrong machine labels on one seed's pool."""

    seed: int
    critic: str
    auroc: float
    recall_at_10: float
    recall_at_20: float


@dataclass(frozen=True)
class EndpointUsage:
    """LLM use of the endpoint annotator + critic for one data set (both roles together)."""

    model_version: str
    items: int
    failed: dict[str, int]
    calls: int
    cached_calls: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def calls_per_item(self) -> float:
        return self.calls / max(self.items, 1)

    @property
    def tokens_per_item(self) -> float:
        return (self.prompt_tokens + self.completion_tokens) / max(self.items, 1)


@dataclass
class DatasetResult:
    """Everything measured on one data set."""

    name: str
    modality: str
    annotator: str
    n_items: int
    n_pool: int
    n_test: int
    n_classes: int
    features_cached: bool
    annotator_accuracy: list[float] = field(default_factory=list)
    error_rate: list[float] = field(default_factory=list)
    critics: list[CriticRecord] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    endpoint: EndpointUsage | None = None

    def accuracies(
        self,
        method: str,
        *,
        critic: str | None = None,
        budget: float | None = None,
        stabilizer: str | None = None,
        ablation: bool = False,
    ) -> dict[int, float]:
        """Test accuracy by seed of the matching runs (baselines ignore critic and budget)."""
        out = {}
        for r in self.runs:
            if r.method != method or r.ablation != ablation:
                continue
            if stabilizer is not None and r.stabilizer != stabilizer:
                continue
            if method not in BASELINES and (
                r.critic != critic or not _same_budget(r.budget, budget)
            ):
                continue
            out[r.seed] = r.accuracy
        return out

    def human_shares(
        self, method: str, *, critic: str | None = None, budget: float | None = None
    ) -> list[float]:
        return [
            r.human_share
            for r in self.runs
            if not r.ablation
            and r.method == method
            and (method in BASELINES or (r.critic == critic and _same_budget(r.budget, budget)))
        ]


@dataclass
class BenchResult:
    """The whole run: the config it ran, one result per data set, and the total wall time."""

    config: BenchConfig
    datasets: list[DatasetResult]
    seconds: float = 0.0
    torch_threads: int = 1


def _same_budget(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)


# --------------------------------------------------------------------------------------------
# Helpers


def _seed(seed: int, *parts: str | float) -> np.random.SeedSequence:
    """A seed sequence for one named random choice: the same names give the same stream."""
    keys = [zlib.crc32(str(p).encode()) for p in parts]
    return np.random.SeedSequence([seed, *keys])


#: The timed stage in which the endpoint annotates and criticizes every item of a data set.
ENDPOINT_STAGE = "annotate+criticize (endpoint)"


class _Clock:
    """Wall time per stage, summed."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.into[name] = self.into.get(name, 0.0) + time.perf_counter() - started


def _settings(config: BenchConfig, settings: Settings | None) -> Settings | None:
    if not config.uses_endpoint:
        return None
    if settings is not None:
        return settings
    if config.endpoint is None:
        raise ValueError(
            "the config uses the endpoint annotator or critic but names no [endpoint] "
            "settings; add [endpoint] settings_file/overrides or pass settings=..."
        )
    from act_backend.settings import load_settings

    return load_settings(
        config.endpoint.settings_file, env={}, overrides=dict(config.endpoint.overrides)
    )


@dataclass(frozen=True)
class _Pool:
    """One seed's annotated pool and held-out test split."""

    pool: BenchData
    test: BenchData
    machine: NDArray[np.int64]
    scores: NDArray[np.float64] | None  # annotator's per-class scores, when it has them
    endpoint_suspicion: NDArray[np.float64] | None


def _annotate(
    data: BenchData,
    dataset: DatasetConfig,
    seed: int,
    answers: EndpointLabels | None,
    pool_idx: NDArray[np.intp],
) -> tuple[NDArray[np.int64], NDArray[np.float64] | None, NDArray[np.float64] | None]:
    if dataset.annotator == "endpoint":
        assert answers is not None
        return answers.labels[pool_idx], None, answers.suspicion[pool_idx]
    if dataset.annotator == "zero_shot":
        assert data.label_scores is not None
        scores = data.label_scores[pool_idx]
        return zero_shot(scores), scores, None
    machine, scores, _ = nearest_centroid(
        data.features[pool_idx],
        data.labels[pool_idx],
        n_classes=data.n_classes,
        shots=dataset.shots,
        seed=_seed(seed, dataset.name, "shots"),
    )
    return machine, scores, None


def _criticize(
    critic: str, pool: _Pool, config: BenchConfig, dataset: DatasetConfig, seed: int
) -> NDArray[np.float64]:
    data = pool.pool
    if critic == "random":
        return random_suspicion(data.n, seed=_seed(seed, dataset.name, "random"))
    if critic == "oracle":
        return oracle_suspicion(pool.machine, data.labels)
    if critic == "knn":
        return knn_consistency(
            data.features,
            pool.machine,
            n_classes=data.n_classes,
            label_scores=pool.scores,
            k=config.knn_k,
        )
    if critic == "oof":
        return out_of_fold_suspicion(
            data.features,
            pool.machine,
            folds=config.oof_folds,
            seed=_seed(seed, dataset.name, "oof"),
        )
    assert pool.endpoint_suspicion is not None
    return pool.endpoint_suspicion


# --------------------------------------------------------------------------------------------
# The run


def run_benchmark(
    config: BenchConfig,
    *,
    on_progress: ProgressCallback | None = None,
    settings: Settings | None = None,
) -> BenchResult:
    """Run every data set × seed × critic × method × budget of ``config``.

    Parameters
    ----------
    config : BenchConfig
        What to run (``load_config`` reads one from TOML).
    on_progress : callable(str), optional
        Called with a one-line message at each stage (e.g. to print to stderr).
    settings : act_backend.settings.Settings, optional
        Backend settings for ``endpoint`` annotators and critics; default: built from
        ``config.endpoint`` (without reading the environment).

    Returns
    -------
    BenchResult
        Per data set: annotator accuracy, critic metrics, one record per trained model, and the
        wall time of each stage. Format it with ``format_result``.
    """
    import torch

    progress = on_progress or (lambda message: None)
    backend_settings = _settings(config, settings)
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many tiny products: one thread is faster and immune to contention
    try:
        results = [
            _run_dataset(dataset, config, backend_settings, progress) for dataset in config.datasets
        ]
    finally:
        torch.set_num_threads(threads)
    return BenchResult(config=config, datasets=results, seconds=time.perf_counter() - started)


def _run_dataset(
    dataset: DatasetConfig,
    config: BenchConfig,
    settings: Settings | None,
    progress: ProgressCallback,
) -> DatasetResult:
    timings: dict[str, float] = {}
    clock = _Clock(timings)
    progress(f"{dataset.name}: loading data and features")
    with clock.stage("features"):
        data = load_data(dataset, cache_dir=config.cache_dir)
    answers: EndpointLabels | None = None
    usage: EndpointUsage | None = None
    if dataset.annotator == "endpoint":
        assert settings is not None
        progress(f"{dataset.name}: annotating and criticizing {data.n} items with the endpoint")
        with clock.stage(ENDPOINT_STAGE):
            answers = endpoint_labels(data, settings)
        usage = EndpointUsage(
            model_version=answers.model_version,
            items=data.n,
            failed=answers.failures,
            calls=answers.calls,
            cached_calls=answers.cached_calls,
            prompt_tokens=answers.prompt_tokens,
            completion_tokens=answers.completion_tokens,
        )
        keep = np.flatnonzero(answers.ok)
        if keep.size < 2 * data.n_classes:
            raise ValueError(
                f"{dataset.name}: the endpoint labelled only {keep.size} of {data.n} items "
                f"(failures: {answers.failures})"
            )
        data = data.subset(keep)
        answers = EndpointLabels(labels=answers.labels[keep], suspicion=answers.suspicion[keep])

    result = DatasetResult(
        name=dataset.name,
        modality=data.modality,
        annotator=dataset.annotator,
        n_items=data.n,
        n_pool=0,
        n_test=0,
        n_classes=data.n_classes,
        features_cached=data.features_cached,
        timings=timings,
        endpoint=usage,
    )
    critics = config.critics_for(dataset)
    for position, seed in enumerate(config.seeds, start=1):
        progress(f"{dataset.name}: seed {seed} ({position}/{len(config.seeds)})")
        _run_seed(data, dataset, config, seed, answers, critics, result, clock)
    return result


def _run_seed(
    data: BenchData,
    dataset: DatasetConfig,
    config: BenchConfig,
    seed: int,
    answers: EndpointLabels | None,
    critics: tuple[str, ...],
    result: DatasetResult,
    clock: _Clock,
) -> None:
    pool_idx, test_idx = stratified_split(
        data.labels,
        test_fraction=dataset.test_fraction,
        seed=_seed(seed, dataset.name, "split"),
    )
    with clock.stage("annotate"):
        machine, scores, endpoint_suspicion = _annotate(data, dataset, seed, answers, pool_idx)
    pool = _Pool(data.subset(pool_idx), data.subset(test_idx), machine, scores, endpoint_suspicion)
    result.n_pool, result.n_test = pool.pool.n, pool.test.n
    truth = pool.pool.labels
    wrong = machine != truth
    result.annotator_accuracy.append(float(1.0 - wrong.mean()))
    result.error_rate.append(float(wrong.mean()))

    suspicion: dict[str, NDArray[np.float64]] = {}
    for critic in critics:
        with clock.stage(f"criticize: {critic}"):
            suspicion[critic] = _criticize(critic, pool, config, dataset, seed)
        result.critics.append(_critic_record(seed, critic, suspicion[critic], wrong))

    # Who is reviewed, per method × critic × budget (the main grid, then the ablation's extras).
    n = pool.pool.n
    default = config.train.stabilizer
    keys: list[tuple[str, str | None, float | None]] = []
    plans: list[ReviewPlan] = []
    knn: dict[str, KnnCritic] = {}  # the kNN critic's neighbours, for reviews in rounds
    with clock.stage("review"):
        for method in config.methods:
            if method in BASELINES:
                keys.append((method, None, None))
                plans.append(review_plan(method, None, None, n=n, floor=0.0, beta=1.0, seed=None))
                continue
            for critic in critics:
                for budget in config.budgets:
                    keys.append((method, critic, budget))
                    plans.append(
                        _plan(
                            method, critic, budget, suspicion, config, dataset, seed, n, pool, knn
                        )
                    )
        ablation: dict[str, list[tuple[tuple[str, str, float], ReviewPlan]]] = {}
        if config.ablation is not None and config.ablation.critic in critics:
            ab = config.ablation
            for stabilizer in ab.stabilizers:
                for method in ab.methods:
                    for budget in ab.budgets:
                        key = (method, ab.critic, budget)
                        plan = _plan(
                            method,
                            ab.critic,
                            budget,
                            suspicion,
                            config,
                            dataset,
                            seed,
                            n,
                            pool,
                            knn,
                        )
                        ablation.setdefault(stabilizer, []).append((key, plan))

    main = _train_and_test(pool, plans, config, default, seed, dataset, clock)
    for (method, critic, budget), plan, (accuracy, loss) in zip(keys, plans, main, strict=True):
        result.runs.append(
            RunRecord(seed, method, critic, budget, default, accuracy, plan.human_share, loss)
        )
    done = {key: outcome for key, outcome in zip(keys, main, strict=True)}
    for stabilizer, entries in ablation.items():
        todo = [(k, p) for k, p in entries if stabilizer != default or k not in done]
        trained = _train_and_test(
            pool, [p for _, p in todo], config, stabilizer, seed, dataset, clock
        )
        outcome = {k: o for (k, _), o in zip(todo, trained, strict=True)}
        for key, plan in entries:
            accuracy, loss = outcome[key] if key in outcome else done[key]
            method, critic, budget = key
            result.runs.append(
                RunRecord(
                    seed,
                    method,
                    critic,
                    budget,
                    stabilizer,
                    accuracy,
                    plan.human_share,
                    loss,
                    ablation=True,
                )
            )


def _plan(
    method: str,
    critic: str,
    budget: float,
    suspicion: dict[str, NDArray[np.float64]],
    config: BenchConfig,
    dataset: DatasetConfig,
    seed: int,
    n: int,
    pool: _Pool,
    knn: dict[str, KnnCritic],
) -> ReviewPlan:
    """The review of ``method``; a per-row λ method (``SOFT_METHODS``, ``MODEL_METHODS``)
    reuses its base method's draws (the same seed) and adds λ_i (``methods.soft_plan``,
    ``model_critic.model_lambda``)."""
    review = method
    if method in SOFT_METHODS and method not in ROUND_METHODS:
        review = SOFT_METHODS[method][0]
    rescore = None
    if review in ROUND_METHODS:
        rescore = _rescorer(critic, config, pool, knn)
        audit = review in AUDIT_METHODS
        design = "ours_audit" if audit else "ours_rounds"  # its methods share the draws
        plan = rounds_review(
            suspicion[critic],
            budget,
            human=pool.pool.labels,
            machine=pool.machine,
            rounds=config.rounds,
            rule=config.rounds_rule,
            floor=config.rounds_floor,
            beta=config.beta,
            seed=_seed(seed, dataset.name, critic, design, f"{budget:.6f}"),
            rescore=rescore,
            weights=ROUND_METHODS[review],
            audit=audit,
        )
    else:
        plan = review_plan(
            review,
            suspicion[critic],
            budget,
            n=n,
            floor=config.floor,
            beta=config.beta,
            seed=_seed(seed, dataset.name, critic, review, f"{budget:.6f}"),
        )
    if method in MODEL_METHODS:
        assert plan.suspicion is not None
        probability: NDArray[np.float64] | Probability = plan.suspicion
        if method == "ours_audit_model" and rescore is not None:
            probability = post_review_probability(
                plan, rescore, pool.pool.labels, folds=config.model_folds
            )
        lam = model_lambda(
            pool.pool.features,
            pool.machine,
            pool.pool.labels,
            plan,
            probability,
            n_classes=pool.pool.n_classes,
            config=config.train,
            folds=config.model_folds,
            iterations=config.model_iterations,
            power=config.model_power,
        )
        return replace(plan, lam=lam)
    if method not in SOFT_METHODS:
        return plan
    return soft_plan(
        plan,
        SOFT_METHODS[method][1],
        suspicion=suspicion[critic],
        wrong=pool.machine != pool.pool.labels,
        power=config.soft_power,
    )


def _rescorer(
    critic: str, config: BenchConfig, pool: _Pool, knn: dict[str, KnnCritic]
) -> Rescore | None:
    """The kNN critic re-scored with reviewed neighbours voting with their human labels; None
    for the other critics (they are only recalibrated)."""
    if critic != "knn":
        return None
    if "knn" not in knn:
        knn["knn"] = KnnCritic(
            pool.pool.features,
            pool.machine,
            n_classes=pool.pool.n_classes,
            label_scores=pool.scores,
            k=config.knn_k,
        )
    return partial(knn["knn"].rescored, human_weight=config.rounds_human_weight)


def _train_and_test(
    pool: _Pool,
    plans: list[ReviewPlan],
    config: BenchConfig,
    stabilizer: str,
    seed: int,
    dataset: DatasetConfig,
    clock: _Clock,
) -> list[tuple[float, float]]:
    """(test accuracy, final raw ACT loss) of one model per plan, trained as one batch."""
    if not plans:
        return []
    with clock.stage("train"):
        reports = fit_act_models(
            pool.pool.features,
            pool.machine,
            pool.pool.labels,
            plans,
            n_classes=pool.pool.n_classes,
            config=config.train,
            stabilizer=stabilizer,
            seed=_seed(seed, dataset.name, "early_stop"),
        )
    with clock.stage("evaluate"):
        return [
            (float(np.mean(r.model.predict(pool.test.features) == pool.test.labels)), r.act_loss)
            for r in reports
        ]


def _critic_record(
    seed: int, critic: str, suspicion: NDArray[np.float64], wrong: NDArray[np.bool_]
) -> CriticRecord:
    if wrong.all() or not wrong.any():
        nan = float("nan")
        return CriticRecord(seed, critic, nan, nan, nan)
    return CriticRecord(
        seed=seed,
        critic=critic,
        auroc=auroc(suspicion, wrong),
        recall_at_10=recall_at_fraction(suspicion, wrong, fraction=0.1),
        recall_at_20=recall_at_fraction(suspicion, wrong, fraction=0.2),
    )
