/**
 * The Weaviate adapter against a local endpoint that checks Weaviate's wire format (REST and
 * gRPC, with the client's own protobuf codecs; test/helpers/weaviate-wire-server.ts), not against
 * Weaviate: no Weaviate server can run here (no Docker; the embedded binary comes from GitHub).
 * The conformance suite runs in full; the tests after it pin what is specific to Weaviate.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createVectorStore, type VectorStoreConfig } from '../../src/adapters/vector-store';
import { loadConfig, redactConfig } from '../../src/config/load';
import { ConfigError } from '../../src/ports/errors';
import { ErrorType } from '../../src/contracts/errors';
import { VectorStoreRejectedError } from '../../src/ports/vector-store';
import { WeaviateVectorStore, weaviateAliasName, weaviateClassName, weaviateObjectId } from '../../src/adapters/weaviate-store';
import { startWeaviateWireServer, type WeaviateWireServer } from '../helpers/weaviate-wire-server';
import { describeVectorStoreConformance } from './vector-store.conformance';

const API_KEY = 'wire-test-key';

describe('Weaviate adapter against a local Weaviate wire-format endpoint (REST + gRPC), not a Weaviate server', function () {
  describeVectorStoreConformance('weaviate (local wire-format endpoint, not Weaviate)', async () => {
    const server = await startWeaviateWireServer({ apiKey: API_KEY });
    const store = await WeaviateVectorStore.open({ url: server.url, grpcUrl: server.grpcUrl, apiKey: API_KEY, batchSize: 400 });
    return {
      store,
      cleanup: async () => {
        await server.stop();
        // Every request the suite made was on-spec (an off-spec one also failed its test).
        assert.deepEqual(server.violations, []);
      },
    };
  });

  describe('Weaviate specifics', function () {
    let server: WeaviateWireServer;
    let store: WeaviateVectorStore;

    before(async function () {
      server = await startWeaviateWireServer();
      store = await WeaviateVectorStore.open({ url: server.url, grpcUrl: server.grpcUrl });
    });

    after(async function () {
      await store?.close();
      await server?.stop();
    });

    it('writes, searches, deletes and counts over gRPC; schema and aliases over REST; nothing off-spec', async function () {
      const before = new Map(server.calls);
      const used = (key: string): number => (server.calls.get(key) ?? 0) - (before.get(key) ?? 0);
      await store.createVersion('proto', 'v1', { dimensions: 3, metric: 'cosine' });
      await store.upsert('proto', 'v1', [
        { id: 'a', values: [1, 0, 0], metadata: { tag: 'x' } },
        { id: 'b', values: [0, 1, 0], metadata: { tag: 'y' } },
      ]);
      await store.swapAlias('proto', 'live', 'v1', null);
      assert.equal((await store.query('proto', { alias: 'live' }, [1, 0.1, 0], { topK: 1, filter: { tag: { $in: ['x', 'z'] } } }))[0]?.id, 'a');
      assert.deepEqual((await store.fetch('proto', 'v1', ['b']))[0]?.metadata, { tag: 'y' });
      await store.delete('proto', 'v1', ['a']);
      assert.equal(await store.count('proto', 'v1'), 1);
      for (const key of ['grpc BatchObjects', 'grpc Search', 'grpc BatchDelete', 'grpc Aggregate', 'POST /v1/schema', 'POST /v1/schema/{class}/properties', 'POST /v1/aliases', 'GET /v1/aliases/{alias}']) {
        assert.ok(used(key) > 0, `${key} carried part of it: ${JSON.stringify([...server.calls])}`);
      }
      assert.deepEqual(server.violations, []);
    });

    it('maps versions and aliases to valid, distinct Weaviate names and ids to UUIDv5', async function () {
      assert.equal(weaviateClassName('docs', 'v20261202t2200'), 'Fl_docs_V_v20261202t2200');
      assert.equal(weaviateAliasName('docs', 'live'), 'Fl_docs_A_live');
      assert.notEqual(weaviateClassName('docs', 'a_v1'), weaviateClassName('docs_a', 'v1'));
      assert.match(weaviateObjectId('chunk:1'), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(weaviateObjectId('chunk:1'), weaviateObjectId('chunk:1'));

      await store.createVersion('docs', 'v1', { dimensions: 4, metric: 'euclidean' });
      await store.upsert('docs', 'v1', [{ id: 'c1', values: [1, 0, 0, 0], metadata: { lang: 'en us', page: 3, draft: false } }]);
      await store.swapAlias('docs', 'live', 'v1', null);
      const cls = server.classes().find((c) => c.class === 'Fl_docs_V_v1');
      assert.ok(cls, 'one class per version');
      assert.deepEqual(cls.vectorConfig?.default?.vectorizer, { none: {} });
      assert.equal(cls.vectorConfig?.default?.vectorIndexConfig.distance, 'l2-squared');
      const props = Object.fromEntries(cls.properties.map((p) => [p.name, `${p.dataType[0]}/${p.tokenization ?? '-'}`]));
      assert.deepEqual(props, { fl_id: 'text/field', m_lang: 'text/field', m_page: 'number/-', m_draft: 'boolean/-' });
      // euclidean: Weaviate's l2-squared distance 4+0+0+0 → score −2
      const [m] = await store.query('docs', { alias: 'live' }, [3, 0, 0, 0], { topK: 1 });
      assert.equal(m?.score, -2);
      // field tokenization: equality is on the whole value, not a word of it
      assert.equal((await store.query('docs', { version: 'v1' }, [1, 0, 0, 0], { topK: 1, filter: { lang: 'en' } })).length, 0);
      assert.equal((await store.query('docs', { version: 'v1' }, [1, 0, 0, 0], { topK: 1, filter: { lang: 'en us' } })).length, 1);
    });

    it('a metadata key whose type changes is refused before anything is written', async function () {
      await store.createVersion('typed', 'v1', { dimensions: 2, metric: 'cosine' });
      await store.upsert('typed', 'v1', [{ id: 'a', values: [1, 0], metadata: { page: 1 } }]);
      await assert.rejects(store.upsert('typed', 'v1', [{ id: 'b', values: [0, 1], metadata: { page: 'two' } }]), (err: unknown) => {
        assert.ok(err instanceof VectorStoreRejectedError);
        assert.equal(err.type, ErrorType.VectorStoreRejected);
        assert.match(err.message, /page[\s\S]*number[\s\S]*text/);
        return true;
      });
      assert.equal(await store.count('typed', 'v1'), 1);
    });

    it('a generation survives a store restart (kept in the bookkeeping collection, the alias itself is native)', async function () {
      for (const v of ['v1', 'v2']) await store.createVersion('gen', v, { dimensions: 2, metric: 'dot' });
      await store.swapAlias('gen', 'live', 'v1', null);
      const moved = await store.swapAlias('gen', 'live', 'v2', 'v1');
      const other = await WeaviateVectorStore.open({ url: server.url, grpcUrl: server.grpcUrl });
      try {
        assert.deepEqual(await other.getAlias('gen', 'live'), moved);
      } finally {
        await other.close();
      }
    });

    it('concurrent swaps through two store objects of one process: exactly one wins (the lock is per Weaviate and alias)', async function () {
      const second = await WeaviateVectorStore.open({ url: server.url, grpcUrl: server.grpcUrl });
      try {
        for (const v of ['v0', 'v1', 'v2']) await store.createVersion('twin', v, { dimensions: 2, metric: 'cosine' });
        await store.swapAlias('twin', 'live', 'v0', null);
        const results = await Promise.allSettled([store.swapAlias('twin', 'live', 'v1', 'v0'), second.swapAlias('twin', 'live', 'v2', 'v0')]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, results.map((r) => r.status).join(', '));
        const won = results.find((r) => r.status === 'fulfilled')!.value;
        assert.deepEqual(await second.getAlias('twin', 'live'), won);
        assert.equal(won.generation, 2);
      } finally {
        await second.close();
      }
    });

    it('an interrupted move reads back as the state before it (intent record written first, the native alias decides)', async function () {
      const impatient = await WeaviateVectorStore.open({ url: server.url, grpcUrl: server.grpcUrl, retry: { attempts: 2, baseDelayMs: 1 } });
      try {
        for (const v of ['v1', 'v2']) await impatient.createVersion('crash', v, { dimensions: 2, metric: 'dot' });
        const first = await impatient.swapAlias('crash', 'live', 'v1', null);
        server.failNext('PUT /v1/aliases/{alias}', 2); // the move never lands; the intent record did
        await assert.rejects(impatient.swapAlias('crash', 'live', 'v2', 'v1'), /still failing after 2 attempts[\s\S]*500/);
        assert.deepEqual(await impatient.getAlias('crash', 'live'), first, 'the alias did not move, nor did its generation');
        const moved = await impatient.swapAlias('crash', 'live', 'v2', 'v1');
        assert.equal(moved.generation, first.generation + 1);
        assert.deepEqual(await impatient.getAlias('crash', 'live'), moved);
      } finally {
        await impatient.close();
      }
    });

    it('transient failures (REST 5xx, gRPC UNAVAILABLE) are retried; the write lands once', async function () {
      const patient = await WeaviateVectorStore.open({ url: server.url, grpcUrl: server.grpcUrl, retry: { attempts: 4, baseDelayMs: 1 } });
      try {
        await patient.createVersion('flaky', 'v1', { dimensions: 2, metric: 'cosine' });
        server.failNext('POST /v1/schema/{class}/properties', 1);
        server.failNext('grpc BatchObjects', 2);
        await patient.upsert('flaky', 'v1', [{ id: 'a', values: [1, 0], metadata: { k: 'x' } }, { id: 'b', values: [0, 1] }]);
        server.failNext('grpc Search', 1);
        assert.deepEqual((await patient.query('flaky', { version: 'v1' }, [1, 0], { topK: 2, filter: { k: 'x' } })).map((m) => m.id), ['a']);
        assert.equal(await patient.count('flaky', 'v1'), 2);
      } finally {
        await patient.close();
      }
    });

    it('refuses a Weaviate without aliases (< 1.32), a wrong API key and a URL without a scheme, clearly', async function () {
      const old = await startWeaviateWireServer({ version: '1.31.5' });
      try {
        await assert.rejects(WeaviateVectorStore.open({ url: old.url, grpcUrl: old.grpcUrl }), (err: unknown) => {
          assert.ok(err instanceof VectorStoreRejectedError);
          assert.match(err.message, /1\.31\.5[\s\S]*1\.32/);
          return true;
        });
      } finally {
        await old.stop();
      }
      const secured = await startWeaviateWireServer({ apiKey: 'right' });
      try {
        await assert.rejects(WeaviateVectorStore.open({ url: secured.url, grpcUrl: secured.grpcUrl, apiKey: 'wrong' }), /401|anonymous|auth/i);
      } finally {
        await secured.stop();
      }
      await assert.rejects(WeaviateVectorStore.open({ url: 'localhost:8080' }), (err: unknown) => err instanceof VectorStoreRejectedError && /url/.test(err.message));
    });
  });

  describe('configuration and the factory', function () {
    let cwd: string;
    before(function () {
      cwd = mkdtempSync(path.join(os.tmpdir(), 'forgeline-weaviate-config-'));
    });
    after(function () {
      rmSync(cwd, { recursive: true, force: true });
    });

    it('FORGELINE_WEAVIATE_* land in vectors.weaviate; the API key is redacted; a bad URL names its variable', function () {
      const cfg = loadConfig({
        cwd,
        env: { FORGELINE_VECTOR_STORE: 'weaviate', FORGELINE_WEAVIATE_URL: 'https://w.example:8443', FORGELINE_WEAVIATE_GRPC_URL: 'https://w.example:50051', FORGELINE_WEAVIATE_API_KEY: 'sekrit' },
      });
      assert.equal(cfg.vectors.store, 'weaviate');
      assert.deepEqual(cfg.vectors.weaviate, { url: 'https://w.example:8443', grpcUrl: 'https://w.example:50051', apiKey: 'sekrit' });
      assert.equal(redactConfig(cfg).vectors.weaviate?.apiKey, '<redacted>');
      assert.throws(
        () => loadConfig({ cwd, env: { FORGELINE_VECTOR_STORE: 'weaviate', FORGELINE_WEAVIATE_URL: 'localhost 8080' } }),
        (err: unknown) => err instanceof ConfigError && /FORGELINE_WEAVIATE_URL/.test(err.message),
      );
    });

    it('createVectorStore opens the Weaviate adapter from the config, and refuses without a URL', async function () {
      const server = await startWeaviateWireServer({ apiKey: 'k' });
      try {
        const config = { store: 'weaviate', dir: cwd, weaviate: { url: server.url, grpcUrl: server.grpcUrl, apiKey: 'k' } } as VectorStoreConfig;
        const store = await createVectorStore(config);
        try {
          assert.equal(store.label, `weaviate:${server.url}`);
          await store.createVersion('factory', 'v1', { dimensions: 2, metric: 'cosine' });
          assert.deepEqual(await store.listVersions('factory'), [{ version: 'v1', dimensions: 2, metric: 'cosine' }]);
        } finally {
          await store.close();
        }
      } finally {
        await server.stop();
      }
      await assert.rejects(createVectorStore({ store: 'weaviate', dir: cwd } as VectorStoreConfig), (err: unknown) => err instanceof ConfigError && /FORGELINE_WEAVIATE_URL/.test(err.message));
    });
  });
});
