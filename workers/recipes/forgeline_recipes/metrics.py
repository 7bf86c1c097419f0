"""Task metrics (a pluggable registry) and bootstrap confidence intervals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

MetricFn = Callable[[str, str], float]
METRICS: dict[str, MetricFn] = {}


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Add a per-example metric ``(prediction, reference) -> score`` to the registry."""

    def wrap(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        return fn

    return wrap


def _tokens(text: str) -> list[str]:
    return text.strip().split()


@register_metric("exact_match")
def exact_match(prediction: str, reference: str) -> float:
    return float(_tokens(prediction) == _tokens(reference))


@register_metric("token_f1")
def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style bag-of-tokens F1; two empty strings agree perfectly."""
    pred, ref = _tokens(prediction), _tokens(reference)
    if not pred and not ref:
        return 1.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def bootstrap_ci(values: Sequence[float], seed: int, resamples: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def paired_bootstrap_delta(a: Sequence[float], b: Sequence[float], seed: int, resamples: int = 1000) -> tuple[float, tuple[float, float]]:
    """Mean of a − b over the same examples, with a paired percentile bootstrap CI."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(diff.mean()), bootstrap_ci(diff.tolist(), seed, resamples)
