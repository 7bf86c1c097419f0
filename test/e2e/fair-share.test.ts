/**
 * Fair share under contention, end to end on CPU: the real Temporal dev server, a real control
 * worker (with a quota file: pool `cpu` of 2 "GPUs", team a nominal 1, team b nominal 1) and a
 * real GPU worker of pool `cpu` with 2 slots, the real train recipe.
 *
 * Team a starts two long trainings: one within its nominal quota, one borrowing b's idle GPU.
 * Team b then arrives: the pool's admission workflow asks a's borrower to yield; its training
 * saves a checkpoint at the step it is on and stops; its lease is released; b's release runs;
 * once b is done, a's release gets a lease again and its training resumes from the checkpoint
 * (a new activity, not a retry). Final accounting: every lease released, nothing in use.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { admissionWorkflowId } from '../../src/contracts/admission';
import { ReleaseOutcome } from '../../src/contracts/release-lifecycle';
import { prepareDemoRelease, startRelease } from '../../src/cli/release';
import { currentHeartbeat } from '../../src/cli/watch';
import { loadConfig } from '../../src/config/load';
import { statusQuery } from '../../workflows';
import { quotaStatusQuery } from '../../workflows/admission/messages';
import { useWorkerProcesses, workerProcess } from '../helpers/processes';
import { quotaYaml, writeQuotaFile } from '../helpers/quotas';
import { getLocalEnv } from '../helpers/temporal';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

async function history(handle: WorkflowHandle): Promise<HistoryEvent[]> {
  return (await handle.fetchHistory()).events ?? [];
}

/** The trainAdapter activities of a release's history: scheduled IDs, the attempts they started with, how each ended. */
function trainActivities(events: HistoryEvent[]) {
  const scheduled = new Map<string, { attempts: number[]; ended?: 'completed' | 'canceled' | 'failed'; result?: { resumedFromStep: number; stepsThisRun: number; totalSteps: number } }>();
  const byId = (id: unknown) => scheduled.get(String(id));
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainAdapter') scheduled.set(String(e.eventId), { attempts: [] });
    const started = e.activityTaskStartedEventAttributes;
    if (started) byId(started.scheduledEventId)?.attempts.push(started.attempt ?? 0);
    const done = e.activityTaskCompletedEventAttributes;
    const a = done && byId(done.scheduledEventId);
    if (a) {
      a.ended = 'completed';
      a.result = JSON.parse(Buffer.from(done.result!.payloads![0]!.data!).toString());
    }
    const canceled = e.activityTaskCanceledEventAttributes;
    if (canceled && byId(canceled.scheduledEventId)) byId(canceled.scheduledEventId)!.ended = 'canceled';
    const failed = e.activityTaskFailedEventAttributes;
    if (failed && byId(failed.scheduledEventId)) byId(failed.scheduledEventId)!.ended = 'failed';
  }
  return [...scheduled.values()];
}

async function terminateAdmission(client: Client, pool: string): Promise<void> {
  await client.workflow
    .getHandle(admissionWorkflowId(pool))
    .terminate('test: a fresh admission workflow for this test')
    .catch(() => undefined);
}

describe('fair share under contention (e2e: real workers, quota file, real train recipe, real Temporal dev server)', function () {
  this.timeout(1_200_000);
  const { home, log, procs } = useWorkerProcesses('fair-share');

  it("team b arrives while team a borrows b's GPU: a's borrower checkpoints and yields, b runs, a resumes from its checkpoint; every lease released", async function () {
    const env = await getLocalEnv();
    const pool = 'cpu';
    // The admission workflow of a pool is one per namespace: start from a fresh one.
    await terminateAdmission(env.client, pool);
    const workerEnv = {
      FORGELINE_HOME: home.dir,
      TEMPORAL_ADDRESS: env.connection.options.address,
      FORGELINE_LOG_LEVEL: 'warn',
      FORGELINE_CONTROL_QUEUE: 'e2e-fair-share-control',
      FORGELINE_GPU_POOL: pool,
      // Pool cpu has no devices: the worker takes 2 tasks at once, the quota file says 2 GPUs.
      FORGELINE_GPU_COUNT: '2',
      FORGELINE_QUOTAS: writeQuotaFile(quotaYaml(pool, 2, 1, 1)),
      FORGELINE_CONFIG: '',
    };
    const cfg = loadConfig({ env: { ...process.env, ...workerEnv } });
    procs.push(workerProcess('control', workerEnv, log), workerProcess('gpu', workerEnv, log));

    const demo = await prepareDemoRelease(cfg, (l) => log.push(l));
    const spec = (model: string, team: string, steps: number) => ({
      ...demo,
      model,
      team,
      // No periodic checkpoint: the only one a's borrower has is the one it saves when asked to yield.
      trainer: { ...demo.trainer, steps, checkpointEvery: 100_000 },
      quantization: { method: 'none' as const },
      evaluation: { ...demo.evaluation, gates: [{ metric: 'exact_match', op: '>=' as const, threshold: 0 }] },
      gpu: { pool, heartbeatTimeout: '10s' },
    });
    const say = (l: string) => log.push(l);

    // Team a: two long trainings, the second borrowing b's idle GPU.
    const a1 = await startRelease(env.client, cfg, spec('fair-a1', 'a', 400), say);
    const a2 = await startRelease(env.client, cfg, spec('fair-a2', 'a', 400), say);
    const deadline = Date.now() + 400_000;
    for (const h of [a1, a2]) {
      for (;;) {
        const hb = await currentHeartbeat(h).catch(() => undefined);
        if (hb?.activity === 'trainAdapter' && (hb.beat?.step ?? 0) >= 3) break;
        if (Date.now() > deadline) throw new Error(`${h.workflowId}: training did not report step 3 within 400 s`);
        await sleep(250);
      }
    }
    const admission = env.client.workflow.getHandle(admissionWorkflowId(pool));
    const before = await admission.query(quotaStatusQuery);
    assert.equal(before.inUse, 2);
    assert.equal(before.teams.find((t) => t.team === 'a')?.borrowed, 1, 'team a borrows one GPU');

    // Team b arrives, under its nominal quota: a's borrower is preempted.
    const b = await startRelease(env.client, cfg, spec('fair-b', 'b', 20), say);
    let preempted: WorkflowHandle | undefined;
    while (!preempted) {
      for (const h of [a1, a2]) if (((await h.query(statusQuery)).preemptions ?? 0) > 0) preempted = h;
      if (Date.now() > deadline + 200_000) throw new Error('no release of team a was preempted');
      await sleep(250);
    }
    const kept = preempted === a1 ? a2 : a1;

    const [rb, rp, rk] = await Promise.all([b.result(), preempted.result(), kept.result()]);
    for (const r of [rb, rp, rk]) assert.equal(r.outcome, ReleaseOutcome.Candidate);

    // The preempted release: one preemption; its training ran twice as two activities, each
    // with attempt 1 (the preemption took nothing from the retry budget): the first cancelled
    // after checkpointing, the second resumed from that checkpoint and did only the rest.
    const status = await preempted.query(statusQuery);
    assert.equal(status.preemptions, 1);
    assert.equal((await kept.query(statusQuery)).preemptions ?? 0, 0);
    assert.equal((await b.query(statusQuery)).preemptions ?? 0, 0);
    const runs = trainActivities(await history(preempted));
    const seen = JSON.stringify(runs.map((r) => ({ attempts: r.attempts, ended: r.ended, ...(r.result ? { resumedFromStep: r.result.resumedFromStep, stepsThisRun: r.result.stepsThisRun } : {}) })));
    assert.equal(runs.length, 2, seen);
    assert.deepEqual(runs.map((r) => r.attempts), [[1], [1]], `no retry: ${seen}`);
    assert.deepEqual(runs.map((r) => r.ended), ['canceled', 'completed'], seen);
    const resumed = runs[1]!.result!;
    console.log(`      preempted ${preempted.workflowId}: ${seen}`);
    assert.ok(resumed.resumedFromStep > 0, `resumed from its checkpoint, not from step 0: ${seen}`);
    assert.equal(resumed.totalSteps, 400, seen);
    assert.equal(resumed.stepsThisRun, 400 - resumed.resumedFromStep, `no step done twice: ${seen}`);

    // b's training started only after a's borrower gave its GPU back.
    const canceledAt = (await history(preempted)).find((e) => e.activityTaskCanceledEventAttributes)!.eventTime!;
    const bEvents = await history(b);
    const bTrain = bEvents.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainAdapter')!;
    const bStarted = bEvents.find((e) => String(e.activityTaskStartedEventAttributes?.scheduledEventId) === String(bTrain.eventId))!;
    assert.ok(Number(bStarted.eventTime!.seconds) >= Number(canceledAt.seconds), 'b trained after a yielded');

    // Final accounting: nothing in use, nothing waiting, every lease released.
    const after = await admission.query(quotaStatusQuery);
    assert.equal(after.inUse, 0);
    assert.deepEqual(after.leases, []);
    assert.deepEqual(after.waitingLeases, []);
    for (const t of after.teams) assert.equal(t.inUse, 0, `team ${t.team}`);
    assert.equal(after.preemptions, 1);
    assert.equal(after.revocations, 0, 'the borrower yielded in time; nothing was revoked');
    const ended = after.recentlyEnded.filter((e) => e.how !== 'released');
    assert.deepEqual(ended, [], 'every lease was released by its holder');
    await terminateAdmission(env.client, pool);
  });
});
