import { z } from 'zod';
import type { VersionMetrics } from './routing';

/**
 * Canary analysis: is the candidate worse than stable over one bake window?
 *
 * Pure and deterministic (no I/O, no Node built-ins, no randomness): it runs inside the release
 * workflow, so the verdict, its figures and its thresholds are part of the history.
 *
 * Per metric, the candidate fails only when BOTH hold (Kayenta's rule: a statistical test and an
 * effect-size bar):
 *   - the degradation is significant: a one-sided test in the metric's bad direction has
 *     p < 1 - confidence (default confidence 0.98, Kayenta's);
 *   - the observed degradation is larger than the tolerance, max(absolute, relative × |stable|).
 * A degradation beyond the tolerance that is not (yet) significant is Inconclusive (more samples
 * decide it); one within the tolerance passes, significant or not. Too few samples on either side
 * (below the metric's minSamples) is Inconclusive, never Fail.
 *
 * Tests:
 *   - error_rate: one-sided Fisher's exact test on the 2×2 table (errors / non-errors of candidate
 *     and stable), i.e. the hypergeometric tail P(X >= candidate errors). Exact, so it stays right
 *     for the rare-error counts a canary sees (a z-test is wrong at 0 vs 3 errors).
 *   - latency_p95: one-sided Mann-Whitney U on the latency samples (normal approximation with tie
 *     correction and continuity correction, as scipy's `mannwhitneyu(method='asymptotic')`); the
 *     effect is the difference of the p95s (numpy's linear percentile), in ms. U tests a shift of
 *     the whole distribution: a regression of the tail alone shows as an effect beyond tolerance
 *     without significance, i.e. Inconclusive, which extends the bake and finally asks an operator.
 *   - feedback_score: one-sided Mann-Whitney U on the scores; the effect is the difference of the means.
 *
 * The step's verdict (a Kayenta-like score; `score` = passed metrics / enabled metrics):
 *   1. any critical metric Fail → Fail;
 *   2. (passed + inconclusive) / enabled < passScore → Fail: the step fails even if every
 *      undecided metric passed, so the verdict never rests on a metric that lacks samples;
 *   3. any critical metric Inconclusive → Inconclusive;
 *   4. passed / enabled >= passScore → Pass;
 *   5. otherwise Inconclusive.
 * With the defaults (3 metrics, passScore 0.6, error_rate critical) one non-critical failure is
 * tolerated, two fail the step.
 */

export const CANARY_METRICS = ['error_rate', 'latency_p95', 'feedback_score'] as const;
export type CanaryMetricName = (typeof CANARY_METRICS)[number];
export type CanaryVerdict = 'Pass' | 'Fail' | 'Inconclusive';

interface MetricDefaults {
  critical: boolean;
  direction: 'lower' | 'higher';
  relative: number;
  absolute: number;
  minSamples: number;
}

const metricPolicy = (name: CanaryMetricName, d: MetricDefaults) =>
  z
    .strictObject({
      enabled: z.boolean({ error: `${name}.enabled: expected true or false` }).default(true),
      /** One failing critical metric fails the step. */
      critical: z.boolean({ error: `${name}.critical: expected true or false` }).default(d.critical),
      /** Which way is better: `lower` (error rate, latency) or `higher` (feedback). */
      direction: z.enum(['lower', 'higher'], { error: `${name}.direction: expected lower or higher (which way is better)` }).default(d.direction),
      /** The effect-size bar: a degradation up to max(absolute, relative × |stable|) is tolerated. */
      tolerance: z
        .strictObject({
          relative: z.number({ error: `${name}.tolerance.relative: expected a number` }).min(0, `${name}.tolerance.relative: expected >= 0, e.g. 0.2 for 20%`).default(d.relative),
          absolute: z.number({ error: `${name}.tolerance.absolute: expected a number` }).min(0, `${name}.tolerance.absolute: expected >= 0 in the metric's unit`).default(d.absolute),
        })
        .prefault({}),
      /** Fewer samples than this on either side is Inconclusive (requests for error_rate, latency samples, feedback scores). */
      minSamples: z.number().int(`${name}.minSamples: expected a whole number`).min(1, `${name}.minSamples: expected at least 1`).default(d.minSamples),
    })
    .prefault({});

export const CanaryAnalysisPolicySchema = z
  .strictObject({
    /** Confidence of the one-sided tests: a degradation is significant when p < 1 - confidence. Kayenta: 0.98. */
    confidence: z.number({ error: 'confidence: expected a number such as 0.98' }).gt(0.5, 'confidence: expected 0.5 < confidence < 1, e.g. 0.98').lt(1, 'confidence: expected 0.5 < confidence < 1, e.g. 0.98').default(0.98),
    /** Share of enabled metrics that must pass (critical ones always must). */
    passScore: z.number({ error: 'passScore: expected a number in (0, 1]' }).gt(0, 'passScore: expected a number in (0, 1], e.g. 0.6').max(1, 'passScore: expected a number in (0, 1], e.g. 0.6').default(0.6),
    metrics: z
      .strictObject({
        /** errors / requests; tolerance in absolute rate (0.01 = 1 percentage point). */
        error_rate: metricPolicy('error_rate', { critical: true, direction: 'lower', relative: 0.5, absolute: 0.01, minSamples: 100 }),
        /** p95 of latency, ms. */
        latency_p95: metricPolicy('latency_p95', { critical: false, direction: 'lower', relative: 0.2, absolute: 10, minSamples: 50 }),
        /** mean feedback score (POST /v1/feedback), in the scores' own unit. */
        feedback_score: metricPolicy('feedback_score', { critical: false, direction: 'higher', relative: 0.05, absolute: 0, minSamples: 30 }),
      })
      .prefault({}),
  })
  .refine((p) => CANARY_METRICS.some((m) => p.metrics[m].enabled), { message: 'metrics: enable at least one of error_rate, latency_p95, feedback_score', path: ['metrics'] });

export type CanaryAnalysisPolicy = z.output<typeof CanaryAnalysisPolicySchema>;
export type CanaryAnalysisPolicyInput = z.input<typeof CanaryAnalysisPolicySchema>;
export type CanaryMetricPolicy = CanaryAnalysisPolicy['metrics'][CanaryMetricName];

/** The policy with every default. */
export const DEFAULT_CANARY_ANALYSIS_POLICY: CanaryAnalysisPolicy = CanaryAnalysisPolicySchema.parse({});

export interface CanaryMetricResult {
  metric: CanaryMetricName;
  verdict: CanaryVerdict;
  /** Stable's value: error rate (0..1), p95 latency (ms) or mean feedback; null without samples. */
  stable: number | null;
  candidate: number | null;
  /** How much worse the candidate is, in the metric's unit (negative: better); null without samples on a side. */
  effect: number | null;
  /** One-sided p-value of "the candidate is worse"; null when not tested (too few samples). */
  pValue: number | null;
  /** The effect-size bar: the tolerated degradation, max(absolute, relative × |stable|). */
  threshold: number;
  /** 1 - confidence: significant when pValue < alpha. */
  alpha: number;
  samples: { stable: number; candidate: number; min: number };
  critical: boolean;
  test: 'fisher-exact' | 'mann-whitney-u';
  reason: string;
}

export interface CanaryAnalysis {
  verdict: CanaryVerdict;
  stable: string;
  candidate: string;
  /** Passed metrics / enabled metrics. */
  score: number;
  passScore: number;
  confidence: number;
  metrics: CanaryMetricResult[];
  /** One line for the history, the tracker and `status`. */
  summary: string;
}

// ---------------------------------------------------------------------------------------------
// Statistics (small, exact where it matters; checked against scipy in test/unit/canary-analysis.test.ts)

const SQRT_PI = Math.sqrt(Math.PI);

/** Complementary error function, about 1e-15 relative accuracy over the whole line. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 2.5) {
    // erf(x) = 2/√π e^{-x²} Σ 2^n x^{2n+1} / (1·3·…·(2n+1)): positive terms, no cancellation.
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 1);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    return 1 - ((2 / SQRT_PI) * Math.exp(-x2) * sum);
  }
  if (x > 27.3) return 0; // below the smallest double
  // erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), modified Lentz.
  const tiny = 1e-300;
  let f = x;
  let c = f;
  let d = 0;
  for (let k = 1; k < 500; k++) {
    const a = k / 2;
    d = x + a * d;
    d = Math.abs(d) < tiny ? 1 / tiny : 1 / d;
    c = x + a / c;
    if (Math.abs(c) < tiny) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / SQRT_PI / f;
}

/** P(Z > z) for a standard normal Z. */
export function normalSf(z: number): number {
  return 0.5 * erfc(z / Math.SQRT2);
}

/** P(Z <= z) for a standard normal Z. */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

const LOG_FACTORIAL_TABLE: number[] = (() => {
  const t = [0];
  for (let k = 1; k <= 256; k++) t.push(t[k - 1]! + Math.log(k));
  return t;
})();

/** ln(n!) for a whole n >= 0: a table up to 256, Stirling's series beyond (error < 1e-17 relative). */
export function logFactorial(n: number): number {
  if (n <= 256) return LOG_FACTORIAL_TABLE[n]!;
  const z = n + 1;
  const z2 = z * z;
  return (z - 0.5) * Math.log(z) - z + 0.5 * Math.log(2 * Math.PI) + 1 / (12 * z) - 1 / (360 * z * z2) + 1 / (1260 * z * z2 * z2) - 1 / (1680 * z * z2 * z2 * z2);
}

function logChoose(n: number, k: number): number {
  return logFactorial(n) - logFactorial(k) - logFactorial(n - k);
}

/**
 * One-sided Fisher's exact test on [[a, b], [c, d]] (rows: candidate, stable; columns: errors,
 * non-errors), alternative "the first row has the larger share of the first column":
 * P(X >= a) for X ~ Hypergeometric(N = a+b+c+d, K = a+c, n = a+b). As scipy's
 * `fisher_exact(table, alternative='greater')`.
 */
export function fisherExactGreater(a: number, b: number, c: number, d: number): number {
  const N = a + b + c + d;
  const K = a + c;
  const n = a + b;
  const hi = Math.min(K, n);
  if (a <= Math.max(0, n - (N - K))) return 1;
  const base = logChoose(N, n);
  let sum = 0;
  for (let k = a; k <= hi; k++) {
    const term = Math.exp(logChoose(K, k) + logChoose(N - K, n - k) - base);
    sum += term;
    // Past the mode the terms only shrink: stop once they no longer change the sum.
    if (term < sum * 1e-17 && k > (n + 1) * (K + 1) / (N + 2)) break;
  }
  return Math.min(1, sum);
}

export type Alternative = 'greater' | 'less' | 'two-sided';

export interface MannWhitneyResult {
  /** U of the first sample: pairs (x_i, y_j) with x_i > y_j, ties counted ½. */
  u: number;
  z: number;
  pValue: number;
}

/**
 * Average ranks (1-based; ties share their mean rank) of `values`, and Σ(t³ - t) over tie groups.
 * Non-finite values must be removed first.
 */
export function averageRanks(values: ArrayLike<number>): { ranks: Float64Array; tieTerm: number } {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => values[i]! - values[j]! || i - j);
  const ranks = new Float64Array(n);
  let tieTerm = 0;
  for (let i = 0; i < n; ) {
    let j = i + 1;
    while (j < n && values[order[j]!] === values[order[i]!]) j++;
    const rank = (i + 1 + j) / 2; // mean of ranks i+1 .. j
    for (let k = i; k < j; k++) ranks[order[k]!] = rank;
    const t = j - i;
    tieTerm += t * t * t - t;
    i = j;
  }
  return { ranks, tieTerm };
}

/**
 * Mann-Whitney U test of x against y with the normal approximation, tie correction and continuity
 * correction: scipy's `mannwhitneyu(x, y, alternative=..., method='asymptotic')`. `greater`: x
 * tends to be larger than y.
 */
export function mannWhitneyU(x: readonly number[], y: readonly number[], alternative: Alternative): MannWhitneyResult {
  const n1 = x.length;
  const n2 = y.length;
  if (n1 === 0 || n2 === 0) return { u: NaN, z: NaN, pValue: NaN };
  const { ranks, tieTerm } = averageRanks([...x, ...y]);
  let r1 = 0;
  for (let i = 0; i < n1; i++) r1 += ranks[i]!;
  const u1 = r1 - (n1 * (n1 + 1)) / 2;
  const u2 = n1 * n2 - u1;
  const n = n1 + n2;
  const mu = (n1 * n2) / 2;
  const s = Math.sqrt(((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1))));
  const u = alternative === 'greater' ? u1 : alternative === 'less' ? u2 : Math.max(u1, u2);
  if (!(s > 0)) return { u: u1, z: 0, pValue: 1 }; // every value tied: no evidence either way
  const z = (u - mu - 0.5) / s;
  const p = normalSf(z) * (alternative === 'two-sided' ? 2 : 1);
  return { u: u1, z, pValue: Math.min(1, Math.max(0, p)) };
}

/** The q-th quantile (0..1) of ascending `sorted`, linear interpolation (numpy's default). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

// ---------------------------------------------------------------------------------------------
// Analysis

function fmtNum(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1000 ? x.toFixed(0) : a >= 1 ? String(Number(x.toPrecision(4))) : String(Number(x.toPrecision(3)));
}

function fmtP(p: number): string {
  return p < 1e-4 ? p.toExponential(1) : String(Number(p.toPrecision(2)));
}

const UNIT: Record<CanaryMetricName, { value: (x: number) => string; delta: (x: number) => string }> = {
  error_rate: { value: (x) => `${fmtNum(x * 100)}%`, delta: (x) => `${fmtNum(x * 100)} pp` },
  latency_p95: { value: (x) => `${fmtNum(x)} ms`, delta: (x) => `${fmtNum(x)} ms` },
  feedback_score: { value: fmtNum, delta: fmtNum },
};

interface Measured {
  stable: number | null;
  candidate: number | null;
  samples: { stable: number; candidate: number };
  test: CanaryMetricResult['test'];
  /** One-sided p of "candidate worse" given the direction. */
  pValue: () => number;
  invalid?: string;
}

const finite = (xs: readonly number[] | undefined) => (xs ?? []).filter((x) => Number.isFinite(x));

function measure(metric: CanaryMetricName, policy: CanaryMetricPolicy, stable: VersionMetrics, candidate: VersionMetrics): Measured {
  const worse: Alternative = policy.direction === 'lower' ? 'greater' : 'less';
  if (metric === 'error_rate') {
    const bad = [stable, candidate].find((v) => !(Number.isInteger(v.requests) && Number.isInteger(v.errors) && v.requests >= 0 && v.errors >= 0 && v.errors <= v.requests));
    const rate = (v: VersionMetrics) => (v.requests > 0 ? v.errors / v.requests : null);
    return {
      stable: bad ? null : rate(stable),
      candidate: bad ? null : rate(candidate),
      samples: { stable: stable.requests, candidate: candidate.requests },
      test: 'fisher-exact',
      pValue: () =>
        worse === 'greater'
          ? fisherExactGreater(candidate.errors, candidate.requests - candidate.errors, stable.errors, stable.requests - stable.errors)
          : fisherExactGreater(candidate.requests - candidate.errors, candidate.errors, stable.requests - stable.errors, stable.errors),
      ...(bad ? { invalid: `invalid counts for ${bad.version}: ${bad.errors} errors of ${bad.requests} requests` } : {}),
    };
  }
  const pick = (v: VersionMetrics) => finite(metric === 'latency_p95' ? v.latencyMs : v.feedback);
  const s = pick(stable);
  const c = pick(candidate);
  const value = (xs: number[]) => (xs.length === 0 ? null : metric === 'latency_p95' ? quantileSorted(Float64Array.from(xs).sort(), 0.95) : mean(xs));
  return {
    stable: value(s),
    candidate: value(c),
    samples: { stable: s.length, candidate: c.length },
    test: 'mann-whitney-u',
    pValue: () => mannWhitneyU(c, s, worse).pValue,
  };
}

function analyzeMetric(metric: CanaryMetricName, policy: CanaryMetricPolicy, alpha: number, stable: VersionMetrics, candidate: VersionMetrics): CanaryMetricResult {
  const m = measure(metric, policy, stable, candidate);
  const unit = UNIT[metric];
  const threshold = Math.max(policy.tolerance.absolute, policy.tolerance.relative * Math.abs(m.stable ?? 0));
  const effect = m.stable === null || m.candidate === null ? null : policy.direction === 'lower' ? m.candidate - m.stable : m.stable - m.candidate;
  const base = { metric, stable: m.stable, candidate: m.candidate, effect, threshold, alpha, samples: { ...m.samples, min: policy.minSamples }, critical: policy.critical, test: m.test };
  if (m.invalid) return { ...base, effect: null, verdict: 'Inconclusive', pValue: null, reason: m.invalid };
  if (m.samples.stable < policy.minSamples || m.samples.candidate < policy.minSamples) {
    return { ...base, verdict: 'Inconclusive', pValue: null, reason: `too few samples: candidate ${m.samples.candidate}, stable ${m.samples.stable} (need ${policy.minSamples} each)` };
  }
  const pValue = m.pValue();
  const cmp = `candidate ${unit.value(m.candidate!)} vs stable ${unit.value(m.stable!)}`;
  const sig = `p=${fmtP(pValue)} ${pValue < alpha ? '<' : '>='} ${fmtP(alpha)}`;
  if (effect! > threshold) {
    return pValue < alpha
      ? { ...base, verdict: 'Fail', pValue, reason: `${cmp}: worse by ${unit.delta(effect!)} > ${unit.delta(threshold)} tolerated, significant (${sig})` }
      : { ...base, verdict: 'Inconclusive', pValue, reason: `${cmp}: worse by ${unit.delta(effect!)} > ${unit.delta(threshold)} tolerated, not significant (${sig}); more samples decide` };
  }
  return { ...base, verdict: 'Pass', pValue, reason: effect! > 0 ? `${cmp}: worse by ${unit.delta(effect!)}, within ${unit.delta(threshold)} tolerated (${sig})` : `${cmp}: not worse (${sig})` };
}

/**
 * Compare the candidate with stable over one window under `policy` (parsed, defaults filled:
 * `CanaryAnalysisPolicySchema.parse(...)` or DEFAULT_CANARY_ANALYSIS_POLICY).
 */
export function analyzeCanary(stable: VersionMetrics, candidate: VersionMetrics, policy: CanaryAnalysisPolicy = DEFAULT_CANARY_ANALYSIS_POLICY): CanaryAnalysis {
  const alpha = 1 - policy.confidence;
  const metrics = CANARY_METRICS.filter((m) => policy.metrics[m].enabled).map((m) => analyzeMetric(m, policy.metrics[m], alpha, stable, candidate));
  const n = metrics.length;
  const passed = metrics.filter((m) => m.verdict === 'Pass').length;
  const inconclusive = metrics.filter((m) => m.verdict === 'Inconclusive').length;
  const score = n === 0 ? 0 : passed / n;
  const criticalFail = metrics.find((m) => m.critical && m.verdict === 'Fail');
  let verdict: CanaryVerdict;
  let why: string;
  if (criticalFail) {
    verdict = 'Fail';
    why = `critical ${criticalFail.metric} failed`;
  } else if (n === 0 || (passed + inconclusive) / n < policy.passScore) {
    verdict = 'Fail';
    why = `${n - passed - inconclusive} of ${n} metrics failed, score below ${policy.passScore} even if the undecided pass`;
  } else if (metrics.some((m) => m.critical && m.verdict === 'Inconclusive')) {
    verdict = 'Inconclusive';
    why = `critical ${metrics.filter((m) => m.critical && m.verdict === 'Inconclusive').map((m) => m.metric).join(', ')} undecided`;
  } else if (score >= policy.passScore) {
    verdict = 'Pass';
    why = `${passed} of ${n} metrics passed`;
  } else {
    verdict = 'Inconclusive';
    why = `${passed} of ${n} metrics passed, ${inconclusive} undecided`;
  }
  const parts = metrics.map((m) => `${m.metric}${m.critical ? ' (critical)' : ''} ${m.verdict}: ${m.reason}`);
  return {
    verdict,
    stable: stable.version,
    candidate: candidate.version,
    score,
    passScore: policy.passScore,
    confidence: policy.confidence,
    metrics,
    summary: `${verdict} (${why}; ${candidate.version} vs ${stable.version}): ${parts.join('; ')}`,
  };
}
