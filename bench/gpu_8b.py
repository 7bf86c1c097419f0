"""GPU benchmark of the train recipe at the sizes users fine-tune: a Llama-3-8B-shaped model (hidden
4096, 32 layers, 32/8 heads, intermediate 14336, vocab 128256) built from a config with random
weights (no download), LoRA bf16 and QLoRA NF4 on packed 2,048- and 4,096-token rows, each run
as its own recipe process exactly as a GPU worker runs it; then GPTQ of the merged model and the
eval recipe on it. Writes bench/results/gpu-8b.json (or --out), updating it in place, so phases
can run in separate device calls:

    python bench/gpu_8b.py --work bench/.tmp/gpu-8b --out $OUT/gpu-8b.json
    python bench/gpu_8b.py --work bench/.tmp/gpu-8b --out $OUT/gpu-8b.json --previous bench/results/gpu-8b.json

The variants run in priority order until --deadline-s; with --previous (the last call's results)
the next call skips what was measured or failed and goes on from there.

Every training variant is measured against the others in the same run: Liger kernels (RMSNorm,
RoPE, SwiGLU; the recipe's `liger` option) and `torch.compile` of the decoder layers (`compile`)
each on and off, and the peer, a bare PyTorch + PEFT loop on the same model, LoRA config and
tokens per step. A variant that fails (out of memory, a kernel that does not build) is recorded
as a finding, not a reason to lose the run; a phase that would overrun --deadline-s is skipped
and says so. `--device cpu --size tiny` runs the whole script on the CPU to check it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_recipes import REPO, StageFailed, _git_sha, peer_training_loop, pick, stage, train  # noqa: E402

STEPS = 12  # optimizer steps per variant; tokens/s and MFU are the steady state after the first
BUDGET_S = {"train": 60, "train-compile": 70, "peer": 60, "quantize": 150, "evaluate": 60, "quantize-awq": 400}  # rough costs at 8B on one H200


@dataclass(frozen=True)
class Variant:
    name: str
    seq_length: int
    batch_size: int
    qlora: bool = False
    liger: str = "off"
    compile: bool = False
    gradient_checkpointing: bool = False
    peer: bool = False  # the bare PyTorch + PEFT loop instead of the recipe


# In priority order. 8,192 tokens per step on both row lengths: enough rows of M for the matmuls,
# and the bf16 model fits without gradient checkpointing (activations ~5-8 MB per token at 8B).
TRAINING: list[Variant] = [
    Variant("lora_2048", 2048, 4),
    Variant("lora_2048_liger", 2048, 4, liger="on"),
    Variant("peer", 2048, 4, peer=True),
    Variant("lora_4096", 4096, 2),
    Variant("qlora_2048", 2048, 4, qlora=True),
    Variant("qlora_4096", 4096, 2, qlora=True),
    Variant("lora_2048_liger_compile", 2048, 4, liger="on", compile=True),
    Variant("lora_2048_compile", 2048, 4, compile=True),
    Variant("lora_2048_batch8", 2048, 8),
    Variant("lora_4096_compile", 4096, 2, compile=True),
    Variant("qlora_2048_compile", 2048, 4, qlora=True, compile=True),
    Variant("qlora_4096_compile", 4096, 2, qlora=True, compile=True),
    # the same variant twice, for the run-to-run spread
    Variant("lora_2048_compile_repeat", 2048, 4, compile=True),
    Variant("lora_2048_repeat", 2048, 4),
]
PHASES = ("train", "quantize", "evaluate", "quantize-awq")


def load_results(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def save_results(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def build_base(size: str, out: Path, device: str, seed: int = 0) -> dict[str, Any]:
    """The size's Llama config with random weights, built on ``device`` (seconds on a GPU, where the
    make_tiny_model recipe's CPU init of 8B parameters takes minutes), saved with the tiny-instruct
    tokenizer. The vocabulary rows beyond the tokenizer's words are padding, as in every size."""
    import torch
    from transformers import LlamaForCausalLM

    from forgeline_recipes.tiny import SIZES, build_word_tokenizer, llama_config, task_vocabulary

    if (out / "config.json").is_file() and (out / "facts.json").is_file():
        facts = json.loads((out / "facts.json").read_text(encoding="utf-8"))
        if facts["size"] == size:
            return {**facts, "reused": True}
    shape = SIZES[size]
    tokenizer = build_word_tokenizer(task_vocabulary(), shape.max_position_embeddings)
    config = llama_config(size, len(tokenizer))
    started = time.perf_counter()
    torch.manual_seed(seed)
    dtype = getattr(torch, shape.default_dtype) if device.startswith("cuda") else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    parameters = sum(p.numel() for p in model.parameters())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    facts = {
        "size": size,
        "parameters": parameters,
        "embedding_parameters": config.vocab_size * config.hidden_size,
        "hidden_size": config.hidden_size,
        "layers": config.num_hidden_layers,
        "heads": config.num_attention_heads,
        "kv_heads": config.num_key_value_heads,
        "intermediate_size": config.intermediate_size,
        "vocab_size": config.vocab_size,
        "dtype": str(dtype).removeprefix("torch."),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "facts.json").write_text(json.dumps(facts), encoding="utf-8")
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return facts


def derived(run: dict[str, Any], base: dict[str, Any], peak_flops: float | None) -> dict[str, Any]:
    """Seconds per optimizer step, and MFU with the embedding rows left out of N (they do no
    matmul: a stricter count than the recipe's 4N + 2N_trainable, which credits them)."""
    steady = run.get("steady_tokens_per_s")
    if not steady or not run.get("total_steps"):
        return {}
    out: dict[str, Any] = {"seconds_per_step": run["tokens_this_run"] / run["total_steps"] / steady}
    if peak_flops and run.get("trainable_parameters"):
        flops = 4 * (run["parameters"] - base["embedding_parameters"]) + 2 * run["trainable_parameters"]
        out["mfu_non_embedding"] = flops * steady / peak_flops
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="scratch directory; the base model in it is reused when its size matches")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu-8b.json")
    parser.add_argument("--size", default="8b")
    parser.add_argument("--previous", type=Path, help="results of an earlier call to continue from (when --out does not exist yet)")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--only", default="", help="comma-separated variant names to run (default: every variant of the phases)")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--scale", type=int, default=1, help="divide every row length by this (the CPU smoke test uses --scale 32)")
    parser.add_argument("--deadline-s", type=float, default=560.0, help="skip what would not finish inside this many seconds")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    args.work = args.work.resolve()  # the recipes run in their own directory

    import torch

    from forgeline_recipes.runtime import peak_flops as device_peak_flops

    began = time.perf_counter()
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("gpu_8b.py needs a CUDA device (or --device cpu --size tiny --scale 32 for a smoke test)")
    phases = [p for p in args.phases.split(",") if p]
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise SystemExit(f"--phases: unknown {', '.join(unknown)}; expected {', '.join(PHASES)}")
    only = {n for n in args.only.split(",") if n}

    results = load_results(args.out) or (load_results(args.previous) if args.previous else {})
    results.setdefault("benchmark", "gpu-8b")
    training: dict[str, Any] = results.setdefault("training", {})
    skipped: dict[str, str] = results.setdefault("skipped", {})
    runs_log: list[dict[str, Any]] = results.setdefault("device_calls", [])
    call = {"phases": phases, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git_sha": _git_sha()}
    runs_log.append(call)

    def left() -> float:
        return args.deadline_s - (time.perf_counter() - began)

    def attempt(name: str, cost: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """Run ``measure`` unless it would overrun the deadline; record failures as findings."""
        if left() < BUDGET_S[cost]:
            skipped[name] = f"not run: {left():.0f}s left in the device call, about {BUDGET_S[cost]}s needed"
            print(f"skip {name}: {skipped[name]}", file=sys.stderr, flush=True)
            return None
        skipped.pop(name, None)
        started = time.perf_counter()
        try:
            result = measure()
        except (StageFailed, subprocess.TimeoutExpired) as exc:
            result = {"error": str(exc)}
        except torch.OutOfMemoryError as exc:
            result = {"error": f"out of memory: {str(exc)[:300]}"}
        result["bench_seconds"] = round(time.perf_counter() - started, 1)
        print(f"{name}: {json.dumps({k: result.get(k) for k in ('steady_tokens_per_s', 'tokens_per_s', 'mfu', 'peak_memory_bytes', 'error')})}", file=sys.stderr, flush=True)
        return result

    if args.device.startswith("cuda"):
        results["gpu"] = torch.cuda.get_device_name(0)
    results["versions"] = versions()
    dataset, base_dir = args.work / "data", args.work / "base"
    if not (dataset / "train.jsonl").is_file():
        from make_tiny_dataset import write_dataset

        write_dataset(dataset, train_per_op=6000, eval_per_op=40)
    base = build_base(args.size, base_dir, args.device)
    call["base_model"] = base
    results["model"] = {k: v for k, v in base.items() if k not in ("reused", "build_seconds")}
    results["model"]["built_from_config"] = True
    save_results(args.out, results)
    peak = device_peak_flops(torch.device(args.device))

    for phase in phases:
        for variant in TRAINING if phase == "train" else []:
            done = results.get("peer") if variant.peer else training.get(variant.name)
            if (only and variant.name not in only) or (done and not only):
                continue
            if variant.peer:
                batch, seq = variant.batch_size, variant.seq_length // args.scale
                peer = attempt("peer", "peer", lambda: peer_training_loop(args.device, base_dir, dataset, batch, seq, steps=args.steps))
                if peer is not None:
                    if peer.get("tokens_per_s"):
                        peer["seconds_per_step"] = batch * seq / peer["tokens_per_s"]
                    results["peer"] = peer
                save_results(args.out, results)
                continue
            options = {"liger": variant.liger, "compile": variant.compile}
            shape = {"seq_length": variant.seq_length // args.scale, "batch_size": variant.batch_size}
            fields = {
                **shape, **options, "packing": True, "qlora": variant.qlora, "gradient_checkpointing": variant.gradient_checkpointing,
                "checkpoint_every": args.steps + 1000,  # no checkpoint inside the timed steps; the adapter is saved after them
                "log_every": 4,
            }
            if variant.qlora and not cuda:
                skipped[variant.name] = "QLoRA needs CUDA (bitsandbytes)"
                continue
            run = attempt(
                variant.name,
                "train-compile" if options["compile"] else "train",
                lambda v=variant, f=fields: train(args.device, base_dir, dataset, args.work / v.name, args.steps, **f),
            )
            if run is not None:
                training[variant.name] = {**run, **derived(run, base, peak), "options": options, "variant": asdict(variant)}
            save_results(args.out, results)
        method = {"quantize": "gptq", "quantize-awq": "awq"}.get(phase)
        if method and not (results.get("quantization") or {}).get(method):
            adapter = args.work / "lora_2048" / "adapter"
            spec = {
                "device": args.device, "seed": 0, "base_model": str(base_dir), "dataset_dir": str(dataset), "method": method,
                "bits": 4, "group_size": 128 if args.size != "tiny" else 32, "calibration_samples": 128,
                **({"adapter": str(adapter)} if (adapter / "adapter_config.json").is_file() else {}),
            }
            run = attempt(method, phase, lambda m=method, s=spec: quantize(s, args.work / f"quantize-{m}"))
            if run is not None:
                results.setdefault("quantization", {})[method] = run
            save_results(args.out, results)
        if phase == "evaluate" and not results.get("evaluation"):
            quantized = args.work / "quantize-gptq"
            models = {
                **({"candidate": str(quantized / "quantized")} if (quantized / "quantized" / "config.json").is_file() else {}),
                **({"candidate_unquantized": str(quantized / "merged")} if (quantized / "merged" / "config.json").is_file() else {}),
                "comparator": str(base_dir),
            }
            spec = {"device": args.device, "seed": 0, "models": models, "dataset_dir": str(dataset), "suite": "tiny-instruct"}
            run = attempt("evaluate", "evaluate", lambda: evaluate(spec, args.work / "eval"))
            if run is not None:
                results["evaluation"] = run
            save_results(args.out, results)

    results["headline"] = headline(results)
    results["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results["mfu_formula"] = (
        "recipe: (4N + 2N_trainable) * steady tokens/s / 989e12 (H100/H200 dense bf16), N counting every weight; "
        "mfu_non_embedding: the same with the input-embedding rows left out of N"
    )
    call["wall_seconds"] = round(time.perf_counter() - began, 1)
    save_results(args.out, results)
    print(json.dumps(results["headline"], indent=2))


def quantize(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    run = stage("quantize", spec, out)
    r = run.result
    return {
        **pick(r, "format", "bits", "group_size", "calibration_samples", "adapter_merged", "size_before_bytes", "size_after_bytes",
               "compression_ratio", "merge_seconds", "quantize_seconds", "peak_memory_bytes"),
        "top1_agreement_with_merged": r["verify"]["top1_agreement_with_merged"],
        "process_seconds": round(run.seconds, 2),
    }


def evaluate(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    r = stage("evaluate", spec, out).result
    return {
        "examples": r["examples"],
        "peak_memory_bytes": r.get("peak_memory_bytes"),
        "models": {
            name: {
                "examples_per_s": info["examples_per_s"],
                **{k: info[k] for k in ("generated_tokens_per_s", "seconds") if k in info},
                **{m: est["value"] for m, est in info["metrics"].items()},
            }
            for name, info in r["models"].items()
        },
    }


def headline(results: dict[str, Any]) -> dict[str, Any]:
    training, peer = results.get("training", {}), results.get("peer") or {}

    def tps(name: str) -> float | None:
        return (training.get(name) or {}).get("steady_tokens_per_s")

    best = max((n for n in training if n.startswith("lora_2048") and tps(n) and training[n].get("batch_size") == 4), key=lambda n: tps(n) or 0, default=None)
    out: dict[str, Any] = {}
    if best:
        run = training[best]
        out.update({
            "best_bf16_lora_2048": best, "tokens_per_s": round(run["steady_tokens_per_s"]), "mfu": run.get("mfu"),
            "mfu_non_embedding": run.get("mfu_non_embedding"), "peak_memory_bytes": run.get("peak_memory_bytes"),
            "seconds_per_step": run.get("seconds_per_step"),
        })
        if peer.get("tokens_per_s"):
            out["recipe_vs_peer_tokens_per_s"] = run["steady_tokens_per_s"] / peer["tokens_per_s"]
    models = (results.get("evaluation") or {}).get("models", {})
    if "candidate" in models and "candidate_unquantized" in models:
        out["gptq_perplexity_delta"] = models["candidate"]["perplexity"] - models["candidate_unquantized"]["perplexity"]
        out["eval_examples_per_s"] = {name: round(m["examples_per_s"], 1) for name, m in models.items()}
    gptq = (results.get("quantization") or {}).get("gptq") or {}
    if gptq.get("quantize_seconds"):
        out.update({k: gptq[k] for k in ("quantize_seconds", "size_before_bytes", "size_after_bytes", "top1_agreement_with_merged")})
    for variant in TRAINING:
        if tps(variant.name):
            out[f"{variant.name}_tokens_per_s"] = round(tps(variant.name) or 0)
    return out


def versions() -> dict[str, str]:
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for dist in ("torch", "triton", "transformers", "peft", "trl", "accelerate", "liger-kernel", "bitsandbytes", "llmcompressor", "compressed-tensors"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "absent"
    return out


if __name__ == "__main__":
    main()
