"""Preemption: SIGUSR1 to a training recipe's process group (what the JobRunner sends when its worker
gets SIGTERM) saves a checkpoint at the end of the current step, emits its event and exits 75; a run
resumed from that checkpoint finishes the job. On one process and on two gloo ranks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from forgeline_recipes.preemption import EXIT_PREEMPTED
from forgeline_recipes.runner import OFFLINE_ENV, RECIPES_DIR, run_recipe_process
from forgeline_recipes.tiny import DATASET_DIR
from test_train import SHORT


def preempt_during_training(spec: dict[str, Any], out_dir: Path, after_step: int) -> tuple[int, list[dict[str, Any]]]:
    """Run train in a process group of its own, send the group SIGUSR1 once `after_step` is
    reported, and return the exit code and every event."""
    spec_file = out_dir.parent / "spec.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    proc = subprocess.Popen(  # noqa: S603 - our interpreter and recipe
        [sys.executable, str(RECIPES_DIR / "train.py"), "--spec", str(spec_file), "--out", str(out_dir)],
        cwd=RECIPES_DIR,
        env={**os.environ, **OFFLINE_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    events: list[dict[str, Any]] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            event = json.loads(line)
            events.append(event)
            if event["event"] == "progress" and event["step"] == after_step:
                os.killpg(proc.pid, signal.SIGUSR1)
        return proc.wait(timeout=120), events
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "two-gloo-ranks"])
def test_preemption_checkpoints_the_current_step_exits_75_and_resumes(processes: int, tiny_model: Path, tmp_path: Path) -> None:
    # Checkpoints only on request: the one this run leaves is the preemption's.
    spec = {**SHORT, "steps": 200, "checkpoint_every": 1000, "processes": processes, "base_model": str(tiny_model), "dataset_dir": str(DATASET_DIR)}
    out = tmp_path / "out"
    code, events = preempt_during_training(spec, out, after_step=2)

    assert code == EXIT_PREEMPTED, events[-3:]
    kinds = [e["event"] for e in events]
    assert "result" not in kinds and "error" not in kinds
    checkpoints = [e for e in events if e["event"] == "checkpoint"]
    assert len(checkpoints) == 1, checkpoints
    step = checkpoints[0]["step"]
    assert 2 <= step < 200, "saved at the end of a step soon after the request, well before the end"
    assert (out / checkpoints[0]["path"] / "trainer_state.json").is_file()
    assert not (out / "adapter").exists(), "a preempted run has no final adapter"
    if processes == 2:
        assert {p.name for p in (out / checkpoints[0]["path"]).glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}

    if processes == 2:
        return  # resuming two ranks from a checkpoint is test_launch's; this one is the same kind
    resumed = run_recipe_process("train", {**spec, "steps": step + 2, "resume_from": str(out / checkpoints[0]["path"])}, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (resumed.result["resumed_from_step"], resumed.result["total_steps"]) == (step, step + 2)
