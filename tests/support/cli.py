"""``ls-act`` in-process, as a user runs it."""

from __future__ import annotations

from typer.testing import CliRunner

from act_plugin.cli import app


def run_ok(*args: str) -> str:
    """Run ``ls-act ARGS``; its output, after asserting it exited 0 (the output shows if not)."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout
