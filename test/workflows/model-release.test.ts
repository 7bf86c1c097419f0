import assert from 'node:assert/strict';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { Activities } from '../../activities';
import { ErrorType } from '../../src/contracts/errors';
import { ReleaseOutcome, ReleaseStage, type ReleaseStatus } from '../../src/contracts/release-lifecycle';
import { ForgelineGitSha, ForgelineModel, ForgelineOutcome, ForgelineStage } from '../../src/contracts/search-attributes';
import { abortUpdate, approveUpdate, modelReleaseWorkflow, rejectUpdate, statusQuery } from '../../workflows';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import { failureOfType } from '../helpers/failures';
import { getLocalEnv, getTimeSkippingEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

async function until(handle: WorkflowHandle, pred: (s: ReleaseStatus) => boolean): Promise<ReleaseStatus> {
  for (;;) {
    const s = await handle.query(statusQuery).catch(() => undefined);
    if (s && pred(s)) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('modelReleaseWorkflow (real Temporal dev server, typed mock activities)', function () {
  this.timeout(60_000);

  it('runs train → quantize → evaluate → register → candidate, on gpu-<pool>, with search attributes kept current', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { calls, mocks } = releaseMocks();
    const { control, gpu } = split(mocks);
    await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool } })] });
      const result = await handle.result();
      assert.equal(result.outcome, ReleaseOutcome.Candidate);
      assert.equal(result.metrics.exact_match, 0.7);
      assert.equal(result.versions.quantized, 'cccccccccccc');
      const desc = await handle.describe();
      assert.equal(desc.typedSearchAttributes.get(ForgelineModel), 'demo');
      assert.equal(desc.typedSearchAttributes.get(ForgelineGitSha), 'abc1234');
      assert.equal(desc.typedSearchAttributes.get(ForgelineStage), ReleaseStage.Done);
      assert.equal(desc.typedSearchAttributes.get(ForgelineOutcome), ReleaseOutcome.Candidate);
      assert.match(String(desc.memo?.summary), /demo: trl-sft-lora on t/);
      const status = await handle.query(statusQuery);
      assert.deepEqual(status.gates, [{ gate: 'exact_match >= 0.5', passed: true, reason: 'exact_match 0.7 >= 0.5' }]);
      // Each stage's UI summary is a sentence.
      const events = (await handle.fetchHistory()).events ?? [];
      const train = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainAdapter');
      assert.ok(train?.userMetadata?.summary, 'trainAdapter carries a summary for the UI');
    });
    assert.deepEqual(calls, ['validateReleaseSpec', 'openReleaseRun', 'trainAdapter', 'quantizeModel', 'runEvalSuite', 'logGateResults', 'registerRelease', 'promoteCandidate', 'closeReleaseRun']);
  });

  it('rejects the release when a gate fails, naming the metric and threshold, non-retryable', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { calls, mocks } = releaseMocks({ exactMatch: 0.41 });
    const { control, gpu } = split(mocks);
    await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool } })] });
      const err = await handle.result().catch((e: unknown) => e);
      const f = failureOfType(err, ErrorType.GateFailed);
      assert.equal(f.nonRetryable, true);
      assert.match(f.message, /exact_match 0\.41 < 0\.5 \(gate exact_match >= 0\.5\)/);
      const status = await handle.query(statusQuery);
      assert.equal(status.outcome, ReleaseOutcome.Rejected);
      assert.equal(status.rejectReason, 'GateFailed');
      assert.equal((await handle.describe()).typedSearchAttributes.get(ForgelineOutcome), ReleaseOutcome.Rejected);
    });
    assert.ok(calls.includes('registerRelease'), 'a rejected release is still registered, for the audit trail');
    assert.ok(!calls.includes('promoteCandidate'));
    assert.equal(calls[calls.length - 1], 'closeReleaseRun');
  });

  it('waits for approval; the validator refuses a decision without who or why; approve makes the candidate', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { mocks } = releaseMocks();
    const { control, gpu } = split(mocks);
    await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool }, approval: { required: true, timeout: '1h' } })] });
      await until(handle, (s) => s.awaitingApproval);
      const refused = await handle.executeUpdate(approveUpdate, { args: [{ by: '', reason: 'looks good' }] }).catch((e: unknown) => e);
      assert.ok(refused instanceof WorkflowUpdateFailedError);
      assert.match(String(refused.cause?.message), /`by` is required/);
      const status = await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice@example.com', reason: 'eval table reviewed' }] });
      assert.equal(status.decision?.kind, 'approved');
      // The approve reply comes once the candidate alias moved, so the release may already have
      // ended: a second decision is refused by the validator, or finds the release closed.
      const second = await handle.executeUpdate(rejectUpdate, { args: [{ by: 'bob', reason: 'late' }] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(second instanceof Error, 'a second decision is refused');
      if (second instanceof WorkflowUpdateFailedError) assert.match(String(second.cause?.message), /already approved by alice@example.com|not awaiting approval/);
      else assert.match(second.message, /completed|closed|not found/i, String(second));
      const result = await handle.result();
      assert.equal(result.approvedBy, 'alice@example.com');
    });
  });

  it('ends Rejected with the operator and reason on rejectUpdate', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { calls, mocks } = releaseMocks();
    const { control, gpu } = split(mocks);
    await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool }, approval: { required: true, timeout: '1h' } })] });
      await until(handle, (s) => s.awaitingApproval);
      await handle.executeUpdate(rejectUpdate, { args: [{ by: 'bob@example.com', reason: 'regression on refunds' }] });
      const f = failureOfType(await handle.result().catch((e: unknown) => e), ErrorType.Rejected);
      assert.match(f.message, /rejected by bob@example\.com: regression on refunds/);
      assert.equal((await handle.query(statusQuery)).rejectReason, 'OperatorRejected');
    });
    assert.ok(!calls.includes('promoteCandidate'));
  });

  it('retries transient stage faults, then fails for good on a non-retryable one', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { mocks } = releaseMocks();
    let trainAttempts = 0;
    const gpuMocks: Partial<Activities> = {
      ...split(mocks).gpu,
      async trainAdapter() {
        if (++trainAttempts < 3) throw ApplicationFailure.retryable('worker lost the GPU', 'RecipeCrashed');
        return mocks.trainAdapter.call(undefined);
      },
      async quantizeModel() {
        throw ApplicationFailure.nonRetryable('recipe quantize: AWQ needs CUDA', ErrorType.RecipeFailed);
      },
    };
    await withWorkers(env, { taskQueue, pool, control: split(mocks).control, gpu: gpuMocks }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool } })] });
      const f = failureOfType(await handle.result().catch((e: unknown) => e), ErrorType.RecipeFailed);
      assert.match(f.message, /AWQ needs CUDA/);
      assert.equal((await handle.query(statusQuery)).outcome, ReleaseOutcome.Failed);
    });
    assert.equal(trainAttempts, 3);
  });

  it('abortUpdate cancels the running stage and records who and why', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { calls, mocks } = releaseMocks();
    let cancelled = false;
    const gpuMocks: Partial<Activities> = {
      ...split(mocks).gpu,
      async trainAdapter() {
        const ctx = Context.current();
        const beat = setInterval(() => ctx.heartbeat({ step: 1 }), 100);
        try {
          await ctx.cancelled;
        } catch (err) {
          cancelled = true;
          throw err;
        } finally {
          clearInterval(beat);
        }
        throw new Error('unreachable');
      },
    };
    await withWorkers(env, { taskQueue, pool, control: split(mocks).control, gpu: gpuMocks }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool } })] });
      await until(handle, (s) => s.stage === ReleaseStage.Train);
      const refused = await handle.executeUpdate(abortUpdate, { args: [{ by: 'carol', reason: '' }] }).catch((e: unknown) => e);
      assert.ok(refused instanceof WorkflowUpdateFailedError, 'abort needs a reason');
      await handle.executeUpdate(abortUpdate, { args: [{ by: 'carol@example.com', reason: 'wrong dataset' }] });
      const f = failureOfType(await handle.result().catch((e: unknown) => e), ErrorType.Aborted);
      assert.match(f.message, /aborted by carol@example\.com: wrong dataset/);
      assert.equal((await handle.describe()).typedSearchAttributes.get(ForgelineOutcome), ReleaseOutcome.Aborted);
    });
    assert.ok(cancelled, 'the running activity saw the cancellation');
    assert.equal(calls[calls.length - 1], 'closeReleaseRun', 'the tracker run is closed even when aborted');
  });
});

describe('modelReleaseWorkflow (time-skipping test server)', function () {
  this.timeout(60_000);
  it('ends Rejected with ApprovalTimeout when nobody decides within approval.timeout', async function () {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { mocks } = releaseMocks();
    const { control, gpu } = split(mocks);
    await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool }, approval: { required: true, timeout: '24h' } })] });
      const f = failureOfType(await handle.result().catch((e: unknown) => e), ErrorType.Rejected);
      assert.match(f.message, /ApprovalTimeout \(no decision within 24h\)/);
    });
  });
});
