"""The domain types every stage shares: an item, its machine label, the critique, usage, errors.

Data flows one way through them: a Label Studio task becomes an :class:`Item`; the annotator
gives a :class:`MachineLabel`; the critic gives a :class:`Critique`; every LLM call adds to a
:class:`Usage`; a task that cannot go on fails alone with a :class:`TaskError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    """A task's inputs, ready to prompt with: texts by object name and images as data URLs."""

    task_id: int
    texts: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MachineLabel:
    """What the annotator said: the labels (choices) or the answer (free text)."""

    labels: tuple[str, ...] = ()
    answer: str | None = None
    reasoning: str | None = None

    def display(self) -> str:
        return self.answer if self.answer is not None else ", ".join(self.labels)


@dataclass(frozen=True)
class Critique:
    """The critic's verdict: suspicion ε̂ ≈ P(machine label is wrong) ∈ [0, 1], and why."""

    suspicion: float
    rationale: str


@dataclass(frozen=True)
class Usage:
    """LLM calls made and their tokens; ``cached`` counts answers served from the cache."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cached: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.calls + other.calls,
            self.cached + other.cached,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "cached_calls": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


class TaskError(Exception):
    """One task could not be annotated or criticized. ``kind`` is a short stable tag
    (``media``, ``bad_task``, ``llm_rate_limit``, ``answer_out_of_set`` ...); the message is
    specific, and never holds a secret. ``usage`` counts the LLM calls the task had made
    before it failed (they cost tokens all the same)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.usage = Usage()

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"
