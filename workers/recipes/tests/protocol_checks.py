"""Checks that a recipe's stdout followed PROTOCOL.md."""

from __future__ import annotations

import math
from numbers import Real

from forgeline_recipes.runner import RecipeRun

REQUIRED = {
    "start": {"recipe": str, "device": str},
    "progress": {"step": int, "total_steps": int},
    "metric": {"name": str, "value": Real},
    "checkpoint": {"step": int, "path": str},
    "table": {"name": str, "columns": list, "rows": list},
    "result": {"result": dict},
    "error": {"message": str, "type": str, "retryable": bool},
}


def assert_protocol(run: RecipeRun, *, success: bool = True) -> None:
    """Every event is known and well-formed; a success starts with `start` and ends with one `result`."""
    assert run.events, f"{run.recipe} printed no events; stderr:\n{run.stderr[-2000:]}"
    for event in run.events:
        kind = event["event"]
        assert kind in REQUIRED, f"unknown event {kind!r}"
        for name, expected in REQUIRED[kind].items():
            assert isinstance(event.get(name), expected), f"{kind}.{name} should be {expected}: {event}"
        for key, value in event.items():
            if isinstance(value, float):
                assert math.isfinite(value), f"{kind}.{key} is not finite"
    for table in run.of("table"):
        assert all(len(row) == len(table["columns"]) for row in table["rows"]), table["name"]
    if success:
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.events[0]["event"] == "start"
        assert run.events[-1]["event"] == "result"
        assert len(run.of("result")) == 1 and not run.of("error")
    else:
        assert not run.of("result")
        assert run.events[-1]["event"] == "error"
