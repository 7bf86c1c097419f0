"""Process setup shared by the recipes: device, CPU threads, seeding, accelerator facts."""

from __future__ import annotations

import os

import torch

from .protocol import SpecError, log

# Dense (no sparsity) bf16 tensor-core peak, FLOP/s, by a substring of torch.cuda.get_device_name().
# Order matters: more specific names first.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989e12),
    ("H100", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10G", 70e12),
)


def cpu_cores() -> int:
    """Cores this process may run on (respects affinity masks / container CPU sets)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def setup(device: str, seed: int) -> torch.device:
    """Resolve ``device``, size torch's CPU thread pool and seed every RNG.

    A CUDA device that is not there is a spec/placement problem a retry on the same worker cannot
    fix, so it is reported as an invalid ``device`` (exit 2).
    """
    from transformers import set_seed

    torch.set_num_threads(cpu_cores())
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise SpecError("device", f"{device} requested but no CUDA device is visible to torch")
        index = resolved.index or 0
        if index >= torch.cuda.device_count():
            raise SpecError("device", f"{device} requested but only {torch.cuda.device_count()} CUDA device(s) are visible")
        torch.cuda.set_device(index)
        resolved = torch.device("cuda", index)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    set_seed(seed)
    log(f"device={resolved} torch={torch.__version__} cpu_threads={torch.get_num_threads()} seed={seed}")
    return resolved


def peak_flops(device: torch.device) -> float | None:
    """Dense bf16 peak FLOP/s of ``device`` from :data:`PEAK_BF16_FLOPS`, or None if unknown / CPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for marker, flops in PEAK_BF16_FLOPS:
        if marker in name:
            return flops
    return None


def best_attention_implementation(device: torch.device) -> str:
    """flash_attention_2 when it is installed and the device is CUDA, else PyTorch SDPA."""
    if device.type != "cuda":
        return "sdpa"
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return "sdpa"
    return "flash_attention_2"
