"""Recipe quantize: merge a LoRA adapter into its base model, then quantize the merged model
with llm-compressor (GPTQ or AWQ) into compressed-tensors, the format vLLM serves.

Spec:
  {"base_model": "/dir", "adapter": "/dir", "dataset_dir": "/dir (calibration prompts)",
   "method": "gptq" | "awq" | "none", "bits": 4 | 8, "group_size": 32,
   "calibration_samples": 32, "device": "cpu" | "cuda", "seed": 0}
Output: <out>/merged/ (full precision), <out>/quantized/ (unless method is none).
Result: size_before_bytes (merged), size_after_bytes (quantized), seconds, format, max_abs_logit_diff.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeline_recipes.protocol import RecipeContext, RecipeError, run_recipe
from forgeline_recipes.spec import SpecReader, read_common


@dataclass
class Spec:
    base_model: Path
    adapter: Path
    dataset_dir: Path
    method: str
    bits: int
    group_size: int
    calibration_samples: int
    device: str
    seed: int


def parse_spec(raw: dict[str, Any]) -> Spec:
    r = SpecReader(raw)
    device, seed = read_common(r)
    spec = Spec(
        base_model=r.path("base_model", kind="dir"),
        adapter=r.path("adapter", kind="dir"),
        dataset_dir=r.path("dataset_dir", kind="dir"),
        method=r.string("method", "gptq", choices=["gptq", "awq", "none"]),
        bits=r.integer("bits", 4, minimum=2, maximum=8),
        group_size=r.integer("group_size", 128, minimum=1),
        calibration_samples=r.integer("calibration_samples", 64, minimum=1),
        device=device,
        seed=seed,
    )
    r.finish()
    return spec


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(ctx: RecipeContext[Spec]) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forgeline_recipes.data import encode, load_split
    from forgeline_recipes.runtime import setup

    spec = ctx.spec
    device = setup(spec.device, spec.seed)
    ctx.events.start(ctx.recipe, device=str(device))
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
    base = AutoModelForCausalLM.from_pretrained(spec.base_model, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, spec.adapter).merge_and_unload()
    merged_dir = ctx.out_dir / "merged"
    merged.save_pretrained(merged_dir, safe_serialization=True)
    tokenizer.save_pretrained(merged_dir)
    size_before = dir_bytes(merged_dir)
    ctx.events.metric("size_before_bytes", size_before)
    ctx.events.progress(1, 2)
    if spec.method == "none":
        return {"size_before_bytes": size_before, "size_after_bytes": size_before, "seconds": 0.0, "format": "none"}

    hidden = merged.config.hidden_size
    inter = merged.config.intermediate_size
    for dim, what in ((hidden, "hidden_size"), (inter, "intermediate_size")):
        if dim % spec.group_size:
            raise RecipeError(f"group_size: {spec.group_size} does not divide the model's {what} ({dim}); pick a divisor such as 32 or 64", error_type="InvalidSpec")

    rows = load_split(spec.dataset_dir, "train")[: spec.calibration_samples]
    calib = Dataset.from_list([{k: v for k, v in encode(tokenizer, r["prompt"], r["completion"], 128).items() if k != "labels"} for r in rows])
    from llmcompressor import oneshot

    scheme = {
        "group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": spec.bits, "type": "int", "symmetric": True, "strategy": "group", "group_size": spec.group_size},
        }
    }
    if spec.method == "gptq":
        from llmcompressor.modifiers.quantization import GPTQModifier

        recipe = GPTQModifier(config_groups=scheme, ignore=["lm_head"])
    else:
        from llmcompressor.modifiers.awq import AWQModifier

        recipe = AWQModifier(config_groups=scheme, ignore=["lm_head"])
    model = merged.to(device)
    t0 = time.perf_counter()
    try:
        oneshot(model=model, dataset=calib, recipe=recipe, processor=tokenizer, num_calibration_samples=len(rows), max_seq_length=128, pipeline="basic" if spec.method == "gptq" else "independent")
    except (ValueError, NotImplementedError, RuntimeError) as exc:
        raise RecipeError(f"method: {spec.method} quantization failed on {device}: {exc}", error_type="RecipeFailed") from exc
    seconds = time.perf_counter() - t0
    quant_dir = ctx.out_dir / "quantized"
    model.save_pretrained(quant_dir, save_compressed=True)
    tokenizer.save_pretrained(quant_dir)
    size_after = dir_bytes(quant_dir)

    # The output must load with plain transformers (as vLLM would) and give finite logits close to the merged model's.
    reloaded = AutoModelForCausalLM.from_pretrained(quant_dir, dtype=torch.float32).to(device)
    reference = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).to(device)
    probe = torch.tensor([encode(tokenizer, rows[0]["prompt"], rows[0]["completion"], 64)["input_ids"]], device=device)
    with torch.no_grad():
        a, b = reloaded(probe).logits, reference(probe).logits
    if not torch.isfinite(a).all():
        raise RecipeError("quantized model produced non-finite logits", error_type="RecipeFailed")
    diff = float((a - b).abs().max())
    fmt = getattr(getattr(reloaded.config, "quantization_config", None), "format", None) or reloaded.config.to_dict().get("quantization_config", {}).get("format")
    ctx.events.metric("size_after_bytes", size_after)
    ctx.events.metric("quantize_seconds", seconds)
    ctx.events.progress(2, 2)
    return {"size_before_bytes": size_before, "size_after_bytes": size_after, "seconds": seconds, "format": fmt, "max_abs_logit_diff": diff, "method": spec.method, "bits": spec.bits, "group_size": spec.group_size}


if __name__ == "__main__":
    sys.exit(run_recipe("quantize", parse_spec, run))
