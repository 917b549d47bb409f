"""Connecting to Ray: a cluster (``--ray-address`` or ``RAY_ADDRESS``) or a local instance."""

from __future__ import annotations

import logging
import os
from types import ModuleType

__all__ = ["RayMissing", "connect"]


class RayMissing(RuntimeError):
    """Ray Data is not installed."""


def connect(address: str | None = None, *, num_cpus: int | None = None) -> ModuleType:
    """The ``ray`` module, initialised once: joined to ``address`` (or ``RAY_ADDRESS``) when
    given, else a local instance (``num_cpus`` CPUs, no dashboard). An already initialised Ray
    (a test, a notebook, a job on a cluster) is used as it is."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise RayMissing(
            "scale runs need Ray Data: pip install 'label-studio-act[scale]'"
        ) from None
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        options: dict = {"logging_level": logging.WARNING, "log_to_driver": False}
        if address is None:
            options.update(num_cpus=num_cpus, include_dashboard=False)
        ray.init(address=address, **options)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours (rich) show blocks and rows
    context.print_on_execution_start = False
    return ray
