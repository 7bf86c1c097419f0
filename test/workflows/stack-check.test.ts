import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/activity';
import { ActivityFailure, TimeoutFailure, WorkflowFailedError } from '@temporalio/client';
import { TimeoutType } from '@temporalio/common';
import type { Activities } from '../../activities';
import { createStackCheckActivities } from '../../activities/stack-check';
import { ErrorType } from '../../src/contracts/errors';
import { ForgelineOutcome, ForgelineStage, Outcome } from '../../src/contracts/search-attributes';
import type { StackProbeInput } from '../../src/contracts/stack-check';
import { fakeProbe } from '../fixtures/stack-probe';
import { stackCheckStatusQuery, stackCheckWorkflow } from '../../workflows';
import { failureOfType } from '../helpers/failures';
import { getLocalEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

/** The real validation activity; it needs no ports. */
const { validateStackCheckSpec } = createStackCheckActivities({} as never);

describe('stackCheckWorkflow (real Temporal dev server, mocked activities)', function () {
  it('routes the probe to gpu-<pool>, returns its result and marks the outcome Succeeded', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'stack-check');
    const pool = uniquePool();
    const seen: StackProbeInput[] = [];
    const result = await withWorkers(
      env,
      {
        taskQueue,
        pool,
        control: { validateStackCheckSpec },
        gpu: {
          async runStackProbe(input) {
            seen.push(input);
            return fakeProbe(input);
          },
        } satisfies Partial<Activities>,
      },
      async () => {
        const handle = await env.client.workflow.start(stackCheckWorkflow, { taskQueue, workflowId, args: [{ pool, payloadBytes: 4096, note: 'ci' }] });
        const res = await handle.result();
        const desc = await handle.describe();
        assert.deepEqual(desc.typedSearchAttributes.get(ForgelineOutcome), Outcome.Succeeded);
        assert.deepEqual(desc.typedSearchAttributes.get(ForgelineStage), 'done');
        assert.deepEqual(await handle.query(stackCheckStatusQuery), { stage: 'done', pool, workerIdentity: 'test-gpu-worker' });
        return res;
      },
    );
    assert.equal(result.checkId, workflowId);
    assert.equal(result.probe.pool, pool);
    assert.deepEqual(seen, [{ checkId: workflowId, pool, payloadBytes: 4096, note: 'ci' }]);
  });

  it('fails fast, non-retryable, naming the field, when started with a bad spec (as from the UI)', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'stack-check');
    let attempts = 0;
    await withWorkers(
      env,
      {
        taskQueue,
        control: {
          async validateStackCheckSpec(spec) {
            attempts++;
            return validateStackCheckSpec(spec);
          },
        },
      },
      async () => {
        const bad = { pool: 'GPU Pool!', payloadBytes: -1, extra: true } as never;
        const err = await env.client.workflow.execute(stackCheckWorkflow, { taskQueue, workflowId, args: [bad] }).catch((e: unknown) => e);
        const cause = failureOfType(err, ErrorType.InvalidSpec);
        assert.equal(cause.nonRetryable, true);
        assert.match(cause.message, /pool: expected a pool name/);
        assert.match(cause.message, /payloadBytes: expected at least 1 byte/);
        assert.match(cause.message, /extra/);
      },
    );
    assert.equal(attempts, 1, 'a bad spec must not be retried');
  });

  it('retries a transient probe fault, then succeeds', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'stack-check');
    const pool = uniquePool();
    let calls = 0;
    const res = await withWorkers(
      env,
      {
        taskQueue,
        pool,
        control: { validateStackCheckSpec },
        gpu: {
          async runStackProbe(input) {
            if (++calls < 3) throw new Error('ECONNRESET talking to the artifact store');
            return fakeProbe(input);
          },
        },
      },
      () => env.client.workflow.execute(stackCheckWorkflow, { taskQueue, workflowId, args: [{ pool }] }),
    );
    assert.equal(calls, 3);
    assert.equal(res.probe.metrics.payloadBytes, 1 << 20, 'default payload is 1 MiB');
  });

  it('ends Failed with the queue named when the probe fails for good', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'stack-check');
    const pool = uniquePool();
    await withWorkers(
      env,
      {
        taskQueue,
        pool,
        control: { validateStackCheckSpec },
        gpu: {
          async runStackProbe() {
            throw ApplicationFailure.nonRetryable('bucket forgeline-artifacts does not exist', ErrorType.InvalidConfig);
          },
        },
      },
      async () => {
        const handle = await env.client.workflow.start(stackCheckWorkflow, { taskQueue, workflowId, args: [{ pool }] });
        const err = await handle.result().catch((e: unknown) => e);
        assert.ok(err instanceof WorkflowFailedError);
        assert.match(failureOfType(err, ErrorType.StackCheckFailed).message, new RegExp(`gpu-${pool}`));
        assert.match(failureOfType(err, ErrorType.InvalidConfig).message, /bucket forgeline-artifacts does not exist/);
        assert.equal((await handle.describe()).typedSearchAttributes.get(ForgelineOutcome), Outcome.Failed);
      },
    );
  });

  it('times out when no worker serves the pool, naming the queue', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'stack-check');
    const pool = uniquePool();
    await withWorkers(env, { taskQueue, control: { validateStackCheckSpec } }, async () => {
      const err = await env.client.workflow.execute(stackCheckWorkflow, { taskQueue, workflowId, args: [{ pool, timeout: '2s' }] }).catch((e: unknown) => e);
      const failure = failureOfType(err, ErrorType.StackCheckFailed);
      assert.match(failure.message, new RegExp(`gpu-${pool}.*is a GPU worker for pool '${pool}' running`));
      assert.ok(failure.cause instanceof ActivityFailure && failure.cause.cause instanceof TimeoutFailure, 'cause is the activity timeout');
      assert.equal(failure.cause.cause.timeoutType, TimeoutType.SCHEDULE_TO_START, 'never picked up by a worker');
    });
  });
});
