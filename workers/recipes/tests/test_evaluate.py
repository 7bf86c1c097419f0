"""evaluate: metrics with CIs for every model, paired deltas, the report; fine-tuning helps."""

from __future__ import annotations

import json

import pytest
from protocol_checks import assert_protocol

from forgeline_recipes.runner import RecipeRun

METRICS = ("loss", "perplexity", "exact_match", "token_f1")


def test_every_model_gets_every_metric_with_a_ci(demo_evaluation: RecipeRun) -> None:
    assert_protocol(demo_evaluation)
    result = demo_evaluation.result
    assert result["examples"] == 100 and result["candidate"] == "candidate" and result["comparator"] == "comparator"
    for name, model in result["models"].items():
        for metric in METRICS:
            estimate = model["metrics"][metric]
            low, high = estimate["ci"]
            assert low <= estimate["value"] <= high, (name, metric, estimate)
        assert model["metrics"]["perplexity"]["value"] == pytest.approx(2.718281828 ** model["metrics"]["loss"]["value"])
    # the candidate's headline metrics carry the paired delta against the comparator (gates read these)
    for metric in METRICS:
        headline = result["metrics"][metric]
        assert headline["deltaCi"][0] <= headline["delta"] <= headline["deltaCi"][1]
    assert result["lower_is_better"] == ["loss", "perplexity"]


def test_tables_and_report(demo_evaluation: RecipeRun) -> None:
    tables = {t["name"]: t for t in demo_evaluation.of("table")}
    assert set(tables) == {"metrics", "deltas", "samples"}
    assert len(tables["metrics"]["rows"]) == 4 * len(METRICS)
    assert len(tables["deltas"]["rows"]) == 3 * len(METRICS)  # three models against the comparator
    report = json.loads((demo_evaluation.out_dir / "eval-report.json").read_text())
    assert len(report["per_example"]) == 100
    assert set(report["per_example"][0]["predictions"]) == {"candidate", "candidate_unquantized", "adapter", "comparator"}
    steps = [p["step"] for p in demo_evaluation.of("progress")]
    assert steps == sorted(steps) and steps[-1] == 400


def test_merged_and_unmerged_adapter_agree(demo_evaluation: RecipeRun) -> None:
    models = demo_evaluation.result["models"]
    for metric in METRICS:
        assert models["adapter"]["metrics"][metric]["value"] == pytest.approx(models["candidate_unquantized"]["metrics"][metric]["value"], rel=1e-4)


@pytest.mark.slow
def test_finetuning_improves_the_task_metrics(demo_evaluation: RecipeRun) -> None:
    """The demo hyperparameters beat the random base model on held-out prompts, and the 4-bit
    GPTQ model keeps most of the gain."""
    result = demo_evaluation.result
    base = result["models"]["comparator"]["metrics"]
    merged = result["models"]["candidate_unquantized"]["metrics"]
    quantized = result["models"]["candidate"]["metrics"]
    summary = {
        name: {m: round(est[m]["value"], 3) for m in METRICS} for name, est in (("base", base), ("merged", merged), ("gptq", quantized))
    }
    print(f"\ntiny-instruct held-out (100 prompts): {json.dumps(summary)}")
    for metric in ("exact_match", "token_f1"):
        assert result["metrics"][metric]["deltaCi"][0] > 0, (metric, result["metrics"][metric])
        assert merged[metric]["value"] >= base[metric]["value"] + 0.3, summary
        assert quantized[metric]["value"] >= merged[metric]["value"] - 0.1, summary
    assert result["metrics"]["loss"]["deltaCi"][1] < 0
