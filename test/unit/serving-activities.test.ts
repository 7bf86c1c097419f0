import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { ActivityDeps } from '../../activities/deps';
import { createServingActivities } from '../../activities/release/serving';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { ErrorType } from '../../src/contracts/errors';
import type { PromptRouteTargets, RouteTargets, RoutingTable, VersionMetrics } from '../../src/contracts/routing';
import type { LoadAdapterRequest, ServingBackend } from '../../src/ports/serving-backend';
import type { LaunchedModel, LaunchRequest, ModelLauncher } from '../../src/ports/model-launcher';
import type { TrafficRouter } from '../../src/ports/traffic-router';
import { ModelRegistry } from '../../src/registry/model-registry';

/** An in-memory backend that remembers what it loaded, and refuses a directory that is not there. */
class FakeBackend implements ServingBackend {
  readonly label = 'fake-vllm';
  readonly loaded = new Map<string, string>();
  readonly calls: string[] = [];
  async health() {
    return [{ url: 'http://fake', ok: true }];
  }
  async listModels() {
    return [...this.loaded.keys()].map((id) => ({ id }));
  }
  async loadAdapter(req: LoadAdapterRequest) {
    this.calls.push(`load ${req.name}`);
    assert.ok(existsSync(path.join(req.path, 'adapter_model.safetensors')), `adapter files at ${req.path}`);
    this.loaded.set(req.name, req.path);
  }
  async unloadAdapter(name: string) {
    this.calls.push(`unload ${name}`);
    this.loaded.delete(name);
  }
}

/** A routing table with compare-and-swap, as the gateway keeps it; `interfere` changes it under a writer once. */
class FakeRouter implements TrafficRouter {
  table: RoutingTable = { version: 1, updatedAt: '', updatedBy: 'test', upstreams: { vllm: { urls: ['http://fake'] } }, routes: {}, prompts: {} };
  writes = 0;
  interfere = false;
  metricsAnswer: VersionMetrics[] = [];
  async getTable() {
    return structuredClone(this.table);
  }
  async setRoute(alias: string, targets: RouteTargets, opts: { expectedVersion?: number } = {}) {
    if (this.interfere) {
      this.interfere = false;
      this.table = { ...this.table, version: this.table.version + 1 };
    }
    if (opts.expectedVersion !== undefined && opts.expectedVersion !== this.table.version) throw new Error(`409: routing table is at version ${this.table.version}, not ${opts.expectedVersion}`);
    this.writes++;
    this.table = { ...this.table, version: this.table.version + 1, routes: { ...this.table.routes, [alias]: { targets } } };
    return structuredClone(this.table);
  }
  async setUpstream(name: string, urls: string[], opts: { expectedVersion?: number } = {}) {
    if (opts.expectedVersion !== undefined && opts.expectedVersion !== this.table.version) throw new Error(`409: routing table is at version ${this.table.version}, not ${opts.expectedVersion}`);
    this.writes++;
    this.table = { ...this.table, version: this.table.version + 1, upstreams: { ...this.table.upstreams, [name]: { urls } } };
    return structuredClone(this.table);
  }
  async deleteUpstream(name: string) {
    if (!this.table.upstreams[name]) return structuredClone(this.table);
    const upstreams = { ...this.table.upstreams };
    delete upstreams[name];
    this.writes++;
    this.table = { ...this.table, version: this.table.version + 1, upstreams };
    return structuredClone(this.table);
  }
  async metrics() {
    return this.metricsAnswer;
  }
  async traffic() {
    return [];
  }
  async setPromptRoute(name: string, targets: PromptRouteTargets, opts: { expectedVersion?: number } = {}) {
    if (opts.expectedVersion !== undefined && opts.expectedVersion !== this.table.version) throw new Error(`409: routing table is at version ${this.table.version}, not ${opts.expectedVersion}`);
    this.writes++;
    this.table = { ...this.table, version: this.table.version + 1, prompts: { ...this.table.prompts, [name]: { targets } } };
    return structuredClone(this.table);
  }
  async deletePromptRoute(name: string) {
    if (!this.table.prompts[name]) return structuredClone(this.table);
    const prompts = { ...this.table.prompts };
    delete prompts[name];
    this.writes++;
    this.table = { ...this.table, version: this.table.version + 1, prompts };
    return structuredClone(this.table);
  }
  async promptMetrics() {
    return this.metricsAnswer;
  }
  async promptTraffic() {
    return [];
  }
}

describe('serving activities (MockActivityEnvironment, fake backend and router, real registry on a local store)', function () {
  let dir: string;
  let backend: FakeBackend;
  let router: FakeRouter;
  let registry: ModelRegistry;
  let store: LocalArtifactStore;
  let adapterVersion: string;
  let acts: ReturnType<typeof createServingActivities>;
  const run = <A extends unknown[], R>(fn: (...a: A) => Promise<R>, ...a: A): Promise<R> => new MockActivityEnvironment().run(fn, ...a) as Promise<R>;
  const at = '2026-12-02T12:00:00.000Z';

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-serving-'));
    store = new LocalArtifactStore(pathToFileURL(path.join(dir, 'artifacts')).href);
    registry = new ModelRegistry(store);
    const src = path.join(dir, 'adapter-src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'adapter_model.safetensors'), 'weights v1');
    writeFileSync(path.join(src, 'adapter_config.json'), '{"r": 8}');
    await store.publishDirectory(src, 'releases/demo/adapter/');
    const v = await registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'releases/demo/adapter/', lineage: { baseModel: { ref: 'path:/m' }, datasetSha256: 'a'.repeat(64), recipe: 'trl-sft-lora', hyperparameters: {} } as never, createdAt: at });
    adapterVersion = v.version;
    backend = new FakeBackend();
    router = new FakeRouter();
    const deps = { artifacts: store, registry, serving: backend, router, servingDir: path.join(dir, 'serving'), workDir: path.join(dir, 'work') } as unknown as ActivityDeps;
    acts = createServingActivities(deps);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('deployVersion unpacks the registered adapter and loads it under <model>-<version>; a retry loads the same files again', async function () {
    const served = await run(acts.deployVersion, { model: 'demo', adapterVersion, baseModel: 'tiny', upstream: 'vllm' });
    assert.deepEqual(served, { label: `demo@${adapterVersion}`, servedModel: `demo-${adapterVersion}`, upstream: 'vllm', adapter: { model: 'demo', version: adapterVersion } });
    const files = backend.loaded.get(served.servedModel)!;
    assert.equal(readFileSync(path.join(files, 'adapter_model.safetensors'), 'utf8'), 'weights v1');
    await run(acts.deployVersion, { model: 'demo', adapterVersion, baseModel: 'tiny', upstream: 'vllm' });
    assert.deepEqual(backend.calls, [`load demo-${adapterVersion}`, `load demo-${adapterVersion}`]);
  });

  it('unloadVersion unloads, then deletes the unpacked files (never before: vLLM needs them while loaded)', async function () {
    const served = await run(acts.deployVersion, { model: 'demo', adapterVersion, baseModel: 'tiny', upstream: 'vllm' });
    const files = backend.loaded.get(served.servedModel)!;
    await run(acts.unloadVersion, { servedModel: served.servedModel });
    assert.equal(backend.loaded.size, 0);
    assert.equal(existsSync(files), false);
    await run(acts.unloadVersion, { servedModel: served.servedModel }); // idempotent
  });

  it('setTrafficWeights writes once; the same weights again write nothing (a retry after a crash is a no-op)', async function () {
    const targets: RouteTargets = [{ version: 'demo@base', upstream: 'vllm', model: 'tiny', weight: 100 }];
    await run(acts.setTrafficWeights, { alias: 'demo', targets, by: 'test', reason: 'r' });
    await run(acts.setTrafficWeights, { alias: 'demo', targets, by: 'test', reason: 'r' });
    assert.equal(router.writes, 1);
    assert.deepEqual(router.table.routes.demo?.targets, targets);
  });

  it('setTrafficWeights fails the attempt when the table changed under it (compare-and-swap), and the retry succeeds', async function () {
    router.interfere = true;
    const targets: RouteTargets = [{ version: 'demo@base', upstream: 'vllm', model: 'tiny', weight: 100 }];
    await assert.rejects(run(acts.setTrafficWeights, { alias: 'demo', targets, by: 'test', reason: 'r' }), /409/);
    await run(acts.setTrafficWeights, { alias: 'demo', targets, by: 'test', reason: 'r' });
    assert.deepEqual(router.table.routes.demo?.targets, targets);
  });

  it('fetchCanaryMetrics answers both versions in order, empty for a version without traffic, at most maxSamples samples each', async function () {
    router.metricsAnswer = [{ version: 'demo@new', requests: 5000, errors: 1, latencyMs: Array.from({ length: 5000 }, (_, i) => i), feedback: [1, 0], promptTokens: 1, completionTokens: 2 }];
    const [stable, candidate] = await run(acts.fetchCanaryMetrics, { alias: 'demo', versions: ['demo@base', 'demo@new'], from: 0, to: 1, maxSamples: 100 });
    assert.equal(stable!.requests, 0);
    assert.equal(candidate!.requests, 5000);
    assert.equal(candidate!.latencyMs.length, 100);
    assert.equal(candidate!.latencyMs[99], 4950, 'evenly spaced over the window');
  });

  it('promoteProduction moves production; restoreProduction moves it back only while it still points at this release', async function () {
    const versions = { adapter: adapterVersion };
    // an earlier production to return to
    await registry.moveAlias('demo', 'production', { versions, releaseWorkflowId: 'release/demo/old', by: 'x', reason: 'first', at, moveId: 'old-1' });
    const src2 = path.join(dir, 'v2');
    mkdirSync(src2);
    writeFileSync(path.join(src2, 'adapter_model.safetensors'), 'weights v2');
    await store.publishDirectory(src2, 'releases/demo2/adapter/');
    const v2 = await registry.registerVersion({ model: 'demo', kind: 'adapter', prefix: 'releases/demo2/adapter/', lineage: { baseModel: { ref: 'path:/m' }, datasetSha256: 'b'.repeat(64), recipe: 'trl-sft-lora', hyperparameters: {} } as never, createdAt: at });
    const mine = { releaseId: 'release/demo/new', model: 'demo', versions: { adapter: v2.version }, by: 'ops', reason: 'canary passed', at };
    const promoted = await run(acts.promoteProduction, mine);
    assert.deepEqual(promoted.replaced, versions);
    assert.equal((await registry.getAlias('demo', 'production'))?.versions.adapter, v2.version);
    assert.equal((await registry.getAlias('demo', 'previous'))?.versions.adapter, adapterVersion);
    assert.deepEqual(await run(acts.restoreProduction, mine), { restored: true });
    assert.equal((await registry.getAlias('demo', 'production'))?.versions.adapter, adapterVersion);
    assert.deepEqual(await run(acts.restoreProduction, mine), { restored: false }, 'a second rollback changes nothing');
  });

  it('refuses, without retrying, when the worker has no serving backend or router, naming what to configure', async function () {
    const none = createServingActivities({ artifacts: store, registry, workDir: dir } as unknown as ActivityDeps);
    const err = await run(none.readRoute, { alias: 'demo' }).catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure);
    assert.equal(err.type, ErrorType.ServingNotConfigured);
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /FORGELINE_GATEWAY_URL/);
    const err2 = await run(none.deployVersion, { model: 'demo', adapterVersion, baseModel: 'tiny', upstream: 'vllm' }).catch((e: unknown) => e);
    assert.match(String((err2 as Error).message), /FORGELINE_VLLM_URLS/);
  });
});

/** A launcher that remembers what runs (one URL per id), and refuses a model directory that is not there. */
class FakeLauncher implements ModelLauncher {
  readonly label = 'fake-launcher';
  readonly running = new Map<string, LaunchedModel>();
  readonly calls: string[] = [];
  async launch(req: LaunchRequest): Promise<LaunchedModel> {
    this.calls.push(`launch ${req.id}`);
    assert.ok(existsSync(path.join(req.modelDir, 'config.json')), `model files at ${req.modelDir}`);
    req.onProgress?.('starting');
    const known = this.running.get(req.id);
    if (known) return { ...known, adopted: true };
    const m = { id: req.id, url: `http://127.0.0.1:${9000 + this.running.size}`, servedModelName: req.servedModelName, modelDir: req.modelDir, startedAt: at0, adopted: false, where: 'pid 1 on test' };
    this.running.set(req.id, m);
    return m;
  }
  async stop(id: string) {
    this.calls.push(`stop ${id}`);
    this.running.delete(id);
  }
  async list() {
    return [...this.running.values()];
  }
}
const at0 = '2026-12-02T12:00:00.000Z';

describe('serving activities for quantized candidates (MockActivityEnvironment, fake launcher and router, real registry)', function () {
  let dir: string;
  let router: FakeRouter;
  let launcher: FakeLauncher;
  let version: string;
  let acts: ReturnType<typeof createServingActivities>;
  const name = () => `demo-${version}-quantized`;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-serving-q-'));
    const store = new LocalArtifactStore(pathToFileURL(path.join(dir, 'artifacts')).href);
    const registry = new ModelRegistry(store);
    const src = path.join(dir, 'quantized-src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'config.json'), '{"quantization_config": {"quant_method": "compressed-tensors"}}');
    writeFileSync(path.join(src, 'model.safetensors'), 'int4 weights');
    await store.publishDirectory(src, 'releases/demo/quantized/');
    version = (await registry.registerVersion({ model: 'demo', kind: 'quantized', prefix: 'releases/demo/quantized/', lineage: { baseModel: { ref: 'path:/m' }, datasetSha256: 'a'.repeat(64), recipe: 'trl-sft-lora', hyperparameters: {} } as never, createdAt: at0 })).version;
    router = new FakeRouter();
    launcher = new FakeLauncher();
    acts = createServingActivities({ artifacts: store, registry, router, launcher, servingDir: path.join(dir, 'serving'), workDir: path.join(dir, 'work') } as unknown as ActivityDeps);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('launchQuantizedVersion unpacks the version, launches it under <model>-<version>-quantized and registers that upstream; a retry writes nothing', async function () {
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const served = (await env.run(acts.launchQuantizedVersion, { model: 'demo', quantizedVersion: version, by: 'release r' })) as Awaited<ReturnType<typeof acts.launchQuantizedVersion>>;
    assert.deepEqual(served, { label: `demo@${version}-quantized`, servedModel: name(), upstream: name(), quantized: { model: 'demo', version } });
    assert.equal(readFileSync(path.join(dir, 'serving', name(), 'model.safetensors'), 'utf8'), 'int4 weights');
    assert.deepEqual(router.table.upstreams[name()], { urls: ['http://127.0.0.1:9000'] });
    assert.ok(beats.length >= 2, 'heartbeats while unpacking and starting');
    const writes = router.writes;
    await new MockActivityEnvironment().run(acts.launchQuantizedVersion, { model: 'demo', quantizedVersion: version, by: 'release r' });
    assert.equal(router.writes, writes, 'the upstream already points at the server');
    assert.deepEqual(launcher.calls, [`launch ${name()}`, `launch ${name()}`]);
  });

  it('stopQuantizedVersion refuses while a route sends the server traffic; then removes the upstream, stops the server and deletes the files; again: nothing to do', async function () {
    const run = <A extends unknown[], R>(fn: (...a: A) => Promise<R>, ...a: A): Promise<R> => new MockActivityEnvironment().run(fn, ...a) as Promise<R>;
    await run(acts.launchQuantizedVersion, { model: 'demo', quantizedVersion: version, by: 'release r' });
    const routed: RouteTargets = [{ version: `demo@${version}-quantized`, upstream: name(), model: name(), weight: 100 }];
    await router.setRoute('demo', routed);
    const err = await run(acts.stopQuantizedVersion, { servedModel: name(), by: 'ops', reason: 'r' }).catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure);
    assert.equal(err.type, ErrorType.ServingRejected);
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /route\(s\) demo still send it traffic/);
    assert.ok(launcher.running.has(name()));

    await router.setRoute('demo', [{ version: 'demo@base', upstream: 'vllm', model: 'tiny', weight: 100 }]);
    await run(acts.stopQuantizedVersion, { servedModel: name(), by: 'ops', reason: 'rolled back' });
    assert.equal(router.table.upstreams[name()], undefined);
    assert.equal(launcher.running.size, 0);
    assert.equal(existsSync(path.join(dir, 'serving', name())), false);
    await run(acts.stopQuantizedVersion, { servedModel: name(), by: 'ops', reason: 'again' });
  });

  it('without a launcher: ServingNotConfigured, not retried, naming what to configure', async function () {
    const none = createServingActivities({ router, servingDir: dir, workDir: dir } as unknown as ActivityDeps);
    const err = await new MockActivityEnvironment().run(none.launchQuantizedVersion, { model: 'demo', quantizedVersion: version, by: 'r' }).catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure);
    assert.equal(err.type, ErrorType.ServingNotConfigured);
    assert.match(err.message, /model launcher/);
  });
});
