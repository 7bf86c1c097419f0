import { z } from 'zod';
import { CanaryAnalysisPolicySchema, type CanaryAnalysisPolicy } from './canary-analysis';
import { ErrorType } from './errors';
import type { PromptEvalGateResult, PromptEvalMetric, PromptEvalResult } from './prompt-eval';
import { PromptEvalConfigSchema } from './prompt-eval';
import { PROMPT_NAME, PromptSpecSchema, type PromptSpec } from './prompt';
import type { CanaryAction, CanaryStepAnalysis, OperatorDecision, RecordedDecision, RejectReason } from './release-lifecycle';
import type { VersionMetrics } from './routing';
import { formatProblems, validateSpec } from './validate';

/**
 * A prompt release (issue 11): one prompt version goes through evaluation, an optional approval
 * and a canary through the gateway (the prompt version is the routing dimension), then becomes
 * `production` or is rolled back. Pure contract: the spec (zod; JSON Schema at
 * docs/schemas/prompt-release-spec.schema.json), the webhook's input, the status view and the
 * first-release health check.
 *
 * Two ways in:
 * - one prompt, `forgeline prompt release <release.yaml>`: the CLI reads the release file, inlines
 *   the prompt (`source`) and the test set, and starts `promptReleaseWorkflow` with that;
 * - a push (`forgeline webhook serve`, kind `prompt-release`): `{repo, ref, sha, paths}`. The
 *   workflow's resolve activity reads each changed `prompts/<name>/` folder's `release.yaml`,
 *   `prompt.yaml` and test set at the commit and starts one child release per prompt, with the
 *   ID `<parent workflow ID>/<name>`.
 */

const duration = z.string().regex(/^[1-9]\d{0,5}(s|m|h|d)$/, 'expected a duration such as 90s, 30m, 24h or 7d');

/** Repo-relative path: no leading slash, no `..` segment. */
const repoPath = (field: string, example: string) =>
  z
    .string({ error: `${field}: expected a repository-relative path such as ${example}` })
    .trim()
    .min(1, `${field}: expected a repository-relative path such as ${example}`)
    .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), { message: `${field}: use a path relative to the repository root without '..', e.g. ${example}` });

export const PromptSourceFileSchema = z.strictObject({
  /** The prompt's YAML (or JSON) file, relative to the repository root (or, for the CLI, to the release file). */
  file: repoPath('source.file', 'prompts/support-answer/prompt.yaml'),
});

export const PromptCanaryStepSchema = z.strictObject({
  /** Candidate share of the prompt's traffic in this step, in percent. */
  weight: z.number({ error: 'weight: expected a percent such as 10' }).int('weight: expected a whole percent').min(1, 'weight: expected a percent in 1..100').max(100, 'weight: expected a percent in 1..100'),
  /** How long the step serves before its window is analyzed. */
  durationSeconds: z.number({ error: 'durationSeconds: expected seconds such as 300' }).int('durationSeconds: expected whole seconds').min(1, 'durationSeconds: expected at least 1 second').max(7 * 86_400, 'durationSeconds: at most 7 days (604800)'),
});

export const PromptCanarySchema = z
  .strictObject({
    steps: z
      .array(PromptCanaryStepSchema, { error: 'steps: expected a list such as [{weight: 10, durationSeconds: 300}, {weight: 100, durationSeconds: 300}]' })
      .min(1, 'steps: give at least one step, e.g. [{weight: 10, durationSeconds: 300}, {weight: 100, durationSeconds: 300}]')
      .max(20, 'steps: at most 20 steps')
      .refine((s) => s.every((x, i) => i === 0 || x.weight > s[i - 1]!.weight), 'steps: expected increasing weights, e.g. 10, 50, 100')
      .refine((s) => s[s.length - 1]?.weight === 100, 'steps: expected the last step at weight 100 (all traffic on the candidate)')
      .default([
        { weight: 10, durationSeconds: 300 },
        { weight: 50, durationSeconds: 300 },
        { weight: 100, durationSeconds: 300 },
      ]),
    /** The model release's canary analysis (src/contracts/canary-analysis.ts): same metrics, tests and thresholds. */
    analysis: CanaryAnalysisPolicySchema.prefault({}),
    /** Requests the candidate must have served in a step's window before the step is judged; fewer: the step bakes again. */
    minRequests: z.number({ error: 'minRequests: expected a whole number such as 20' }).int('minRequests: expected a whole number').min(1, 'minRequests: expected at least 1').default(20),
    /** Undecided windows (too few requests, Inconclusive analyses) that extend a step before it pauses for an operator. */
    maxExtensions: z.number().int('maxExtensions: expected a whole number').min(0, 'maxExtensions: expected 0 or more').max(20, 'maxExtensions: at most 20').default(2),
  })
  .prefault({});

const ApprovalSchema = z
  .strictObject({
    required: z.boolean({ error: 'approval.required: expected true or false' }).default(false),
    timeout: duration.default('24h'),
  })
  .prefault({});

const GitSchema = z.strictObject({
  repo: z.string().min(1),
  ref: z.string().optional(),
  sha: z.string().regex(/^[0-9a-f]{7,40}$/, 'git.sha: expected a git commit sha (7-40 hex)'),
});

/** Where the test set's text came from, once read (the CLI and the resolve activity inline it). */
const TestSetSchema = z.strictObject({
  text: z.string().min(1, 'testSet.text: the test set is empty'),
  /** Its path, for messages (`prompts/support-answer/tests.jsonl`). */
  source: z.string().min(1),
});

const base = {
  /** The prompt's name (its registry name and its gateway route `/v1/prompts/<name>/...`). */
  prompt: z.string({ error: 'prompt: expected the prompt name, e.g. support-answer' }).regex(PROMPT_NAME, 'prompt: use lowercase letters, digits and dashes, e.g. support-answer'),
  /** `{file: prompts/<name>/prompt.yaml}`, or the prompt spec itself (template, variables, model, examples). */
  source: z.unknown().meta({ description: '{file: prompts/<name>/prompt.yaml} (repository-relative), or the prompt itself: {name, template, variables, model, examples}' }),
  evaluation: PromptEvalConfigSchema,
  canary: PromptCanarySchema,
  approval: ApprovalSchema,
  /** Owning team (audit, search). */
  team: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'team: lowercase letters, digits and dashes').optional(),
};

/** `source`: a file reference, or an inline prompt spec; each validated with its own messages. */
function checkSource(source: unknown, name: string, ctx: z.RefinementCtx): void {
  const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: 'custom', path: ['source', ...path], message });
  if (!source || typeof source !== 'object' || Array.isArray(source)) {
    issue([], 'source: expected {file: prompts/<name>/prompt.yaml} or the prompt itself ({name, template, variables, model, examples})');
    return;
  }
  if ('file' in source) {
    const r = PromptSourceFileSchema.safeParse(source);
    if (!r.success) for (const i of r.error.issues) issue(i.path, i.message.startsWith('source.') ? i.message : `source: ${i.message}`);
    return;
  }
  const r = PromptSpecSchema.safeParse(source);
  if (!r.success) {
    for (const i of r.error.issues) issue(i.path, i.message);
    return;
  }
  if (r.data.name !== name) issue(['name'], `source.name '${r.data.name}' differs from prompt '${name}': a release publishes the prompt it names; make them equal`);
}

/** The release file as written (`prompts/<name>/release.yaml`, or any file the CLI is given). */
export const PromptReleaseSpecSchema = z.strictObject(base).superRefine((s, ctx) => checkSource(s.source, s.prompt, ctx));

/**
 * The workflow's input for one prompt: the spec plus what the CLI or the resolve activity read
 * (the test set's text) and, for pushes, the commit (a `source.file` is then read at it).
 */
export const PromptReleaseRequestSchema = z
  .strictObject({ ...base, testSet: TestSetSchema.optional(), git: GitSchema.optional() })
  .superRefine((s, ctx) => checkSource(s.source, s.prompt, ctx));

export type PromptReleaseSpecInput = Omit<z.input<typeof PromptReleaseSpecSchema>, 'source'> & { source: { file: string } | z.input<typeof PromptSpecSchema> };
export type PromptReleaseRequest = Omit<z.output<typeof PromptReleaseRequestSchema>, 'source'> & { source: { file: string } | PromptSpec };
export type PromptReleaseRequestInput = Omit<z.input<typeof PromptReleaseRequestSchema>, 'source'> & { source: { file: string } | z.input<typeof PromptSpecSchema> };
export type PromptCanarySpec = z.output<typeof PromptCanarySchema>;

/** A release ready to run: the spec with the prompt and its test set inlined, and the version it publishes. */
export interface ValidatedPromptRelease {
  spec: Omit<PromptReleaseRequest, 'source' | 'testSet'>;
  prompt: PromptSpec;
  testSet: { text: string; source: string };
  /** The registry version of `prompt` (same content, same version). */
  version: string;
  git?: { repo: string; ref?: string; sha: string };
}

/** Validate a release file's content (CLI); a PromptReleaseSpecError names every bad field. */
export function parsePromptReleaseSpec(input: unknown, source = 'prompt release spec'): z.output<typeof PromptReleaseSpecSchema> {
  const v = validateSpec(PromptReleaseSpecSchema, input);
  if (!v.ok) throw new PromptReleaseSpecError(formatProblems(source, v.problems), v.problems);
  return v.value;
}

export class PromptReleaseSpecError extends Error {
  constructor(message: string, readonly problems: string[]) {
    super(message);
    this.name = 'PromptReleaseSpecError';
  }
}

// ---------------------------------------------------------------------------------------------
// The push form (webhook)

/** What the webhook starts `promptReleaseWorkflow` with for a push that changed `prompts/**`. */
export interface PromptReleasePush {
  repo: string;
  ref: string;
  sha: string;
  /** The changed paths the lifecycle's globs matched. */
  paths: string[];
}

export function isPromptReleasePush(input: unknown): input is PromptReleasePush {
  if (!input || typeof input !== 'object') return false;
  const o = input as Record<string, unknown>;
  return !('prompt' in o) && typeof o.sha === 'string' && Array.isArray(o.paths);
}

/** Repository layout: `prompts/<name>/{prompt.yaml,release.yaml,tests.jsonl}`. */
export const PROMPTS_DIR = 'prompts';
export const promptFolder = (name: string) => `${PROMPTS_DIR}/${name}`;
export const PROMPT_FILE = 'prompt.yaml';
export const RELEASE_FILE = 'release.yaml';

/** The prompts whose folder a push changed (`prompts/<name>/...`), sorted, each once. */
export function changedPrompts(paths: readonly string[]): string[] {
  const names = new Set<string>();
  for (const p of paths) {
    const m = /^prompts\/([^/]+)\/./.exec(p);
    if (m && PROMPT_NAME.test(m[1]!)) names.add(m[1]!);
  }
  return [...names].sort();
}

/** The child release of one prompt of a push: `<parent workflow ID>/<name>`, so a retried parent starts the same children. */
export function promptChildWorkflowId(parentId: string, name: string): string {
  return `${parentId}/${name}`;
}

export const PROMPT_RELEASE_WORKFLOW_ID_PREFIX = 'prompt-release/';

/** `prompt-release/<name>/<version>`: releasing the same prompt content twice joins one execution. */
export function promptReleaseWorkflowId(name: string, version: string): string {
  return `${PROMPT_RELEASE_WORKFLOW_ID_PREFIX}${name}/${version}`;
}

/** The gateway route label (and metrics key) of a prompt version: `<name>@<version>`. */
export { promptVersionLabel } from './routing';

// ---------------------------------------------------------------------------------------------
// First release: no production to compare with

/**
 * A prompt's first release has no production version: the canary serves the candidate alone and
 * each step's window is checked on its own, without a comparison: Inconclusive below
 * `minRequests`; Fail when its error rate exceeds the error_rate policy's absolute tolerance (the
 * largest error rate the model release's analysis tolerates on top of a healthy stable, 1% by
 * default) or, with a feedback score policy and enough feedback, when the mean score is below its
 * absolute tolerance floor; otherwise Pass.
 */
export function analyzeFirstRelease(candidate: VersionMetrics, policy: CanaryAnalysisPolicy, minRequests: number): { verdict: 'Pass' | 'Fail' | 'Inconclusive'; summary: string } {
  if (candidate.requests < minRequests) return { verdict: 'Inconclusive', summary: `first release: ${candidate.requests} request(s) in the window, ${minRequests} needed` };
  const rate = candidate.errors / candidate.requests;
  const er = policy.metrics.error_rate;
  const pct = (x: number) => `${Number((x * 100).toPrecision(3))}%`;
  if (er.enabled && rate > er.tolerance.absolute) {
    return { verdict: 'Fail', summary: `first release: error rate ${pct(rate)} (${candidate.errors}/${candidate.requests}) above ${pct(er.tolerance.absolute)} (analysis.metrics.error_rate.tolerance.absolute)` };
  }
  return { verdict: 'Pass', summary: `first release: error rate ${pct(rate)} (${candidate.errors}/${candidate.requests}) within ${pct(er.tolerance.absolute)}` };
}

// ---------------------------------------------------------------------------------------------
// What operators see

export const PromptReleaseStage = {
  Resolve: 'resolve',
  Validate: 'validate',
  Publish: 'publish',
  Evaluate: 'evaluate',
  Approval: 'approval',
  Canary: 'canary',
  Production: 'production',
  Rollback: 'rollback',
  Done: 'done',
} as const;
export type PromptReleaseStage = (typeof PromptReleaseStage)[keyof typeof PromptReleaseStage];

export const PromptReleaseOutcome = {
  Running: 'Running',
  Promoted: 'Promoted',
  GateFailed: 'GateFailed',
  RolledBack: 'RolledBack',
  Rejected: 'Rejected',
  Aborted: 'Aborted',
  Failed: 'Failed',
} as const;
export type PromptReleaseOutcome = (typeof PromptReleaseOutcome)[keyof typeof PromptReleaseOutcome];

/** The outcome a prompt release's failure type means (GateFailed, RolledBack, Rejected, Aborted; anything else: Failed). */
export function promptOutcomeOfFailure(type: string | undefined): PromptReleaseOutcome {
  switch (type) {
    case ErrorType.GateFailed:
      return PromptReleaseOutcome.GateFailed;
    case ErrorType.RolledBack:
      return PromptReleaseOutcome.RolledBack;
    case ErrorType.Rejected:
      return PromptReleaseOutcome.Rejected;
    case ErrorType.Aborted:
      return PromptReleaseOutcome.Aborted;
    default:
      return PromptReleaseOutcome.Failed;
  }
}

export interface PromptEvalSummary {
  passed: boolean;
  cases: number;
  runs: number;
  /** Per metric: the candidate's mean and interval lower bound, and production's mean. */
  metrics: Partial<Record<PromptEvalMetric, { candidate: number; lower: number; production?: number }>>;
  gates: PromptEvalGateResult[];
  judgeFailures: number;
  trackerRunUrl?: string;
}

export interface PromptCanaryStatus {
  /** Route labels `<name>@<version>`. */
  production?: string;
  candidate: string;
  /** 1-based; 0 before the first step. */
  step: number;
  steps: Array<{ weight: number; durationSeconds: number }>;
  weights: Record<string, number>;
  paused: boolean;
  pausedReason?: string;
  analyses: CanaryStepAnalysis[];
  lastAnalysis?: CanaryStepAnalysis;
  actions: CanaryAction[];
}

/** The `status` query of a prompt release (a push's parent lists its children instead). */
export interface PromptReleaseStatus {
  kind: 'prompt-release';
  prompt: string;
  stage: PromptReleaseStage;
  outcome: PromptReleaseOutcome;
  /** The published candidate version, and what `production` / `candidate` pointed at when the release began. */
  versions: { candidate?: string; production?: string; previousCandidate?: string };
  evaluation?: PromptEvalSummary;
  awaitingApproval: boolean;
  approvalDeadline?: string;
  decision?: RecordedDecision;
  rejectReason?: RejectReason;
  canary?: PromptCanaryStatus;
  failure?: string;
  git?: { repo: string; ref?: string; sha: string };
  /** A push's parent release: one entry per changed prompt. */
  children?: Array<{ prompt: string; workflowId: string; outcome: PromptReleaseOutcome; failure?: string }>;
}

export interface PromptReleaseResult {
  releaseId: string;
  prompt: string;
  outcome: typeof PromptReleaseOutcome.Promoted;
  version: string;
  /** The version production pointed at before (absent for a first release). */
  replaced?: string;
  /** Absent when the prompt was production already (nothing was evaluated or routed). */
  evaluation?: PromptEvalSummary;
  /** Why the release ended early, e.g. the prompt is production already. */
  note?: string;
  decision?: RecordedDecision;
}

export interface PromptReleasePushResult {
  releaseId: string;
  /** A push's release succeeds only when every changed prompt was promoted. */
  outcome: typeof PromptReleaseOutcome.Promoted;
  sha: string;
  releases: Array<{ prompt: string; workflowId: string; outcome: PromptReleaseOutcome; version?: string; failure?: string }>;
}

/** A small, history-friendly summary of an evaluation result. */
export function summarizePromptEval(r: PromptEvalResult): PromptEvalSummary {
  const metrics: PromptEvalSummary['metrics'] = {};
  for (const [m, v] of Object.entries(r.metrics) as Array<[PromptEvalMetric, NonNullable<PromptEvalResult['metrics'][PromptEvalMetric]>]>) {
    metrics[m] = { candidate: v.candidate.mean, lower: v.candidate.low, ...(v.production ? { production: v.production.mean } : {}) };
  }
  return {
    passed: r.passed,
    cases: r.cases,
    runs: r.runs,
    metrics,
    gates: r.gates,
    judgeFailures: r.judgeFailures,
    ...(r.trackerRun?.url ? { trackerRunUrl: r.trackerRun.url } : {}),
  };
}

export type { OperatorDecision };
