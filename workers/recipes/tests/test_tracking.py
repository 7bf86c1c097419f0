"""W&B tracking from the recipes (forgeline_recipes/tracking.py): who logs, what a bad tracking
block or a failing SDK costs (one warning, never the result), and that the event stream stays
clean. Online logging, tables, offline runs + `wandb sync` and a failing server are tested against
the local W&B wire-format endpoint in test/integration/recipe-wandb.test.ts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from forgeline_recipes.protocol import EXIT_NON_RETRYABLE, EXIT_OK
from forgeline_recipes.runner import run_recipe_process
from forgeline_recipes.tracking import WandbTracker, _children_write_events_to_stderr

RANKS_RECIPE = Path(__file__).parent / "fixtures" / "ranks_recipe.py"


def tracking_block(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"project": "forgeline", "group": "release/tiny/abc", "job_type": "train", "dir": str(tmp_path / "wandb-runs"), **extra}


@pytest.fixture
def wandb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the SDK's settings and caches in the test's directory, and any server unreachable."""
    for var in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(var, raising=False)
    for var, sub in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):
        monkeypatch.setenv(var, str(tmp_path / sub))


def offline_runs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "wandb-runs" / "wandb").glob("offline-run-*"))


def test_only_rank_0_of_a_data_parallel_run_logs(tmp_path: Path, wandb_home: None) -> None:
    spec = {"processes": 2, "device": "cpu", "seed": 0, "tracking": tracking_block(tmp_path, mode="offline")}
    run = run_recipe_process("ranks_recipe", spec, tmp_path / "out", timeout_s=300, script=RANKS_RECIPE)
    assert run.returncode == EXIT_OK, run.stderr[-3000:]
    runs = offline_runs(tmp_path)
    assert len(runs) == 1, f"expected one W&B run for two ranks, found {runs}"
    assert len(list(runs[0].glob("run-*.wandb"))) == 1
    assert run.stderr.count("W&B run ") == 1


def test_a_bad_tracking_block_costs_one_warning_and_changes_nothing(tmp_path: Path, wandb_home: None) -> None:
    untracked = run_recipe_process("ranks_recipe", {"device": "cpu", "seed": 0}, tmp_path / "plain", script=RANKS_RECIPE)
    bad = {"project": "forgeline", "job_type": "train", "mode": "sometimes", "dir": str(tmp_path / "wandb-runs")}
    tracked = run_recipe_process("ranks_recipe", {"device": "cpu", "seed": 0, "tracking": bad}, tmp_path / "out", script=RANKS_RECIPE)
    assert tracked.returncode == untracked.returncode == EXIT_OK, tracked.stderr
    assert tracked.result == untracked.result
    warnings = [line for line in tracked.stderr.splitlines() if "warning: W&B" in line]
    assert len(warnings) == 1, tracked.stderr
    assert "tracking.group: Field required" in warnings[0]
    assert "tracking.mode: Input should be 'online' or 'offline'" in warnings[0]
    assert not (tmp_path / "wandb-runs").exists()


def test_the_run_ends_with_the_recipes_exit_code(tmp_path: Path, wandb_home: None) -> None:
    spec = {"behaviour": "bad-data", "device": "cpu", "seed": 0, "tracking": tracking_block(tmp_path, mode="offline")}
    run = run_recipe_process("ranks_recipe", spec, tmp_path / "out", script=RANKS_RECIPE)
    assert run.returncode == EXIT_NON_RETRYABLE
    assert run.error is not None and run.error["message"] == "dataset: row 3 has no completion"
    (offline,) = offline_runs(tmp_path)
    assert "wandb sync" in run.stderr
    assert offline.name.startswith("offline-run-")


def test_recipes_without_tracking_never_import_wandb(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"device": "cpu", "seed": 0}))
    probe = f"""
import runpy, sys
sys.argv = [{str(RANKS_RECIPE)!r}, "--spec", {str(spec_file)!r}, "--out", {str(tmp_path / "out")!r}]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print("wandb imported" if "wandb" in sys.modules else "wandb not imported", file=sys.stderr)
"""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert "wandb not imported" in proc.stderr, proc.stderr


def test_the_sdk_service_cannot_write_into_the_event_stream(capfd: pytest.CaptureFixture[str]) -> None:
    with _children_write_events_to_stderr():
        subprocess.run(["sh", "-c", "echo from-a-child-process"], check=True)
    print('{"event": "progress"}', flush=True)
    out, err = capfd.readouterr()
    assert out == '{"event": "progress"}\n'
    assert "from-a-child-process" in err


class FailingRun:
    """A W&B run whose every call raises, as the SDK does when its service has died."""

    def __init__(self) -> None:
        self.calls = 0

    def log(self, *_: Any, **__: Any) -> None:
        self.calls += 1
        raise ConnectionError("wandb-core is gone")

    def finish(self, **_: Any) -> None:
        self.calls += 1
        raise ConnectionError("wandb-core is gone")


def test_sdk_errors_after_init_cost_one_warning(capsys: pytest.CaptureFixture[str]) -> None:
    run = FailingRun()
    tracker = WandbTracker(run, offline=False)
    for step in (1, 2, 3):
        tracker.observe("progress", {"step": step, "total_steps": 3, "loss": 1.0 / step})
    tracker.finish()
    assert run.calls == 4, "every call is still tried"
    err = capsys.readouterr().err
    assert err.count("warning: W&B") == 1, err
    assert "ConnectionError: wandb-core is gone" in err
