/**
 * The Qdrant adapter through the real `@qdrant/js-client-rest` 1.18 client, against a LOCAL
 * endpoint that checks Qdrant's REST wire format (test/helpers/qdrant-wire-server.ts), not against
 * Qdrant: no PyPI, npm or Debian package ships a runnable Qdrant server here.
 */
import assert from 'node:assert/strict';
import { QdrantVectorStore, claimName, collectionName, qdrantFilter, qdrantPointId } from '../../src/adapters/qdrant-store';
import { createVectorStore, type VectorStoreConfig } from '../../src/adapters/vector-store';
import { ConfigError } from '../../src/ports/errors';
import { AliasConflictError, VectorStoreRejectedError } from '../../src/ports/vector-store';
import { startQdrantWireServer, type QdrantWireServer } from '../helpers/qdrant-wire-server';
import { describeVectorStoreConformance } from './vector-store.conformance';

function qdrantStore(server: QdrantWireServer, extra: { apiKey?: string; attempts?: number } = {}): QdrantVectorStore {
  return new QdrantVectorStore({ url: server.url, apiKey: extra.apiKey ?? server.apiKey, retry: { attempts: extra.attempts ?? 5, baseDelayMs: 5 } });
}

describe('Qdrant adapter against a local wire-format endpoint (not Qdrant)', function () {
  let server: QdrantWireServer;
  const warn = console.warn;

  before(async function () {
    // The client warns when an API key travels over plain http; the local endpoint is http only.
    console.warn = (...args: unknown[]) => {
      if (!String(args[0]).includes('Api key is used with unsecure connection')) warn(...args);
    };
    server = await startQdrantWireServer({ apiKey: 'qdrant-local-wire-key' });
  });

  after(async function () {
    console.warn = warn;
    assert.deepEqual(server.violations, [], 'the client and adapter must send only what Qdrant accepts');
    await server.close();
  });

  describeVectorStoreConformance('qdrant (local wire-format endpoint)', async () => ({ store: qdrantStore(server), cleanup: async () => undefined }));

  describe('Qdrant specifics', function () {
    let store: QdrantVectorStore;

    before(function () {
      store = qdrantStore(server);
    });

    after(async function () {
      await store.close();
    });

    it('a version is the collection <index>__<version>; the alias is a native Qdrant alias', async function () {
      await store.createVersion('layout', 'v1', { dimensions: 4, metric: 'cosine' });
      await store.createVersion('layout', 'v2', { dimensions: 4, metric: 'cosine' });
      assert.ok(server.collectionNames().includes('layout__v1'));
      await store.swapAlias('layout', 'live', 'v1', null);
      const before = server.requests.filter((r) => r === 'POST /collections/aliases').length;
      await store.swapAlias('layout', 'live', 'v2', 'v1');
      assert.equal(server.requests.filter((r) => r === 'POST /collections/aliases').length - before, 1, 'one atomic alias request per swap');
      assert.equal(collectionName('layout', 'v1'), 'layout__v1');
    });

    it('a swap that finds a claimed but unfinished move (its client died) completes it and reports the conflict', async function () {
      for (const v of ['v1', 'v2', 'v3']) await store.createVersion('claims', v, { dimensions: 2, metric: 'dot' });
      const first = await store.swapAlias('claims', 'live', 'v1', null);
      // Another client claimed generation 2 for v2, then died before moving the alias.
      const response = await fetch(`${server.url}/collections/${claimName('claims', 'live', first.generation + 1)}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', 'api-key': 'qdrant-local-wire-key' },
        body: JSON.stringify({ vectors: { size: 1, distance: 'Dot' }, metadata: { forgeline_claim: { version: 'v2', generation: first.generation + 1, moved_at: new Date().toISOString() } } }),
      });
      assert.equal(response.status, 200);
      const other = qdrantStore(server);
      await assert.rejects(other.swapAlias('claims', 'live', 'v3', 'v1'), (err: unknown) => {
        assert.ok(err instanceof AliasConflictError, String(err));
        assert.equal(err.actual, 'v2');
        return true;
      });
      const now = await store.getAlias('claims', 'live');
      assert.equal(now?.version, 'v2');
      assert.equal(now?.generation, first.generation + 1);
      // And the next swap continues from there.
      assert.equal((await other.swapAlias('claims', 'live', 'v3', 'v2')).generation, first.generation + 2);
    });

    it('index names that would make <index>__ ambiguous are refused', async function () {
      for (const index of ['a__b', 'docs_']) {
        await assert.rejects(store.createVersion(index, 'v1', { dimensions: 4, metric: 'cosine' }), (err: unknown) => {
          assert.ok(err instanceof VectorStoreRejectedError, String(err));
          assert.match(err.message, /__/);
          return true;
        });
      }
    });

    it('point ids are deterministic UUIDs; the record id comes back from the payload', async function () {
      const id = qdrantPointId('chunk:abc.1');
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(qdrantPointId('chunk:abc.1'), id);
      assert.notEqual(qdrantPointId('chunk:abc.2'), id);
      await store.createVersion('ids', 'v1', { dimensions: 3, metric: 'dot' });
      await store.upsert('ids', 'v1', [{ id: 'chunk:abc.1', values: [1, 2, 3], metadata: { k: 1.5 } }]);
      const [match] = await store.query('ids', { version: 'v1' }, [1, 0, 0], { topK: 1, filter: { k: 1.5 } });
      assert.equal(match?.id, 'chunk:abc.1');
      assert.equal(match.score, 1);
    });

    it('createVectorStore opens the Qdrant adapter from the config, and refuses without a URL', async function () {
      const config = { store: 'qdrant', dir: '/nonexistent', qdrant: { url: server.url, apiKey: 'qdrant-local-wire-key' } } as VectorStoreConfig;
      const factoryStore = await createVectorStore(config);
      try {
        assert.equal(factoryStore.label, `qdrant:${new URL(server.url).host}`);
        await factoryStore.createVersion('factory', 'v1', { dimensions: 2, metric: 'euclidean' });
        assert.deepEqual(await factoryStore.listVersions('factory'), [{ version: 'v1', dimensions: 2, metric: 'euclidean' }]);
      } finally {
        await factoryStore.close();
      }
      await assert.rejects(createVectorStore({ store: 'qdrant', dir: '/nonexistent' } as VectorStoreConfig), (err: unknown) => err instanceof ConfigError && /FORGELINE_QDRANT_URL/.test(err.message));
    });

    it('maps filters to match value / match any / range / should', function () {
      assert.deepEqual(qdrantFilter([['a', ['x']]]), { must: [{ key: 'meta.a', match: { value: 'x' } }] });
      assert.deepEqual(qdrantFilter([['a', [1, 2]]]), { must: [{ key: 'meta.a', match: { any: [1, 2] } }] });
      assert.deepEqual(qdrantFilter([['a', [2.5]]]), { must: [{ key: 'meta.a', range: { gte: 2.5, lte: 2.5 } }] });
      assert.deepEqual(qdrantFilter([['a', [true, 'x']]]), { must: [{ should: [{ key: 'meta.a', match: { value: true } }, { key: 'meta.a', match: { value: 'x' } }] }] });
      assert.equal(qdrantFilter([]), undefined);
    });

    it('an all-zero vector on cosine is refused before anything is written', async function () {
      await store.createVersion('zero', 'v1', { dimensions: 3, metric: 'cosine' });
      await assert.rejects(store.upsert('zero', 'v1', [{ id: 'ok', values: [1, 0, 0] }, { id: 'z', values: [0, 0, 0] }]), /z: an all-zero vector/);
      assert.equal(await store.count('zero', 'v1'), 0);
    });

    it('retries 429 and 503 answers, then succeeds', async function () {
      await store.createVersion('retries', 'v1', { dimensions: 2, metric: 'dot' });
      server.failNext(2, 429);
      await store.upsert('retries', 'v1', [{ id: 'a', values: [1, 0] }]);
      server.failNext(2, 503);
      assert.equal(await store.count('retries', 'v1'), 1);
    });

    it('a wrong API key is terminal and names the setting to fix', async function () {
      const wrong = qdrantStore(server, { apiKey: 'wrong' });
      await assert.rejects(wrong.listVersions('anything'), (err: unknown) => {
        assert.ok(err instanceof VectorStoreRejectedError, String(err));
        assert.match(err.message, /FORGELINE_QDRANT_API_KEY/);
        return true;
      });
    });

    it('the endpoint refuses off-spec requests (float match, bad point id), so the checks can fail', async function () {
      const headers = { 'content-type': 'application/json', 'api-key': 'qdrant-local-wire-key' };
      await store.createVersion('offspec', 'v1', { dimensions: 2, metric: 'dot' });
      const floatMatch = await fetch(`${server.url}/collections/offspec__v1/points/count`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ filter: { must: [{ key: 'meta.k', match: { value: 1.5 } }] } }),
      });
      const badId = await fetch(`${server.url}/collections/offspec__v1/points?wait=true`, {
        method: 'PUT',
        headers,
        body: JSON.stringify({ points: [{ id: 'chunk-1', vector: [1, 2] }] }),
      });
      assert.deepEqual([floatMatch.status, badId.status], [400, 400]);
      assert.equal(server.violations.length, 2);
      server.violations.length = 0;
    });
  });
});
