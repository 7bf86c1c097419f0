"""Recipe make_tiny_model: a Llama-architecture model built from a config with a fixed seed, plus
the tiny-instruct word-level tokenizer, saved with ``save_pretrained``. Nothing is downloaded.

Spec::

    {"size": "tiny" | "0.5b", "seed": 0, "device": "cpu", "dtype": "float32" (optional)}

Weights are always initialised on the CPU, so a seed gives the same bytes on any machine (the
result carries their sha256). ``tiny`` (~0.4M parameters) is the CPU test/demo model; ``0.5b``
(~0.48B) is for GPU throughput runs and takes a few GB of RAM to build.

Also runnable without a spec file::

    python make_tiny_model.py --size 0.5b --seed 0 --out /models/llama-0.5b
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from forgeline_recipes.protocol import RecipeContext, run_recipe
from forgeline_recipes.spec import MakeTinyModelInput, MakeTinyModelResult, TinyModelDtype, parse_input
from forgeline_recipes.tiny import SIZES

DTYPES = list(get_args(TinyModelDtype))


@dataclass(frozen=True)
class MakeModelSpec:
    size: str
    dtype: str
    device: str
    seed: int


def parse_spec(raw: dict[str, Any]) -> MakeModelSpec:
    """Validate the spec (src/contracts/recipes/make-tiny-model.ts); errors name the field."""
    spec = parse_input(MakeTinyModelInput, raw)
    return MakeModelSpec(size=spec.size, dtype=spec.dtype or SIZES[spec.size].default_dtype, device=spec.device, seed=spec.seed)


def build_model(size: str, seed: int, out_dir: Path, dtype: str | None = None) -> dict[str, Any]:
    """Build, seed and save the model and tokenizer of ``size`` into ``out_dir``; return facts about it."""
    import torch
    from transformers import LlamaForCausalLM

    from forgeline_recipes.modeling import dir_bytes, weights_sha256
    from forgeline_recipes.tiny import build_word_tokenizer, llama_config, task_vocabulary

    shape = SIZES[size]
    tokenizer = build_word_tokenizer(task_vocabulary(), shape.max_position_embeddings)
    config = llama_config(size, len(tokenizer))
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype or shape.default_dtype))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {
        "size": size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": dtype or shape.default_dtype,
        "bytes": dir_bytes(out_dir),
        "weights_sha256": weights_sha256(out_dir),
        "vocabulary": len(tokenizer),
    }


def run(ctx: RecipeContext[MakeModelSpec]) -> dict[str, Any]:
    from forgeline_recipes.runtime import setup

    setup("cpu", ctx.spec.seed)  # weights are made on the CPU whatever the device: same seed, same bytes
    ctx.events.start(ctx.recipe, device="cpu", size=ctx.spec.size)
    facts = build_model(ctx.spec.size, ctx.spec.seed, ctx.out_dir, ctx.spec.dtype)
    ctx.events.metric("parameters", facts["parameters"])
    ctx.events.metric("bytes", facts["bytes"])
    return {**facts, "seed": ctx.spec.seed}


def main(argv: Sequence[str]) -> int:
    """The protocol invocation, or the ``--size/--seed/--out`` shorthand (writes a spec for it)."""
    if "--spec" in argv:
        return run_recipe("make_tiny_model", parse_spec, run, argv, result_model=MakeTinyModelResult)
    parser = argparse.ArgumentParser(description="Build a seeded Llama from a config (no download).")
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=DTYPES)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    spec = {"size": args.size, "seed": args.seed, "device": "cpu", **({"dtype": args.dtype} if args.dtype else {})}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    try:
        return run_recipe("make_tiny_model", parse_spec, run, ["--spec", handle.name, "--out", args.out], result_model=MakeTinyModelResult)
    finally:
        Path(handle.name).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
