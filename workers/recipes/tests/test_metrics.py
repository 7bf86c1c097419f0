"""Task metrics and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from forgeline_recipes.metrics import METRICS, Bootstrap, exact_match, register_metric, token_f1


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("c b a", "c b a", 1.0),
        ("  C  b a ", "c b a", 1.0),  # case and spacing do not matter
        ("c b", "c b a", 0.0),
        ("a b c", "c b a", 0.0),  # order matters for exact match
        ("", "", 1.0),
        ("", "a", 0.0),
    ],
)
def test_exact_match(prediction: str, reference: str, expected: float) -> None:
    assert exact_match(prediction, reference) == expected


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("c b a", "c b a", 1.0),
        ("a b c", "c b a", 1.0),  # a bag of tokens: order does not matter
        ("", "", 1.0),  # nothing expected, nothing said
        ("", "a b", 0.0),
        ("a b", "", 0.0),
        ("x y", "a b", 0.0),
        ("a", "a b", 2 * 1.0 * 0.5 / 1.5),  # precision 1, recall 1/2
        ("a a a", "a b", 2 * (1 / 3) * 0.5 / (1 / 3 + 0.5)),  # repeats count once per reference occurrence
        ("A B", "a b", 1.0),
    ],
)
def test_token_f1(prediction: str, reference: str, expected: float) -> None:
    assert token_f1(prediction, reference) == pytest.approx(expected)


def test_registry_holds_the_builtins_and_accepts_new_metrics() -> None:
    assert {"exact_match", "token_f1"} <= set(METRICS)

    @register_metric("test_first_token")
    def first_token(prediction: str, reference: str) -> float:
        return float(prediction.split()[:1] == reference.split()[:1])

    try:
        assert METRICS["test_first_token"]("a x", "a b") == 1.0
        with pytest.raises(ValueError, match="already registered"):
            register_metric("test_first_token")(first_token)
    finally:
        del METRICS["test_first_token"]


def test_bootstrap_ci_contains_the_point_estimate_and_is_seeded() -> None:
    rng = np.random.default_rng(7)
    values = (rng.random(120) < 0.4).astype(float).tolist()
    value, ci = Bootstrap(len(values), seed=0).mean(values)
    assert value == pytest.approx(np.mean(values))
    assert ci.low < value < ci.high and 0.0 <= ci.low and ci.high <= 1.0
    assert 0.1 < ci.high - ci.low < 0.25  # about ±1.96·sqrt(p(1-p)/n)
    assert Bootstrap(len(values), seed=0).mean(values) == (value, ci)
    assert Bootstrap(len(values), seed=1).mean(values)[1] != ci


def test_constant_scores_have_a_degenerate_interval() -> None:
    value, ci = Bootstrap(10, seed=0).mean([1.0] * 10)
    assert value == 1.0 and (ci.low, ci.high) == (1.0, 1.0)


def test_paired_delta_is_tighter_than_unpaired_for_correlated_models() -> None:
    rng = np.random.default_rng(3)
    difficulty = rng.random(200)
    a = (difficulty < 0.6).astype(float)  # both models solve the easy examples...
    b = (difficulty < 0.5).astype(float)  # ...a solves a few more
    boot = Bootstrap(200, seed=0)
    delta, ci = boot.paired_mean_delta(a, b)
    assert delta == pytest.approx(a.mean() - b.mean())
    assert ci.contains(delta) and ci.low > 0  # every resample favours a
    _, ci_a = boot.mean(a)
    assert ci.high - ci.low < ci_a.high - ci_a.low
    same, same_ci = boot.paired_mean_delta(a, a)
    assert same == 0 and (same_ci.low, same_ci.high) == (0.0, 0.0)


def test_ratio_weights_examples_by_token_count() -> None:
    boot = Bootstrap(3, seed=0)
    value, ci = boot.ratio([2.0, 4.0, 30.0], [1, 2, 10])
    assert value == pytest.approx(36 / 13)
    assert ci.contains(value)
    ppl, ppl_ci = boot.ratio([2.0, 4.0, 30.0], [1, 2, 10], transform=np.exp)
    assert ppl == pytest.approx(np.exp(36 / 13)) and ppl_ci.low == pytest.approx(np.exp(ci.low))
    delta, delta_ci = boot.paired_ratio_delta([1.0, 2.0, 3.0], [1, 1, 1], [2.0, 4.0, 6.0], [1, 1, 1])
    assert delta == pytest.approx(-2.0) and delta_ci.contains(delta)


def test_bootstrap_rejects_misaligned_inputs() -> None:
    with pytest.raises(ValueError, match="expected 3 per-example values"):
        Bootstrap(3, seed=0).mean([1.0, 0.0])
