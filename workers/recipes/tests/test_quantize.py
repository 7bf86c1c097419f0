"""quantize: merge + GPTQ into compressed-tensors that loads back and shrinks; method none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from protocol_checks import assert_protocol
from transformers import AutoModelForCausalLM, AutoTokenizer

from forgeline_recipes.protocol import SpecError
from forgeline_recipes.runner import RecipeRun, run_recipe_process
from forgeline_recipes.tiny import DATASET_DIR
from quantize import check_group_size


def test_gptq_output_is_compressed_tensors_and_smaller(demo_quantized: RecipeRun) -> None:
    assert_protocol(demo_quantized)
    result = demo_quantized.result
    assert result["method"] == "gptq" and result["format"] == "pack-quantized"
    assert result["size_after_bytes"] < result["size_before_bytes"] / 3, result
    assert result["compression_ratio"] == pytest.approx(result["size_before_bytes"] / result["size_after_bytes"])
    assert result["verify"]["finite"] and result["verify"]["top1_agreement_with_merged"] > 0.8
    metrics = {m["name"] for m in demo_quantized.of("metric")}
    assert {"size_before_bytes", "size_after_bytes", "quantize_seconds"} <= metrics
    config = json.loads((demo_quantized.out_dir / "quantized" / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["config_groups"]["group_0"]["weights"]["group_size"] == 32


def test_quantized_model_loads_with_transformers(demo_quantized: RecipeRun) -> None:
    path = demo_quantized.out_dir / "quantized"
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    batch = tokenizer(["reverse : a b c =", "count : a b ="], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(logits).all()


def test_merged_model_is_a_plain_checkpoint(demo_quantized: RecipeRun) -> None:
    merged = demo_quantized.out_dir / "merged"
    config = json.loads((merged / "config.json").read_text())
    assert "quantization_config" not in config
    assert not (merged / "adapter_config.json").exists()


def test_method_none_merges_only(tiny_model: Path, demo_training: RecipeRun, tmp_path: Path) -> None:
    spec = {"device": "cpu", "seed": 0, "base_model": str(tiny_model), "adapter": str(demo_training.out_dir / "adapter"), "dataset_dir": str(DATASET_DIR), "method": "none"}
    run = run_recipe_process("quantize", spec, tmp_path / "out")
    assert_protocol(run)
    assert run.result["quantized"] is None and run.result["size_after_bytes"] == run.result["size_before_bytes"]
    assert (run.out_dir / "merged" / "model.safetensors").is_file() and not (run.out_dir / "quantized").exists()


def test_group_size_must_divide_every_linear_input(tiny_model: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    check_group_size(model, 32)
    check_group_size(model, 128)
    with pytest.raises(SpecError, match=r"^group_size: 48 does not divide the input dim 128 of model\.layers\.0\..*32, 64, 128 would fit"):
        check_group_size(model, 48)
