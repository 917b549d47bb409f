"""The neighbours a batch of one task still has: earlier items, remembered in SQLite.

Embeddings and labels of earlier items live in ``<cache_dir>/knn-memory.sqlite3``, the newest
``MEMORY_SIZE`` per label space (one embedding model and one label set). A label is the
machine's, or a human's once the task was reviewed (``human``): a machine label never replaces a
human one.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...knn import Array
from ...labeling import LabelingSpec

MEMORY_SIZE = 5000  # remembered items per label set
MEMORY_FILE = "knn-memory.sqlite3"


@dataclass(frozen=True)
class Remembered:
    """Earlier items of one label set: keys (text hashes), embeddings and label-set rows."""

    keys: list[str]
    embeddings: Array
    labels: list[tuple[str, ...]]
    human: list[bool]  # the label is a reviewer's

    @classmethod
    def nothing(cls, dim: int) -> Remembered:
        return cls([], np.zeros((0, dim), np.float32), [], [])


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
            "embedding BLOB, seen REAL, human INTEGER NOT NULL DEFAULT 0, "
            "PRIMARY KEY (space, key))"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(items)")}
        if "human" not in columns:  # a memory written before reviews were remembered
            self._db.execute("ALTER TABLE items ADD COLUMN human INTEGER NOT NULL DEFAULT 0")

    def recall(self, space: str, dim: int) -> Remembered:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, labels, embedding, human FROM items WHERE space = ?", (space,)
            ).fetchall()
        rows = [r for r in rows if len(r[2]) == 4 * dim]
        embeddings = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
        return Remembered(
            keys=[r[0] for r in rows],
            embeddings=embeddings.reshape(len(rows), dim),
            labels=[tuple(json.loads(r[1])) for r in rows],
            human=[bool(r[3]) for r in rows],
        )

    def remember(
        self,
        space: str,
        keys: Sequence[str],
        embeddings: Array,
        labels: Sequence[Sequence[str]],
        *,
        human: bool = False,
    ) -> None:
        """Store the items (replacing earlier entries of the same texts, except that a machine
        label never replaces a human one)."""
        now = time.time()
        rows = [
            (space, key, json.dumps(list(lab)), np.asarray(e, np.float32).tobytes(), now,
             int(human))
            for key, e, lab in zip(keys, embeddings, labels, strict=True)
        ]  # fmt: skip
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO items (space, key, labels, embedding, seen, human) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (space, key) DO UPDATE SET "
                    "labels = excluded.labels, embedding = excluded.embedding, "
                    "seen = excluded.seen, human = excluded.human "
                    "WHERE excluded.human = 1 OR items.human = 0",
                    rows,
                )
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
