"""Shared fixtures: the recipes run as real subprocesses speaking the protocol, on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RECIPES = Path(__file__).resolve().parent.parent
DATASET = RECIPES / "data" / "tiny-instruct"


def run_recipe(name: str, spec: dict[str, Any], out: Path) -> tuple[int, list[dict[str, Any]]]:
    """Run ``<name>.py`` like the JobRunner does; return its exit code and protocol events."""
    spec_file = out.parent / f"{out.name}.spec.json"
    spec_file.write_text(json.dumps(spec))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(RECIPES / f"{name}.py"), "--spec", str(spec_file), "--out", str(out)], capture_output=True, text=True, env=env, timeout=600)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode not in (0, 2):
        sys.stderr.write(proc.stderr[-4000:])
    return proc.returncode, events


def result_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    results = [e["result"] for e in events if e["event"] == "result"]
    assert len(results) == 1, events[-3:]
    return results[0]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny"
    code, events = run_recipe("make_tiny_model", {"size": "tiny", "seed": 0, "device": "cpu"}, out)
    assert code == 0, events
    return out


TRAIN = {
    "dataset_dir": str(DATASET),
    "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
    "learning_rate": 0.003,
    "batch_size": 16,
    "seq_length": 64,
    "device": "cpu",
    "seed": 0,
}


@pytest.fixture(scope="session")
def trained(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The demo's training run (200 steps, checkpoints every 50)."""
    out = tmp_path_factory.mktemp("train") / "run"
    code, events = run_recipe("train_lora", {**TRAIN, "base_model": str(tiny_model), "steps": 200, "checkpoint_every": 50}, out)
    assert code == 0, events[-3:]
    return out, events


@pytest.fixture(scope="session")
def quantized(tiny_model: Path, trained: tuple[Path, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("quant") / "q"
    spec = {"base_model": str(tiny_model), "adapter": str(trained[0] / "adapter"), "dataset_dir": str(DATASET), "method": "gptq", "bits": 4, "group_size": 32, "calibration_samples": 32, "device": "cpu", "seed": 0}
    code, events = run_recipe("quantize", spec, out)
    assert code == 0, events[-3:]
    return out, result_of(events)
