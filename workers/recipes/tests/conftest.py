"""Shared fixtures: the tiny model, the demo training run, its quantization and its evaluation are
each built once per session (as subprocesses speaking the protocol) and reused by the tests."""

from __future__ import annotations

import os

for _var, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_var, _value)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from forgeline_recipes.runner import RecipeRun, run_recipe_process  # noqa: E402
from forgeline_recipes.tiny import DATASET_DIR, DEMO_QUANTIZE, DEMO_TRAIN  # noqa: E402

COMMON = {"device": "cpu", "seed": 0}


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recipes")


@pytest.fixture(scope="session")
def tiny_model_run(session_dir: Path) -> RecipeRun:
    run = run_recipe_process("make_tiny_model", {**COMMON, "size": "tiny"}, session_dir / "base")
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def tiny_model(tiny_model_run: RecipeRun) -> Path:
    return tiny_model_run.out_dir


@pytest.fixture(scope="session")
def demo_training(tiny_model: Path, session_dir: Path) -> RecipeRun:
    """The demo hyperparameters (200 steps) on the shipped tiny-instruct train split."""
    spec = {**COMMON, **DEMO_TRAIN, "base_model": str(tiny_model), "dataset_dir": str(DATASET_DIR), "log_every": 5}
    run = run_recipe_process("train", spec, session_dir / "demo-train")
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def demo_quantized(tiny_model: Path, demo_training: RecipeRun, session_dir: Path) -> RecipeRun:
    spec = {
        **COMMON,
        **DEMO_QUANTIZE,
        "base_model": str(tiny_model),
        "adapter": str(demo_training.out_dir / "adapter"),
        "dataset_dir": str(DATASET_DIR),
    }
    run = run_recipe_process("quantize", spec, session_dir / "demo-quantize")
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def demo_evaluation(tiny_model: Path, demo_training: RecipeRun, demo_quantized: RecipeRun, session_dir: Path) -> RecipeRun:
    """Base (comparator), merged, quantized and base+adapter (unmerged) on the held-out split."""
    out = demo_quantized.out_dir
    spec = {
        **COMMON,
        "models": {
            "candidate": str(out / "quantized"),
            "candidate_unquantized": str(out / "merged"),
            "adapter": {"path": str(tiny_model), "adapter": str(demo_training.out_dir / "adapter")},
            "comparator": str(tiny_model),
        },
        "dataset_dir": str(DATASET_DIR),
        "suite": "tiny-instruct",
    }
    run = run_recipe_process("evaluate", spec, session_dir / "demo-eval")
    assert run.returncode == 0, run.stderr[-3000:]
    return run
