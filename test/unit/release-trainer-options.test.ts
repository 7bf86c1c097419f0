/**
 * The train recipe's GPU speed options in the release spec: `trainer.liger` (auto/on/off) and
 * `trainer.compile` have defaults, bad values name the field, and the train stage hands both to
 * the recipe (workers/recipes/train.py resolves `auto` there, where it knows the device).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { digestDirectory } from '../../activities/release/inputs';
import { LocalGpuAllocator } from '../../src/adapters/gpu-allocator';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { LocalTracker } from '../../src/adapters/local-tracker';
import { REPO_ROOT } from '../../src/config/load';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { ReleaseSpecSchema } from '../../src/contracts/specs/release-spec';
import { validateSpec } from '../../src/contracts/validate';
import type { JobRunner, JobSpec } from '../../src/ports/job-runner';
import { ModelRegistry } from '../../src/registry/model-registry';

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
    let dir: string;
    let jobs: CapturingJobRunner;

    beforeEach(function () {
      dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-trainer-options-'));
      jobs = new CapturingJobRunner();
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    async function recipeInput(trainer: Record<string, unknown>): Promise<Record<string, unknown>> {
      const store = new LocalArtifactStore(pathToFileURL(path.join(dir, 'artifacts')).href);
      const acts = createActivities({
        artifacts: store,
        tracker: new LocalTracker({ home: dir }),
        registry: new ModelRegistry(store),
        jobs,
        gpus: new LocalGpuAllocator([0]),
        workDir: path.join(dir, 'work'),
        trackerProject: 'forgeline',
        workerIdentity: 'unit-test',
        pool: 'h200',
      });
      const base = path.join(dir, 'base');
      mkdirSync(base, { recursive: true });
      writeFileSync(path.join(base, 'config.json'), '{}');
      const dataset = path.join(REPO_ROOT, 'workers', 'recipes', 'data', 'tiny-instruct');
      const spec = ReleaseSpecSchema.parse({
        model: 'speed',
        base: { path: base },
        dataset: { uri: pathToFileURL(dataset).href, sha256: await digestDirectory(dataset) },
        trainer: { steps: 4, ...trainer },
      }) as ReleaseSpec;
      const stage = { releaseId: 'release/speed/abc', runId: 'release-speed-abc', spec };
      await assert.rejects(new MockActivityEnvironment().run(acts.trainAdapter, stage), /captured/);
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
