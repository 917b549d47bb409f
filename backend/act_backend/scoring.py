"""Critic score maps: pure functions from what a critic said to a suspicion in [0, 1].

Suspicion ε̂ estimates P(machine label is wrong); higher = more suspicious. Label Studio sorts by
the prediction score, so the backend reports ``score = 1 − ε̂``: ascending order puts the most
suspicious task first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

_TOKEN_MARKERS = " \t\n\r\u0120\u2581"  # whitespace, GPT-2 'Ġ' and SentencePiece '▁' markers


def normalize_token(token: str) -> str:
    """Fold a token to a comparable word: markers, case and trailing punctuation dropped.

    >>> [normalize_token(t) for t in (" Yes", "YES.", "\u2581no", "Nope")]
    ['yes', 'yes', 'no', 'nope']
    """
    return token.strip(_TOKEN_MARKERS).rstrip(".,!:;").lower()


def is_yes_or_no(token: str) -> bool:
    """True for any variant of the word "yes" or "no" (``normalize_token``)."""
    return normalize_token(token) in ("yes", "no")


def yes_no_position(positions: Sequence[Mapping[str, float]]) -> Mapping[str, float]:
    """The generated position that answers yes or no: the first whose most likely token is a
    variant of either word, else the first with one among its candidates.

    Servers may open with white space or a word ("The") before the answer; and where a grammar
    constrained the answer, the candidates may be the model's unconstrained choices.

    >>> yes_no_position([{"\\n": -0.1, "No": -3.0}, {"Yes": -0.2, "No": -1.9}])
    {'Yes': -0.2, 'No': -1.9}
    >>> yes_no_position([{"The": -0.1, "\u2581No": -3.0}])
    {'The': -0.1, '▁No': -3.0}

    Raises ValueError when no position holds either word.
    """
    for position in positions:
        if position and is_yes_or_no(max(position, key=position.__getitem__)):
            return position
    for position in positions:
        if any(is_yes_or_no(token) for token in position):
            return position
    first = ", ".join(repr(t) for t in list(positions[0] if positions else {})[:8])
    raise ValueError(f"neither 'yes' nor 'no' is among the top tokens ({first})")


def p_yes(top_logprobs: Mapping[str, float]) -> float:
    """ε̂ = P(yes) / (P(yes) + P(no)) from one position's next-token log-probabilities.

    P(yes) sums exp(logprob) over every variant of "yes" (" Yes", "YES", "yes." ...); likewise
    P(no). The question asked is "Is this annotation wrong?", so "yes" means suspicious.

    >>> round(p_yes({"No": math.log(0.6), " no": math.log(0.1), "Yes": math.log(0.1)}), 4)
    0.125

    Raises ValueError when neither word is among the candidates.
    """
    yes = no = 0.0
    for token, logprob in top_logprobs.items():
        word = normalize_token(token)
        if word == "yes":
            yes += math.exp(logprob)
        elif word == "no":
            no += math.exp(logprob)
    if yes + no == 0.0:
        shown = ", ".join(repr(t) for t in list(top_logprobs)[:8])
        raise ValueError(f"neither 'yes' nor 'no' is among the top tokens ({shown})")
    return yes / (yes + no)


def suspicion_from_confidence(confidence: float) -> float:
    """ε̂ = 1 − c, where c is the critic's confidence that the annotation is correct.

    >>> suspicion_from_confidence(0.8)
    0.19999999999999996
    """
    return 1.0 - check_probability(confidence, "confidence")


def perplexity(sum_logprob: float, n_tokens: int) -> float:
    """ppl = exp(−(1/n) Σᵢ log p(tᵢ | prompt, t<ᵢ)) of an answer's n tokens; ppl ∈ [1, ∞).

    >>> perplexity(2 * math.log(0.5), 2)
    2.0

    Raises ValueError for n < 1 or a positive log-probability (beyond rounding).
    """
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1:
        raise ValueError(f"n_tokens must be a positive integer; got {n_tokens!r}")
    total = float(sum_logprob)
    if math.isnan(total) or total > 1e-6 * n_tokens:
        raise ValueError(f"sum_logprob must be a log-probability (<= 0); got {sum_logprob!r}")
    mean = min(total, 0.0) / n_tokens
    return math.exp(-mean) if -mean < 700 else math.inf


def suspicion_from_perplexity(perplexity: float) -> float:
    """ε̂ = 1 − 1/ppl: the perplexity of the answer "No" (not wrong) mapped to [0, 1).

    Monotone: ppl = 1 (the critic is sure of "No") → 0; ppl → ∞ → 1. Equivalently
    ε̂ = 1 − (geometric mean of the answer tokens' probabilities); for a one-token "No",
    ε̂ = 1 − P("No"). The paper's own map was not recoverable; calibrate on reviewed items.

    >>> suspicion_from_perplexity(1.0), suspicion_from_perplexity(4.0)
    (0.0, 0.75)
    >>> suspicion_from_perplexity(math.inf)
    1.0
    """
    ppl = float(perplexity)
    if math.isnan(ppl) or ppl < 1.0 - 1e-9:
        raise ValueError(f"perplexity must be a number >= 1; got {perplexity!r}")
    return max(0.0, 1.0 - 1.0 / ppl)


def prediction_score(suspicion: float) -> float:
    """Label Studio prediction score = 1 − ε̂ (ascending order = most suspicious first).

    >>> prediction_score(0.25)
    0.75
    """
    return 1.0 - check_probability(suspicion, "suspicion")


def check_probability(value: float, name: str) -> float:
    """Return ``value`` as a float if it lies in [0, 1]; raise ValueError naming it otherwise."""
    number = float(value)
    if not 0.0 <= number <= 1.0 or math.isnan(number):
        raise ValueError(f"{name} must be a number from 0 to 1; got {value!r}")
    return number
