"""The one error type a task can fail with: a kind to count by and a message safe to show."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .llm import Usage


class TaskError(Exception):
    """One task could not be annotated or criticized. ``kind`` is a short stable tag
    (``media``, ``bad_task``, ``llm_rate_limit``, ``answer_out_of_set`` ...); the message is
    specific, and never holds a secret."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self._usage: Usage | None = None

    @property
    def usage(self) -> Usage:
        """LLM calls the task had made before it failed (they cost tokens all the same)."""
        from .llm import Usage

        return self._usage or Usage()

    @usage.setter
    def usage(self, value: Usage) -> None:
        self._usage = value

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"
