/**
 * The dev server's task dispatch is not capped by the history shard's transfer-queue read budget
 * (src/temporal/dev-server.ts DEV_SERVER_DYNAMIC_CONFIG), on the same server the tests and
 * `forgeline dev` start.
 *
 * Why this cannot pass with the default budget: each step of the chain creates a transfer task
 * only after the previous one was read, so the server needs at least 2 distinct reads per step.
 * At the default 20 reads/s (token bucket, burst 20) 100 steps take at least (200 - 20) / 20 = 9 s,
 * however fast the machine: 90 ms a step. Lifted, a step takes what the worker and the server
 * need (see the test's output); only a machine too loaded to do a step in 90 ms fails it.
 */
import assert from 'node:assert/strict';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import type { ChainActivities } from '../fixtures/workflows/activity-chain';
import { getLocalEnv, isolate } from '../helpers/temporal';

const STEPS = 100;
const DEFAULT_READS_PER_S = 20;
const DEFAULT_BURST = 20;
const floorMs = ((2 * STEPS - DEFAULT_BURST) / DEFAULT_READS_PER_S) * 1000;

describe('dev server dispatch (real Temporal dev server)', function () {
  this.timeout(60_000);

  it(`runs ${STEPS} sequential non-eager activities faster than the default transfer-queue read budget allows`, async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this);
    const activityQueue = `${taskQueue}-activities`;
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../fixtures/workflows/activity-chain'), logger: new DefaultLogger('WARN') });
    const activities: ChainActivities = { step: async (i) => i + 1 };
    const workflows = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle });
    const acts = await Worker.create({ connection: env.nativeConnection, taskQueue: activityQueue, activities });

    const history = await acts.runUntil(
      workflows.runUntil(async () => {
        const handle = await env.client.workflow.start('activityChainWorkflow', { taskQueue, workflowId, args: [STEPS, activityQueue] });
        assert.equal(await handle.result(), STEPS);
        return handle.fetchHistory();
      }),
    );
    const events = history.events ?? [];
    const at = (i: number) => {
      const t = events[i]?.eventTime;
      return Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
    };
    const elapsedMs = at(events.length - 1) - at(0);
    console.log(`      ${STEPS} steps in ${Math.round(elapsedMs)} ms (${(elapsedMs / STEPS).toFixed(1)} ms a step; the default budget's floor is ${floorMs} ms)`);
    assert.ok(elapsedMs < floorMs, `${STEPS} steps took ${Math.round(elapsedMs)} ms, not under the ${floorMs} ms floor of 20 transfer-queue reads/s: is DEV_SERVER_DYNAMIC_CONFIG applied?`);
  });
});
