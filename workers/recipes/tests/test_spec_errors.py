"""Invalid specs and missing inputs: an `error` event naming the field (or path), exit code 2.

The specs are checked against the recipes' pydantic models (forgeline_recipes/spec.py, which
test_contracts.py holds to the published JSON Schemas) before torch is imported, so each takes
well under a second."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from protocol_checks import assert_protocol

from forgeline_recipes.protocol import SpecError
from forgeline_recipes.runner import RECIPES_DIR, run_recipe_process
from forgeline_recipes.spec import EvaluateInput, TrainInput, parse_input
from forgeline_recipes.tiny import DATASET_DIR, DEMO_TRAIN

COMMON = {"device": "cpu", "seed": 0}


@pytest.fixture()
def train_spec(tmp_path: Path) -> dict[str, Any]:
    """A valid train spec (the base model directory only has to exist for validation)."""
    (tmp_path / "base").mkdir()
    return {**COMMON, **DEMO_TRAIN, "base_model": str(tmp_path / "base"), "dataset_dir": str(DATASET_DIR)}


def expect_error(recipe: str, spec: dict[str, Any], out: Path, error_type: str, message_start: str) -> str:
    run = run_recipe_process(recipe, spec, out)
    assert run.returncode == 2, run.stderr[-2000:]
    assert_protocol(run, success=False)
    error = run.error
    assert error is not None and error["type"] == error_type and error["retryable"] is False, error
    assert error["message"].startswith(message_start), error["message"]
    return error["message"]


@pytest.mark.parametrize(
    ("change", "message_start"),
    [
        ({"lora": {"r": 0}}, "lora.r: expected an integer between 1 and 1024, got 0"),
        ({"lora": {"r": 2.5}}, "lora.r: expected an integer between 1 and 1024"),
        ({"lora": {"dropout": 1.0}}, "lora.dropout: expected a number >= 0 and < 1"),
        ({"learning_rate": "fast"}, 'learning_rate: expected a number > 0 and <= 1, got "fast"'),
        ({"steps": "10"}, 'steps: expected a positive integer, got "10"'),
        ({"lora": {"target_modules": []}}, "lora.target_modules: expected a list of non-empty strings (at least 1)"),
        ({"learningRate": 1e-3}, "learningRate: unknown field (did you mean 'learning_rate'?)"),
        ({"steps": 10, "epochs": 1}, "steps: set either steps or epochs"),
        ({"qlora": True}, "qlora: 4-bit QLoRA needs a CUDA device"),
        ({"device": "gpu"}, "device: expected cpu, cuda or cuda:<index>"),
        ({"seed": -1}, "seed: expected a non-negative integer"),
        ({"packing": "yes"}, "packing: expected true or false"),
        ({"attn_implementation": "flash"}, "attn_implementation: expected one of"),
        ({"attn_implementation": "flex_attention"}, "attn_implementation: flex_attention has no backward pass on CPU"),
        ({"strategy": "zero3"}, "strategy: expected one of"),
        ({"strategy": "fsdp", "qlora": True}, "strategy: fsdp does not shard a 4-bit QLoRA base"),
    ],
)
def test_train_lora_invalid_field(train_spec: dict[str, Any], tmp_path: Path, change: dict[str, Any], message_start: str) -> None:
    spec = {**train_spec, **change}
    if "lora" in change:
        spec["lora"] = {**train_spec["lora"], **change["lora"]}
    expect_error("train", spec, tmp_path / "out", "InvalidSpec", message_start)


def test_missing_required_field(train_spec: dict[str, Any], tmp_path: Path) -> None:
    del train_spec["base_model"]
    expect_error("train", train_spec, tmp_path / "out", "InvalidSpec", "base_model: required")


def test_missing_input_path_is_named(train_spec: dict[str, Any], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    message = expect_error("train", {**train_spec, "base_model": str(missing)}, tmp_path / "out", "ArtifactNotFound", "base_model:")
    assert str(missing) in message


def test_missing_checkpoint_to_resume_from(train_spec: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "empty-ckpt").mkdir()
    expect_error("train", {**train_spec, "resume_from": str(tmp_path / "empty-ckpt")}, tmp_path / "out", "InvalidSpec", "resume_from:")


def test_quantize_awq_on_cpu_is_refused(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    spec = {**COMMON, "base_model": str(tmp_path / "base"), "dataset_dir": str(DATASET_DIR), "method": "awq"}
    expect_error("quantize", spec, tmp_path / "out", "InvalidSpec", "method: awq needs a CUDA device")
    expect_error("quantize", {**spec, "method": "gptq", "bits": 3}, tmp_path / "out", "InvalidSpec", "bits: expected 4 or 8")


def test_evaluate_unknown_metric_and_model(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    spec = {**COMMON, "models": {"candidate": str(tmp_path / "m")}, "dataset_dir": str(DATASET_DIR)}
    expect_error("evaluate", {**spec, "metrics": ["bleu"]}, tmp_path / "out", "InvalidSpec", "metrics: unknown metric(s) bleu")
    expect_error("evaluate", {**spec, "comparator": "base"}, tmp_path / "out", "InvalidSpec", "comparator: 'base' is not one of the models")
    expect_error("evaluate", {**spec, "models": {"candidate": str(tmp_path / "nope")}}, tmp_path / "out", "ArtifactNotFound", "models.candidate:")


def test_spec_that_is_not_json_object(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text("[1, 2]")
    proc = subprocess.run(
        [sys.executable, str(RECIPES_DIR / "train.py"), "--spec", str(spec_file), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout.splitlines()[-1]) == {"event": "error", "message": "spec: expected a JSON object", "type": "InvalidSpec", "retryable": False}


def test_errors_name_nested_fields_and_every_problem(tmp_path: Path) -> None:
    spec = {**COMMON, "base_model": "/m", "dataset_dir": "/d", "lora": {"r": 8, "alhpa": 2}, "seed": "0"}
    with pytest.raises(SpecError) as caught:
        parse_input(TrainInput, spec)
    assert caught.value.field == "lora.alhpa"
    assert caught.value.message == "lora.alhpa: unknown field (did you mean 'alpha'?); seed: expected a non-negative integer, got \"0\""


def test_errors_inside_a_union_name_the_field_not_the_branch() -> None:
    """``models`` maps a name to a directory or to {path, adapter}: the message names the field
    and what the value should have been, whichever form it took."""
    spec = {**COMMON, "dataset_dir": "/d", "models": {"candidate": {"path": 3}, "base": 5, "x y": "/m", "c": {"path": "/m", "adaptr": "/a"}}}
    with pytest.raises(SpecError) as caught:
        parse_input(EvaluateInput, spec)
    assert caught.value.message.split("; ") == [
        "models.candidate.path: expected a non-empty string, got 3",
        "models.base: expected a non-empty string or a JSON object, got 5",
        "models.x y: expected a model name of 1-64 letters, digits, '_', '-' or '.', got \"x y\"",
        "models.c.adaptr: unknown field (did you mean 'adapter'?)",
    ]
