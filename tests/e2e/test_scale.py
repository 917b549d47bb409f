"""`ls-act scale` against a real Label Studio 1.23.2 and a local Ray instance: annotate 200 items
from Parquet, import only the drawn rows (sharded, in chunks, with predictions and review
records), review some through the SDK, and sync them back into the weighted training set."""

from __future__ import annotations

import json
import math
import shutil
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from act_backend.records import DRAW_FIELDS, review_record
from act_backend.testing.openai_server import OpenAIStubServer
from act_plugin.act_math import cross_fitted_probabilities, draw_review, inclusion_probabilities
from act_plugin.cli import app
from act_plugin.labelstudio import gateway
from act_plugin.scale.annotate import ANNOTATIONS
from act_plugin.scale.projects import ITEM_KEY
from act_plugin.scale.review import (
    ImportResult,
    draw_dataset,
    draw_params,
    import_sample,
    shard_title,
)
from act_plugin.scale.store import Store
from tests.support.configs import SCRIPT, TEXT
from tests.support.faulty_proxy import FaultyProxy
from tests.support.llm import ScriptedLLM
from tests.support.projects import choice, client_at, read_tasks
from tests.support.ray_local import ray_instance  # noqa: F401 - the fixture

pytest.importorskip("ray")
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ray_instance")]

N_ITEMS = 200
SHARD = 15
LAM = 0.6
KEYS = list(SCRIPT)
TEXTS = [f"{KEYS[i % len(KEYS)]} number {i};" for i in range(N_ITEMS)]
FLIP = {"positive": "negative", "negative": "neutral", "neutral": "positive"}


def scripted_llm() -> OpenAIStubServer:
    responder = ScriptedLLM(
        labels={k: v[0] for k, v in SCRIPT.items()}, suspicion={k: v[1] for k, v in SCRIPT.items()}
    )
    return OpenAIStubServer(responder=responder)


@pytest.fixture
def llm():
    with scripted_llm() as server:
        yield server


def write_config(directory: Path, base_url: str) -> Path:
    """A TOML config: both roles on the stub LLM, no retries, a private answer cache."""
    path = directory / "act.toml"
    lines = [f'cache_dir = "{directory / "cache"}"']
    for role in ("annotator", "critic"):
        lines += [f"[{role}]", f'base_url = "{base_url}"', 'api_key = "sk-test"']
        lines += ["max_retries = 0"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def config(llm, tmp_path):
    return write_config(tmp_path, llm.base_url)


def scale(*args: str):
    result = CliRunner().invoke(app, ["scale", *args])
    trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
    assert result.exit_code == 0, result.output + trace
    return result


def parquet_rows(store: Store, stage: str) -> list[dict]:
    return [r for _, t in store.iter_parts(stage) for r in t.to_pylist()]


def annotate(directory: Path, config: Path) -> str:
    """The N_ITEMS items annotated into ``directory``/run, blocks of 50; the run's URL."""
    data = directory / "items.parquet"
    pq.write_table(pa.table({"id": [5000 + i for i in range(N_ITEMS)], "text": TEXTS}), data)
    (directory / "config.xml").write_text(TEXT)
    out = str(directory / "run")
    scale("annotate", "-i", str(data), "-o", out, "--label-config", str(directory / "config.xml"),
          "--block-size", "50", "--actor-cpus", "0.5", "--config", str(config))  # fmt: skip
    return out


def test_review_imports_only_the_drawn_rows_and_sync_joins_the_reviews(
    config, label_studio, ls_client, tmp_path
):
    ls = ("--label-studio-url", label_studio.url, "--api-key", label_studio.token)
    out = annotate(tmp_path, config)
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

        # --soft-lambda: λ_i = λ(1 − p̂_i)^k, p̂ cross-fitted over the rows of all 4 blocks
        for j, row in enumerate(drawn[3:15]):
            label = machine[row]["machine_label"][0]
            human[row] = FLIP[label] if j % 2 else label
            ls_client.annotations.create(id=tasks[row]["id"], result=choice(human[row]))
        soft_out = tmp_path / "soft"
        scale("sync", "-o", out, "--out", str(soft_out), "--lambda", str(LAM),
              "--soft-lambda", "2", "--formats", "parquet", *ls)  # fmt: skip
        soft = [r for p in sorted((soft_out / "parquet").glob("*.parquet"))
                for r in pq.read_table(p).to_pylist()]  # fmt: skip
        d = np.array([float(i in human) for i in range(N_ITEMS)])
        wrong = np.array([i in human and human[i] != machine[i]["machine_label"][0]
                          for i in range(N_ITEMS)])  # fmt: skip
        p_hat = cross_fitted_probabilities(eps, wrong, d, pi)
        lam_i = LAM * (1 - p_hat) ** 2
        kept = np.where(delta & (d == 0), 0.0, 1.0)
        np.testing.assert_allclose([r["weight_human"] for r in soft], kept * d / pi)
        np.testing.assert_allclose(
            [r["weight_machine"] for r in soft], kept * lam_i * (1 - d / pi), atol=1e-12
        )
        per_block = np.concatenate([
            cross_fitted_probabilities(eps[b:b + 50], wrong[b:b + 50], d[b:b + 50], pi[b:b + 50])
            for b in range(0, N_ITEMS, 50)
        ])  # fmt: skip
        assert np.abs(per_block - p_hat).max() > 1e-3  # calibrated over every block, not each
        assert wrong.sum() >= 6 and np.all(lam_i < LAM)
    finally:
        for project_id in projects.values():
            ls_client.projects.delete(id=project_id)


# --------------------------------------------------------------------------------------------
# Imports whose answer is lost: never a task twice, never a second project
# --------------------------------------------------------------------------------------------

CHUNK = 4


@pytest.fixture(scope="module")
def drawn_run(tmp_path_factory, ray_instance) -> Path:  # noqa: F811 - the fixture
    """The items annotated and drawn (budget 40, seed 7), nothing imported: copied per test."""
    directory = tmp_path_factory.mktemp("scale-drawn")
    with scripted_llm() as server:
        out = annotate(directory, write_config(directory, server.base_url))
    draw_dataset(Store(out), draw_params(40, rule="exponential", floor=0.2, seed=7))
    return Path(out)


@pytest.fixture
def fresh_run(drawn_run, tmp_path, monkeypatch) -> Store:
    monkeypatch.setattr(gateway, "RETRY_DELAYS", (0.05, 0.1, 0.2))
    shutil.copytree(drawn_run, tmp_path / "run")
    return Store(str(tmp_path / "run"))


def drawn_rows(store: Store) -> list[int]:
    return [r["row"] for r in parquet_rows(store, "review") if r["delta"] == 1]


def imports(proxy: FaultyProxy) -> list[str]:
    """The task imports the proxy received (not the prediction imports)."""
    return [line for line in proxy.requests if line.startswith("POST") and "/import?" in line]


def held_rows(ls_client, projects: dict[int, int]) -> list[int]:
    """Every task's row, over the shard projects in order (a row twice shows twice)."""
    tasks = [t for p in projects.values() for t in read_tasks(ls_client, p).values()]
    return sorted(t["meta"][ITEM_KEY]["row"] for t in tasks)


def chunks(n_drawn: int) -> int:
    """Import requests for ``n_drawn`` rows: shards of SHARD rows, CHUNK rows per request."""
    full, rest = divmod(n_drawn, SHARD)
    return full * math.ceil(SHARD / CHUNK) + math.ceil(rest / CHUNK)


class DropsFirstImport(FaultyProxy):
    """Closes the connection of the first task import before Label Studio sees it."""

    dropped = False

    def _should_fail(self, line: str) -> bool:
        fails = super()._should_fail(line)
        if line.startswith("POST") and "/import?" in line and not self.dropped:
            self.dropped = True
            return True
        return fails


@pytest.fixture
def title(ls_client, tmp_path) -> Iterator[str]:
    """A title prefix of this test's own; its projects are deleted after the test."""
    prefix = f"scale-{tmp_path.name[-16:]}"
    yield prefix
    for project in ls_client.projects.list():
        if project.title.startswith(prefix):
            ls_client.projects.delete(id=project.id)


def import_through(proxy: FaultyProxy, token: str, store: Store, title: str) -> ImportResult:
    with proxy:
        client = client_at(proxy.url, token)
        return import_sample(client, store, title=title, shard_size=SHARD, chunk_size=CHUNK)


def test_an_import_whose_answer_is_lost_is_read_back_not_sent_again(
    fresh_run, label_studio, ls_client, title
):
    """The chunk is imported but its answer never comes: a blind retry would import it twice."""
    drawn = drawn_rows(fresh_run)
    proxy = FaultyProxy(label_studio.url, lose_answer_to="/import?")
    result = import_through(proxy, label_studio.token, fresh_run, title)
    assert len(proxy.lost) == 1 and proxy.lost == imports(proxy)[:1]
    assert len(imports(proxy)) == chunks(len(drawn))  # the lost one was not sent again
    assert (result.imported, result.skipped, result.duplicates_removed) == (len(drawn), 0, 0)
    assert held_rows(ls_client, result.projects) == drawn  # every drawn row once


def test_an_import_that_never_arrived_is_sent_again(fresh_run, label_studio, ls_client, title):
    drawn = drawn_rows(fresh_run)
    proxy = DropsFirstImport(label_studio.url, mode="close")
    result = import_through(proxy, label_studio.token, fresh_run, title)
    assert len(imports(proxy)) == chunks(len(drawn)) + 1  # the dropped one, once more
    assert (result.imported, result.duplicates_removed) == (len(drawn), 0)
    assert held_rows(ls_client, result.projects) == drawn


def test_a_project_whose_creation_answer_is_lost_is_found_not_made_twice(
    fresh_run, label_studio, ls_client, title
):
    drawn = drawn_rows(fresh_run)
    proxy = FaultyProxy(label_studio.url, lose_answer_to="POST /api/projects/")
    result = import_through(proxy, label_studio.token, fresh_run, title)
    assert proxy.lost == ["POST /api/projects/"]
    mine = [p for p in ls_client.projects.list() if p.title.startswith(title)]
    first = [p.id for p in mine if p.title == shard_title(title, result.draw["draw_id"], 0)]
    assert first == [result.projects[0]]  # one project for the shard, the one recorded
    assert len(mine) == len(result.projects) == math.ceil(len(drawn) / SHARD)
    assert held_rows(ls_client, result.projects) == drawn
