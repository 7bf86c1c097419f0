import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ErrorType } from '../../src/contracts/errors';
import type { DriftMonitorInput } from '../../src/contracts/drift-monitor';
import { rollbackWorkflowId } from '../../src/contracts/drift-monitor';
import type { ServingPlan } from '../../src/contracts/release-lifecycle';
import { driftMonitorWorkflow, driftStatusQuery, stopMonitorUpdate } from '../../workflows';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import { servingWorld } from '../fixtures/serving';
import { getLocalEnv, getTimeSkippingEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

const CANDIDATE = 'demo@aaaaaaaaaaaa';

function monitorInput(pool: string, releaseId: string, monitor: Record<string, unknown>): DriftMonitorInput {
  const spec = releaseSpec({
    gpu: { pool },
    serving: {
      baseModel: 'tiny-base',
      monitor: { every: '15m', window: '1h', checksPerRun: 3, duration: '1d', ...monitor },
    },
  });
  const plan: ServingPlan = {
    releaseId,
    model: 'demo',
    alias: 'demo',
    baseModel: 'tiny-base',
    before: [{ version: 'demo@base', upstream: 'vllm', model: 'tiny-base', weight: 100 }],
    stable: { label: 'demo@base', servedModel: 'tiny-base', upstream: 'vllm' },
    candidate: { label: CANDIDATE, servedModel: 'demo-aaaaaaaaaaaa', upstream: 'vllm', adapter: { model: 'demo', version: 'aaaaaaaaaaaa' } },
    versions: { adapter: 'aaaaaaaaaaaa' },
  };
  return { plan, monitor: spec.serving!.monitor, releaseSpec: spec };
}

const breachOnThird = (n: number) => (n >= 2 ? { breaches: ['input drift: model score 0.93 > threshold 0.55 (200 prompts vs 900 reference)'], input: { method: 'model', drifted: true, score: 0.93, threshold: 0.55 } } : {});

describe('driftMonitorWorkflow (time-skipping test server, typed mock activities)', function () {
  this.timeout(120_000);

  it('a breach with onBreach rollback runs the release rollback saga: traffic to stable, production back, candidate unloaded; monitoring ends', async function () {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(this, 'drift');
    const releaseId = `release/demo/${workflowId.slice(-8)}`;
    const { world, mocks } = servingWorld({ drift: breachOnThird, route: [{ version: CANDIDATE, upstream: 'vllm', model: 'demo-aaaaaaaaaaaa', weight: 100 }] });
    world.production = 'aaaaaaaaaaaa';
    world.loaded.add('demo-aaaaaaaaaaaa');
    await withWorkers(env, { taskQueue, control: mocks }, async () => {
      const handle = await env.client.workflow.start(driftMonitorWorkflow, { taskQueue, workflowId, args: [monitorInput('p', releaseId, { onBreach: 'rollback' })] });
      const status = await handle.result();
      assert.equal(status.checks, 3);
      assert.equal(status.lastAction?.action, 'rollback');
      assert.equal(status.lastAction?.workflowId, rollbackWorkflowId(releaseId));
      assert.match(status.stopped ?? '', /rolled back/);
      assert.deepEqual(world.route, [{ version: 'demo@base', upstream: 'vllm', model: 'tiny-base', weight: 100 }]);
      assert.equal(world.production, undefined);
      assert.equal(world.loaded.has('demo-aaaaaaaaaaaa'), false);
      assert.equal(world.driftChecks, 3, 'no check after the rollback');
    });
  });

  it('a breach with onBreach retrain starts one new release on the new dataset, and monitoring goes on', async function () {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(this, 'drift');
    const pool = uniquePool();
    const { mocks: release } = releaseMocks();
    const { control, gpu } = split(release);
    const seen: unknown[] = [];
    const { world, mocks } = servingWorld({ drift: (n) => (n >= 1 ? { breaches: ['empty answers 0.40 > maxEmptyRate 0.2'] } : {}) });
    const dataset = { uri: 'artifact://datasets/fresh/', sha256: 'b'.repeat(64) };
    // The retraining release is recorded, then ends at validation: a release left running would
    // keep the time-skipping server from skipping time for the tests after this one.
    const stopAfterRecording = async (raw: unknown): Promise<never> => {
      seen.push(raw);
      throw ApplicationFailure.nonRetryable('recorded by the test; stops here', ErrorType.InvalidSpec);
    };
    await withWorkers(env, { taskQueue, pool, control: { ...control, ...mocks, validateReleaseSpec: stopAfterRecording }, gpu }, async () => {
      const input = monitorInput(pool, `release/demo/${workflowId.slice(-8)}`, { onBreach: 'retrain', retrain: { dataset }, checksPerRun: 3, duration: '50m' });
      const handle = await env.client.workflow.start(driftMonitorWorkflow, { taskQueue, workflowId, args: [input] });
      const status = await handle.result();
      assert.equal(status.lastAction?.action, 'alert', 'the second breach only alerts: one retraining release per monitor');
      assert.match(status.stopped ?? '', /monitoring ended after 50m/);
      assert.ok(world.driftChecks >= 3);
      const retrain = seen.find((raw) => (raw as { dataset?: { sha256?: string } }).dataset?.sha256 === dataset.sha256) as { serving?: unknown; git?: unknown } | undefined;
      assert.ok(retrain, 'a release was started on the new dataset');
      assert.deepEqual(retrain.git, {});
      assert.ok(retrain.serving, 'the retraining release canaries like the one it replaces');
    });
  });

  it('an alert-only breach is recorded and the monitor continues as new after checksPerRun checks', async function () {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(this, 'drift');
    const { world, mocks } = servingWorld({ drift: breachOnThird });
    await withWorkers(env, { taskQueue, control: mocks }, async () => {
      const handle = await env.client.workflow.start(driftMonitorWorkflow, { taskQueue, workflowId, args: [monitorInput('p', 'release/demo/x', { onBreach: 'alert', checksPerRun: 2, duration: '2h' })] });
      const status = await handle.result(); // follows continue-as-new to the last run
      assert.equal(status.lastAction?.action, 'alert');
      assert.ok(status.checks >= 3, `checks ${status.checks}`);
      assert.match(status.stopped ?? '', /monitoring ended after 2h/);
      assert.equal(world.calls.includes('setTrafficWeights'), false, 'alert never touches traffic');
      // checksPerRun is 2, so a third check happened in a later run: continue-as-new carried the state.
      assert.notEqual((await handle.describe()).runId, handle.firstExecutionRunId);
    });
  });

  it('stopMonitor ends monitoring with who and why; a second stop is refused (real-time dev server)', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'drift');
    const { mocks } = servingWorld();
    await withWorkers(env, { taskQueue, control: mocks }, async () => {
      const handle = await env.client.workflow.start(driftMonitorWorkflow, { taskQueue, workflowId, args: [monitorInput('p', 'release/demo/y', {})] });
      const s = await handle.executeUpdate(stopMonitorUpdate, { args: [{ by: 'oncall@example.com', reason: 'replaced by the next release' }] });
      assert.match(s.stopped ?? '', /stopped by oncall@example.com: replaced by the next release/);
      // refused: already stopped (or the monitor has already ended)
      await assert.rejects(handle.executeUpdate(stopMonitorUpdate, { args: [{ by: 'x', reason: 'y' }] }), (e: unknown) => e instanceof WorkflowUpdateFailedError || /completed/.test(String(e)));
      const status = await handle.result();
      assert.equal(status.checks, 0);
      assert.equal((await handle.query(driftStatusQuery)).stopped, s.stopped);
    });
  });
});
