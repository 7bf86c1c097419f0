"""Recipe evaluate: score one or more models on a held-out prompt/completion set.

Per model: ``loss`` (mean NLL per completion token, teacher-forced) and ``perplexity``, plus every
requested task metric from the registry (``forgeline_recipes.metrics.METRICS``: exact_match,
token_f1, ...) on greedy generations, each with a seeded percentile-bootstrap CI. For each
comparison (by default every model against ``comparator``): the delta, with a paired bootstrap CI.

Spec::

    {"models": {"candidate": "/runs/r1/quantized",
                "candidate_unquantized": "/runs/r1/merged",
                "comparator": "/models/tiny-llama",
                "adapter_only": {"path": "/models/tiny-llama", "adapter": "/runs/r1/adapter"}},
     "candidate": "candidate", "comparator": "comparator",
     "dataset_dir": "/data/tiny-instruct", "split": "eval", "suite": "heldout",
     "metrics": ["exact_match", "token_f1"], "max_examples": 0, "batch_size": 32,
     "max_new_tokens": null, "bootstrap": {"resamples": 1000, "confidence": 0.95},
     "device": "cpu", "seed": 0}

Writes ``<out>/eval-report.json`` (everything, including each example's generations). The
``result`` carries ``metrics`` (the candidate's estimates with ``delta``/``deltaCi`` against the
comparator: what release gates read), ``models`` and ``comparisons``. Deltas are always
``candidate − comparator``; ``lower_is_better`` lists the metrics where a negative delta is good.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline_recipes.protocol import EventWriter, RecipeContext, SpecError, run_recipe
from forgeline_recipes.spec import EvaluateInput, EvaluateResult, ModelEntry, parse_input, require_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from forgeline_recipes.data import Example
    from forgeline_recipes.metrics import Bootstrap

LOSS_METRICS = ("loss", "perplexity")  # teacher-forced, lower is better


@dataclass(frozen=True)
class ModelRef:
    name: str
    path: Path
    adapter: Path | None = None


@dataclass(frozen=True)
class EvalSpec:
    models: list[ModelRef]
    candidate: str
    comparisons: list[tuple[str, str]]  # (candidate, comparator)
    dataset_file: Path
    suite: str
    metrics: list[str]
    max_examples: int
    batch_size: int
    max_new_tokens: int | None
    resamples: int
    confidence: float
    sample_rows: int
    device: str
    seed: int


def parse_spec(raw: dict[str, Any]) -> EvalSpec:
    """Validate the spec (src/contracts/recipes/evaluate.ts) without importing torch; errors name the field."""
    from forgeline_recipes.metrics import METRICS  # numpy only; no torch

    spec = parse_input(EvaluateInput, raw)
    models = _models(spec)
    names = [m.name for m in models]
    candidate = spec.candidate or ("candidate" if "candidate" in names else names[0])
    comparator = spec.comparator or ("comparator" if "comparator" in names else None)
    for key, name in (("candidate", candidate), ("comparator", comparator)):
        if name is not None and name not in names:
            raise SpecError(key, f"{name!r} is not one of the models ({', '.join(names)})")
    if comparator == candidate:
        raise SpecError("comparator", "must differ from candidate")
    comparisons = [(name, comparator) for name in names if comparator is not None and name != comparator]
    comparisons.sort(key=lambda pair: pair[0] != candidate)  # the candidate's comparison first

    unknown = [m for m in spec.metrics if m not in METRICS]
    if unknown:
        raise SpecError("metrics", f"unknown metric(s) {', '.join(unknown)}; registered: {', '.join(sorted(METRICS))}")
    require_dir("dataset_dir", spec.dataset_dir, containing=f"{spec.split}.jsonl")
    return EvalSpec(
        models=models,
        candidate=candidate,
        comparisons=comparisons,
        dataset_file=spec.dataset_dir / f"{spec.split}.jsonl",
        suite=spec.suite,
        metrics=spec.metrics,
        max_examples=spec.max_examples,
        batch_size=spec.batch_size,
        max_new_tokens=spec.max_new_tokens,
        resamples=spec.bootstrap.resamples,
        confidence=spec.bootstrap.confidence,
        sample_rows=spec.sample_rows,
        device=spec.device,
        seed=spec.seed,
    )


def _models(spec: EvaluateInput) -> list[ModelRef]:
    """``models``: name → model directory, or name → {"path", "adapter"?} (a LoRA adapter applied unmerged)."""
    if not spec.models:
        raise SpecError("models", 'expected at least one model, e.g. {"candidate": "/path/to/model"}')
    models = [
        ModelRef(name, entry.path, entry.adapter) if isinstance(entry, ModelEntry) else ModelRef(name, entry)
        for name, entry in spec.models.items()
    ]
    for model in models:
        require_dir(f"models.{model.name}", model.path, containing="config.json")
        require_dir(f"models.{model.name}.adapter", model.adapter)
    return models


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


@dataclass
class ModelScores:
    """Per-example raw scores of one model (aligned with the eval examples)."""

    nll: list[float] = field(default_factory=list)  # summed over completion tokens
    tokens: list[int] = field(default_factory=list)  # completion tokens (incl. eos)
    predictions: list[str] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def teacher_forced_nll(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch: list[Example], device: torch.device
) -> tuple[list[float], list[int]]:
    """Summed NLL and token count of each example's completion (+eos), given its prompt."""
    import torch

    from forgeline_recipes.data import IGNORE_INDEX, encode_example

    limit = getattr(model.config, "max_position_embeddings", None)
    encoded = [encode_example(tokenizer, ex, limit) for ex in batch]
    width = max(len(e.input_ids) for e in encoded)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([e.input_ids + [pad] * (width - len(e.input_ids)) for e in encoded], device=device)
    labels = torch.tensor([e.labels + [IGNORE_INDEX] * (width - len(e.labels)) for e in encoded], device=device)
    attention = torch.tensor([[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in encoded], device=device)
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    log_probs = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    nll = -(log_probs * mask).sum(dim=1)
    return nll.tolist(), mask.sum(dim=1).tolist()


def greedy_generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    batch: list[Example],
    device: torch.device,
    max_new_tokens: int,
) -> list[str]:
    """Greedy completions of each prompt (left-padded batch, the prompt encoded as in training)."""
    import torch

    from forgeline_recipes.data import encode_prompt

    prompts = [encode_prompt(tokenizer, ex.prompt) for ex in batch]
    width = max(len(p) for p in prompts)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    with torch.no_grad():
        output = model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad,
        )
    return [text.strip() for text in tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)]


def score_model(
    ref: ModelRef,
    examples: list[Example],
    spec: EvalSpec,
    device: torch.device,
    events: EventWriter,
    progress: tuple[int, int],
) -> ModelScores:
    """Loss and task metrics of one model over ``examples``; emits progress per batch."""
    from forgeline_recipes.metrics import METRICS
    from forgeline_recipes.modeling import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(ref.adapter if ref.adapter and (ref.adapter / "tokenizer_config.json").is_file() else ref.path)
    model = load_causal_lm(ref.path, device, adapter=ref.adapter)
    max_new_tokens = spec.max_new_tokens or 4 + max(
        len(tokenizer(ex.completion, add_special_tokens=False)["input_ids"]) for ex in examples
    )
    scores = ModelScores(metrics={name: [] for name in spec.metrics})
    done, total = progress
    started = time.perf_counter()
    for batch in _batches(examples, spec.batch_size):
        nll, tokens = teacher_forced_nll(model, tokenizer, batch, device)
        predictions = greedy_generate(model, tokenizer, batch, device, max_new_tokens)
        scores.nll += nll
        scores.tokens += tokens
        scores.predictions += predictions
        for name in spec.metrics:
            scores.metrics[name] += [METRICS[name](p, ex.completion) for p, ex in zip(predictions, batch)]
        done += len(batch)
        events.progress(done, total, model=ref.name)
    scores.seconds = time.perf_counter() - started
    return scores


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


def estimate(scores: ModelScores, metric: str, boot: Bootstrap) -> dict[str, Any]:
    """{value, ci} of one metric for one model."""
    import numpy as np

    if metric == "loss":
        value, ci = boot.ratio(scores.nll, scores.tokens)
    elif metric == "perplexity":
        value, ci = boot.ratio(scores.nll, scores.tokens, transform=np.exp)
    else:
        value, ci = boot.mean(scores.metrics[metric])
    return {"value": value, "ci": ci.as_list()}


def delta(a: ModelScores, b: ModelScores, metric: str, boot: Bootstrap) -> dict[str, Any]:
    """{delta, ci}: metric(a) − metric(b) with a paired bootstrap CI."""
    import numpy as np

    if metric in LOSS_METRICS:
        transform = np.exp if metric == "perplexity" else (lambda x: x)
        value, ci = boot.paired_ratio_delta(a.nll, a.tokens, b.nll, b.tokens, transform=transform)
    else:
        value, ci = boot.paired_mean_delta(a.metrics[metric], b.metrics[metric])
    return {"delta": value, "ci": ci.as_list()}


def run(ctx: RecipeContext[EvalSpec]) -> dict[str, Any]:
    from forgeline_recipes.data import read_examples
    from forgeline_recipes.metrics import Bootstrap
    from forgeline_recipes.runtime import peak_memory_bytes, reset_peak_memory, setup

    spec, events = ctx.spec, ctx.events
    device = setup(spec.device, spec.seed)
    reset_peak_memory(device)
    examples = read_examples(spec.dataset_file, "dataset_dir")
    if spec.max_examples:
        examples = examples[: spec.max_examples]
    total = len(examples) * len(spec.models)
    events.start(ctx.recipe, device=str(device), total_steps=total, models=[m.name for m in spec.models], examples=len(examples))

    scored: dict[str, ModelScores] = {}
    for i, ref in enumerate(spec.models):
        scored[ref.name] = score_model(ref, examples, spec, device, events, (i * len(examples), total))

    boot = Bootstrap(len(examples), seed=spec.seed, resamples=spec.resamples, level=spec.confidence)
    metric_names = [*LOSS_METRICS, *spec.metrics]
    models = {
        ref.name: {
            "path": str(ref.path),
            **({"adapter": str(ref.adapter)} if ref.adapter else {}),
            "metrics": {m: estimate(scored[ref.name], m, boot) for m in metric_names},
            "examples_per_s": len(examples) / max(scored[ref.name].seconds, 1e-9),
        }
        for ref in spec.models
    }
    comparisons = [
        {"candidate": a, "comparator": b, "metrics": {m: delta(scored[a], scored[b], m, boot) for m in metric_names}}
        for a, b in spec.comparisons
    ]
    headline = {m: dict(est) for m, est in models[spec.candidate]["metrics"].items()}
    primary = next((c for c in comparisons if c["candidate"] == spec.candidate), None)
    if primary:
        for m, d in primary["metrics"].items():
            headline[m].update(delta=d["delta"], deltaCi=d["ci"])

    _emit_tables(events, spec, examples, scored, models, comparisons)
    for m, est in headline.items():
        events.metric(m, est["value"])
        if "delta" in est:
            events.metric(f"{m}_delta", est["delta"])

    report = {
        "suite": spec.suite,
        "dataset": str(spec.dataset_file),
        "examples": len(examples),
        "candidate": spec.candidate,
        "comparator": primary["comparator"] if primary else None,
        "metrics": headline,
        "lower_is_better": list(LOSS_METRICS),
        "models": models,
        "comparisons": comparisons,
        "bootstrap": {"resamples": spec.resamples, "confidence": spec.confidence, "seed": spec.seed, "paired": True},
        "per_example": [
            {"prompt": ex.prompt, "reference": ex.completion, "predictions": {name: s.predictions[i] for name, s in scored.items()}}
            for i, ex in enumerate(examples)
        ],
    }
    (ctx.out_dir / "eval-report.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return {k: v for k, v in report.items() if k != "per_example"} | {"report": "eval-report.json", "peak_memory_bytes": peak_memory_bytes(device)}


def _emit_tables(
    events: EventWriter,
    spec: EvalSpec,
    examples: list[Example],
    scored: dict[str, ModelScores],
    models: dict[str, Any],
    comparisons: list[dict[str, Any]],
) -> None:
    events.table(
        "metrics",
        ["model", "metric", "value", "ci_low", "ci_high"],
        [[name, m, est["value"], *est["ci"]] for name, info in models.items() for m, est in info["metrics"].items()],
    )
    if comparisons:
        events.table(
            "deltas",
            ["candidate", "comparator", "metric", "delta", "ci_low", "ci_high"],
            [[c["candidate"], c["comparator"], m, d["delta"], *d["ci"]] for c in comparisons for m, d in c["metrics"].items()],
        )
    if spec.sample_rows:
        names = list(scored)
        events.table(
            "samples",
            ["prompt", "reference", *names],
            [[ex.prompt, ex.completion, *(scored[n].predictions[i] for n in names)] for i, ex in enumerate(examples[: spec.sample_rows])],
        )


if __name__ == "__main__":
    sys.exit(run_recipe("evaluate", parse_spec, run, result_model=EvaluateResult))
