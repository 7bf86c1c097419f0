import { columnMeans, type Embeddings } from './embeddings';
import { Rng } from './random';
import { quantile } from './stats';

export const DISTANCES = ['euclidean', 'cosine', 'cityblock', 'chebyshev'] as const;
export type Distance = (typeof DISTANCES)[number];

/** Evidently's `distance()` defaults. */
export interface DistanceOptions {
  dist: Distance;
  /** Drift when the distance exceeds it (without bootstrap). */
  threshold: number;
  /** Compare with the `quantileProbability` quantile of 100 distances between bootstrap samples of the reference instead. */
  bootstrap: boolean;
  quantileProbability: number;
  seed: number;
}

export const DISTANCE_DEFAULTS: DistanceOptions = { dist: 'euclidean', threshold: 0.2, bootstrap: false, quantileProbability: 0.95, seed: 0 };

export function vectorDistance(dist: Distance, a: Float64Array, b: Float64Array): number {
  let s = 0;
  switch (dist) {
    case 'euclidean':
      for (let k = 0; k < a.length; k++) s += (a[k]! - b[k]!) ** 2;
      return Math.sqrt(s);
    case 'cityblock':
      for (let k = 0; k < a.length; k++) s += Math.abs(a[k]! - b[k]!);
      return s;
    case 'chebyshev':
      for (let k = 0; k < a.length; k++) s = Math.max(s, Math.abs(a[k]! - b[k]!));
      return s;
    case 'cosine': {
      let na = 0;
      let nb = 0;
      for (let k = 0; k < a.length; k++) {
        s += a[k]! * b[k]!;
        na += a[k]! * a[k]!;
        nb += b[k]! * b[k]!;
      }
      return 1 - s / Math.sqrt(na * nb);
    }
  }
}

const N_BOOTSTRAP = 100;

/**
 * Distance between the mean embeddings (Evidently's `distance` method). With bootstrap, the
 * threshold is the quantile of distances between two bootstrap samples of the reference sized
 * m²/(m+n) and mn/(m+n), as Evidently draws them.
 */
export function distanceDrift(reference: Embeddings, current: Embeddings, o: DistanceOptions): { score: number; threshold: number; drifted: boolean } {
  const d = reference.cols;
  const score = vectorDistance(o.dist, columnMeans(reference.data, reference.rows, d), columnMeans(current.data, current.rows, d));
  if (!o.bootstrap) return { score, threshold: o.threshold, drifted: score > o.threshold };
  const m = reference.rows;
  const n = current.rows;
  const refSize = Math.max(1, Math.floor((m * m) / (m + n)));
  const curSize = Math.max(1, Math.floor((n * m) / (m + n)));
  const rng = new Rng(o.seed);
  const null_ = new Float64Array(N_BOOTSTRAP);
  for (let b = 0; b < N_BOOTSTRAP; b++) {
    const a = columnMeans(reference.data, m, d, rng.sampleWithReplacement(m, refSize));
    const c = columnMeans(reference.data, m, d, rng.sampleWithReplacement(m, curSize));
    null_[b] = vectorDistance(o.dist, a, c);
  }
  const threshold = quantile(null_, o.quantileProbability);
  return { score, threshold, drifted: score > threshold };
}
