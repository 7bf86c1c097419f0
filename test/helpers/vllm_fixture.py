"""Fixture for the vLLM serving tests and benchmark (run with the main venv's python, not vLLM's).

    python vllm_fixture.py models --out DIR [--prompts 16] [--new-tokens 6]
        DIR/base        the tiny Llama (workers/recipes/make_tiny_model.py's build, seed 0, float32)
        DIR/adapter-a   a LoRA adapter (r=8) on every linear layer, randomly initialised, A and B nonzero
        DIR/adapter-b   another (r=16, other seed)
        (--size 40m --no-reference: the benchmark's larger model and adapters, no reference)
        DIR/reference.json  greedy continuations (token ids) of the same prompts under base, a and b,
                        computed with transformers (+ PEFT for a and b)

    python vllm_fixture.py reference --model DIR --prompts-from REF.json --out OUT.json
        greedy continuations of REF.json's prompts under another model (e.g. the W4A16 checkpoint,
        loaded through transformers' compressed-tensors integration)

Greedy decoding without stopping at EOS (the server is asked with ``ignore_eos``), prompts as
token ids (so both sides see the same input). A prompt is kept only where every step's winning
logit leads the runner-up by at least ``--min-margin`` under all three models, so that float
rounding differences between two correct implementations cannot flip a token, and only where the
three continuations differ from each other, so that a request served with the wrong adapter (or
with none) is always caught. Prints one JSON line with what it wrote.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

RECIPES = Path(__file__).resolve().parents[2] / "workers" / "recipes"
sys.path.insert(0, str(RECIPES))

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ADAPTERS = {"adapter-a": {"r": 8, "lora_alpha": 16, "seed": 1}, "adapter-b": {"r": 16, "lora_alpha": 16, "seed": 2}}


# Shapes for the serving benchmark on small CPUs, between ``tiny`` (0.4M parameters: all overhead)
# and ``0.5b`` (a few tokens/s on 2 shared cores). Input dims are multiples of 128 (GPTQ groups).
BENCH_SHAPES: dict[str, dict[str, int]] = {
    # ~42M parameters, 84 MB in bf16
    "40m": {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 8, "vocab_size": 4096, "max_position_embeddings": 512},
}


def build_bench_model(size: str, out: Path) -> None:
    """A seeded random Llama of a BENCH_SHAPES shape in bf16, with the tiny-instruct tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from forgeline_recipes.tiny import BOS, EOS, PAD, SPECIAL_TOKENS, build_word_tokenizer, task_vocabulary

    shape = BENCH_SHAPES[size]
    tokenizer = build_word_tokenizer(task_vocabulary(), shape["max_position_embeddings"])
    config = LlamaConfig(
        **shape,
        hidden_act="silu",
        rms_norm_eps=1e-5,
        initializer_range=shape["hidden_size"] ** -0.5,
        tie_word_embeddings=False,
        pad_token_id=SPECIAL_TOKENS.index(PAD),
        bos_token_id=SPECIAL_TOKENS.index(BOS),
        eos_token_id=SPECIAL_TOKENS.index(EOS),
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def greedy(model: Any, ids: list[int], steps: int) -> tuple[list[int], float]:
    """``steps`` greedy tokens after ``ids`` (no EOS stop) and the smallest top-1 / top-2 logit gap."""
    import torch

    seq = list(ids)
    margin = float("inf")
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([seq])).logits[0, -1].float()
            top = torch.topk(logits, 2)
            margin = min(margin, float(top.values[0] - top.values[1]))
            seq.append(int(top.indices[0]))
    return seq[len(ids) :], margin


def candidate_prompts(tokenizer: Any, count: int, seed: int) -> list[list[int]]:
    from forgeline_recipes.tiny import OPERATIONS, SYMBOLS, render_example

    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[list[int]] = []
    while len(out) < count:
        op = rng.choice(list(OPERATIONS))
        items = [rng.choice(SYMBOLS) for _ in range(rng.randint(2, 5))]
        prompt = render_example(op, items)["prompt"]
        if prompt in seen:
            continue
        seen.add(prompt)
        out.append(tokenizer(prompt)["input_ids"])
    return out


def make_adapter(base_dir: Path, out: Path, r: int, lora_alpha: int, seed: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto")
    torch.manual_seed(seed)
    # init_lora_weights=False: B is random too (PEFT's default zeroes it, which is a no-op adapter).
    config = LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules=TARGETS, init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out)


def models(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from make_tiny_model import build_model
    from forgeline_recipes.modeling import load_tokenizer

    torch.set_num_threads(1)
    out = Path(args.out)
    base_dir = out / "base"
    if args.size in BENCH_SHAPES:
        build_bench_model(args.size, base_dir)
    else:
        build_model(args.size, 0, base_dir, "float32" if args.size == "tiny" else None)
    for name, a in ADAPTERS.items():
        make_adapter(base_dir, out / name, a["r"], a["lora_alpha"], a["seed"])
    made = {"size": args.size, "base": str(base_dir), **{n: str(out / n) for n in ADAPTERS}}
    if args.no_reference:
        return made

    tokenizer = load_tokenizer(base_dir)
    variants: dict[str, Any] = {"base": AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()}
    for name in ADAPTERS:
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        variants[name] = PeftModel.from_pretrained(base, out / name).eval()

    kept: list[dict[str, Any]] = []
    tried = 0
    for ids in candidate_prompts(tokenizer, args.candidates, args.seed):
        tried += 1
        row: dict[str, Any] = {"prompt_ids": ids}
        ok = True
        for name, model in variants.items():
            tokens, margin = greedy(model, ids, args.new_tokens)
            row[name] = tokens
            ok = ok and margin >= args.min_margin
        outs = [tuple(row[n]) for n in variants]
        if ok and len(set(outs)) == len(outs):
            kept.append(row)
        if len(kept) == args.prompts:
            break
    if len(kept) < args.prompts:
        raise SystemExit(f"only {len(kept)} of {tried} prompts have margin >= {args.min_margin} and distinct outputs; need {args.prompts}")
    reference = {"new_tokens": args.new_tokens, "min_margin": args.min_margin, "variants": list(variants), "prompts": kept}
    (out / "reference.json").write_text(json.dumps(reference) + "\n", encoding="utf-8")
    return {**made, "reference": str(out / "reference.json"), "prompts": len(kept), "tried": tried}


def reference(args: argparse.Namespace) -> dict[str, Any]:
    """Prompts whose greedy continuation under ``--model`` is decided by a clear margin at every step."""
    import torch
    from transformers import AutoModelForCausalLM

    from forgeline_recipes.modeling import load_tokenizer

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32).eval() if args.base else None
    tokenizer = load_tokenizer(Path(args.model))
    rows: list[dict[str, Any]] = []
    tried = 0
    for ids in candidate_prompts(tokenizer, args.candidates, args.seed):
        tried += 1
        tokens, margin = greedy(model, ids, args.new_tokens)
        if margin < args.min_margin:
            continue
        row: dict[str, Any] = {"prompt_ids": ids, "tokens": tokens, "margin": margin}
        if base is not None:
            row["base"] = greedy(base, ids, args.new_tokens)[0]
        rows.append(row)
        if len(rows) == args.prompts:
            break
    if len(rows) < args.prompts:
        raise SystemExit(f"only {len(rows)} of {tried} prompts have margin >= {args.min_margin} under {args.model}; need {args.prompts}")
    result = {"model": args.model, "new_tokens": args.new_tokens, "min_margin": args.min_margin, "prompts": rows}
    Path(args.out).write_text(json.dumps(result) + "\n", encoding="utf-8")
    return {"reference": args.out, "prompts": len(rows), "tried": tried}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("models")
    m.add_argument("--out", required=True)
    m.add_argument("--prompts", type=int, default=16)
    m.add_argument("--candidates", type=int, default=200)
    m.add_argument("--new-tokens", type=int, default=6)
    m.add_argument("--min-margin", type=float, default=0.05)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--size", default="tiny", help="a size of forgeline_recipes.tiny.SIZES, or a benchmark shape (40m)")
    m.add_argument("--no-reference", action="store_true", help="only the model and adapters (the benchmark)")
    r = sub.add_parser("reference")
    r.add_argument("--model", required=True)
    r.add_argument("--base", help="also record the greedy continuations of this model (to tell the two apart)")
    r.add_argument("--out", required=True)
    r.add_argument("--prompts", type=int, default=12)
    r.add_argument("--candidates", type=int, default=400)
    r.add_argument("--new-tokens", type=int, default=4)
    r.add_argument("--min-margin", type=float, default=0.3)
    r.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = models(args) if args.command == "models" else reference(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
