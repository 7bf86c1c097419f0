import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { WandbApi } from '../../src/adapters/wandb-api';
import { WandbTracker } from '../../src/adapters/wandb-tracker';
import { wandbLossHistory, wandbRunOf } from '../../src/report/collect';
import { FakeWandbServer } from '../helpers/fake-wandb-server';
import { registerTeardown } from '../setup';

const FAST_RETRY = { maxAttempts: 5, baseDelayMs: 5, maxDelayMs: 40 };
const quiet = { warn: () => undefined, info: () => undefined };

describe('release report: the loss curve from a W&B run (W&B wire endpoint, not W&B cloud)', function () {
  let fake: FakeWandbServer;
  before(async function () {
    fake = new FakeWandbServer();
    await fake.start();
    registerTeardown('fake W&B server', () => fake.stop());
  });

  it('reads train/loss per step back through sampledHistory, as the public API asks for it', async function () {
    const tracker = new WandbTracker({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, logger: quiet, retry: FAST_RETRY, flushIntervalMs: 60_000 });
    const runId = `run-${randomUUID().slice(0, 12)}`;
    const run = await tracker.openRun({ runId, project: 'reports', name: 'release tiny-demo', group: 'tiny-demo', jobType: 'release', tags: [], config: {} });
    // What the train stage logs (activities/release/run-recipe.ts), plus rows without a loss.
    for (let step = 0; step < 50; step++) await run.log({ 'train/step': step, 'train/loss': 3 - step * 0.05 }, step);
    await run.log({ 'canary/step': 1, 'canary/weight': 10 });
    await run.finish(0);

    const ref = wandbRunOf(run.url);
    assert.deepEqual(ref && { entity: ref.entity, project: ref.project, runId: ref.runId }, { entity: fake.entity, project: 'reports', runId });

    const api = new WandbApi({ baseUrl: fake.baseUrl, apiKey: fake.apiKey, requestTimeoutMs: 10_000 });
    const all = await wandbLossHistory(api)(ref!);
    assert.equal(all?.length, 50, 'every row with a loss, none of the canary row');
    assert.deepEqual(all?.[0], { step: 0, loss: 3 });
    assert.equal(all?.[49]?.step, 49);
    assert.ok(Math.abs(all![49]!.loss - 0.55) < 1e-9);

    const sampled = await wandbLossHistory(api, 10)(ref!);
    assert.equal(sampled?.length, 10, 'W&B down-samples to the samples asked for');
    assert.deepEqual([sampled?.[0]?.step, sampled?.at(-1)?.step], [0, 49]);

    assert.equal(await wandbLossHistory(api)({ ...ref!, runId: 'no-such-run' }), undefined);
    assert.deepEqual(fake.violations, [], 'the client sent something W&B would misread or refuse');
  });

  it('only a W&B run URL names a W&B run', function () {
    assert.deepEqual(wandbRunOf('https://wandb.ai/acme/support%20bot/runs/release-x1'), { entity: 'acme', project: 'support bot', runId: 'release-x1', url: 'https://wandb.ai/acme/support%20bot/runs/release-x1' });
    assert.equal(wandbRunOf('file:///home/u/.forgeline/tracker/p/r.jsonl'), undefined);
    assert.equal(wandbRunOf('https://wandb.ai/acme/project'), undefined);
    assert.equal(wandbRunOf(undefined), undefined);
  });
});
