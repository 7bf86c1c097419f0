"""GPU benchmark of the release recipes: train (LoRA) → quantize (GPTQ, AWQ) → evaluate, each run as
its own process exactly as a GPU worker runs it, on the ~0.5B Llama built from a config (no
download). Writes bench/results/gpu-recipes.json (or --out).

Peer, measured in the same run: a hand-written PyTorch + PEFT training loop on the same model,
LoRA config and tokens per step, with no Trainer, no data pipeline and no protocol, as the
ceiling our train recipe is held against.

    python bench/gpu_recipes.py --work /tmp/gpu-bench --out bench/results/gpu-recipes.json

Needs CUDA. Runs in about five minutes on one H200.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workers" / "recipes"))

from forgeline_recipes.runner import RecipeRun, run_recipe_process  # noqa: E402
from train import training_flops_per_token  # noqa: E402

LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}


class StageFailed(SystemExit):
    pass


def stage(recipe: str, spec: dict[str, Any], out_dir: Path) -> RecipeRun:
    run = run_recipe_process(recipe, spec, out_dir, timeout_s=1800)
    if run.returncode != 0:
        sys.stderr.write(run.stderr[-6000:])
        raise StageFailed(f"{recipe} failed (exit {run.returncode}): {run.error}")
    print(f"{recipe}: {run.seconds:.1f}s", file=sys.stderr, flush=True)
    return run


def pick(result: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: result.get(k) for k in keys}


TRAIN_KEYS = (
    "attn_implementation", "liger", "compile", "packing", "seq_length", "batch_size", "total_steps", "tokens_this_run", "tokens_per_s", "steady_tokens_per_s",
    "train_runtime_s", "flops_per_token", "mfu", "peak_memory_bytes", "final_loss", "parameters", "trainable_parameters",
    "processes", "global_batch_size", "peak_memory_bytes_per_process",
)


def train(device: str, base: Path, dataset: Path, out: Path, steps: int, **fields: Any) -> dict[str, Any]:
    spec = {
        "device": device, "seed": 0, "base_model": str(base), "dataset_dir": str(dataset), "lora": LORA,
        "steps": steps, "learning_rate": 2e-4, "checkpoint_every": steps, "log_every": 5, **fields,
    }
    run = stage("train", spec, out)
    return {**pick(run.result, *TRAIN_KEYS), "process_seconds": round(run.seconds, 2)}


def peer_training_loop(device_name: str, base: Path, dataset: Path, batch_size: int, seq_length: int, steps: int, warmup: int = 3) -> dict[str, Any]:
    """Tokens/s of a bare loop: full seq_length rows of the same token stream (no padding, one
    causal mask per row, SDPA), bf16, AdamW on the LoRA weights. Measured in-process after
    ``warmup`` steps, timed with CUDA synchronisation."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from forgeline_recipes.data import encode_for_training, load_split
    from forgeline_recipes.modeling import load_tokenizer

    torch.manual_seed(0)
    device = torch.device(device_name)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda _device: None)
    tokenizer = load_tokenizer(base)
    encoded, _ = encode_for_training(tokenizer, load_split(dataset, "train"), seq_length)
    stream = torch.tensor([t for e in encoded for t in e.input_ids], dtype=torch.long)
    rows = stream[: (len(stream) // seq_length) * seq_length].view(-1, seq_length)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16 if cuda else torch.float32, attn_implementation="sdpa").to(device)
    model = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=0.0, target_modules=LORA["target_modules"], task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    from forgeline_recipes.runtime import peak_flops, peak_memory_bytes, reset_peak_memory

    reset_peak_memory(device)
    model.train()

    def step(i: int) -> None:
        start = (i * batch_size) % max(len(rows) - batch_size, 1)
        batch = rows[start : start + batch_size].to(device, non_blocking=True)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for i in range(warmup):
        step(i)
    sync(device)
    started = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    sync(device)
    seconds = time.perf_counter() - started
    tokens = steps * batch_size * seq_length
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    flops_per_token = training_flops_per_token(parameters, trainable)  # the recipe's own formula
    peak = peak_flops(device)
    result = {
        "what": "hand-written PyTorch + PEFT loop, same model/LoRA/tokens per step, SDPA, no Trainer",
        "batch_size": batch_size, "seq_length": seq_length, "steps": steps, "tokens_per_s": tokens / seconds,
        "flops_per_token": flops_per_token, "mfu": flops_per_token * tokens / seconds / peak if peak else None,
        "peak_memory_bytes": peak_memory_bytes(device),
    }
    del model, optimizer
    if cuda:
        torch.cuda.empty_cache()
    return result


def optional(measure: Any) -> dict[str, Any]:
    """A variant whose failure is a finding to record, not a reason to lose the whole run."""
    try:
        return measure()
    except StageFailed as exc:
        return {"error": str(exc)}


def prepare(work: Path, size: str, device: str) -> tuple[Path, Path, dict[str, Any]]:
    """Empty ``work``; write the data set and build the base model there. Returns (dataset
    directory, model directory, make_tiny_model's result). The data set is the shipped task with
    30,000 training examples of ~12 tokens (~0.36M tokens), so packed training runs many full
    steps, and 200 held-out examples."""
    from make_tiny_dataset import write_dataset

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    write_dataset(work / "data", train_per_op=6000, eval_per_op=40)
    model = stage("make_tiny_model", {"device": device, "seed": 0, "size": size}, work / "base").result
    return work / "data", work / "base", model


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "peft", "trl", "llmcompressor", "compressed-tensors", "accelerate"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "absent"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (emptied first)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu-recipes.json")
    parser.add_argument("--size", default="0.5b")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-length", type=int, default=1024)
    parser.add_argument("--group-size", type=int, default=128, help="GPTQ/AWQ group size (32 for --size tiny)")
    parser.add_argument("--device", default="cuda", help="cpu only to smoke-test this script (--size tiny); AWQ needs CUDA")
    args = parser.parse_args()

    import torch

    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_recipes.py needs a CUDA device (or --device cpu --size tiny for a smoke test)")
    began = time.perf_counter()
    dataset, base, model = prepare(args.work, args.size, device)

    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save_partial(**sections: Any) -> None:
        """What is measured so far, in case a later stage fails or the run is cut short."""
        args.out.write_text(json.dumps({"benchmark": "gpu-recipes", "partial": True, **sections}, indent=2) + "\n", encoding="utf-8")

    shape = {"batch_size": args.batch_size, "seq_length": args.seq_length}
    training = {
        "packed": train(device, base, dataset, args.work / "train-packed", args.steps, packing=True, **shape),
        "packed_flex_attention": optional(lambda: train(device, base, dataset, args.work / "train-packed-flex", args.steps, packing=True, attn_implementation="flex_attention", **shape)),
        # QLoRA needs CUDA and bitsandbytes; where either is missing the recipe refuses (exit 2), recorded here.
        "qlora_packed": optional(lambda: train(device, base, dataset, args.work / "train-qlora", args.steps, packing=True, qlora=True, **shape)),
        "unpacked": train(device, base, dataset, args.work / "train-unpacked", args.steps, batch_size=128, seq_length=64),
    }
    save_partial(training=training)
    peer = peer_training_loop(device, base, dataset, args.batch_size, args.seq_length, steps=args.steps)
    save_partial(training=training, peer=peer)

    adapter = args.work / "train-packed" / "adapter"
    quantization = {}
    methods = ("gptq", "awq") if device.startswith("cuda") else ("gptq",)
    for method in methods:
        run = stage("quantize", {"device": device, "seed": 0, "base_model": str(base), "adapter": str(adapter), "dataset_dir": str(dataset), "method": method, "bits": 4, "group_size": args.group_size, "calibration_samples": 128}, args.work / f"quantize-{method}")
        r = run.result
        quantization[method] = {
            **pick(r, "format", "bits", "group_size", "calibration_samples", "size_before_bytes", "size_after_bytes", "compression_ratio", "merge_seconds", "quantize_seconds", "peak_memory_bytes"),
            "top1_agreement_with_merged": r["verify"]["top1_agreement_with_merged"],
            "process_seconds": round(run.seconds, 2),
        }
        save_partial(training=training, peer=peer, quantization=quantization)

    models = {
        "candidate": str(args.work / "quantize-gptq" / "quantized"),
        "candidate_unquantized": str(args.work / "quantize-gptq" / "merged"),
        **({"candidate_awq": str(args.work / "quantize-awq" / "quantized")} if "awq" in quantization else {}),
        "comparator": str(base),
    }
    evaluation = stage("evaluate", {"device": device, "seed": 0, "models": models, "dataset_dir": str(dataset), "suite": "tiny-instruct"}, args.work / "eval").result
    eval_summary = {
        "examples": evaluation["examples"],
        "peak_memory_bytes": evaluation.get("peak_memory_bytes"),
        "models": {
            name: {"examples_per_s": round(info["examples_per_s"], 1), **{m: round(est["value"], 4) for m, est in info["metrics"].items()}}
            for name, info in evaluation["models"].items()
        },
    }

    packed = training["packed"]
    result = {
        "benchmark": "gpu-recipes",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_sha": os.environ.get("FORGELINE_GIT_SHA") or _git_sha(),
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "gpu_count": torch.cuda.device_count(),
        "versions": versions(),
        "model": {"size": args.size, "parameters": model["parameters"], "built_from_config": True},
        "dataset": {"train_examples": 30000, "eval_examples": evaluation["examples"], "task": "tiny-instruct (shipped generator)"},
        "headline": {
            "train_tokens_per_s": round(packed["steady_tokens_per_s"]),
            "train_mfu": packed["mfu"],
            "train_peak_memory_bytes": packed["peak_memory_bytes"],
            "recipe_vs_peer_tokens_per_s": packed["steady_tokens_per_s"] / peer["tokens_per_s"],
            "gptq_seconds": quantization["gptq"]["quantize_seconds"],
            "awq_seconds": quantization["awq"]["quantize_seconds"] if "awq" in quantization else None,
            "eval_examples_per_s": eval_summary["models"]["candidate"]["examples_per_s"],
        },
        "training": training,
        "peer": peer,
        "quantization": quantization,
        "evaluation": eval_summary,
        "mfu_formula": "flops_per_token * tokens_per_s / 989e12 (H200 dense bf16); LoRA flops_per_token = 4N + 2N_trainable",
        "wall_seconds": round(time.perf_counter() - began, 1),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["headline"], indent=2))


def _git_sha() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == "__main__":
    main()
