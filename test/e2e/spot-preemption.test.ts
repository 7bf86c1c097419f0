/**
 * Spot preemption of a GPU worker, end to end on CPU (issue 13, item 2): the real Temporal dev
 * server, real GPU worker processes (pool cpu), the real train recipe, and a local fake of the AWS
 * instance metadata service (IMDSv2, test/helpers/fake-imds.ts) that answers 404 for
 * `spot/instance-action` until the test posts the notice.
 *
 * Worker A runs on "spot" (FORGELINE_SPOT_PROVIDER=aws, its metadata URL the fake); worker B joins
 * once training is running on A. The stage is a release's train stage on its own
 * (test/fixtures/workflows/spot-train.ts, run by this test's own workflow worker), so the
 * workflow completes when training does.
 *
 * 1. Notice: A stops taking tasks, its recipe checkpoints the step it is on, the attempt fails as
 *    WorkerPreempted naming the notice, and A exits 0 on its own within the grace time (the
 *    harness plays the cloud: a worker still alive then is killed with SIGKILL, and the test
 *    fails). The stage resumes on B from that checkpoint and the workflow completes.
 * 2. Hard kill: A is killed with SIGKILL (its whole process group) right after the checkpoint is
 *    published; the checkpoint survives in the store and B resumes from it.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import type { TrainResult } from '../../activities/release/types';
import { safeId } from '../../activities/release/run-recipe';
import { artifactStoreFor, parseReleaseSpec, prepareDemoRelease } from '../../src/cli/release';
import { currentHeartbeat } from '../../src/cli/watch';
import { loadConfig } from '../../src/config/load';
import type { ForgelineConfig } from '../../src/config/schema';
import { ErrorType } from '../../src/contracts/errors';
import type { ReleaseSpecInput } from '../../src/contracts/specs/release-spec';
import { startFakeMetadataServer, type FakeMetadataServer } from '../helpers/fake-imds';
import { useWorkerProcesses, workerProcess } from '../helpers/processes';
import { getLocalEnv } from '../helpers/temporal';

/** The grace the workers get (FORGELINE_SHUTDOWN_GRACE), and so how long the harness waits before SIGKILL. */
const GRACE_S = 60;
const STEPS = 300;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The harness had to kill it: it was still alive `afterMs` after the notice. */
  killed: boolean;
  seconds: number;
}

/**
 * The cloud's side of a preemption: wait up to `afterMs` for `child` to exit on its own, then
 * SIGKILL its process group (the machine is gone) and report that it had to.
 */
async function exitOrKill(child: ChildProcess, afterMs: number): Promise<Exit> {
  const started = Date.now();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'grace over'>((resolve) => (timer = setTimeout(() => resolve('grace over'), afterMs)));
  const first = await Promise.race([exited, graceOver]);
  clearTimeout(timer);
  if (first !== 'grace over') return { ...first, killed: false, seconds: (Date.now() - started) / 1000 };
  hardKill(child);
  return { ...(await exited), killed: true, seconds: (Date.now() - started) / 1000 };
}

/** kill -9 of the worker's process group (its recipe, in a group of its own, ends with it: FORGELINE_EXIT_WITH_PARENT). */
function hardKill(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    /* gone already */
  }
}

/** Published checkpoint manifests of a release, as [key, step]. */
async function checkpoints(cfg: ForgelineConfig, releaseId: string): Promise<Array<{ key: string; step: number }>> {
  const found: Array<{ key: string; step: number }> = [];
  for await (const o of artifactStoreFor(cfg).listAll(`releases/${safeId(releaseId)}/checkpoints/`)) {
    const m = /\/step-(\d+)\/MANIFEST\.json$/.exec(o.key);
    if (m) found.push({ key: o.key, step: Number(m[1]) });
  }
  return found;
}

/**
 * The activity attempt the history records (Temporal writes the started event of a retried activity
 * once, for its last attempt): who ran it, and the failure of the attempt before it.
 */
async function attempts(handle: WorkflowHandle): Promise<Array<{ attempt: number; identity: string; lastFailure?: { type?: string; message: string } }>> {
  const out: Array<{ attempt: number; identity: string; lastFailure?: { type?: string; message: string } }> = [];
  for (const e of (await handle.fetchHistory()).events ?? []) {
    const s = e.activityTaskStartedEventAttributes;
    if (!s) continue;
    const f = s.lastFailure;
    out.push({
      attempt: s.attempt ?? 1,
      identity: s.identity ?? '',
      ...(f ? { lastFailure: { ...(f.applicationFailureInfo?.type ? { type: f.applicationFailureInfo.type } : {}), message: f.message ?? '' } } : {}),
    });
  }
  return out;
}

describe('spot preemption of a GPU worker (e2e: fake AWS IMDS, real workers, real train recipe, real Temporal dev server)', function () {
  this.timeout(900_000);
  const { home, log, procs } = useWorkerProcesses('spot');
  let imds: FakeMetadataServer;
  let workflowWorker: Worker;
  let running: Promise<void>;
  let spec: ReleaseSpecInput;
  const taskQueue = `e2e-spot-${randomUUID().slice(0, 8)}`;

  const baseEnv = async () => ({
    FORGELINE_HOME: home.dir,
    TEMPORAL_ADDRESS: (await getLocalEnv()).connection.options.address,
    FORGELINE_LOG_LEVEL: 'warn',
    FORGELINE_CONTROL_QUEUE: `${taskQueue}-control`,
    FORGELINE_GPU_POOL: 'cpu',
    FORGELINE_SHUTDOWN_GRACE: `${GRACE_S}s`,
    FORGELINE_CONFIG: '',
  });

  before(async function () {
    const env = await getLocalEnv();
    imds = await startFakeMetadataServer('aws');
    const cfg = loadConfig({ env: { ...process.env, ...(await baseEnv()) } });
    spec = await prepareDemoRelease(cfg, (l) => log.push(l));
    // The release's train stage alone, run by this test's workflow worker; the GPU workers are processes.
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../fixtures/workflows/spot-train'), logger: new DefaultLogger('WARN') });
    workflowWorker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle });
    running = workflowWorker.run();
  });

  after(async function () {
    if (workflowWorker?.getState() === 'RUNNING') workflowWorker.shutdown();
    await running;
    await imds?.close();
  });

  /** Starts worker A (spot, watching the fake IMDS every 0.5 s) and the training on it; resolves once it reports step 3 on A. */
  async function trainingOnSpotWorker(model: string) {
    const env = await getLocalEnv();
    const workerEnv = await baseEnv();
    const cfg = loadConfig({ env: { ...process.env, ...workerEnv } });
    const a = workerProcess('gpu', { ...workerEnv, FORGELINE_SPOT_PROVIDER: 'aws', FORGELINE_SPOT_METADATA_URL: imds.url, FORGELINE_SPOT_POLL_SECONDS: '0.5' }, log);
    procs.push(a);
    thisTest.push(a);
    const releaseId = `release/${model}/${randomUUID().slice(0, 8)}`;
    const parsed = parseReleaseSpec({ ...spec, model, trainer: { ...spec.trainer, steps: STEPS, checkpointEvery: 100_000 }, gpu: { pool: 'cpu', heartbeatTimeout: '10s' } });
    const handle = await env.client.workflow.start('spotTrainWorkflow', { taskQueue, workflowId: releaseId, args: [{ releaseId, runId: safeId(releaseId), spec: parsed }] });
    const deadline = Date.now() + 300_000;
    for (;;) {
      const hb = await currentHeartbeat(handle).catch(() => undefined);
      if (hb?.activity === 'trainAdapter' && (hb.beat?.step ?? 0) >= 3) break;
      if (Date.now() > deadline) throw new Error('training did not report step 3 on worker A within 300 s');
      await sleep(200);
    }
    const desc = await handle.describe();
    assert.match(desc.raw.pendingActivities?.[0]?.lastWorkerIdentity ?? '', new RegExp(`^${a.pid}@`), 'training runs on worker A');
    // Worker B joins the pool while A trains: it is where the stage can go next.
    const b = workerProcess('gpu', workerEnv, log);
    procs.push(b);
    thisTest.push(b);
    return { cfg, a, b, handle, releaseId };
  }

  /** This case's worker processes: gone before the next case starts, whatever the outcome, so none of them takes its task. */
  const thisTest: ChildProcess[] = [];
  afterEach(async function () {
    for (const p of thisTest.splice(0)) {
      hardKill(p);
      await exitOrKill(p, 10_000);
    }
    // Each case posts its own notice; the next starts from "no notice".
    await imds.close();
    imds = await startFakeMetadataServer('aws');
  });

  it('notice: A stops taking tasks, its recipe checkpoints, A exits 0 within the grace time, B resumes from the checkpoint and the workflow completes', async function () {
    const { cfg, a, b, handle, releaseId } = await trainingOnSpotWorker('tiny-spot');
    const noticeAt = Date.now();
    imds.notify({ at: new Date(noticeAt + 120_000) });
    const exit = await exitOrKill(a, GRACE_S * 1000);
    const aLog = log.filter((l) => l.startsWith(`[gpu ${a.pid}]`));
    assert.ok(!exit.killed, `worker A was still running ${GRACE_S} s after the notice and was killed:\n${aLog.join('\n')}`);
    assert.equal(exit.code, 0, `worker A exits 0 on its own (exit ${exit.code}, signal ${exit.signal}):\n${aLog.join('\n')}`);
    // Each step of the stop, logged with the notice.
    const said = aLog.join('\n');
    assert.match(said, /AWS spot instance-action terminate at .*: no new tasks; asking 1 running attempt\(s\) to checkpoint and stop \(trainAdapter of release\/tiny-spot\/\w+ \(attempt 1\)\)/);
    assert.match(said, /trainAdapter of release\/tiny-spot\/\w+ \(attempt 1\) failed retryably as WorkerPreempted \(AWS spot instance-action terminate at /);
    assert.match(said, /stopped for the spot notice, exiting [\d.]+ s before its deadline/);

    // The recipe's stop-time checkpoint is the only one (no periodic checkpoint within the run).
    const saved = await checkpoints(cfg, releaseId);
    assert.equal(saved.length, 1, `checkpoints: ${saved.map((c) => c.key).join(', ')}`);
    const stopStep = saved[0]!.step;
    assert.ok(stopStep >= 3 && stopStep < STEPS, `checkpoint at step ${stopStep}`);

    const train = (await handle.result()) as TrainResult;
    const tried = await attempts(handle);
    const seen = `train ${JSON.stringify({ ...train, recipeResult: undefined })}, checkpoint step ${stopStep}, A exited ${exit.seconds.toFixed(1)} s after the notice, attempts ${JSON.stringify(tried)}`;
    console.log(`      ${seen}`);
    // Attempt 1 ran on A (checked while it trained); the history records the last attempt.
    assert.equal(tried.length, 1, seen);
    assert.equal(tried[0]!.attempt, 2, `one retry: ${seen}`);
    assert.match(tried[0]!.identity, new RegExp(`^${b.pid}@`), `the retry ran on B: ${seen}`);
    assert.equal(tried[0]!.lastFailure?.type, ErrorType.WorkerPreempted, seen);
    assert.match(tried[0]!.lastFailure?.message ?? '', /^train: recipe train stopped because .*; worker preempted: AWS spot instance-action terminate at /, seen);
    assert.equal(train.resumedFromStep, stopStep, `resumed from the notice's checkpoint: ${seen}`);
    assert.equal(train.totalSteps, STEPS, seen);
    assert.equal(train.stepsThisRun, STEPS - stopStep, `no step done twice: ${seen}`);
  });

  it('kill -9 right after the checkpoint: the checkpoint survives the hard kill and B resumes from it', async function () {
    const { cfg, a, b, handle, releaseId } = await trainingOnSpotWorker('tiny-spot-kill');
    imds.notify();
    // As soon as the stop-time checkpoint is in the store, the machine is gone.
    const deadline = Date.now() + GRACE_S * 1000;
    let saved = await checkpoints(cfg, releaseId);
    while (!saved.length) {
      if (Date.now() > deadline) throw new Error(`no checkpoint published within ${GRACE_S} s of the notice`);
      await sleep(50);
      saved = await checkpoints(cfg, releaseId);
    }
    hardKill(a);
    const exit = await exitOrKill(a, 10_000);
    assert.equal(exit.signal, 'SIGKILL', `A was killed, not stopped (exit ${exit.code}, ${exit.signal})`);
    const stopStep = saved[0]!.step;

    const train = (await handle.result()) as TrainResult;
    const tried = await attempts(handle);
    const seen = `train ${JSON.stringify({ ...train, recipeResult: undefined })}, checkpoint step ${stopStep}, attempts ${JSON.stringify(tried)}`;
    console.log(`      ${seen}`);
    assert.ok(stopStep > 0);
    assert.match(tried.at(-1)!.identity, new RegExp(`^${b.pid}@`), `the last attempt ran on B: ${seen}`);
    assert.equal(train.resumedFromStep, stopStep, `resumed from the checkpoint published before the kill: ${seen}`);
    assert.equal(train.stepsThisRun, STEPS - stopStep, seen);
  });
});
