/**
 * The GPU stages read their recipe's result through its contract: a result with a missing or
 * renamed field fails the stage, non-retryable, naming the recipe and the field (it used to read
 * as 0 steps or 0 bytes).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import type { StageInput, TrainResult } from '../../activities/release';
import { ErrorType } from '../../src/contracts/errors';
import type { JobRunner, JobSpec } from '../../src/ports/job-runner';
import { recipeResultFor, TRAIN_RESULT } from '../fixtures/recipe-results';
import { RecipeTrackingSchema } from '../../src/contracts/recipes';
import { stageActivities } from '../helpers/stage-activities';

/** Writes the directories a stage publishes, and answers with `results[recipe]` (default: a good result). */
class FakeJobRunner implements JobRunner {
  readonly results: Record<string, Record<string, unknown>> = {};
  async run(job: JobSpec): Promise<Record<string, unknown>> {
    for (const dir of ['adapter', 'merged', 'quantized']) {
      mkdirSync(path.join(job.outDir, dir), { recursive: true });
      writeFileSync(path.join(job.outDir, dir, 'weights.bin'), `${job.recipe} ${dir}`);
    }
    return this.results[job.recipe] ?? recipeResultFor(job.recipe);
  }
}

describe('GPU stages read recipe results through their contracts (MockActivityEnvironment)', function () {
  let dir: string;
  let jobs: FakeJobRunner;
  let acts: ReturnType<typeof createActivities>;
  let deps: Parameters<typeof createActivities>[0];
  let stage: StageInput;
  let cleanup: () => void;

  beforeEach(async function () {
    jobs = new FakeJobRunner();
    const h = await stageActivities('contracts', jobs);
    ({ dir, deps, stage, cleanup } = h);
    acts = h.activities();
  });
  afterEach(() => cleanup());

  async function failure(run: Promise<unknown>): Promise<ApplicationFailure> {
    const err = await run.then(
      () => assert.fail('the stage should have failed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.type, ErrorType.RecipeContract);
    assert.equal(err.nonRetryable, true);
    return err;
  }

  it('train: a good result gives the typed numbers', async function () {
    const trained: TrainResult = await new MockActivityEnvironment().run(acts.trainAdapter, stage);
    assert.equal(trained.totalSteps, TRAIN_RESULT.total_steps);
    assert.equal(trained.stepsThisRun, TRAIN_RESULT.steps_done_this_run);
    assert.equal(trained.finalLoss, TRAIN_RESULT.final_loss);
  });

  it('train: a result without total_steps fails the stage naming the field, instead of reporting 0 steps', async function () {
    const { total_steps: _, ...rest } = TRAIN_RESULT;
    jobs.results.train = rest;
    const err = await failure(new MockActivityEnvironment().run(acts.trainAdapter, stage));
    assert.equal(err.message, 'train result: total_steps: required');
  });

  it('quantize: a renamed size field fails the stage naming both names', async function () {
    const trained: TrainResult = await new MockActivityEnvironment().run(acts.trainAdapter, stage);
    const { size_after_bytes, ...rest } = recipeResultFor('quantize');
    jobs.results.quantize = { ...rest, size_after: size_after_bytes };
    const err = await failure(new MockActivityEnvironment().run(acts.quantizeModel, { ...stage, adapter: trained.adapter }));
    assert.equal(err.message, 'quantize result: size_after_bytes: required; size_after: unknown field');
  });

  it('evaluate: metrics of the wrong shape fail the stage naming the metric', async function () {
    const trained: TrainResult = await new MockActivityEnvironment().run(acts.trainAdapter, stage);
    const merged = trained.adapter; // any published directory will do as the model here
    jobs.results.evaluate = { ...recipeResultFor('evaluate'), metrics: { exact_match: { value: '0.9', ci: [0.8, 0.97] } } };
    const err = await failure(new MockActivityEnvironment().run(acts.runEvalSuite, { ...stage, merged }));
    assert.equal(err.message, 'evaluate result: metrics.exact_match.value: expected number, received string');
  });

  it('with W&B recipe tracking, each stage gets its own run (group = release, job_type = stage, one per attempt) and only the W&B secrets', async function () {
    const seen: JobSpec[] = [];
    const recording: JobRunner = { run: (job) => (seen.push(job), jobs.run(job)) };
    const env = { WANDB_API_KEY: 'k-123', WANDB_BASE_URL: 'http://127.0.0.1:1', WANDB_MODE: 'offline' };
    const tracked = createActivities({ ...deps, jobs: recording, recipeTracking: { project: 'forgeline', mode: 'offline', dir: path.join(dir, 'wandb'), env } });
    await new MockActivityEnvironment({ attempt: 2 }).run(tracked.trainAdapter, stage);
    const job = seen[0]!;
    assert.deepEqual(job.env, env);
    assert.deepEqual(RecipeTrackingSchema.parse(job.input.tracking), {
      project: 'forgeline',
      group: 'release-contracts-abc',
      job_type: 'train',
      run_name: 'train release/contracts/abc',
      run_id: 'release-contracts-abc-train-a2',
      mode: 'offline',
      dir: path.join(dir, 'wandb'),
      tags: ['contracts'],
    });
    assert.ok(!JSON.stringify(job.input).includes('k-123'), 'the API key never travels in the input');

    seen.length = 0;
    await new MockActivityEnvironment().run(acts.trainAdapter, stage);
    assert.equal(seen.length, 0, 'the untracked activities ran their own runner');
  });
});
