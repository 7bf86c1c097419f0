import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { StageInput, TrainResult } from '../../activities/release';
import { LocalGpuAllocator } from '../../src/adapters/gpu-allocator';
import { ErrorType } from '../../src/contracts/errors';
import type { JobRunner, JobSpec } from '../../src/ports/job-runner';
import { recipeResultFor } from '../fixtures/recipe-results';
import { stageActivities } from '../helpers/stage-activities';

/** Records each job and writes the directories the stage publishes afterwards. */
class RecordingJobRunner implements JobRunner {
  readonly jobs: JobSpec[] = [];
  async run(job: JobSpec): Promise<Record<string, unknown>> {
    this.jobs.push(job);
    for (const dir of ['adapter', 'merged', 'quantized']) {
      mkdirSync(path.join(job.outDir, dir), { recursive: true });
      writeFileSync(path.join(job.outDir, dir, 'weights.bin'), `${job.recipe} ${dir}`);
    }
    return recipeResultFor(job.recipe);
  }
}

describe('release activities on a worker with several GPUs (MockActivityEnvironment, recording JobRunner)', function () {
  let jobs: RecordingJobRunner;
  let h: Awaited<ReturnType<typeof stageActivities>>;

  function activities(gpus: number[]) {
    return h.activities({ gpus: new LocalGpuAllocator(gpus) });
  }

  beforeEach(async () => {
    jobs = new RecordingJobRunner();
    h = await stageActivities('multi-gpu', jobs, { gpu: { pool: 'h200', count: 2 } });
  });
  afterEach(() => h.cleanup());

  const stage = (): StageInput => h.stage;

  it('trains on gpu.count GPUs as one data-parallel job with a process per GPU', async function () {
    const acts = activities([0, 1, 2, 3]);
    await new MockActivityEnvironment().run(acts.trainAdapter, stage());
    const [train] = jobs.jobs;
    assert.deepEqual(train!.gpuIndices, [0, 1]);
    assert.equal(train!.input.processes, 2);
    assert.equal(train!.input.device, 'cuda');
    assert.equal(train!.input.strategy, 'ddp');
  });

  it('quantizes on one GPU, whatever gpu.count says, with no processes field', async function () {
    const acts = activities([0, 1, 2, 3]);
    const trained: TrainResult = await new MockActivityEnvironment().run(acts.trainAdapter, stage());
    await new MockActivityEnvironment().run(acts.quantizeModel, { ...stage(), adapter: trained.adapter });
    const quantize = jobs.jobs[1]!;
    assert.equal(quantize.recipe, 'quantize');
    assert.equal(quantize.gpuIndices.length, 1);
    assert.equal('processes' in quantize.input, false);
  });

  it('runs single-GPU jobs side by side, one per free GPU', async function () {
    const acts = activities([0, 1]);
    h.stage.spec = { ...h.stage.spec, gpu: { ...h.stage.spec.gpu, count: 1 } };
    const started: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const run = jobs.run.bind(jobs);
    jobs.run = async (job) => {
      started.push(job.gpuIndices);
      if (started.length === 2) release();
      await gate; // both jobs must be running at once for this to resolve
      return run(job);
    };
    await Promise.all([
      new MockActivityEnvironment().run(acts.trainAdapter, { ...stage(), releaseId: 'release/multi-gpu/one' }),
      new MockActivityEnvironment().run(acts.trainAdapter, { ...stage(), releaseId: 'release/multi-gpu/two' }),
    ]);
    assert.deepEqual(started.sort(), [[0], [1]]);
    assert.ok(jobs.jobs.every((j) => j.input.processes === 1));
  });

  it('refuses, without retrying, a stage that asks for more GPUs than the worker owns', async function () {
    const acts = activities([0]);
    const err = await new MockActivityEnvironment().run(acts.trainAdapter, stage()).catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.type, ErrorType.InvalidSpec);
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /gpu\.count=2: this worker owns 1 GPU\(s\).*\(pool h200\)/);
    assert.equal(jobs.jobs.length, 0);
  });

  it('heartbeats while it waits for a GPU, and a cancel while waiting ends the wait', async function () {
    const acts = activities([0]);
    h.stage.spec = { ...h.stage.spec, gpu: { ...h.stage.spec.gpu, count: 1 } };
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let firstHoldsTheGpu!: () => void;
    const holding = new Promise<void>((resolve) => (firstHoldsTheGpu = resolve));
    const run = jobs.run.bind(jobs);
    jobs.run = async (job) => (firstHoldsTheGpu(), await gate, run(job));
    const first = new MockActivityEnvironment().run(acts.trainAdapter, { ...stage(), releaseId: 'release/multi-gpu/first' });
    await holding; // the second stage starts only once the first has the only GPU

    const waiting = new MockActivityEnvironment();
    const beats: Array<{ message?: string }> = [];
    waiting.on('heartbeat', (d: { message?: string }) => beats.push({ ...d }));
    const second = waiting.run(acts.trainAdapter, { ...stage(), releaseId: 'release/multi-gpu/second' }).catch((e: unknown) => e);
    while (!beats.some((b) => /waiting for/.test(b.message ?? ''))) await new Promise((r) => setTimeout(r, 10));
    assert.match(beats.at(-1)?.message ?? '', /train: waiting for 1 GPU\(s\) on unit-test/);
    waiting.cancel();
    const err = await second;
    assert.ok(err instanceof Error && /cancel|abort/i.test(`${err.name} ${err.message}`), String(err));
    release();
    await first;
    assert.equal(jobs.jobs.length, 1, 'the cancelled stage never ran');
  });

  it('a retry resumes from the newest published checkpoint, even one its heartbeat never named, and publishes its own copies', async function () {
    const acts = activities([0]);
    h.stage.spec = { ...h.stage.spec, gpu: { ...h.stage.spec.gpu, count: 1 } };
    const resumedFrom: unknown[] = [];
    const checkpoint = async (job: JobSpec, step: number, content: string) => {
      const dir = path.join(job.outDir, 'checkpoints', `step-${step}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'adapter_model.safetensors'), content);
      await job.onEvent?.({ event: 'checkpoint', step, path: `checkpoints/step-${step}` });
    };
    jobs.run = async (job) => {
      resumedFrom.push(job.input.resume_from);
      if (resumedFrom.length === 1) {
        await checkpoint(job, 2, 'attempt 1 step 2');
        await checkpoint(job, 4, 'attempt 1 step 4');
        throw new Error('worker lost'); // as if killed: the heartbeat naming step 4 may never have arrived
      }
      await checkpoint(job, 4, 'attempt 2 step 4, not byte-identical'); // redone after the retry
      mkdirSync(path.join(job.outDir, 'adapter'), { recursive: true });
      writeFileSync(path.join(job.outDir, 'adapter', 'adapter_model.safetensors'), 'final');
      return { ...recipeResultFor('train'), total_steps: 6, steps_done_this_run: 2 };
    };
    const first = new MockActivityEnvironment({ attempt: 1 });
    await assert.rejects(first.run(acts.trainAdapter, stage()), /worker lost/);

    const stale = { stage: 'train', checkpoint: { step: 2, prefix: 'releases/release-multi-gpu-abc/checkpoints/attempt-1/step-0000002/' } };
    await new MockActivityEnvironment({ attempt: 2, heartbeatDetails: stale }).run(acts.trainAdapter, stage());
    const resumeDir = String(resumedFrom[1]);
    assert.equal(readFileSync(path.join(resumeDir, 'adapter_model.safetensors'), 'utf8'), 'attempt 1 step 4', 'resumed from step 4, not the stale step 2');
    const store = h.deps.artifacts;
    const both = await Promise.all([1, 2].map((a) => store.readManifest(`releases/release-multi-gpu-abc/checkpoints/attempt-${a}/step-0000004/`)));
    assert.ok(both.every(Boolean), 'each attempt published its own step-4 checkpoint');
  });
});
