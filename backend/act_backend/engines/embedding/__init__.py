"""The offline default engine: sentence embeddings on the CPU, no LLM, no network.

- ``zero_shot``: ``ZeroShotAnnotator``, zero-shot classification by embedding similarity.
- ``knn_critic``: ``KnnCritic`` (strategy ``knn``), the label's consistency with its nearest
  neighbours' labels; it criticizes the labels of any annotator engine, and the zero-shot
  annotator likewise works with any critic. The formulas are in ``act_backend.knn``.
- ``encoder``: ``SentenceEncoder``, the all-MiniLM-L6-v2 embeddings (weights from a package).
- ``memory``: ``NeighbourMemory``, earlier items kept in SQLite, so that a batch of one task
  still has neighbours.
- ``texts``: what is embedded for an item and for each label.
"""

from __future__ import annotations

from ...cache import ResultCache
from ...settings import EngineSettings, Settings
from .encoder import DEFAULT_BATCH_SIZE, encoder_for
from .knn_critic import KnnCritic
from .memory import MEMORY_FILE, NeighbourMemory
from .zero_shot import ZeroShotAnnotator


def make_annotator(settings: Settings, cache: ResultCache | None) -> ZeroShotAnnotator:
    """The zero-shot annotator for ``settings.annotator`` (the model is loaded on first use)."""
    role = settings.annotator
    return ZeroShotAnnotator(encoder_for(role), batch_size=_batch_size(role))


def make_critic(settings: Settings, cache: ResultCache | None) -> KnnCritic:
    """The kNN critic for ``settings.critic``, remembering items in ``settings.cache_dir``."""
    settings.critic.served_strategy()
    return KnnCritic(
        encoder_for(settings.critic),
        NeighbourMemory(settings.cache_dir / MEMORY_FILE),
        batch_size=_batch_size(settings.critic),
    )


def _batch_size(role: EngineSettings) -> int:
    return role.batch_size if "batch_size" in role.model_fields_set else DEFAULT_BATCH_SIZE
