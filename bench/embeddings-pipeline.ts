/**
 * The re-embed pipeline's benchmarks (bench/results/embeddings.json, section `pipeline`):
 *
 * 1. efficiency: reembedCorpusWorkflow end to end (list → chunk → plan → embed → upsert → validate
 *    → swap) on the shipped corpus, on a real local Temporal dev server with in-process control and
 *    pool workers, PGlite as the store and the real all-MiniLM-L6-v2 in a long-lived process,
 *    against its peer in the same process: the same model embedding the same chunk texts in one
 *    call (batch 64). Documents/s of each, and pipeline efficiency = pipeline / raw. Interleaved
 *    rounds (raw, pipeline, raw, pipeline, ...) so the shared machine's load falls on both alike;
 *    medians reported. The raw side gets the chunks for free (it does no listing, chunking, store
 *    writes, validation queries or orchestration): the gap is the pipeline's whole overhead.
 *
 * 2. scale: 100,000 chunks through the same workflow with a deterministic hash embedder of 8
 *    dimensions (BENCH ONLY: it stands in for the model so the run measures orchestration and
 *    history, not torch; nothing in product code can select it). Reports each run's history
 *    length and the continue-as-new count, to show that history stays bounded as the corpus grows.
 *
 *   npm run bench -- embeddings-pipeline     (FORGELINE_BENCH_SCALE_CHUNKS, default 100000; FORGELINE_BENCH_ROUNDS, default 2;
 *                                             FORGELINE_BENCH_PIPELINE=efficiency|scale for one part, keeping the other's last result)
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { createControlActivities, createGpuActivities } from '../activities';
import { PgvectorStore } from '../src/adapters/pgvector-store';
import { PersistentSentenceTransformersEmbedder } from '../src/adapters/sentence-transformers-server';
import { loadConfig, REPO_ROOT } from '../src/config/load';
import type { PreparedVersion, ReembedProgress, ReembedResult } from '../src/contracts/reembed-spec';
import { FORGELINE_SEARCH_ATTRIBUTES } from '../src/contracts/search-attributes';
import type { ReembedSpecInput } from '../src/contracts/specs/reembed-spec';
import { gpuTaskQueue } from '../src/contracts/task-queues';
import { chunkDocument } from '../src/embeddings/chunker';
import { loadDocuments } from '../src/embeddings/documents';
import { loadMiniLmTokenizer } from '../src/embeddings/tokenizer';
import type { Embeddings } from '../src/drift/embeddings';
import type { Embedder } from '../src/ports/embedder';
import { localDeps } from '../test/fixtures/reembed';
import { percentile, round, writeResultSection } from './measure';

const CORPUS = path.join(REPO_ROOT, 'examples', 'corpus');
const ROUNDS = Number(process.env.FORGELINE_BENCH_ROUNDS ?? 2);
const SCALE_CHUNKS = Number(process.env.FORGELINE_BENCH_SCALE_CHUNKS ?? 100_000);
const CHUNKING = { chunkTokens: 256, overlapTokens: 32 };
const BATCH = 64;
const FAKE_DIMENSIONS = 8;
const log = (line: string) => console.log(`bench embeddings-pipeline: ${line}`);
const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

/** BENCH ONLY: a deterministic 8-dimensional "embedding" from a hash of the text (unit length). */
class HashEmbedder implements Embedder {
  readonly dimensions = FAKE_DIMENSIONS;
  constructor(readonly model: string) {}
  async embed(texts: readonly string[]): Promise<Embeddings> {
    const data = new Float32Array(texts.length * FAKE_DIMENSIONS);
    texts.forEach((t, i) => {
      const h = createHash('sha256').update(t).digest();
      let norm = 0;
      for (let d = 0; d < FAKE_DIMENSIONS; d++) norm += (data[i * FAKE_DIMENSIONS + d] = h.readInt16LE(d * 2) / 32768) ** 2;
      for (let d = 0; d < FAKE_DIMENSIONS; d++) data[i * FAKE_DIMENSIONS + d]! /= Math.sqrt(norm) || 1;
    });
    return { rows: texts.length, cols: FAKE_DIMENSIONS, data };
  }
}

interface Side {
  client: Client;
  taskQueue: string;
  pool: string;
}

/** Run `fn` while in-process control and pool workers poll, over the given activities. */
async function withWorkers<T>(env: TestWorkflowEnvironment, bundle: Awaited<ReturnType<typeof bundleWorkflowCode>>, label: string, control: object, gpu: object, fn: (side: Side) => Promise<T>): Promise<T> {
  const taskQueue = `bench-reembed-${label}`;
  const pool = `bench${label}`;
  const c = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: control, maxConcurrentActivityTaskExecutions: 8 });
  const g = await Worker.create({ connection: env.nativeConnection, taskQueue: gpuTaskQueue(pool), activities: gpu, maxConcurrentActivityTaskExecutions: 2 });
  return c.runUntil(() => g.runUntil(() => fn({ client: env.client, taskQueue, pool })));
}

type HistoryEvent = {
  eventId?: unknown;
  eventTime?: { seconds?: unknown; nanos?: number | null } | null;
  activityTaskScheduledEventAttributes?: { activityType?: { name?: string | null } | null } | null;
  activityTaskStartedEventAttributes?: { scheduledEventId?: unknown } | null;
  activityTaskCompletedEventAttributes?: { scheduledEventId?: unknown } | null;
};

/** Seconds spent in each activity type (started → completed, summed over its calls), from a run's history. */
async function stageSeconds(handle: WorkflowHandle): Promise<Record<string, number>> {
  const events = ((await handle.fetchHistory()).events ?? []) as HistoryEvent[];
  const at = (e: HistoryEvent) => Number(e.eventTime?.seconds ?? 0) + (e.eventTime?.nanos ?? 0) / 1e9;
  const type = new Map<string, string>();
  const started = new Map<string, number>();
  const out: Record<string, number> = {};
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes) type.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '?');
    if (e.activityTaskStartedEventAttributes) started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), at(e));
    const done = e.activityTaskCompletedEventAttributes;
    if (done) {
      const id = String(done.scheduledEventId);
      const name = type.get(id) ?? '?';
      out[name] = round((out[name] ?? 0) + at(e) - (started.get(id) ?? at(e)), 2);
    }
  }
  return out;
}

/** Start a re-embed and wait until its alias has moved (it then waits retireAfter to drop the previous version). */
async function untilSwapped(handle: WorkflowHandle): Promise<ReembedProgress> {
  for (;;) {
    const p = await handle.query<ReembedProgress>('progress').catch(() => undefined);
    if (p?.outcome === 'Failed') throw new Error(`re-embed failed: ${p.failure}`);
    if (p && (p.stage === 'retire' || p.outcome === 'Succeeded')) return p;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function efficiency(env: TestWorkflowEnvironment, bundle: Awaited<ReturnType<typeof bundleWorkflowCode>>, venv: string) {
  const embedder = new PersistentSentenceTransformersEmbedder({ python: path.join(venv, 'bin', 'python'), batchSize: BATCH });
  const tokenizer = loadMiniLmTokenizer(venv);
  try {
    // The raw side's input: the same chunks the pipeline embeds (chunked here, outside its timing).
    const { documents } = await loadDocuments({ folder: path.join(CORPUS, 'docs') });
    const texts = documents.flatMap((d) => chunkDocument(d, { tokenizer, ...CHUNKING }).map((c) => c.text));
    log(`corpus: ${documents.length} documents, ${texts.length} chunks of <= ${CHUNKING.chunkTokens} tokens`);
    await embedder.embed(['warm-up']); // the model loads once, before either side is timed
    const raw: number[] = [];
    const pipeline: number[] = [];
    let last: ReembedProgress | undefined;
    let stages: Record<string, number> = {};
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now();
      await embedder.embed(texts);
      raw.push((performance.now() - t0) / 1000);
      log(`round ${r + 1}: raw model ${raw[r]!.toFixed(1)} s (${(documents.length / raw[r]!).toFixed(2)} documents/s)`);

      const dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-bench-reembed-'));
      const vectors = await PgvectorStore.openPglite(path.join(dir, 'vectors'));
      try {
        const d = localDeps(dir);
        const spec: ReembedSpecInput = {
          corpus: { name: 'bench', source: { folder: path.join(CORPUS, 'docs') } },
          chunking: CHUNKING,
          embedding: { batchSize: BATCH },
          store: { index: 'bench', alias: 'live' },
          validation: { queries: { file: path.join(CORPUS, 'queries.jsonl') }, k: 5 },
          sliceChunks: 500,
        };
        last = await withWorkers(env, bundle, `eff${r}`, createControlActivities({ ...d, vectors, tokenizer }), createGpuActivities({ ...d, embedder }), async ({ client, taskQueue, pool }) => {
          const t1 = performance.now();
          const handle = await client.workflow.start('reembedCorpusWorkflow', { taskQueue, workflowId: `bench-reembed-eff-${Date.now()}-${r}`, args: [{ ...spec, pool }] });
          const p = await untilSwapped(handle);
          pipeline.push((performance.now() - t1) / 1000);
          stages = await stageSeconds(handle);
          await handle.terminate('benchmark done').catch(() => undefined); // ended already without a previous version to retire
          return p;
        });
      } finally {
        await vectors.close();
        rmSync(dir, { recursive: true, force: true });
      }
      log(`round ${r + 1}: pipeline ${pipeline[r]!.toFixed(1)} s (${(documents.length / pipeline[r]!).toFixed(2)} documents/s)`);
    }
    log(`pipeline ${(documents.length / median(pipeline)).toFixed(2)} documents/s vs raw model ${(documents.length / median(raw)).toFixed(2)} documents/s`);
    const rawDps = documents.length / median(raw);
    const pipeDps = documents.length / median(pipeline);
    return {
      documents: documents.length,
      chunks: texts.length,
      chunking: CHUNKING,
      batchSize: BATCH,
      rounds: ROUNDS,
      rawModel: { seconds: raw.map((x) => round(x, 2)), documentsPerS: round(rawDps, 2), chunksPerS: round(texts.length / median(raw), 1) },
      pipeline: { seconds: pipeline.map((x) => round(x, 2)), documentsPerS: round(pipeDps, 2), chunksPerS: round(texts.length / median(pipeline), 1), validation: last?.validation, activitySecondsLastRound: stages },
      efficiencyPercent: round((100 * pipeDps) / rawDps, 1),
      modelProcessesStarted: embedder.starts,
      note: 'pipeline: start → alias swapped, on a local Temporal dev server with in-process workers; it also lists, chunks, writes PGlite and embeds and runs the labelled queries. raw: the same model process embedding the same chunk texts in one call.',
    };
  } finally {
    await embedder.close();
  }
}

/** Documents of short numbered paragraphs: each paragraph is one 16-token chunk. */
function writeScaleCorpus(dir: string, chunks: number): number {
  const perDoc = 100;
  const docs = Math.ceil(chunks / perDoc);
  for (let d = 0; d < docs; d++) {
    const paras: string[] = [];
    for (let p = 0; p < perDoc && d * perDoc + p < chunks; p++) paras.push(`Record ${d} ${p} holds item ${(d * 7919 + p * 104729) % 1000003}.`);
    const sub = path.join(dir, `part${Math.floor(d / 100)}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(path.join(sub, `doc${d}.txt`), paras.join('\n\n'));
  }
  return docs;
}

async function scale(env: TestWorkflowEnvironment, bundle: Awaited<ReturnType<typeof bundleWorkflowCode>>, venv: string) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-bench-reembed-scale-'));
  const vectors = await PgvectorStore.openPglite(path.join(dir, 'vectors'));
  try {
    const corpus = path.join(dir, 'corpus');
    const documents = writeScaleCorpus(corpus, SCALE_CHUNKS);
    const d = localDeps(dir);
    const control = createControlActivities({ ...d, vectors, tokenizer: loadMiniLmTokenizer(venv) });
    const model = 'sentence-transformers/all-MiniLM-L6-v2';
    // The hash embedder is 8 wide: the bench creates the version at that width itself.
    const prepareIndexVersion = async (input: { spec: { store: { index: string; alias: string } }; version: string }): Promise<PreparedVersion> => {
      await vectors.createVersion(input.spec.store.index, input.version, { dimensions: FAKE_DIMENSIONS, metric: 'cosine' });
      return { version: input.version, dimensions: FAKE_DIMENSIONS, previous: null, aliasAt: null, store: vectors.label };
    };
    const spec: ReembedSpecInput = {
      corpus: { name: 'scale', source: { folder: corpus } },
      chunking: { chunkTokens: 16, overlapTokens: 0 },
      embedding: { model, batchSize: 1000 },
      store: { index: 'scale', alias: 'live' },
      validation: { k: 5 },
      sliceChunks: 5000,
      slicesPerRun: 4,
      parallelism: { embed: 2, upsert: 4 },
      retireAfter: '1s',
    };
    return await withWorkers(env, bundle, 'scale', { ...control, prepareIndexVersion }, createGpuActivities({ ...d, embedder: new HashEmbedder(model) }), async ({ client, taskQueue, pool }) => {
      const workflowId = `bench-reembed-scale-${Date.now()}`;
      const t0 = performance.now();
      const handle = await client.workflow.start('reembedCorpusWorkflow', { taskQueue, workflowId, args: [{ ...spec, pool }] });
      const result = (await handle.result()) as ReembedResult;
      const seconds = (performance.now() - t0) / 1000;
      // Every run of the chain, oldest first, with its history length.
      const runs: number[] = [];
      let runId: string | undefined = handle.firstExecutionRunId;
      while (runId) {
        const history: { events?: Array<{ workflowExecutionContinuedAsNewEventAttributes?: { newExecutionRunId?: string | null } | null }> | null } = await client.workflow.getHandle(workflowId, runId).fetchHistory();
        const events = history.events ?? [];
        runs.push(events.length);
        runId = events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
      }
      log(`scale: ${result.chunks} chunks in ${seconds.toFixed(1)} s, ${result.continuedAsNew} continue-as-new, events per run ${runs.join(', ')}`);
      return {
        chunks: result.chunks,
        documents,
        dimensions: FAKE_DIMENSIONS,
        embedder: 'deterministic sha256 hash, 8 dimensions (bench only; stands in for the model)',
        sliceChunks: 5000,
        slicesPerRun: 4,
        seconds: round(seconds, 1),
        chunksPerS: round(result.chunks / seconds, 0),
        continuedAsNew: result.continuedAsNew,
        runs: runs.length,
        eventsPerRun: runs,
        maxEventsPerRun: Math.max(...runs),
        totalEvents: runs.reduce((a, b) => a + b, 0),
        validation: result.validation,
      };
    });
  } finally {
    await vectors.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function previousSection(): Record<string, unknown> | undefined {
  try {
    return (JSON.parse(readFileSync(path.join(__dirname, 'results', 'embeddings.json'), 'utf8')) as { sections: Record<string, Record<string, unknown>> }).sections.pipeline;
  } catch {
    return undefined;
  }
}

export async function embeddingsPipelineBenchmark(): Promise<void> {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    /* installed by an earlier benchmark of this run */
  }
  const cfg = loadConfig();
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: path.join(cfg.venv, 'bin', 'temporal') }, searchAttributes: [...FORGELINE_SEARCH_ATTRIBUTES], extraArgs: ['--log-level', 'error'] },
  });
  try {
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: new DefaultLogger('ERROR') });
    const loadAtStart = os.loadavg().map((x) => round(x, 2));
    // FORGELINE_BENCH_PIPELINE=efficiency|scale runs one part and keeps the other's last result.
    const only = process.env.FORGELINE_BENCH_PIPELINE;
    const previous = (previousSection() ?? {}) as { efficiency?: unknown; scale?: unknown };
    const eff = only === 'scale' ? previous.efficiency : await efficiency(env, bundle, cfg.venv);
    const big = only === 'efficiency' ? previous.scale : await scale(env, bundle, cfg.venv);
    const file = writeResultSection('embeddings', 'pipeline', { efficiency: eff, scale: big, loadavgAtStart: loadAtStart, ...(only ? { measuredThisRun: only } : {}) });
    log(`results in ${path.relative(process.cwd(), file)}`);
  } finally {
    await env.teardown();
  }
}

if (require.main === module) {
  embeddingsPipelineBenchmark().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
