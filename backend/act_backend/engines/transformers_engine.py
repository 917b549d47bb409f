"""The local open-weights engine: a transformers model behind the chat-client interface.

``TransformersChat`` answers like ``ChatClient`` (``ask``/``complete``/``request_fingerprint``/
``close``), so ``LLMAnnotator`` and ``LLMCritic`` run unchanged on a local model: its
``top_logprobs`` are the model's own next-token log-probabilities (the p_yes critic), and it adds
what only open weights give, ``answer_logprob`` (the perplexity critic).

Choices (documented here, where they are made):

- Loading: ``model`` is a local directory or a name in the local Hugging Face cache, always with
  ``local_files_only=True`` (this engine never touches the network; no ``trust_remote_code``).
  A config whose type is an image-text-to-text model loads with ``AutoModelForImageTextToText``
  (``AutoModelForVision2Seq`` on older transformers) + ``AutoProcessor``; anything else with
  ``AutoModelForCausalLM`` + ``AutoTokenizer``. ``device="auto"`` is CUDA when available, else
  CPU; dtype bfloat16 on CUDA (float16 where bf16 is unsupported), float32 elsewhere. Weights load
  on first use, once per process per (model, device): both roles on one model share it.
- Chat template: the tokenizer's (or processor's) ``apply_chat_template``. A template that
  rejects the system role gets the system text prepended to the first user turn. A model with no
  template gets the fallback ``FALLBACK_TEMPLATE``: one block per message, ``<|role|>`` on its own
  line then the content, then ``<|assistant|>`` and a newline to cue the answer; the tokenizer
  adds its own special tokens (BOS) to that text, and images become the processor's image token.
- Images: data-URL parts are decoded into PIL images for the processor; an image sent to a
  text-only model is a ``TaskError`` of kind ``engine_unsupported``.
- Batching: one worker thread per loaded model owns it; ``complete`` and ``answer_logprob`` calls
  from any number of threads queue up, and the worker runs up to ``batch_size`` compatible
  requests in one padded forward pass (left padding to generate, right padding to score).
- Decoding: greedy when temperature == 0, else sampling at that temperature (no top-k/top-p);
  at most ``max_tokens`` new tokens. The model's own generation_config may not add top-k/top-p,
  repetition penalties or beams; its EOS tokens are kept. ``top_logprobs=k``: at every generated
  position (the stopping EOS included) the k most likely tokens of log-softmax(logits), decoded
  to text, plus every token of the vocabulary that reads "yes" or "no" (so p_yes sums all their
  variants, not only those in the top k); tokens that decode to the same text have their
  probabilities summed; the chosen token is always there.
- Structured output: a schema with a single string field with an ``enum`` (the annotator's one
  label) is answered by scoring, not generating: each candidate answer ``{"<field>": "<label>"}``
  (``json.dumps``) is scored by its log-likelihood log p(answer | prompt) = Σ log p(tᵢ | prompt,
  t<ᵢ) (no length normalisation: the probability that the model writes exactly that answer; the
  answer is tokenized on its own and appended to the prompt's tokens), and the best (first on
  ties) is returned as the JSON text, so the label is always in the set. Any other schema
  (several fields, several labels, free text) is generated and judged by the strict parser as
  for an API model.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor, AutoTokenizer
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the transformers engine needs torch and transformers: "
        "pip install 'label-studio-act[local]'"
    ) from exc

from ..annotator import LLMAnnotator
from ..cache import ResultCache
from ..critics import LLMCritic
from ..domain import TaskError, Usage
from ..llm import AnswerLogprob, CachedChat, Completion, LLMError
from ..prompting import Message
from ..scoring import normalize_token
from ..settings import EngineSettings, Settings
from .openai_engine import chat_annotator, chat_critic

log = logging.getLogger(__name__)

#: Chat template for models without one (see the module docstring).
FALLBACK_TEMPLATE = (
    "{% for message in messages %}<|{{ message.role }}|>\n{{ message.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
#: How long the worker waits for more requests to join a batch it has started to collect.
BATCH_WINDOW_SECONDS = 0.002
#: Version of this engine's decoding rules: part of every cache key.
ENGINE_REVISION = "transformers-1"


def make_annotator(settings: Settings, cache: ResultCache | None) -> LLMAnnotator:
    return chat_annotator(settings, TransformersChat(settings.annotator, cache=cache))


def make_critic(settings: Settings, cache: ResultCache | None) -> LLMCritic:
    return chat_critic(settings, TransformersChat(settings.critic, cache=cache))


# --------------------------------------------------------------------------- the chat client


YES_NO = frozenset({"yes", "no"})


class TransformersChat(CachedChat):
    """One role on a local model; thread-safe. The model loads on first use and is shared."""

    def __init__(self, settings: EngineSettings, *, cache: ResultCache | None = None) -> None:
        super().__init__(cache)
        self.settings = settings
        self.path = resolve_model(settings.model)
        self.local = _acquire(self.path, resolve_device(settings.device), settings.batch_size)
        self._fingerprint = {
            "engine": "transformers",
            "revision": ENGINE_REVISION,
            "model": settings.model,
            "weights": _directory_signature(self.path),
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
        }
        self._closed = False

    def render_prompt(self, messages: Sequence[Message]) -> Prompt:
        """The prompt text the model sees (chat template applied) and the images it gets."""
        return self.local.render(messages)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = "answer",
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
    ) -> Completion:
        """One completion: enum scoring for a one-label schema, else generation (see module).

        A scored answer is the argmax whatever the temperature, and has no ``top_logprobs``.
        """
        prompt = self.render_prompt(messages)
        choice = enum_field(schema)
        if choice is not None:
            return self._choose(prompt, *choice)
        if top_logprobs is not None and top_logprobs < 1:
            raise ValueError(f"top_logprobs must be >= 1; got {top_logprobs!r}")
        job = _Generate(
            prompt,
            max_new_tokens=max_tokens or self.settings.max_tokens,
            top_logprobs=top_logprobs,
            temperature=self.settings.temperature,
        )
        return self.local.run([job])[0]

    def answer_logprob(self, messages: Sequence[Message], answer: str) -> AnswerLogprob:
        """log p(answer | prompt) summed over the answer's tokens, and their number (cached)."""
        key = self._cache_key(messages, {"answer_logprob": answer})
        hit = self._cache_get(key)
        if hit is not None:
            return AnswerLogprob.from_json(hit)
        scored: _Scored = self.local.run([_Score(self.render_prompt(messages), answer)])[0]
        result = AnswerLogprob(
            logprob=scored.logprob,
            n_tokens=scored.n_tokens,
            usage=Usage(scored.prompt_tokens, scored.n_tokens, calls=1),
        )
        self._cache_put(key, result.to_json())
        return result

    def request_fingerprint(self) -> dict[str, Any]:
        return dict(self._fingerprint)

    def close(self) -> None:
        """Give the shared model back; the last user stops its worker and frees it."""
        if not self._closed:
            self._closed = True
            _release(self.local)

    def _choose(self, prompt: Prompt, name: str, labels: Sequence[str]) -> Completion:
        candidates = [json.dumps({name: label}, ensure_ascii=False) for label in labels]
        scored: list[_Scored] = self.local.run([_Score(prompt, c) for c in candidates])
        best = max(range(len(candidates)), key=lambda i: (scored[i].logprob, -i))
        return Completion(
            text=candidates[best],
            top_logprobs=None,
            usage=Usage(scored[best].prompt_tokens, scored[best].n_tokens, calls=1),
        )


def enum_field(schema: dict[str, Any] | None) -> tuple[str, list[str]] | None:
    """(field, labels) when ``schema`` is an object with one string field with an ``enum``.

    >>> enum_field({"type": "object", "properties": {"label": {"type": "string", "enum": ["a"]}}})
    ('label', ['a'])
    >>> enum_field({"properties": {"answer": {"type": "string"}}}) is None
    True
    """
    props = (schema or {}).get("properties")
    if not isinstance(props, dict) or len(props) != 1:
        return None
    ((name, prop),) = props.items()
    values = prop.get("enum") if isinstance(prop, dict) else None
    if prop.get("type") != "string" or not isinstance(values, list) or not values:
        return None
    if not all(isinstance(v, str) for v in values):
        return None
    return name, list(values)


# --------------------------------------------------------------------------- resolving a model


def resolve_model(name: str, *, cache_dir: str | Path | None = None) -> Path:
    """The local directory of ``name``: a directory path, or a snapshot in the local HF cache.

    Never downloads. Raises ``LLMError`` (kind ``model_not_found``) naming what was looked for.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LLMError(
                "model_not_found",
                f"{path} is a directory but has no config.json: not a transformers model",
            )
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(name, local_files_only=True, cache_dir=cache_dir)
    except Exception:
        where = f" ({cache_dir})" if cache_dir else ""
        raise LLMError(
            "model_not_found",
            f"model {name!r} is neither a local directory nor in the local Hugging Face cache"
            f"{where}. This engine never downloads: fetch it first (huggingface-cli download "
            f"{name}) or give the path of a saved model (ACT_ANNOTATOR_MODEL / ACT_CRITIC_MODEL)",
        ) from None
    if not (Path(snapshot) / "config.json").is_file():
        raise LLMError("model_not_found", f"the cached {name!r} ({snapshot}) has no config.json")
    return Path(snapshot)


def resolve_device(device: str) -> str:
    """``"auto"`` → ``"cuda"`` when available, else ``"cpu"``; anything else as torch reads it."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return str(torch.device(device))
    except (RuntimeError, ValueError):
        raise ValueError(
            f"device {device!r} is not a torch device (try auto, cpu, cuda, cuda:1, mps)"
        ) from None


def default_dtype(device: str) -> torch.dtype:
    """bfloat16 on CUDA (float16 where unsupported), float16 on MPS, float32 on CPU."""
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


def _directory_signature(path: Path) -> str:
    """Cheap identity of a model directory (file names, sizes, mtimes): new weights, new keys."""
    digest = hashlib.sha256(str(path).encode())
    for entry in sorted(path.iterdir()):
        if entry.is_file():
            stat = entry.stat()
            digest.update(f"{entry.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- prompts


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: its text, its images (in order) and whether the tokenizer should add
    its special tokens (only for the fallback template: real templates write their own)."""

    text: str
    images: tuple[Any, ...] = ()
    add_special_tokens: bool = False


def decode_image(url: str) -> Any:
    """A ``data:image/...;base64,`` URL as an RGB PIL image; a TaskError (``media``) otherwise."""
    from PIL import Image, UnidentifiedImageError

    header, _, payload = url.partition(",")
    if not header.startswith("data:") or ";base64" not in header:
        raise TaskError("media", "the transformers engine takes images as base64 data URLs")
    try:
        data = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as exc:
        raise TaskError("media", f"cannot decode the image data URL: {exc}") from None


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [p for p in content if isinstance(p, dict)]
    raise TaskError("bad_task", f"unsupported message content of type {type(content).__name__}")


# --------------------------------------------------------------------------- the loaded model


@dataclass
class _Generate:
    prompt: Prompt
    max_new_tokens: int
    top_logprobs: int | None
    temperature: float

    def key(self) -> tuple[Any, ...]:
        p = self.prompt
        return ("generate", bool(p.images), p.add_special_tokens, self.temperature)


@dataclass
class _Score:
    prompt: Prompt
    answer: str

    def key(self) -> tuple[Any, ...]:
        return ("score", bool(self.prompt.images), self.prompt.add_special_tokens)


@dataclass(frozen=True)
class _Scored:
    logprob: float
    n_tokens: int
    prompt_tokens: int
    token_logprobs: tuple[float, ...] = ()


@dataclass
class BatchStats:
    """What the worker did: requests served and batches (padded model runs) that served them."""

    requests: int = 0
    batches: int = 0
    largest_batch: int = 0


@dataclass
class LocalModel:
    """One model in this process: weights, tokenizer or processor, and the worker that runs them.

    Every model call happens on the worker thread; callers only render prompts and wait.
    """

    path: Path
    device: str
    batch_size: int = 8
    batch_window: float = BATCH_WINDOW_SECONDS
    stats: BatchStats = field(default_factory=BatchStats)

    def __post_init__(self) -> None:
        self.model: Any = None
        self.tokenizer: Any = None
        self.processor: Any = None
        self.is_vision = False
        self.dtype = default_dtype(self.device)
        self._users = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Any, Future[Any]] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._token_text: dict[int, str] = {}
        self._verdicts: list[int] | None = None
        self._load_error: LLMError | None = None

    # -- loading

    def load(self) -> None:
        """Load tokenizer/processor and weights once (thread-safe); later calls return at once."""
        if self.model is not None:
            return
        with self._lock:
            if self._load_error is not None:  # a broken model fails fast, not once per task
                raise self._load_error
            if self.model is None:
                try:
                    self._load()
                except LLMError as exc:
                    self._load_error = exc
                    raise

    def _load(self) -> None:
        started = time.perf_counter()
        where = str(self.path)
        try:
            config = AutoConfig.from_pretrained(where, local_files_only=True)
            self.is_vision = _is_vision_config(config)
            dtype_kw = {_DTYPE_KWARG: self.dtype}
            if self.is_vision:
                processor = AutoProcessor.from_pretrained(where, local_files_only=True)
                tokenizer = getattr(processor, "tokenizer", None) or processor
                model = _VISION_AUTO.from_pretrained(where, local_files_only=True, **dtype_kw)
            else:
                processor = None
                tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(
                    where, local_files_only=True, **dtype_kw
                )
        except Exception as exc:  # missing files, unknown architecture, missing extras ...
            raise LLMError(
                "model_load",
                f"cannot load the model in {where} with transformers {transformers.__version__}: "
                f"{_short(str(exc))}",
            ) from None
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        model.to(self.device)
        model.eval()
        self.tokenizer, self.processor = tokenizer, processor
        self._eos = _eos_ids(model, tokenizer)
        self._scores_subset = "logits_to_keep" in _forward_parameters(model)
        self.model = model  # last: marks the load as done
        log.info(
            "loaded %s (%s, %s) on %s in %.1fs",
            where,
            type(model).__name__,
            str(self.dtype).removeprefix("torch."),
            self.device,
            time.perf_counter() - started,
        )

    # -- prompts (caller threads)

    def render(self, messages: Sequence[Message]) -> Prompt:
        """Apply the chat template (or the fallback) and collect the images (see module)."""
        self.load()
        images: list[Any] = []
        conversation: list[dict[str, Any]] = []
        for message in messages:
            parts = []
            for part in _parts(message.get("content", "")):
                if part.get("type") == "image_url":
                    if not self.is_vision:
                        raise TaskError(
                            "engine_unsupported",
                            f"the model in {self.path} is a text-only model "
                            f"({type(self.model).__name__}) and this task has images: use a "
                            "vision-language model for it",
                        )
                    images.append(decode_image(str((part.get("image_url") or {}).get("url", ""))))
                    parts.append({"type": "image"})
                elif part.get("type") == "text":
                    parts.append({"type": "text", "text": str(part.get("text", ""))})
            conversation.append({"role": message["role"], "content": parts})
        templated = self._template_owner().chat_template is not None
        if not self.is_vision or not templated:
            conversation = [
                {"role": m["role"], "content": self._flatten(m["content"])} for m in conversation
            ]
        text = self._apply_template(conversation) if templated else _fallback(conversation)
        return Prompt(text=text, images=tuple(images), add_special_tokens=not templated)

    def _template_owner(self) -> Any:
        return self.processor if self.processor is not None else self.tokenizer

    def _flatten(self, parts: list[dict[str, Any]]) -> str:
        image_token = getattr(self.processor, "image_token", None) or "<image>"
        return "".join(image_token if p["type"] == "image" else p["text"] for p in parts)

    def _apply_template(self, conversation: list[dict[str, Any]]) -> str:
        owner = self._template_owner()
        attempts = [conversation]
        if len(conversation) >= 2 and conversation[0]["role"] == "system":
            # Templates such as Gemma's reject the system role: prepend it to the first turn.
            system, first, *rest = conversation
            content: Any = (
                f"{system['content']}\n\n{first['content']}"
                if isinstance(first["content"], str)
                else [*system["content"], {"type": "text", "text": "\n\n"}, *first["content"]]
            )
            attempts.append([{"role": first["role"], "content": content}, *rest])
        error: Exception | None = None
        for attempt in attempts:
            try:
                return owner.apply_chat_template(
                    attempt, add_generation_prompt=True, tokenize=False
                )
            except Exception as exc:
                error = error or exc
        raise LLMError(
            "chat_template",
            f"the chat template of the model in {self.path} failed: {_short(str(error))}",
        )

    # -- the worker

    def run(self, jobs: Sequence[_Generate | _Score]) -> list[Any]:
        """Queue ``jobs`` for the worker and wait for all their results (in order)."""
        self.load()
        self._start_worker()
        futures: list[Future[Any]] = []
        for job in jobs:
            future: Future[Any] = Future()
            self._queue.put((job, future))
            futures.append(future)
        return [f.result() for f in futures]

    def _start_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            return
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._loop, name=f"act-transformers-{self.path.name}", daemon=True
                )
                self._worker.start()

    def stop(self) -> None:
        """Stop the worker after the requests already queued (the model stays loaded)."""
        worker = self._worker
        if worker is not None and worker.is_alive():
            self._queue.put(None)
            worker.join(timeout=60)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            pending = [first]
            stop = False
            deadline = time.monotonic() + self.batch_window
            while len(pending) < self.batch_size:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                pending.append(item)
            groups: dict[tuple[Any, ...], list[tuple[Any, Future[Any]]]] = {}
            for job, future in pending:
                groups.setdefault(job.key(), []).append((job, future))
            for group in groups.values():
                self._serve(group)
            if stop:
                return

    def _serve(self, group: list[tuple[Any, Future[Any]]]) -> None:
        """Run one batch; if it fails, retry its requests one by one so only the bad one fails."""
        jobs = [job for job, _ in group]
        try:
            with torch.inference_mode():
                if isinstance(jobs[0], _Generate):
                    results: list[Any] = self._generate(jobs)
                else:
                    results = self._score(jobs)
        except Exception as exc:
            if len(group) > 1:
                for one in group:
                    self._serve([one])
                return
            error = exc if isinstance(exc, TaskError) else _engine_error(exc)
            group[0][1].set_exception(error)
            return
        self.stats.requests += len(jobs)
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
        for (_, future), result in zip(group, results, strict=True):
            future.set_result(result)

    def _encode(self, prompts: Sequence[Prompt], side: str) -> dict[str, torch.Tensor]:
        """Tokenize (and process images of) a batch, padded on ``side``."""
        self.tokenizer.padding_side = side
        texts = [p.text for p in prompts]
        special = prompts[0].add_special_tokens
        if prompts[0].images:
            encoded = self.processor(
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

    def _generate(self, jobs: Sequence[_Generate]) -> list[Completion]:
        inputs = self._encode([j.prompt for j in jobs], "left")
        prompt_len = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        temperature = jobs[0].temperature
        want_logprobs = any(j.top_logprobs for j in jobs)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
            if temperature > 0
            else _GREEDY
        )
        config = transformers.GenerationConfig(
            **{**_PLAIN_DECODING, **sampling},
            max_new_tokens=max(j.max_new_tokens for j in jobs),
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self._eos) or None,
            output_logits=want_logprobs,
            return_dict_in_generate=True,
        )
        output = self.model.generate(**inputs, generation_config=config)
        new_tokens = output.sequences[:, prompt_len:].tolist()
        steps = output.logits if want_logprobs else None
        completions = []
        for row, job in enumerate(jobs):
            ids = new_tokens[row][: job.max_new_tokens]
            stop = next((i for i, t in enumerate(ids) if t in self._eos), None)
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

    def _score(self, jobs: Sequence[_Score]) -> list[_Scored]:
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
        if self._scores_subset:
            kwargs["logits_to_keep"] = torch.tensor(wanted, device=ids.device)
            column = {p: i for i, p in enumerate(wanted)}
        others = {k: v for k, v in inputs.items() if k not in per_token and k != "input_ids"}
        logits = self.model(input_ids=new_ids, **extended, **others, **kwargs).logits
        results = []
        for row, (n, answer) in enumerate(zip(lengths, answers, strict=True)):
            cols = [column[p] for p in range(n - 1, n + len(answer) - 1)]
            logprobs = torch.log_softmax(logits[row, cols].float(), dim=-1)
            picked = logprobs[torch.arange(len(answer)), torch.tensor(answer)].tolist()
            results.append(_Scored(math.fsum(picked), len(answer), int(n), tuple(picked)))
        return results


# --------------------------------------------------------------------------- process-wide models

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
_MODELS: dict[tuple[str, str], LocalModel] = {}
_MODELS_LOCK = threading.Lock()


def _acquire(path: Path, device: str, batch_size: int) -> LocalModel:
    """The process's LocalModel for (path, device), created on first request (not loaded)."""
    with _MODELS_LOCK:
        local = _MODELS.get((str(path), device))
        if local is None:
            local = _MODELS[(str(path), device)] = LocalModel(path, device, batch_size)
        local.batch_size = max(local.batch_size, batch_size)
        local._users += 1
        return local


def _release(local: LocalModel) -> None:
    with _MODELS_LOCK:
        local._users -= 1
        if local._users > 0:
            return
        _MODELS.pop((str(local.path), local.device), None)
    local.stop()


# --------------------------------------------------------------------------- helpers


def _vision_auto_class() -> Any:
    return getattr(transformers, "AutoModelForImageTextToText", None) or getattr(
        transformers, "AutoModelForVision2Seq", None
    )


_VISION_AUTO = _vision_auto_class()
_DTYPE_KWARG = (
    "dtype"
    if tuple(int(x) for x in transformers.__version__.split(".")[:2] if x.isdigit()) >= (4, 56)
    else "torch_dtype"
)


def _vision_model_types() -> set[str]:
    from transformers.models.auto import modeling_auto

    names: set[str] = set()
    for attribute in (
        "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
        "MODEL_FOR_VISION_2_SEQ_MAPPING_NAMES",
    ):
        names.update(getattr(modeling_auto, attribute, {}))
    return names


def _is_vision_config(config: Any) -> bool:
    return _VISION_AUTO is not None and config.model_type in _vision_model_types()


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, Iterable) else [eos])}


def _forward_parameters(model: Any) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def _fallback(conversation: list[dict[str, Any]]) -> str:
    import jinja2

    template = jinja2.Environment(autoescape=False).from_string(FALLBACK_TEMPLATE)
    return template.render(messages=conversation, add_generation_prompt=True)


def _logaddexp(a: float, b: float) -> float:
    high = max(a, b)
    return high + math.log(math.exp(a - high) + math.exp(b - high))


def _engine_error(exc: Exception) -> LLMError:
    return LLMError("engine_error", f"{type(exc).__name__}: {_short(str(exc))}")


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
