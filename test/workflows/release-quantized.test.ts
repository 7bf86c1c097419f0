/**
 * A release whose candidate is served quantized (spec.serving.candidate `quantized`): the deploy
 * step launches the quantize stage's model on a server of its own, the canary shifts traffic to
 * that server's upstream, a rollback stops it, and a promotion that supersedes a quantized
 * production stops the old one after `keepPrevious`. Time-skipping test server, typed mocks (the
 * same release against the real vLLM: test/integration/quantized-serving.test.ts).
 */
import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { ErrorType } from '../../src/contracts/errors';
import { ReleaseOutcome } from '../../src/contracts/release-lifecycle';
import type { RouteTargets } from '../../src/contracts/routing';
import { ReleaseSpecSchema, type ReleaseSpecInput } from '../../src/contracts/specs/release-spec';
import { modelReleaseWorkflow } from '../../workflows';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import { badCandidateTraffic, quantizedWorld, type TrafficScript } from '../fixtures/serving';
import { failureOfType } from '../helpers/failures';
import { getTimeSkippingEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

const Q_CANDIDATE = 'demo@cccccccccccc-quantized';
const Q_SERVED = 'demo-cccccccccccc-quantized';
const STABLE = 'demo@base';

async function runRelease<T>(
  ctx: Mocha.Context,
  opts: { traffic?: TrafficScript; route?: RouteTargets; serving?: Partial<NonNullable<ReleaseSpecInput['serving']>> },
  fn: (result: Promise<Awaited<ReturnType<typeof modelReleaseWorkflow>>>, w: ReturnType<typeof quantizedWorld>) => Promise<T>,
): Promise<T> {
  const env = await getTimeSkippingEnv();
  const { taskQueue, workflowId } = isolate(ctx, 'release-q');
  const pool = uniquePool();
  const { control, gpu } = split(releaseMocks().mocks);
  const w = quantizedWorld(opts);
  const spec = releaseSpec({
    gpu: { pool },
    serving: { baseModel: 'tiny-base', candidate: 'quantized', canary: { steps: [10, 50, 100], bake: '10m' }, keepPrevious: '1h', monitor: { enabled: false }, ...opts.serving },
  });
  return withWorkers(env, { taskQueue, pool, control: { ...control, ...w.mocks }, gpu }, async () => {
    const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [spec] });
    return fn(handle.result(), w);
  });
}

describe('modelReleaseWorkflow with a quantized candidate (time-skipping test server, typed mock activities)', function () {
  this.timeout(120_000);

  it('refuses serving.candidate quantized when quantization is off, naming the field and the fix', function () {
    const r = ReleaseSpecSchema.safeParse({ ...releaseSpec(), quantization: { method: 'none' }, serving: { baseModel: 'tiny-base', candidate: 'quantized' } });
    assert.equal(r.success, false);
    assert.deepEqual(r.error!.issues[0]!.path, ['serving', 'candidate']);
    assert.match(r.error!.issues[0]!.message, /quantization\.method is none: set quantization\.method to gptq or awq, or serve the adapter/);
    assert.equal(ReleaseSpecSchema.parse({ ...releaseSpec(), serving: { baseModel: 'tiny-base' } }).serving?.candidate, 'adapter');
    assert.equal(ReleaseSpecSchema.safeParse({ ...releaseSpec(), serving: { baseModel: 'tiny-base', candidate: 'merged' } }).error?.issues[0]?.path.join('.'), 'serving.candidate');
  });

  it('launches the quantized model on its own server, shifts traffic to its upstream step by step, and promotes it (no adapter is loaded)', async function () {
    await runRelease(this, {}, async (result, w) => {
      const r = await result;
      assert.equal(r.outcome, ReleaseOutcome.Promoted);
      assert.deepEqual(r.serving?.candidate, { label: Q_CANDIDATE, servedModel: Q_SERVED, upstream: Q_SERVED, quantized: { model: 'demo', version: 'cccccccccccc' } });
      assert.ok(w.world.calls.includes(`launchQuantizedVersion ${Q_SERVED}`));
      assert.ok(!w.world.calls.some((c) => c.startsWith('deployVersion')), 'no adapter loaded');
      assert.deepEqual(w.world.weights, [
        { [STABLE]: 90, [Q_CANDIDATE]: 10 },
        { [STABLE]: 50, [Q_CANDIDATE]: 50 },
        { [STABLE]: 0, [Q_CANDIDATE]: 100 },
        { [Q_CANDIDATE]: 100 },
      ]);
      assert.deepEqual(w.world.route, [{ version: Q_CANDIDATE, upstream: Q_SERVED, model: Q_SERVED, weight: 100 }]);
      assert.deepEqual([...w.launched], [Q_SERVED], 'production keeps serving from the launched server');
    });
  });

  it('a failing canary rolls back: the route as before, then the quantized server stopped and its upstream removed', async function () {
    await runRelease(this, { traffic: badCandidateTraffic }, async (result, w) => {
      const err = await result.then(() => assert.fail('expected RolledBack'), (e: unknown) => e);
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(failureOfType(err, ErrorType.RolledBack).message, /canary failed at step 1/);
      assert.deepEqual(w.world.calls.slice(-3), ['setTrafficWeights', 'restoreProduction', `stopQuantizedVersion ${Q_SERVED}`]);
      assert.deepEqual(w.world.route, [{ version: STABLE, upstream: 'vllm', model: 'tiny-base', weight: 100 }]);
      assert.equal(w.launched.size, 0);
      assert.equal(w.upstreams.size, 0);
    });
  });

  it('a promotion that supersedes a quantized production stops its server after keepPrevious', async function () {
    const old = 'demo@bbbbbbbbbbbb-quantized';
    const oldServed = 'demo-bbbbbbbbbbbb-quantized';
    const route: RouteTargets = [{ version: old, upstream: oldServed, model: oldServed, weight: 100 }];
    await runRelease(this, { route }, async (result, w) => {
      const r = await result;
      assert.equal(r.outcome, ReleaseOutcome.Promoted);
      assert.deepEqual(r.serving?.stable, { label: old, servedModel: oldServed, upstream: oldServed, quantized: { model: 'demo', version: 'bbbbbbbbbbbb' } });
      assert.equal(w.world.calls.at(-1), `stopQuantizedVersion ${oldServed}`);
      assert.ok(w.world.calls.indexOf('promoteProduction') < w.world.calls.indexOf(`stopQuantizedVersion ${oldServed}`));
    });
  });

  it('rolling back over a quantized stable launches it again (found running, or started) before traffic returns to it', async function () {
    const old = 'demo@bbbbbbbbbbbb-quantized';
    const oldServed = 'demo-bbbbbbbbbbbb-quantized';
    const route: RouteTargets = [{ version: old, upstream: oldServed, model: oldServed, weight: 100 }];
    await runRelease(this, { route, traffic: badCandidateTraffic, serving: { candidate: 'adapter' } }, async (result, w) => {
      await result.then(() => assert.fail('expected RolledBack'), () => undefined);
      const tail = w.world.calls.slice(-4);
      assert.deepEqual(tail, [`launchQuantizedVersion ${oldServed}`, 'setTrafficWeights', 'restoreProduction', 'unloadVersion demo-aaaaaaaaaaaa']);
      assert.deepEqual(w.world.route, route);
    });
  });
});
