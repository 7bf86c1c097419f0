"""Data-parallel scaling of train: the ~0.5B config-built Llama trained with 1 GPU and with
N GPUs (one rank per GPU, NCCL), same per-GPU batch, through the recipe exactly as a GPU worker
runs it. Writes bench/results/gpu-multi.json (or --out): tokens/s for each, the scaling
efficiency tokens/s(N) / (N x tokens/s(1)), and peak memory per GPU.

    NCCL_NVLS_ENABLE=0 python bench/gpu_multi.py --work /tmp/gpu-multi --gpus 2

The 1-GPU run is the peer, measured in the same run. ``--device cpu --size tiny`` runs the same
script with gloo ranks on CPU, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from gpu_recipes import REPO, prepare, train, versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (emptied first)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu-multi.json")
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--size", default="0.5b")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16, help="per GPU")
    parser.add_argument("--seq-length", type=int, default=1024)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()

    import torch

    cuda = args.device.startswith("cuda")
    if cuda and torch.cuda.device_count() < args.gpus:
        raise SystemExit(f"--gpus {args.gpus}: only {torch.cuda.device_count()} CUDA device(s) visible")
    if cuda:
        os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    began = time.perf_counter()
    dataset, base, model = prepare(args.work, args.size, args.device)

    shape = {"batch_size": args.batch_size, "seq_length": args.seq_length, "packing": True}
    runs: dict[str, dict[str, Any]] = {}
    for processes in (1, args.gpus):
        visible = ",".join(str(i) for i in range(processes))
        if cuda:
            os.environ["CUDA_VISIBLE_DEVICES"] = visible  # as the JobRunner sets it from the GPU lease
        runs[f"{processes}"] = train(args.device, base, dataset, args.work / f"train-{processes}", args.steps, processes=processes, **shape)

    one, many = runs["1"], runs[str(args.gpus)]
    speedup = many["steady_tokens_per_s"] / one["steady_tokens_per_s"]
    result = {
        "benchmark": "gpu-multi",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "versions": versions(),
        "model": {"size": args.size, "parameters": model["parameters"], "built_from_config": True},
        "per_gpu_batch": shape,
        "headline": {
            "tokens_per_s_1": round(one["steady_tokens_per_s"]),
            f"tokens_per_s_{args.gpus}": round(many["steady_tokens_per_s"]),
            "speedup": speedup,
            "scaling_efficiency": speedup / args.gpus,
            "peak_memory_bytes_per_gpu": many.get("peak_memory_bytes_per_process"),
        },
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["headline"], indent=2))


if __name__ == "__main__":
    main()
