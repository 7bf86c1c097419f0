"""Loading models (optionally with a LoRA adapter), artifact sizes and digests, logit checks."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .protocol import RecipeError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def dir_bytes(path: Path, pattern: str = "*") -> int:
    """Total size of the files under ``path`` matching ``pattern`` (recursively)."""
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def weights_sha256(path: Path) -> str:
    """sha256 over the model's ``*.safetensors`` files, in name order (one digest for all shards)."""
    digest = hashlib.sha256()
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise RecipeError(f"no *.safetensors files in {path}")
    for file in files:
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def quantization_format(path: Path) -> str | None:
    """The compressed-tensors format of the checkpoint in ``path`` (e.g. ``pack-quantized``), or
    None when it is not a compressed-tensors (llm-compressor) checkpoint."""
    import json

    config = json.loads((path / "config.json").read_text(encoding="utf-8")).get("quantization_config") or {}
    if config.get("quant_method") != "compressed-tensors":
        return None
    return str(config.get("format") or "compressed-tensors")


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved beside a model; a pad token is guaranteed (eos if none was saved)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(path: Path, device: torch.device, adapter: Path | None = None) -> PreTrainedModel:
    """A causal LM for inference: bf16 on CUDA, fp32 on CPU; compressed-tensors checkpoints
    (GPTQ/AWQ output) load through transformers' compressed-tensors integration. With ``adapter``,
    a PEFT LoRA adapter is applied on top (not merged)."""
    import torch
    from transformers import AutoModelForCausalLM

    from .runtime import best_attention_implementation

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=best_attention_implementation(device))
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model.to(device).eval()


def check_finite_logits(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> dict[str, Any]:
    """Run a forward pass over ``texts``; fail (non-retryable) unless every logit is finite."""
    import torch

    batch = tokenizer(list(texts), return_tensors="pt", padding=True).to(model.device)
    with torch.no_grad():
        logits = model(**batch).logits.float()
    finite = bool(torch.isfinite(logits).all())
    if not finite:
        raise RecipeError("the quantized model produces non-finite logits")
    return {"finite": finite, "shape": list(logits.shape), "max_abs_logit": float(logits.abs().max())}
