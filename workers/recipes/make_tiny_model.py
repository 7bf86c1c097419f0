"""Recipe make_tiny_model: a Llama-architecture model built from a config with a fixed seed,
plus the tiny-instruct word tokenizer, saved with save_pretrained. No download.

Spec: {"size": "tiny" | "0.5b", "seed": 0, "device": "cpu"}
Result: {"size", "parameters", "bytes", "path"}
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from forgeline_recipes.protocol import RecipeContext, run_recipe
from forgeline_recipes.spec import SpecReader, read_common
from forgeline_recipes.tiny import SIZES


@dataclass
class Spec:
    size: str
    seed: int
    device: str


def parse_spec(raw: dict[str, Any]) -> Spec:
    r = SpecReader(raw)
    device, seed = read_common(r)
    spec = Spec(size=r.string("size", "tiny", choices=sorted(SIZES)), seed=seed, device=device)
    r.finish()
    return spec


def run(ctx: RecipeContext[Spec]) -> dict[str, Any]:
    import torch
    from transformers import LlamaForCausalLM

    from forgeline_recipes.runtime import setup
    from forgeline_recipes.tiny import build_word_tokenizer, llama_config, task_vocabulary

    setup("cpu", ctx.spec.seed)  # weights are made on the CPU so that a seed gives the same bytes anywhere
    ctx.events.start(ctx.recipe, device="cpu")
    shape = SIZES[ctx.spec.size]
    tokenizer = build_word_tokenizer(task_vocabulary(), shape.max_position_embeddings)
    config = llama_config(ctx.spec.size, len(tokenizer))
    torch.manual_seed(ctx.spec.seed)
    model = LlamaForCausalLM(config).to(getattr(torch, shape.default_dtype))
    model.save_pretrained(ctx.out_dir, safe_serialization=True)
    tokenizer.save_pretrained(ctx.out_dir)
    size = sum(p.stat().st_size for p in ctx.out_dir.rglob("*") if p.is_file())
    params = sum(p.numel() for p in model.parameters())
    ctx.events.metric("parameters", params)
    return {"size": ctx.spec.size, "parameters": params, "bytes": size, "path": str(ctx.out_dir)}


if __name__ == "__main__":
    sys.exit(run_recipe("make_tiny_model", parse_spec, run))
