import assert from 'node:assert/strict';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { WorkflowHandle } from '@temporalio/client';
import type { StageInput, TrainResult } from '../../activities/release';
import { ErrorType } from '../../src/contracts/errors';
import type { GpuAdmissionPlan } from '../../src/contracts/gpu-admission';
import type { LeaseGrant, LeaseRequest } from '../../src/contracts/quota';
import { ReleaseOutcome, type ReleaseStatus } from '../../src/contracts/release-lifecycle';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { modelReleaseWorkflow, statusQuery } from '../../workflows';
import { yieldGpusSignal, type GpuLeaseActivities } from '../../workflows/gpu-lease';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import { failureOfType } from '../helpers/failures';
import { getLocalEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A plan as validation makes it with a quota file: team `research`, priority key 2, weight 3. */
function plan(pool: string): GpuAdmissionPlan {
  return { quotaFile: '/etc/forgeline/quotas.yaml', team: 'research', pool, priority: { priorityKey: 2, fairnessKey: 'research', fairnessWeight: 3 } };
}

/**
 * Stand-ins for the pool admission's lease activities: each acquire waits until the test grants
 * it (or grants at once with `autoGrant`), each release is recorded.
 */
function leaseMocks(opts: { autoGrant: boolean; order: string[] }) {
  const requested: LeaseRequest[] = [];
  const released: string[] = [];
  const grants = new Map<string, () => void>();
  const mocks = {
    async acquireGpuLease(req: LeaseRequest): Promise<LeaseGrant> {
      requested.push(req);
      if (!opts.autoGrant) {
        const ctx = Context.current();
        // Heartbeats, as the real one does while it waits, so a cancellation reaches it.
        const beat = setInterval(() => ctx.heartbeat(), 200);
        try {
          await new Promise<void>((resolve, reject) => {
            grants.set(req.leaseId, resolve);
            ctx.cancellationSignal.addEventListener('abort', () => reject(ctx.cancellationSignal.reason as Error));
          });
        } finally {
          clearInterval(beat);
        }
      }
      return { leaseId: req.leaseId, pool: req.pool, team: req.team, gpus: req.gpus, borrowed: 0, grantedAt: Date.now() };
    },
    async releaseGpuLease(req: { pool: string; leaseId: string }): Promise<{ leaseId: string; was: 'held' | 'waiting' | 'none' }> {
      released.push(req.leaseId);
      opts.order.push(`released ${req.leaseId.split('/').slice(-2).join('/')}`);
      return { leaseId: req.leaseId, was: 'held' };
    },
  } satisfies GpuLeaseActivities;
  const grant = (leaseId: string) => {
    const g = grants.get(leaseId);
    assert.ok(g, `lease ${leaseId} is not waiting (waiting: ${[...grants.keys()].join(', ')})`);
    grants.delete(leaseId);
    g();
  };
  return { mocks, requested, released, grant, waiting: (leaseId: string) => grants.has(leaseId) };
}

/**
 * A training stand-in: with `blockFirst`, run 1 heartbeats until it is cancelled (as the real
 * activity, whose recipe checkpoints and stops); other runs finish. Records each call's run and attempt.
 */
function preemptibleTrain(order: string[], blockFirst: boolean, checkpointMs = 0) {
  const calls: Array<{ run: number; attempt: number; cancelled?: boolean }> = [];
  async function trainAdapter(input: StageInput): Promise<TrainResult> {
    const ctx = Context.current();
    const call = { run: input.run ?? 1, attempt: ctx.info.attempt } as (typeof calls)[number];
    calls.push(call);
    if (blockFirst && call.run === 1) {
      while (!ctx.cancellationSignal.aborted) {
        ctx.heartbeat({ stage: 'train', step: 3 });
        await sleep(100);
      }
      // Saving the checkpoint takes longer than the heartbeat timeout (10 s); heartbeats keep the attempt alive meanwhile.
      for (const end = Date.now() + checkpointMs; Date.now() < end; ) {
        ctx.heartbeat({ stage: 'train', step: 3, message: 'saving a checkpoint' });
        await sleep(200);
      }
      call.cancelled = true;
      order.push('train run 1 stopped');
      throw ctx.cancellationSignal.reason;
    }
    return { adapter: { prefix: 'releases/x/adapter/', uri: 'file:///store/releases/x/adapter', digest: '0'.repeat(64) }, totalSteps: 40, stepsThisRun: 37, resumedFromStep: 3, finalLoss: 0.8, recipeResult: {} };
  }
  return { calls, trainAdapter };
}

async function statusOf(handle: WorkflowHandle): Promise<ReleaseStatus | undefined> {
  return handle.query(statusQuery).catch(() => undefined);
}

describe('GPU leases around release stages (real Temporal dev server, typed mock activities)', function () {
  this.timeout(90_000);

  function setup(pool: string, autoGrant: boolean, blockFirst = autoGrant, checkpointMs = 0) {
    const { calls, mocks } = releaseMocks();
    // A short heartbeat timeout: the SDK sends heartbeats (and learns of a cancellation) at most every 0.8 × of it.
    const spec: ReleaseSpec = { ...releaseSpec({ gpu: { pool, heartbeatTimeout: '10s' }, team: 'research' }), admission: plan(pool) };
    mocks.validateReleaseSpec = async () => {
      calls.push('validateReleaseSpec');
      return spec;
    };
    const order: string[] = [];
    const leases = leaseMocks({ autoGrant, order });
    const train = preemptibleTrain(order, blockFirst, checkpointMs);
    const { control, gpu } = split({ ...mocks, trainAdapter: train.trainAdapter });
    return { calls, spec, leases, train, order, control: { ...control, ...leases.mocks }, gpu };
  }

  it('yield during training: the activity is cancelled (and may take longer than its heartbeat timeout to checkpoint), the lease released, the stage queued again as a new activity (attempt 1) and counted as a preemption', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    // The cancelled training takes 15 s to save its checkpoint, longer than the heartbeat timeout (10 s).
    const { leases, train, order, control, gpu } = setup(pool, true, true, 15_000);
    await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [{}] });
      await until('train run 1 to start', () => train.calls.length === 1);
      const held = await until('the lease held in status', async () => ((await statusOf(handle))?.gpuLease?.state === 'held' ? true : undefined));
      assert.ok(held);
      await handle.signal(yieldGpusSignal, { leaseId: `${workflowId}/train/1`, reason: 'team search is under its quota on pool ' + pool });
      const result = await handle.result();
      assert.equal(result.outcome, ReleaseOutcome.Candidate);
      const status = await handle.query(statusQuery);
      assert.equal(status.preemptions, 1);
      assert.equal(status.gpuLease, undefined, 'no lease held once the release ended');
      // The second run is a new activity: attempt 1 again, its retry budget untouched.
      assert.deepEqual(train.calls, [
        { run: 1, attempt: 1, cancelled: true },
        { run: 2, attempt: 1 },
      ]);
      // The GPU stages ran under leases of the team with deterministic IDs: train/2 (after the
      // preemption) was kept through quantize and evaluate, then released; so was train/1.
      assert.deepEqual(
        leases.requested.map((r) => [r.leaseId, r.team, r.pool, r.gpus, r.holder.stage, r.holder.workflowId]),
        [
          [`${workflowId}/train/1`, 'research', pool, 1, 'train', workflowId],
          [`${workflowId}/train/2`, 'research', pool, 1, 'train', workflowId],
        ],
      );
      assert.deepEqual(leases.released, [`${workflowId}/train/1`, `${workflowId}/train/2`]);
      // The GPUs went back only once the stopped training had finished (checkpoint saved).
      assert.deepEqual(order, ['train run 1 stopped', 'released train/1', 'released train/2']);
      // GPU tasks carry the team's fairness key, weight and priority key; the cancelled one was cancelled, not failed.
      const events = (await handle.fetchHistory()).events ?? [];
      const scheduled = events.filter((e) => ['trainAdapter', 'quantizeModel', 'runEvalSuite'].includes(e.activityTaskScheduledEventAttributes?.activityType?.name ?? ''));
      assert.equal(scheduled.length, 4);
      for (const e of scheduled) {
        const p = e.activityTaskScheduledEventAttributes?.priority;
        assert.equal(p?.fairnessKey, 'research');
        assert.equal(p?.fairnessWeight, 3);
        assert.equal(p?.priorityKey, 2);
      }
      assert.equal(events.filter((e) => e.activityTaskCanceledEventAttributes).length, 1);
      assert.equal(events.filter((e) => e.activityTaskFailedEventAttributes).length, 0, 'a preemption is no failed attempt');
    });
  });

  it('yield while the grant is on its way: the lease is given back without running the stage, then queued again', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { leases, train, control, gpu } = setup(pool, false);
    await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [{}] });
      const first = `${workflowId}/train/1`;
      await until('train/1 to wait for its grant', () => leases.waiting(first));
      assert.equal((await statusOf(handle))?.gpuLease?.state, 'waiting');
      // The admission workflow granted, then preempted, before the grant reached the release.
      await handle.signal(yieldGpusSignal, { leaseId: first, reason: 'preempted' });
      leases.grant(first);
      const second = `${workflowId}/train/2`;
      await until('train/2 to wait', () => leases.waiting(second));
      leases.grant(second);
      const result = await handle.result();
      assert.equal(result.outcome, ReleaseOutcome.Candidate);
      assert.deepEqual(train.calls, [{ run: 1, attempt: 1 }], 'the stage ran once, under the second lease');
      assert.equal((await handle.query(statusQuery)).preemptions, 1);
      assert.deepEqual(leases.released, [first, second]);
    });
  });

  it('releases the lease when the stage fails, and when the release is cancelled while it waits for one', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { leases, control, gpu } = setup(pool, false);
    gpu.trainAdapter = async () => {
      throw ApplicationFailure.nonRetryable('recipe train failed: bad dataset', ErrorType.RecipeFailed);
    };
    await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
      const failing = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [{}] });
      await until('train/1 to wait', () => leases.waiting(`${workflowId}/train/1`));
      leases.grant(`${workflowId}/train/1`);
      const f = failureOfType(await failing.result().catch((e: unknown) => e), ErrorType.RecipeFailed);
      assert.match(f.message, /bad dataset/);
      assert.deepEqual(leases.released, [`${workflowId}/train/1`]);

      const cancelledId = `${workflowId}-cancelled`;
      const cancelled = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId: cancelledId, args: [{}] });
      await until('its train/1 to wait', () => leases.waiting(`${cancelledId}/train/1`));
      await cancelled.cancel();
      await cancelled.result().catch((e: unknown) => e);
      assert.deepEqual(leases.released, [`${workflowId}/train/1`, `${cancelledId}/train/1`], 'a queued lease is withdrawn when its release is cancelled');
    });
  });
});
