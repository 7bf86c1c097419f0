import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { activitiesFor, type Activities } from '../../activities';
import { LocalGpuAllocator } from '../../src/adapters/gpu-allocator';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { LocalTracker } from '../../src/adapters/local-tracker';
import { ErrorType } from '../../src/contracts/errors';
import { ReleaseOutcome, ReleaseStage, type ReleaseStatus } from '../../src/contracts/release-lifecycle';
import {
  ForgelineAwaitingApproval,
  ForgelineDecidedBy,
  ForgelineLifecycle,
  ForgelineModel,
  ForgelineOutcome,
} from '../../src/contracts/search-attributes';
import { gpuTaskQueue } from '../../src/contracts/task-queues';
import type { JobRunner } from '../../src/ports/job-runner';
import { ModelRegistry } from '../../src/registry/model-registry';
import { approveUpdate, modelReleaseWorkflow, rejectUpdate, statusQuery } from '../../workflows';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import { failureOfType } from '../helpers/failures';
import { getLocalEnv, getTimeSkippingEnv, getWorkflowBundle, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

async function until(handle: WorkflowHandle, pred: (s: ReleaseStatus) => boolean): Promise<ReleaseStatus> {
  for (;;) {
    const s = await handle.query(statusQuery).catch(() => undefined);
    if (s && pred(s)) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The Markdown the Temporal UI shows as "Current Details" (the SDK's metadata query). */
async function currentDetails(handle: WorkflowHandle): Promise<string> {
  const meta = (await handle.query('__temporal_workflow_metadata')) as { currentDetails?: string };
  return meta.currentDetails ?? '';
}

describe('release operators: what the Temporal UI and the CLI see (real dev server, typed mocks)', function () {
  this.timeout(60_000);

  it('approval: Current Details say how to decide and until when; search attributes mark it; the reply is the state after the decision', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { calls, mocks } = releaseMocks();
    const promoteInputs: unknown[] = [];
    const control: Partial<Activities> = {
      ...split(mocks).control,
      async promoteCandidate(input) {
        promoteInputs.push(input);
        if (promoteInputs.length === 1) throw ApplicationFailure.retryable('registry briefly unavailable');
        return mocks.promoteCandidate.call(undefined);
      },
    };
    await withWorkers(env, { taskQueue, pool, control, gpu: split(mocks).gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool }, approval: { required: true, timeout: '2h' } })] });
      const waiting = await until(handle, (s) => s.awaitingApproval);
      assert.ok(waiting.approvalDeadline, 'the status names the approval deadline');

      const details = await currentDetails(handle);
      assert.match(details, /^## demo: awaiting approval/);
      assert.match(details, new RegExp(`forgeline release approve ${workflowId} --by`));
      assert.match(details, /Send Update\*\* `approve`.*\{"by": "you@example.com", "reason": "eval reviewed"\}/);
      assert.match(details, /\| `exact_match >= 0.5` \| yes \| exact_match 0.7 >= 0.5 \|/);
      assert.match(details, /adapter: \[`aaaaaaaaaaaa`\]\(file:\/\/\/store\/registry\/demo\/adapter\/aaaaaaaaaaaa\/\)/, 'registry versions link to their files');
      assert.ok(details.includes(waiting.approvalDeadline!), 'details say until when');
      const desc = await handle.describe();
      assert.equal(desc.typedSearchAttributes.get(ForgelineAwaitingApproval), true);
      assert.equal(desc.typedSearchAttributes.get(ForgelineLifecycle), 'release');

      const history = (await handle.fetchHistory()).events ?? [];
      const timer = history.find((e) => e.timerStartedEventAttributes);
      assert.match(String(timer?.userMetadata?.summary?.data ? Buffer.from(timer.userMetadata.summary.data).toString() : ''), /approval deadline/);

      const reply = await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice@example.com', reason: 'eval table reviewed' }] });
      assert.equal(reply.outcome, ReleaseOutcome.Candidate, 'the reply is the state after the decision took effect');
      assert.equal(reply.awaitingApproval, false);
      assert.equal(reply.decision?.by, 'alice@example.com');
      assert.ok(reply.decision?.at, 'the decision records when');

      const result = await handle.result();
      assert.equal(result.decision?.reason, 'eval table reviewed');
      const done = await handle.describe();
      assert.equal(done.typedSearchAttributes.get(ForgelineAwaitingApproval), false);
      assert.equal(done.typedSearchAttributes.get(ForgelineDecidedBy), 'alice@example.com');
      assert.deepEqual((done.memo?.decision as { by?: string })?.by, 'alice@example.com', 'the memo carries who decided');
      assert.match(await currentDetails(handle), /^## demo: candidate, approved by alice@example.com/);
    });
    assert.equal(promoteInputs.length, 2);
    const [first, second] = promoteInputs as [{ at: string }, { at: string }];
    assert.equal(first.at, second.at, 'a retried activity gets the same audit time (workflow time)');
    assert.ok(calls.includes('promoteCandidate'));
  });

  it('a refused decision names the reason and carries no workflow stack trace', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { mocks } = releaseMocks();
    const { control, gpu } = split(mocks);
    await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool }, approval: { required: true, timeout: '1h' } })] });
      await until(handle, (s) => s.awaitingApproval);
      const refused = await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', reason: ' ' }] }).catch((e: unknown) => e);
      assert.ok(refused instanceof WorkflowUpdateFailedError);
      const cause = refused.cause as ApplicationFailure;
      assert.match(cause.message, /`reason` is required/);
      assert.equal(cause.stack ?? '', '', 'no stack trace under the message');
      const rejected = await handle.executeUpdate(rejectUpdate, { args: [{ by: 'bob@example.com', reason: 'regressions' }] });
      assert.equal(rejected.outcome, ReleaseOutcome.Rejected, 'the reply says the release is now rejected');
      await handle.result().catch(() => undefined);
      assert.equal((await handle.describe()).typedSearchAttributes.get(ForgelineDecidedBy), 'bob@example.com');
    });
  });

  it('a tracker that fails never changes the outcome: a promoted release stays Candidate', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { calls, mocks } = releaseMocks();
    const down = async () => {
      throw ApplicationFailure.nonRetryable('W&B answered 500', 'TrackerDown');
    };
    const control = { ...split(mocks).control, openReleaseRun: down, logGateResults: down, closeReleaseRun: down };
    await withWorkers(env, { taskQueue, pool, control, gpu: split(mocks).gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool } })] });
      const result = await handle.result();
      assert.equal(result.outcome, ReleaseOutcome.Candidate);
      assert.equal((await handle.describe()).typedSearchAttributes.get(ForgelineOutcome), ReleaseOutcome.Candidate);
    });
    assert.ok(calls.includes('promoteCandidate'));
  });

  it('a tracker failing while the run is closed never masks the real error (GateFailed)', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { mocks } = releaseMocks({ exactMatch: 0.2 });
    const control = {
      ...split(mocks).control,
      async closeReleaseRun() {
        throw ApplicationFailure.nonRetryable('W&B answered 500', 'TrackerDown');
      },
    };
    await withWorkers(env, { taskQueue, pool, control, gpu: split(mocks).gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool } })] });
      const err = await handle.result().catch((e: unknown) => e);
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(String(err.cause?.message), /^gate failed: exact_match 0\.2 < 0\.5/, 'the headline is the gate, not the tracker');
      failureOfType(err, ErrorType.GateFailed);
    });
  });

  it('an invalid spec fails with a headline naming the fields, and the release is still found by its model', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const { mocks } = releaseMocks();
    const control: Partial<Activities> = { ...split(mocks).control, ...activitiesFor('control', {} as never) };
    await withWorkers(env, { taskQueue, control }, async () => {
      const bad = { model: 'support-bot', base: {}, trainer: { steps: -1 } };
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [bad] });
      const err = await handle.result().catch((e: unknown) => e);
      assert.ok(err instanceof WorkflowFailedError);
      assert.equal(err.cause?.message, 'invalid release spec: base, dataset, trainer.steps');
      const f = failureOfType(err, ErrorType.InvalidSpec);
      assert.equal(f.nonRetryable, true);
      const desc = await handle.describe();
      assert.equal(desc.typedSearchAttributes.get(ForgelineModel), 'support-bot');
      assert.equal(desc.typedSearchAttributes.get(ForgelineOutcome), ReleaseOutcome.Failed);
      assert.match(await currentDetails(handle), /^## support-bot: failed: invalid release spec: base, dataset, trainer.steps/);
    });
  });

  it('a GPU stage sent to a worker that does not serve it fails at once, naming the queue (WrongTaskQueue)', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-queues-'));
    const store = new LocalArtifactStore(pathToFileURL(path.join(dir, 'artifacts')).href);
    const deps = {
      artifacts: store,
      tracker: new LocalTracker({ home: dir }),
      registry: new ModelRegistry(store),
      jobs: {} as JobRunner,
      gpus: new LocalGpuAllocator([]),
      workDir: path.join(dir, 'work'),
      trackerProject: 'forgeline',
      workerIdentity: 'test',
      pool,
    };
    // Misconfigured: a control worker's activity set polls the GPU queue.
    const misrouted = await Worker.create({ connection: env.nativeConnection, taskQueue: gpuTaskQueue(pool), activities: activitiesFor('control', deps) });
    const controlWorker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await getWorkflowBundle(), activities: activitiesFor('control', deps) });
    await misrouted.runUntil(() =>
      controlWorker.runUntil(async () => {
        const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool } })] });
        const err = await handle.result().catch((e: unknown) => e);
        const f = failureOfType(err, ErrorType.WrongTaskQueue);
        assert.match(f.message, new RegExp(`activity trainAdapter is not served on task queue gpu-${pool}`));
        assert.match(String((err as WorkflowFailedError).cause?.message), /^train failed: activity trainAdapter is not served/);
        const started = ((await handle.fetchHistory()).events ?? []).filter((e) => e.activityTaskStartedEventAttributes);
        assert.equal(started.filter((e) => e.activityTaskStartedEventAttributes?.attempt === 1).length, started.length, 'no retry of a misrouted task');
        assert.equal((await handle.query(statusQuery)).stage, ReleaseStage.Train);
      }),
    );
  });
});

describe('release operators (time-skipping test server)', function () {
  this.timeout(60_000);
  it('an approval timeout ends Rejected and the details say so', async function () {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { mocks } = releaseMocks();
    const { control, gpu } = split(mocks);
    await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool }, approval: { required: true, timeout: '24h' } })] });
      await handle.result().catch(() => undefined);
      const details = await currentDetails(handle);
      assert.match(details, /^## demo: rejected: release rejected: ApprovalTimeout/);
    });
  });
});
