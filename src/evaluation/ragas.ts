import { z } from 'zod';
import { ErrorType } from '../contracts/errors';
import type { Embedder } from '../ports/embedder';
import { ForgelineError } from '../ports/errors';

/**
 * Ragas metrics, implemented here from their published definitions (Es et al., "RAGAS:
 * Automated Evaluation of Retrieval Augmented Generation", 2023, and the ragas documentation):
 * the `ragas` Python library needs packages and an OpenAI-style client setup that are not in our
 * offline stack, so we do not run it. A judge model (through the gateway; the local vLLM server
 * in CI) answers each step as strict JSON:
 *
 * - faithfulness: the judge splits the answer into standalone statements, then verifies each
 *   against the retrieved context. Score = supported statements / statements. An answer with no
 *   statements has no score (`null`, Ragas' NaN).
 * - answer relevancy: the judge writes `questions` questions the answer would answer and says
 *   whether the answer is noncommittal ("I don't know"). Score = mean cosine similarity between
 *   the embedding of each generated question and the original question's (Embedder port), and 0
 *   for a noncommittal answer, as Ragas does.
 * - context precision: the judge marks each retrieved context, in rank order, as useful or not
 *   for arriving at the reference answer to the question. Score = average precision:
 *   Σ_k (precision@k × v_k) / (number of relevant contexts), 0 when none is relevant.
 *
 * A judge answer that is not the JSON asked for is asked again (the retry prompt says what was
 * wrong), at most `maxAttempts` times in all; then the metric throws a JudgeFailureError. A judge
 * failure is never counted as a score of 0: averageRuns reports failed runs separately.
 *
 * LLM-judged scores vary between runs: averageRuns repeats a metric and reports the mean with a
 * Student-t 95% confidence interval; ciGate and regressionGate decide on the interval's lower bound.
 */

/**
 * What a judge's answer must look like: a name for it (letters, digits, `_` and `-`) and the zod
 * schema askJudge will parse it with. A judge that supports structured outputs constrains its
 * decoding to the schema (OpenAICompatibleJudge: `response_format: json_schema`); one that does
 * not may ignore it (the prompt states the shape too, and askJudge checks and retries).
 */
export interface JudgeFormat {
  name: string;
  schema: z.ZodType;
}

/** A judge model: one prompt in, its text out. Deterministic settings (temperature 0) are the adapter's job. */
export interface Judge {
  complete(prompt: string, format?: JudgeFormat): Promise<string>;
}

/** The judge did not give a usable answer within the allowed attempts. Not a score of 0. */
export class JudgeFailureError extends ForgelineError {
  constructor(readonly step: string, readonly attempts: number, readonly lastProblem: string) {
    super(ErrorType.JudgeFailed, `judge failed at ${step}: no valid JSON answer in ${attempts} attempt(s); last problem: ${lastProblem}`, false);
    this.name = 'JudgeFailureError';
  }
}

/** Bad metric input (empty question, no contexts, n < 2 runs): terminal, names the field. */
export class MetricInputError extends ForgelineError {
  constructor(message: string) {
    super(ErrorType.InvalidSpec, message, true);
  }
}

export interface JudgeOptions {
  /** Attempts per judge call, first included (default 3). */
  maxAttempts?: number;
}

/** The JSON object in a judge answer: the whole text, or the one ```json fenced block in it. */
function extractJson(text: string): unknown {
  const trimmed = text.trim();
  const fenced = /^```(?:json)?\s*\n([\s\S]*?)\n?```$/.exec(trimmed);
  return JSON.parse(fenced ? fenced[1]! : trimmed);
}

/**
 * Ask the judge and parse its answer with `schema` (and `check`, for constraints across fields).
 * Malformed answers are retried with the problem stated; after `maxAttempts`, a JudgeFailureError.
 */
export async function askJudge<T>(judge: Judge, step: string, prompt: string, schema: z.ZodType<T>, options: JudgeOptions = {}, check?: (value: T) => string | undefined): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 3;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new MetricInputError(`maxAttempts ${maxAttempts}: expected a whole number >= 1`);
  let problem = '';
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const text = await judge.complete(attempt === 1 ? prompt : `${prompt}\n\nYour previous answer was rejected: ${problem}. Answer again with the JSON object only.`, {
      name: step.replace(/[^A-Za-z0-9_-]+/g, '_'),
      schema,
    });
    let raw: unknown;
    try {
      raw = extractJson(text);
    } catch {
      problem = `not JSON (${JSON.stringify(text.slice(0, 80))})`;
      continue;
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      problem = `wrong shape: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(answer)'}: ${i.message}`).join('; ')}`;
      continue;
    }
    const bad = check?.(parsed.data);
    if (bad) {
      problem = bad;
      continue;
    }
    return parsed.data;
  }
  throw new JudgeFailureError(step, maxAttempts, problem);
}

/** `expected 3 questions, got 2`: the retry prompt's words for a list of the wrong length. */
const countProblem = (n: number, what: string, input: unknown) => `expected ${n} ${what}, got ${Array.isArray(input) ? input.length : 'no list'}`;

const Verdict = z.union([z.literal(0), z.literal(1)]);

export interface MetricScore {
  /** In [0, 1]; null when the metric is undefined for this sample (Ragas' NaN). */
  score: number | null;
  details: Record<string, unknown>;
}

function nonEmpty(field: string, value: string): void {
  if (typeof value !== 'string' || !value.trim()) throw new MetricInputError(`${field}: expected non-empty text`);
}

function contextList(contexts: readonly string[]): void {
  if (!Array.isArray(contexts) || contexts.length === 0) throw new MetricInputError('contexts: expected at least one retrieved context');
  contexts.forEach((c, i) => nonEmpty(`contexts[${i}]`, c));
}

const numbered = (contexts: readonly string[]) => contexts.map((c, i) => `[${i + 1}] ${c}`).join('\n');

export const FaithfulnessStatements = z.strictObject({ statements: z.array(z.string().min(1)) });
export const FaithfulnessVerdicts = z.strictObject({ verdicts: z.array(z.strictObject({ statement: z.string(), reason: z.string(), verdict: Verdict })) });

export async function faithfulness(judge: Judge, sample: { question: string; answer: string; contexts: readonly string[] }, options: JudgeOptions = {}): Promise<MetricScore> {
  nonEmpty('question', sample.question);
  nonEmpty('answer', sample.answer);
  contextList(sample.contexts);
  const { statements } = await askJudge(
    judge,
    'faithfulness/statements',
    'Break the answer to the question into standalone statements: each one fully understandable without pronouns, one fact each.\n' +
      'Answer with JSON only: {"statements": ["...", "..."]}\n\n' +
      `Question: ${sample.question}\nAnswer: ${sample.answer}`,
    FaithfulnessStatements,
    options,
  );
  if (statements.length === 0) return { score: null, details: { statements, reason: 'the answer has no statements' } };
  const { verdicts } = await askJudge(
    judge,
    'faithfulness/verdicts',
    'For each statement, decide whether it can be directly inferred from the context: verdict 1 if it can, 0 if it cannot.\n' +
      'Answer with JSON only, one entry per statement, in order: {"verdicts": [{"statement": "...", "reason": "...", "verdict": 0 or 1}]}\n\n' +
      `Context:\n${numbered(sample.contexts)}\n\nStatements:\n${statements.map((s, i) => `${i + 1}. ${s}`).join('\n')}`,
    // One verdict per statement, in the schema too: a judge with structured outputs cannot miscount.
    FaithfulnessVerdicts.extend({ verdicts: FaithfulnessVerdicts.shape.verdicts.length(statements.length, { error: (i) => countProblem(statements.length, 'verdicts (one per statement)', i.input) }) }),
    options,
    (v) => (v.verdicts.length === statements.length ? undefined : `expected ${statements.length} verdicts (one per statement), got ${v.verdicts.length}`),
  );
  const supported = verdicts.reduce((n, v) => n + v.verdict, 0);
  return { score: supported / statements.length, details: { statements, verdicts, supported } };
}

export const RelevancyQuestions = z.strictObject({ questions: z.array(z.string().min(1)).min(1), noncommittal: Verdict });

export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length || a.length === 0) throw new MetricInputError(`cosine similarity: vectors of length ${a.length} and ${b.length}; expected equal, non-zero lengths`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  if (na === 0 || nb === 0) return 0;
  return dot / Math.sqrt(na * nb);
}

export async function answerRelevancy(judge: Judge, embedder: Embedder, sample: { question: string; answer: string }, options: JudgeOptions & { questions?: number } = {}): Promise<MetricScore> {
  nonEmpty('question', sample.question);
  nonEmpty('answer', sample.answer);
  const n = options.questions ?? 3;
  if (!Number.isInteger(n) || n < 1) throw new MetricInputError(`questions ${n}: expected a whole number >= 1 (Ragas' strictness, default 3)`);
  const generated = await askJudge(
    judge,
    'answer_relevancy/questions',
    `Write ${n} different questions that the answer below answers, and say whether the answer is noncommittal ` +
      '(evasive or vague, such as "I don\'t know" or "I\'m not sure"): noncommittal 1 if it is, 0 if not.\n' +
      `Answer with JSON only: {"questions": [${n} questions], "noncommittal": 0 or 1}\n\nAnswer: ${sample.answer}`,
    RelevancyQuestions.extend({ questions: RelevancyQuestions.shape.questions.length(n, { error: (i) => countProblem(n, 'questions', i.input) }) }),
    options,
    (v) => (v.questions.length === n ? undefined : `expected ${n} questions, got ${v.questions.length}`),
  );
  const vectors = await embedder.embed([sample.question, ...generated.questions]);
  const row = (r: number) => vectors.data.subarray(r * vectors.cols, (r + 1) * vectors.cols);
  const similarities = generated.questions.map((_, i) => cosineSimilarity(row(0), row(i + 1)));
  const mean = similarities.reduce((s, x) => s + x, 0) / similarities.length;
  return { score: generated.noncommittal === 1 ? 0 : mean, details: { questions: generated.questions, noncommittal: generated.noncommittal === 1, similarities } };
}

export const ContextVerdict = z.strictObject({ reason: z.string(), verdict: Verdict });

/** Average precision of binary relevance verdicts in rank order: Σ_k precision@k·v_k / Σ v_k (0 when none). */
export function averagePrecision(verdicts: readonly (0 | 1)[]): number {
  let relevant = 0;
  let sum = 0;
  verdicts.forEach((v, k) => {
    if (v === 1) {
      relevant++;
      sum += relevant / (k + 1);
    }
  });
  return relevant === 0 ? 0 : sum / relevant;
}

export async function contextPrecision(judge: Judge, sample: { question: string; reference: string; contexts: readonly string[] }, options: JudgeOptions = {}): Promise<MetricScore> {
  nonEmpty('question', sample.question);
  nonEmpty('reference', sample.reference);
  contextList(sample.contexts);
  const verdicts: (0 | 1)[] = [];
  for (const [i, context] of sample.contexts.entries()) {
    const v = await askJudge(
      judge,
      `context_precision/context ${i + 1}`,
      'Given the question, its reference answer and one retrieved context, decide whether the context was useful in arriving at the reference answer: verdict 1 if it was, 0 if not.\n' +
        'Answer with JSON only: {"reason": "...", "verdict": 0 or 1}\n\n' +
        `Question: ${sample.question}\nReference answer: ${sample.reference}\nContext: ${context}`,
      ContextVerdict,
      options,
    );
    verdicts.push(v.verdict);
  }
  return { score: averagePrecision(verdicts), details: { verdicts } };
}

// ---- repeated runs, confidence intervals, gates ----

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; ~15 significant digits). */
export function logGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = c[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 500; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return h;
}

/** Regularized incomplete beta I_x(a, b). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaContinuedFraction(a, b, x)) / a : 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** CDF of Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t (0 < p < 1), by bisection on the CDF to ~1e-12. */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) throw new MetricInputError(`t quantile: expected 0 < p < 1 and df > 0, got p=${p}, df=${df}`);
  if (p === 0.5) return 0;
  let lo = -1;
  let hi = 1;
  while (studentTCdf(lo, df) > p) lo *= 2;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, Math.abs(hi)); i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface ConfidenceInterval {
  mean: number;
  /** Sample standard deviation (n - 1). */
  std: number;
  n: number;
  confidence: number;
  low: number;
  high: number;
}

/** Mean and two-sided t confidence interval of `xs` (at least 2 finite values). */
export function meanConfidenceInterval(xs: readonly number[], confidence = 0.95): ConfidenceInterval {
  if (xs.length < 2) throw new MetricInputError(`confidence interval: ${xs.length} value(s); at least 2 are needed`);
  if (!(confidence > 0 && confidence < 1)) throw new MetricInputError(`confidence ${confidence}: expected 0 < confidence < 1, e.g. 0.95`);
  if (!xs.every(Number.isFinite)) throw new MetricInputError('confidence interval: every value must be a finite number');
  const n = xs.length;
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  const std = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
  const half = studentTQuantile(1 - (1 - confidence) / 2, n - 1) * (std / Math.sqrt(n));
  return { mean, std, n, confidence, low: mean - half, high: mean + half };
}

export interface RunsSummary {
  /** Interval over the runs that produced a score. */
  interval: ConfidenceInterval;
  scores: number[];
  /** Runs where the metric was undefined (null score). */
  undefinedRuns: number;
  /** Runs where the judge failed (JudgeFailureError), with its message. */
  judgeFailures: string[];
}

/**
 * Run `metric` `runs` times (sequentially: one judge is one server) and summarize. A judge failure
 * is recorded, not scored; other errors propagate. Fewer than 2 scored runs is a MetricInputError
 * naming the failures, since no interval exists.
 */
export async function averageRuns(metric: (run: number) => Promise<MetricScore | number | null>, runs: number, confidence = 0.95): Promise<RunsSummary> {
  if (!Number.isInteger(runs) || runs < 2) throw new MetricInputError(`runs ${runs}: expected a whole number >= 2 (an interval needs 2 scores)`);
  const scores: number[] = [];
  const judgeFailures: string[] = [];
  let undefinedRuns = 0;
  for (let run = 0; run < runs; run++) {
    let result: MetricScore | number | null;
    try {
      result = await metric(run);
    } catch (err) {
      if (err instanceof JudgeFailureError) {
        judgeFailures.push(err.message);
        continue;
      }
      throw err;
    }
    const score = typeof result === 'number' || result === null ? result : result.score;
    if (score === null) undefinedRuns++;
    else scores.push(score);
  }
  if (scores.length < 2) {
    throw new MetricInputError(`only ${scores.length} of ${runs} runs produced a score (${judgeFailures.length} judge failure(s)${judgeFailures.length ? `: ${judgeFailures[0]}` : ''}; ${undefinedRuns} undefined): no confidence interval`);
  }
  return { interval: meanConfidenceInterval(scores, confidence), scores, undefinedRuns, judgeFailures };
}

export interface GateResult {
  passed: boolean;
  reason: string;
}

const fmt = (x: number) => x.toFixed(4);

/** Passes only when the interval's lower bound is at least `threshold`. */
export function ciGate(metric: string, interval: ConfidenceInterval, threshold: number): GateResult {
  const passed = interval.low >= threshold;
  return {
    passed,
    reason: `${metric}: mean ${fmt(interval.mean)}, ${Math.round(interval.confidence * 100)}% CI [${fmt(interval.low)}, ${fmt(interval.high)}] (n=${interval.n}); lower bound ${passed ? '>=' : '<'} threshold ${threshold}`,
  };
}

/**
 * Regression gate against the production prompt: passes only when the candidate's lower bound is
 * at least production's mean minus `maxDrop` (the tolerated drop, default 0).
 */
export function regressionGate(metric: string, candidate: ConfidenceInterval, production: ConfidenceInterval, maxDrop = 0): GateResult {
  if (!(maxDrop >= 0)) throw new MetricInputError(`maxDrop ${maxDrop}: expected a number >= 0`);
  const floor = production.mean - maxDrop;
  const passed = candidate.low >= floor;
  return {
    passed,
    reason: `${metric}: candidate CI [${fmt(candidate.low)}, ${fmt(candidate.high)}] (mean ${fmt(candidate.mean)}) vs production mean ${fmt(production.mean)} - ${maxDrop}: lower bound ${passed ? '>=' : '<'} ${fmt(floor)}`,
  };
}
