"""A local Ray instance for the scale tests: 2 CPUs (the machine is shared), no dashboard.

Test modules import the fixture: ``from tests.support.ray_local import ray_instance``.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[ModuleType]:
    """``ray``, initialised for the module and shut down after (skips when Ray is missing)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
