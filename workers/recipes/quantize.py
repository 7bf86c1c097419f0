"""Recipe quantize: merge a LoRA adapter into its base model, then quantize the merged model with
llm-compressor (GPTQ or AWQ, weight-only INT4/INT8, grouped) into compressed-tensors, the
checkpoint format vLLM serves and transformers loads back.

Spec::

    {"base_model": "/models/tiny-llama", "adapter": "/runs/r1/adapter" (optional),
     "dataset_dir": "/data/tiny-instruct", "method": "gptq" | "awq" | "none", "bits": 4 | 8,
     "group_size": 32, "calibration_samples": 32, "calibration_seq_length": 256,
     "device": "cpu", "seed": 0}

Writes ``<out>/merged/`` (base dtype, safetensors + tokenizer) and, unless ``method`` is ``none``,
``<out>/quantized/`` (compressed-tensors, ``pack-quantized``). The quantized checkpoint is loaded
back with transformers and must give finite logits; its next-token agreement with the merged
model on the calibration texts is reported.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline_recipes.protocol import InputNotFound, RecipeContext, RecipeError, SpecError, log, run_recipe
from forgeline_recipes.spec import QuantizeInput, QuantizeResult, parse_input, require_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

STAGES = 3  # merge, quantize, verify


def parse_spec(raw: dict[str, Any]) -> QuantizeInput:
    """Validate the spec (src/contracts/recipes/quantize.ts) without importing torch; errors name the field."""
    spec = parse_input(QuantizeInput, raw)
    device = spec.device
    require_dir("base_model", spec.base_model)
    require_dir("adapter", spec.adapter, containing="adapter_config.json")
    require_dir("dataset_dir", spec.dataset_dir)
    if spec.method == "awq" and not device.startswith("cuda"):
        # llm-compressor 0.14's AWQ pins its cached activations in page-locked memory
        # (Tensor.pin_memory), which raises without an accelerator; GPTQ has no such step.
        raise SpecError("method", "awq needs a CUDA device (llm-compressor pins AWQ's activation cache); use gptq on CPU")
    if spec.method != "none" and not (spec.dataset_dir / "train.jsonl").is_file():
        raise InputNotFound("dataset_dir", spec.dataset_dir / "train.jsonl")
    return spec


def check_group_size(model: PreTrainedModel, group_size: int) -> None:
    """Every quantized Linear's input dim must be a multiple of the group size (else exit 2)."""
    import torch

    dims = {name: m.in_features for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")}
    bad = {name: dim for name, dim in dims.items() if dim % group_size}
    if bad:
        name, dim = next(iter(bad.items()))
        common = math.gcd(*dims.values())
        divisors = [g for g in (32, 64, 128, 256) if common % g == 0]
        hint = f"; {', '.join(map(str, divisors))} would fit" if divisors else ""
        raise SpecError("group_size", f"{group_size} does not divide the input dim {dim} of {name} ({len(bad)} layers){hint}")


def build_recipe(method: str, bits: int, group_size: int) -> list[Any]:
    """llm-compressor modifiers for weight-only grouped INT quantization (lm_head kept in full precision)."""
    weights = {"num_bits": bits, "type": "int", "strategy": "group", "group_size": group_size, "symmetric": method == "gptq"}
    config_groups = {"group_0": {"targets": ["Linear"], "weights": weights}}
    if method == "gptq":
        from llmcompressor.modifiers.quantization import GPTQModifier

        return [GPTQModifier(config_groups=config_groups, ignore=["lm_head"])]
    # AWQ rescales salient channels, then a plain (asymmetric, zero-point) quantization pass.
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier

    return [AWQModifier(), QuantizationModifier(config_groups=config_groups, ignore=["lm_head"])]


def merge(spec: QuantizeInput, device: torch.device, merged_dir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Base (+ adapter, merged) saved into ``merged_dir`` in the base's own dtype."""
    from transformers import AutoModelForCausalLM

    from forgeline_recipes.modeling import load_tokenizer

    tokenizer = load_tokenizer(spec.adapter if spec.adapter and (spec.adapter / "tokenizer_config.json").is_file() else spec.base_model)
    model = AutoModelForCausalLM.from_pretrained(spec.base_model, dtype="auto").to(device)
    if spec.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, spec.adapter).merge_and_unload()
    model.save_pretrained(merged_dir)
    tokenizer.save_pretrained(merged_dir)
    return model.eval(), tokenizer


def top1_agreement(reference: PreTrainedModel, candidate: PreTrainedModel, batch: dict[str, torch.Tensor]) -> float:
    """Share of (non-padding) positions where both models predict the same next token."""
    import torch

    with torch.no_grad():
        a = reference(**batch).logits.argmax(-1)
        b = candidate(**batch).logits.argmax(-1)
    mask = batch["attention_mask"].bool()
    return float((a == b)[mask].float().mean())


def run(ctx: RecipeContext[QuantizeInput]) -> dict[str, Any]:
    from forgeline_recipes.data import calibration_texts, load_split
    from forgeline_recipes.modeling import check_finite_logits, dir_bytes, load_causal_lm, quantization_format
    from forgeline_recipes.runtime import peak_memory_bytes, reset_peak_memory, setup

    spec, out_dir = ctx.spec, ctx.out_dir
    device = setup(spec.device, spec.seed)
    reset_peak_memory(device)
    ctx.events.start(ctx.recipe, device=str(device), total_steps=STAGES if spec.method != "none" else 1, method=spec.method)

    merged_dir, quantized_dir = out_dir / "merged", out_dir / "quantized"
    started = time.perf_counter()
    model, tokenizer = merge(spec, device, merged_dir)
    merge_s = time.perf_counter() - started
    size_before = dir_bytes(merged_dir, "*.safetensors")
    ctx.events.metric("size_before_bytes", size_before)
    ctx.events.progress(1, STAGES if spec.method != "none" else 1)
    result: dict[str, Any] = {
        "method": spec.method,
        "merged": "merged",
        "adapter_merged": spec.adapter is not None,
        "size_before_bytes": size_before,
        "merge_seconds": merge_s,
    }
    if spec.method == "none":
        return {**result, "quantized": None, "size_after_bytes": size_before, "compression_ratio": 1.0, "seconds": merge_s, "peak_memory_bytes": peak_memory_bytes(device)}

    check_group_size(model, spec.group_size)
    texts = calibration_texts(load_split(spec.dataset_dir, "train"), spec.calibration_samples)
    seq_length = min(spec.calibration_seq_length, model.config.max_position_embeddings)
    calibration = _calibration_dataset(tokenizer, texts, seq_length)

    from llmcompressor import oneshot

    started = time.perf_counter()
    try:
        oneshot(
            model=model,
            processor=tokenizer,  # llm-compressor wants one even for pre-tokenized data
            dataset=calibration,
            recipe=build_recipe(spec.method, spec.bits, spec.group_size),
            num_calibration_samples=len(texts),
            shuffle_calibration_samples=False,
            max_seq_length=seq_length,
        )
    except (NotImplementedError, ValueError) as exc:
        # Unsupported method/architecture/device combinations surface as these; retrying won't help.
        raise RecipeError(f"method: {spec.method} failed on {device.type}: {type(exc).__name__}: {exc}") from exc
    quantize_s = time.perf_counter() - started
    model.save_pretrained(quantized_dir, save_compressed=True)
    tokenizer.save_pretrained(quantized_dir)
    size_after = dir_bytes(quantized_dir, "*.safetensors")
    ctx.events.metric("size_after_bytes", size_after)
    ctx.events.metric("quantize_seconds", quantize_s)
    ctx.events.progress(2, STAGES)

    # The artifact must stand on its own: reload it from disk as a server would.
    if quantization_format(quantized_dir) is None:
        raise RecipeError(f"{quantized_dir} was not saved in compressed-tensors format")
    reloaded = load_causal_lm(quantized_dir, device)
    probe = texts[: min(8, len(texts))]
    logits = check_finite_logits(reloaded, tokenizer, probe)
    reference = load_causal_lm(merged_dir, device)
    batch = tokenizer(probe, return_tensors="pt", padding=True).to(device)
    agreement = top1_agreement(reference, reloaded, batch)
    ctx.events.metric("top1_agreement", agreement)
    ctx.events.progress(3, STAGES)
    log(f"quantized {size_before} -> {size_after} bytes ({size_before / size_after:.2f}x) in {quantize_s:.1f}s")
    return {
        **result,
        "quantized": "quantized",
        "format": quantization_format(quantized_dir),
        "bits": spec.bits,
        "group_size": spec.group_size,
        "calibration_samples": len(texts),
        "size_after_bytes": size_after,
        "compression_ratio": size_before / size_after,
        "quantize_seconds": quantize_s,
        "seconds": merge_s + quantize_s,
        "verify": {**logits, "top1_agreement_with_merged": agreement},
        "peak_memory_bytes": peak_memory_bytes(device),
    }


def _calibration_dataset(tokenizer: PreTrainedTokenizerBase, texts: list[str], seq_length: int) -> Any:
    from datasets import Dataset

    encoded = tokenizer(texts, truncation=True, max_length=seq_length)
    return Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]})


if __name__ == "__main__":
    sys.exit(run_recipe("quantize", parse_spec, run, result_model=QuantizeResult))
