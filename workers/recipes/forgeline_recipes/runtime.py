"""Process setup shared by the recipes: device, CPU threads, seeding, accelerator facts."""

from __future__ import annotations

import os

import torch

from .protocol import SpecError, cpu_threads, log
from .spec import ATTENTION_IMPLEMENTATIONS

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


def setup(device: str, seed: int) -> torch.device:
    """Resolve ``device``, size torch's CPU thread pool (:func:`cpu_threads`) and seed every RNG.

    A CUDA device that is not there is a spec/placement problem a retry on the same worker cannot
    fix, so it is reported as an invalid ``device`` (exit 2).
    """
    from transformers import set_seed

    torch.set_num_threads(cpu_threads())
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise SpecError("device", f"{device} requested but no CUDA device is visible to torch")
        index = resolved.index
        if index is None:  # a rank of a data-parallel run takes the GPU of its local rank
            index = int(os.environ.get("LOCAL_RANK", "0"))
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


def best_attention_implementation(device: torch.device, requested: str = "auto") -> str:
    """The attention kernel for ``device``. ``auto``: flash_attention_2 when installed on CUDA,
    else PyTorch SDPA. An explicit choice is honoured, or refused as a spec error (exit 2) where
    it cannot run."""
    if requested not in ATTENTION_IMPLEMENTATIONS:
        raise SpecError("attn_implementation", f"expected one of {', '.join(ATTENTION_IMPLEMENTATIONS)}")
    has_flash = device.type == "cuda" and _importable("flash_attn")
    if requested == "flash_attention_2" and not has_flash:
        raise SpecError("attn_implementation", "flash_attention_2 needs CUDA and the flash-attn package; use auto")
    if requested != "auto":
        return requested
    return "flash_attention_2" if has_flash else "sdpa"


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    """Peak bytes allocated by torch on ``device`` since the last reset; None on CPU."""
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
