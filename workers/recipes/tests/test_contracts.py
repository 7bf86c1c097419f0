"""The recipes' pydantic models (forgeline_recipes/spec.py) against the JSON Schemas published
from the zod contracts (docs/schemas/recipes/, made by scripts/gen-json-schema.ts): the same
fields, required set, types, bounds and defaults, so the Python and TypeScript sides cannot drift.

Both schemas are brought to one canonical form first: zod and pydantic write the same thing
differently (``type: [X, "null"]`` vs ``anyOf``, a union of consts vs ``enum``, ``$ref``s,
titles, JavaScript's safe-integer bounds)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from forgeline_recipes.protocol import RecipeContext, RecipeError, run_recipe
from forgeline_recipes.spec import CONTRACTS, EvaluateResult, LoraInput, TrainInput, TrainResult, check_result

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas" / "recipes"
MAX_SAFE_INTEGER = 2**53 - 1
IGNORED = {"title", "description", "$schema", "$defs", "examples"}


def canonical(node: Any, defs: dict[str, Any]) -> Any:
    """One spelling of a JSON Schema (draft 2020-12) for what zod and pydantic both emit."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in IGNORED:
            continue
        if key == "type" and isinstance(value, list):
            out["anyOf"] = [{"type": t} for t in value]
        elif key in ("anyOf", "oneOf"):
            out["anyOf"] = [canonical(v, defs) for v in value]
        elif key == "const":
            out["enum"] = [value]
        elif key in ("minimum", "maximum") and abs(value) == MAX_SAFE_INTEGER:
            continue  # zod's int() bounds: what JavaScript can count exactly
        elif key == "patternProperties":
            ((pattern, schema),) = value.items()
            out["propertyNames"] = {"pattern": pattern}
            out["additionalProperties"] = canonical(schema, defs)
        elif key == "propertyNames":
            names = {k: v for k, v in value.items() if k != "type"}
            if names:
                out["propertyNames"] = names
        elif key == "properties":
            out[key] = {name: canonical(v, defs) for name, v in value.items()}
        elif key == "required":
            out[key] = sorted(value)
        elif key == "additionalProperties":
            out[key] = canonical(value, defs) if value not in ({}, True) else True
        elif key in ("items", "prefixItems"):
            out[key] = [canonical(v, defs) for v in value] if isinstance(value, list) else canonical(value, defs)
        elif key == "default" and value is None:
            continue  # "not set" either way
        else:
            out[key] = value
    if "anyOf" in out:
        options = out["anyOf"]
        if all(set(o) == {"enum"} or set(o) == {"type", "enum"} for o in options):  # a union of literals
            out.pop("anyOf")
            out["enum"] = [v for o in options for v in o["enum"]]
        else:
            out["anyOf"] = sorted(options, key=lambda o: json.dumps(o, sort_keys=True))
    if "enum" in out:
        out.pop("type", None)  # the values say it all (zod: number, pydantic: integer)
        out["enum"] = sorted(out["enum"], key=json.dumps)
    if "prefixItems" in out and out.get("items") is False:
        out.pop("items")
    if out.get("type") == "object" and "required" not in out and "properties" in out:
        out["required"] = []
    return out


def canonical_schema(schema: dict[str, Any]) -> Any:
    return canonical(schema, schema.get("$defs", {}))


def published(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))


CASES = [(f"{recipe}.{part}", model) for recipe, models in CONTRACTS.items() for part, model in zip(("input", "result"), models)]


@pytest.mark.parametrize(("name", "model"), CASES, ids=[name for name, _ in CASES])
def test_pydantic_model_matches_published_schema(name: str, model: type[BaseModel]) -> None:
    ours = canonical_schema(model.model_json_schema())
    theirs = canonical_schema(published(name))
    assert ours == theirs, f"{model.__name__} differs from docs/schemas/recipes/{name}.schema.json:\n{_diff(ours, theirs)}"


def test_every_published_recipe_schema_has_a_model() -> None:
    files = {p.name for p in SCHEMAS.glob("*.schema.json")} - {"events.schema.json"}
    assert files == {f"{name}.schema.json" for name, _ in CASES}


def test_the_comparison_catches_drift() -> None:
    """A renamed field, a changed bound, a changed default and a dropped null all show."""
    theirs = canonical_schema(published("train.input"))
    assert canonical_schema(TrainInput.model_json_schema()) == theirs

    class Renamed(TrainInput):
        learning_rate_: float = 2e-4

    class Tighter(LoraInput):
        r: int = 8

    changed = json.loads(json.dumps(published("train.input")))
    changed["properties"]["learning_rate"]["default"] = 1e-3
    assert canonical_schema(changed) != theirs
    assert canonical_schema(Renamed.model_json_schema()) != theirs
    assert canonical_schema(Tighter.model_json_schema()) != canonical_schema(published("train.input"))["properties"]["lora"]
    result = canonical_schema(published("train.result"))
    nullable = result["properties"]["final_loss"]
    assert nullable == {"anyOf": [{"type": "null"}, {"type": "number"}]}
    assert canonical_schema(TrainResult.model_json_schema())["properties"]["final_loss"] == nullable


def _diff(ours: Any, theirs: Any, path: str = "") -> str:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        lines = [_diff(ours.get(k), theirs.get(k), f"{path}.{k}") for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)]
        return "\n".join(lines)
    return f"  {path or '(root)'}: pydantic {json.dumps(ours)} vs published {json.dumps(theirs)}"


# What train.py reports for a CPU run.
TRAIN_RESULT: dict[str, Any] = {
    "total_steps": 200,
    "steps_done_this_run": 150,
    "resumed_from_step": 50,
    "final_loss": 0.42,
    "mean_train_loss": 0.8,
    "tokens_this_run": 96000,
    "tokens_per_s": 5100.5,
    "steady_tokens_per_s": None,
    "train_runtime_s": 18.8,
    "parameters": 420000,
    "trainable_parameters": 16384,
    "examples": 400,
    "packing": False,
    "attn_implementation": "sdpa",
    "liger": False,
    "compile": False,
    "seq_length": 64,
    "batch_size": 16,
    "processes": 1,
    "strategy": "single",
    "global_batch_size": 16,
    "adapter": "adapter",
}


def test_check_result_accepts_a_good_result_and_sends_it_as_strict_json() -> None:
    assert check_result("train", TrainResult, {**TRAIN_RESULT, "final_loss": math.nan}) == {**TRAIN_RESULT, "final_loss": None}
    cuda = {**TRAIN_RESULT, "peak_memory_bytes": 2_000_000_000, "peak_memory_bytes_per_process": [2_000_000_000], "gpu": "H200", "flops_per_token": 2.5e6, "mfu": None}
    assert check_result("train", TrainResult, cuda) == cuda


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"total_steps": None}, "train result: total_steps: expected a non-negative integer, got null"),
        ({"tokens_per_s": math.inf}, "train result: tokens_per_s: expected a number >= 0, got null"),
        ({"strategy": "zero3", "gpu": None}, "train result: strategy: expected one of 'single', 'ddp', 'fsdp', got \"zero3\"; gpu: expected a string, got null"),
    ],
)
def test_check_result_names_each_bad_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RecipeError) as caught:
        check_result("train", TrainResult, {**TRAIN_RESULT, **change})
    assert (caught.value.message, caught.value.error_type, caught.value.retryable) == (message, "RecipeContract", False)


def run_with_result(tmp_path: Path, result: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """run_recipe in this process, with a ``run`` that returns ``result``; (exit code, events)."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"device": "cpu", "seed": 0}))
    stream = io.StringIO()

    def run(ctx: RecipeContext[dict[str, Any]]) -> dict[str, Any]:
        ctx.events.start(ctx.recipe, device="cpu")
        return result

    code = run_recipe("train", lambda raw: raw, run, ["--spec", str(spec), "--out", str(tmp_path / "out")], event_stream=stream, result_model=TrainResult)
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_result_missing_or_renaming_a_field_fails_the_recipe_naming_it(tmp_path: Path) -> None:
    """Exit 2 (retrying runs the same code) with an error event naming the recipe and the field:
    never a result the activity would read a 0 from."""
    without = {k: v for k, v in TRAIN_RESULT.items() if k != "total_steps"}
    code, events = run_with_result(tmp_path, without)
    assert code == 2
    assert events[-1] == {"event": "error", "message": "train result: total_steps: required", "type": "RecipeContract", "retryable": False}
    assert not [e for e in events if e["event"] == "result"]

    code, events = run_with_result(tmp_path, {**without, "steps_total": 200})
    assert code == 2
    assert events[-1]["message"] == "train result: total_steps: required; steps_total: unknown field"

    code, events = run_with_result(tmp_path, TRAIN_RESULT)
    assert code == 0
    assert events[-1] == {"event": "result", "result": TRAIN_RESULT}


def test_make_tiny_model_sizes_are_the_ones_tiny_py_builds() -> None:
    from typing import get_args

    from forgeline_recipes.spec import TinyModelSize
    from forgeline_recipes.tiny import SIZES

    assert set(get_args(TinyModelSize)) == set(SIZES), "a size in forgeline_recipes/tiny.py needs its place in src/contracts/recipes/make-tiny-model.ts too"


def test_check_result_reads_json_arrays_as_intervals() -> None:
    """The result is checked as the JSON it is sent as: a CI is a list there, a tuple in the model."""
    estimate = {"value": 0.5, "ci": [0.4, 0.6]}
    result = {
        "suite": "s", "dataset": "d", "examples": 2, "candidate": "candidate", "comparator": None,
        "metrics": {"exact_match": estimate}, "lower_is_better": ["loss"],
        "models": {"candidate": {"path": "/m", "metrics": {"exact_match": estimate}, "examples_per_s": 3.0}},
        "comparisons": [], "bootstrap": {"resamples": 1000, "confidence": 0.95, "seed": 0, "paired": True},
        "report": "eval-report.json", "peak_memory_bytes": None,
    }  # fmt: skip
    assert check_result("evaluate", EvaluateResult, result) == result
    with pytest.raises(RecipeError, match=r"^evaluate result: metrics\.exact_match\.ci: expected a list of 2 numbers, got null$"):
        check_result("evaluate", EvaluateResult, {**result, "metrics": {"exact_match": {"value": 0.5, "ci": None}}})
