import { averageRanks, quantileSorted } from '../contracts/canary-analysis';

export { quantileSorted };

/** numpy's `percentile(xs, 100 * q)` (linear interpolation). */
export function quantile(xs: ArrayLike<number>, q: number): number {
  return quantileSorted(Float64Array.from(xs).sort(), q);
}

/** numpy's `median`. */
export function median(xs: Float64Array): number {
  return quantileSorted(xs.slice().sort(), 0.5);
}

/** Population standard deviation (ddof = 0, numpy's `std` default). */
export function stdPopulation(xs: ArrayLike<number>): number {
  const n = xs.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += xs[i]!;
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = xs[i]! - mean;
    ss += d * d;
  }
  return Math.sqrt(ss / n);
}

/**
 * First Wasserstein distance between the empirical distributions of two ascending samples:
 * ∫ |F_u(t) - F_v(t)| dt, as scipy's `wasserstein_distance(u, v)`.
 */
export function wasserstein1Sorted(u: Float64Array, v: Float64Array): number {
  const m = u.length;
  const n = v.length;
  let i = 0;
  let j = 0;
  let sum = 0;
  let t = Math.min(u[0]!, v[0]!);
  while (i < m || j < n) {
    const takeU = j >= n || (i < m && u[i]! <= v[j]!);
    const next = takeU ? u[i]! : v[j]!;
    sum += Math.abs(i / m - j / n) * (next - t);
    t = next;
    if (takeU) i++;
    else j++;
  }
  return sum;
}

/**
 * ROC AUC of `scores` for binary `labels` (1 positive, 0 negative), ties counted ½: scikit-learn's
 * `roc_auc_score` (it equals the Mann-Whitney U of the positives over n₊·n₋).
 */
export function rocAuc(labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  const { ranks } = averageRanks(scores);
  let nPos = 0;
  let rankSum = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === 1) {
      nPos++;
      rankSum += ranks[i]!;
    }
  }
  const nNeg = labels.length - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}
