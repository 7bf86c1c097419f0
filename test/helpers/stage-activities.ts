import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createActivities, type ActivityDeps } from '../../activities';
import type { StageInput } from '../../activities/release';
import { digestDirectory } from '../../activities/release/inputs';
import { LocalGpuAllocator } from '../../src/adapters/gpu-allocator';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { LocalTracker } from '../../src/adapters/local-tracker';
import { REPO_ROOT } from '../../src/config/load';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { ReleaseSpecSchema, type ReleaseSpecInput } from '../../src/contracts/specs/release-spec';
import type { JobRunner } from '../../src/ports/job-runner';
import { ModelRegistry } from '../../src/registry/model-registry';

/**
 * The release's stage activities over real local adapters in a temporary directory, with the
 * JobRunner a test gives: a base model directory, the shipped tiny dataset (digest checked), and
 * a valid spec. For activity tests under MockActivityEnvironment.
 */
export async function stageActivities(label: string, jobs: JobRunner, spec: Partial<ReleaseSpecInput> = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `forgeline-${label}-`));
  const store = new LocalArtifactStore(pathToFileURL(path.join(dir, 'artifacts')).href);
  const deps: ActivityDeps = {
    artifacts: store,
    tracker: new LocalTracker({ home: dir }),
    registry: new ModelRegistry(store),
    jobs,
    gpus: new LocalGpuAllocator([0]),
    workDir: path.join(dir, 'work'),
    trackerProject: 'forgeline',
    workerIdentity: 'unit-test',
    pool: 'h200',
  };
  const base = path.join(dir, 'base');
  mkdirSync(base);
  writeFileSync(path.join(base, 'config.json'), '{}');
  const dataset = path.join(REPO_ROOT, 'workers', 'recipes', 'data', 'tiny-instruct');
  const model = spec.model ?? label;
  const parsed = ReleaseSpecSchema.parse({
    model,
    base: { path: base },
    dataset: { uri: pathToFileURL(dataset).href, sha256: await digestDirectory(dataset) },
    ...spec,
    trainer: { steps: 4, ...spec.trainer },
  }) as ReleaseSpec;
  const stage: StageInput = { releaseId: `release/${model}/abc`, runId: `release-${model}-abc`, spec: parsed };
  return {
    dir,
    deps,
    stage,
    /** The activities over these deps, with any of them replaced (`{ gpus: ... }`). */
    activities: (overrides: Partial<ActivityDeps> = {}) => createActivities({ ...deps, ...overrides }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
