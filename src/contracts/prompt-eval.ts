import { z } from 'zod';
import type { ConfidenceInterval } from '../evaluation/ragas';
import { ForgelineError } from '../ports/errors';
import { ErrorType } from './errors';
import { PROMPT_NAME, PromptSpecSchema, type PromptSpec, type PromptSpecInput } from './prompt';
import { formatProblems, validateSpec } from './validate';

/**
 * Prompt evaluation (issue 11): a prompt version is scored on a test set before its release moves
 * an alias. Pure contract (workflows import it): the test-set format, the evaluation config, and
 * the activity's input and result (`evaluatePromptVersion`, activities/prompt-release/evaluate.ts;
 * the orchestration is src/evaluation/prompt-eval.ts).
 *
 * Metrics:
 * - `task`: deterministic per case, from the case's `expect` (contains, notContains, regex, equals,
 *   json); a case passes when every expectation holds; the run's score is the pass rate.
 * - `faithfulness`, `answer_relevancy`, `context_precision`: Ragas, computed by a judge model
 *   through the gateway (src/evaluation/ragas.ts). Per run, each is the mean over the cases that
 *   have a score.
 * Each metric is measured `runs` times (generation and judging again each time) and summarised as
 * a Student-t interval over the runs; gates decide on the interval's lower bound.
 */

export const PROMPT_EVAL_METRICS = ['faithfulness', 'answer_relevancy', 'context_precision', 'task'] as const;
export type PromptEvalMetric = (typeof PROMPT_EVAL_METRICS)[number];

const VariableValue = z.union([z.string(), z.number(), z.boolean()], { error: 'expected a string, number or boolean' });

function compiles(pattern: string): boolean {
  try {
    new RegExp(pattern, 'u');
    return true;
  } catch {
    return false;
  }
}

export const PromptExpectationSchema = z
  .strictObject({
    /** Every one of these substrings must occur in the answer (case-sensitive). */
    contains: z.array(z.string().min(1, 'expect.contains: empty strings always match; remove them')).optional(),
    /** None of these substrings may occur in the answer. */
    notContains: z.array(z.string().min(1, 'expect.notContains: empty strings never pass; remove them')).optional(),
    /** A JavaScript regular expression (flag `u`) the answer must match somewhere. */
    regex: z.string().min(1).refine(compiles, { message: 'expect.regex: not a valid regular expression (JavaScript syntax, flag u)' }).optional(),
    /** The whole answer, trimmed, must equal this (trimmed). */
    equals: z.string().optional(),
    /** true: the answer must parse as JSON (a ```json fence around it is allowed). */
    json: z.boolean().optional(),
  })
  .refine((e) => Object.values(e).some((v) => v !== undefined), { message: 'expect: give at least one of contains, notContains, regex, equals, json (or leave expect out)' });

export const PromptTestCaseSchema = z.strictObject({
  /** Unique within the test set; default `line-<n>`. */
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'id: letters, digits and . _ : - (at most 128), e.g. refund-policy-1').optional(),
  /** The prompt's variables for this case (checked against the prompt's schema when rendered). */
  variables: z.record(z.string(), VariableValue),
  /** Ground-truth answer (needed by context_precision). */
  reference: z.string().min(1, 'reference: must not be empty (leave it out instead)').optional(),
  /** Retrieved contexts, in rank order, for RAG prompts (needed by faithfulness and context_precision). */
  contexts: z.array(z.string().min(1, 'contexts: every context must be non-empty text')).min(1, 'contexts: give at least one context (or leave it out)').optional(),
  /** Deterministic expectations on the answer (the `task` metric). */
  expect: PromptExpectationSchema.optional(),
});
export type PromptTestCaseInput = z.input<typeof PromptTestCaseSchema>;
/** A parsed case: its id is always set, and `line` is where it was in the JSONL. */
export type PromptTestCase = z.output<typeof PromptTestCaseSchema> & { id: string; line: number };

/** Bad evaluation input (test set, config): terminal; the message names the line or field and the fix. */
export class PromptEvalInputError extends ForgelineError {
  constructor(message: string) {
    super(ErrorType.InvalidSpec, message, true);
  }
}

/**
 * Parse a JSONL test set (one case per line; blank lines and lines starting with `//` are
 * skipped). Every problem names `<source>:<line>` and the field; all are reported at once.
 */
export function parsePromptTestSet(text: string, source = 'test set'): PromptTestCase[] {
  const problems: string[] = [];
  const cases: PromptTestCase[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (!trimmed || trimmed.startsWith('//')) return;
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (err) {
      problems.push(`${source}:${line}: not JSON (${(err as Error).message}); each line must be one JSON object such as {"variables": {"question": "..."}}`);
      return;
    }
    const parsed = PromptTestCaseSchema.safeParse(value);
    if (!parsed.success) {
      for (const i of parsed.error.issues) problems.push(`${source}:${line}: ${i.path.length ? i.path.map(String).join('.') : '(case)'}: ${i.message}`);
      return;
    }
    const id = parsed.data.id ?? `line-${line}`;
    const first = seen.get(id);
    if (first !== undefined) {
      problems.push(`${source}:${line}: id: '${id}' is already used on line ${first}; give each case its own id`);
      return;
    }
    seen.set(id, line);
    cases.push({ ...parsed.data, id, line });
  });
  if (problems.length) throw new PromptEvalInputError(`invalid prompt test set ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  if (cases.length === 0) throw new PromptEvalInputError(`prompt test set ${source} has no cases: write one JSON object per line, e.g. {"variables": {"question": "..."}, "expect": {"contains": ["..."]}}`);
  return cases;
}

const Score = z.number().min(0, 'expected a score in [0, 1]').max(1, 'expected a score in [0, 1]');

export const PromptEvalGatesSchema = z.strictObject({
  /** Minimum lower bound of the faithfulness interval. */
  faithfulness: Score.optional(),
  answerRelevancy: Score.optional(),
  contextPrecision: Score.optional(),
  /** Minimum lower bound of the task pass rate's interval. */
  task: Score.optional(),
  /**
   * Tolerated drop against the production prompt: each metric's candidate lower bound must be at
   * least production's mean minus this (default 0.05). Applies to every evaluated metric when a
   * production version exists.
   */
  maxRegression: Score.default(0.05),
});

export const PromptEvalConfigSchema = z.strictObject({
  /** Repo-relative path of the JSONL test set (the workflow resolves and reads it) or an artifact key. */
  testSet: z.string().trim().min(1, 'testSet: name the JSONL test set, e.g. prompts/support-answer/tests.jsonl'),
  /**
   * Repetitions of generation + judging; the interval is over the runs' scores, so at least 2 (a
   * confidence interval needs two values; use more for LLM-judged metrics, e.g. 3-5).
   */
  runs: z.number().int('runs: expected a whole number').min(2, 'runs: at least 2 (a confidence interval needs two runs)').max(20, 'runs: at most 20').default(3),
  /** Two-sided confidence of the interval the gates read. */
  confidence: z.number().gt(0.5, 'confidence: expected a level such as 0.9 or 0.95').lt(1, 'confidence: expected a level below 1, such as 0.95').default(0.95),
  judge: z.strictObject({
    /** Gateway model alias of the judge, e.g. `judge-large` (the CI judge is the local vLLM model). */
    model: z.string().regex(PROMPT_NAME, 'judge.model: use a gateway model alias, e.g. tiny-demo'),
    /** Attempts per judge question when the answer is not the JSON asked for (first included). */
    maxAttempts: z.number().int().min(1).max(5, 'judge.maxAttempts: at most 5').default(3),
    /** Fraction of (case, run, metric) judgements allowed to fail before the evaluation fails with JudgeFailed. */
    maxFailureRate: z.number().min(0).max(0.5, 'judge.maxFailureRate: at most 0.5 (more means the judge is not working)').default(0.1),
    /** Questions the judge writes per answer for answer_relevancy (Ragas' strictness). */
    questions: z.number().int().min(1).max(10).default(3),
  }),
  /** Metrics to compute; default: every metric the test set supports (see `supportedMetrics`). */
  metrics: z
    .array(z.enum(PROMPT_EVAL_METRICS, { error: `metrics: expected some of ${PROMPT_EVAL_METRICS.join(', ')}` }))
    .min(1, 'metrics: name at least one metric, or leave metrics out for all the test set supports')
    .refine((m) => new Set(m).size === m.length, { message: 'metrics: each metric once' })
    .optional(),
  /** The variable holding the user's question (answer_relevancy compares against it); without it in a case, the rendered prompt is the question. */
  questionVariable: z.string().min(1).default('question'),
  gates: PromptEvalGatesSchema.default({ maxRegression: 0.05 }),
  /** Evaluate only the first N cases of the test set. */
  maxCases: z.number().int().positive('maxCases: expected a whole number > 0').optional(),
  /** Cases in flight at once (generation and judge calls are HTTP calls to the gateway). */
  concurrency: z.number().int().min(1).max(32).default(4),
});
export type PromptEvalConfigInput = z.input<typeof PromptEvalConfigSchema>;
export type PromptEvalConfig = z.output<typeof PromptEvalConfigSchema>;

export function parsePromptEvalConfig(input: unknown): PromptEvalConfig {
  const v = validateSpec(PromptEvalConfigSchema, input);
  if (!v.ok) throw new PromptEvalInputError(formatProblems('prompt evaluation config', v.problems));
  return v.value;
}

/** Which metrics a case can be scored on. */
export function caseMetrics(c: Pick<PromptTestCase, 'contexts' | 'reference' | 'expect'>): PromptEvalMetric[] {
  const out: PromptEvalMetric[] = [];
  if (c.contexts) out.push('faithfulness');
  out.push('answer_relevancy');
  if (c.contexts && c.reference) out.push('context_precision');
  if (c.expect) out.push('task');
  return out;
}

/** Metrics at least one case supports, in PROMPT_EVAL_METRICS order. */
export function supportedMetrics(cases: readonly Pick<PromptTestCase, 'contexts' | 'reference' | 'expect'>[]): PromptEvalMetric[] {
  const all = new Set(cases.flatMap(caseMetrics));
  return PROMPT_EVAL_METRICS.filter((m) => all.has(m));
}

/** What a metric needs from a case, for error messages. */
export const METRIC_NEEDS: Record<PromptEvalMetric, string> = {
  faithfulness: 'contexts',
  answer_relevancy: 'nothing beyond variables',
  context_precision: 'contexts and reference',
  task: 'expect',
};

/** The gate threshold field of each metric. */
export const GATE_FIELD: Record<PromptEvalMetric, 'faithfulness' | 'answerRelevancy' | 'contextPrecision' | 'task'> = {
  faithfulness: 'faithfulness',
  answer_relevancy: 'answerRelevancy',
  context_precision: 'contextPrecision',
  task: 'task',
};

/** A prompt version as the evaluation sees it. */
export interface PromptUnderEval {
  name: string;
  version: string;
  spec: PromptSpec;
}

/**
 * Input of `evaluatePromptVersion`. `config` is validated by the activity (so a workflow may pass
 * the config as written in the release spec); `testSet.text` is the JSONL the workflow's resolve
 * activity read from `config.testSet`.
 */
export interface PromptEvalInput {
  /** The prompt release's workflow ID: groups the tracker runs and names them. */
  releaseId: string;
  prompt: { name: string; version: string; spec: PromptSpec | PromptSpecInput };
  /** The version `production` points at now; absent for a prompt's first release (absolute gates only). */
  production?: { version: string; spec: PromptSpec | PromptSpecInput };
  config: PromptEvalConfigInput;
  testSet: { text: string; source: string };
  /** Base URL of the gateway for generation and judging; default: the worker's configured gateway. */
  gatewayUrl?: string;
}

const PromptVersionId = z.string().regex(/^[0-9a-f]{12}$/, 'expected a 12-hex-digit prompt version id (the registry gives it)');

/** PromptEvalInput as the activity validates it (a run started by hand fails with the same messages). */
export const PromptEvalInputSchema = z.strictObject({
  releaseId: z.string().trim().min(1, 'releaseId: the prompt release workflow ID'),
  prompt: z.strictObject({
    name: z.string().regex(PROMPT_NAME, 'prompt.name: lowercase letters, digits and dashes'),
    version: PromptVersionId,
    spec: PromptSpecSchema,
  }),
  production: z.strictObject({ version: PromptVersionId, spec: PromptSpecSchema }).optional(),
  config: PromptEvalConfigSchema,
  testSet: z.strictObject({
    text: z.string().min(1, 'testSet.text: the JSONL content is empty'),
    source: z.string().min(1, 'testSet.source: say where the test set came from (path or artifact key)'),
  }),
  gatewayUrl: z.url({ error: 'gatewayUrl: expected a URL such as http://127.0.0.1:8300' }).optional(),
}).superRefine((input, ctx) => {
  if (input.prompt.spec.name !== input.prompt.name) ctx.addIssue({ code: 'custom', path: ['prompt', 'spec', 'name'], message: `the spec is prompt '${input.prompt.spec.name}', not '${input.prompt.name}'` });
  if (input.production && input.production.spec.name !== input.prompt.name) ctx.addIssue({ code: 'custom', path: ['production', 'spec', 'name'], message: `the production spec is prompt '${input.production.spec.name}', not '${input.prompt.name}'` });
});
export type ParsedPromptEvalInput = z.output<typeof PromptEvalInputSchema>;

export interface PromptEvalGateResult {
  /** `faithfulness >= 0.7`, `task vs production`, `regression vs production` ... */
  gate: string;
  /** Absent for a gate about the whole evaluation (no production version to compare with). */
  metric?: PromptEvalMetric;
  kind: 'threshold' | 'regression';
  passed: boolean;
  reason: string;
}

export interface PromptEvalMetricResult {
  candidate: ConfidenceInterval;
  production?: ConfidenceInterval;
  /** The candidate's per-run scores (mean over the scored cases of that run). */
  runs: number[];
  productionRuns?: number[];
  /** Cases the metric was computed on. */
  cases: number;
}

/** Result of `evaluatePromptVersion`: JSON, small (it is kept in workflow history). */
export interface PromptEvalResult {
  /** Every gate passed. */
  passed: boolean;
  prompt: { name: string; version: string };
  production?: { version: string };
  metrics: Partial<Record<PromptEvalMetric, PromptEvalMetricResult>>;
  gates: PromptEvalGateResult[];
  /** Cases evaluated (after maxCases). */
  cases: number;
  /** Metrics asked for that have no interval (fewer than 2 runs produced a score), with why. */
  undefinedMetrics: Array<{ metric: PromptEvalMetric; version: 'candidate' | 'production'; reason: string }>;
  runs: number;
  /** Judgements that failed (JudgeFailed after retries), over all cases, runs, metrics and both versions. */
  judgeFailures: number;
  /** Cases that failed a task expectation or could not be judged: the first 20. */
  failedCases: Array<{ id: string; version: 'candidate' | 'production'; run: number; reason: string }>;
  /** The candidate's tracker run (and production's, when evaluated); absent when tracking failed. */
  trackerRun?: { id: string; url?: string };
}

export const MAX_FAILED_CASES = 20;

/** The activity's signature (control queue, activities/prompt-release/evaluate.ts), for workflows' type-only proxies. */
export type EvaluatePromptVersion = (input: PromptEvalInput) => Promise<PromptEvalResult>;
