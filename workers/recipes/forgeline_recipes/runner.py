"""A minimal Python runner for recipes, as the TypeScript JobRunner runs them: a subprocess with
``--spec``/``--out``, hub access off, events parsed from stdout. For tests and the pipeline script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECIPES_DIR = Path(__file__).resolve().parent.parent
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


@dataclass
class RecipeRun:
    """The outcome of one recipe process."""

    recipe: str
    returncode: int
    events: list[dict[str, Any]]
    logs: list[str]  # non-event stdout lines
    stderr: str
    seconds: float
    out_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Events of one kind, in order."""
        return [e for e in self.events if e["event"] == kind]

    @property
    def result(self) -> dict[str, Any]:
        results = self.of("result")
        if len(results) != 1:
            tail = "\n".join(self.stderr.splitlines()[-30:])
            raise AssertionError(f"{self.recipe} exited {self.returncode} with {len(results)} result events:\n{tail}")
        return results[0]["result"]

    @property
    def error(self) -> dict[str, Any] | None:
        errors = self.of("error")
        return errors[-1] if errors else None


def run_recipe_process(recipe: str, spec: dict[str, Any], out_dir: Path, timeout_s: float = 900, script: Path | None = None) -> RecipeRun:
    """Run ``<recipe>.py --spec <file> --out <out_dir>`` (or ``script``) with this interpreter and parse its events."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spec_file = out_dir.parent / f".{out_dir.name}.{recipe}.spec.json"
    spec_file.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script or RECIPES_DIR / f"{recipe}.py"), "--spec", str(spec_file), "--out", str(out_dir)],
        cwd=RECIPES_DIR,
        env={**os.environ, **OFFLINE_ENV},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    seconds = time.perf_counter() - started
    events: list[dict[str, Any]] = []
    logs: list[str] = []
    for line in proc.stdout.splitlines():
        try:
            parsed = json.loads(line) if line.startswith("{") else None
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("event"), str):
            events.append(parsed)
        else:
            logs.append(line)
    return RecipeRun(recipe, proc.returncode, events, logs, proc.stderr, seconds, out_dir)
