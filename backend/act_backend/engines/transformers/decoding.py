"""One padded forward pass over a batch of compatible requests: generate or score.

- Decoding: greedy when temperature == 0, else sampling at that temperature (no top-k/top-p);
  at most ``max_tokens`` new tokens. The model's own generation_config may not add top-k/top-p,
  repetition penalties or beams; its EOS tokens are kept. ``top_logprobs=k``: at every generated
  position (the stopping EOS included) the k most likely tokens of log-softmax(logits), decoded
  to text, plus every token of the vocabulary that reads "yes" or "no" (so p_yes sums all their
  variants, not only those in the top k); tokens that decode to the same text have their
  probabilities summed; the chosen token is always there.
- Scoring: log p(answer | prompt) = Σᵢ log p(tᵢ | prompt, t<ᵢ) over the answer's tokens (tokenized
  on their own and appended to the prompt's), in one right-padded pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import transformers

from ...domain import TaskError, Usage
from ...llm import Completion
from ...scoring import normalize_token
from .loading import Loaded
from .prompts import Prompt

YES_NO = frozenset({"yes", "no"})
#: Decoding follows the settings only: the model's own generation_config may not add top-k,
#: top-p, repetition penalties or beams (its EOS tokens are kept).
_PLAIN_DECODING: dict[str, Any] = {
    "num_beams": 1,
    "typical_p": 1.0,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
}
#: Greedy; the sampling knobs at the library's defaults (unused, and then it does not warn).
_GREEDY: dict[str, Any] = {"do_sample": False, "temperature": 1.0, "top_k": 50, "top_p": 1.0}


@dataclass
class GenerateJob:
    """Generate an answer to ``prompt``; requests with equal ``key()`` share a batch."""

    prompt: Prompt
    max_new_tokens: int
    top_logprobs: int | None
    temperature: float

    def key(self) -> tuple[Any, ...]:
        p = self.prompt
        return ("generate", bool(p.images), p.add_special_tokens, self.temperature)


@dataclass
class ScoreJob:
    """Score ``answer`` as the continuation of ``prompt``."""

    prompt: Prompt
    answer: str

    def key(self) -> tuple[Any, ...]:
        return ("score", bool(self.prompt.images), self.prompt.add_special_tokens)


@dataclass(frozen=True)
class Scored:
    """log p(answer | prompt), the answer's and the prompt's token counts, per-token terms."""

    logprob: float
    n_tokens: int
    prompt_tokens: int
    token_logprobs: tuple[float, ...] = ()


class Decoder:
    """Runs batches on one loaded model; used by one thread at a time (the worker's)."""

    def __init__(self, loaded: Loaded, device: str, dtype: torch.dtype) -> None:
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.device = device
        self.dtype = dtype
        self._token_text: dict[int, str] = {}
        self._verdicts: list[int] | None = None

    def run(self, jobs: Sequence[GenerateJob | ScoreJob]) -> list[Any]:
        """Completions for generate jobs, ``Scored`` for score jobs (one kind per batch)."""
        with torch.inference_mode():
            if isinstance(jobs[0], GenerateJob):
                return self.generate(jobs)  # type: ignore[arg-type]
            return self.score(jobs)  # type: ignore[arg-type]

    def generate(self, jobs: Sequence[GenerateJob]) -> list[Completion]:
        inputs = self._encode([j.prompt for j in jobs], "left")
        prompt_len = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        want_logprobs = any(j.top_logprobs for j in jobs)
        output = self.loaded.model.generate(
            **inputs, generation_config=self._generation_config(jobs, want_logprobs)
        )
        new_tokens = output.sequences[:, prompt_len:].tolist()
        steps = output.logits if want_logprobs else None
        completions = []
        for row, job in enumerate(jobs):
            ids = new_tokens[row][: job.max_new_tokens]
            stop = next((i for i, t in enumerate(ids) if t in self.loaded.eos), None)
            kept = ids if stop is None else ids[: stop + 1]
            text = self.tokenizer.decode(
                ids if stop is None else ids[:stop], skip_special_tokens=True
            )
            top = None
            if job.top_logprobs and steps is not None:
                top = tuple(
                    self._top(steps[t][row], kept[t], job.top_logprobs) for t in range(len(kept))
                )
            completions.append(
                Completion(text, top, Usage(int(prompt_tokens[row]), len(kept), calls=1))
            )
        return completions

    def score(self, jobs: Sequence[ScoreJob]) -> list[Scored]:
        """log p(answer | prompt) per job in one right-padded forward pass.

        Right padding keeps every real token at its unpadded position, and causal attention never
        looks at the pads after it, so a row's scores do not depend on its batch.
        """
        inputs = self._encode([j.prompt for j in jobs], "right")
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        answers = [self.tokenizer(j.answer, add_special_tokens=False)["input_ids"] for j in jobs]
        if any(not a for a in answers):
            raise TaskError("bad_task", "cannot score an empty answer")
        total = max(n + len(a) for n, a in zip(lengths, answers, strict=True))
        ids = inputs["input_ids"]
        batch = ids.shape[0]
        pad = self.tokenizer.pad_token_id
        new_ids = torch.full((batch, total), pad, dtype=ids.dtype, device=ids.device)
        per_token = {
            k: v
            for k, v in inputs.items()
            if k != "input_ids" and v.dim() == 2 and v.shape == ids.shape
        }
        extended = {k: v.new_zeros((batch, total)) for k, v in per_token.items()}
        for row, (n, answer) in enumerate(zip(lengths, answers, strict=True)):
            new_ids[row, :n] = ids[row, :n]
            new_ids[row, n : n + len(answer)] = torch.tensor(answer, dtype=ids.dtype)
            for k, v in per_token.items():
                extended[k][row, :n] = v[row, :n]
            extended["attention_mask"][row, : n + len(answer)] = 1
        # The logits that predict answer tokens sit at positions n-1 ... n+len(answer)-2.
        wanted = sorted(
            {p for n, a in zip(lengths, answers, strict=True) for p in range(n - 1, n + len(a) - 1)}
        )
        kwargs: dict[str, Any] = {"use_cache": False}
        column = {p: p for p in range(total)}
        if self.loaded.scores_subset:
            kwargs["logits_to_keep"] = torch.tensor(wanted, device=ids.device)
            column = {p: i for i, p in enumerate(wanted)}
        others = {k: v for k, v in inputs.items() if k not in per_token and k != "input_ids"}
        logits = self.loaded.model(input_ids=new_ids, **extended, **others, **kwargs).logits
        results = []
        for row, (n, answer) in enumerate(zip(lengths, answers, strict=True)):
            cols = [column[p] for p in range(n - 1, n + len(answer) - 1)]
            logprobs = torch.log_softmax(logits[row, cols].float(), dim=-1)
            picked = logprobs[torch.arange(len(answer)), torch.tensor(answer)].tolist()
            results.append(Scored(math.fsum(picked), len(answer), int(n), tuple(picked)))
        return results

    def _generation_config(
        self, jobs: Sequence[GenerateJob], want_logprobs: bool
    ) -> transformers.GenerationConfig:
        temperature = jobs[0].temperature
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
            if temperature > 0
            else _GREEDY
        )
        return transformers.GenerationConfig(
            **{**_PLAIN_DECODING, **sampling},
            max_new_tokens=max(j.max_new_tokens for j in jobs),
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.loaded.eos) or None,
            output_logits=want_logprobs,
            return_dict_in_generate=True,
        )

    def _encode(self, prompts: Sequence[Prompt], side: str) -> dict[str, torch.Tensor]:
        """Tokenize (and process images of) a batch, padded on ``side``."""
        self.tokenizer.padding_side = side
        texts = [p.text for p in prompts]
        special = prompts[0].add_special_tokens
        if prompts[0].images:
            encoded = self.loaded.processor(
                text=texts,
                images=[list(p.images) for p in prompts],
                padding=True,
                return_tensors="pt",
                add_special_tokens=special,
            )
        else:
            encoded = self.tokenizer(
                texts,
                padding=True,
                return_tensors="pt",
                add_special_tokens=special,
                return_token_type_ids=False,
            )
        return {
            k: v.to(self.device, dtype=self.dtype if v.is_floating_point() else None)
            for k, v in encoded.items()
            if isinstance(v, torch.Tensor)
        }

    def _top(self, logits: torch.Tensor, chosen: int, k: int) -> dict[str, float]:
        """The k most likely next tokens as {text: logprob}; same-text tokens summed.

        Every variant of "yes" and "no" in the vocabulary is added too, whatever its rank: with
        the weights at hand, p_yes need not be limited to the top k as it is over an API.
        """
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        values, indices = torch.topk(logprobs, min(k, logprobs.shape[-1]))
        wanted = dict(zip(indices.tolist(), values.tolist(), strict=True))
        for token in self._verdict_tokens():
            wanted.setdefault(token, float(logprobs[token]))
        wanted.setdefault(chosen, float(logprobs[chosen]))
        top: dict[str, float] = {}
        for token, value in wanted.items():
            text = self._text(token)
            top[text] = _logaddexp(top[text], value) if text in top else value
        return top

    def _verdict_tokens(self) -> list[int]:
        """Ids of the tokens that read as "yes" or "no" (any case, spacing or marker)."""
        if self._verdicts is None:
            size = len(self.tokenizer)
            texts = self.tokenizer.batch_decode(
                [[i] for i in range(size)], clean_up_tokenization_spaces=False
            )
            self._verdicts = [i for i, t in enumerate(texts) if normalize_token(t) in YES_NO]
        return self._verdicts

    def _text(self, token: int) -> str:
        if token not in self._token_text:
            self._token_text[token] = self.tokenizer.decode(
                [token], skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
        return self._token_text[token]


def _logaddexp(a: float, b: float) -> float:
    """log(eᵃ + eᵇ), without overflow."""
    high = max(a, b)
    return high + math.log(math.exp(a - high) + math.exp(b - high))
