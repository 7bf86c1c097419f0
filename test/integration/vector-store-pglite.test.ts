/**
 * The pgvector adapter on PGlite (the embedded default): the shared VectorStore conformance suite
 * on a fresh PGlite directory, plus what is specific to it (persistence across reopen, one PGlite
 * per directory per process, the alias registry on its own).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openPgliteDatabase, PgvectorStore, SqlAliasRegistry, versionTable } from '../../src/adapters/pgvector-store';
import { createVectorStore } from '../../src/adapters/vector-store';
import { ConfigError } from '../../src/ports/errors';
import { AliasConflictError, VectorStoreRejectedError } from '../../src/ports/vector-store';
import { describeVectorStoreConformance, deterministicVectors } from './vector-store.conformance';

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'forgeline-pglite-'));
}

describeVectorStoreConformance('pgvector on PGlite', async () => {
  const dir = await tempDir();
  const store = await PgvectorStore.openPglite(path.join(dir, 'vectors'));
  return { store, cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describe('pgvector on PGlite', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(async function () {
    dir = await tempDir();
  });
  afterEach(async function () {
    await rm(dir, { recursive: true, force: true });
  });

  it('persists versions, records and aliases under its directory across a reopen', async function () {
    const where = path.join(dir, 'vectors');
    const first = await PgvectorStore.openPglite(where);
    await first.createVersion('docs', 'v1', { dimensions: 4, metric: 'cosine' });
    await first.upsert('docs', 'v1', [{ id: 'a', values: [1, 0, 0, 0], metadata: { doc: 'x' } }]);
    await first.swapAlias('docs', 'live', 'v1', null);
    await first.close();

    const second = await PgvectorStore.openPglite(where);
    try {
      assert.equal(second.label, `pgvector:pglite:${where}`);
      assert.equal(await second.count('docs', 'v1'), 1);
      assert.equal((await second.getAlias('docs', 'live'))?.version, 'v1');
      const [match] = await second.query('docs', { alias: 'live' }, [1, 0, 0, 0], { topK: 1 });
      assert.deepEqual(match, { id: 'a', score: 1, metadata: { doc: 'x' } });
    } finally {
      await second.close();
    }
  });

  it('stores and a registry opened on one directory share one PGlite; it closes with the last', async function () {
    const where = path.join(dir, 'vectors');
    const a = await PgvectorStore.openPglite(where);
    const b = await PgvectorStore.openPglite(where);
    const registry = await SqlAliasRegistry.open({ dir: where });
    await a.createVersion('docs', 'v1', { dimensions: 4, metric: 'dot' });
    await b.upsert('docs', 'v1', [{ id: 'a', values: [1, 2, 3, 4] }]);
    await a.close();
    assert.equal(await b.count('docs', 'v1'), 1, 'b still works after a closed');
    await registry.swap('pinecone:proj/docs', 'docs', 'live', 'v1', null);
    await b.close();
    assert.equal((await registry.get('pinecone:proj/docs', 'docs', 'live'))?.version, 'v1');
    await registry.close();
  });

  it('SqlAliasRegistry on its own: CAS per store scope, generations, pointingAt', async function () {
    const registry = await SqlAliasRegistry.open({ dir: path.join(dir, 'aliases') });
    try {
      const scope = 'pinecone:proj/docs';
      assert.equal(await registry.get(scope, 'docs', 'live'), null);
      const first = await registry.swap(scope, 'docs', 'live', 'v1', null);
      assert.equal(first.generation, 1);
      const moved = await registry.swap(scope, 'docs', 'live', 'v2', 'v1');
      assert.equal(moved.generation, 2);
      assert.deepEqual(await registry.swap(scope, 'docs', 'live', 'v2', 'v1'), moved, 'a retried swap returns the record unchanged');
      await assert.rejects(registry.swap(scope, 'docs', 'live', 'v3', 'v1'), AliasConflictError);
      await registry.swap(scope, 'docs', 'staging', 'v2', null);
      assert.deepEqual(await registry.pointingAt(scope, 'docs', 'v2'), ['live', 'staging']);
      assert.deepEqual(await registry.pointingAt('other', 'docs', 'v2'), [], 'scopes are separate');
      assert.equal(await registry.get('other', 'docs', 'live'), null);
    } finally {
      await registry.close();
    }
  });

  it('a filtered query finds topK matches even when they are rare (HNSW iterative scan)', async function () {
    this.timeout(300_000);
    const store = await PgvectorStore.openPglite(path.join(dir, 'vectors'));
    try {
      await store.createVersion('docs', 'v1', { dimensions: 16, metric: 'cosine' });
      const vectors = deterministicVectors(3_000, 7, 16);
      await store.upsert(
        'docs',
        'v1',
        vectors.map((values, i) => ({ id: `r${i}`, values, metadata: { rare: i % 300 === 0 } })),
      );
      const got = await store.query('docs', { version: 'v1' }, vectors[1]!, { topK: 10, filter: { rare: true } });
      assert.equal(got.length, 10, `10 rare records exist, got ${got.map((m) => m.id).join(',')}`);
    } finally {
      await store.close();
    }
  });

  it('createVectorStore builds the PGlite store under FORGELINE_VECTOR_DIR by default config', async function () {
    const where = path.join(dir, 'vectors');
    const store = await createVectorStore({ store: 'pglite', dir: where });
    try {
      assert.equal(store.label, `pgvector:pglite:${where}`);
      await store.createVersion('docs', 'v1', { dimensions: 4, metric: 'cosine' });
      assert.deepEqual(await store.listVersions('docs'), [{ version: 'v1', dimensions: 4, metric: 'cosine' }]);
    } finally {
      await store.close();
    }
    await assert.rejects(createVectorStore({ store: 'nope' as 'pglite', dir: where }), (err: unknown) => err instanceof ConfigError && /FORGELINE_VECTOR_STORE/.test(err.message));
  });

  it('a directory another live process holds is refused, naming it; a dead holder\'s lock is taken over', async function () {
    const where = path.join(dir, 'vectors');
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      await writeFile(`${where}.lock`, JSON.stringify({ pid: holder.pid, host: os.hostname(), since: new Date().toISOString() }));
      await assert.rejects(
        openPgliteDatabase(where, undefined, { lockWaitMs: 0 }),
        (err: unknown) => err instanceof VectorStoreRejectedError && err.message.includes(`process ${holder.pid}`) && /FORGELINE_VECTOR_STORE=postgres/.test(err.message),
      );
    } finally {
      holder.kill();
      await once(holder, 'exit');
    }
    // The holder is gone now: its lock is stale and taken over.
    const db = await openPgliteDatabase(where, undefined, { lockWaitMs: 0 });
    assert.equal((JSON.parse(await readFile(`${where}.lock`, 'utf8')) as { pid: number }).pid, process.pid);
    await db.close();
    assert.equal(existsSync(`${where}.lock`), false, 'the lock goes with the last close');
  });

  it('table names are readable when they can be and never collide', function () {
    assert.equal(versionTable('docs', 'v1'), 'fl_docs__v1');
    const ambiguous = [versionTable('a__b', 'c'), versionTable('a', 'b__c'), versionTable('a_', '_b__c')];
    assert.equal(new Set(ambiguous).size, 3);
    const long = versionTable('a'.repeat(48), 'b'.repeat(48));
    assert.ok(long.length <= 63, long);
    assert.notEqual(long, versionTable('a'.repeat(48), `${'b'.repeat(47)}c`));
  });
});
