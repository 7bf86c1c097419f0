"""Task metrics (a pluggable registry) and bootstrap confidence intervals.

A task metric scores one greedy generation against its reference, ``(prediction, reference) ->
float`` in [0, 1], and a model's value is the mean over examples. Add one with::

    @register_metric("starts_with")
    def starts_with(prediction: str, reference: str) -> float: ...

Intervals are percentile bootstraps over examples. Every statistic of one evaluation draws the same
resampled example indices (same seed, same n), so a delta between two models is a *paired*
bootstrap: each resample compares both models on the same examples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

MetricFn = Callable[[str, str], float]
METRICS: dict[str, MetricFn] = {}


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator: add a per-example metric ``(prediction, reference) -> score`` to :data:`METRICS`."""

    def add(fn: MetricFn) -> MetricFn:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        METRICS[name] = fn
        return fn

    return add


def normalize_tokens(text: str) -> list[str]:
    """Case-folded whitespace tokens: the unit both built-in metrics compare."""
    return text.casefold().split()


@register_metric("exact_match")
def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the token sequences are identical (ignoring case and spacing), else 0.0."""
    return float(normalize_tokens(prediction) == normalize_tokens(reference))


@register_metric("token_f1")
def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall over bags of tokens (SQuAD-style).

    Both empty: 1.0 (nothing expected, nothing said); exactly one empty: 0.0.
    """
    predicted, expected = normalize_tokens(prediction), normalize_tokens(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------


Transform = Callable[[np.ndarray], np.ndarray]


def _identity(x: np.ndarray) -> np.ndarray:
    return x


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_list(self) -> list[float]:
        return [self.low, self.high]


class Bootstrap:
    """Percentile bootstrap over ``n`` examples with a fixed set of resampled index rows."""

    def __init__(self, n: int, seed: int, resamples: int = 1000, level: float = 0.95) -> None:
        if n < 1:
            raise ValueError("a bootstrap needs at least one example")
        if not 0 < level < 1:
            raise ValueError("level must be in (0, 1)")
        self.n, self.level = n, level
        self.indices = np.random.default_rng(seed).integers(0, n, size=(resamples, n))

    def _interval(self, replicates: np.ndarray) -> Interval:
        tail = (1 - self.level) / 2
        low, high = np.quantile(replicates, [tail, 1 - tail])
        return Interval(float(low), float(high))

    def _check(self, *arrays: np.ndarray) -> None:
        for a in arrays:
            if a.shape != (self.n,):
                raise ValueError(f"expected {self.n} per-example values, got shape {a.shape}")

    def mean(self, values: Sequence[float]) -> tuple[float, Interval]:
        """Mean of per-example values and its CI."""
        x = np.asarray(values, dtype=np.float64)
        self._check(x)
        return float(x.mean()), self._interval(x[self.indices].mean(axis=1))

    def ratio(
        self, numerators: Sequence[float], denominators: Sequence[float], transform: Transform = _identity
    ) -> tuple[float, Interval]:
        """transform(sum(num) / sum(den)) and its CI; e.g. NLL per token over examples of different
        lengths, or (with ``transform=np.exp``) perplexity."""
        num, den = np.asarray(numerators, dtype=np.float64), np.asarray(denominators, dtype=np.float64)
        self._check(num, den)
        value = transform(num.sum() / den.sum())
        return float(value), self._interval(transform(num[self.indices].sum(1) / den[self.indices].sum(1)))

    def paired_mean_delta(self, a: Sequence[float], b: Sequence[float]) -> tuple[float, Interval]:
        """mean(a) − mean(b) over the same examples, with a paired CI."""
        diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
        return self.mean(diff)

    def paired_ratio_delta(
        self,
        num_a: Sequence[float],
        den_a: Sequence[float],
        num_b: Sequence[float],
        den_b: Sequence[float],
        transform: Transform = _identity,
    ) -> tuple[float, Interval]:
        """transform(ratio(a)) − transform(ratio(b)) over the same examples, with a paired CI."""
        arrays = [np.asarray(v, dtype=np.float64) for v in (num_a, den_a, num_b, den_b)]
        self._check(*arrays)
        na, da, nb, db = arrays
        value = transform(na.sum() / da.sum()) - transform(nb.sum() / db.sum())
        idx = self.indices
        replicates = transform(na[idx].sum(1) / da[idx].sum(1)) - transform(nb[idx].sum(1) / db[idx].sum(1))
        return float(value), self._interval(replicates)
