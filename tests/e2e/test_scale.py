"""`ls-act scale` against a real Label Studio 1.23.2 and a local Ray instance: annotate 200 items
from Parquet, import only the drawn rows (sharded, in chunks, with predictions and review
records), review some through the SDK, and sync them back into the weighted training set."""

from __future__ import annotations

import json
import math
import traceback

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from act_backend.records import DRAW_FIELDS, review_record
from act_backend.testing.openai_server import OpenAIStubServer
from act_plugin.act_math import draw_review, inclusion_probabilities
from act_plugin.cli import app
from act_plugin.scale.annotate import ANNOTATIONS
from act_plugin.scale.projects import ITEM_KEY
from act_plugin.scale.review import import_sample
from act_plugin.scale.store import Store
from tests.support.configs import SCRIPT, TEXT
from tests.support.llm import ScriptedLLM
from tests.support.projects import choice, read_tasks
from tests.support.ray_local import ray_instance  # noqa: F401 - the fixture

pytest.importorskip("ray")
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ray_instance")]

N_ITEMS = 200
SHARD = 15
LAM = 0.6
KEYS = list(SCRIPT)
TEXTS = [f"{KEYS[i % len(KEYS)]} number {i};" for i in range(N_ITEMS)]
FLIP = {"positive": "negative", "negative": "neutral", "neutral": "positive"}


@pytest.fixture
def llm():
    responder = ScriptedLLM(
        labels={k: v[0] for k, v in SCRIPT.items()}, suspicion={k: v[1] for k, v in SCRIPT.items()}
    )
    with OpenAIStubServer(responder=responder) as server:
        yield server


@pytest.fixture
def config(llm, tmp_path):
    """A TOML config: both roles on the stub LLM, no retries, a private answer cache."""
    path = tmp_path / "act.toml"
    lines = [f'cache_dir = "{tmp_path / "cache"}"']
    for role in ("annotator", "critic"):
        lines += [f"[{role}]", f'base_url = "{llm.base_url}"', 'api_key = "sk-test"']
        lines += ["max_retries = 0"]
    path.write_text("\n".join(lines) + "\n")
    return path


def scale(*args: str):
    result = CliRunner().invoke(app, ["scale", *args])
    trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
    assert result.exit_code == 0, result.output + trace
    return result


def parquet_rows(store: Store, stage: str) -> list[dict]:
    return [r for _, t in store.iter_parts(stage) for r in t.to_pylist()]


def test_review_imports_only_the_drawn_rows_and_sync_joins_the_reviews(
    config, label_studio, ls_client, tmp_path
):
    ls = ("--label-studio-url", label_studio.url, "--api-key", label_studio.token)
    data = tmp_path / "items.parquet"
    pq.write_table(pa.table({"id": [5000 + i for i in range(N_ITEMS)], "text": TEXTS}), data)
    (tmp_path / "config.xml").write_text(TEXT)
    out = str(tmp_path / "run")
    scale("annotate", "-i", str(data), "-o", out, "--label-config", str(tmp_path / "config.xml"),
          "--block-size", "50", "--actor-cpus", "0.5", "--config", str(config))  # fmt: skip
    title = f"scale-e2e-{tmp_path.name[-12:]}"
    scale("review", "-o", out, "--budget", "40", "--rule", "exponential", "--floor", "0.2",
          "--seed", "7", "--shard-size", str(SHARD), "--chunk-size", "4",
          "--title", title, *ls)  # fmt: skip

    store = Store(out)
    machine = {r["row"]: r for r in parquet_rows(store, ANNOTATIONS)}
    draw = store.read_json("review", "draw.json")
    # the draw, computed independently from the Parquet's suspicions
    eps = [machine[i]["suspicion"] for i in range(N_ITEMS)]
    pi = inclusion_probabilities(eps, 40, rule="exponential", floor=0.2)
    delta = draw_review(pi, seed=7)
    drawn = [i for i in range(N_ITEMS) if delta[i]]
    projects = {
        int(k): v for k, v in store.read_json("review", "projects.json")[draw["draw_id"]].items()
    }
    assert len(projects) == math.ceil(len(drawn) / SHARD) >= 2
    try:
        tasks = {}
        for shard, project_id in sorted(projects.items()):
            held = read_tasks(ls_client, project_id)
            rows = sorted(t["meta"][ITEM_KEY]["row"] for t in held.values())
            assert rows == drawn[shard * SHARD : (shard + 1) * SHARD]  # sharded in row order
            tasks.update({t["meta"][ITEM_KEY]["row"]: t for t in held.values()})
        fields = {k: draw[k] for k in DRAW_FIELDS}  # the run's draw record, as review writes it
        for row, task in tasks.items():
            assert task["data"] == {"text": TEXTS[row]}
            assert task["meta"]["act"] == review_record(
                fields, suspicion=eps[row], pi=pi[row], delta=True
            )
            (prediction,) = task["predictions"]
            assert prediction["model_version"] == machine[row]["model_version"]
            assert prediction["score"] == pytest.approx(1 - eps[row])
            regions = {r["from_name"]: r for r in prediction["result"]}
            assert regions["sentiment"]["value"]["choices"] == machine[row]["machine_label"]

        # an interrupted import (tasks missing) and a retried chunk (a task twice) are repaired
        last = projects[max(projects)]
        gone = sorted(t["id"] for t in read_tasks(ls_client, last).values())[-3:]
        for task_id in gone:
            ls_client.tasks.delete(id=task_id)
        twice = tasks[drawn[0]]
        ls_client.projects.import_tasks(
            id=projects[0],
            request=[{k: twice[k] for k in ("data", "meta")}],  # type: ignore[arg-type]
        )
        again = import_sample(ls_client, store, title=title, shard_size=SHARD, chunk_size=4)
        assert (again.imported, again.skipped, again.duplicates_removed) == (3, len(drawn) - 3, 1)
        counts = [len(read_tasks(ls_client, p)) for p in projects.values()]
        assert sum(counts) == len(drawn)
        rerun = scale("review", "-o", out, "--budget", "5", "--shard-size", str(SHARD),
                      "--title", title, *ls).output  # fmt: skip
        assert "stored draw kept" in rerun and f"0 / {len(drawn)}" in rerun
        tasks = {
            t["meta"][ITEM_KEY]["row"]: t
            for p in projects.values()
            for t in read_tasks(ls_client, p).values()
        }

        # humans review some drawn rows through the SDK
        agree, disagree, cancelled = drawn[:3]
        human = {agree: machine[agree]["machine_label"][0]}
        human[disagree] = FLIP[machine[disagree]["machine_label"][0]]
        for row, label in human.items():
            ls_client.annotations.create(id=tasks[row]["id"], result=choice(label))
        ls_client.annotations.create(id=tasks[cancelled]["id"], result=[], was_cancelled=True)

        scale("sync", "-o", out, "--lambda", str(LAM), "--formats", "jsonl,parquet,csv", *ls)

        rows = [r for p in sorted((tmp_path / "run" / "train" / "parquet").glob("*.parquet"))
                for r in pq.read_table(p).to_pylist()]  # fmt: skip
        jsonl = [json.loads(line) for p in sorted((tmp_path / "run" / "train" / "jsonl").glob("*"))
                 for line in p.read_text().splitlines()]  # fmt: skip
        assert [r["task_id"] for r in rows] == [5000 + i for i in range(N_ITEMS)]
        assert [r["task_id"] for r in jsonl] == [r["task_id"] for r in rows]
        for i, row in enumerate(rows):
            reviewed = i in human
            d = 1.0 if reviewed else 0.0
            assert row["data"] == {"text": TEXTS[i]}
            assert row["machine_label"] == machine[i]["machine_label"]
            assert row["human_label"] == ([human[i]] if reviewed else None)
            assert (row["reviewed"], row["in_sample"], row["pending"]) == (
                reviewed, bool(delta[i]), bool(delta[i]) and not reviewed,
            )  # fmt: skip
            assert row["pi"] == pytest.approx(pi[i]) and row["delta"] == int(d)
            # w_h = δ/π, w_m = λ(1 − δ/π); a drawn row not reviewed yet waits at 0 (ls-act sync)
            kept = 0.0 if delta[i] and not reviewed else 1.0
            assert row["weight_human"] == pytest.approx(kept * d / pi[i])
            assert row["weight_machine"] == pytest.approx(kept * LAM * (1 - d / pi[i]))
            assert row["suspicion"] == pytest.approx(eps[i])
            assert row["draw_id"] == draw["draw_id"]
            assert row["machine_correct"] == (
                (human[i] == machine[i]["machine_label"][0]) if reviewed else None
            )
    finally:
        for project_id in projects.values():
            ls_client.projects.delete(id=project_id)
