"""The ACT benchmark harness (act_plugin.bench): pipeline, methods, critics, endpoint path."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from act_backend.testing.openai_server import ChatRequest, OpenAIStubServer
from act_plugin.act_math import auroc
from act_plugin.bench import (
    METHODS,
    BenchConfig,
    DatasetConfig,
    TrainConfig,
    config_from_dict,
    format_result,
    load_config,
    run_benchmark,
)
from act_plugin.bench.critics import oracle_suspicion, random_suspicion
from act_plugin.bench.data import digit_png_data_url
from act_plugin.bench.figure import FIGURE_METHODS, gap_figure
from act_plugin.bench.methods import review_plan
from act_plugin.bench.report import METHOD_NAMES
from act_plugin.bench.run import ENDPOINT_STAGE
from act_plugin.bench.train import fit_act_model
from act_plugin.training import expand_rows
from tests.support.llm import is_critic

REPO = Path(__file__).resolve().parents[2]
ACT_METHODS = [m for m in METHODS if m not in ("full_human", "full_machine")]


def _labels(n: int, n_classes: int, error_rate: float, seed: int) -> tuple[np.ndarray, ...]:
    """(truth, machine) with exactly round(error_rate · n) machine labels wrong."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(n_classes, size=n)
    machine = truth.copy()
    wrong = rng.choice(n, size=round(error_rate * n), replace=False)
    machine[wrong] = (truth[wrong] + rng.integers(1, n_classes, size=wrong.size)) % n_classes
    return truth, machine


# --------------------------------------------------------------------------------------------
# End to end


def test_tiny_config_runs_end_to_end_and_prints_every_table(tmp_path: Path) -> None:
    config = config_from_dict(
        {
            "seeds": [0, 1],
            "budgets": [0.2],
            "cache_dir": str(tmp_path / "cache"),
            "train": {"epochs": 30},
            "ablation": {"critic": "oof", "methods": ["normalized"], "budgets": [0.2]},
            "datasets": [
                {"name": "deb", "kind": "debian", "annotator": "zero_shot", "max_items": 60},
                {
                    "name": "dig",
                    "kind": "digits",
                    "annotator": "nearest_centroid",
                    "max_items": 100,
                },
            ],
        }
    )
    messages: list[str] = []
    result = run_benchmark(config, on_progress=messages.append)
    text = format_result(result)

    assert [ds.name for ds in result.datasets] == ["deb", "dig"]
    for ds in result.datasets:
        assert ds.n_pool + ds.n_test == ds.n_items
        assert len(ds.annotator_accuracy) == 2 and all(0 < a < 1 for a in ds.annotator_accuracy)
        # 2 baselines + 7 ACT-style methods × 4 critics × 1 budget, per seed
        main = [r for r in ds.runs if not r.ablation]
        assert len(main) == 2 * (2 + len(ACT_METHODS) * 4)
        assert len([r for r in ds.runs if r.ablation]) == 2 * 4  # 4 stabilizers
        assert all(0.0 <= r.accuracy <= 1.0 for r in ds.runs)
        # the λ methods train on their base method's draws
        for method, base in (
            ("ours_rounds_model", "ours_rounds_last"),
            ("ours_soft", "ours_thresholded"),
        ):
            shares = [
                [(r.seed, r.critic, r.human_share) for r in main if r.method == m]
                for m in (method, base)
            ]
            assert shares[0] == shares[1] and len(shares[0]) == 2 * 4
        oracle = [c.auroc for c in ds.critics if c.critic == "oracle"]
        assert oracle == [1.0, 1.0]
        for stage in ("features", "annotate", "criticize: oof", "review", "train", "evaluate"):
            assert stage in ds.timings
    for heading in ("## deb (text", "## dig (image", "## Paper-style summary", "## Verdict"):
        assert heading in text
    for name in METHOD_NAMES.values():
        assert f"| {name} |" in text
    assert "| oof |" in text and "recall@10%" in text
    assert "## Wall time per stage" in text
    assert re.search(r"\*\*(MET|NOT MET)\*\*", text)
    assert any("seed 1" in m for m in messages)
    # The embeddings were cached: a second load does not need the model.
    assert list((tmp_path / "cache").glob("minilm-*.npz"))

    # The figure: gap to full human by budget, mean over seeds with its standard error
    png = tmp_path / "gaps.png"
    series = gap_figure(result, png, critic="knn")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {name for name, _ in series} == {"deb", "dig"}
    assert {m for _, m in series} == set(FIGURE_METHODS)
    for ds in result.datasets:
        human = {r.seed: r.accuracy for r in ds.runs if r.method == "full_human"}
        model = [r for r in ds.runs if (r.method, r.critic) == ("ours_rounds_model", "knn")]
        gaps = [100 * (r.accuracy - human[r.seed]) for r in model if not r.ablation]
        ((budget, mean, se),) = series[(ds.name, "ours_rounds_model")]
        assert budget == 0.2 and mean == pytest.approx(np.mean(gaps))
        assert se == pytest.approx(np.std(gaps, ddof=1) / np.sqrt(2))


def test_default_config_loads_and_bad_configs_are_refused(tmp_path: Path) -> None:
    config = load_config(REPO / "benchmarks" / "act_bench.toml")
    assert len(config.seeds) >= 5
    assert config.budgets == (0.05, 0.1, 0.2, 0.3)
    assert set(config.methods) == set(METHODS)
    assert {"random", "knn", "oof", "oracle"} <= set(config.critics)
    assert [d.kind for d in config.datasets] == ["debian", "digits"]

    base = {"datasets": [{"name": "d", "kind": "digits", "annotator": "nearest_centroid"}]}
    with pytest.raises(ValueError, match="unknown key"):
        config_from_dict({**base, "seedz": [1]})
    with pytest.raises(ValueError, match=r"budgets must be a number in \(0, 1\); got 20"):
        config_from_dict({**base, "budgets": [20]})
    with pytest.raises(ValueError, match="annotator must be one of"):
        DatasetConfig(name="d", kind="digits", annotator="zero_shot")
    with pytest.raises(ValueError, match="endpoint"):
        BenchConfig(
            datasets=(DatasetConfig("d", "digits", "nearest_centroid"),), critics=("endpoint",)
        )


# --------------------------------------------------------------------------------------------
# Methods and weights


@pytest.mark.parametrize("method", ["thresholded", "normalized", "ours_thresholded"])
def test_oracle_critic_at_budget_above_error_rate_recovers_full_human_labels(method: str) -> None:
    truth, machine = _labels(200, 5, 0.15, seed=1)
    plan = review_plan(
        method,
        oracle_suspicion(machine, truth),
        0.2,
        n=200,
        floor=0.1,
        beta=10.0,
        seed=np.random.SeedSequence(3),
    )
    human = [int(t) if d else None for t, d in zip(truth, plan.delta, strict=True)]
    rows = expand_rows(list(range(200)), machine.tolist(), human, plan.delta, plan.pi)
    # Net weight of each (item, label): 1 on the true label, 0 on every other label.
    net: dict[tuple[int, int], float] = {}
    for item, label, weight in rows:
        net[(item, label)] = net.get((item, label), 0.0) + weight
    for (item, label), weight in net.items():
        assert weight == pytest.approx(1.0 if label == truth[item] else 0.0, abs=1e-9)
    assert {i for (i, label), w in net.items() if abs(w - 1) < 1e-9} == set(range(200))
    if method == "thresholded":  # π ∈ {0, 1}: literally the full-human rows
        assert sorted(rows) == [(i, int(truth[i]), 1.0) for i in range(200)]


def test_oracle_thresholded_trains_the_full_human_model_and_not_below_the_error_rate() -> None:
    truth, machine = _labels(150, 4, 0.2, seed=2)
    x = np.random.default_rng(0).normal(size=(150, 6)) + truth[:, None]
    cfg = TrainConfig(epochs=60)
    eps = oracle_suspicion(machine, truth)

    def weight(method: str, budget: float | None) -> np.ndarray:
        plan = review_plan(method, eps, budget, n=150, floor=0.1, beta=10.0, seed=None)
        return fit_act_model(x, machine, truth, plan, n_classes=4, config=cfg).model.weight

    human = weight("full_human", None)
    np.testing.assert_allclose(weight("thresholded", 0.25), human, atol=1e-4)
    assert np.abs(weight("thresholded", 0.1) - human).max() > 1e-2  # half the errors kept


def test_top_b_without_correction_gives_human_rows_on_the_b_most_suspicious_only() -> None:
    truth, machine = _labels(50, 3, 0.3, seed=4)
    eps = np.random.default_rng(5).random(50)
    plan = review_plan("top_b", eps, 0.3, n=50, floor=0.1, beta=10.0, seed=None)
    top = set(np.argsort(-eps)[:15].tolist())  # round(0.3 · 50) = 15 most suspicious
    human = [int(t) if d else None for t, d in zip(truth, plan.delta, strict=True)]
    rows = expand_rows(list(range(50)), machine.tolist(), human, plan.delta, plan.pi)
    expected = [(i, int(truth[i] if i in top else machine[i]), 1.0) for i in range(50)]
    assert rows == expected
    assert plan.human_share == pytest.approx(0.3)
    # The paper's thresholded rule (π ∈ {0, 1}) reviews the same items: the tables must agree.
    same = review_plan("thresholded", eps, 0.3, n=50, floor=0.1, beta=10.0, seed=None)
    assert same.delta.tolist() == plan.delta.tolist()


def test_per_item_act_terms_average_to_act_loss_and_clip_bounds_them() -> None:
    import torch

    from act_plugin.training import ACTLoss

    logits = torch.randn(8, 3) * 3
    machine = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    human = torch.tensor([1, 1, -1, 2, -1, 2, 0, 0])
    delta = torch.tensor([1, 1, 0, 1, 0, 1, 1, 1], dtype=torch.bool)
    pi = torch.tensor([0.1, 0.5, 0.2, 0.05, 0.3, 1.0, 0.4, 0.2])
    for lam in (1.0, 0.5):
        terms = ACTLoss(lam=lam, reduction="none")(logits, machine, human, delta, pi)
        expected = ACTLoss(lam=lam)(logits, machine, human, delta, pi)
        assert float(terms.mean()) == pytest.approx(float(expected), rel=1e-6)
    far = torch.zeros(8, 3)
    far[torch.arange(8), torch.where(delta & (human >= 0), human, machine)] = 50.0
    raw = ACTLoss(reduction="none")(far, machine, human, delta, pi)
    assert float(raw.min()) < -100  # the unbounded direction: human label fitted, π small
    assert float(raw.clamp(min=0).min()) == 0.0


# --------------------------------------------------------------------------------------------
# Critics


def test_random_critic_auroc_is_chance_and_oracle_is_perfect() -> None:
    truth, machine = _labels(400, 6, 0.2, seed=6)
    wrong = machine != truth
    scores = [
        auroc(random_suspicion(400, seed=np.random.SeedSequence([s, 9])), wrong) for s in range(40)
    ]
    assert abs(float(np.mean(scores)) - 0.5) < 0.02
    assert float(np.std(scores)) > 0.005  # really random, not a constant 0.5
    assert auroc(oracle_suspicion(machine, truth), wrong) == 1.0


# --------------------------------------------------------------------------------------------
# Endpoint (an LLM annotator + critic through the backend's predictor)


def _digit_urls(max_items: int) -> dict[str, int]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.zeros(digits.target.size, dtype=bool)
    for c in range(10):
        keep[np.flatnonzero(digits.target == c)[: max_items // 10]] = True
    return {
        digit_png_data_url(img): int(t)
        for img, t in zip(digits.images[keep], digits.target[keep], strict=True)
    }


def test_endpoint_annotator_and_critic_run_through_the_stub_server(tmp_path: Path) -> None:
    truth_of = _digit_urls(60)
    broken = next(iter(truth_of))  # the endpoint answers this one with a label outside the set

    def responder(req: ChatRequest) -> str:
        assert len(req.images) == 1 and req.images[0].startswith("data:image/png;base64,")
        truth = truth_of[req.images[0]]
        props = (req.json_schema or {}).get("properties", {})
        if is_critic(req):
            chosen = re.search(r"The annotator chose: (\S+)", req.text)
            assert chosen is not None
            p = 0.9 if chosen.group(1) != str(truth) else 0.1
            answer: dict[str, object] = {"probability_wrong": p, "rationale": "checked"}
            if "reasoning" in props or '"reasoning"' in req.text:
                answer["reasoning"] = "looked at the strokes"
            return json.dumps(answer)
        label = "eleven" if req.images[0] == broken else ("8" if truth == 3 else str(truth))
        answer = {"reasoning": "strokes"} if "reasoning" in props else {}
        answer["label"] = label
        return json.dumps(answer)

    with OpenAIStubServer(responder=responder) as server:
        role = {"base_url": server.base_url, "api_key": "sk-test", "max_retries": 0}
        config = config_from_dict(
            {
                "seeds": [0, 1],
                "budgets": [0.2],
                "critics": ["random", "oracle", "endpoint"],
                "primary_critic": "endpoint",
                "train": {"epochs": 20},
                "ablation": False,
                "datasets": [
                    {"name": "dig", "kind": "digits", "annotator": "endpoint", "max_items": 60}
                ],
                "endpoint": {
                    "overrides": {
                        **{f"annotator.{k}": v for k, v in role.items()},
                        **{f"critic.{k}": v for k, v in role.items()},
                        "cache_dir": str(tmp_path / "llm-cache"),
                    }
                },
            }
        )
        result = run_benchmark(config)
        calls = server.call_count

    (ds,) = result.datasets
    usage = ds.endpoint
    assert usage is not None
    assert usage.items == 60 and usage.failed == {"answer_out_of_set": 1}
    assert ds.n_items == 59  # the failed item is dropped
    assert calls == 60 + 59  # every item annotated; the 59 with a valid label criticized
    # 2 calls for each task that succeeded, and the failed task's annotator call counts too.
    assert usage.calls == 2 * 59 + 1 and usage.calls_per_item == pytest.approx(119 / 60)
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    # Threes are labelled 8: accuracy 1 − (threes in the pool) / pool, the critic catches them.
    assert all(math.isclose(a, 1 - 4 / ds.n_pool) for a in ds.annotator_accuracy)
    assert [c.auroc for c in ds.critics if c.critic == "endpoint"] == [1.0, 1.0]
    text = format_result(result)
    assert "## LLM use (endpoint annotator + critic)" in text
    rate = usage.items / ds.timings[ENDPOINT_STAGE]  # items per second of the LLM stage
    assert f"| {usage.calls_per_item:.2f} |" in text and f"| {rate:.2f} |" in text
    assert "critic `endpoint`" in text
