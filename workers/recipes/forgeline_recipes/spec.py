"""The recipes' contracts on the Python side: a pydantic model of each recipe's input (spec.json)
and result, mirroring the zod schemas in ``src/contracts/recipes/`` that are published as
``docs/schemas/recipes/*.schema.json``. ``tests/test_contracts.py`` compares every model here
with its published schema (fields, required set, types, bounds, defaults), so the two sides
cannot drift: change a field in the zod schema, regenerate (``npx tsx scripts/gen-json-schema.ts``),
then change it here.

Usage::

    spec = parse_input(TrainInput, raw)      # SpecError "lora.r: expected ..." (exit 2)
    require_dir("base_model", spec.base_model)  # InputNotFound naming the field and the path
    ...
    check_result("train", TrainResult, result)  # RecipeError "train result: total_steps: required"

Errors name the field by its dotted path (``lora.r``, ``models.candidate.path``) and say what it
expects, in words taken from the field's JSON Schema. No torch here: a spec is checked in well
under a second.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import MISSING, AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema

from .protocol import InputNotFound, RecipeError, SpecError, _jsonable

# ---------------------------------------------------------------------------------------------
# Field types (src/contracts/recipes/common.ts)
# ---------------------------------------------------------------------------------------------

DEVICE_PATTERN = r"^(cpu|cuda(:\d+)?)$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# What a pattern means, for error messages.
PATTERN_MEANINGS = {
    DEVICE_PATTERN: "cpu, cuda or cuda:<index>",
    MODEL_NAME_PATTERN: "a model name of 1-64 letters, digits, '_', '-' or '.'",
    r"^[0-9a-f]{64}$": "64 lowercase hex digits (a sha256)",
}


def _non_empty_string(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a local path")
    return value


Device = Annotated[str, Field(pattern=DEVICE_PATTERN)]
Seed = Annotated[int, Field(ge=0)]
# A path on the machine that runs the recipe; whether it exists is checked by require_dir.
LocalPath = Annotated[
    Path, Field(strict=False), BeforeValidator(_non_empty_string), AfterValidator(Path.expanduser), WithJsonSchema({"type": "string", "minLength": 1})
]
PositiveInt = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
NonNegative = Annotated[float, Field(ge=0)]
NonEmptyString = Annotated[str, Field(min_length=1)]
Interval = tuple[float, float]


class Contract(BaseModel):
    """Strict: unknown fields are errors, and no type is coerced (``"5"`` is not 5, ``"yes"`` not true)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ResultContract(BaseModel):
    """A recipe's result, only checked (never used as an object): strict, like an input."""

    model_config = ConfigDict(extra="forbid", strict=True)


# ---------------------------------------------------------------------------------------------
# train (src/contracts/recipes/train.ts)
# ---------------------------------------------------------------------------------------------

LrScheduler = Literal["linear", "cosine", "constant", "constant_with_warmup"]
AttentionImplementation = Literal["auto", "sdpa", "eager", "flex_attention", "flash_attention_2"]
ATTENTION_IMPLEMENTATIONS: tuple[str, ...] = get_args(AttentionImplementation)  # runtime.best_attention_implementation resolves auto
LigerMode = Literal["auto", "on", "off"]
TrainStrategy = Literal["ddp", "fsdp"]


class LoraInput(Contract):
    r: Annotated[int, Field(ge=1, le=1024)] = 8
    alpha: Annotated[float, Field(gt=0)] = 16.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    target_modules: Annotated[list[NonEmptyString], Field(min_length=1)] = ["q_proj", "k_proj", "v_proj", "o_proj"]


class TrainInput(Contract):
    base_model: LocalPath
    dataset_dir: LocalPath
    lora: LoraInput = LoraInput()
    qlora: bool = False
    steps: PositiveInt | None = None
    epochs: Annotated[float, Field(gt=0)] | None = None
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 2e-4
    lr_scheduler: LrScheduler = "linear"
    warmup_steps: Count = 0
    batch_size: PositiveInt = 8
    gradient_accumulation_steps: PositiveInt = 1
    seq_length: Annotated[int, Field(ge=8)] = 128
    checkpoint_every: PositiveInt = 20
    log_every: PositiveInt = 1
    gradient_checkpointing: bool = False
    packing: bool = False
    attn_implementation: AttentionImplementation = "auto"
    liger: LigerMode = "auto"
    compile: bool = False
    processes: Annotated[int, Field(ge=1, le=64)] = 1
    strategy: TrainStrategy = "ddp"
    resume_from: LocalPath | None = None
    device: Device
    seed: Seed


class TrainResult(ResultContract):
    total_steps: Count
    steps_done_this_run: Count
    resumed_from_step: Count
    final_loss: float | None
    mean_train_loss: float | None
    tokens_this_run: Count
    tokens_per_s: NonNegative
    steady_tokens_per_s: NonNegative | None
    train_runtime_s: NonNegative
    parameters: Count
    trainable_parameters: Count
    examples: Count
    packing: bool
    attn_implementation: NonEmptyString
    liger: bool
    compile: bool
    seq_length: PositiveInt
    batch_size: PositiveInt
    processes: PositiveInt
    strategy: Literal["single", "ddp", "fsdp"]
    global_batch_size: PositiveInt
    adapter: NonEmptyString
    # Only on CUDA:
    peak_memory_bytes: Count | MISSING = MISSING
    peak_memory_bytes_per_process: list[Count] | MISSING = MISSING
    gpu: str | MISSING = MISSING
    flops_per_token: NonNegative | MISSING = MISSING
    mfu: NonNegative | None | MISSING = MISSING


# ---------------------------------------------------------------------------------------------
# quantize (src/contracts/recipes/quantize.ts)
# ---------------------------------------------------------------------------------------------

QuantizationMethod = Literal["gptq", "awq", "none"]


class QuantizeInput(Contract):
    base_model: LocalPath
    adapter: LocalPath | None = None
    dataset_dir: LocalPath
    method: QuantizationMethod = "gptq"
    bits: Literal[4, 8] = 4
    group_size: PositiveInt = 128
    calibration_samples: PositiveInt = 64
    calibration_seq_length: Annotated[int, Field(ge=8)] = 256
    device: Device
    seed: Seed


class QuantizeVerify(ResultContract):
    finite: bool
    shape: list[Count]
    max_abs_logit: NonNegative
    top1_agreement_with_merged: Annotated[float, Field(ge=0, le=1)]


class QuantizeResult(ResultContract):
    method: QuantizationMethod
    merged: NonEmptyString
    adapter_merged: bool
    size_before_bytes: Count
    merge_seconds: NonNegative
    quantized: NonEmptyString | None
    size_after_bytes: Count
    compression_ratio: Annotated[float, Field(gt=0)]
    seconds: NonNegative
    peak_memory_bytes: Count | None
    # Unless method is none:
    format: NonEmptyString | MISSING = MISSING
    bits: Literal[4, 8] | MISSING = MISSING
    group_size: PositiveInt | MISSING = MISSING
    calibration_samples: PositiveInt | MISSING = MISSING
    quantize_seconds: NonNegative | MISSING = MISSING
    verify: QuantizeVerify | MISSING = MISSING


# ---------------------------------------------------------------------------------------------
# evaluate (src/contracts/recipes/evaluate.ts)
# ---------------------------------------------------------------------------------------------

ModelName = Annotated[str, Field(pattern=MODEL_NAME_PATTERN)]


class ModelEntry(Contract):
    """A model directory with a LoRA adapter applied unmerged."""

    path: LocalPath
    adapter: LocalPath | None = None


class BootstrapInput(Contract):
    resamples: Annotated[int, Field(ge=100)] = 1000
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95


class EvaluateInput(Contract):
    models: dict[ModelName, LocalPath | ModelEntry]
    candidate: NonEmptyString | None = None
    comparator: NonEmptyString | None = None
    dataset_dir: LocalPath
    split: NonEmptyString = "eval"
    suite: NonEmptyString = "heldout"
    metrics: Annotated[list[NonEmptyString], Field(min_length=1)] = ["exact_match", "token_f1"]
    max_examples: Count = 0
    batch_size: PositiveInt = 32
    max_new_tokens: PositiveInt | None = None
    bootstrap: BootstrapInput = BootstrapInput()
    sample_rows: Count = 20
    device: Device
    seed: Seed


class Estimate(ResultContract):
    value: float
    ci: Interval


class HeadlineEstimate(Estimate):
    delta: float | MISSING = MISSING
    deltaCi: Interval | MISSING = MISSING  # noqa: N815 - the name gates read


class Delta(ResultContract):
    delta: float
    ci: Interval


class ModelScores(ResultContract):
    path: str
    adapter: str | MISSING = MISSING
    metrics: dict[str, Estimate]
    examples_per_s: NonNegative


class Comparison(ResultContract):
    candidate: str
    comparator: str
    metrics: dict[str, Delta]


class BootstrapUsed(ResultContract):
    resamples: PositiveInt
    confidence: float
    seed: Count
    paired: bool


class EvaluateResult(ResultContract):
    suite: str
    dataset: str
    examples: Count
    candidate: str
    comparator: str | None
    metrics: dict[str, HeadlineEstimate]
    lower_is_better: list[str]
    models: dict[str, ModelScores]
    comparisons: list[Comparison]
    bootstrap: BootstrapUsed
    report: NonEmptyString
    peak_memory_bytes: Count | None


# ---------------------------------------------------------------------------------------------
# make_tiny_model (src/contracts/recipes/make-tiny-model.ts)
# ---------------------------------------------------------------------------------------------

TinyModelSize = Literal["tiny", "0.5b", "1.5b", "8b"]  # forgeline_recipes.tiny.SIZES
TinyModelDtype = Literal["float32", "bfloat16", "float16"]


class MakeTinyModelInput(Contract):
    size: TinyModelSize = "tiny"
    dtype: TinyModelDtype | None = None
    device: Device
    seed: Seed


class MakeTinyModelResult(ResultContract):
    size: TinyModelSize
    parameters: PositiveInt
    dtype: TinyModelDtype
    bytes: Count
    weights_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    vocabulary: PositiveInt
    seed: Seed


# Every recipe's models, by the name of its published schema (docs/schemas/recipes/<name>.*.schema.json).
CONTRACTS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "train": (TrainInput, TrainResult),
    "quantize": (QuantizeInput, QuantizeResult),
    "evaluate": (EvaluateInput, EvaluateResult),
    "make_tiny_model": (MakeTinyModelInput, MakeTinyModelResult),
}


# ---------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------


M = TypeVar("M", bound=BaseModel)


def parse_input(model: type[M], raw: Any) -> M:
    """``raw`` (parsed spec.json) as a ``model``; a bad field raises :class:`SpecError`
    (``lora.r: expected ...``). Checked as the JSON it came from, so a JSON array is a tuple."""
    try:
        return model.model_validate_json(json.dumps(raw))
    except ValidationError as exc:
        problems = describe_errors(model, exc, raw)
        first_field, first_problem = problems[0]
        rest = "".join(f"; {field}: {problem}" for field, problem in problems[1:])
        raise SpecError(first_field, first_problem + rest) from None


def require_dir(field: str, path: Path | None, *, containing: str | None = None) -> None:
    """An input directory (and a file in it) must exist: else :class:`InputNotFound` naming the field."""
    if path is None:
        return
    if not path.exists():
        raise InputNotFound(field, path)
    if not path.is_dir():
        raise InputNotFound(field, path, "expected a directory")
    if containing is not None and not (path / containing).is_file():
        raise InputNotFound(field, path / containing)


def check_result(recipe: str, model: type[BaseModel], result: Mapping[str, Any]) -> dict[str, Any]:
    """The result as it will be sent (strict JSON: non-finite numbers are null), checked against
    ``model``. A missing, renamed or mistyped field is a bug in the recipe: a non-retryable
    ``RecipeContract`` error naming each field (``train result: total_steps: required``)."""
    payload = _jsonable(result)
    try:
        model.model_validate_json(json.dumps(payload, allow_nan=False))
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {problem}" for field, problem in describe_errors(model, exc, payload, list_known=False))
        raise RecipeError(f"{recipe} result: {problems}", error_type="RecipeContract") from None
    return payload


def describe_errors(model: type[BaseModel], exc: ValidationError, data: Any, *, list_known: bool = True) -> list[tuple[str, str]]:
    """One ``(field, problem)`` per bad field, in the model's field order. An unknown field gets a
    hint: the known field it resembles or, with ``list_known``, all of them.

    pydantic names the branch of a union it tried (``models.candidate.ModelEntry.path``); the
    field's path is read off the data instead, and of the branches' errors for one value only
    the most specific one is kept.
    """
    schema = model.model_json_schema()
    found: list[tuple[list[str | int], str]] = []
    for error in exc.errors():
        path, value, is_key = _data_path(error["loc"], data, error["type"])
        found.append((path, _problem(error["type"], schema, data, path, value, is_key, list_known)))
    kept: list[tuple[str, str]] = []
    for path, problem in found:
        deeper = any(len(other) > len(path) and other[: len(path)] == path for other, _ in found)
        field = _format_path(path)
        if not deeper and field not in {f for f, _ in kept}:
            kept.append((field, problem))
    return kept


_ABSENT = object()


def _data_path(loc: Sequence[str | int], data: Any, error_type: str) -> tuple[list[str | int], Any, bool]:
    """The path of the offending value in ``data``, the value itself, and whether a key is at fault."""
    path: list[str | int] = []
    value = data
    for i, segment in enumerate(loc):
        if segment == "[key]":
            return path, path[-1] if path else value, True
        if isinstance(value, Mapping) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and isinstance(segment, int) and 0 <= segment < len(value):
            value = value[segment]
        elif i == len(loc) - 1 and error_type == "missing":
            value = _ABSENT
        else:
            continue  # the name of a union branch pydantic tried, not a field
        path.append(segment)
    return path, value, False


def _format_path(path: Sequence[str | int]) -> str:
    out = ""
    for segment in path:
        out += f"[{segment}]" if isinstance(segment, int) else (f".{segment}" if out else str(segment))
    return out or "spec"


def _problem(error_type: str, schema: dict[str, Any], data: Any, path: list[str | int], value: Any, is_key: bool, list_known: bool) -> str:
    if error_type == "missing":
        return "required"
    if error_type == "extra_forbidden":
        known = list(_schema_at(schema, data, path[:-1]).get("properties", {}))
        return "unknown field" + _hint(str(path[-1]), known, list_known)
    node = _schema_at(schema, data, path[:-1] if is_key else path)
    if is_key:
        patterns = list(node.get("patternProperties", {}))
        return f"expected {PATTERN_MEANINGS.get(patterns[0], 'another name') if patterns else 'another name'}, got {json.dumps(value)}"
    got = f", got {json.dumps(value)}" if value is None or isinstance(value, (bool, int, float, str)) else ""
    return f"expected {_expectation(schema, node, value)}{got}"


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _json_type(value: Any) -> str:
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "null"


def _branch(schema: dict[str, Any], node: dict[str, Any], value: Any) -> dict[str, Any]:
    """The branch of a union that ``value`` is meant for (by its JSON type), or the union itself."""
    node = _resolve(schema, node)
    if "anyOf" not in node or value is _ABSENT:
        return node
    kind = _json_type(value)
    for option in (_resolve(schema, o) for o in node["anyOf"]):
        if option.get("type") == kind or (kind == "integer" and option.get("type") == "number"):
            return option
    return node


def _schema_at(schema: dict[str, Any], data: Any, path: Sequence[str | int]) -> dict[str, Any]:
    """The JSON Schema of the value at ``path`` in ``data``."""
    node, value = _branch(schema, schema, data), data
    for segment in path:
        if "properties" in node and segment in node["properties"]:
            node = node["properties"][segment]
        elif "patternProperties" in node:
            node = next(iter(node["patternProperties"].values()))
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        elif isinstance(segment, int) and "prefixItems" in node and segment < len(node["prefixItems"]):
            node = node["prefixItems"][segment]
        elif isinstance(segment, int) and isinstance(node.get("items"), dict):
            node = node["items"]
        else:
            return {}
        value = value[segment] if isinstance(value, (Mapping, list)) else _ABSENT
        node = _branch(schema, node, value)
    return node


def _number(x: float) -> str:
    return f"{x:g}"


def _expectation(schema: dict[str, Any], node: dict[str, Any], value: Any = _ABSENT) -> str:
    """What a value of this JSON Schema is, in words: ``a positive integer``, ``a number >= 0 and < 1``."""
    node = _resolve(schema, node)
    if "anyOf" in node:
        options = [_resolve(schema, o) for o in node["anyOf"]]
        return " or ".join(_expectation(schema, o) for o in options if o.get("type") != "null")
    if "enum" in node:
        choices = node["enum"]
        if all(isinstance(c, str) for c in choices):
            return "one of " + ", ".join(repr(c) for c in choices)
        return " or ".join(json.dumps(c) for c in choices)
    kind = node.get("type")
    low, high = node.get("minimum"), node.get("maximum")
    if kind == "integer":
        if low is not None and high is not None:
            return f"an integer between {low} and {high}"
        if high is None and low in (0, 1):
            return "a positive integer" if low == 1 else "a non-negative integer"
        if low is not None:
            return f"an integer >= {low}"
        return f"an integer <= {high}" if high is not None else "an integer"
    if kind == "number":
        bounds = [f"{op} {_number(node[key])}" for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")) if key in node]
        return "a number" + (" " + " and ".join(bounds) if bounds else "")
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        if "pattern" in node:
            return PATTERN_MEANINGS.get(node["pattern"], f"a string matching {node['pattern']}")
        return "a non-empty string" if node.get("minLength") else "a string"
    if kind == "array":
        if "prefixItems" in node:
            return f"a list of {len(node['prefixItems'])} numbers"
        items = _resolve(schema, node.get("items") or {})
        of = (" of non-empty strings" if items.get("minLength") else " of strings") if items.get("type") == "string" else ""
        return f"a list{of}" + (f" (at least {node['minItems']})" if node.get("minItems") else "")
    if kind == "object":
        return "a JSON object"
    return "null" if kind == "null" else "another value"


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _hint(key: str, known: list[str], list_known: bool) -> str:
    match = difflib.get_close_matches(key, known, n=1) or ([_camel_to_snake(key)] if _camel_to_snake(key) in known else [])
    if match:
        return f" (did you mean {match[0]!r}?)"
    return f" (known fields: {', '.join(known)})" if list_known else ""
