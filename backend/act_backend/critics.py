"""Critic strategies: each turns (item, machine label) into a suspicion ε̂ in [0, 1] and a rationale.

Black-box strategies (the ACT paper: Lin et al., NeurIPS 2025, arXiv:2511.09833) ask a chat
model for a judgement:
- ``naive``: the probability that the annotation is wrong, no reasoning asked for.
- ``confidence``: the confidence c that it is right; ε̂ = 1 − c.
- ``cot``: reason step by step first, then the probability that it is wrong.
- ``devils_advocate``: argue against the annotation (and the annotator's own reasoning, when the
  annotator gave it), then weigh the argument and give the probability that it is wrong.
White-box over an API:
- ``p_yes``: ask "Is this annotation wrong? Answer Yes or No" for one plain token (never a
  response format: a grammar would make it ``{"``) with ``logprobs``; ε̂ = P(yes) / (P(yes) +
  P(no)) at the first position that answers yes or no (``scoring.yes_no_position``). An
  endpoint that returns no logprobs, or no alternatives to the generated token, is an error
  (``logprobs_unavailable``), never a constant.
White-box on a local model (``ACT_CRITIC_ENGINE=transformers``):
- ``perplexity``: the same question; the perplexity of the answer "No" (not wrong),
  ppl = exp(−mean log p(tokens of "No" | prompt)), mapped to ε̂ = 1 − 1/ppl (``scoring``).

Which strategies exist, their answer fields and the engines that serve them: ``strategies``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from .annotator import object_schema
from .domain import Critique, Item, MachineLabel, TaskError, Usage
from .labeling import LabelingSpec
from .llm import AnswerLogprob, CachedChat, Completion
from .parsing import json_object, probability_field, text_field
from .prompting import Message, PromptBook
from .scoring import (
    p_yes,
    perplexity,
    suspicion_from_confidence,
    suspicion_from_perplexity,
    yes_no_position,
)
from .strategies import get_strategy

#: A black-box answer's number → ε̂, by the field that carries it (``Strategy.score_field``).
SUSPICION_OF: dict[str, Callable[[float], float]] = {
    "probability_wrong": lambda p: p,
    "confidence": suspicion_from_confidence,
}
#: The answer whose perplexity the ``perplexity`` strategy measures (to the p_yes question).
PERPLEXITY_ANSWER = "No"


class LLMCritic:
    """Criticizes machine labels through a chat model with one strategy."""

    def __init__(
        self, chat: CachedChat, prompts: PromptBook, *, strategy: str, top_logprobs: int = 20
    ) -> None:
        self.chat = chat
        self.prompts = prompts
        self.strategy = strategy
        self.top_logprobs = top_logprobs
        self._strategy = get_strategy(strategy, chat.engine)

    def criticize(
        self, item: Item, spec: LabelingSpec, label: MachineLabel
    ) -> tuple[Critique, Usage]:
        messages = self.prompts.critic_messages(item, spec, label, strategy=self._strategy.template)
        if self._strategy.kind == "white-box":
            scored: AnswerLogprob = self.chat.answer_logprob(  # type: ignore[attr-defined]
                messages, PERPLEXITY_ANSWER
            )
            return _perplexity_critique(scored), scored.usage
        if self._strategy.kind == "logprobs":
            parse = partial(_parse_p_yes, asked=self.top_logprobs)
            critique, completion = self.chat.ask(
                messages, parse, max_tokens=1, top_logprobs=self.top_logprobs
            )
        else:
            critique, completion = self._ask_black_box(messages)
        return critique, completion.usage

    def _ask_black_box(self, messages: list[Message]) -> tuple[Critique, Completion]:
        """The answer object of the strategy's fields; its number field mapped to ε̂."""
        fields, score = self._strategy.fields, self._strategy.score_field
        props = {f: {"type": "number" if f == score else "string"} for f in fields}

        def parse(completion: Completion) -> Critique:
            answer = json_object(completion.text)
            rationale = text_field(answer, "rationale", required=False) or ""
            suspicion = SUSPICION_OF[score](probability_field(answer, score))
            return Critique(suspicion, rationale)

        return self.chat.ask(
            messages, parse, schema=object_schema(props), schema_name=f"critique_{self.strategy}"
        )


def _perplexity_critique(scored: AnswerLogprob) -> Critique:
    try:
        ppl = perplexity(scored.logprob, scored.n_tokens)
    except ValueError as exc:
        raise TaskError("answer_unparseable", f"perplexity: {exc}") from None
    suspicion = suspicion_from_perplexity(ppl)
    return Critique(
        suspicion, f"perplexity of the answer {PERPLEXITY_ANSWER!r}: {ppl:.3f} (ε̂ = 1 − 1/ppl)"
    )


def _parse_p_yes(completion: Completion, *, asked: int) -> Critique:
    """ε̂ from the answer's token probabilities; ``asked``: the top_logprobs requested."""
    if not completion.top_logprobs:
        raise TaskError(
            "logprobs_unavailable",
            "the critic endpoint returned no logprobs, which the p_yes strategy needs: use a "
            "server that returns logprobs/top_logprobs (OpenAI, vLLM, llama.cpp) or another "
            "strategy (ACT_CRITIC_STRATEGY=cot)",
        )
    if asked >= 2 and all(len(position) < 2 for position in completion.top_logprobs):
        raise TaskError(
            "logprobs_unavailable",
            f"the critic endpoint returned the generated token's logprob but no top_logprobs "
            f"alternatives (top_logprobs={asked} was asked for), which the p_yes strategy needs",
        )
    try:
        suspicion = p_yes(yes_no_position(completion.top_logprobs))
    except ValueError as exc:
        raise TaskError("answer_unparseable", f"p_yes: {exc}") from None
    return Critique(suspicion, f"P(wrong) from token probabilities: {suspicion:.3f}")
