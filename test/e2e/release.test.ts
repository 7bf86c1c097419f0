import assert from 'node:assert/strict';
import type { WorkflowHandle } from '@temporalio/client';
import { prepareDemoRelease, startRelease } from '../../src/cli/release';
import { currentHeartbeat } from '../../src/cli/watch';
import { loadConfig } from '../../src/config/load';
import { ReleaseOutcome } from '../../src/contracts/release-lifecycle';
import { ModelRegistry } from '../../src/registry/model-registry';
import { artifactStoreFor } from '../../src/cli/release';
import type { ReleaseResult } from '../../workflows';
import { processesMentioning, useWorkerProcesses, workerProcess } from '../helpers/processes';
import { getLocalEnv } from '../helpers/temporal';

async function waitForCheckpoint(handle: WorkflowHandle, minStep: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hb = await currentHeartbeat(handle).catch(() => undefined);
    if (hb?.activity === 'trainAdapter' && (hb.beat?.checkpoint?.step ?? 0) >= minStep) return hb.beat!;
    if (Date.now() > deadline) throw new Error(`no checkpoint >= ${minStep} within ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('release on CPU (e2e: real workers, real recipes, real Temporal dev server)', function () {
  this.timeout(600_000);
  const { home, log, procs } = useWorkerProcesses('release');

  it('survives kill -9 of the GPU worker mid-training: another worker resumes from the last checkpoint', async function () {
    const env = await getLocalEnv();
    const address = env.connection.options.address;
    const workerEnv = { FORGELINE_HOME: home.dir, TEMPORAL_ADDRESS: address, FORGELINE_LOG_LEVEL: 'warn', FORGELINE_CONTROL_QUEUE: 'e2e-release-control', FORGELINE_GPU_POOL: 'cpu', FORGELINE_CONFIG: '' };
    const cfg = loadConfig({ env: { ...process.env, ...workerEnv } });
    procs.push(workerProcess('control', workerEnv, log));
    const firstGpu = workerProcess('gpu', workerEnv, log);
    procs.push(firstGpu);

    const spec = await prepareDemoRelease(cfg, (l) => log.push(l));
    // Long enough that the kill lands mid-training: the recipes run 60 tiny steps in a few
    // seconds, less than the GPU worker's 3 s heartbeat throttle, so a short run could finish
    // before any heartbeat naming a checkpoint reached the server.
    const steps = 300;
    const every = 10;
    const handle = await startRelease(env.client, cfg, { ...spec, model: 'tiny-resume', trainer: { ...spec.trainer, steps, checkpointEvery: every }, gpu: { pool: 'cpu', heartbeatTimeout: '10s' } }, (l) => log.push(l));

    const beat = await waitForCheckpoint(handle, every, 300_000);
    // Spot preemption: the worker and everything it ran vanish at once.
    const victims = processesMentioning(home.dir).filter((pid) => pid !== procs[0]!.pid && pid !== process.pid);
    const stepAtKill = (await currentHeartbeat(handle))?.beat?.step ?? beat.step ?? 0;
    for (const pid of [firstGpu.pid!, ...victims.filter((p) => p !== firstGpu.pid)]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    // A replacement GPU worker joins the pool.
    procs.push(workerProcess('gpu', workerEnv, log));

    const result = (await handle.result()) as ReleaseResult;
    assert.equal(result.outcome, ReleaseOutcome.Candidate);
    const desc = await handle.fetchHistory();
    const trainDone = desc.events?.find((e) => e.activityTaskCompletedEventAttributes && e.activityTaskCompletedEventAttributes.result?.payloads?.[0]?.data && Buffer.from(e.activityTaskCompletedEventAttributes.result.payloads[0].data).toString().includes('resumedFromStep'));
    assert.ok(trainDone, 'trainAdapter completed');
    const train = JSON.parse(Buffer.from(trainDone.activityTaskCompletedEventAttributes!.result!.payloads![0]!.data!).toString()) as { resumedFromStep: number; stepsThisRun: number; totalSteps: number };
    const seen = `train result ${JSON.stringify(train)}, step at kill ${stepAtKill}`;
    assert.ok(train.totalSteps >= steps, `the run finished: ${seen}`);
    assert.ok(train.resumedFromStep >= every, `resumed from a checkpoint: ${seen}`);
    // Work done across both workers: what the first did before it died, plus what the second did.
    const stepsDone = Math.max(stepAtKill, train.resumedFromStep) + train.stepsThisRun;
    assert.ok(stepsDone <= steps + every, `steps done ${stepsDone} <= total ${steps} + one checkpoint interval ${every}: ${seen}`);

    const registry = new ModelRegistry(artifactStoreFor(cfg));
    const versions = await registry.listVersions('tiny-resume');
    assert.deepEqual(versions.map((v) => v.kind).sort(), ['adapter', 'eval-report', 'merged', 'quantized']);
    assert.equal(versions[0]!.lineage.releaseWorkflowId, handle.workflowId);
    assert.equal((await registry.getAlias('tiny-resume', 'candidate'))?.releaseWorkflowId, handle.workflowId);
  });
});
