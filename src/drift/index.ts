/**
 * Input drift of embeddings, reference vs current, with the four methods Evidently offers for
 * embeddings and Evidently's defaults (its `embedding_drift_methods`): `model` (domain
 * classifier ROC AUC), `mmd` (maximum mean discrepancy, RBF kernel), `ratio` (share of drifted
 * components) and `distance` (distance between the mean embeddings). Deterministic given the seed.
 * Shared by the drift monitor, `forgeline drift check` and the embeddings pipeline; deviations
 * from Evidently are listed in README.md, "Canary analysis and drift".
 */
import { z } from 'zod';
import { DISTANCE_DEFAULTS, DISTANCES, distanceDrift, type DistanceOptions } from './distance';
import { DriftInputError, type Embeddings, validatePair } from './embeddings';
import { mmdDrift, MMD_DEFAULTS, type MmdOptions } from './mmd';
import { modelDrift, MODEL_DEFAULTS, type ModelOptions } from './model';
import { ratioDrift, RATIO_DEFAULTS, type RatioOptions } from './ratio';

export { DriftInputError, embeddings, fromRows, type Embeddings } from './embeddings';
export { DISTANCE_DEFAULTS, MMD_DEFAULTS, MODEL_DEFAULTS, RATIO_DEFAULTS };
export type { DistanceOptions, MmdOptions, ModelOptions, RatioOptions };

export const DRIFT_METHODS = ['model', 'mmd', 'ratio', 'distance'] as const;
export type DriftMethod = (typeof DRIFT_METHODS)[number];

/**
 * The monitor's default method: Evidently's (EmbeddingsDriftMetric without a drift_method), the
 * domain classifier, with bootstrap when the reference has fewer than 1000 rows.
 */
export const DEFAULT_DRIFT_METHOD: DriftMethod = 'model';

export interface DriftOptions {
  model?: Partial<ModelOptions>;
  mmd?: Partial<MmdOptions>;
  ratio?: Partial<RatioOptions>;
  distance?: Partial<DistanceOptions>;
}

export interface DriftResult {
  method: DriftMethod;
  drifted: boolean;
  /** model: ROC AUC; mmd: MMD²_u (at least 0); ratio: share of drifted components; distance: the distance. */
  score: number;
  /** What the score is compared with (score > threshold is drift). */
  threshold: number;
  /** Computation time of the check, seconds. */
  seconds: number;
  /** Method-specific figures: rows used, epochs, γ, drifted components, ... */
  details: Record<string, number | string | boolean>;
}

/** Run one method; options default to Evidently's. Throws DriftInputError on bad input. */
export function checkDrift(reference: Embeddings, current: Embeddings, method: DriftMethod, options: DriftOptions = {}): DriftResult {
  validatePair(reference, current);
  const t0 = performance.now();
  let r: { score: number; threshold: number; drifted: boolean };
  let details: DriftResult['details'];
  switch (method) {
    case 'model': {
      const o = { ...MODEL_DEFAULTS, ...options.model };
      const res = modelDrift(reference, current, o);
      r = res;
      details = { bootstrap: o.bootstrap, trainRows: res.trainRows, testRows: res.testRows, epochs: res.epochs, seed: o.seed };
      break;
    }
    case 'mmd': {
      const o = { ...MMD_DEFAULTS, ...options.mmd };
      const res = mmdDrift(reference, current, o);
      r = res;
      details = { bootstrap: o.bootstrap, referenceRows: res.rows.reference, currentRows: res.rows.current, gamma: res.gamma, seed: o.seed };
      break;
    }
    case 'ratio': {
      const o = { ...RATIO_DEFAULTS, ...options.ratio };
      const res = ratioDrift(reference, current, o);
      r = res;
      details = { driftedComponents: res.driftedComponents, components: reference.cols, componentThreshold: o.componentThreshold };
      break;
    }
    case 'distance': {
      const o = { ...DISTANCE_DEFAULTS, ...options.distance };
      r = distanceDrift(reference, current, o);
      details = { dist: o.dist, bootstrap: o.bootstrap };
      break;
    }
    default:
      throw new DriftInputError(`unknown drift method ${String(method)}: expected one of ${DRIFT_METHODS.join(', ')}`);
  }
  const seconds = (performance.now() - t0) / 1000;
  return { method, drifted: r.drifted, score: r.score, threshold: r.threshold, seconds, details };
}

/** The monitor's default check: `model`, bootstrapped when the reference has fewer than 1000 rows (as Evidently). */
export function checkDefaultDrift(reference: Embeddings, current: Embeddings, options: DriftOptions = {}): DriftResult {
  return checkDrift(reference, current, DEFAULT_DRIFT_METHOD, { ...options, model: { bootstrap: reference.rows < 1000, ...options.model } });
}

/**
 * A drift check as a spec names it (the drift monitor's policy): the method and the options that
 * apply to it; anything left out is Evidently's default.
 */
export const DriftCheckSpecSchema = z
  .strictObject({
    method: z.enum(DRIFT_METHODS, { error: `method: expected one of ${DRIFT_METHODS.join(', ')}` }).default(DEFAULT_DRIFT_METHOD),
    threshold: z.number({ error: 'threshold: expected a number' }).optional(),
    bootstrap: z.boolean({ error: 'bootstrap: expected true or false' }).optional(),
    quantileProbability: z.number().gt(0, 'quantileProbability: expected 0 < q < 1').lt(1, 'quantileProbability: expected 0 < q < 1').optional(),
    /** ratio only */
    componentThreshold: z.number().positive('componentThreshold: expected > 0').optional(),
    /** distance only */
    dist: z.enum(DISTANCES, { error: `dist: expected one of ${DISTANCES.join(', ')}` }).optional(),
    /** mmd only: rows per side the statistic is computed on */
    maxRows: z.number().int().min(2, 'maxRows: expected at least 2').optional(),
    seed: z.number().int().min(0).optional(),
  })
  .superRefine((s, ctx) => {
    const applies: Record<DriftMethod, string[]> = {
      model: ['threshold', 'bootstrap', 'quantileProbability', 'seed'],
      mmd: ['threshold', 'bootstrap', 'quantileProbability', 'maxRows', 'seed'],
      ratio: ['threshold', 'componentThreshold'],
      distance: ['threshold', 'bootstrap', 'quantileProbability', 'dist', 'seed'],
    };
    for (const key of Object.keys(s)) {
      if (key !== 'method' && s[key as keyof typeof s] !== undefined && !applies[s.method].includes(key)) {
        ctx.addIssue({ code: 'custom', path: [key], message: `${key} does not apply to method ${s.method} (it takes ${applies[s.method].join(', ')})` });
      }
    }
  });
export type DriftCheckSpec = z.output<typeof DriftCheckSpecSchema>;

/** The options checkDrift takes for a spec. */
export function driftOptions(spec: DriftCheckSpec): DriftOptions {
  const { method, ...rest } = spec;
  const set = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
  return { [method]: set } as DriftOptions;
}

/** Run the check a spec names (the default method gets Evidently's bootstrap rule unless the spec sets bootstrap). */
export function checkDriftSpec(reference: Embeddings, current: Embeddings, spec: DriftCheckSpec): DriftResult {
  const options = driftOptions(spec);
  return spec.method === DEFAULT_DRIFT_METHOD && spec.bootstrap === undefined ? checkDefaultDrift(reference, current, options) : checkDrift(reference, current, spec.method, options);
}
