/**
 * The model registry on the local filesystem and on S3. Its writes are conditional (a version is
 * created only if absent, an alias moves by compare-and-swap), so on S3 it runs against moto's
 * server, which implements PutObject's If-None-Match and If-Match; s3rver ignores both, and a
 * race there would let both releases "win".
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { S3ArtifactStore } from '../../src/adapters/s3-artifact-store';
import { ErrorType } from '../../src/contracts/errors';
import type { ArtifactStore } from '../../src/ports/artifact-store';
import { RegistryConflictError } from '../../src/ports/errors';
import { type AliasMove, ModelRegistry, parseVersionRef, type VersionRecord } from '../../src/registry/model-registry';
import { writeTree } from '../helpers/artifact-fixtures';
import { startCasWorker, stopCasWorkers } from '../helpers/cas-workers';
import { getS3Server } from '../helpers/s3-server';
import { registerTeardown } from '../setup';

/** Asserts a RegistryConflictError whose message names each of `mentions`. */
function isConflict(...mentions: string[]) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof RegistryConflictError, `expected RegistryConflictError, got ${String(err)}`);
    assert.equal(err.type, ErrorType.RegistryConflict);
    assert.equal(err.terminal, true);
    for (const m of mentions) assert.ok(err.message.includes(m), `the message should name ${m}: ${err.message}`);
    return true;
  };
}

/**
 * Wraps a store so that its alias compare-and-swaps wait until `parties` clients have all read
 * and reached their write: the worst interleaving of racing releases, made certain.
 */
function barrierBeforeAliasWrites(parties: number): (store: ArtifactStore) => ArtifactStore {
  let waiting = 0;
  let release: () => void = () => undefined;
  const allThere = new Promise<void>((resolve) => (release = resolve));
  return (store) =>
    new Proxy(store, {
      get(target, property, receiver) {
        if (property === 'compareAndSwap') {
          return async (...args: Parameters<ArtifactStore['compareAndSwap']>) => {
            if (args[0].includes('/aliases/')) {
              if (++waiting === parties) release();
              await allThere;
            }
            return target.compareAndSwap(...args);
          };
        }
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
}

/** Wraps a store so that its first `failures` writes of alias history fail: a worker dying there. */
function failingHistoryWrites(store: ArtifactStore, failures: number): ArtifactStore {
  let left = failures;
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'putIfAbsent') {
        return async (...args: Parameters<ArtifactStore['putIfAbsent']>) => {
          if (args[0].includes('/alias-history/') && left-- > 0) throw new Error('injected failure: worker died after moving the alias');
          return target.putIfAbsent(...args);
        };
      }
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
}

function registrySuite(name: string, makeStore: () => Promise<{ store: ArtifactStore; another(): ArtifactStore }>) {
  describe(`ModelRegistry on ${name}`, function () {
    this.timeout(60_000);
    let store: ArtifactStore;
    /** A second client of the same store, as another worker (or another release) has. */
    let another: () => ArtifactStore;
    let registry: ModelRegistry;
    let work: string;
    beforeEach(async () => {
      ({ store, another } = await makeStore());
      registry = new ModelRegistry(store);
      work = mkdtempSync(path.join(os.tmpdir(), 'forgeline-reg-'));
    });
    afterEach(() => rmSync(work, { recursive: true, force: true }));

    async function publish(prefix: string, files: Record<string, string>) {
      const dir = path.join(work, randomUUID());
      await writeTree(dir, files);
      return store.publishDirectory(dir, prefix);
    }

    async function twoVersions(): Promise<[VersionRecord, VersionRecord]> {
      await publish('r1/', { a: '1' });
      await publish('r2/', { a: '2' });
      return [
        await registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'r1/', lineage: {}, createdAt: '2026-11-29T00:00:01Z' }),
        await registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'r2/', lineage: {}, createdAt: '2026-11-29T00:00:02Z' }),
      ];
    }

    function move(version: string, at: string, moveId: string, extra: Partial<AliasMove> = {}): AliasMove {
      return { versions: { adapter: version }, by: 'ops@example.com', reason: 'gates passed', at, moveId, ...extra };
    }

    describe('versions', function () {
      it('registers a published artifact as an immutable, content-named version with lineage; twice is a no-op', async function () {
        const m = await publish('releases/r1/adapter/', { 'adapter_model.safetensors': 'weights-1', 'adapter_config.json': '{}' });
        const lineage = { datasetSha256: 'd'.repeat(64), recipe: 'trl-sft-lora', gitSha: 'abc1234', releaseWorkflowId: 'release/demo/abc1234', hyperparameters: { r: 8 } };
        const v = await registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'releases/r1/adapter/', lineage, createdAt: '2026-11-29T00:00:00Z' });
        assert.equal(v.version, m.digest.slice(0, 12));
        assert.equal(v.ref, `registry://demo/adapter@${v.version}`);
        assert.deepEqual(parseVersionRef(v.ref), { model: 'demo', kind: 'adapter', version: v.version });
        assert.deepEqual(v.lineage, lineage);
        assert.equal(v.createdAt, '2026-11-29T00:00:00Z', 'the caller\'s (workflow) time, not the clock');
        const again = await registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'releases/r1/adapter/', lineage: {}, createdAt: '2026-12-01T00:00:00Z' });
        assert.deepEqual(again, v, 'idempotent: the first record stands');
        assert.deepEqual(await registry.resolve(v.ref), v);
        assert.deepEqual((await registry.listVersions('demo')).map((x) => x.ref), [v.ref]);
        assert.deepEqual(await registry.listModels(), ['demo']);
      });

      it('refuses to register a directory that is not published, or without an ISO createdAt', async function () {
        await assert.rejects(
          registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'nothing/here/', lineage: {}, createdAt: '2026-11-29T00:00:00Z' }),
          /not a published directory/,
        );
        await publish('r1/', { a: '1' });
        await assert.rejects(registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'r1/', lineage: {}, createdAt: 'yesterday' }), /createdAt "yesterday" is invalid.*ISO 8601/);
      });

      it('lets exactly one of 6 racing clients create a version record; all get that record back', async function () {
        await publish('same/', { 'weights.bin': 'identical bytes from every release' });
        const results = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            new ModelRegistry(another()).registerVersion({
              model: 'demo',
              kind: 'adapter',
              prefix: 'same/',
              lineage: { releaseWorkflowId: `release/demo/sha${i}` },
              createdAt: `2026-11-29T00:00:0${i}Z`,
            }),
          ),
        );
        const stored = await registry.getVersion('demo', 'adapter', results[0]!.version);
        for (const r of results) assert.deepEqual(r, stored, 'every client sees the one stored record');
        const winners = results.filter((r, i) => r.lineage.releaseWorkflowId === `release/demo/sha${i}`);
        assert.equal(winners.length, 1, 'exactly one lineage was written');
      });

      it('refuses a version id already registered for other content, naming the version and its holder', async function () {
        await publish('r1/', { a: '1' });
        const manifest = (await store.readManifest('r1/'))!;
        const version = manifest.digest.slice(0, 12);
        // Another artifact whose digest shares the 12-digit id (or a tampered record).
        const squatter = {
          schema: 'forgeline.registry.version/v1',
          model: 'demo',
          kind: 'adapter',
          version,
          ref: `registry://demo/adapter@${version}`,
          artifact: { prefix: 'other/', uri: 'file:///other', digest: `${version}${'0'.repeat(52)}` },
          lineage: { releaseWorkflowId: 'release/demo/other' },
          createdAt: '2026-11-01T00:00:00Z',
        };
        await store.putIfAbsent(`registry/demo/versions/adapter/${version}.json`, JSON.stringify(squatter));
        await assert.rejects(
          registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'r1/', lineage: {}, createdAt: '2026-11-29T00:00:00Z' }),
          isConflict('demo', `version adapter@${version}`, 'release/demo/other', manifest.digest),
        );
        assert.deepEqual(await registry.getVersion('demo', 'adapter', version), squatter, 'nothing was changed');
      });
    });

    describe('aliases', function () {
      it('moves aliases with an append-only history, and promotion keeps the old production as previous', async function () {
        const [v1, v2] = await twoVersions();
        await registry.moveAlias('demo', 'production', move(v1.version, '2026-11-29T01:00:00Z', 'm1'));
        await registry.moveAlias('demo', 'production', move(v2.version, '2026-11-29T02:00:00Z', 'm2'));
        const production = await registry.getAlias('demo', 'production');
        assert.deepEqual(production?.versions, { adapter: v2.version });
        assert.equal(production?.movedAt, '2026-11-29T02:00:00Z', 'the caller\'s (workflow) time, not the clock');
        assert.deepEqual(production?.replaced?.versions, { adapter: v1.version });
        const previous = await registry.getAlias('demo', 'previous');
        assert.deepEqual(previous?.versions, { adapter: v1.version });
        assert.match(previous!.reason, /replaced in production/);
        const history = await registry.aliasHistory('demo', 'production');
        assert.deepEqual(history.map((h) => h.versions.adapter), [v1.version, v2.version]);
        assert.ok(history.every((h) => h.by === 'ops@example.com'));
        assert.equal((await registry.aliasHistory('demo', 'previous')).length, 1);
      });

      it('refuses an alias move to an unregistered version, or without who, why and an ISO time', async function () {
        const ok = { versions: {}, by: 'x', reason: 'y', at: '2026-11-29T00:00:00Z', moveId: '1' };
        await assert.rejects(registry.moveAlias('demo', 'candidate', { ...ok, versions: { adapter: '0123456789ab' } }), /is not registered/);
        await assert.rejects(registry.moveAlias('demo', 'candidate', { ...ok, by: ' ' }), /invalid alias move: by: say who moves the alias/);
        await assert.rejects(registry.moveAlias('demo', 'candidate', { ...ok, reason: '' }), /reason: say why/);
        await assert.rejects(registry.moveAlias('demo', 'candidate', { ...ok, at: 'now' }), /invalid alias move: at:/);
        await assert.rejects(registry.moveAlias('demo', 'candidate', { ...ok, versions: { adapter: 'latest' } }), /versions\.adapter: expected a 12-hex-digit version id/);
        assert.equal(await registry.getAlias('demo', 'candidate'), undefined);
      });

      it('lets exactly one of two racing releases move an alias; the other gets a conflict naming the winner', async function () {
        const [v1, v2] = await twoVersions();
        await registry.moveAlias('demo', 'candidate', move(v1.version, '2026-11-29T01:00:00Z', 'start'));
        // Both releases read the alias before either writes: the race, made certain.
        const barrier = barrierBeforeAliasWrites(2);
        const outcomes = await Promise.allSettled([
          new ModelRegistry(barrier(another())).moveAlias('demo', 'candidate', move(v2.version, '2026-11-29T02:00:00Z', 'release-a', { releaseWorkflowId: 'release/demo/aaa', by: 'alice' })),
          new ModelRegistry(barrier(another())).moveAlias('demo', 'candidate', move(v1.version, '2026-11-29T02:00:00Z', 'release-b', { releaseWorkflowId: 'release/demo/bbb', by: 'bob' })),
        ]);
        const won = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
        const lost = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
        assert.equal(won.length, 1, 'exactly one release wins');
        assert.equal(lost.length, 1);
        const winner = won[0]!;
        assert.ok(isConflict('demo', 'alias candidate', winner.by, winner.releaseWorkflowId!, 'Nothing was changed')(lost[0]));
        assert.deepEqual((await registry.getAlias('demo', 'candidate'))?.moveId, winner.moveId);
        assert.deepEqual(
          (await registry.aliasHistory('demo', 'candidate')).map((h) => h.moveId),
          ['start', winner.moveId],
          'only moves that happened are in the history',
        );
      });

      it('with expectedVersions, exactly one of 5 racing promotions wins, and previous names what it replaced', async function () {
        const [v1, v2] = await twoVersions();
        await registry.moveAlias('demo', 'production', move(v1.version, '2026-11-29T01:00:00Z', 'first'));
        const outcomes = await Promise.allSettled(
          Array.from({ length: 5 }, (_, i) =>
            new ModelRegistry(another()).moveAlias(
              'demo',
              'production',
              move(v2.version, '2026-11-29T02:00:00Z', `promote-${i}`, { expectedVersions: { adapter: v1.version }, releaseWorkflowId: `release/demo/r${i}` }),
            ),
          ),
        );
        const won = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
        assert.equal(won.length, 1, 'exactly one promotion wins');
        for (const o of outcomes) if (o.status === 'rejected') assert.ok(isConflict('demo', 'alias production', won[0]!.releaseWorkflowId!)(o.reason));
        assert.deepEqual((await registry.getAlias('demo', 'previous'))?.versions, { adapter: v1.version });
        assert.deepEqual(
          (await registry.aliasHistory('demo', 'production')).map((h) => h.moveId),
          ['first', won[0]!.moveId],
        );
      });

      it('checks expectedVersions: null means "not yet moved", and a mismatch names who holds the alias', async function () {
        const [v1, v2] = await twoVersions();
        await registry.moveAlias('demo', 'candidate', move(v1.version, '2026-11-29T01:00:00Z', 'm1', { expectedVersions: null, releaseWorkflowId: 'release/demo/one' }));
        await assert.rejects(
          registry.moveAlias('demo', 'candidate', move(v2.version, '2026-11-29T02:00:00Z', 'm2', { expectedVersions: null })),
          isConflict('demo', 'alias candidate', 'expected it to not exist yet', `adapter@${v1.version}`, 'release/demo/one', 'ops@example.com'),
        );
        await assert.rejects(
          registry.moveAlias('demo', 'candidate', move(v2.version, '2026-11-29T02:00:00Z', 'm2', { expectedVersions: { adapter: v2.version } })),
          isConflict(`expected it to point at adapter@${v2.version}`, `it points at adapter@${v1.version}`),
        );
        const moved = await registry.moveAlias('demo', 'candidate', move(v2.version, '2026-11-29T02:00:00Z', 'm2', { expectedVersions: { adapter: v1.version } }));
        assert.deepEqual(moved.versions, { adapter: v2.version });
      });

      it('writes no second history entry when a move is retried with the same moveId', async function () {
        const [v1] = await twoVersions();
        const first = await registry.moveAlias('demo', 'candidate', move(v1.version, '2026-11-29T01:00:00.000Z', 'release/demo/abc-7'));
        // A retry of the activity: same moveId, even a later clock reading.
        const retried = await registry.moveAlias('demo', 'candidate', move(v1.version, '2026-11-29T01:00:05.000Z', 'release/demo/abc-7'));
        assert.deepEqual(retried, first);
        assert.equal((await registry.aliasHistory('demo', 'candidate')).length, 1);
      });

      it('refuses a move ID reused for a different move', async function () {
        const [v1, v2] = await twoVersions();
        await registry.moveAlias('demo', 'candidate', move(v1.version, '2026-11-29T01:00:00Z', 'release-demo-abc-12'));
        await assert.rejects(
          registry.moveAlias('demo', 'candidate', move(v2.version, '2026-11-29T03:00:00Z', 'release-demo-abc-12')),
          isConflict('demo', 'alias candidate', 'move ID release-demo-abc-12 was already used', `adapter@${v1.version}`),
        );
        assert.deepEqual((await registry.getAlias('demo', 'candidate'))?.versions, { adapter: v1.version });
      });

      it('completes a move whose worker died after moving the alias, on retry, with one history entry', async function () {
        const [v1, v2] = await twoVersions();
        await registry.moveAlias('demo', 'production', move(v1.version, '2026-11-29T01:00:00Z', 'm1'));
        const dying = new ModelRegistry(failingHistoryWrites(store, 1));
        await assert.rejects(dying.moveAlias('demo', 'production', move(v2.version, '2026-11-29T02:00:00Z', 'm2')), /injected failure/);
        assert.deepEqual((await registry.getAlias('demo', 'production'))?.versions, { adapter: v2.version }, 'the alias moved');
        assert.equal((await registry.aliasHistory('demo', 'production')).length, 1, 'its history entry is missing');

        await registry.moveAlias('demo', 'production', move(v2.version, '2026-11-29T02:00:00Z', 'm2'));
        assert.deepEqual((await registry.aliasHistory('demo', 'production')).map((h) => h.moveId), ['m1', 'm2']);
        assert.deepEqual((await registry.getAlias('demo', 'previous'))?.versions, { adapter: v1.version });
        assert.equal((await registry.aliasHistory('demo', 'previous')).length, 1);
      });

      it('does not re-apply a retried move that a later move has already replaced', async function () {
        const [v1, v2] = await twoVersions();
        const m1 = await registry.moveAlias('demo', 'candidate', move(v1.version, '2026-11-29T01:00:00Z', 'm1'));
        await registry.moveAlias('demo', 'candidate', move(v2.version, '2026-11-29T02:00:00Z', 'm2'));
        const retried = await registry.moveAlias('demo', 'candidate', move(v1.version, '2026-11-29T01:00:00Z', 'm1'));
        assert.deepEqual(retried, m1);
        assert.deepEqual((await registry.getAlias('demo', 'candidate'))?.versions, { adapter: v2.version });
        assert.deepEqual((await registry.aliasHistory('demo', 'candidate')).map((h) => h.moveId), ['m1', 'm2']);
      });
    });
  });
}

registrySuite('the local filesystem', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-regstore-'));
  registerTeardown(`temp dir ${dir}`, async () => rmSync(dir, { recursive: true, force: true }));
  const uri = pathToFileURL(dir).href;
  return { store: new LocalArtifactStore(uri), another: () => new LocalArtifactStore(uri) };
});

registrySuite('S3 (moto server: implements the conditional writes the registry needs; s3rver ignores them)', async () => {
  const server = await getS3Server('moto');
  const bucket = await server.createBucket();
  const make = () =>
    new S3ArtifactStore(`s3://${bucket}/forgeline`, { endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials });
  return { store: make(), another: make };
});

describe('ModelRegistry on the local filesystem, releases in separate processes', function () {
  this.timeout(120_000);
  let dir: string;
  afterEach(() => {
    stopCasWorkers();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets exactly one of three worker processes promote over the same production; the others get RegistryConflict', async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-regproc-'));
    const uri = pathToFileURL(dir).href;
    const registry = new ModelRegistry(new LocalArtifactStore(uri));
    const versions: string[] = [];
    for (const n of [0, 1, 2, 3]) {
      const source = path.join(dir, '..', `${path.basename(dir)}-src-${n}`);
      await writeTree(source, { 'weights.bin': `weights ${n}` });
      await new LocalArtifactStore(uri).publishDirectory(source, `r${n}/`);
      rmSync(source, { recursive: true, force: true });
      versions.push((await registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: `r${n}/`, lineage: {}, createdAt: '2026-11-29T00:00:00Z' })).version);
    }
    await registry.moveAlias('demo', 'production', { versions: { adapter: versions[0]! }, by: 'ops', reason: 'first', at: '2026-11-29T01:00:00Z', moveId: 'first' });

    const workers = await Promise.all(
      [1, 2, 3].map((n) =>
        startCasWorker([
          'promote',
          uri,
          JSON.stringify({
            versions: { adapter: versions[n] },
            expectedVersions: { adapter: versions[0] },
            releaseWorkflowId: `release/demo/sha${n}`,
            by: `worker-${n}`,
            reason: 'gates passed',
            at: '2026-11-29T02:00:00Z',
            moveId: `promote-${n}`,
          }),
        ]),
      ),
    );
    for (const w of workers) w.go();
    const outcomes = await Promise.all(workers.map(async (w) => JSON.parse(await w.line(/"won"/)) as { won: boolean; type?: string; message?: string }));

    assert.equal(outcomes.filter((o) => o.won).length, 1, 'exactly one release wins');
    const production = await registry.getAlias('demo', 'production');
    for (const lost of outcomes.filter((o) => !o.won)) {
      assert.equal(lost.type, ErrorType.RegistryConflict);
      assert.match(lost.message!, new RegExp(`demo alias production.*${production!.releaseWorkflowId!}`));
    }
    assert.deepEqual((await registry.getAlias('demo', 'previous'))?.versions, { adapter: versions[0] });
    assert.deepEqual((await registry.aliasHistory('demo', 'production')).map((h) => h.moveId), ['first', production!.moveId]);
  });
});
