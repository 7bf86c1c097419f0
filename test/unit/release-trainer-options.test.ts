/**
 * The train recipe's GPU speed options in the release spec: `trainer.liger` (auto/on/off) and
 * `trainer.compile` have defaults, bad values name the field, and the train stage hands both to
 * the recipe (workers/recipes/train.py resolves `auto` there, where it knows the device).
 */
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ReleaseSpecSchema } from '../../src/contracts/specs/release-spec';
import { validateSpec } from '../../src/contracts/validate';
import type { JobRunner, JobSpec } from '../../src/ports/job-runner';
import { stageActivities } from '../helpers/stage-activities';

const minimal = { model: 'speed', base: { path: '/models/base' }, dataset: { uri: 'artifact://datasets/x/', sha256: 'a'.repeat(64) } };

/** Keeps the input of every job it is given, then fails it (the input is all these tests read). */
class CapturingJobRunner implements JobRunner {
  readonly inputs: Record<string, unknown>[] = [];
  async run(job: JobSpec): Promise<Record<string, unknown>> {
    this.inputs.push(job.input);
    throw new Error('captured');
  }
}

describe('release spec trainer.liger / trainer.compile', function () {
  it('default to liger auto and compile off', function () {
    const v = validateSpec(ReleaseSpecSchema, minimal);
    assert.ok(v.ok);
    assert.equal(v.value.trainer.liger, 'auto');
    assert.equal(v.value.trainer.compile, false);
  });

  it('name the field and what to write instead', function () {
    const v = validateSpec(ReleaseSpecSchema, { ...minimal, trainer: { liger: true, compile: 'yes' } });
    assert.ok(!v.ok);
    assert.ok(v.problems.includes('trainer.liger: expected auto, on or off'), v.problems.join('\n'));
    assert.ok(v.problems.includes('trainer.compile: expected true or false'), v.problems.join('\n'));
  });

  describe('the train stage', function () {
    let cleanup: (() => void) | undefined;
    afterEach(() => cleanup?.());

    async function recipeInput(trainer: Record<string, unknown>): Promise<Record<string, unknown>> {
      const jobs = new CapturingJobRunner();
      const h = await stageActivities('speed', jobs, { trainer });
      cleanup = h.cleanup;
      await assert.rejects(new MockActivityEnvironment().run(h.activities().trainAdapter, h.stage), /captured/);
      assert.equal(jobs.inputs.length, 1);
      return jobs.inputs[0]!;
    }

    it('passes the defaults to the recipe', async function () {
      const input = await recipeInput({});
      assert.equal(input.liger, 'auto');
      assert.equal(input.compile, false);
    });

    it('passes the spec values to the recipe', async function () {
      const input = await recipeInput({ liger: 'off', compile: true });
      assert.equal(input.liger, 'off');
      assert.equal(input.compile, true);
    });
  });
});
