import { mapWithConcurrency } from '../adapters/artifact-common';
import type { ChatMessage, SamplingParams } from '../adapters/openai-judge';
import { ErrorType } from '../contracts/errors';
import { renderPrompt, type PromptSpec } from '../contracts/prompt';
import {
  caseMetrics,
  GATE_FIELD,
  MAX_FAILED_CASES,
  METRIC_NEEDS,
  PromptEvalInputError,
  supportedMetrics,
  type PromptEvalConfig,
  type PromptEvalGateResult,
  type PromptEvalMetric,
  type PromptEvalMetricResult,
  type PromptEvalResult,
  type PromptTestCase,
  type PromptUnderEval,
} from '../contracts/prompt-eval';
import type { Embeddings } from '../drift/embeddings';
import type { EmbedOptions, Embedder } from '../ports/embedder';
import { ForgelineError } from '../ports/errors';
import { answerRelevancy, ciGate, contextPrecision, faithfulness, JudgeFailureError, meanConfidenceInterval, regressionGate, type ConfidenceInterval, type Judge, type MetricScore } from './ragas';

/**
 * Prompt evaluation: score a prompt version (and the production version, on the same cases) on a
 * test set, `runs` times, and gate on the confidence intervals. Pure orchestration: generation,
 * the judge and the embedder are injected (the activity wires them to the gateway and the
 * sentence-transformers model; tests script them).
 *
 * Per version, run and case: render the case with renderPrompt (few-shot examples first, as
 * user/assistant turns), generate the answer with the prompt's model binding (alias and sampling
 * params as bound; each run gets its own seed when the binding fixes one, so runs are draws, not
 * copies), then
 * - task: every expectation of `expect` holds (1) or not (0);
 * - faithfulness, answer_relevancy, context_precision: the Ragas metrics (src/evaluation/ragas.ts)
 *   on (question, answer, contexts, reference), judged by the judge model.
 * A run's score for a metric is the mean over the cases that produced one; the metric's interval
 * is the Student-t interval over the runs' scores (meanConfidenceInterval). Threshold gates are
 * ciGate (lower bound >= threshold); regression gates are regressionGate against production's
 * mean minus `gates.maxRegression`.
 *
 * Judge failures: askJudge already asks again (with the problem stated) up to
 * `judge.maxAttempts`; a judgement still unusable is a JudgeFailureError, reported with its case
 * and left out of the mean (never a 0). When more than `judge.maxFailureRate` of a version's
 * judgements fail, the evaluation fails with a terminal JudgeFailed error: the judge (greedy,
 * deterministic) would fail the same way again. Any other error (HTTP 5xx after the client's own
 * retries, a network error) propagates unchanged and is transient: the activity is retried.
 */

export const LLM_METRICS = ['faithfulness', 'answer_relevancy', 'context_precision'] as const satisfies readonly PromptEvalMetric[];

/** One generation: the chat messages for the prompt's model alias, with the binding's sampling params. */
export interface PromptGeneration {
  model: string;
  messages: ChatMessage[];
  params: SamplingParams;
}

export interface PromptEvalDeps {
  /** The generated answer's text (through the gateway, in production). */
  generate(request: PromptGeneration): Promise<string>;
  judge: Judge;
  /** For answer_relevancy (wrapped in a batching cache here: one embed call serves many cases). */
  embedder: Embedder;
  /** After each (version, run, case) task: heartbeat material, with the task's record (what a retry resumes from). */
  onProgress?(p: { done: number; total: number; version: 'candidate' | 'production'; run: number; caseId: string; record: CaseRunRecord }): void;
  /** Tasks an earlier attempt finished (its last heartbeat's records): not run again. Records that do not match this evaluation's cases are ignored. */
  resume?: readonly CaseRunRecord[];
  /** Stops the evaluation between tasks (an activity's cancellation). */
  signal?: AbortSignal;
}

/**
 * Where prompt evaluation sends generation and judge calls: the inference gateway (workers build
 * it over OpenAICompatibleClient, `gatewayModels` in src/adapters/openai-judge.ts).
 */
export interface PromptEvalModels {
  /** Calls go to `url` when given (a release's own gateway), else to the configured gateway. */
  connect(url?: string): { generate(request: PromptGeneration): Promise<string>; judge(model: string): Judge };
}

/** Too many judgements failed: the judge is not usable for this evaluation. Terminal. */
export class PromptJudgeFailedError extends ForgelineError {
  constructor(message: string) {
    super(ErrorType.JudgeFailed, message, true);
  }
}

// ---- task metric ----

/** The answer's text with a ```json fence removed, for `expect.json`. */
function unfence(text: string): string {
  const t = text.trim();
  const m = /^```(?:json)?\s*\n([\s\S]*?)\n?```$/.exec(t);
  return m ? m[1]! : t;
}

/** Why the answer fails the case's expectations, or undefined when it meets every one. */
export function checkExpectations(answer: string, expect: NonNullable<PromptTestCase['expect']>): string | undefined {
  const problems: string[] = [];
  for (const s of expect.contains ?? []) if (!answer.includes(s)) problems.push(`does not contain ${JSON.stringify(s)}`);
  for (const s of expect.notContains ?? []) if (answer.includes(s)) problems.push(`contains ${JSON.stringify(s)}`);
  if (expect.regex !== undefined && !new RegExp(expect.regex, 'u').test(answer)) problems.push(`does not match /${expect.regex}/u`);
  if (expect.equals !== undefined && answer.trim() !== expect.equals.trim()) problems.push(`is not equal to ${JSON.stringify(expect.equals.trim())}`);
  if (expect.json === true) {
    try {
      JSON.parse(unfence(answer));
    } catch {
      problems.push('is not JSON');
    }
  }
  return problems.length ? `answer ${problems.join('; ')}` : undefined;
}

// ---- rendering ----

/** The messages a prompt sends for `values`: each few-shot example as a user/assistant pair, then the rendered prompt. */
export function promptMessages(spec: PromptSpec, values: Record<string, unknown>): ChatMessage[] {
  const messages: ChatMessage[] = [];
  for (const ex of spec.examples) {
    messages.push({ role: 'user', content: renderPrompt(spec, ex.variables) }, { role: 'assistant', content: ex.output });
  }
  messages.push({ role: 'user', content: renderPrompt(spec, values) });
  return messages;
}

// ---- embeddings: batched and cached ----

/**
 * An Embedder that serves concurrent calls with one call of `inner` (texts queued while a call
 * is in flight go in the next one) and remembers every text's vector, since the port guarantees
 * the same text always gets the same vector. answer_relevancy embeds the case's question in every
 * run and for both versions; the control worker's embedder starts a process per call.
 */
export class BatchingEmbedder implements Embedder {
  private readonly cache = new Map<string, Float32Array>();
  private queue: Array<{ texts: string[]; resolve: () => void; reject: (e: unknown) => void }> = [];
  private flushing: Promise<void> | undefined;
  constructor(private readonly inner: Embedder) {}

  get model(): string {
    return this.inner.model;
  }

  get dimensions(): number {
    return this.inner.dimensions;
  }

  async embed(texts: readonly string[], options: EmbedOptions = {}): Promise<Embeddings> {
    const missing = [...new Set(texts.filter((t) => !this.cache.has(t)))];
    if (missing.length) {
      await new Promise<void>((resolve, reject) => {
        this.queue.push({ texts: missing, resolve, reject });
        this.flushing ??= this.flush(options.signal);
      });
    }
    const cols = this.inner.dimensions;
    const data = new Float32Array(texts.length * cols);
    texts.forEach((t, i) => data.set(this.cache.get(t)!, i * cols));
    return { rows: texts.length, cols, data };
  }

  private async flush(signal?: AbortSignal): Promise<void> {
    // Let every task that is about to ask join this call.
    await new Promise((r) => setImmediate(r));
    while (this.queue.length) {
      const batch = this.queue;
      this.queue = [];
      const texts = [...new Set(batch.flatMap((b) => b.texts))].filter((t) => !this.cache.has(t));
      try {
        if (texts.length) {
          const e = await this.inner.embed(texts, signal ? { signal } : {});
          texts.forEach((t, i) => this.cache.set(t, e.data.slice(i * e.cols, (i + 1) * e.cols)));
        }
        batch.forEach((b) => b.resolve());
      } catch (err) {
        batch.forEach((b) => b.reject(err));
      }
    }
    this.flushing = undefined;
  }
}

// ---- one version ----

/** One finished (version, run, case) task, small and JSON: heartbeats carry them so a retried attempt resumes. */
export interface CaseRunRecord {
  version: Version;
  run: number;
  /** Index of the case in the evaluated cases, and its id (both must match to resume). */
  case: number;
  id: string;
  result: CaseRun;
}

export interface CaseRun {
  /** Scores per metric; null = undefined for this case (Ragas' NaN); absent = not applicable. */
  scores: Partial<Record<PromptEvalMetric, number | null>>;
  judgements: number;
  judgeFailures: Array<{ metric: PromptEvalMetric; message: string }>;
  taskFailure?: string;
}

export type Version = 'candidate' | 'production';

interface VersionRuns {
  /** runs[r][c] */
  runs: CaseRun[][];
}

function questionOf(c: PromptTestCase, config: PromptEvalConfig, rendered: string): string {
  const v = c.variables[config.questionVariable];
  return v !== undefined && String(v).trim() ? String(v) : rendered;
}

async function scoreCase(spec: PromptSpec, c: PromptTestCase, run: number, metrics: readonly PromptEvalMetric[], config: PromptEvalConfig, deps: PromptEvalDeps & { embedder: Embedder }): Promise<CaseRun> {
  const messages = promptMessages(spec, c.variables);
  const params: SamplingParams = { ...spec.model.params };
  // A bound seed makes every run the same draw: offset it per run (still reproducible).
  if (params.seed !== undefined) params.seed += run;
  const answer = await deps.generate({ model: spec.model.alias, messages, params });
  const out: CaseRun = { scores: {}, judgements: 0, judgeFailures: [] };
  const applicable = new Set(caseMetrics(c));
  if (metrics.includes('task') && c.expect) {
    const failure = checkExpectations(answer, c.expect);
    out.scores.task = failure ? 0 : 1;
    if (failure) out.taskFailure = failure;
  }
  const question = questionOf(c, config, messages[messages.length - 1]!.content);
  const judgeOptions = { maxAttempts: config.judge.maxAttempts };
  for (const metric of LLM_METRICS) {
    if (!metrics.includes(metric) || !applicable.has(metric)) continue;
    if (!answer.trim()) {
      // Nothing to judge: Ragas has no score for an empty answer (not a judge failure, not a 0).
      out.scores[metric] = null;
      continue;
    }
    out.judgements++;
    let result: MetricScore;
    try {
      if (metric === 'faithfulness') result = await faithfulness(deps.judge, { question, answer, contexts: c.contexts! }, judgeOptions);
      else if (metric === 'answer_relevancy') result = await answerRelevancy(deps.judge, deps.embedder, { question, answer }, { ...judgeOptions, questions: config.judge.questions });
      else result = await contextPrecision(deps.judge, { question, reference: c.reference!, contexts: c.contexts! }, judgeOptions);
    } catch (err) {
      if (!(err instanceof JudgeFailureError)) throw err;
      out.judgeFailures.push({ metric, message: err.message.slice(0, 400) });
      continue;
    }
    out.scores[metric] = result.score;
  }
  return out;
}

/** Mean of the scored cases of one run for `metric`; null when none produced a score. */
function runScore(cases: readonly CaseRun[], metric: PromptEvalMetric): number | null {
  const xs = cases.map((c) => c.scores[metric]).filter((x): x is number => typeof x === 'number');
  return xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null;
}

function summarize(v: VersionRuns, metric: PromptEvalMetric, confidence: number): { interval?: ConfidenceInterval; runs: number[]; reason?: string } {
  const perRun = v.runs.map((cases) => runScore(cases, metric));
  const runs = perRun.filter((x): x is number => x !== null);
  if (runs.length < 2) {
    return { runs, reason: `${metric}: only ${runs.length} of ${perRun.length} runs produced a score (every case's answer was empty, had no statements, or could not be judged): no interval` };
  }
  return { interval: meanConfidenceInterval(runs, confidence), runs };
}

// ---- the evaluation ----

export interface PromptEvalArgs {
  candidate: PromptUnderEval;
  production?: PromptUnderEval;
  /** Parsed test set (parsePromptTestSet); `config.maxCases` is applied here. */
  cases: PromptTestCase[];
  config: PromptEvalConfig;
}

/** The metrics to compute: config.metrics, or every one the test set supports; a gate or metric the test set cannot feed is an input error. */
export function metricsFor(cases: readonly PromptTestCase[], config: PromptEvalConfig): PromptEvalMetric[] {
  const supported = supportedMetrics(cases);
  const metrics = config.metrics ?? supported;
  const problems: string[] = [];
  for (const m of metrics) if (!supported.includes(m)) problems.push(`metrics: '${m}' needs cases with ${METRIC_NEEDS[m]}, and no case has them`);
  for (const m of Object.keys(GATE_FIELD) as PromptEvalMetric[]) {
    const field = GATE_FIELD[m];
    if (config.gates[field] === undefined || metrics.includes(m)) continue;
    problems.push(
      supported.includes(m)
        ? `gates.${field}: '${m}' is not among metrics (${metrics.join(', ')}); add it or remove the gate`
        : `gates.${field}: '${m}' needs cases with ${METRIC_NEEDS[m]}, and no case has them; add them to the test set or remove the gate`,
    );
  }
  if (problems.length) throw new PromptEvalInputError(`prompt evaluation cannot run:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  return metrics;
}

/** Render every case up front: a case the prompt cannot render is named with its line, before any model is called. */
function renderProblems(spec: PromptSpec, cases: readonly PromptTestCase[]): string[] {
  const problems: string[] = [];
  for (const c of cases) {
    try {
      promptMessages(spec, c.variables);
    } catch (err) {
      problems.push(`case ${c.id} (line ${c.line}): ${(err as Error).message}`);
    }
  }
  return problems;
}

/** Evaluate the candidate (and production, on the same cases) and gate; the result has no tracker run yet. */
export async function evaluatePrompt(args: PromptEvalArgs, deps: PromptEvalDeps): Promise<Omit<PromptEvalResult, 'trackerRun'>> {
  const { config } = args;
  const cases = config.maxCases ? args.cases.slice(0, config.maxCases) : args.cases;
  const metrics = metricsFor(cases, config);
  const candidateProblems = renderProblems(args.candidate.spec, cases);
  if (candidateProblems.length) {
    throw new PromptEvalInputError(`prompt ${args.candidate.name}@${args.candidate.version} cannot render the test set:\n${candidateProblems.map((p) => `  - ${p}`).join('\n')}`);
  }
  // Production is compared only when it can render the same cases (its variables may differ).
  const productionProblems = args.production ? renderProblems(args.production.spec, cases) : [];
  const production = args.production && productionProblems.length === 0 ? args.production : undefined;

  const versions: Array<{ version: Version; spec: PromptSpec }> = [{ version: 'candidate', spec: args.candidate.spec }];
  if (production) versions.push({ version: 'production', spec: production.spec });
  const tasks = versions.flatMap((v) => Array.from({ length: config.runs }, (_, run) => cases.map((c, ci) => ({ ...v, run, c, ci }))).flat());
  const results: Record<Version, VersionRuns> = {
    candidate: { runs: Array.from({ length: config.runs }, () => []) },
    production: { runs: Array.from({ length: config.runs }, () => []) },
  };
  const embedder = deps.embedder instanceof BatchingEmbedder ? deps.embedder : new BatchingEmbedder(deps.embedder);
  let done = 0;
  for (const rec of deps.resume ?? []) {
    if (rec.version !== 'candidate' && rec.version !== 'production') continue;
    const slot = results[rec.version].runs[rec.run];
    if (!slot || cases[rec.case]?.id !== rec.id || slot[rec.case] || (rec.version === 'production' && !production)) continue;
    slot[rec.case] = rec.result;
    done++;
  }
  const todo = tasks.filter((t) => !results[t.version].runs[t.run]![t.ci]);
  await mapWithConcurrency(todo, config.concurrency, async (t) => {
    deps.signal?.throwIfAborted();
    const r = await scoreCase(t.spec, t.c, t.run, metrics, config, { ...deps, embedder });
    results[t.version].runs[t.run]![t.ci] = r;
    const record: CaseRunRecord = { version: t.version, run: t.run, case: t.ci, id: t.c.id, result: r };
    deps.onProgress?.({ done: ++done, total: tasks.length, version: t.version, run: t.run, caseId: t.c.id, record });
  });

  // Judge failures: reported per case; too many fails the evaluation.
  const failedCases: PromptEvalResult['failedCases'] = [];
  let judgeFailures = 0;
  for (const { version } of versions) {
    let judgements = 0;
    let failures = 0;
    let first = '';
    results[version].runs.forEach((runCases, run) =>
      runCases.forEach((r, ci) => {
        judgements += r.judgements;
        failures += r.judgeFailures.length;
        first ||= r.judgeFailures[0]?.message ?? '';
        const id = cases[ci]!.id;
        for (const f of r.judgeFailures) failedCases.push({ id, version, run, reason: `${f.metric}: ${f.message}` });
        if (r.taskFailure) failedCases.push({ id, version, run, reason: `task: ${r.taskFailure}` });
      }),
    );
    judgeFailures += failures;
    if (judgements > 0 && failures / judgements > config.judge.maxFailureRate) {
      throw new PromptJudgeFailedError(
        `judge ${config.judge.model} failed ${failures} of ${judgements} judgements of the ${version} prompt (${((100 * failures) / judgements).toFixed(1)}% > judge.maxFailureRate ${config.judge.maxFailureRate * 100}%); ` +
          `first: ${first}. Use a judge model that can follow the JSON format (structured outputs help), or raise judge.maxAttempts`,
      );
    }
  }

  const metricResults: PromptEvalResult['metrics'] = {};
  const undefinedMetrics: PromptEvalResult['undefinedMetrics'] = [];
  const gates: PromptEvalGateResult[] = [];
  for (const metric of metrics) {
    const cand = summarize(results.candidate, metric, config.confidence);
    const prod = production ? summarize(results.production, metric, config.confidence) : undefined;
    if (cand.reason) undefinedMetrics.push({ metric, version: 'candidate', reason: cand.reason });
    if (prod?.reason) undefinedMetrics.push({ metric, version: 'production', reason: prod.reason });
    const casesScored = cases.filter((c) => caseMetrics(c).includes(metric)).length;
    if (cand.interval) {
      const entry: PromptEvalMetricResult = { candidate: cand.interval, runs: cand.runs, cases: casesScored };
      if (prod?.interval) Object.assign(entry, { production: prod.interval, productionRuns: prod.runs });
      metricResults[metric] = entry;
    }
    const threshold = config.gates[GATE_FIELD[metric]];
    if (threshold !== undefined) {
      const gate = `${metric} >= ${threshold}`;
      gates.push(cand.interval ? { gate, metric, kind: 'threshold', ...ciGate(metric, cand.interval, threshold) } : { gate, metric, kind: 'threshold', passed: false, reason: cand.reason! });
    }
    if (production) {
      const gate = `${metric} vs production`;
      if (cand.interval && prod?.interval) gates.push({ gate, metric, kind: 'regression', ...regressionGate(metric, cand.interval, prod.interval, config.gates.maxRegression) });
      else if (!cand.interval) gates.push({ gate, metric, kind: 'regression', passed: false, reason: cand.reason! });
      else gates.push({ gate, metric, kind: 'regression', passed: true, reason: `${prod!.reason}; production ${production.version} has no ${metric} to compare with, so only its threshold gate (if any) applies` });
    }
  }
  if (!args.production) {
    gates.push({ gate: 'regression vs production', kind: 'regression', passed: true, reason: 'no production version of this prompt yet: absolute (threshold) gates only' });
  } else if (!production) {
    gates.push({
      gate: 'regression vs production',
      kind: 'regression',
      passed: true,
      reason: `production ${args.production.version} cannot render the test set (${productionProblems[0]}${productionProblems.length > 1 ? `; and ${productionProblems.length - 1} more` : ''}): not compared, absolute (threshold) gates only`,
    });
  }

  return {
    passed: gates.every((g) => g.passed),
    prompt: { name: args.candidate.name, version: args.candidate.version },
    ...(production ? { production: { version: production.version } } : {}),
    metrics: metricResults,
    gates,
    cases: cases.length,
    undefinedMetrics,
    runs: config.runs,
    judgeFailures,
    failedCases: failedCases.slice(0, MAX_FAILED_CASES),
  };
}
