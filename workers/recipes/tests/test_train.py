"""train: protocol events, checkpoints, resume, the demo run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from protocol_checks import assert_protocol
from safetensors.torch import load_file

from forgeline_recipes.runner import RecipeRun, run_recipe_process
from forgeline_recipes.tiny import DATASET_DIR

SHORT = {
    "device": "cpu",
    "seed": 0,
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
    "steps": 4,
    "checkpoint_every": 2,
    "learning_rate": 1e-3,
    "batch_size": 4,
    "seq_length": 32,
}
CHECKPOINT_FILES = {"adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"}


@pytest.fixture(scope="module")
def short_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> RecipeRun:
    spec = {**SHORT, "base_model": str(tiny_model), "dataset_dir": str(DATASET_DIR)}
    return run_recipe_process("train", spec, tmp_path_factory.mktemp("short") / "out")


def test_short_run_emits_progress_metrics_and_checkpoints(short_run: RecipeRun) -> None:
    assert_protocol(short_run)
    start = short_run.events[0]
    assert start["total_steps"] == 4 and start["resumed_from_step"] == 0 and start["device"] == "cpu"
    progress = short_run.of("progress")
    assert [p["step"] for p in progress] == [1, 2, 3, 4]
    for p in progress:
        assert p["total_steps"] == 4 and p["loss"] > 0 and p["lr"] > 0 and p["tokens_per_s"] > 0
    assert {m["name"] for m in short_run.of("metric")} >= {"train_loss", "final_loss", "tokens_per_s", "train_runtime_s"}
    checkpoints = short_run.of("checkpoint")
    assert [(c["step"], c["path"]) for c in checkpoints] == [(2, "checkpoints/step-2"), (4, "checkpoints/step-4")]
    for c in checkpoints:
        assert CHECKPOINT_FILES <= {f.name for f in (short_run.out_dir / c["path"]).iterdir()}
    # each checkpoint event comes after the progress of its step and before the next step's
    order = [(e["event"], e.get("step")) for e in short_run.events if e["event"] in ("progress", "checkpoint")]
    assert order.index(("checkpoint", 2)) == order.index(("progress", 2)) + 1


def test_short_run_result_and_adapter(short_run: RecipeRun) -> None:
    result = short_run.result
    assert result["total_steps"] == 4 and result["steps_done_this_run"] == 4 and result["resumed_from_step"] == 0
    assert result["final_loss"] > 0 and result["tokens_per_s"] > 0 and result["train_runtime_s"] > 0
    assert 0 < result["trainable_parameters"] < result["parameters"]
    adapter = short_run.out_dir / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 4
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "tokenizer.json").is_file()
    assert not (short_run.out_dir / ".trainer").exists(), "the staging directory is cleaned up"


def test_resume_continues_from_the_checkpoint_step(short_run: RecipeRun, tiny_model: Path, tmp_path: Path) -> None:
    spec = {
        **SHORT,
        "base_model": str(tiny_model),
        "dataset_dir": str(DATASET_DIR),
        "resume_from": str(short_run.out_dir / "checkpoints" / "step-2"),
    }
    resumed = run_recipe_process("train", spec, tmp_path / "resumed")
    assert_protocol(resumed)
    assert resumed.events[0]["resumed_from_step"] == 2
    assert [p["step"] for p in resumed.of("progress")] == [3, 4]
    assert [c["step"] for c in resumed.of("checkpoint")] == [4]
    result = resumed.result
    assert (result["resumed_from_step"], result["steps_done_this_run"], result["total_steps"]) == (2, 2, 4)
    assert result["resumed_from_step"] + result["steps_done_this_run"] == short_run.result["total_steps"]
    # Optimizer, scheduler, RNG and data order are restored: the resumed run ends where the
    # uninterrupted one did.
    uninterrupted = load_file(short_run.out_dir / "adapter" / "adapter_model.safetensors")
    continued = load_file(resumed.out_dir / "adapter" / "adapter_model.safetensors")
    assert uninterrupted.keys() == continued.keys()
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(continued[name], tensor, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_demo_training_learns(demo_training: RecipeRun) -> None:
    assert_protocol(demo_training)
    assert [c["step"] for c in demo_training.of("checkpoint")] == [50, 100, 150, 200]
    losses = [p["loss"] for p in demo_training.of("progress")]
    assert demo_training.result["total_steps"] == 200
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:2]) / 2, losses


def test_packing_fills_rows_with_several_examples(short_run: RecipeRun, tiny_model: Path, tmp_path: Path) -> None:
    # Same steps and batch size; packed rows hold several ~15-token examples each, so each step
    # sees several times the tokens of the unpacked run.
    spec = {**SHORT, "base_model": str(tiny_model), "dataset_dir": str(DATASET_DIR), "packing": True, "seq_length": 64}
    packed = run_recipe_process("train", spec, tmp_path / "packed")
    assert_protocol(packed)
    result = packed.result
    assert result["packing"] is True and result["total_steps"] == 4 and result["final_loss"] > 0
    assert result["tokens_this_run"] > 2 * short_run.result["tokens_this_run"], (result["tokens_this_run"], short_run.result["tokens_this_run"])
    # every packed row holds at most seq_length tokens, so a step sees at most batch_size * seq_length
    assert result["tokens_this_run"] <= 4 * 4 * 64
