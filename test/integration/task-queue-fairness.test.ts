/**
 * Temporal task-queue fairness, as teams' GPU stages use it (fairness key = team, weight from the
 * quota; src/contracts/quota.ts temporalPriority): the dev server we start (DEV_SERVER_DYNAMIC_CONFIG:
 * matching.enableFairness, matching.useNewMatcher, one partition) accepts the keys and dispatches
 * a backlog round-robin across keys; a server started without those flags dispatches it FIFO.
 */
import assert from 'node:assert/strict';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import { FORGELINE_SEARCH_ATTRIBUTES } from '../../src/contracts/search-attributes';
import type { FairnessActivities } from '../fixtures/workflows/fairness';
import { fairnessFanOutWorkflow } from '../fixtures/workflows/fairness';
import { getLocalEnv, isolate, quietRuntime, venvBin } from '../helpers/temporal';

const BIG = 12;
const SMALL = 3;

/** Queue BIG tasks of team `big` then SMALL of team `small`, in that order, with no worker; then one slot drains them. Returns the dispatch order. */
async function dispatchOrder(env: TestWorkflowEnvironment, test: Mocha.Context): Promise<{ order: string[]; scheduledPriority: unknown }> {
  const { taskQueue, workflowId } = isolate(test, 'fairness');
  const gpuQueue = `${taskQueue}-gpu`;
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../fixtures/workflows/fairness'), logger: new DefaultLogger('WARN') });
  const tasks = [
    ...Array.from({ length: BIG }, (_, i) => ({ id: `big-${i}`, fairnessKey: 'big', fairnessWeight: 1 })),
    ...Array.from({ length: SMALL }, (_, i) => ({ id: `small-${i}`, fairnessKey: 'small', fairnessWeight: 1 })),
  ];
  const control = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle });
  return control.runUntil(async () => {
    const handle = await env.client.workflow.start(fairnessFanOutWorkflow, { taskQueue, workflowId, args: [{ taskQueue: gpuQueue, gapMs: 150, tasks }] });
    // Every task is in the backlog before a worker polls.
    for (let i = 0; (await handle.describe()).raw.pendingActivities?.length !== tasks.length; i++) {
      assert.ok(i < 300, 'the activities were not all scheduled');
      await new Promise((r) => setTimeout(r, 100));
    }
    const order: string[] = [];
    const activities: FairnessActivities = {
      async recordDispatch(id) {
        order.push(id);
      },
    };
    const gpu = await Worker.create({ connection: env.nativeConnection, taskQueue: gpuQueue, activities, maxConcurrentActivityTaskExecutions: 1 });
    await gpu.runUntil(handle.result());
    const history = await handle.fetchHistory();
    const scheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes?.activityId && e.activityTaskScheduledEventAttributes.priority?.fairnessKey === 'small');
    return { order, scheduledPriority: scheduled?.activityTaskScheduledEventAttributes?.priority };
  });
}

describe('task-queue fairness (real Temporal dev servers)', function () {
  this.timeout(180_000);

  it('our dev server dispatches a backlog fairly across fairness keys', async function () {
    const { order, scheduledPriority } = await dispatchOrder(await getLocalEnv(), this);
    assert.equal(order.length, BIG + SMALL);
    const lastSmall = Math.max(...order.map((id, i) => (id.startsWith('small') ? i : -1)));
    // Round-robin over two keys: the three small tasks go within the first 2 * SMALL dispatches (FIFO: the last three).
    assert.ok(lastSmall < 2 * SMALL + 1, `small's tasks waited behind big's: ${order.join(' ')}`);
    assert.deepEqual(JSON.parse(JSON.stringify(scheduledPriority)), { fairnessKey: 'small', fairnessWeight: 1 });
  });

  it('without matching.enableFairness the same backlog is dispatched FIFO (so the flag is what makes it fair)', async function () {
    quietRuntime();
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: venvBin('temporal') },
        searchAttributes: [...FORGELINE_SEARCH_ATTRIBUTES],
        extraArgs: ['--log-level', 'error', '--dynamic-config-value', 'matching.numTaskqueueReadPartitions=1', '--dynamic-config-value', 'matching.numTaskqueueWritePartitions=1'],
      },
    });
    try {
      const { order } = await dispatchOrder(env, this);
      assert.deepEqual(order.slice(BIG), ['small-0', 'small-1', 'small-2'], order.join(' '));
    } finally {
      await env.teardown();
    }
  });
});
