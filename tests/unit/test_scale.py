"""`act_plugin.scale` on a local Ray instance (2 CPUs) against the stub LLM: the annotate stage,
its input formats and its resume; the draw over the Parquet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from act_backend.labeling import parse_label_config
from act_backend.predictor import build_predictor
from act_backend.prompting import PromptBook
from act_backend.testing.openai_server import OpenAIStubServer
from act_plugin.act_math import draw_review, inclusion_probabilities
from act_plugin.scale.annotate import ANNOTATIONS, annotate_dataset
from act_plugin.scale.review import REVIEW, draw_dataset, draw_params
from act_plugin.scale.source import plan_blocks, read_block
from act_plugin.scale.store import Store, StoreError
from tests.support.backend import settings_for
from tests.support.configs import SCRIPT, TEXT
from tests.support.llm import ScriptedLLM
from tests.support.ray_local import ray_instance  # noqa: F401 - the fixture

pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("ray_instance")

N_ITEMS = 200
BLOCK = 64  # 4 blocks: 64, 64, 64, 8
KEYS = list(SCRIPT)
TEXTS = [f"{KEYS[i % len(KEYS)]} number {i};" for i in range(N_ITEMS)]
ODD = 7  # the annotator answers out of the label set for this row


@pytest.fixture
def llm():
    responder = ScriptedLLM(
        labels={TEXTS[ODD]: "sarcastic", **{k: v[0] for k, v in SCRIPT.items()}},
        suspicion={k: v[1] for k, v in SCRIPT.items()},
    )
    with OpenAIStubServer(responder=responder) as server:
        yield server


@pytest.fixture
def data(tmp_path):
    """The items as Parquet (ids 1000 + i, two files, small row groups)."""
    folder = tmp_path / "input"
    folder.mkdir()
    table = pa.table({"id": [1000 + i for i in range(N_ITEMS)], "text": TEXTS})
    pq.write_table(table.slice(0, 150), folder / "a.parquet", row_group_size=40)
    pq.write_table(table.slice(150), folder / "b.parquet", row_group_size=40)
    return folder


def stored_rows(store: Store) -> list[int]:
    return [r["row"] for _, t in store.iter_parts(REVIEW) for r in t.to_pylist()]


def rows_of(out) -> list[dict]:
    store = Store(str(out))
    return [r for _, t in store.iter_parts(ANNOTATIONS) for r in t.to_pylist()]


def test_the_same_rows_from_parquet_jsonl_and_a_hf_dataset(tmp_path, data):
    datasets = pytest.importorskip("datasets")
    table = pq.read_table(data)
    jsonl = tmp_path / "items.jsonl"
    lines = [json.dumps({"text": t}) for t in TEXTS]
    jsonl.write_text("\n".join(lines[:30]) + "\n\n" + "\n".join(lines[30:]) + "\n")
    hf_dir = tmp_path / "hf"
    datasets.Dataset(table.drop(["id"])).save_to_disk(str(hf_dir))

    def tasks(url: str, fmt: str, id_column: str | None) -> list[tuple[int, int, dict]]:
        blocks = plan_blocks(url, fmt, 33)
        assert [b.index for b in blocks] == list(range(len(blocks)))
        return [(t.row, t.item_id, t.data) for b in blocks for t in read_block(b, id_column)]

    expected = [(i, i, {"text": t}) for i, t in enumerate(TEXTS)]
    assert tasks(str(jsonl), "jsonl", "id") == expected  # no id column: row numbers
    assert tasks(str(hf_dir), "hf", "id") == expected
    with_ids = tasks(str(data), "parquet", "id")
    assert with_ids == [(i, 1000 + i, {"text": t}) for i, t in enumerate(TEXTS)]
    assert tasks(f"file://{data}", "parquet", None) == [
        (i, i, {"id": 1000 + i, "text": t}) for i, t in enumerate(TEXTS)
    ]


def test_annotate_on_ray_gives_the_backend_predictor_outcomes(llm, data, tmp_path):
    settings = settings_for(llm, tmp_path / "cache", ACT_CACHE="false")
    out = tmp_path / "out"

    result = annotate_dataset(
        str(data), str(out), settings, TEXT, block_size=BLOCK, actors=2, actor_cpus=0.5
    )

    assert (result.n_blocks, result.n_blocks_done, result.n_annotated) == (4, 4, N_ITEMS)
    assert result.errors == {"answer_out_of_set": 1} and result.complete
    rows = rows_of(out)
    assert [r["row"] for r in rows] == list(range(N_ITEMS))
    assert [r["item_id"] for r in rows] == [1000 + i for i in range(N_ITEMS)]
    # the single-process path over the same items, with the same settings
    predictor = build_predictor(settings)
    spec = parse_label_config(TEXT)
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(TEXTS)]
    outcomes = {o.task_id: o for o in predictor.predict_iter(tasks, spec)}
    predictor.close()
    prompt_hash = PromptBook(settings.prompts_dir).fingerprint
    for row in rows:
        outcome = outcomes[row["row"]]
        assert json.loads(row["data"]) == {"text": TEXTS[row["row"]]}
        assert row["error_kind"] == (outcome.error.kind if outcome.error else None)
        if outcome.ok:
            assert row["machine_label"] == list(outcome.label.labels)
            assert row["suspicion"] == outcome.suspicion and row["rationale"] == outcome.rationale
        else:
            assert row["machine_label"] is None and row["suspicion"] is None
            assert "sarcastic" in row["error_message"]
        assert (row["model_version"], row["prompt_hash"]) == (
            settings.resolved_model_version,
            prompt_hash,
        )
        assert row["llm_calls"] == (2 if outcome.ok else 1)
    assert llm.call_count == 2 * (2 * N_ITEMS - 1)  # both paths, every call made once each


def test_a_stopped_run_resumes_without_duplicated_or_lost_rows(llm, data, tmp_path):
    settings = settings_for(llm, tmp_path / "cache", ACT_CACHE="false")
    out = tmp_path / "out"
    first = annotate_dataset(str(data), str(out), settings, TEXT, block_size=BLOCK, max_blocks=2)
    assert (first.n_blocks_done, first.complete) == (2, False)
    done = {p.name: p.read_bytes() for p in (out / ANNOTATIONS).glob("part-*.parquet")}
    assert len(done) == 2
    (out / ANNOTATIONS / ".tmp-part-000003.parquet-deadbeef").write_bytes(b"half a file")

    second = annotate_dataset(str(data), str(out), settings, TEXT, block_size=BLOCK)

    assert (second.n_blocks_skipped, second.n_blocks_done, second.complete) == (2, 2, True)
    assert all((out / ANNOTATIONS / name).read_bytes() == blob for name, blob in done.items())
    assert [r["row"] for r in rows_of(out)] == list(range(N_ITEMS))
    assert llm.call_count == 2 * N_ITEMS - 1  # no block annotated twice
    with pytest.raises(StoreError, match="block_size"):
        annotate_dataset(str(data), str(out), settings, TEXT, block_size=50)


def test_the_draw_is_review_s_draw_over_the_annotated_rows(llm, data, tmp_path):
    settings = settings_for(llm, tmp_path / "cache")
    out = tmp_path / "out"
    annotate_dataset(str(data), str(out), settings, TEXT, block_size=BLOCK)
    store = Store(str(out))

    draw = draw_dataset(store, draw_params(30, "exponential", floor=0.2, seed=11))

    ok = [r for r in rows_of(out) if r["error_kind"] is None]
    pi = inclusion_probabilities([r["suspicion"] for r in ok], 30, rule="exponential", floor=0.2)
    delta = draw_review(pi, seed=11)
    stored = [r for _, t in store.iter_parts(REVIEW) for r in t.to_pylist()]
    assert [r["row"] for r in stored] == [r["row"] for r in ok] and ODD not in stored_rows(store)
    assert np.allclose([r["pi"] for r in stored], pi)
    assert [r["delta"] for r in stored] == list(delta)
    assert (draw["n_tasks"], draw["seed"], draw["budget"]) == (N_ITEMS - 1, 11, 30)
    # interrupted while writing parts: the same draw is finished, not a new one
    (out / REVIEW / "part-000002.parquet").unlink()
    again = draw_dataset(store, draw_params(99, seed=5))
    assert again == draw
    assert [r["delta"] for _, t in store.iter_parts(REVIEW) for r in t.to_pylist()] == list(delta)


def test_kill_9_mid_run_then_a_rerun_has_every_row_once(llm, data, tmp_path):
    llm.set_latency(0.05)  # slow enough that the run is still going when it is killed
    out, config = tmp_path / "out", tmp_path / "config.xml"
    config.write_text(TEXT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACT_", "OPENAI_", "RAY_"))}
    env.update(OPENAI_BASE_URL=llm.base_url, OPENAI_API_KEY="sk-test", ACT_CONCURRENCY="4",
               ACT_CACHE="false", ACT_ANNOTATOR_MAX_RETRIES="0")  # fmt: skip
    argv = [sys.executable, "-c", "from act_plugin.cli import app; app()", "scale", "annotate",
            "-i", str(data), "-o", str(out), "--label-config", str(config), "--block-size", "10",
            "--actors", "1"]  # fmt: skip
    run = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 240
        while len(list((out / ANNOTATIONS).glob("part-*"))) < 3 and time.monotonic() < deadline:
            assert run.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the run, its local Ray and its actors
        run.wait(timeout=30)
    killed_with = {p.name for p in (out / ANNOTATIONS).glob("part-*")}
    assert 3 <= len(killed_with) < N_ITEMS // 10

    settings = settings_for(llm, tmp_path / "cache", ACT_CACHE="false")
    again = annotate_dataset(str(data), str(out), settings, TEXT, block_size=10)

    assert again.complete and again.n_blocks_skipped >= len(killed_with)
    rows = rows_of(out)
    assert [r["row"] for r in rows] == list(range(N_ITEMS))  # none lost, none twice
    assert [r["item_id"] for r in rows] == [1000 + i for i in range(N_ITEMS)]
    assert sum(r["error_kind"] is not None for r in rows) == 1  # only the odd row failed
