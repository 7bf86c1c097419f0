"""Recipe evaluate: score models on the held-out split.

For each model: loss and perplexity (teacher-forced, on completion tokens) and task metrics from
the metric registry (exact_match, token_f1, ...) on greedy generations, each with a bootstrap 95%
confidence interval; for the candidate against the comparator, the paired delta with its CI.

Spec:
  {"models": {"candidate": "/dir", "candidate_unquantized": "/dir" (optional), "comparator": "/dir"},
   "dataset_dir": "/dir with eval.jsonl", "suite": "heldout", "metrics": ["exact_match", "token_f1"],
   "max_examples": 0 (all), "device": "cpu", "seed": 0}
Output: <out>/eval-report.json. Result: {"metrics": {name: {value, ci, delta, deltaCi}}, "models": {...}}
where `metrics` describes the candidate (the gates read it); lower-is-better metrics (loss,
perplexity) keep their sign: delta = candidate − comparator.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeline_recipes.protocol import RecipeContext, SpecError, run_recipe
from forgeline_recipes.spec import SpecReader, read_common


@dataclass
class Spec:
    models: dict[str, Path]
    dataset_dir: Path
    suite: str
    metrics: list[str]
    max_examples: int
    device: str
    seed: int


def parse_spec(raw: dict[str, Any]) -> Spec:
    from forgeline_recipes.metrics import METRICS

    r = SpecReader(raw)
    device, seed = read_common(r)
    models_r = r.section("models", required=True)
    models: dict[str, Path] = {}
    for role in ("candidate", "candidate_unquantized", "comparator"):
        p = models_r.path(role, None, kind="dir")
        if p is not None:
            models[role] = p
    if "candidate" not in models:
        raise SpecError("models.candidate", "required: the model to score")
    spec = Spec(
        models=models,
        dataset_dir=r.path("dataset_dir", kind="dir"),
        suite=r.string("suite", "heldout"),
        metrics=r.string_list("metrics", sorted(METRICS)),
        max_examples=r.integer("max_examples", 0, minimum=0),
        device=device,
        seed=seed,
    )
    r.finish()
    unknown = [m for m in spec.metrics if m not in METRICS]
    if unknown:
        raise SpecError("metrics", f"unknown metric(s) {unknown}; registered: {sorted(METRICS)}")
    return spec


def score_model(path: Path, rows: list[dict[str, str]], metric_names: list[str], device: Any) -> dict[str, Any]:
    """Per-example losses and metric scores for one model, plus throughput."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forgeline_recipes.data import encode
    from forgeline_recipes.metrics import METRICS

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
    nll: list[float] = []
    counts: list[int] = []
    per_metric: dict[str, list[float]] = {m: [] for m in metric_names}
    samples: list[list[Any]] = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for row in rows:
            enc = encode(tokenizer, row["prompt"], row["completion"], 256)
            ids = torch.tensor([enc["input_ids"]], device=device)
            labels = torch.tensor([enc["labels"]], device=device)
            logits = model(ids).logits[:, :-1]
            target = labels[:, 1:]
            mask = target != -100
            logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            nll.append(float(-(logp * mask).sum()))
            counts.append(int(mask.sum()))
            prompt_ids = torch.tensor([tokenizer(row["prompt"])["input_ids"]], device=device)
            n_ref = len(tokenizer(row["completion"], add_special_tokens=False)["input_ids"])
            out = model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), max_new_tokens=n_ref + 2, do_sample=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            prediction = tokenizer.decode(out[0, prompt_ids.shape[1]:], skip_special_tokens=True).strip()
            for m in metric_names:
                per_metric[m].append(METRICS[m](prediction, row["completion"]))
            if len(samples) < 8:
                samples.append([row["prompt"], row["completion"], prediction])
    seconds = time.perf_counter() - t0
    return {"nll": nll, "tokens": counts, "scores": per_metric, "samples": samples, "examples_per_s": len(rows) / max(seconds, 1e-9)}


def summarize(scored: dict[str, Any], seed: int) -> dict[str, dict[str, Any]]:
    from forgeline_recipes.metrics import bootstrap_ci

    out: dict[str, dict[str, Any]] = {}
    # Mean over examples of each example's mean token loss: the statistic the bootstrap resamples.
    per_example_loss = [n / max(c, 1) for n, c in zip(scored["nll"], scored["tokens"])]
    loss = sum(per_example_loss) / len(per_example_loss)
    lo, hi = bootstrap_ci(per_example_loss, seed)
    out["loss"] = {"value": loss, "ci": [lo, hi]}
    out["perplexity"] = {"value": math.exp(loss), "ci": [math.exp(lo), math.exp(hi)]}
    for name, values in scored["scores"].items():
        out[name] = {"value": sum(values) / len(values), "ci": list(bootstrap_ci(values, seed))}
    return out


def run(ctx: RecipeContext[Spec]) -> dict[str, Any]:
    from forgeline_recipes.data import load_split
    from forgeline_recipes.metrics import paired_bootstrap_delta
    from forgeline_recipes.runtime import setup

    spec = ctx.spec
    device = setup(spec.device, spec.seed)
    rows = load_split(spec.dataset_dir, "eval")
    if spec.max_examples:
        rows = rows[: spec.max_examples]
    ctx.events.start(ctx.recipe, device=str(device), total_steps=len(spec.models))
    scored: dict[str, Any] = {}
    for i, (role, path) in enumerate(spec.models.items(), start=1):
        scored[role] = score_model(path, rows, spec.metrics, device)
        ctx.events.progress(i, len(spec.models), model=role)

    summaries = {role: summarize(s, spec.seed) for role, s in scored.items()}
    candidate = summaries["candidate"]
    if "comparator" in scored:
        comp = scored["comparator"]
        cand = scored["candidate"]
        for name in spec.metrics:
            d, ci = paired_bootstrap_delta(cand["scores"][name], comp["scores"][name], spec.seed)
            candidate[name].update(delta=d, deltaCi=list(ci))
        loss_c = [n / max(c, 1) for n, c in zip(cand["nll"], cand["tokens"])]
        loss_b = [n / max(c, 1) for n, c in zip(comp["nll"], comp["tokens"])]
        d, ci = paired_bootstrap_delta(loss_c, loss_b, spec.seed)
        candidate["loss"].update(delta=candidate["loss"]["value"] - summaries["comparator"]["loss"]["value"], deltaCi=list(ci))
        candidate["perplexity"].update(delta=candidate["perplexity"]["value"] - summaries["comparator"]["perplexity"]["value"])

    columns = ["model", "metric", "value", "ci_low", "ci_high"]
    table = [[role, name, m["value"], m["ci"][0], m["ci"][1]] for role, s in summaries.items() for name, m in s.items()]
    ctx.events.table("metrics", columns, table)
    ctx.events.table("samples", ["prompt", "reference", "prediction"], scored["candidate"]["samples"])
    for name, m in candidate.items():
        ctx.events.metric(name, m["value"])
    report = {
        "suite": spec.suite,
        "examples": len(rows),
        "metrics": candidate,
        "models": {role: {"path": str(spec.models[role]), "metrics": s, "examples_per_s": scored[role]["examples_per_s"]} for role, s in summaries.items()},
        "samples": scored["candidate"]["samples"],
    }
    (ctx.out_dir / "eval-report.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return {"metrics": candidate, "models": report["models"], "examples": len(rows), "suite": spec.suite}


if __name__ == "__main__":
    sys.exit(run_recipe("evaluate", parse_spec, run))
