"""Checks that a recipe's stdout followed PROTOCOL.md."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from forgeline_recipes.runner import RecipeRun

# The events' published schema (src/contracts/recipes/events.ts): each kind's fields and their types.
EVENTS_SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "schemas" / "recipes" / "events.schema.json").read_text(encoding="utf-8"))
EVENT_SCHEMAS: dict[str, dict[str, Any]] = {branch["properties"]["event"]["const"]: branch for branch in EVENTS_SCHEMA["oneOf"]}
JSON_TYPES: dict[str, Any] = {"integer": int, "number": (int, float), "string": str, "boolean": bool, "array": list, "object": dict, "null": type(None)}


def _types(schema: dict[str, Any]) -> list[str]:
    if "anyOf" in schema:
        return [t for option in schema["anyOf"] for t in _types(option)]
    kind = schema.get("type", [])
    return kind if isinstance(kind, list) else [kind]


def _matches(value: Any, schema: dict[str, Any]) -> bool:
    """The value has one of the schema's JSON types (bounds and nested items are the TypeScript side's to check)."""
    if isinstance(value, bool):
        return "boolean" in _types(schema)
    return any(isinstance(value, JSON_TYPES[t]) for t in _types(schema) if t in JSON_TYPES) and not (
        isinstance(value, float) and "integer" in _types(schema) and "number" not in _types(schema)
    )


def assert_protocol(run: RecipeRun, *, success: bool = True) -> None:
    """Every event is known and well-formed; a success starts with `start` and ends with one `result`."""
    assert run.events, f"{run.recipe} printed no events; stderr:\n{run.stderr[-2000:]}"
    for event in run.events:
        kind = event["event"]
        assert kind in EVENT_SCHEMAS, f"unknown event {kind!r}"
        schema = EVENT_SCHEMAS[kind]
        for name in schema["required"]:
            assert name in event, f"{kind}.{name} is required (docs/schemas/recipes/events.schema.json): {event}"
        for name, value in event.items():
            if name in schema["properties"]:
                assert _matches(value, schema["properties"][name]), f"{kind}.{name} should be {_types(schema['properties'][name])}: {event}"
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
