import { DriftInputError, type Embeddings } from './embeddings';
import { Rng } from './random';
import { quantile, rocAuc } from './stats';

/**
 * Evidently's `model()` defaults: a domain classifier (scikit-learn's SGDClassifier with
 * loss='log_loss' and its defaults) tells reference from current; drift when its ROC AUC on the
 * held-out half exceeds `threshold`, or, with bootstrap, the `quantileProbability` quantile of
 * the AUCs of 100 random predictions.
 */
export interface ModelOptions {
  threshold: number;
  bootstrap: boolean;
  quantileProbability: number;
  /** Seeds the split, the per-epoch shuffles and the bootstrap (Evidently: random_state=42). */
  seed: number;
  /** SGDClassifier's defaults. */
  alpha: number;
  maxIter: number;
  tol: number;
  nIterNoChange: number;
  /** Shuffle the training samples before each epoch (SGDClassifier's default; off only to compare with it sample by sample). */
  shuffle: boolean;
}

export const MODEL_DEFAULTS: ModelOptions = { threshold: 0.55, bootstrap: false, quantileProbability: 0.95, seed: 42, alpha: 1e-4, maxIter: 1000, tol: 1e-3, nIterNoChange: 5, shuffle: true };

const MAX_DLOSS = 1e12;

/** Log loss of margin p for label y in {-1, 1}, as scikit-learn's SGD computes it. */
function logLoss(p: number, y: number): number {
  const z = p * y;
  if (z > 18) return Math.exp(-z);
  if (z < -18) return -z;
  return Math.log(1 + Math.exp(-z));
}

/** Its derivative in p. */
function dLogLoss(p: number, y: number): number {
  const z = p * y;
  if (z > 18) return Math.exp(-z) * -y;
  if (z < -18) return -y;
  return -y / (Math.exp(z) + 1);
}

export interface LinearModel {
  coef: Float64Array;
  intercept: number;
  epochs: number;
}

/**
 * Plain SGD for L2-regularised logistic regression with scikit-learn's 'optimal' learning rate
 * (eta = 1 / (alpha (t0 + t - 1)), t0 from Bottou's heuristic), a shuffle per epoch, and its
 * stopping rule (no training-loss improvement of tol × n for nIterNoChange epochs), one pass over
 * the samples per epoch. `x` holds n rows of d float64 values, `y` the labels in {-1, 1}.
 */
export function fitSgdLogistic(x: Float64Array, y: Int8Array, d: number, o: ModelOptions, rng: Rng): LinearModel {
  const n = y.length;
  const w = new Float64Array(d);
  let wscale = 1;
  let intercept = 0;
  const typw = Math.sqrt(1 / Math.sqrt(o.alpha));
  const eta0 = typw / Math.max(1, dLogLoss(-typw, 1));
  const optimalInit = 1 / (eta0 * o.alpha);
  let t = 1;
  let bestLoss = Infinity;
  let noImprovement = 0;
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let epoch = 0;
  while (epoch < o.maxIter) {
    epoch++;
    if (o.shuffle) rng.shuffle(order);
    let sumLoss = 0;
    for (let s = 0; s < n; s++) {
      const i = order[s]!;
      const off = i * d;
      let dot = 0;
      for (let k = 0; k < d; k++) dot += w[k]! * x[off + k]!;
      const p = dot * wscale + intercept;
      const eta = 1 / (o.alpha * (optimalInit + t - 1));
      const yi = y[i]!;
      sumLoss += logLoss(p, yi);
      const dloss = Math.min(MAX_DLOSS, Math.max(-MAX_DLOSS, dLogLoss(p, yi)));
      const update = -eta * dloss;
      wscale *= Math.max(0, 1 - eta * o.alpha);
      if (wscale < 1e-9) {
        for (let k = 0; k < d; k++) w[k] = w[k]! * wscale;
        wscale = 1;
      }
      if (update !== 0) {
        const c = update / wscale;
        for (let k = 0; k < d; k++) w[k] = w[k]! + c * x[off + k]!;
        intercept += update;
      }
      t++;
    }
    if (!Number.isFinite(intercept) || !Number.isFinite(wscale)) {
      throw new DriftInputError(`model: the classifier diverged at epoch ${epoch}; the embeddings' scale is too large (normalise them)`);
    }
    if (sumLoss > bestLoss - o.tol * n) noImprovement++;
    else noImprovement = 0;
    if (sumLoss < bestLoss) bestLoss = sumLoss;
    if (noImprovement >= o.nIterNoChange) break;
  }
  const coef = new Float64Array(d);
  for (let k = 0; k < d; k++) coef[k] = w[k]! * wscale;
  return { coef, intercept, epochs: epoch };
}

/** Gather rows `idx` of the stacked (reference; current) matrix into float64, with labels 1 / 0. */
function gather(reference: Embeddings, current: Embeddings, idx: Int32Array): { x: Float64Array; label: Uint8Array } {
  const d = reference.cols;
  const m = reference.rows;
  const x = new Float64Array(idx.length * d);
  const label = new Uint8Array(idx.length);
  for (let r = 0; r < idx.length; r++) {
    const i = idx[r]!;
    const [src, off] = i < m ? [reference.data, i * d] : [current.data, (i - m) * d];
    for (let k = 0; k < d; k++) x[r * d + k] = src[off + k]!;
    label[r] = i < m ? 1 : 0;
  }
  return { x, label };
}

export function modelDrift(reference: Embeddings, current: Embeddings, o: ModelOptions): { score: number; threshold: number; drifted: boolean; epochs: number; trainRows: number; testRows: number } {
  const d = reference.cols;
  const total = reference.rows + current.rows;
  const rng = new Rng(o.seed);
  // train_test_split(test_size=0.5, shuffle=True): ceil(N/2) held out.
  const perm = rng.permutation(total);
  const nTest = Math.ceil(total / 2);
  const test = gather(reference, current, perm.subarray(0, nTest));
  const train = gather(reference, current, perm.subarray(nTest));
  for (const [what, part] of [['training', train], ['held-out', test]] as const) {
    const refs = part.label.reduce((a, l) => a + l, 0);
    if (refs === 0 || refs === part.label.length) throw new DriftInputError(`model: the ${what} half holds only ${refs ? 'reference' : 'current'} rows (${reference.rows} reference, ${current.rows} current); use more rows or another method`);
  }
  const y = Int8Array.from(train.label, (l) => (l === 1 ? 1 : -1));
  const model = fitSgdLogistic(train.x, y, d, o, rng);
  const proba = new Float64Array(nTest);
  for (let r = 0; r < nTest; r++) {
    let z = model.intercept;
    for (let k = 0; k < d; k++) z += model.coef[k]! * test.x[r * d + k]!;
    proba[r] = 1 / (1 + Math.exp(-z));
  }
  const score = rocAuc(test.label, proba);
  let threshold = o.threshold;
  if (o.bootstrap) {
    const random = new Float64Array(100);
    const scores = new Float64Array(nTest);
    for (let b = 0; b < 100; b++) {
      for (let r = 0; r < nTest; r++) scores[r] = rng.float();
      random[b] = rocAuc(test.label, scores);
    }
    threshold = quantile(random, o.quantileProbability);
  }
  return { score, threshold, drifted: score > threshold, epochs: model.epochs, trainRows: total - nTest, testRows: nTest };
}
