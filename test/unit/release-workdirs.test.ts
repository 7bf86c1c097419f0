/**
 * A GPU stage's work directory lives as long as the stage, and a release keeps only its newest
 * checkpoints once training is done (MockActivityEnvironment, local store, fake job runner).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { createRecipeTools, KEEP_CHECKPOINTS, releasePrefix } from '../../activities/release/run-recipe';
import { digestDirectory } from '../../activities/release/inputs';
import type { StageInput } from '../../activities/release';
import { LocalGpuAllocator } from '../../src/adapters/gpu-allocator';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { LocalTracker } from '../../src/adapters/local-tracker';
import { REPO_ROOT } from '../../src/config/load';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { ReleaseSpecSchema } from '../../src/contracts/specs/release-spec';
import type { ActivityDeps } from '../../activities/deps';
import type { JobRunner, JobSpec } from '../../src/ports/job-runner';
import { ModelRegistry } from '../../src/registry/model-registry';

describe('GPU stages: work directories and checkpoint retention', function () {
  let dir: string;
  let deps: ActivityDeps;
  let store: LocalArtifactStore;

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-workdirs-'));
    store = new LocalArtifactStore(pathToFileURL(path.join(dir, 'artifacts')).href);
    const crashes: JobRunner = {
      async run(job: JobSpec) {
        // A checkpoint and half an adapter on disk, then the recipe dies.
        mkdirSync(path.join(job.outDir, 'checkpoints', 'step-2'), { recursive: true });
        writeFileSync(path.join(job.outDir, 'checkpoints', 'step-2', 'state.bin'), 'x'.repeat(1000));
        throw new Error('recipe train was killed by SIGKILL (out of memory?)');
      },
    };
    deps = {
      artifacts: store,
      tracker: new LocalTracker({ home: dir }),
      registry: new ModelRegistry(store),
      jobs: crashes,
      gpus: new LocalGpuAllocator([]),
      workDir: path.join(dir, 'work'),
      trackerProject: 'forgeline',
      workerIdentity: 'unit-test',
      pool: 'cpu',
    };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('removes an attempt\'s work directory when its stage ends, on success and on failure', async function () {
    const tools = createRecipeTools(deps);
    const env = new MockActivityEnvironment({ attempt: 3 });
    let seen = '';
    const out = await env.run(() =>
      tools.inAttemptDir('quantize', 'release/m/abc', async (d) => {
        seen = d;
        writeFileSync(path.join(d, 'merged.bin'), 'm');
        return 'done';
      }),
    );
    assert.equal(out, 'done');
    assert.equal(seen, path.join(dir, 'work', 'releases', 'release-m-abc', 'quantize-attempt-3'));
    assert.equal(existsSync(seen), false);
    await assert.rejects(env.run(() => tools.inAttemptDir('quantize', 'release/m/abc', async () => Promise.reject(new Error('boom')))), /boom/);
    assert.equal(existsSync(seen), false);
  });

  it('trainAdapter leaves no work directory behind when its recipe crashes', async function () {
    const dataset = path.join(REPO_ROOT, 'workers', 'recipes', 'data', 'tiny-instruct');
    const base = path.join(dir, 'base');
    mkdirSync(base);
    writeFileSync(path.join(base, 'config.json'), '{}');
    const spec = ReleaseSpecSchema.parse({ model: 'm', base: { path: base }, dataset: { uri: pathToFileURL(dataset).href, sha256: await digestDirectory(dataset) }, trainer: { steps: 4 } }) as ReleaseSpec;
    const input: StageInput = { releaseId: 'release/m/abc', runId: 'release-m-abc', spec };
    await assert.rejects(new MockActivityEnvironment().run(createActivities(deps).trainAdapter, input), /SIGKILL/);
    assert.deepEqual(readdirSync(path.join(dir, 'work', 'releases', 'release-m-abc')), []);
  });

  it(`keeps the ${KEEP_CHECKPOINTS} newest published checkpoints of a release, over every attempt, and only that release's`, async function () {
    const src = path.join(dir, 'ckpt');
    mkdirSync(src);
    writeFileSync(path.join(src, 'adapter_model.safetensors'), 'w');
    const publish = (release: string, attempt: number, step: number) =>
      store.publishDirectory(src, releasePrefix(release, `checkpoints/attempt-${attempt}/step-${String(step).padStart(7, '0')}`));
    for (const [attempt, step] of [[1, 10], [1, 20], [2, 20], [2, 30], [3, 40]] as const) await publish('release/m/abc', attempt, step);
    await publish('release/m/other', 1, 10);

    const deleted = await createRecipeTools(deps).pruneCheckpoints('release/m/abc');
    assert.deepEqual(deleted, [20, 20, 10]);
    const left: string[] = [];
    for await (const o of store.listAll('releases/')) left.push(o.key);
    assert.deepEqual(left.filter((k) => k.endsWith('MANIFEST.json')), [
      'releases/release-m-abc/checkpoints/attempt-2/step-0000030/MANIFEST.json',
      'releases/release-m-abc/checkpoints/attempt-3/step-0000040/MANIFEST.json',
      'releases/release-m-other/checkpoints/attempt-1/step-0000010/MANIFEST.json',
    ]);
    assert.ok(!left.some((k) => k.includes('step-0000020') || k.includes('abc/checkpoints/attempt-1')), `nothing left of deleted checkpoints: ${left.join(', ')}`);
  });
});
