/**
 * runRecipe, the shared runner of the GPU stages: live progress in heartbeats from the first
 * event, the spec's progress timeout handed to the job runner, a preempted recipe's failure type.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { ActivityDeps } from '../../activities/deps';
import { createRecipeTools } from '../../activities/release/run-recipe';
import type { StageInput } from '../../activities/release';
import { LocalGpuAllocator } from '../../src/adapters/gpu-allocator';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { LocalTracker } from '../../src/adapters/local-tracker';
import { RecipePreemptedError } from '../../src/adapters/local-job-runner';
import type { StageHeartbeat } from '../../src/contracts/release-lifecycle';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { ReleaseSpecSchema } from '../../src/contracts/specs/release-spec';
import type { JobRunner, JobSpec } from '../../src/ports/job-runner';
import { ModelRegistry } from '../../src/registry/model-registry';

describe('runRecipe (GPU stages): progress, hung recipes, preemption', function () {
  let dir: string;
  let jobs: JobSpec[];
  let behaviour: (job: JobSpec) => Promise<Record<string, unknown>>;
  let input: StageInput;

  function tools() {
    const store = new LocalArtifactStore(pathToFileURL(path.join(dir, 'artifacts')).href);
    const runner: JobRunner = { run: (job) => (jobs.push(job), behaviour(job)) };
    const deps: ActivityDeps = { artifacts: store, tracker: new LocalTracker({ home: dir }), registry: new ModelRegistry(store), jobs: runner, gpus: new LocalGpuAllocator([]), workDir: path.join(dir, 'work'), trackerProject: 'forgeline', workerIdentity: 'unit-test', pool: 'cpu' };
    return createRecipeTools(deps);
  }

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-run-recipe-'));
    jobs = [];
    const spec = ReleaseSpecSchema.parse({ model: 'm', base: { path: '/b' }, dataset: { uri: 'artifact://d/', sha256: 'a'.repeat(64) }, gpu: { progressTimeout: '90s' } }) as ReleaseSpec;
    input = { releaseId: 'release/m/abc', runId: 'release-m-abc', spec };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('heartbeats where training starts out of how many steps, from the start event on, then each step and loss', async function () {
    behaviour = async (job) => {
      await job.onEvent?.({ event: 'start', recipe: 'train', device: 'cpu', total_steps: 300, resumed_from_step: 120 });
      await job.onEvent?.({ event: 'progress', step: 121, total_steps: 300, loss: 1.25 });
      return {};
    };
    const env = new MockActivityEnvironment();
    const beats: StageHeartbeat[] = [];
    env.on('heartbeat', (d: StageHeartbeat) => beats.push({ ...d }));
    await env.run(() => tools().runRecipe('train', 'train', input, {}, path.join(dir, 'out')));
    const live = beats.filter((b) => b.step !== undefined);
    assert.deepEqual(live.map((b) => [b.step, b.totalSteps, b.loss]), [[120, 300, undefined], [121, 300, 1.25]]);
  });

  it('hands the spec\'s gpu.progressTimeout to the job runner', async function () {
    behaviour = async () => ({});
    await new MockActivityEnvironment().run(() => tools().runRecipe('quantize', 'quantize', input, {}, path.join(dir, 'out')));
    assert.equal(jobs[0]!.progressTimeoutMs, 90_000);
  });

  it('fails a recipe its worker preempted retryably, as RecipePreempted', async function () {
    const details = { recipe: 'train', exitCode: 75, signal: null, stderrTail: [] };
    behaviour = async () => Promise.reject(new RecipePreemptedError('recipe train stopped because this worker is shutting down; a retry resumes from its last checkpoint', details));
    const err = await new MockActivityEnvironment().run(() => tools().runRecipe('train', 'train', input, {}, path.join(dir, 'out'))).catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.type, 'RecipePreempted');
    assert.equal(err.nonRetryable, false);
    assert.match(err.message, /^train: recipe train stopped because this worker is shutting down/);
  });
});
