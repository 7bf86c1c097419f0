"""Data-parallel runs: the launcher (forgeline_recipes.launch) and train on 2 gloo ranks on CPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from protocol_checks import assert_protocol
from safetensors.torch import load_file

from forgeline_recipes.runner import RecipeRun, run_recipe_process
from forgeline_recipes.tiny import DATASET_DIR
from test_train import SHORT

RANKS_RECIPE = Path(__file__).parent / "fixtures" / "ranks_recipe.py"
TWO_RANKS = {**SHORT, "processes": 2}  # the short single-process run of test_train, on two ranks


def ranks(spec: dict[str, Any], out: Path) -> RecipeRun:
    return run_recipe_process("ranks_recipe", {"device": "cpu", "seed": 0, **spec}, out, timeout_s=120, script=RANKS_RECIPE)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX" if Path(f"/proc/{pid}").exists() else True


def test_only_rank_zero_speaks_the_protocol(tmp_path: Path) -> None:
    run = ranks({"processes": 3}, tmp_path / "out")
    assert run.returncode == 0, run.stderr[-2000:]
    assert_protocol(run)
    assert [e["event"] for e in run.events] == ["start", "result"]
    assert run.events[0]["world_size"] == 3 and run.result == {"rank": 0, "world_size": 3}
    pids = {int((tmp_path / "out" / f"rank-{r}.pid").read_text().split()[0]) for r in range(3)}
    assert len(pids) == 3 and os.getpid() not in pids


def test_a_failing_rank_stops_the_others_and_is_named(tmp_path: Path) -> None:
    run = ranks({"processes": 2, "behaviour": "rank1-dies"}, tmp_path / "out")
    assert run.returncode == 1, run.stderr[-2000:]  # retryable: a crash, not a bad spec
    assert_protocol(run, success=False)
    assert run.error == {"event": "error", "message": "rank 1 of 2 exited with code 3; the other ranks were stopped", "type": "RecipeCrashed", "retryable": True}
    rank0 = int((tmp_path / "out" / "rank-0.pid").read_text().split()[0])
    assert not alive(rank0), "rank 0 was still running after the launcher exited"
    assert run.seconds < 60, "rank 0 (sleeping 600 s) was stopped, not waited for"


def test_a_non_retryable_error_on_every_rank_exits_2_with_one_event(tmp_path: Path) -> None:
    run = ranks({"processes": 2, "behaviour": "bad-data"}, tmp_path / "out")
    assert run.returncode == 2, run.stderr[-2000:]
    assert [e for e in run.events if e["event"] == "error"] == [
        {"event": "error", "message": "dataset: row 3 has no completion", "type": "RecipeFailed", "retryable": False}
    ]


def test_a_bad_spec_fails_before_any_rank_starts(tmp_path: Path) -> None:
    run = ranks({"processes": 0}, tmp_path / "out")
    assert run.returncode == 2 and run.error is not None and run.error["message"].startswith("processes: ")
    assert not list((tmp_path / "out").glob("rank-*.pid"))


@pytest.fixture(scope="module")
def two_rank_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> RecipeRun:
    spec = {**TWO_RANKS, "base_model": str(tiny_model), "dataset_dir": str(DATASET_DIR)}
    return run_recipe_process("train", spec, tmp_path_factory.mktemp("ddp") / "out")


def test_train_lora_on_two_gloo_ranks(two_rank_run: RecipeRun) -> None:
    assert two_rank_run.returncode == 0, two_rank_run.stderr[-3000:]
    assert_protocol(two_rank_run)
    assert [p["step"] for p in two_rank_run.of("progress")] == [1, 2, 3, 4], "one event stream, not one per rank"
    assert [c["step"] for c in two_rank_run.of("checkpoint")] == [2, 4]
    result = two_rank_run.result
    assert (result["processes"], result["global_batch_size"], result["total_steps"]) == (2, 8, 4)
    # each step consumed 2 x 4 of the 800 training rows: the data really was split over two ranks
    assert two_rank_run.of("progress")[-1]["epoch"] == pytest.approx(4 * 8 / 800)
    step2 = two_rank_run.out_dir / "checkpoints" / "step-2"
    assert {"rng_state_0.pth", "rng_state_1.pth", "adapter_model.safetensors", "optimizer.pt"} <= {f.name for f in step2.iterdir()}
    assert (two_rank_run.out_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_two_rank_run_resumes_from_its_checkpoint(two_rank_run: RecipeRun, tiny_model: Path, tmp_path: Path) -> None:
    spec = {**TWO_RANKS, "base_model": str(tiny_model), "dataset_dir": str(DATASET_DIR), "resume_from": str(two_rank_run.out_dir / "checkpoints" / "step-2")}
    resumed = run_recipe_process("train", spec, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [p["step"] for p in resumed.of("progress")] == [3, 4]
    assert (resumed.result["resumed_from_step"], resumed.result["steps_done_this_run"]) == (2, 2)
    uninterrupted = load_file(two_rank_run.out_dir / "adapter" / "adapter_model.safetensors")
    continued = load_file(resumed.out_dir / "adapter" / "adapter_model.safetensors")
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(continued[name], tensor, rtol=1e-4, atol=1e-6, msg=name)


def test_fsdp_on_two_gloo_ranks_trains_the_same_adapter_as_ddp(two_rank_run: RecipeRun, tiny_model: Path, tmp_path: Path) -> None:
    # Sharding the frozen base changes where weights live, not the math: same data order, same
    # seed, same adapter.
    spec = {**TWO_RANKS, "base_model": str(tiny_model), "dataset_dir": str(DATASET_DIR), "strategy": "fsdp"}
    fsdp = run_recipe_process("train", spec, tmp_path / "fsdp")
    assert fsdp.returncode == 0, fsdp.stderr[-3000:]
    assert_protocol(fsdp)
    assert (fsdp.result["strategy"], fsdp.result["processes"]) == ("fsdp", 2)
    assert [c["step"] for c in fsdp.of("checkpoint")] == [2, 4]
    ddp = load_file(two_rank_run.out_dir / "adapter" / "adapter_model.safetensors")
    sharded = load_file(fsdp.out_dir / "adapter" / "adapter_model.safetensors")
    assert ddp.keys() == sharded.keys()
    for name, tensor in ddp.items():
        torch.testing.assert_close(sharded[name], tensor, rtol=1e-4, atol=1e-6, msg=name)

    resumed = run_recipe_process("train", {**spec, "resume_from": str(fsdp.out_dir / "checkpoints" / "step-2")}, tmp_path / "fsdp-resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [p["step"] for p in resumed.of("progress")] == [3, 4]
    continued = load_file(resumed.out_dir / "adapter" / "adapter_model.safetensors")
    for name, tensor in sharded.items():
        torch.testing.assert_close(continued[name], tensor, rtol=1e-4, atol=1e-6, msg=name)
