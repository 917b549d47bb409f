"""A local Ray instance for the scale tests: 2 CPUs (the machine is shared), no dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest


@contextmanager
def local_ray() -> Iterator[ModuleType]:
    """``ray``, initialised for the block and shut down after (skips when Ray is missing)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
