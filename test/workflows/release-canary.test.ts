import assert from 'node:assert/strict';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../../activities';
import { driftMonitorWorkflowId } from '../../src/contracts/drift-monitor';
import { ErrorType } from '../../src/contracts/errors';
import { ReleaseOutcome, ReleaseStage, type ReleaseStatus } from '../../src/contracts/release-lifecycle';
import type { ReleaseSpecInput } from '../../src/contracts/specs/release-spec';
import { ForgelineOutcome } from '../../src/contracts/search-attributes';
import { abortUpdate, modelReleaseWorkflow, pauseUpdate, promoteNowUpdate, resumeUpdate, rollbackUpdate, statusQuery } from '../../workflows';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import { badCandidateTraffic, healthyTraffic, lowTraffic, servingWorld, versionMetrics, type TrafficScript } from '../fixtures/serving';
import { failureOfType } from '../helpers/failures';
import { getLocalEnv, getTimeSkippingEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

const CANDIDATE = 'demo@aaaaaaaaaaaa';
const STABLE = 'demo@base';
const who = { by: 'oncall@example.com', reason: 'canary test' };

function servingSpec(pool: string, serving: Partial<NonNullable<ReleaseSpecInput['serving']>> = {}) {
  return releaseSpec({
    gpu: { pool },
    serving: { baseModel: 'tiny-base', canary: { steps: [5, 25, 50, 100], bake: '10m' }, keepPrevious: '1h', monitor: { enabled: false }, ...serving },
  });
}

/** Poll the status query (the time-skipping server does not move time meanwhile). */
async function until(handle: WorkflowHandle, pred: (s: ReleaseStatus) => boolean): Promise<ReleaseStatus> {
  for (;;) {
    const s = await handle.query(statusQuery).catch(() => undefined);
    if (s && pred(s)) return s;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Move the time-skipping server's clock in steps until the status satisfies `pred`. */
async function advanceUntil(env: TestWorkflowEnvironment, handle: WorkflowHandle, pred: (s: ReleaseStatus) => boolean, step = '1m'): Promise<ReleaseStatus> {
  for (let i = 0; i < 500; i++) {
    const s = await handle.query(statusQuery).catch(() => undefined);
    if (s && pred(s)) return s;
    await env.sleep(step);
  }
  throw new Error('the release never reached the expected state');
}

async function runRelease<T>(
  ctx: Mocha.Context,
  opts: { traffic?: TrafficScript; serving?: Partial<NonNullable<ReleaseSpecInput['serving']>>; extra?: Partial<Activities>; gpuExtra?: Partial<Activities>; realTime?: boolean },
  fn: (h: WorkflowHandle<typeof modelReleaseWorkflow>, w: ReturnType<typeof servingWorld>['world'], env: TestWorkflowEnvironment) => Promise<T>,
): Promise<T> {
  const env = opts.realTime ? await getLocalEnv() : await getTimeSkippingEnv();
  const { taskQueue, workflowId } = isolate(ctx, 'release');
  const pool = uniquePool();
  const { mocks } = releaseMocks();
  const { control, gpu } = split(mocks);
  const { world, mocks: serving } = servingWorld({ ...(opts.traffic ? { traffic: opts.traffic } : {}) });
  return withWorkers(env, { taskQueue, pool, control: { ...control, ...serving, ...opts.extra }, gpu: { ...gpu, ...opts.gpuExtra } }, async () => {
    const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [servingSpec(pool, opts.serving)] });
    return fn(handle, world, env);
  });
}

describe('modelReleaseWorkflow canary (time-skipping test server, typed mock activities)', function () {
  this.timeout(120_000);

  it('passes every step of 5 → 25 → 50 → 100%, then promotes: production moves, all traffic on the candidate, stable untouched', async function () {
    await runRelease(this, {}, async (handle, world) => {
      const result = await handle.result();
      assert.equal(result.outcome, ReleaseOutcome.Promoted);
      assert.equal(result.serving?.candidate.label, CANDIDATE);
      assert.deepEqual(world.weights, [
        { [STABLE]: 95, [CANDIDATE]: 5 },
        { [STABLE]: 75, [CANDIDATE]: 25 },
        { [STABLE]: 50, [CANDIDATE]: 50 },
        { [STABLE]: 0, [CANDIDATE]: 100 },
        { [CANDIDATE]: 100 },
      ]);
      assert.equal(world.production, 'aaaaaaaaaaaa');
      assert.ok(world.loaded.has('demo-aaaaaaaaaaaa'));
      const status = await handle.query(statusQuery);
      assert.deepEqual(
        status.canary?.analyses.map((a) => [a.step, a.weight, a.verdict]),
        [
          [1, 5, 'Pass'],
          [2, 25, 'Pass'],
          [3, 50, 'Pass'],
          [4, 100, 'Pass'],
        ],
      );
      assert.equal((await handle.describe()).typedSearchAttributes.get(ForgelineOutcome), ReleaseOutcome.Promoted);
    });
  });

  it('fails the analysis on a bad candidate and rolls back: traffic as before, candidate unloaded, production untouched (RolledBack)', async function () {
    await runRelease(this, { traffic: badCandidateTraffic }, async (handle, world) => {
      const err = await handle.result().catch((e: unknown) => e);
      assert.ok(err instanceof WorkflowFailedError, String(err));
      const f = failureOfType(err, ErrorType.RolledBack);
      assert.match(f.message, /^canary failed at step 1 \(5%\): .*error_rate.*; rolled back$/);
      assert.deepEqual(world.route, [{ version: STABLE, upstream: 'vllm', model: 'tiny-base', weight: 100 }]);
      assert.equal(world.loaded.has('demo-aaaaaaaaaaaa'), false);
      assert.equal(world.production, undefined);
      const status = await handle.query(statusQuery);
      assert.equal(status.outcome, ReleaseOutcome.RolledBack);
      assert.equal(status.canary?.lastAnalysis?.verdict, 'Fail');
      assert.equal(world.fetches, 1, 'no step after the failed one');
    });
  });

  it('extends the bake on an inconclusive analysis, then passes once the window has enough samples', async function () {
    const thinThenHealthy: TrafficScript = (n, v) => (n === 0 ? lowTraffic(n, v) : healthyTraffic(n, v));
    await runRelease(this, { traffic: thinThenHealthy }, async (handle) => {
      const result = await handle.result();
      assert.equal(result.outcome, ReleaseOutcome.Promoted);
      const status = await handle.query(statusQuery);
      assert.deepEqual(
        status.canary?.analyses.slice(0, 2).map((a) => [a.step, a.bake, a.verdict]),
        [
          [1, 1, 'Inconclusive'],
          [1, 2, 'Pass'],
        ],
      );
    });
  });

  it('keeps low traffic Inconclusive (never Fail), pauses for an operator after maxExtensions, and the operator rolls back', async function () {
    await runRelease(this, { traffic: lowTraffic, serving: { canary: { steps: [10, 100], bake: '5m', maxExtensions: 2 } } }, async (handle, world, env) => {
      const s = await advanceUntil(env, handle, (x) => x.canary?.paused === true);
      assert.deepEqual(
        s.canary?.analyses.map((a) => a.verdict),
        ['Inconclusive', 'Inconclusive', 'Inconclusive'],
      );
      assert.match(s.canary?.pausedReason ?? '', /inconclusive after 3 bake\(s\) at step 1 \(10%\)/);
      const reply = await handle.executeUpdate(rollbackUpdate, { args: [who] });
      assert.equal(reply.outcome, ReleaseOutcome.RolledBack);
      assert.equal(world.route?.[0]?.version, STABLE);
      assert.equal(world.route?.[0]?.weight, 100);
      await assert.rejects(handle.result(), (e: unknown) => e instanceof WorkflowFailedError && failureOfType(e, ErrorType.RolledBack).message.includes('rolled back by oncall@example.com'));
    });
  });

  it('a paused canary does not advance while time passes; resume bakes the step again and the release goes on', async function () {
    await runRelease(this, {}, async (handle, world, env) => {
      await until(handle, (s) => s.stage === ReleaseStage.Canary && s.canary?.step === 1 && world.weights.length === 1);
      const p = await handle.executeUpdate(pauseUpdate, { args: [who] });
      assert.equal(p.canary?.paused, true);
      await assert.rejects(handle.executeUpdate(pauseUpdate, { args: [who] }), (e: unknown) => e instanceof WorkflowUpdateFailedError && /already paused/.test(String(e.cause?.message)));
      await env.sleep('3h');
      const held = await handle.query(statusQuery);
      assert.equal(held.canary?.step, 1);
      assert.equal(held.canary?.analyses.length, 0, 'no analysis while paused');
      assert.equal(world.fetches, 0);
      await handle.executeUpdate(resumeUpdate, { args: [who] });
      await assert.rejects(handle.executeUpdate(resumeUpdate, { args: [who] }), (e: unknown) => e instanceof WorkflowUpdateFailedError && /not paused/.test(String(e.cause?.message)));
      const result = await handle.result();
      assert.equal(result.outcome, ReleaseOutcome.Promoted);
      const status = await handle.query(statusQuery);
      assert.deepEqual(
        status.canary?.actions.map((a) => a.kind),
        ['paused', 'resumed'],
      );
    });
  });

  it('promote now skips the remaining steps: all traffic to the candidate, production moves', async function () {
    await runRelease(this, {}, async (handle, world) => {
      await until(handle, (s) => s.stage === ReleaseStage.Canary && world.weights.length === 1);
      const reply = await handle.executeUpdate(promoteNowUpdate, { args: [who] });
      assert.ok(reply.stage === ReleaseStage.Production || reply.stage === ReleaseStage.Done, reply.stage);
      await assert.rejects(handle.executeUpdate(promoteNowUpdate, { args: [who] }), WorkflowUpdateFailedError);
      const result = await handle.result();
      assert.equal(result.outcome, ReleaseOutcome.Promoted);
      assert.deepEqual(world.weights.at(-1), { [CANDIDATE]: 100 });
      assert.equal(world.production, 'aaaaaaaaaaaa');
      assert.equal(world.fetches, 0, 'no analysis after promote now');
    });
  });

  it('an operator rollback mid-step restores traffic and unloads the candidate at once (RolledBack)', async function () {
    await runRelease(this, {}, async (handle, world, env) => {
      await advanceUntil(env, handle, (s) => s.canary?.step === 2 && world.weights.length === 2); // step 1 passed, step 2 (25%) bakes
      const reply = await handle.executeUpdate(rollbackUpdate, { args: [who] });
      assert.equal(reply.outcome, ReleaseOutcome.RolledBack);
      assert.deepEqual(world.route, [{ version: STABLE, upstream: 'vllm', model: 'tiny-base', weight: 100 }]);
      assert.equal(world.loaded.has('demo-aaaaaaaaaaaa'), false);
      await assert.rejects(handle.executeUpdate(rollbackUpdate, { args: [who] })); // refused, or the release has already ended
      await assert.rejects(handle.result(), WorkflowFailedError);
    });
  });

  it('an abort mid-canary restores traffic and unloads the candidate before the release ends Aborted', async function () {
    await runRelease(this, {}, async (handle, world) => {
      await until(handle, (s) => s.stage === ReleaseStage.Canary && world.weights.length === 1);
      const reply = await handle.executeUpdate(abortUpdate, { args: [who] });
      assert.equal(reply.outcome, ReleaseOutcome.Aborted);
      assert.deepEqual(world.route, [{ version: STABLE, upstream: 'vllm', model: 'tiny-base', weight: 100 }]);
      assert.equal(world.loaded.has('demo-aaaaaaaaaaaa'), false);
      await assert.rejects(handle.result(), (e: unknown) => e instanceof WorkflowFailedError && failureOfType(e, ErrorType.Aborted) !== undefined);
    });
  });

  it('an operator rollback while the previous version is kept after promotion moves production back too', async function () {
    await runRelease(this, { serving: { canary: { steps: [50, 100], bake: '1m' }, keepPrevious: '2h' } }, async (handle, world, env) => {
      await advanceUntil(env, handle, (s) => s.stage === ReleaseStage.Production && world.production === 'aaaaaaaaaaaa', '20s');
      const reply = await handle.executeUpdate(rollbackUpdate, { args: [who] });
      assert.equal(reply.outcome, ReleaseOutcome.RolledBack);
      assert.equal(world.production, undefined, 'production moved back');
      assert.deepEqual(world.route, [{ version: STABLE, upstream: 'vllm', model: 'tiny-base', weight: 100 }]);
      assert.ok(world.calls.indexOf('restoreProduction') > world.calls.lastIndexOf('setTrafficWeights'), 'traffic first, then the alias');
    });
  });

  it('refuses canary steering before the release serves, naming why (real-time dev server: the release is held in training, which would stall the time-skipping server clock for later tests)', async function () {
    const { mocks } = releaseMocks();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await runRelease(this, { realTime: true, gpuExtra: { trainAdapter: async (...a: Parameters<typeof mocks.trainAdapter>) => (await gate, mocks.trainAdapter(...a)) } as Partial<Activities> }, async (handle) => {
      try {
        await until(handle, (s) => s.stage === ReleaseStage.Train);
        for (const u of [pauseUpdate, promoteNowUpdate, rollbackUpdate]) {
          await assert.rejects(handle.executeUpdate(u, { args: [who] }), (e: unknown) => e instanceof WorkflowUpdateFailedError && /not serving traffic yet \(stage train\)/.test(String(e.cause?.message)));
        }
      } finally {
        release();
        await handle.terminate('test done');
      }
    });
  });

  it('starts the drift monitor as an abandoned child on promotion', async function () {
    await runRelease(this, { serving: { canary: { steps: [50, 100], bake: '1m' }, keepPrevious: '1m', monitor: { enabled: true, every: '1h', checksPerRun: 1, duration: '2h' } } }, async (handle, _world, env) => {
      const result = await handle.result();
      assert.equal(result.outcome, ReleaseOutcome.Promoted);
      const monitorId = driftMonitorWorkflowId('demo', (await handle.describe()).workflowId);
      const status = await handle.query(statusQuery);
      assert.equal(status.canary?.monitorWorkflowId, monitorId);
      const monitor = await env.client.workflow.getHandle(monitorId).describe();
      assert.ok(monitor.status.name === 'RUNNING' || monitor.status.name === 'COMPLETED', monitor.status.name);
      await env.client.workflow.getHandle(monitorId).terminate('test done').catch(() => undefined);
    });
  });

  it('makes the versions in the analysis window the route labels of stable and candidate', async function () {
    const seen: string[][] = [];
    const traffic: TrafficScript = (_n, v) => (seen.push([v.stable, v.candidate]), [versionMetrics(v.stable, { requests: 300 }), versionMetrics(v.candidate, { requests: 300 })]);
    await runRelease(this, { traffic, serving: { canary: { steps: [50, 100], bake: '1m' } } }, async (handle) => {
      await handle.result();
      assert.deepEqual(seen[0], [STABLE, CANDIDATE]);
    });
  });
});
