import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { WorkflowFailedError } from '@temporalio/client';
import { createScheduledRetrainActivities } from '../../activities/schedules/retrain';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { ErrorType } from '../../src/contracts/errors';
import { scheduledReleaseId } from '../../src/contracts/scheduled-retrain';
import type { ActivityDeps } from '../../activities';
import { scheduledRetrainWorkflow } from '../../workflows';
import { releaseMocks, split } from '../fixtures/release';
import { failureOfType } from '../helpers/failures';
import { getTimeSkippingEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

function snapshot(dir: string, name: string, rows: number): string {
  const d = path.join(dir, name);
  mkdirSync(d, { recursive: true });
  const line = (i: number) => JSON.stringify({ prompt: `question ${name} ${i}`, completion: `answer ${i}` });
  writeFileSync(path.join(d, 'train.jsonl'), Array.from({ length: rows }, (_, i) => line(i)).join('\n') + '\n');
  writeFileSync(path.join(d, 'eval.jsonl'), line(0) + '\n');
  return d;
}

describe('scheduledRetrainWorkflow (time-skipping test server, real artifact store, mocked release stages)', function () {
  this.timeout(120_000);
  let dir: string;
  let artifacts: LocalArtifactStore;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-retrain-'));
    artifacts = new LocalArtifactStore(pathToFileURL(path.join(dir, 'store')).href);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('starts a release on the newest published snapshot; the next run on the same snapshot starts none; a newer snapshot starts the next', async function () {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(this, 'retrain');
    const pool = uniquePool();
    const model = `m${workflowId.slice(-8)}`;
    await artifacts.publishDirectory(snapshot(dir, 'a', 3), `datasets/${model}/2026-11-24/`);
    await new Promise((r) => setTimeout(r, 20)); // distinct manifest times
    const second = await artifacts.publishDirectory(snapshot(dir, 'b', 4), `datasets/${model}/2026-12-01/`);
    // Not a snapshot: a file beside them, and a deeper published directory.
    await artifacts.put(`datasets/${model}/README.md`, 'snapshots below');
    const { mocks } = releaseMocks();
    const seen: Array<{ dataset: { uri: string; sha256: string } }> = [];
    const { control, gpu } = split({ ...mocks, validateReleaseSpec: async (raw: unknown) => (seen.push(raw as (typeof seen)[number]), mocks.validateReleaseSpec!(raw)) });
    const retrain = createScheduledRetrainActivities({ artifacts } as unknown as ActivityDeps);
    const input = {
      dataset: { latest: `artifact://datasets/${model}/` },
      release: { model, base: { path: '/models/tiny' }, gpu: { pool }, git: { sha: 'abc1234' }, evaluation: { gates: [{ metric: 'exact_match', op: '>=', threshold: 0.5 }] } },
    };
    await withWorkers(env, { taskQueue, pool, control: { ...control, ...retrain }, gpu }, async () => {
      const r1 = await env.client.workflow.execute(scheduledRetrainWorkflow, { taskQueue, workflowId: `${workflowId}-1`, args: [input] });
      assert.deepEqual([r1.dataset.uri, r1.dataset.sha256, r1.started], [`artifact://datasets/${model}/2026-12-01/`, second.digest, true]);
      assert.equal(r1.releaseId, scheduledReleaseId(model, second.digest));
      const release = await env.client.workflow.getHandle(r1.releaseId).result();
      assert.ok(release, 'the release ran to its end');
      assert.deepEqual(seen[0]?.dataset, { uri: `artifact://datasets/${model}/2026-12-01/`, sha256: second.digest });

      const r2 = await env.client.workflow.execute(scheduledRetrainWorkflow, { taskQueue, workflowId: `${workflowId}-2`, args: [input] });
      assert.deepEqual([r2.releaseId, r2.started], [r1.releaseId, false], 'the same snapshot is trained once');
      assert.equal(seen.length, 1);

      await new Promise((r) => setTimeout(r, 20));
      const third = await artifacts.publishDirectory(snapshot(dir, 'c', 5), `datasets/${model}/2026-12-08/`);
      const r3 = await env.client.workflow.execute(scheduledRetrainWorkflow, { taskQueue, workflowId: `${workflowId}-3`, args: [input] });
      assert.deepEqual([r3.dataset.sha256, r3.started], [third.digest, true]);
      await env.client.workflow.getHandle(r3.releaseId).result();
    });
  });

  it('no snapshot under the prefix, or a dataset in the release: a terminal error naming the field', async function () {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(this, 'retrain');
    const retrain = createScheduledRetrainActivities({ artifacts } as unknown as ActivityDeps);
    await withWorkers(env, { taskQueue, control: retrain }, async () => {
      const fail = async (id: string, args: unknown) => {
        const err = await env.client.workflow.execute(scheduledRetrainWorkflow, { taskQueue, workflowId: `${workflowId}-${id}`, args: [args] }).then(
          () => assert.fail('expected a failure'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof WorkflowFailedError);
        return failureOfType(err, ErrorType.InvalidSpec).message;
      };
      const release = { model: 'demo', base: { path: '/models/tiny' } };
      assert.match(await fail('empty', { dataset: { latest: 'artifact://datasets/nothing-here/' }, release }), /dataset\.latest: no published dataset snapshot under artifact:\/\/datasets\/nothing-here\//);
      assert.match(await fail('pinned', { dataset: { latest: 'artifact://datasets/x/' }, release: { ...release, dataset: { uri: 'artifact://d/', sha256: 'a'.repeat(64) } } }), /release\.dataset: leave dataset out/);
    });
  });
});
