"""Forgeline's fix for a LoRA correctness bug of vllm-cpu 0.32.0, applied to the installed file.

Run by scripts/lib/vllm-venv.sh with the vLLM venv's python. Idempotent.

The bug: on the CPU platform vLLM applies LoRA with plain PyTorch ops
(vllm/lora/ops/torch_ops/lora_ops.py: bgmv_shrink, bgmv_expand, bgmv_expand_slice, and the sgmv_*
prefill ops that call them). Each token carries the slot of its request's adapter, and a token of a
base-model request carries -1, meaning "no LoRA". The ops pick each token's weights with
``lora_weights[indices]``, and in PyTorch index -1 is the *last* slot: so a base-model request that
is batched with adapter requests gets the last adapter slot's delta. Output is silently wrong (in
our mixed-batch test, every base request of 48 concurrent base/adapter requests; the adapters'
own requests stay right). GPU kernels skip index -1; upstream tracks the CPU fix as vLLM PR #48421.

Our fix: after each op computes its per-token products, the rows of tokens whose index is negative
are set to zero, so those tokens get no LoRA contribution (shrink writes zeros into the
intermediate buffer, expand adds or writes zeros). Rows with a valid index are untouched, so
adapter requests compute exactly what they did before.

The file is patched only when its sha256 is the one vllm-cpu 0.32.0 ships; any other content
(a newer vLLM, a hand edit) stops the install with a message, so the fix is never applied blindly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

RELATIVE = Path("lora/ops/torch_ops/lora_ops.py")
ORIGINAL_SHA256 = "33bc2aca729ebc379e1725c3c1ca870e70aa3b278f0ad3d2a621e6ec8ee99c20"
MARKER = "# forgeline-patch: no-lora-rows v1"

EINSUM = '    outputs = torch.einsum("bi, boi -> bo", inputs, selected_loras)\n'
AFTER_EINSUM = EINSUM + "    outputs = _zero_rows_without_lora(outputs, lora_indices_tensor)\n"
IMPORT = "import torch\n"
HELPER = f'''import torch

{MARKER}


def _zero_rows_without_lora(outputs: torch.Tensor, lora_indices: torch.Tensor) -> torch.Tensor:
    """Tokens of base-model requests have LoRA index -1 (no adapter). The weights were gathered
    with that index, which PyTorch reads as the last adapter slot; zero those tokens' rows so they
    get no LoRA contribution. (Added by Forgeline's install: scripts/lib/patch-vllm-cpu-lora.py.)"""
    no_lora = (lora_indices < 0).view(-1, 1)
    return outputs.masked_fill(no_lora, 0)
'''


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def patched(original: str) -> str:
    if original.count(EINSUM) != 3 or original.count(IMPORT) != 1:
        raise SystemExit("patch-vllm-cpu-lora: the file's layout is not the expected one (3 einsum lines, 1 torch import)")
    return original.replace(IMPORT, HELPER, 1).replace(EINSUM, AFTER_EINSUM)


def unpatched(text: str) -> str:
    return text.replace(HELPER, IMPORT, 1).replace(AFTER_EINSUM, EINSUM)


def main() -> int:
    spec = importlib.util.find_spec("vllm")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        print("patch-vllm-cpu-lora: vllm is not installed in this interpreter", file=sys.stderr)
        return 1
    target = Path(list(spec.submodule_search_locations)[0]) / RELATIVE
    text = target.read_text(encoding="utf-8")
    if MARKER in text:
        if sha256(unpatched(text)) != ORIGINAL_SHA256:
            print(f"patch-vllm-cpu-lora: {target} carries our marker but other changes too; reinstall vllm-cpu", file=sys.stderr)
            return 1
        print(f"patch-vllm-cpu-lora: already applied to {target}")
        return 0
    if sha256(text) != ORIGINAL_SHA256:
        print(
            f"patch-vllm-cpu-lora: {target} is not vllm-cpu 0.32.0's (sha256 {sha256(text)}).\n"
            "  A different vLLM: check whether it skips LoRA index -1 in its CPU torch ops (upstream PR #48421),\n"
            "  then update or drop this patch (scripts/lib/patch-vllm-cpu-lora.py) and the test that needs it.",
            file=sys.stderr,
        )
        return 1
    target.write_text(patched(text), encoding="utf-8")
    for cached in target.parent.glob("__pycache__/lora_ops.*.pyc"):
        cached.unlink()
    print(f"patch-vllm-cpu-lora: applied to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
