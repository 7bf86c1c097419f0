import { createHash } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { ErrorType } from '../../src/contracts/errors';
import { parsePromptTestSet, PromptEvalInputSchema, type ParsedPromptEvalInput, type PromptEvalInput, type PromptEvalMetric, type PromptEvalResult } from '../../src/contracts/prompt-eval';
import { trackerRunId } from '../../src/contracts/release-lifecycle';
import type { PromptSpec } from '../../src/contracts/prompt';
import { evaluatePrompt, type CaseRunRecord, type PromptEvalModels } from '../../src/evaluation/prompt-eval';
import type { Embedder } from '../../src/ports/embedder';
import type { Tracker } from '../../src/ports/tracker';
import { promptDigest } from '../../src/registry/prompt-registry';
import { asActivityFailure, parseSpecOrFail } from '../errors';

/** Heartbeat at least this often while a slow generation or judge call runs. */
const HEARTBEAT_EVERY_MS = 10_000;

export interface PromptEvalActivityDeps {
  tracker: Tracker;
  trackerProject: string;
  /** For answer_relevancy (the control worker's all-MiniLM-L6-v2 embedder). */
  embedder?: Embedder;
  /** Generation and judge calls through the gateway; absent: prompt evaluation cannot run on this worker. */
  promptModels?: PromptEvalModels;
}

const notConfigured = (what: string): never => {
  throw ApplicationFailure.nonRetryable(`prompt evaluation needs ${what}, which this worker was not configured with`, ErrorType.ServingNotConfigured);
};

/** The tracker run of one evaluated version: `<release>-eval-<version>`, in the release's group. */
export function promptEvalRunId(releaseId: string, version: string): string {
  return trackerRunId(`${releaseId}-eval-${version}`);
}

/**
 * Control queue (HTTP calls only): `evaluatePromptVersion` scores a prompt version, and the
 * production version on the same cases, with src/evaluation/prompt-eval.ts, and logs each version
 * to the tracker. Heartbeats carry `{done, total, version, run, caseId, completed}`: `completed`
 * holds each finished (version, run, case)'s scores, so a retried attempt (worker lost, gateway
 * down past the client's retries) resumes where the last heartbeat left off instead of judging
 * everything again. Cancellation stops it between cases.
 *
 * Errors: bad input (config, test set, a case the prompt cannot render) is a non-retryable
 * InvalidSpec naming the line or field; a judge that fails more than `judge.maxFailureRate` of
 * its judgements is a non-retryable JudgeFailed; a 4xx from the gateway (unknown alias, bad key) a
 * non-retryable InvalidConfig. Transient failures (5xx and network errors after the client's own
 * retries) are retried by Temporal, from the last heartbeat. Tracking is
 * best-effort: a tracker failure is logged and leaves `trackerRun` out of the result.
 */
export function createPromptEvalActivities(deps: PromptEvalActivityDeps) {
  return {
    async evaluatePromptVersion(raw: PromptEvalInput): Promise<PromptEvalResult> {
      const input = parseSpecOrFail(PromptEvalInputSchema, raw, 'prompt evaluation input');
      const ctx = Context.current();
      const models = deps.promptModels ?? notConfigured('the gateway (FORGELINE_GATEWAY_URL and a client key, FORGELINE_GATEWAY_CLIENT_KEY)');
      const embedder = deps.embedder ?? notConfigured('an embedder (sentence-transformers in the venv) for answer_relevancy');
      return asActivityFailure(async () => {
        const cases = parsePromptTestSet(input.testSet.text, input.testSet.source);
        const gateway = models.connect(input.gatewayUrl);
        // A retried attempt resumes: the last heartbeat holds every finished (version, run, case).
        const previous = ctx.info.heartbeatDetails as { completed?: CaseRunRecord[] } | undefined;
        const completed: CaseRunRecord[] = Array.isArray(previous?.completed) ? [...previous.completed] : [];
        let last: Record<string, unknown> = { phase: 'starting', completed };
        const timer = setInterval(() => ctx.heartbeat(last), HEARTBEAT_EVERY_MS);
        try {
          ctx.heartbeat(last);
          const result = await evaluatePrompt(
            {
              candidate: { name: input.prompt.name, version: input.prompt.version, spec: input.prompt.spec },
              ...(input.production ? { production: { name: input.prompt.name, version: input.production.version, spec: input.production.spec } } : {}),
              cases,
              config: input.config,
            },
            {
              generate: (req) => gateway.generate(req),
              judge: gateway.judge(input.config.judge.model),
              embedder,
              signal: ctx.cancellationSignal,
              resume: completed,
              onProgress: ({ record, ...p }) => {
                completed.push(record);
                // A copy: details are serialized when the (throttled) heartbeat is sent, not now.
                last = { ...p, completed: [...completed] };
                ctx.heartbeat(last);
              },
            },
          );
          const trackerRun = await logToTracker(deps, input, result, ctx.log);
          return { ...result, ...(trackerRun ? { trackerRun } : {}) };
        } finally {
          clearInterval(timer);
        }
      });
    },
  };
}

type Log = Pick<Context['log'], 'warn'>;

const fixed = (x: number) => Number(x.toFixed(6));

/** One tracker run per evaluated version (candidate, and production when compared), grouped by the release. */
async function logToTracker(deps: PromptEvalActivityDeps, input: ParsedPromptEvalInput, result: Omit<PromptEvalResult, 'trackerRun'>, log: Log): Promise<{ id: string; url: string } | undefined> {
  const testSetSha256 = createHash('sha256').update(input.testSet.text).digest('hex');
  const versions: Array<{ role: 'candidate' | 'production'; version: string; spec: PromptSpec }> = [{ role: 'candidate', version: input.prompt.version, spec: input.prompt.spec }];
  if (input.production && result.production) versions.push({ role: 'production', version: input.production.version, spec: input.production.spec });
  let candidateRun: { id: string; url: string } | undefined;
  for (const v of versions) {
    const runId = promptEvalRunId(input.releaseId, v.version);
    try {
      const run = await deps.tracker.openRun({
        runId,
        project: deps.trackerProject,
        group: trackerRunId(input.releaseId),
        name: `prompt eval ${input.prompt.name}@${v.version} (${v.role})`,
        jobType: 'prompt-eval',
        tags: ['prompt-eval', input.prompt.name, v.role],
      });
      await run.setConfig({
        releaseId: input.releaseId,
        role: v.role,
        prompt: { name: input.prompt.name, version: v.version, templateDigest: createHash('sha256').update(v.spec.template).digest('hex'), digest: promptDigest(v.spec), model: v.spec.model },
        evaluation: { ...input.config, testSet: input.testSet.source, testSetSha256, cases: result.cases },
      });
      const rows = (Object.entries(result.metrics) as Array<[PromptEvalMetric, NonNullable<PromptEvalResult['metrics'][PromptEvalMetric]>]>).flatMap(([metric, m]) => {
        const ci = v.role === 'candidate' ? m.candidate : m.production;
        const runs = v.role === 'candidate' ? m.runs : m.productionRuns;
        return ci ? [{ metric, ci, runs: runs ?? [] }] : [];
      });
      await run.logTable(
        'prompt_eval_metrics',
        ['metric', 'mean', 'low', 'high', 'std', 'n', 'confidence', 'runs'],
        rows.map((r) => [r.metric, fixed(r.ci.mean), fixed(r.ci.low), fixed(r.ci.high), fixed(r.ci.std), r.ci.n, r.ci.confidence, r.runs.map(fixed).join(' ')]),
      );
      const summary: Record<string, number | string | boolean> = { cases: result.cases, runs: result.runs };
      for (const r of rows) Object.assign(summary, { [`${r.metric}/mean`]: fixed(r.ci.mean), [`${r.metric}/low`]: fixed(r.ci.low), [`${r.metric}/high`]: fixed(r.ci.high) });
      if (v.role === 'candidate') {
        await run.logTable('prompt_eval_gates', ['gate', 'metric', 'kind', 'passed', 'reason'], result.gates.map((g) => [g.gate, g.metric ?? null, g.kind, g.passed, g.reason]));
        Object.assign(summary, { passed: result.passed, judge_failures: result.judgeFailures });
      }
      await run.setSummary(summary);
      await run.finish(v.role === 'candidate' && !result.passed ? 1 : 0);
      if (v.role === 'candidate') candidateRun = { id: runId, url: run.url };
    } catch (err) {
      log.warn(`prompt evaluation: tracking ${input.prompt.name}@${v.version} failed (the evaluation's result stands): ${(err as Error).message}`);
    }
  }
  return candidateRun;
}
