import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { S3ArtifactStore } from '../../src/adapters/s3-artifact-store';
import type { ArtifactStore } from '../../src/ports/artifact-store';
import { ModelRegistry, parseVersionRef } from '../../src/registry/model-registry';
import { writeTree } from '../helpers/artifact-fixtures';
import { getS3Server } from '../helpers/s3-server';
import { registerTeardown } from '../setup';

function registrySuite(name: string, makeStore: () => Promise<ArtifactStore>) {
  describe(`ModelRegistry on ${name}`, function () {
    this.timeout(30_000);
    let store: ArtifactStore;
    let registry: ModelRegistry;
    let work: string;
    beforeEach(async () => {
      store = await makeStore();
      registry = new ModelRegistry(store);
      work = mkdtempSync(path.join(os.tmpdir(), 'forgeline-reg-'));
    });
    afterEach(() => rmSync(work, { recursive: true, force: true }));

    async function publish(prefix: string, files: Record<string, string>) {
      const dir = path.join(work, randomUUID());
      await writeTree(dir, files);
      return store.publishDirectory(dir, prefix);
    }

    it('registers a published artifact as an immutable, content-named version with lineage; twice is a no-op', async function () {
      const m = await publish('releases/r1/adapter/', { 'adapter_model.safetensors': 'weights-1', 'adapter_config.json': '{}' });
      const lineage = { datasetSha256: 'd'.repeat(64), recipe: 'trl-sft-lora', gitSha: 'abc1234', releaseWorkflowId: 'release/demo/abc1234', hyperparameters: { r: 8 } };
      const v = await registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'releases/r1/adapter/', lineage, createdAt: '2026-11-29T00:00:00Z' });
      assert.equal(v.version, m.digest.slice(0, 12));
      assert.equal(v.ref, `registry://demo/adapter@${v.version}`);
      assert.deepEqual(parseVersionRef(v.ref), { model: 'demo', kind: 'adapter', version: v.version });
      assert.deepEqual(v.lineage, lineage);
      const again = await registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'releases/r1/adapter/', lineage: {}, createdAt: '2026-12-01T00:00:00Z' });
      assert.deepEqual(again, v, 'idempotent: the first record stands');
      assert.deepEqual(await registry.resolve(v.ref), v);
      assert.deepEqual((await registry.listVersions('demo')).map((x) => x.ref), [v.ref]);
      assert.deepEqual(await registry.listModels(), ['demo']);
    });

    it('refuses to register a directory that is not published', async function () {
      await assert.rejects(registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'nothing/here/', lineage: {}, createdAt: 'x' }), /not a published directory/);
    });

    it('moves aliases with an append-only history, and promotion keeps the old production as previous', async function () {
      await publish('r1/', { a: '1' });
      await publish('r2/', { a: '2' });
      const v1 = await registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'r1/', lineage: {}, createdAt: '2026-11-29T00:00:01Z' });
      const v2 = await registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'r2/', lineage: {}, createdAt: '2026-11-29T00:00:02Z' });
      const move = (version: string, at: string, moveId: string) => ({ versions: { adapter: version }, by: 'ops@example.com', reason: 'gates passed', at, moveId });
      await registry.moveAlias('demo', 'production', move(v1.version, '2026-11-29T01:00:00Z', 'm1'));
      await registry.moveAlias('demo', 'production', move(v2.version, '2026-11-29T02:00:00Z', 'm2'));
      assert.deepEqual((await registry.getAlias('demo', 'production'))?.versions, { adapter: v2.version });
      const previous = await registry.getAlias('demo', 'previous');
      assert.deepEqual(previous?.versions, { adapter: v1.version });
      assert.match(previous!.reason, /replaced in production/);
      const history = await registry.aliasHistory('demo', 'production');
      assert.deepEqual(history.map((h) => h.versions.adapter), [v1.version, v2.version]);
      assert.ok(history.every((h) => h.by === 'ops@example.com'));
    });

    it('refuses an alias move to an unregistered version, or without who and why', async function () {
      await assert.rejects(registry.moveAlias('demo', 'candidate', { versions: { adapter: '0123456789ab' }, by: 'x', reason: 'y', at: 'now', moveId: '1' }), /is not registered/);
      await assert.rejects(registry.moveAlias('demo', 'candidate', { versions: {}, by: ' ', reason: 'y', at: 'now', moveId: '1' }), /needs `by` and `reason`/);
    });
  });
}

registrySuite('the local filesystem', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-regstore-'));
  registerTeardown(`temp dir ${dir}`, async () => rmSync(dir, { recursive: true, force: true }));
  return new LocalArtifactStore(pathToFileURL(dir).href);
});

registrySuite('S3 (s3rver, a real S3-compatible server started by the tests)', async () => {
  const server = await getS3Server();
  const bucket = await server.createBucket();
  return new S3ArtifactStore(`s3://${bucket}/forgeline`, { endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials });
});
