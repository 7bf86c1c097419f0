"""The recipes end to end on the tiny model, as subprocesses: events, exit codes, artifacts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import DATASET, TRAIN, result_of, run_recipe
from make_tiny_dataset import write_dataset


def test_shipped_dataset_is_what_the_generator_writes(tmp_path: Path):
    write_dataset(tmp_path)
    for split in ("train", "eval"):
        assert (tmp_path / f"{split}.jsonl").read_bytes() == (DATASET / f"{split}.jsonl").read_bytes()
    train = {json.loads(l)["prompt"] for l in (DATASET / "train.jsonl").read_text().splitlines()}
    held_out = {json.loads(l)["prompt"] for l in (DATASET / "eval.jsonl").read_text().splitlines()}
    assert not train & held_out, "eval prompts are never seen in training"


def test_tiny_model_is_deterministic(tiny_model: Path, tmp_path: Path):
    code, _ = run_recipe("make_tiny_model", {"size": "tiny", "seed": 0, "device": "cpu"}, tmp_path / "again")
    assert code == 0
    digest = lambda p: hashlib.sha256((p / "model.safetensors").read_bytes()).hexdigest()
    assert digest(tiny_model) == digest(tmp_path / "again")


def test_invalid_spec_exits_2_naming_the_field(tiny_model: Path, tmp_path: Path):
    code, events = run_recipe("train_lora", {**TRAIN, "base_model": str(tiny_model), "lora": {"r": 0}}, tmp_path / "bad")
    assert code == 2
    error = [e for e in events if e["event"] == "error"][0]
    assert error["type"] == "InvalidSpec" and error["message"].startswith("lora.r:")
    code, events = run_recipe("train_lora", {**TRAIN, "base_model": str(tmp_path / "missing")}, tmp_path / "bad2")
    assert code == 2 and "base_model" in events[-1]["message"]
    code, events = run_recipe("train_lora", {**TRAIN, "base_model": str(tiny_model), "qlora": True}, tmp_path / "bad3")
    assert code == 2 and events[-1]["message"].startswith("qlora:")


def test_training_streams_progress_and_checkpoints(trained):
    out, events = trained
    progress = [e for e in events if e["event"] == "progress"]
    assert [p["step"] for p in progress] == list(range(1, 201))
    assert progress[-1]["loss"] < progress[0]["loss"]
    assert [e["step"] for e in events if e["event"] == "checkpoint"] == [50, 100, 150, 200]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert result_of(events)["total_steps"] == 200


def test_resume_from_a_checkpoint_finishes_the_same_run(tiny_model: Path, trained, tmp_path: Path):
    out, events = trained
    spec = {**TRAIN, "base_model": str(tiny_model), "steps": 200, "checkpoint_every": 50, "resume_from": str(out / "checkpoints" / "step-150")}
    code, resumed = run_recipe("train_lora", spec, tmp_path / "resumed")
    assert code == 0
    r = result_of(resumed)
    assert (r["resumed_from_step"], r["steps_done_this_run"], r["total_steps"]) == (150, 50, 200)
    assert abs(r["final_loss"] - result_of(events)["final_loss"]) < 1e-4, "resuming gives the same run"


def test_gptq_output_shrinks_and_loads(quantized):
    out, result = quantized
    assert result["format"] == "pack-quantized"
    assert result["size_after_bytes"] < result["size_before_bytes"] / 3
    assert result["max_abs_logit_diff"] < 1.0
    assert json.loads((out / "quantized" / "config.json").read_text())["quantization_config"]["quant_method"] == "compressed-tensors"


def test_fine_tuning_improves_the_task_metric_over_the_base(tiny_model: Path, quantized, tmp_path: Path):
    out, _ = quantized
    spec = {"models": {"candidate": str(out / "quantized"), "candidate_unquantized": str(out / "merged"), "comparator": str(tiny_model)}, "dataset_dir": str(DATASET), "device": "cpu", "seed": 0}
    code, events = run_recipe("evaluate", spec, tmp_path / "eval")
    assert code == 0
    m = result_of(events)["metrics"]
    print({k: round(v["value"], 3) for k, v in m.items()})
    assert m["exact_match"]["delta"] > 0 and m["exact_match"]["deltaCi"][0] > 0, "exact match improves, CI excludes 0"
    assert m["token_f1"]["delta"] > 0.1
    assert m["perplexity"]["value"] < 0.5 * (m["perplexity"]["value"] - m["perplexity"]["delta"])
    for name in ("loss", "exact_match", "token_f1"):
        lo, hi = m[name]["ci"]
        assert lo <= m[name]["value"] <= hi
    assert (tmp_path / "eval" / "eval-report.json").is_file()
