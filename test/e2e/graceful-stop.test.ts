/**
 * Graceful stop of a GPU worker (spot notice, rolling deploy), end to end on CPU: real worker
 * processes, the real train recipe, the real Temporal dev server. SIGTERM mid-training makes the
 * recipe save a checkpoint at the step it is on and exit; the attempt fails retryably
 * (RecipePreempted) and the retry, on a new worker, resumes from exactly that checkpoint.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { artifactStoreFor, prepareDemoRelease, startRelease } from '../../src/cli/release';
import { currentHeartbeat } from '../../src/cli/watch';
import { loadConfig } from '../../src/config/load';
import { useWorkerProcesses, workerProcess } from '../helpers/processes';
import { getLocalEnv } from '../helpers/temporal';

describe('graceful stop of a GPU worker (e2e: real workers, real train recipe, real Temporal dev server)', function () {
  this.timeout(600_000);
  const { home, log, procs } = useWorkerProcesses('graceful-stop');

  it('SIGTERM mid-training: the recipe checkpoints the step it is on, the worker exits, a new worker resumes from that checkpoint', async function () {
    const env = await getLocalEnv();
    const workerEnv = {
      FORGELINE_HOME: home.dir,
      TEMPORAL_ADDRESS: env.connection.options.address,
      FORGELINE_LOG_LEVEL: 'warn',
      FORGELINE_CONTROL_QUEUE: 'e2e-graceful-stop-control',
      FORGELINE_GPU_POOL: 'cpu',
      FORGELINE_SHUTDOWN_GRACE: '120s',
      FORGELINE_CONFIG: '',
    };
    const cfg = loadConfig({ env: { ...process.env, ...workerEnv } });
    procs.push(workerProcess('control', workerEnv, log));
    const first = workerProcess('gpu', workerEnv, log);
    procs.push(first);
    const firstExit = new Promise<number | null>((resolve) => first.once('exit', (code) => resolve(code)));

    const spec = await prepareDemoRelease(cfg, (l) => log.push(l));
    // No periodic checkpoint within the run: the only one is the one written at stop time.
    const steps = 400;
    const handle = await startRelease(env.client, cfg, { ...spec, model: 'tiny-graceful', trainer: { ...spec.trainer, steps, checkpointEvery: 100_000 }, gpu: { pool: 'cpu', heartbeatTimeout: '10s' } }, (l) => log.push(l));

    // Training is live (heartbeats carry the step) before the stop.
    const deadline = Date.now() + 300_000;
    for (;;) {
      const hb = await currentHeartbeat(handle).catch(() => undefined);
      if (hb?.activity === 'trainAdapter' && (hb.beat?.step ?? 0) >= 3) break;
      if (Date.now() > deadline) throw new Error('training did not report step 3 within 300 s');
      await sleep(200);
    }
    const stoppedAt = Date.now();
    first.kill('SIGTERM'); // the worker process only, as a spot notice or `kubectl delete pod` would
    const code = await firstExit;
    const stopSeconds = (Date.now() - stoppedAt) / 1000;
    assert.equal(code, 0, 'the worker exits cleanly after its recipe has checkpointed');
    log.push(`first worker exited ${stopSeconds.toFixed(1)} s after SIGTERM`);

    // Exactly one checkpoint was published: the one saved on the way out.
    const store = artifactStoreFor(cfg);
    const manifests: string[] = [];
    for await (const o of store.listAll('releases/')) if (/\/checkpoints\/.*\/MANIFEST\.json$/.test(o.key)) manifests.push(o.key);
    assert.equal(manifests.length, 1, `checkpoints published: ${manifests.join(', ')}`);
    const stopStep = Number(/step-(\d+)\//.exec(manifests[0]!)![1]);
    assert.ok(stopStep >= 3 && stopStep < steps, `checkpoint at step ${stopStep}`);

    // A replacement worker joins the pool and finishes the training from that step.
    procs.push(workerProcess('gpu', workerEnv, log));
    let train: { resumedFromStep: number; stepsThisRun: number; totalSteps: number } | undefined;
    let retryCause: string | undefined;
    while (!train) {
      if (Date.now() > deadline + 200_000) throw new Error('training did not complete after the stop');
      for (const e of (await handle.fetchHistory()).events ?? []) {
        const started = e.activityTaskStartedEventAttributes;
        if (started?.attempt === 2 && started.lastFailure) retryCause = `${started.lastFailure.applicationFailureInfo?.type}: ${started.lastFailure.message}`;
        const data = e.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data;
        if (data && Buffer.from(data).toString().includes('resumedFromStep')) train = JSON.parse(Buffer.from(data).toString());
      }
      if (!train) await sleep(1000);
    }
    await handle.terminate('test: training checked; the later stages are the kill -9 test\'s');
    const seen = `train ${JSON.stringify(train)}, checkpoint step ${stopStep}, worker stopped in ${stopSeconds.toFixed(1)} s, first attempt: ${retryCause}`;
    console.log(`      ${seen}`);
    assert.match(retryCause ?? '', /^RecipePreempted: train: recipe train stopped because this worker is shutting down/, seen);
    assert.equal(train.resumedFromStep, stopStep, `resumed from the stop-time checkpoint: ${seen}`);
    assert.equal(train.totalSteps, steps, seen);
    assert.equal(train.stepsThisRun, steps - stopStep, `no step done twice: ${seen}`);
  });
});
