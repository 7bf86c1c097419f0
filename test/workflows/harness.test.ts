import assert from 'node:assert/strict';
import { Worker, bundleWorkflowCode } from '@temporalio/worker';
import { getTimeSkippingEnv, isolate } from '../helpers/temporal';

describe('test harness: time-skipping server (temporal-test-server from the venv)', function () {
  it('skips a two-day timer in well under a minute of real time', async function () {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(this);
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../fixtures/workflows/timer') });
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle });
    const before = await env.currentTimeMs();
    const result = await worker.runUntil(env.client.workflow.execute('sleepyWorkflow', { taskQueue, workflowId, args: ['2 days'] }));
    assert.equal(result, 'slept 2 days');
    assert.ok((await env.currentTimeMs()) - before >= 2 * 24 * 3600 * 1000, 'server clock moved two days');
  });
});
