"""The critic strategies: one registry that the settings, the critics and the engines read.

Each strategy is data (``Strategy``): its kind, the engines that can serve it and, for the
black-box strategies, the fields of the answer the critic model writes. How an answer becomes a
suspicion is in ``critics`` (the chat engines) and ``knn`` (the embedding engine).

>>> STRATEGIES["perplexity"].engines
('transformers',)
>>> served_by("embedding")
('knn',)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["black-box", "logprobs", "white-box", "knn"]

#: What each kind asks of the engine (said when an engine cannot serve a strategy).
KIND_NEEDS: dict[Kind, str] = {
    "black-box": "a chat model's written judgement",
    "logprobs": "a chat model's next-token log-probabilities",
    "white-box": "a local model's log-likelihood of an answer",
    "knn": "sentence embeddings of the items",
}
CHAT_ENGINES = ("openai", "transformers")


@dataclass(frozen=True)
class Strategy:
    """A critic strategy.

    ``fields``: the answer's fields in the order the critic writes them (black-box only), of
    which ``score_field`` carries the number. ``prompt``: the strategy whose prompt template
    (``critic_<prompt>.j2``) it uses, if not its own. ``shows_reasoning``: the critic reads the
    annotator's own reasoning, so the annotator is asked for it.
    """

    name: str
    kind: Kind
    engines: tuple[str, ...]
    fields: tuple[str, ...] = ()
    score_field: str = ""
    prompt: str | None = None
    shows_reasoning: bool = False

    @property
    def template(self) -> str:
        """The strategy name of its prompt template."""
        return self.prompt or self.name


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "naive",
            "black-box",
            CHAT_ENGINES,
            fields=("probability_wrong", "rationale"),
            score_field="probability_wrong",
        ),
        Strategy(
            "confidence",
            "black-box",
            CHAT_ENGINES,
            fields=("confidence", "rationale"),
            score_field="confidence",
        ),
        Strategy(
            "cot",
            "black-box",
            CHAT_ENGINES,
            fields=("reasoning", "probability_wrong", "rationale"),
            score_field="probability_wrong",
        ),
        Strategy(
            "devils_advocate",
            "black-box",
            CHAT_ENGINES,
            fields=("counterargument", "probability_wrong", "rationale"),
            score_field="probability_wrong",
            shows_reasoning=True,
        ),
        Strategy("p_yes", "logprobs", CHAT_ENGINES),
        Strategy("perplexity", "white-box", ("transformers",), prompt="p_yes"),
        Strategy("knn", "knn", ("embedding",)),
    )
}


def served_by(engine: str) -> tuple[str, ...]:
    """The strategies ``engine`` can serve, in registry order."""
    return tuple(name for name, s in STRATEGIES.items() if engine in s.engines)


def get_strategy(name: str, engine: str | None = None) -> Strategy:
    """The strategy ``name``, checked to exist and, given ``engine``, to run on it.

    Raises ValueError with ``strategy_problem``'s message otherwise.
    """
    problem = strategy_problem(name, engine)
    if problem is not None:
        raise ValueError(problem)
    return STRATEGIES[name]


def strategy_problem(name: str, engine: str | None = None) -> str | None:
    """Why ``name`` cannot be used (on ``engine``), in the one message template; else None.

    >>> print(strategy_problem("cot", "embedding"))  # doctest: +NORMALIZE_WHITESPACE
    critic strategy 'cot' (a chat model's written judgement) needs ACT_CRITIC_ENGINE=openai or
    transformers; the embedding engine serves only 'knn'
    >>> strategy_problem("knn", "embedding") is None
    True
    """
    if name not in STRATEGIES:
        return _TEMPLATE.format(
            name=name, problem="is unknown", offer=f"choose one of {_quoted(STRATEGIES)}"
        )
    found = STRATEGIES[name]
    if engine is None or engine in found.engines:
        return None
    return _TEMPLATE.format(
        name=name,
        problem=f"({KIND_NEEDS[found.kind]}) needs ACT_CRITIC_ENGINE={' or '.join(found.engines)}",
        offer=f"the {engine} engine serves only {_quoted(served_by(engine))}",
    )


_TEMPLATE = "critic strategy {name!r} {problem}; {offer}"


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)
