import type { Embeddings } from './embeddings';
import { stdPopulation, wasserstein1Sorted } from './stats';

/** Evidently's `ratio()` defaults (component test: normed Wasserstein distance). */
export interface RatioOptions {
  /** A component drifts when its normed Wasserstein distance is >= this. */
  componentThreshold: number;
  /** Drift when the share of drifted components exceeds this. */
  threshold: number;
}

export const RATIO_DEFAULTS: RatioOptions = { componentThreshold: 0.1, threshold: 0.2 };

function column(e: Embeddings, k: number): Float64Array {
  const out = new Float64Array(e.rows);
  for (let r = 0, o = k; r < e.rows; r++, o += e.cols) out[r] = e.data[o]!;
  return out;
}

/**
 * Per component: Wasserstein-1 distance between reference and current values divided by the
 * reference's standard deviation (at least 0.001), Evidently's "wasserstein" stattest; the score
 * is the share of components at or above `componentThreshold`.
 */
export function ratioDrift(reference: Embeddings, current: Embeddings, o: RatioOptions): { score: number; threshold: number; drifted: boolean; driftedComponents: number } {
  let drifted = 0;
  for (let k = 0; k < reference.cols; k++) {
    const ref = column(reference, k);
    const norm = Math.max(stdPopulation(ref), 0.001);
    const wd = wasserstein1Sorted(ref.sort(), column(current, k).sort()) / norm;
    if (wd >= o.componentThreshold) drifted++;
  }
  const score = drifted / reference.cols;
  return { score, threshold: o.threshold, drifted: score > o.threshold, driftedComponents: drifted };
}
