"""What a benchmark run does: data sets, annotators, critics, methods, budgets, seeds, trainer.

Plain frozen dataclasses, validated once when built (``ValueError`` quoting the bad value), and a
TOML loader (:func:`load_config`). Relative paths in a TOML file are read from the file's folder.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from act_plugin.act_math import DEFAULT_FLOOR
from act_plugin.validation import check_real

__all__ = [
    "ANNOTATORS",
    "BASELINES",
    "CRITICS",
    "DATASET_KINDS",
    "METHODS",
    "STABILIZERS",
    "AblationConfig",
    "BenchConfig",
    "DatasetConfig",
    "EndpointConfig",
    "TrainConfig",
    "config_from_dict",
    "load_config",
]

#: Training-label methods. Baselines need no critic; the others use one critic and a budget.
BASELINES: tuple[str, ...] = ("full_human", "full_machine")
#: ``normalized``/``exponential``/``thresholded``: the paper's rules (π_min = 0);
#: ``ours_*``: the same rule with the floor π_i ≥ ρB/N; ``uniform``: random review with ACT
#: correction; ``top_b``: human labels on the B most suspicious items, machine labels elsewhere,
#: every row weight 1 (no correction); ``ours_rounds``: the budget in ``rounds`` rounds with
#: ``rounds_rule`` and the floor ``rounds_floor``, the critic re-scored and recalibrated after
#: each round (``methods.rounds_review``), trained with ``sequential_weights``;
#: ``ours_rounds_last``: the same review, trained on the last round's ACT loss alone;
#: ``ours_soft`` / ``ours_soft_raw``: the review of ``ours_thresholded`` with per-row
#: λ_i = 1 − the critic calibrated by cross-fitting / 1 − ε̂; ``ours_rounds_soft`` /
#: ``ours_rounds_soft_raw``: ``ours_rounds_last`` with λ_i = 1 − the suspicion of the last
#: round, calibrated on the earlier rounds / raw (``methods.soft_plan``);
#: ``ours_rounds_model``: ``ours_rounds_last`` with λ_i = (q_i (1 − p_i))^k, q_i the
#: probability cross-fitted downstream models give ŷ_i (``model_critic.model_lambda``);
#: ``ours_audit`` / ``ours_audit_model``: the same with the floor in the last round only (the
#: earlier rounds search without it) and, for the model, p_i re-scored after the last round.
METHODS: tuple[str, ...] = (
    *BASELINES,
    "normalized",
    "exponential",
    "thresholded",
    "ours_thresholded",
    "ours_exponential",
    "uniform",
    "top_b",
    "ours_rounds",
    "ours_rounds_last",
    "ours_soft",
    "ours_soft_raw",
    "ours_rounds_soft",
    "ours_rounds_soft_raw",
    "ours_rounds_model",
    "ours_audit",
    "ours_audit_model",
)
#: ``endpoint``: the suspicion of the critic configured in the backend settings (an LLM), only
#: for data sets whose annotator is ``endpoint``.
CRITICS: tuple[str, ...] = ("random", "knn", "oof", "oracle", "endpoint")
#: How the trainer keeps the ACT loss bounded (see ``train.py``).
STABILIZERS: tuple[str, ...] = ("none", "clip", "power", "early_stop")
#: Rules ``ours_rounds`` may use in each round (``act_math.inclusion_probabilities``).
ROUND_RULES: tuple[str, ...] = ("thresholded", "exponential", "normalized", "uniform")
DATASET_KINDS: tuple[str, ...] = ("file", "debian", "digits")
ANNOTATORS: tuple[str, ...] = ("zero_shot", "nearest_centroid", "endpoint")
#: Annotators by modality: the zero-shot one reads text; nearest centroid works on any features.
_MODALITY_ANNOTATORS = {
    "text": ("zero_shot", "nearest_centroid", "endpoint"),
    "image": ("nearest_centroid", "endpoint"),
}
FILE_FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet", "hf")
TEXT_FEATURES: tuple[str, ...] = ("minilm", "hashing")


def _check_choice(value: object, name: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}; got {value!r}")


def _check_choices(values: Sequence[str], name: str, allowed: Sequence[str]) -> None:
    if isinstance(values, str) or not values:
        raise ValueError(f"{name} must be a non-empty list of {list(allowed)}; got {values!r}")
    for value in values:
        _check_choice(value, f"each of {name}", allowed)
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat an entry; got {list(values)!r}")


def _check_fraction(value: object, name: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not 0.0 < float(value) < 1.0:  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a number in (0, 1); got {value!r}")


def _check_positive_int(value: object, name: str, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int ≥ {minimum}; got {value!r}")


def _check_positive(value: object, name: str, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (float(value) < 0.0 if allow_zero else float(value) <= 0.0):  # type: ignore[arg-type]
        bound = "≥ 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}; got {value!r}")


@dataclass(frozen=True)
class DatasetConfig:
    """One data set and its annotator.

    Parameters
    ----------
    name : str
        Shown in the tables.
    kind : {"file", "debian", "digits"}
        ``file``: a table read from ``path`` (JSON Lines, CSV, Parquet, or a Hugging Face
        dataset saved with ``save_to_disk``) with a ``label_column`` and a ``text_column`` or an
        ``image_column`` (image paths, relative to the file's folder, or encoded bytes).
        ``debian``: the packaged Debian package descriptions labelled by archive section (a
        ``file`` data set with ``text_column = "text"``, ``label_column = "section"``; ``path``
        may name another such JSONL file). ``digits``: scikit-learn's bundled 8×8 digits
        (features are the 64 pixels / 16).
    annotator : {"zero_shot", "nearest_centroid", "endpoint"}
        ``zero_shot`` (text): the offline zero-shot annotator, cosine of each text to each label
        text (its name and hint). ``nearest_centroid``: a deliberately weak few-shot classifier,
        cosine to the mean of ``shots`` labelled examples per class. ``endpoint``: the annotator
        of the backend settings (an OpenAI-compatible endpoint or a local transformers model),
        through the predictor.
    path : Path, optional
        The data file (or the folder of a Hugging Face dataset); required for ``file``.
    format : {"jsonl", "csv", "parquet", "hf"}, optional
        Default: from the suffix (``.jsonl``/``.json``, ``.csv``, ``.parquet``), a folder = hf.
    split : str, optional
        The split of a saved Hugging Face ``DatasetDict``.
    text_column, image_column, label_column : str, optional
        The columns to read (one of text or image; both given or neither is an error).
    labels : list of str, optional
        The classes, in this order; a row with another label is an error. Default: the labels
        with a hint (in ``hints`` order), then the others, sorted.
    hints : table of label → str
        A description of each label (``<Choice hint="…">``): the zero-shot annotator embeds
        "name" and the hint, an endpoint sees it in its prompt. A hint for a label the data set
        does not have is an error.
    features : {"minilm", "hashing"}
        Text features: all-MiniLM-L6-v2 embeddings (cached) or hashed bags of words (no model).
    image_size : int
        Images are resized to image_size × image_size grayscale pixels for the features.
    max_items : int, optional
        Keep at most this many items, the same number per class (first in file order).
    shots : int
        Labelled examples per class for ``nearest_centroid`` (drawn per seed from the pool).
    test_fraction : float in (0, 1)
        Share of the items held out (stratified, per seed) to test the downstream model.
    """

    name: str
    kind: str
    annotator: str
    path: Path | None = None
    format: str | None = None
    split: str | None = None
    text_column: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    labels: tuple[str, ...] | None = None
    hints: Mapping[str, str] = field(default_factory=dict)
    features: str = "minilm"
    image_size: int = 16
    max_items: int | None = None
    shots: int = 3
    test_fraction: float = 0.3

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"dataset name must be a non-empty string; got {self.name!r}")
        where = f"dataset {self.name!r}"
        _check_choice(self.kind, f"{where}: kind", DATASET_KINDS)
        if self.kind == "debian":
            object.__setattr__(self, "text_column", self.text_column or "text")
            object.__setattr__(self, "label_column", self.label_column or "section")
            if self.image_column is not None:
                raise ValueError(f"{where}: the debian data set is text; drop image_column")
        elif self.kind == "digits":
            extra = [k for k in ("path", "text_column", "image_column", "label_column", "labels")
                     if getattr(self, k) is not None]  # fmt: skip
            if extra:
                raise ValueError(f"{where}: the built-in digits take no {extra[0]}")
        else:
            if self.path is None:
                raise ValueError(f"{where}: kind 'file' needs a path")
            if self.label_column is None:
                raise ValueError(f"{where}: kind 'file' needs a label_column")
            if (self.text_column is None) == (self.image_column is None):
                raise ValueError(f"{where}: give exactly one of text_column and image_column")
        for key in ("text_column", "image_column", "label_column", "split"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{where}: {key} must be a non-empty string; got {value!r}")
        if self.format is not None:
            _check_choice(self.format, f"{where}: format", FILE_FORMATS)
        if self.labels is not None:
            if isinstance(self.labels, str) or not all(isinstance(x, str) for x in self.labels):
                raise ValueError(f"{where}: labels must be a list of strings; got {self.labels!r}")
            object.__setattr__(self, "labels", tuple(self.labels))
            if len(set(self.labels)) != len(self.labels) or len(self.labels) < 2:
                raise ValueError(f"{where}: labels must be ≥ 2 distinct names; got {self.labels!r}")
        if not isinstance(self.hints, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.hints.items()
        ):
            raise ValueError(f'{where}: hints must be a table of label = "description"')
        object.__setattr__(self, "hints", dict(self.hints))
        _check_choice(self.annotator, f"{where}: annotator", _MODALITY_ANNOTATORS[self.modality])
        _check_choice(self.features, f"{where}: features", TEXT_FEATURES)
        _check_positive_int(self.image_size, f"{where}: image_size", minimum=2)
        if self.max_items is not None:
            _check_positive_int(self.max_items, f"{where}: max_items", minimum=20)
        _check_positive_int(self.shots, f"{where}: shots")
        _check_fraction(self.test_fraction, f"{where}: test_fraction")

    @property
    def modality(self) -> str:
        """``text`` or ``image``."""
        return "image" if self.kind == "digits" or self.image_column is not None else "text"


@dataclass(frozen=True)
class TrainConfig:
    """The downstream model: multinomial logistic regression on standardized features, trained
    full-batch with Adam on the ACT loss plus (weight_decay / 2) · ‖W‖².

    ``stabilizer`` keeps the ACT loss bounded below (reviewed items with π < 1 whose labels
    disagree have negative machine weights): ``none`` (the raw loss, λ = 1), ``clip`` (each
    item's corrected loss clipped at 0), ``power`` (λ = ``power_lambda`` < 1 on the machine
    terms), ``early_stop`` (keep the epoch with the lowest ACT-weighted loss on a held-out
    ``val_fraction`` of the pool, checked every ``eval_every`` epochs).
    """

    epochs: int = 200
    learning_rate: float = 0.05
    weight_decay: float = 1e-3
    stabilizer: str = "clip"
    power_lambda: float = 0.5
    val_fraction: float = 0.2
    eval_every: int = 10

    def __post_init__(self) -> None:
        _check_positive_int(self.epochs, "train.epochs")
        _check_positive(self.learning_rate, "train.learning_rate")
        _check_positive(self.weight_decay, "train.weight_decay", allow_zero=True)
        _check_choice(self.stabilizer, "train.stabilizer", STABILIZERS)
        check_real(self.power_lambda, "train.power_lambda", low=0, high=1, closed="both")
        _check_fraction(self.val_fraction, "train.val_fraction")
        _check_positive_int(self.eval_every, "train.eval_every")


@dataclass(frozen=True)
class AblationConfig:
    """Collapse handling measured side by side: each stabilizer on the same review draws."""

    critic: str = "oof"
    methods: tuple[str, ...] = ("normalized", "ours_thresholded", "uniform")
    budgets: tuple[float, ...] = (0.05, 0.1)
    stabilizers: tuple[str, ...] = STABILIZERS

    def __post_init__(self) -> None:
        _check_choice(self.critic, "ablation.critic", CRITICS)
        _check_choices(self.methods, "ablation.methods", METHODS[len(BASELINES) :])
        _check_choices(self.stabilizers, "ablation.stabilizers", STABILIZERS)
        if not self.budgets:
            raise ValueError("ablation.budgets must not be empty")
        for b in self.budgets:
            _check_fraction(b, "each of ablation.budgets")


@dataclass(frozen=True)
class EndpointConfig:
    """The backend settings for ``endpoint`` annotators and critics.

    ``settings_file``: a backend TOML config (as for ``ls-act serve``); ``overrides``: dotted
    settings (``{"annotator.model": "gpt-4o"}``). The environment is not read here: the entry
    point that wants ``OPENAI_*`` / ``ACT_*`` variables builds ``Settings`` itself and passes them
    to ``run_benchmark(..., settings=...)``.
    """

    settings_file: Path | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchConfig:
    """A whole run. See ``benchmarks/act_bench.toml`` for the default.

    ``floor`` is ρ, the budget share spent on uniform review by the ``ours_*`` methods
    (π_i ≥ ρB/N); ``ours_rounds`` spends the budget in ``rounds`` rounds of B/K with the rule
    ``rounds_rule`` and its own floor ``rounds_floor`` (default ``act_math.DEFAULT_FLOOR``, the
    floor of ``ls-act review``) in each round, and the kNN critic counts a reviewed neighbour's
    human label ``rounds_human_weight`` times a machine label; the per-row λ methods
    (``ours_soft``, ``ours_rounds_soft`` and their ``_raw`` forms) use λ_i = (1 − p_i)^k,
    k = ``soft_power`` (1 by default); ``ours_rounds_model`` λ_i = (q_i (1 − p_i))^k with
    q_i from ``model_folds``-fold cross-fitted downstream models refined over
    ``model_iterations``, k = ``model_power`` (``model_critic.model_lambda``);
    ``ours_audit*`` use ``rounds_floor`` in the last round only; ``beta`` the
    exponential rule's slope; ``primary_critic`` the critic of the cross-data-set summary; the
    verdict asks for a gap to full human ≤ ``target_gap`` points at a human budget
    ≤ ``target_budget`` with a deployable (non-oracle) critic.
    """

    datasets: tuple[DatasetConfig, ...]
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    budgets: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    methods: tuple[str, ...] = METHODS
    critics: tuple[str, ...] = ("random", "knn", "oof", "oracle")
    primary_critic: str = "oof"
    floor: float = 0.1
    rounds: int = 4
    rounds_rule: str = "thresholded"
    rounds_floor: float = DEFAULT_FLOOR
    rounds_human_weight: float = 3.0
    soft_power: float = 1.0
    model_folds: int = 5
    model_iterations: int = 2
    model_power: float = 4.0
    beta: float = 10.0
    oof_folds: int = 5
    knn_k: int = 10
    target_gap: float = 1.0
    target_budget: float = 0.2
    train: TrainConfig = field(default_factory=TrainConfig)
    ablation: AblationConfig | None = field(default_factory=AblationConfig)
    endpoint: EndpointConfig | None = None
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("datasets must not be empty")
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset names must be unique; got {names!r}")
        if not self.seeds or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds
        ):
            raise ValueError(f"seeds must be a non-empty list of ints ≥ 0; got {self.seeds!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must not repeat; got {list(self.seeds)!r}")
        if not self.budgets:
            raise ValueError("budgets must not be empty")
        for b in self.budgets:
            _check_fraction(b, "each of budgets")
        _check_choices(self.methods, "methods", METHODS)
        _check_choices(self.critics, "critics", CRITICS)
        _check_choice(self.primary_critic, "primary_critic", self.critics)
        check_real(self.floor, "floor", low=0, high=1, closed="left")
        _check_positive_int(self.rounds, "rounds")
        _check_choice(self.rounds_rule, "rounds_rule", ROUND_RULES)
        check_real(self.rounds_floor, "rounds_floor", low=0, high=1, closed="left")
        _check_positive(self.rounds_human_weight, "rounds_human_weight")
        _check_positive(self.soft_power, "soft_power")
        _check_positive_int(self.model_iterations, "model_iterations")
        _check_positive_int(self.model_folds, "model_folds", minimum=self.model_iterations + 1)
        _check_positive(self.model_power, "model_power")
        _check_positive(self.beta, "beta")
        _check_positive_int(self.oof_folds, "oof_folds", minimum=2)
        _check_positive_int(self.knn_k, "knn_k")
        _check_positive(self.target_gap, "target_gap", allow_zero=True)
        _check_fraction(self.target_budget, "target_budget")
        if self.ablation is not None and self.ablation.critic not in self.critics:
            raise ValueError(
                f"ablation.critic must be one of the critics {list(self.critics)}; "
                f"got {self.ablation.critic!r}"
            )
        if "endpoint" in self.critics and not any(d.annotator == "endpoint" for d in self.datasets):
            raise ValueError(
                "the 'endpoint' critic judges the endpoint annotator's labels: give at least "
                "one dataset annotator = 'endpoint'"
            )

    @property
    def uses_endpoint(self) -> bool:
        """Whether some data set or critic needs the backend settings (an LLM or local model)."""
        return "endpoint" in self.critics or any(d.annotator == "endpoint" for d in self.datasets)

    def critics_for(self, dataset: DatasetConfig) -> tuple[str, ...]:
        """The critics that apply to a data set (``endpoint`` only with the endpoint annotator)."""
        return tuple(c for c in self.critics if c != "endpoint" or dataset.annotator == "endpoint")


# --------------------------------------------------------------------------------------------
# Loading


def _known(cls: type, data: Mapping[str, Any], where: str) -> None:
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _path(value: Any, base: Path | None, name: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, Path)):
        raise ValueError(f"{name} must be a path string; got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() or base is None else base / path


def _tuple(value: Any, name: str) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list; got {value!r}")
    return tuple(value)


def config_from_dict(data: Mapping[str, Any], *, base_dir: Path | None = None) -> BenchConfig:
    """A :class:`BenchConfig` from parsed TOML (or any mapping of the same shape).

    ``base_dir`` resolves relative paths (``cache_dir``, dataset ``path``, endpoint
    ``settings_file``); unknown keys are an error, missing keys take the defaults.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"the benchmark config must be a table; got {data!r:.100}")
    _known(BenchConfig, data, "benchmark config")
    top: dict[str, Any] = dict(data)
    raw_datasets = top.pop("datasets", None)
    if not isinstance(raw_datasets, list) or not raw_datasets:
        raise ValueError("the benchmark config needs at least one [[datasets]] table")
    datasets = []
    for i, raw in enumerate(raw_datasets):
        if not isinstance(raw, Mapping):
            raise ValueError(f"datasets[{i}] must be a table; got {raw!r:.100}")
        _known(DatasetConfig, raw, f"datasets[{i}]")
        entry = dict(raw)
        entry["path"] = _path(entry.get("path"), base_dir, f"datasets[{i}].path")
        if "labels" in entry:
            entry["labels"] = _tuple(entry["labels"], f"datasets[{i}].labels")
        try:
            datasets.append(DatasetConfig(**entry))
        except TypeError as exc:
            raise ValueError(f"datasets[{i}]: {exc}") from None
    kwargs: dict[str, Any] = {"datasets": tuple(datasets)}
    for key in ("seeds", "budgets", "methods", "critics"):
        if key in top:
            kwargs[key] = _tuple(top.pop(key), key)
    if "train" in top:
        raw = top.pop("train")
        if not isinstance(raw, Mapping):
            raise ValueError(f"train must be a table; got {raw!r:.100}")
        _known(TrainConfig, raw, "train")
        kwargs["train"] = TrainConfig(**raw)
    if "ablation" in top:
        raw = top.pop("ablation")
        if raw is False or raw == {}:
            kwargs["ablation"] = None
        elif isinstance(raw, Mapping):
            _known(AblationConfig, raw, "ablation")
            entry = dict(raw)
            for key in ("methods", "budgets", "stabilizers"):
                if key in entry:
                    entry[key] = _tuple(entry[key], f"ablation.{key}")
            kwargs["ablation"] = AblationConfig(**entry)
        else:
            raise ValueError(f"ablation must be a table or false; got {raw!r:.100}")
    if "endpoint" in top:
        raw = top.pop("endpoint")
        if not isinstance(raw, Mapping):
            raise ValueError(f"endpoint must be a table; got {raw!r:.100}")
        _known(EndpointConfig, raw, "endpoint")
        overrides = raw.get("overrides", {})
        if not isinstance(overrides, Mapping):
            raise ValueError(f"endpoint.overrides must be a table; got {overrides!r:.100}")
        kwargs["endpoint"] = EndpointConfig(
            settings_file=_path(raw.get("settings_file"), base_dir, "endpoint.settings_file"),
            overrides=dict(overrides),
        )
    if "cache_dir" in top:
        kwargs["cache_dir"] = _path(top.pop("cache_dir"), base_dir, "cache_dir")
    kwargs.update(top)
    return BenchConfig(**kwargs)


def load_config(path: str | Path) -> BenchConfig:
    """Read a benchmark config from a TOML file (see ``benchmarks/act_bench.toml``)."""
    file = Path(path)
    try:
        with open(file, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"benchmark config {file} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"benchmark config {file} is not valid TOML: {exc}") from None
    try:
        return config_from_dict(data, base_dir=file.resolve().parent)
    except ValueError as exc:
        raise ValueError(f"benchmark config {file}: {exc}") from None
