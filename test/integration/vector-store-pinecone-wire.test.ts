/**
 * The Pinecone adapter through the real `@pinecone-database/pinecone` 8.2 SDK, against a LOCAL
 * endpoint that checks Pinecone's wire format (test/helpers/pinecone-wire-server.ts), not against
 * Pinecone: Pinecone Local needs Docker, which we do not have. The alias pointer lives in the SQL
 * AliasRegistry on PGlite, as in production.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PINECONE_LIMITS, PineconeVectorStore, pineconeFilter, pineconeIndexName } from '../../src/adapters/pinecone-store';
import { SqlAliasRegistry } from '../../src/adapters/pgvector-store';
import { createVectorStore, type VectorStoreConfig } from '../../src/adapters/vector-store';
import { ConfigError } from '../../src/ports/errors';
import { VectorStoreRejectedError, type AliasRegistry } from '../../src/ports/vector-store';
import { startPineconeWireServer, type PineconeWireServer } from '../helpers/pinecone-wire-server';
import { describeVectorStoreConformance, deterministicVectors } from './vector-store.conformance';

function pineconeStore(server: PineconeWireServer, aliases: AliasRegistry, extra: { apiKey?: string; attempts?: number; ownsAliases?: boolean } = {}) {
  return new PineconeVectorStore({
    apiKey: extra.apiKey ?? server.apiKey,
    controllerHostUrl: server.controllerUrl,
    aliases,
    ownsAliases: extra.ownsAliases ?? false,
    readyPollMs: 10,
    retry: { attempts: extra.attempts ?? 5, baseDelayMs: 5 },
  });
}

async function openStore(server: PineconeWireServer) {
  const dir = await mkdtemp(path.join(tmpdir(), 'forgeline-pinecone-aliases-'));
  const aliases = await SqlAliasRegistry.open({ dir });
  const store = pineconeStore(server, aliases, { ownsAliases: true });
  return { store, aliases, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

describe('Pinecone adapter against a local wire-format endpoint (not Pinecone)', function () {
  let server: PineconeWireServer;

  before(async function () {
    server = await startPineconeWireServer();
  });

  after(async function () {
    assert.deepEqual(server.violations, [], 'the SDK and adapter must send only what Pinecone accepts');
    await server.close();
  });

  describeVectorStoreConformance('pinecone (local wire-format endpoint)', async () => openStore(server));

  describe('Pinecone specifics', function () {
    this.timeout(60_000);
    let sut: Awaited<ReturnType<typeof openStore>>;

    before(async function () {
      sut = await openStore(server);
    });

    after(async function () {
      await sut.store.close();
      await sut.cleanup();
    });

    it('maps (index, metric, dims) to one tagged Pinecone index each and a version to a namespace', async function () {
      await sut.store.createVersion('layout_check', 'v1', { dimensions: 8, metric: 'cosine' });
      await sut.store.createVersion('layout_check', 'v2', { dimensions: 8, metric: 'cosine' });
      await sut.store.createVersion('layout_check', 'v3', { dimensions: 4, metric: 'euclidean' });
      const names = server.indexNames().filter((n) => n.startsWith('fl-layout-check'));
      assert.deepEqual(names.sort(), ['fl-layout-check-cos-8', 'fl-layout-check-l2-4']);
      assert.ok(server.requests.includes('POST /namespaces'), 'versions are created as namespaces');
    });

    it('long index names stay within 45 characters and distinct', function () {
      const a = pineconeIndexName('a'.repeat(48), { dimensions: 384, metric: 'cosine' });
      const b = pineconeIndexName(`${'a'.repeat(47)}b`, { dimensions: 384, metric: 'cosine' });
      assert.ok(a.length <= PINECONE_LIMITS.indexName && b.length <= PINECONE_LIMITS.indexName, `${a} ${b}`);
      assert.notEqual(a, b);
      assert.match(a, /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
    });

    it('splits an upsert under 1,000 vectors and 2 MB per request', async function () {
      const dims = 1536;
      await sut.store.createVersion('batching', 'v1', { dimensions: dims, metric: 'dot' });
      const before = server.requests.filter((r) => r === 'POST /vectors/upsert').length;
      // 1536 floats of ~20 JSON characters each: ~30 KB a record, so 2 MB holds ~65 of them.
      const records = deterministicVectors(200, 3, dims).map((values, i) => ({ id: `big${i}`, values }));
      await sut.store.upsert('batching', 'v1', records);
      const sent = server.requests.filter((r) => r === 'POST /vectors/upsert').length - before;
      // The server refuses any request over 2 MB, so the count is at least total / 2 MB.
      const bytes = records.reduce((sum, r) => sum + JSON.stringify({ id: r.id, values: Array.from(r.values) }).length, 0);
      const least = Math.ceil(bytes / PINECONE_LIMITS.upsertBytes);
      assert.ok(least >= 3 && sent >= least, `expected ${bytes} bytes of records in >= ${least} requests, got ${sent}`);
      assert.equal(await sut.store.count('batching', 'v1'), 200);
    });

    it('retries 429 and 503 answers, then succeeds', async function () {
      await sut.store.createVersion('retries', 'v1', { dimensions: 4, metric: 'cosine' });
      server.failNext(2, 429);
      await sut.store.upsert('retries', 'v1', [{ id: 'a', values: [1, 0, 0, 0] }]);
      server.failNext(2, 503);
      assert.equal(await sut.store.count('retries', 'v1'), 1);
    });

    it('gives up on persistent 5xx with a retryable (non-terminal) error', async function () {
      const store = pineconeStore(server, sut.aliases, { attempts: 2 });
      try {
        await store.createVersion('giveup', 'v1', { dimensions: 4, metric: 'cosine' });
        server.failNext(5, 503);
        const err = await store.count('giveup', 'v1').then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof Error && !(err instanceof VectorStoreRejectedError), String(err));
        assert.match(err.message, /after 2 attempts/);
      } finally {
        server.failNext(0);
        await store.close();
      }
    });

    it('a wrong API key is terminal and names the setting to fix', async function () {
      const store = pineconeStore(server, sut.aliases, { apiKey: 'wrong-key' });
      try {
        await assert.rejects(store.listVersions('anything'), (err: unknown) => {
          assert.ok(err instanceof VectorStoreRejectedError, String(err));
          assert.match(err.message, /FORGELINE_PINECONE_API_KEY/);
          return true;
        });
      } finally {
        await store.close();
      }
    });

    it('topK over Pinecone limit with metadata is refused before sending', async function () {
      await sut.store.createVersion('topk', 'v1', { dimensions: 4, metric: 'cosine' });
      await assert.rejects(sut.store.query('topk', { version: 'v1' }, [1, 0, 0, 0], { topK: 1001 }), /topK 1001/);
    });

    it('the endpoint refuses off-spec requests (old API version, unknown field, >1,000 vectors), so the checks can fail', async function () {
      await sut.store.createVersion('offspec', 'v1', { dimensions: 2, metric: 'dot' });
      const model = (await (await fetch(`${server.controllerUrl}/indexes/fl-offspec-dot-2`, { headers: { 'Api-Key': server.apiKey, 'X-Pinecone-Api-Version': '2026-04' } })).json()) as { host: string };
      const data = `http://${model.host}`;
      const post = (path: string, version: string, body: unknown) =>
        fetch(`${data}${path}`, { method: 'POST', headers: { 'Api-Key': server.apiKey, 'X-Pinecone-Api-Version': version, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      const statuses = [
        (await post('/describe_index_stats', '2024-07', {})).status,
        (await post('/query', '2026-04', { namespace: 'v1', top_k: 3, vector: [1, 0] })).status,
        (await post('/vectors/upsert', '2026-04', { namespace: 'v1', vectors: Array.from({ length: 1001 }, (_, i) => ({ id: `x${i}`, values: [1, 0] })) })).status,
      ];
      assert.deepEqual(statuses, [400, 400, 400]);
      assert.equal(server.violations.length, 3, server.violations.join('\n'));
      server.violations.length = 0;
    });

    it('createVectorStore opens the Pinecone adapter from the config (alias rows in PGlite under the vector dir), and refuses without an API key', async function () {
      const dir = await mkdtemp(path.join(tmpdir(), 'forgeline-pinecone-factory-'));
      try {
        const config = { store: 'pinecone', dir, pinecone: { apiKey: server.apiKey, host: server.controllerUrl, project: 'factory' } } as VectorStoreConfig;
        const store = await createVectorStore(config);
        try {
          assert.match(store.label, /^pinecone:factory@127\.0\.0\.1:/);
          await store.createVersion('factory', 'v1', { dimensions: 2, metric: 'cosine' });
          await store.swapAlias('factory', 'live', 'v1', null);
          assert.equal((await store.getAlias('factory', 'live'))?.version, 'v1');
        } finally {
          await store.close();
        }
        await assert.rejects(createVectorStore({ store: 'pinecone', dir } as VectorStoreConfig), (err: unknown) => err instanceof ConfigError && /FORGELINE_PINECONE_API_KEY/.test(err.message));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('translates filters to $eq/$in/$and ($or of $eq for booleans)', function () {
      assert.deepEqual(pineconeFilter([['a', ['x']]]), { a: { $eq: 'x' } });
      assert.deepEqual(pineconeFilter([['a', ['x', 2]], ['b', [true]]]), { $and: [{ a: { $in: ['x', 2] } }, { b: { $eq: true } }] });
      assert.deepEqual(pineconeFilter([['b', [true, false]]]), { $or: [{ b: { $eq: true } }, { b: { $eq: false } }] });
      assert.equal(pineconeFilter([]), undefined);
    });
  });
});
