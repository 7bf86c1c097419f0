import assert from 'node:assert/strict';
import type { MetricCounter, MetricGauge, MetricHistogram, MetricMeter, MetricTags } from '@temporalio/common';
import { RecipeCrashedError, RecipeFailedError, RecipePreemptedError } from '../../src/adapters/local-job-runner';
import { ErrorType } from '../../src/contracts/errors';
import { instrumentEmbedder, instrumentJobRunner, WorkerMetrics } from '../../src/observability/metrics';
import type { Embedder } from '../../src/ports/embedder';
import type { JobRunner, JobSpec } from '../../src/ports/job-runner';

/** What was recorded on each metric, as `[value, tags]`. */
type Recorded = Map<string, Array<[number, MetricTags]>>;

/** A MetricMeter that keeps what is recorded (the runtime's meter exports to Prometheus instead). */
function recordingMeter(recorded: Recorded, baseTags: MetricTags = {}): MetricMeter {
  const metric = (name: string, kind: 'counter' | 'histogram' | 'gauge', unit = '', description = '', tags: MetricTags = baseTags) => {
    const record = (value: number, extra: MetricTags = {}) => recorded.set(name, [...(recorded.get(name) ?? []), [value, { ...tags, ...extra }]]);
    const m = { name, unit, description, kind, valueType: 'int' as const, add: record, record, set: record, withTags: (t: MetricTags) => metric(name, kind, unit, description, { ...tags, ...t }) };
    return m;
  };
  return {
    createCounter: (name, unit, description) => metric(name, 'counter', unit, description) as MetricCounter,
    createHistogram: (name, _type, unit, description) => metric(name, 'histogram', unit, description) as MetricHistogram,
    createGauge: (name, _type, unit, description) => metric(name, 'gauge', unit, description) as MetricGauge,
    withTags: (tags) => recordingMeter(recorded, { ...baseTags, ...tags }),
  };
}

const details = { recipe: 'trl-sft-lora', exitCode: 1, signal: null, stderrTail: [] };
const job = (recipe: string, signal?: AbortSignal): JobSpec => ({ recipe, input: {}, outDir: '/tmp/x', gpuIndices: [], ...(signal ? { signal } : {}) });

describe('worker metrics (src/observability/metrics.ts)', function () {
  it('counts recipe runs by recipe and outcome, with their wall time, and passes everything else through', async function () {
    const recorded: Recorded = new Map();
    const metrics = new WorkerMetrics(recordingMeter(recorded));
    const outcomes: Array<() => Promise<Record<string, unknown>>> = [
      async () => ({ ok: true }),
      async () => Promise.reject(new RecipeFailedError(ErrorType.InvalidSpec, 'bad spec', details)),
      async () => Promise.reject(new RecipeCrashedError('OOM', details)),
      async () => Promise.reject(new RecipePreemptedError('worker stopping', details)),
    ];
    let preempted = 0;
    const runner = { run: (_job: JobSpec) => outcomes.shift()!(), preempt: () => void preempted++ } satisfies JobRunner & { preempt(): void };
    const instrumented = instrumentJobRunner(runner, metrics);
    assert.deepEqual(await instrumented.run(job('eval')), { ok: true });
    await assert.rejects(instrumented.run(job('eval')), RecipeFailedError);
    await assert.rejects(instrumented.run(job('train')), RecipeCrashedError);
    await assert.rejects(instrumented.run(job('train')), RecipePreemptedError);
    instrumented.preempt();
    assert.equal(preempted, 1);
    assert.deepEqual(
      recorded.get('forgeline_recipe_runs'),
      [
        [1, { recipe: 'eval', outcome: 'succeeded' }],
        [1, { recipe: 'eval', outcome: 'failed' }],
        [1, { recipe: 'train', outcome: 'crashed' }],
        [1, { recipe: 'train', outcome: 'preempted' }],
      ],
    );
    const seconds = recorded.get('forgeline_recipe_duration_seconds')!;
    assert.equal(seconds.length, 4);
    assert.ok(seconds.every(([v]) => v >= 0 && v < 60));
  });

  it('labels a run whose activity was cancelled `cancelled`', async function () {
    const recorded: Recorded = new Map();
    const abort = new AbortController();
    const runner: JobRunner = {
      run: async () => {
        abort.abort();
        throw new Error('recipe killed');
      },
    };
    await assert.rejects(instrumentJobRunner(runner, new WorkerMetrics(recordingMeter(recorded))).run(job('train', abort.signal)), /recipe killed/);
    assert.deepEqual(recorded.get('forgeline_recipe_runs'), [[1, { recipe: 'train', outcome: 'cancelled' }]]);
  });

  it('counts embedding batches and texts by model; model and dimensions pass through', async function () {
    const recorded: Recorded = new Map();
    let fail = false;
    const embedder: Embedder = {
      model: 'all-MiniLM-L6-v2',
      dimensions: 384,
      embed: async (texts) => {
        if (fail) throw new Error('embedding process died');
        return texts.map(() => new Float32Array(384)) as never;
      },
    };
    const instrumented = instrumentEmbedder(embedder, new WorkerMetrics(recordingMeter(recorded)));
    assert.equal(instrumented.model, 'all-MiniLM-L6-v2');
    assert.equal(instrumented.dimensions, 384);
    await instrumented.embed(['a', 'b', 'c']);
    fail = true;
    await assert.rejects(instrumented.embed(['d']), /embedding process died/);
    assert.deepEqual(recorded.get('forgeline_embedding_batches'), [
      [1, { model: 'all-MiniLM-L6-v2', outcome: 'succeeded' }],
      [1, { model: 'all-MiniLM-L6-v2', outcome: 'failed' }],
    ]);
    assert.deepEqual(recorded.get('forgeline_embedded_texts'), [[3, { model: 'all-MiniLM-L6-v2' }]]);
  });

  it('reports GPUs owned, in use and waited for, tagged with the meter\'s worker tags', function () {
    const recorded: Recorded = new Map();
    const metrics = new WorkerMetrics(recordingMeter(recorded).withTags({ worker_kind: 'gpu' }));
    const gpus = { total: 4, freeCount: 4, waiting: 0 };
    const stop = metrics.watchGpus(gpus, 60_000);
    gpus.freeCount = 1;
    gpus.waiting = 2;
    metrics.setGpus(gpus);
    stop();
    assert.deepEqual(recorded.get('forgeline_gpus'), [[4, { worker_kind: 'gpu' }], [4, { worker_kind: 'gpu' }]]);
    assert.deepEqual(recorded.get('forgeline_gpus_in_use'), [[0, { worker_kind: 'gpu' }], [3, { worker_kind: 'gpu' }]]);
    assert.deepEqual(recorded.get('forgeline_gpu_waiters'), [[0, { worker_kind: 'gpu' }], [2, { worker_kind: 'gpu' }]]);
  });
});
