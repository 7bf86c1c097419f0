/**
 * The window each canary analysis reads. A step below 100% compares over its own bake; at 100%
 * stable gets no traffic in that step, so the analysis compares over the whole canary (from the
 * first step's start), where stable still has samples. Found by the demo against the real gateway:
 * with the step's own window, the last step was Inconclusive (no stable samples) every time.
 */
import assert from 'node:assert/strict';
import { ReleaseOutcome } from '../../src/contracts/release-lifecycle';
import { modelReleaseWorkflow } from '../../workflows';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import { servingWorld } from '../fixtures/serving';
import { getTimeSkippingEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

describe('canary analysis windows (time-skipping test server, typed mock activities)', function () {
  this.timeout(120_000);

  async function windows(ctx: Mocha.Context, steps: number[]): Promise<Array<{ from: number; to: number }>> {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(ctx, 'release');
    const pool = uniquePool();
    const { control, gpu } = split(releaseMocks().mocks);
    const { mocks: serving } = servingWorld();
    const seen: Array<{ from: number; to: number }> = [];
    const fetchCanaryMetrics: typeof serving.fetchCanaryMetrics = async (i) => {
      const w = i as typeof i & { from: number; to: number };
      seen.push({ from: w.from, to: w.to });
      return serving.fetchCanaryMetrics(i);
    };
    const spec = releaseSpec({ gpu: { pool }, serving: { baseModel: 'tiny-base', canary: { steps, bake: '10m' }, keepPrevious: '1m', monitor: { enabled: false } } });
    await withWorkers(env, { taskQueue, pool, control: { ...control, ...serving, fetchCanaryMetrics }, gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [spec] });
      assert.equal((await handle.result()).outcome, ReleaseOutcome.Promoted);
    });
    return seen;
  }

  it('analyzes a step below 100% over its own bake, and the 100% step over the whole canary', async function () {
    const [s25, s50, s100] = await windows(this, [25, 50, 100]);
    const bake = 10 * 60_000;
    assert.ok(s25 && s50 && s100, 'three analyses');
    assert.ok(s25.to - s25.from >= bake, 'a whole bake');
    assert.ok(s50.from >= s25.to, 'the 50% step starts its own window after the 25% step');
    assert.ok(s50.to - s50.from < 2 * bake, 'and covers only its own bake');
    assert.equal(s100.from, s25.from, 'the 100% step compares from the first step on');
    assert.ok(s100.to - s100.from >= 3 * bake);
  });
});
