"""The transformers engine on real tiny models built here (random weights, tokenizer trained on
the spot): loading offline, chat templates, batching, white-box critics, enum scoring, images,
and the whole predictor. Every expected number is recomputed independently from the logits."""

from __future__ import annotations

import base64
import io
import json
import math
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from PIL import Image  # noqa: E402

from act_backend.annotator import LLMAnnotator  # noqa: E402
from act_backend.critics import LLMCritic  # noqa: E402
from act_backend.domain import Item, MachineLabel, TaskError  # noqa: E402
from act_backend.engines.transformers.chat import TransformersChat  # noqa: E402
from act_backend.engines.transformers.loading import resolve_model  # noqa: E402
from act_backend.engines.transformers.prompts import FALLBACK_TEMPLATE  # noqa: E402
from act_backend.labeling import parse_label_config  # noqa: E402
from act_backend.llm import ChatClient, LLMError  # noqa: E402
from act_backend.predictor import build_predictor  # noqa: E402
from act_backend.prompting import PromptBook  # noqa: E402
from act_backend.settings import EngineSettings, load_settings  # noqa: E402
from tests.support.configs import TEXT_CHOICES_CONFIG  # noqa: E402

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
VLM_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{% for p in m.content %}"
    "{% if p.type == 'image' %}<image>{% else %}{{ p.text }}{% endif %}{% endfor %}{{ '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
NO_SYSTEM_TEMPLATE = (
    "{% for m in messages %}{% if m.role == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "Yes yes YES No no NO. Yes. No. yes, no!",
    'Answer with JSON: {"label": "positive"} {"label": "negative"} {"label": "neutral"}',
    "Annotate the following item. Is this annotation wrong? Answer Yes or No.",
    "The annotator chose: positive. The allowed labels: positive, negative, neutral.",
    "I love this film. What an awful day. The weather is fine, I guess.",
]
MESSAGES = [
    {"role": "system", "content": "You annotate data."},
    {"role": "user", "content": "Is this annotation wrong? Answer Yes or No."},
]
SPEC = parse_label_config(TEXT_CHOICES_CONFIG)
TEXTS = ["I love this film", "What an awful day", "The weather is fine, I guess", "No idea"]


# --------------------------------------------------------------------------- tiny models


def _train_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=["<s>", "</s>", "<pad>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def _llama_config(tokenizer: Any, layers: int = 2) -> Any:
    return transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _save_lm(directory: Path, tokenizer: Any, template: str | None) -> Path:
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(_llama_config(tokenizer))
    model.save_pretrained(directory)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="module")
def lm_dir(models_dir: Path) -> Path:
    """A 2-layer Llama (hidden 32, vocab 384) with a chat template."""
    return _save_lm(models_dir / "lm", _train_tokenizer(), TEMPLATE)


@pytest.fixture(scope="module")
def vlm_dir(models_dir: Path) -> Path:
    """A tiny LLaVA: CLIP vision tower (16 px, 8 px patches → 4 image tokens) + 1-layer Llama."""
    tokenizer = _train_tokenizer()
    vision = transformers.CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        image_size=16,
        patch_size=8,
        projection_dim=32,
    )
    config = transformers.LlavaConfig(
        vision_config=vision,
        text_config=_llama_config(tokenizer, layers=1),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    model = transformers.LlavaForConditionalGeneration(config)
    image_processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
    )
    processor = transformers.LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=VLM_TEMPLATE,
    )
    directory = models_dir / "vlm"
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def _copy_with_template(source: Path, target: Path, template: str | None) -> Path:
    """The same weights with another chat template (or none)."""
    shutil.copytree(source, target)
    (target / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(target)
    tokenizer.chat_template = template
    config = json.loads((target / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    if template is not None:
        tokenizer.save_pretrained(target)
    return target


@pytest.fixture
def make_chat() -> Iterator[Any]:
    """``make_chat(path, **settings) -> TransformersChat``; all closed after the test."""
    made: list[TransformersChat] = []

    def make(path: Path, cache: Any = None, **options: Any) -> TransformersChat:
        settings = EngineSettings(engine="transformers", model=str(path), **options)
        chat = TransformersChat(settings, cache=cache)
        made.append(chat)
        return chat

    yield make
    for chat in made:
        chat.close()


@pytest.fixture(scope="module")
def reference(lm_dir: Path) -> tuple[Any, Any]:
    """An independent copy of the tiny LM and its tokenizer, loaded straight by transformers."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(lm_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    return model, tokenizer


def _next_token_logprobs(model: Any, ids: list[int]) -> Any:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits.double(), dim=-1)


def _answer_logprobs(model: Any, prompt_ids: list[int], answer_ids: list[int]) -> list[float]:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + answer_ids])).logits[0]
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    n = len(prompt_ids)
    return [float(logprobs[n - 1 + i, t]) for i, t in enumerate(answer_ids)]


def _prompt_ids(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _critic_messages(text: str, label: str) -> list[dict[str, Any]]:
    item = Item(task_id=1, texts={"text": text})
    return PromptBook().critic_messages(item, SPEC, MachineLabel(labels=(label,)), strategy="p_yes")


# --------------------------------------------------------------------------- loading


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_loads_a_local_directory_with_no_network(
    lm_dir, tmp_path, make_chat, no_network, monkeypatch
):
    from act_backend.engines.transformers import loading

    loads = []
    real = loading.AutoModelForCausalLM.from_pretrained

    def counting(*args: Any, **kwargs: Any) -> Any:
        loads.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", counting)
    fresh = shutil.copytree(lm_dir, tmp_path / "copy")  # never loaded before in this process
    chat = make_chat(fresh, max_tokens=3)
    assert chat.local.model is None  # lazy: nothing loaded yet
    # Four threads ask at once: one load, with local_files_only, then four answers.
    completions = _concurrently(chat.complete, [MESSAGES] * 4)
    assert len(loads) == 1 and loads[0]["local_files_only"] is True
    completion = completions[0]
    assert all(c == completion for c in completions)
    assert isinstance(chat.local.model, transformers.LlamaForCausalLM)
    assert chat.local.device == "cpu" and chat.local.model.dtype == torch.float32
    assert isinstance(completion.text, str)
    assert completion.usage.calls == 1 and 1 <= completion.usage.completion_tokens <= 3
    assert completion.usage.prompt_tokens == len(
        _prompt_ids(transformers.AutoTokenizer.from_pretrained(fresh), MESSAGES)
    )
    # Both roles on the same model share one loaded copy.
    assert make_chat(fresh).local is chat.local


def test_resolves_a_name_in_the_local_hugging_face_cache(lm_dir, tmp_path, no_network):
    repo = tmp_path / "hub" / "models--tiny-org--tiny-lm"
    shutil.copytree(lm_dir, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    found = resolve_model("tiny-org/tiny-lm", cache_dir=tmp_path / "hub")
    assert found == repo / "snapshots" / "0123abcd"


def test_a_missing_model_is_a_clear_error_naming_it(tmp_path, no_network):
    missing = tmp_path / "no-such-model"
    with pytest.raises(LLMError) as err:
        TransformersChat(EngineSettings(engine="transformers", model=str(missing)))
    assert err.value.kind == "model_not_found"
    assert str(missing) in err.value.message and "never downloads" in err.value.message

    with pytest.raises(LLMError, match="nobody/nothing-here"):
        resolve_model("nobody/nothing-here", cache_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LLMError, match=r"no config\.json"):
        resolve_model(str(tmp_path / "empty"))


# --------------------------------------------------------------------------- chat templates


def test_the_models_chat_template_is_applied(lm_dir, reference, make_chat):
    _, tokenizer = reference
    prompt = make_chat(lm_dir).render_prompt(MESSAGES)
    assert prompt.text == (
        "<s><|system|>You annotate data.\n"
        "<|user|>Is this annotation wrong? Answer Yes or No.\n<|assistant|>"
    )
    assert prompt.text == tokenizer.apply_chat_template(
        MESSAGES, add_generation_prompt=True, tokenize=False
    )
    assert not prompt.add_special_tokens  # the template wrote <s> itself: no second BOS


def test_a_model_without_template_gets_the_documented_fallback(lm_dir, tmp_path, make_chat):
    bare = _copy_with_template(lm_dir, tmp_path / "bare", None)
    chat = make_chat(bare, max_tokens=1)
    prompt = chat.render_prompt(MESSAGES)
    assert "{% for message in messages %}" in FALLBACK_TEMPLATE
    assert prompt.text == (
        "<|system|>\nYou annotate data.\n"
        "<|user|>\nIs this annotation wrong? Answer Yes or No.\n"
        "<|assistant|>\n"
    )
    assert prompt.add_special_tokens
    tokenizer = transformers.AutoTokenizer.from_pretrained(bare)
    assert tokenizer.chat_template is None
    # The tokenizer's special tokens (here none are added by this BPE) are applied on top.
    expected_ids = tokenizer(prompt.text, add_special_tokens=True)["input_ids"]
    assert chat.complete(MESSAGES).usage.prompt_tokens == len(expected_ids)


def test_a_template_that_rejects_the_system_role_gets_it_in_the_first_user_turn(
    lm_dir, tmp_path, make_chat
):
    strict = _copy_with_template(lm_dir, tmp_path / "strict", NO_SYSTEM_TEMPLATE)
    prompt = make_chat(strict).render_prompt(MESSAGES)
    assert prompt.text == (
        "<|user|>You annotate data.\n\nIs this annotation wrong? Answer Yes or No.\n<|assistant|>"
    )


def test_an_image_sent_to_a_text_only_model_is_engine_unsupported(lm_dir, make_chat):
    image_message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is it?"},
            {"type": "image_url", "image_url": {"url": _png((255, 0, 0))}},
        ],
    }
    with pytest.raises(TaskError) as err:
        make_chat(lm_dir).complete([image_message])
    assert err.value.kind == "engine_unsupported"
    assert "text-only" in err.value.message


# --------------------------------------------------------------------------- batching


def _prompts(n: int) -> list[list[dict[str, Any]]]:
    # Different lengths, so batching has to pad.
    return [
        [{"role": "user", "content": f"Item {i}: " + "the annotator chose positive. " * (i % 3)}]
        for i in range(n)
    ]


def _concurrently(fn: Any, args: list[Any]) -> list[Any]:
    results: list[Any] = [None] * len(args)
    barrier = threading.Barrier(len(args))

    def work(i: int) -> None:
        barrier.wait()
        results[i] = fn(args[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(args))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_calls_are_batched_and_equal_unbatched_calls(lm_dir, make_chat):
    chat = make_chat(lm_dir, max_tokens=4, batch_size=8)
    prompts = _prompts(8)
    burst, single = 0.05, 0.0  # batch windows: let a burst join one batch; singles run alone
    chat.local.load()
    forwards = [0]
    hook = chat.local.model.register_forward_hook(
        lambda *a: forwards.__setitem__(0, forwards[0] + 1)
    )
    try:
        chat.local.batch_window = single
        alone = [chat.complete(p, top_logprobs=5) for p in prompts]
        forwards_alone, forwards[0] = forwards[0], 0
        batches_before = chat.local.stats.batches
        chat.local.batch_window = burst
        together = _concurrently(lambda p: chat.complete(p, top_logprobs=5), prompts)
        forwards_together = forwards[0]
        batches = chat.local.stats.batches - batches_before

        forwards[0] = 0
        chat.local.batch_window = single
        scored_alone = [chat.answer_logprob(p, "No") for p in prompts]
        score_forwards_alone, forwards[0] = forwards[0], 0
        chat.local.batch_window = burst
        scored_together = _concurrently(lambda p: chat.answer_logprob(p, "No"), prompts)
        score_forwards_together = forwards[0]
    finally:
        hook.remove()
    assert forwards_alone >= len(prompts) and score_forwards_alone == len(prompts)
    assert forwards_together < forwards_alone and batches < len(prompts)
    assert score_forwards_together < score_forwards_alone
    assert chat.local.stats.largest_batch > 1
    for one, batched in zip(alone, together, strict=True):
        assert batched.text == one.text
        assert batched.usage == one.usage
        for top_one, top_batched in zip(one.top_logprobs, batched.top_logprobs, strict=True):
            assert top_batched.keys() == top_one.keys()
            assert list(top_batched.values()) == pytest.approx(list(top_one.values()), abs=1e-4)
    for one, batched in zip(scored_alone, scored_together, strict=True):
        assert batched.n_tokens == one.n_tokens
        assert batched.logprob == pytest.approx(one.logprob, abs=1e-4)


def test_top_logprobs_are_the_models_log_softmax(lm_dir, reference, make_chat):
    model, tokenizer = reference
    completion = make_chat(lm_dir).complete(MESSAGES, max_tokens=1, top_logprobs=5)
    logprobs = _next_token_logprobs(model, _prompt_ids(tokenizer, MESSAGES))
    # the top 5, plus every yes/no variant of the vocabulary (for an exact p_yes), plus the
    # chosen token; tokens that decode to the same text have their probabilities added
    verdicts = [
        t
        for t in range(len(tokenizer))
        if _is("yes", tokenizer.decode([t])) or _is("no", tokenizer.decode([t]))
    ]
    chosen = int(torch.argmax(logprobs))
    wanted = dict.fromkeys([*torch.topk(logprobs, 5).indices.tolist(), *verdicts, chosen])
    expected: dict[str, float] = {}
    for token in wanted:
        text = tokenizer.decode([token])
        expected[text] = math.log(
            math.exp(expected.get(text, -math.inf)) + math.exp(logprobs[token])
        )
    (top,) = completion.top_logprobs
    assert top.keys() == expected.keys() and len(verdicts) >= 4
    assert [top[k] for k in expected] == pytest.approx(list(expected.values()), abs=1e-5)


# --------------------------------------------------------------------------- white-box critics


def _is(word: str, token_text: str) -> bool:
    return token_text.strip(" \t\n").rstrip(".,!:;").lower() == word


def test_p_yes_through_the_engine_equals_yes_over_yes_plus_no_from_the_logits(
    lm_dir, reference, make_chat
):
    model, tokenizer = reference
    vocabulary = len(tokenizer)
    variants = {
        w: [t for t in range(vocabulary) if _is(w, tokenizer.decode([t]))] for w in ("yes", "no")
    }
    assert len(variants["yes"]) >= 2 and len(variants["no"]) >= 2  # e.g. "Yes", " yes", "YES"
    # Locally every yes/no variant is summed whatever its rank, even with top_logprobs = 1.
    critic = LLMCritic(make_chat(lm_dir), PromptBook(), strategy="p_yes", top_logprobs=1)
    for text, label in [("I love this film", "negative"), ("What an awful day", "negative")]:
        item = Item(task_id=1, texts={"text": text})
        critique, usage = critic.criticize(item, SPEC, MachineLabel(labels=(label,)))
        probs = _next_token_logprobs(model, _prompt_ids(tokenizer, _critic_messages(text, label)))
        yes = sum(math.exp(probs[t]) for t in variants["yes"])
        no = sum(math.exp(probs[t]) for t in variants["no"])
        assert critique.suspicion == pytest.approx(yes / (yes + no), rel=1e-5)
        assert usage.calls == 1 and usage.completion_tokens == 1


def test_perplexity_critic_is_one_minus_one_over_the_perplexity_of_no(
    lm_dir, reference, make_chat, tmp_path
):
    from act_backend.cache import ResultCache

    model, tokenizer = reference
    cache = ResultCache(tmp_path / "cache")
    critic = LLMCritic(make_chat(lm_dir, cache=cache), PromptBook(), strategy="perplexity")
    item = Item(task_id=1, texts={"text": "I love this film"})
    critique, usage = critic.criticize(item, SPEC, MachineLabel(labels=("positive",)))

    prompt = _prompt_ids(tokenizer, _critic_messages("I love this film", "positive"))
    answer = tokenizer("No", add_special_tokens=False)["input_ids"]
    logprobs = _answer_logprobs(model, prompt, answer)
    ppl = math.exp(-sum(logprobs) / len(logprobs))
    assert critique.suspicion == pytest.approx(1 - 1 / ppl, rel=1e-5)
    assert 0 < critique.suspicion < 1 and f"{ppl:.3f}" in critique.rationale
    assert (usage.calls, usage.completion_tokens) == (1, len(answer))
    assert usage.prompt_tokens == len(prompt)

    again, usage = critic.criticize(item, SPEC, MachineLabel(labels=("positive",)))
    assert again == critique and (usage.calls, usage.cached) == (0, 1)


def test_perplexity_strategy_on_an_api_engine_is_a_clear_error():
    chat = ChatClient(EngineSettings(model="gpt-4o-mini", base_url="http://127.0.0.1:9"))
    with pytest.raises(ValueError, match="ACT_CRITIC_ENGINE=transformers"):
        LLMCritic(chat, PromptBook(), strategy="perplexity")
    chat.close()


def test_black_box_strategies_generate_and_the_strict_parser_judges(lm_dir, make_chat):
    critic = LLMCritic(make_chat(lm_dir, max_tokens=6), PromptBook(), strategy="cot")
    item = Item(task_id=1, texts={"text": "I love this film"})
    with pytest.raises(TaskError) as err:  # a random model writes no JSON
        critic.criticize(item, SPEC, MachineLabel(labels=("positive",)))
    assert err.value.kind == "answer_unparseable"


# --------------------------------------------------------------------------- enum scoring


def test_the_annotator_picks_the_most_likely_label_by_scoring(lm_dir, reference, make_chat):
    model, tokenizer = reference
    annotator = LLMAnnotator(make_chat(lm_dir), PromptBook())  # type: ignore[arg-type]
    first_in_order = []
    for order in (
        ("positive", "negative", "rather neutral"),
        ("rather neutral", "negative", "positive"),
    ):
        choices = "".join(f'<Choice value="{name}"/>' for name in order)
        spec = parse_label_config(
            f'<View><Text name="text" value="$text"/>'
            f'<Choices name="label" toName="text" choice="single">{choices}</Choices></View>'
        )
        for i, text in enumerate(TEXTS):
            item = Item(task_id=i, texts={"text": text})
            label, usage = annotator.annotate(item, spec)
            messages = PromptBook().annotation_messages(item, spec, reasoning=False)
            prompt = _prompt_ids(tokenizer, messages)
            likelihood = {
                name: sum(
                    _answer_logprobs(
                        model,
                        prompt,
                        tokenizer(json.dumps({"label": name}), add_special_tokens=False)[
                            "input_ids"
                        ],
                    )
                )
                for name in spec.labels
            }
            assert label.labels[0] in spec.labels
            assert label.labels == (max(likelihood, key=likelihood.__getitem__),)
            assert usage.calls == 1 and usage.prompt_tokens == len(prompt)
            first_in_order.append(label.labels[0] == spec.labels[0])
    assert not all(first_in_order)  # the choice is the argmax, not the first label listed


def test_other_schemas_are_generated_not_scored(lm_dir, make_chat):
    chat = make_chat(lm_dir, max_tokens=3)
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    completion = chat.complete(MESSAGES, schema=schema)
    assert completion.usage.completion_tokens <= 3
    assert completion.text == chat.complete(MESSAGES).text  # same as unconstrained greedy


# --------------------------------------------------------------------------- images


def _png(color: tuple[int, int, int], size: tuple[int, int] = (24, 20)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _image_messages(color: tuple[int, int, int]) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You annotate images."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Which label? "},
                {"type": "image_url", "image_url": {"url": _png(color)}},
            ],
        },
    ]


def test_a_vision_language_model_gets_the_image_through_its_processor(vlm_dir, make_chat):
    chat = make_chat(vlm_dir, max_tokens=2, batch_size=4)
    red, green = _image_messages((255, 0, 0)), _image_messages((0, 255, 0))
    prompt = chat.render_prompt(red)
    assert isinstance(chat.local.model, transformers.LlavaForConditionalGeneration)
    assert (
        prompt.text == "<|system|>You annotate images.\n<|user|>Which label? <image>\n<|assistant|>"
    )
    assert len(prompt.images) == 1 and prompt.images[0].size == (24, 20)

    processor = transformers.AutoProcessor.from_pretrained(vlm_dir)
    model = transformers.AutoModelForImageTextToText.from_pretrained(vlm_dir).eval()
    inputs = processor(text=[prompt.text], images=[prompt.images[0]], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
    expected = torch.log_softmax(logits.double(), dim=-1)

    completion = chat.complete(red, max_tokens=1, top_logprobs=3)
    (top,) = completion.top_logprobs
    best = int(torch.argmax(expected))
    assert top[processor.tokenizer.decode([best])] == pytest.approx(float(expected[best]), abs=1e-5)
    assert completion.usage.prompt_tokens == inputs["input_ids"].shape[1]  # 4 image tokens in

    # Without a chat template: the fallback, with the processor's image token for the image.
    bare = shutil.copytree(vlm_dir, vlm_dir.parent / "vlm-bare", dirs_exist_ok=True)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    bare_chat = make_chat(bare, max_tokens=1)
    assert bare_chat.render_prompt(red).text == (
        "<|system|>\nYou annotate images.\n<|user|>\nWhich label? <image>\n<|assistant|>\n"
    )
    assert bare_chat.complete(red).usage.calls == 1

    # The image reaches the model: another image, another distribution.
    (other,) = chat.complete(green, max_tokens=1, top_logprobs=3).top_logprobs
    assert other != top

    # Scoring with an image (right padding + pixel values), batched, equals the direct value.
    answer = processor.tokenizer("No", add_special_tokens=False)["input_ids"]
    ids = inputs["input_ids"][0].tolist() + answer
    with torch.no_grad():
        full = model(input_ids=torch.tensor([ids]), pixel_values=inputs["pixel_values"]).logits[0]
    direct = torch.log_softmax(full.double(), dim=-1)
    n = inputs["input_ids"].shape[1]
    expected_logprob = sum(float(direct[n - 1 + i, t]) for i, t in enumerate(answer))
    chat.local.batch_window = 0.05
    scored = _concurrently(lambda m: chat.answer_logprob(m, "No"), [red, green, red])
    assert scored[0].logprob == pytest.approx(expected_logprob, abs=1e-4)
    assert scored[2].logprob == pytest.approx(scored[0].logprob, abs=1e-5)
    assert scored[1].logprob != pytest.approx(scored[0].logprob, abs=1e-6)


# --------------------------------------------------------------------------- end to end


def test_predictor_end_to_end_with_a_local_annotator_and_critic(lm_dir, tmp_path):
    env = {
        "ACT_ANNOTATOR_ENGINE": "transformers",
        "ACT_ANNOTATOR_MODEL": str(lm_dir),
        "ACT_CRITIC_ENGINE": "transformers",
        "ACT_CRITIC_MODEL": str(lm_dir),
        "ACT_CRITIC_STRATEGY": "perplexity",
        "ACT_CACHE_DIR": str(tmp_path / "cache"),
        "ACT_CONCURRENCY": "4",
    }
    tasks = [{"id": i + 1, "data": {"text": text}} for i, text in enumerate(TEXTS)]
    for run in range(2):
        predictor = build_predictor(load_settings(env=env))
        try:
            outcomes = predictor.predict(tasks, SPEC)
        finally:
            predictor.close()
            predictor.annotator.chat.close()  # type: ignore[attr-defined]
            predictor.critic.chat.close()  # type: ignore[attr-defined]
        assert [o.task_id for o in outcomes] == [1, 2, 3, 4]
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        assert all(o.label.labels[0] in SPEC.labels for o in outcomes)
        assert all(0.0 <= o.suspicion < 1.0 for o in outcomes)
        calls = sum(o.usage.calls for o in outcomes)
        cached = sum(o.usage.cached for o in outcomes)
        if run == 0:
            first = outcomes
            assert (calls, cached) == (8, 0)  # one annotation and one critique per task
        else:  # a re-run is served from the cache, with the same answers
            assert (calls, cached) == (0, 8)
            assert [(o.label, o.suspicion) for o in outcomes] == [
                (o.label, o.suspicion) for o in first
            ]
