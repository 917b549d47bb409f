"""The captured Label Studio 1.23.2 requests and responses committed under ``tests/fixtures``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "label-studio-1.23"


def fixture(name: str) -> dict[str, Any]:
    """One captured request or response; a missing file fails loudly, naming it."""
    path = FIXTURES / name
    if not path.is_file():
        raise FileNotFoundError(f"captured fixture {name!r} is missing from {FIXTURES}")
    return json.loads(path.read_text("utf-8"))


def fixture_names(pattern: str) -> list[str]:
    """Names of the captured files matching ``pattern``; none is an error, never an empty set.

    Parametrizing over an empty list makes pytest skip silently, so a clone without the
    fixtures would pass with fewer tests instead of failing.
    """
    names = sorted(p.name for p in FIXTURES.glob(pattern))
    if not names:
        raise FileNotFoundError(f"no captured fixture matches {pattern!r} in {FIXTURES}")
    return names
