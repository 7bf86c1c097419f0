/**
 * A quantized candidate served as its own model, for real: our quantize recipe makes a W4A16
 * (compressed-tensors, GPTQ) model of the tiny Llama, registered in a real registry on a local
 * store; LocalModelLauncher starts the real vLLM on CPU for it; our gateway (in this process)
 * routes the alias between stable (a stub OpenAI-compatible upstream) and the launched server; a
 * Temporal dev server (real time) runs modelReleaseWorkflow with the real serving activities, and
 * the demo's load generator sends traffic through the gateway during the canary. Training,
 * evaluation and registration are typed mocks (they are not what is tested here).
 *
 * One vLLM server for the whole file (about 30 s to start, 3 GB): the launcher test starts it,
 * the release adopts it (same launch id), the rollback stops it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Activities } from '../../activities';
import type { ActivityDeps } from '../../activities/deps';
import { createServingActivities } from '../../activities/release/serving';
import { GatewayTrafficRouter } from '../../src/adapters/gateway-router';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { processGroupAlive } from '../../src/adapters/local-job-runner';
import { LocalModelLauncher } from '../../src/adapters/local-model-launcher';
import { LoadGenerator, tinyInstructEval } from '../../src/cli/load';
import { REPO_ROOT } from '../../src/config/load';
import { quantizedLabel, quantizedServedName, ReleaseOutcome, type ServedVersion } from '../../src/contracts/release-lifecycle';
import type { RouteTargets } from '../../src/contracts/routing';
import type { RunningGateway } from '../../src/gateway/server';
import { ForgelineError } from '../../src/ports/errors';
import { ModelRegistry } from '../../src/registry/model-registry';
import { modelReleaseWorkflow, releaseRollbackWorkflow } from '../../workflows';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import { ADMIN_TOKEN, gateway } from '../helpers/gateway-harness';
import { startStubUpstream, type StubUpstream } from '../helpers/gateway-upstream';
import { venvPython } from '../helpers/python';
import { getLocalEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

const run = promisify(execFile);
const MODEL = 'demo';
const STABLE: RouteTargets = [{ version: 'demo@base', upstream: 'vllm', model: 'tiny-base', weight: 100 }];

/** The server's pid, from the launcher's `where` (`pid 123 on host`). */
const pidOf = (where: string) => Number(/^pid (\d+) /.exec(where)![1]);

describe('quantized candidate on its own vLLM server (integration: real vLLM on CPU, gateway, launcher, Temporal)', function () {
  this.timeout(600_000);
  let dir: string;
  let stub: StubUpstream;
  let gw: RunningGateway;
  let router: GatewayTrafficRouter;
  let registry: ModelRegistry;
  let store: LocalArtifactStore;
  let version: string;
  let servingDir: string;
  let stateDir: string;
  const name = () => quantizedServedName(MODEL, version);
  /** A launcher as a control worker builds it: the servers die with this process, bf16 for the CPU int4 kernel. */
  const newLauncher = () => new LocalModelLauncher({ stateDir, ownerPid: process.pid, vllm: { dtype: 'bfloat16', maxModelLen: 128 } });
  const activities = (launcher: LocalModelLauncher) =>
    createServingActivities({ artifacts: store, registry, router, launcher, servingDir, workDir: path.join(dir, 'work') } as unknown as ActivityDeps);
  let launcher: LocalModelLauncher;
  let firstPid: number | undefined;

  before(async function () {
    dir = await mkdtemp(path.join(os.tmpdir(), 'forgeline-quantized-'));
    servingDir = path.join(dir, 'serving');
    stateDir = path.join(servingDir, 'launches');
    const env = { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' };
    // The tiny Llama (its layers are multiples of 32: the CPU int4 kernel needs that), GPTQ 4-bit, group 32.
    await run(venvPython(), [path.join(REPO_ROOT, 'workers', 'recipes', 'make_tiny_model.py'), '--size', 'tiny', '--seed', '0', '--out', path.join(dir, 'base')], { env, maxBuffer: 1 << 24 });
    const spec = path.join(dir, 'quantize.json');
    await writeFile(
      spec,
      JSON.stringify({ base_model: path.join(dir, 'base'), dataset_dir: path.join(REPO_ROOT, 'workers', 'recipes', 'data', 'tiny-instruct'), method: 'gptq', bits: 4, group_size: 32, calibration_samples: 32, device: 'cpu', seed: 0 }),
    );
    await run(venvPython(), [path.join(REPO_ROOT, 'workers', 'recipes', 'quantize.py'), '--spec', spec, '--out', path.join(dir, 'quantize-out')], { env, maxBuffer: 1 << 24 });
    const quantized = path.join(dir, 'quantize-out', 'quantized');
    const config = JSON.parse(await readFile(path.join(quantized, 'config.json'), 'utf8')) as { quantization_config: { quant_method: string; format: string } };
    assert.equal(config.quantization_config.quant_method, 'compressed-tensors');
    assert.equal(config.quantization_config.format, 'pack-quantized');

    store = new LocalArtifactStore(pathToFileURL(path.join(dir, 'artifacts')).href);
    registry = new ModelRegistry(store);
    await store.publishDirectory(quantized, 'releases/demo/quantized/');
    const lineage = { baseModel: { ref: 'path:/models/tiny' }, datasetSha256: 'a'.repeat(64), recipe: 'trl-sft-lora', hyperparameters: {} } as never;
    version = (await registry.registerVersion({ model: MODEL, kind: 'quantized', prefix: 'releases/demo/quantized/', lineage, createdAt: '2026-12-03T00:00:00.000Z' })).version;

    stub = await startStubUpstream();
    gw = await gateway({ stateDir: path.join(dir, 'gw'), devKey: 'forgeline-dev' });
    router = new GatewayTrafficRouter({ url: gw.url, adminToken: ADMIN_TOKEN });
    const table = await router.setUpstream('vllm', [stub.url]);
    await router.setRoute(MODEL, STABLE, { expectedVersion: table.version });
    launcher = newLauncher();
  });
  after(async function () {
    await launcher?.stopAll();
    await gw?.close();
    await stub?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed' && version) console.log(launcher.outputTail(name()));
  });

  it('launchQuantizedVersion starts one server per version, heartbeating while it starts; a retry, and a restarted worker, find the same server', async function () {
    const menv = new MockActivityEnvironment();
    const beats: unknown[] = [];
    menv.on('heartbeat', (d: unknown) => beats.push(d));
    const input = { model: MODEL, quantizedVersion: version, by: 'test' };
    // Two attempts at once (a retry while the first still runs) share one start.
    const [a, b] = (await Promise.all([menv.run(activities(launcher).launchQuantizedVersion, input), menv.run(activities(launcher).launchQuantizedVersion, input)])) as [ServedVersion, ServedVersion];
    assert.deepEqual(a, { label: quantizedLabel(MODEL, version), servedModel: name(), upstream: name(), quantized: { model: MODEL, version } });
    assert.deepEqual(b, a);
    assert.ok(beats.some((d) => /starting vLLM for/.test(String((d as { message?: string }).message))), 'heartbeats while the server starts');

    const [running] = await launcher.list();
    assert.ok(running);
    firstPid = pidOf(running.where);
    const table = await router.getTable();
    assert.deepEqual(table.upstreams[name()], { urls: [running.url] });
    // It serves the quantized model under its own name (and nothing else: no LoRA).
    const models = (await (await fetch(`${running.url}/v1/models`)).json()) as { data: Array<{ id: string; root: string }> };
    assert.deepEqual(models.data.map((m) => m.id), [name()]);
    assert.equal(models.data[0]!.root, path.join(servingDir, name()));

    // A restarted worker: a new launcher on the same state dir adopts the running server.
    const restarted = newLauncher();
    const again = await restarted.launch({ id: name(), modelDir: path.join(servingDir, name()), servedModelName: name() });
    assert.equal(again.adopted, true);
    assert.equal(again.url, running.url);
    assert.equal(pidOf(again.where), firstPid);
    const tableVersion = (await router.getTable()).version;
    await new MockActivityEnvironment().run(activities(restarted).launchQuantizedVersion, input);
    assert.equal((await router.getTable()).version, tableVersion, 'the upstream already pointed at the server: nothing written');
    // An id names one model.
    await assert.rejects(restarted.launch({ id: name(), modelDir: path.join(dir, 'base'), servedModelName: name() }), (e: unknown) => e instanceof ForgelineError && e.terminal && /an id names one model/.test(e.message));
    // stopQuantizedVersion refuses while a route sends the server traffic.
    await router.setRoute('probe', [{ version: 'probe@q', upstream: name(), model: name(), weight: 1 }]);
    await assert.rejects(new MockActivityEnvironment().run(activities(restarted).stopQuantizedVersion, { servedModel: name(), by: 'test', reason: 'r' }), /still send it traffic/);
    assert.ok(processGroupAlive(firstPid));
    await router.getTable().then((t) => router.setRoute('probe', [{ version: 'probe@base', upstream: 'vllm', model: 'tiny-base', weight: 1 }], { expectedVersion: t.version }));
  });

  it('a release with serving.candidate quantized canaries to the launched server under real traffic, is promoted, and the rollback saga stops the server', async function () {
    assert.ok(firstPid, 'the launcher test ran first and left the server running');
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release-qv');
    const pool = uniquePool();
    const { mocks } = releaseMocks();
    const { control, gpu } = split({
      ...mocks,
      async registerRelease() {
        return { versions: { quantized: version } };
      },
    });
    const spec = releaseSpec({
      model: MODEL,
      gpu: { pool },
      serving: {
        upstream: 'vllm',
        baseModel: 'tiny-base',
        candidate: 'quantized',
        // Short bakes under real traffic; the error rate decides (latency: a stub against a CPU model).
        canary: { steps: [50, 100], bake: '8s', maxExtensions: 5, analysis: { metrics: { error_rate: { minSamples: 10 }, latency_p95: { enabled: false }, feedback_score: { enabled: false } } } },
        keepPrevious: '1s',
        monitor: { enabled: false },
      },
    });
    const load = new LoadGenerator({ url: gw.url, key: 'forgeline-dev', model: MODEL, examples: tinyInstructEval().slice(0, 20), rate: 15, concurrency: 3, maxTokens: 4 });
    const real = activities(newLauncher());
    const serving: Partial<Activities> = {
      ...real,
      async logCanaryAnalysis() {},
    };
    await withWorkers(env, { taskQueue, pool, control: { ...control, ...serving }, gpu }, async () => {
      load.start();
      let result;
      try {
        result = await env.client.workflow.execute(modelReleaseWorkflow, { taskQueue, workflowId, args: [spec] });
      } finally {
        await load.stop();
      }
      assert.equal(result.outcome, ReleaseOutcome.Promoted, JSON.stringify(result));
      const candidate = quantizedLabel(MODEL, version);
      // Real answers from the quantized server, through the alias, and no errors on either version.
      const stats = load.stats();
      assert.ok((stats.get(candidate)?.requests ?? 0) >= 10, `candidate requests: ${JSON.stringify([...stats])}`);
      assert.equal(load.total().errors, 0, load.lastError);
      const table = await router.getTable();
      assert.deepEqual(table.routes[MODEL]?.targets, [{ version: candidate, upstream: name(), model: name(), weight: 100 }]);
      const [running] = await newLauncher().list();
      assert.equal(pidOf(running!.where), firstPid, 'the release adopted the server the launcher test started');
      assert.equal((await registry.getAlias(MODEL, 'production'))?.versions.quantized, version);

      // Roll the promoted release back (forgeline release rollback): traffic to stable, the server stopped.
      await env.client.workflow.execute(releaseRollbackWorkflow, { taskQueue, workflowId: `rollback/${workflowId}`, args: [{ plan: result.serving!, by: 'oncall@example.com', reason: 'test rollback' }] });
      const after = await router.getTable();
      assert.deepEqual(after.routes[MODEL]?.targets, STABLE);
      assert.equal(after.upstreams[name()], undefined, 'the upstream is removed');
      assert.equal(processGroupAlive(firstPid!), false, 'the server process group is gone');
      assert.deepEqual(await newLauncher().list(), []);
      assert.equal(existsSync(path.join(servingDir, name())), false, 'the unpacked model is deleted');
      // Idempotent: the saga again changes nothing and fails nothing.
      await env.client.workflow.execute(releaseRollbackWorkflow, { taskQueue, workflowId: `rollback-again/${workflowId}`, args: [{ plan: result.serving!, by: 'oncall@example.com', reason: 'again' }] });
    });
  });
});
