"""The whole tiny pipeline on this machine, each recipe as its own process (as a GPU worker runs
them): make the tiny model → train the demo LoRA → merge + quantize (GPTQ) → evaluate base, merged
and quantized on the held-out split. Prints a JSON summary with per-stage wall times.

    .venv/bin/python workers/recipes/run_tiny_pipeline.py --work /tmp/tiny-pipeline [--device cuda]

``--size 0.5b --device cuda`` runs the same stages on the ~0.5B config on a GPU machine;
``--train '{"batch_size": 128}'`` / ``--quantize '{"method": "awq"}'`` override demo fields.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from forgeline_recipes.runner import RecipeRun, run_recipe_process
from forgeline_recipes.tiny import DATASET_DIR, DEMO_QUANTIZE, DEMO_TRAIN, SIZES


def _stage(recipe: str, spec: dict[str, Any], out_dir: Path, timings: dict[str, float]) -> RecipeRun:
    run = run_recipe_process(recipe, spec, out_dir)
    timings[recipe] = round(run.seconds, 2)
    if run.returncode != 0:
        sys.stderr.write(run.stderr[-4000:])
        raise SystemExit(f"{recipe} failed (exit {run.returncode}): {run.error}")
    return run


def run_pipeline(
    work: Path,
    device: str = "cpu",
    size: str = "tiny",
    seed: int = 0,
    train_overrides: dict[str, Any] | None = None,
    quantize_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the four stages under ``work`` (emptied first) and summarise them. The overrides
    replace fields of the demo train / quantize specs (e.g. a larger batch on a GPU)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    common = {"device": device, "seed": seed}
    timings: dict[str, float] = {}
    started = time.perf_counter()

    model = _stage("make_tiny_model", {**common, "device": "cpu", "size": size}, work / "base", timings).result
    train = _stage(
        "train",
        {**common, **DEMO_TRAIN, **(train_overrides or {}), "base_model": str(work / "base"), "dataset_dir": str(DATASET_DIR)},
        work / "train",
        timings,
    ).result
    quantize = _stage(
        "quantize",
        {**common, **DEMO_QUANTIZE, **(quantize_overrides or {}), "base_model": str(work / "base"), "adapter": str(work / "train" / "adapter"), "dataset_dir": str(DATASET_DIR)},
        work / "quantize",
        timings,
    ).result
    models = {"candidate": str(work / "quantize" / "quantized"), "candidate_unquantized": str(work / "quantize" / "merged"), "comparator": str(work / "base")}
    evaluation = _stage("evaluate", {**common, "models": models, "dataset_dir": str(DATASET_DIR), "suite": "tiny-instruct"}, work / "eval", timings).result

    def headline(name: str) -> dict[str, Any]:
        return {m: round(est["value"], 4) for m, est in evaluation["models"][name]["metrics"].items()}

    return {
        "size": size,
        "device": device,
        "parameters": model["parameters"],
        "pipeline_seconds": round(time.perf_counter() - started, 2),
        "stage_seconds": timings,
        "train": {k: train.get(k) for k in ("total_steps", "final_loss", "tokens_per_s", "train_runtime_s", "mfu", "peak_memory_bytes", "gpu")},
        "quantize": {k: quantize.get(k) for k in ("method", "size_before_bytes", "size_after_bytes", "compression_ratio", "quantize_seconds", "format")},
        "eval": {"base": headline("comparator"), "merged": headline("candidate_unquantized"), "quantized": headline("candidate")},
        "candidate_vs_base": {m: {"delta": round(est["delta"], 4), "ci": [round(x, 4) for x in est["deltaCi"]]} for m, est in evaluation["metrics"].items()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (emptied first)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=json.loads, default={}, help='JSON overriding demo train fields, e.g. \'{"batch_size": 128}\'')
    parser.add_argument("--quantize", type=json.loads, default={}, help='JSON overriding demo quantize fields, e.g. \'{"method": "awq"}\'')
    args = parser.parse_args()
    print(json.dumps(run_pipeline(args.work, args.device, args.size, args.seed, args.train, args.quantize), indent=2))
