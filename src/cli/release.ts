import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { WorkflowIdReusePolicy, type Client } from '@temporalio/client';
import { createArtifactStore } from '../adapters/artifact-store';
import { LocalJobRunner } from '../adapters/local-job-runner';
import { REPO_ROOT } from '../config/load';
import type { ForgelineConfig } from '../config/schema';
import { releaseWorkflowId, type OperatorDecision, type ReleaseStatus } from '../contracts/release-lifecycle';
import { ForgelineGitSha, ForgelineModel } from '../contracts/search-attributes';
import { ReleaseSpecSchema, type ReleaseSpecInput } from '../contracts/specs/release-spec';
import { formatProblems, validateSpec } from '../contracts/validate';
import type { ArtifactStore } from '../ports/artifact-store';
import { ConfigError } from '../ports/errors';
import { ModelRegistry } from '../registry/model-registry';
import { uiUrl, type Log } from './stack';
import { watchRelease } from './watch';

export function artifactStoreFor(cfg: ForgelineConfig): ArtifactStore {
  return createArtifactStore({ uri: cfg.artifacts.uri, s3: { endpoint: cfg.artifacts.s3.endpoint, region: cfg.artifacts.s3.region, forcePathStyle: cfg.artifacts.s3.forcePathStyle } });
}

/** Short random id for releases without a git sha. */
function generatedId(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').toLowerCase() + '-' + Math.random().toString(16).slice(2, 8);
}

/**
 * Validate at the edge and start (or join) a release. The workflow ID is
 * `release/<model>/<git sha or generated id>`, so starting the same release twice yields one execution.
 */
export async function startRelease(client: Client, cfg: ForgelineConfig, input: unknown, log: Log) {
  const v = validateSpec(ReleaseSpecSchema, input);
  if (!v.ok) throw new ConfigError(formatProblems('release spec', v.problems));
  const spec = v.value;
  const workflowId = releaseWorkflowId(spec.model, spec.git.sha ?? generatedId());
  const handle = await client.workflow
    .start('modelReleaseWorkflow', {
      taskQueue: cfg.taskQueues.control,
      workflowId,
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      typedSearchAttributes: [{ key: ForgelineModel, value: spec.model }, ...(spec.git.sha ? [{ key: ForgelineGitSha, value: spec.git.sha }] : [])],
      memo: { summary: `${spec.model} release${spec.git.sha ? ` of ${spec.git.sha}` : ''}` },
      staticSummary: `Release ${spec.model}: fine-tune → quantize (${spec.quantization.method}) → evaluate → register`,
    })
    .catch((err: Error) => {
      if (err.name === 'WorkflowExecutionAlreadyStartedError') {
        log(`release ${workflowId} already exists: following it`);
        return client.workflow.getHandle(workflowId);
      }
      throw err;
    });
  log(`release ${workflowId}`);
  const ui = uiUrl(cfg, workflowId);
  if (ui) log(`  Temporal UI: ${ui}`);
  return handle;
}

/** A short digest of the code that builds the tiny model, so a changed recipe never reuses a stale cached model. */
function tinyModelRecipeDigest(): string {
  const hash = createHash('sha256');
  for (const file of ['make_tiny_model.py', 'forgeline_recipes/tiny.py']) hash.update(readFileSync(path.join(REPO_ROOT, 'workers', 'recipes', file)));
  return hash.digest('hex').slice(0, 12);
}

/** Publish the shipped tiny dataset and a config-built tiny base model; returns a release spec. */
export async function prepareDemoRelease(cfg: ForgelineConfig, log: Log): Promise<ReleaseSpecInput> {
  const store = artifactStoreFor(cfg);
  const registry = new ModelRegistry(store);
  const dataset = await store.publishDirectory(path.join(REPO_ROOT, 'workers', 'recipes', 'data', 'tiny-instruct'), 'datasets/tiny-instruct/', { source: 'workers/recipes/data/tiny-instruct' });
  log(`dataset   artifact://${dataset.prefix} (sha256 ${dataset.digest.slice(0, 12)}…)`);

  const recipe = tinyModelRecipeDigest();
  const baseDir = path.join(cfg.home, 'models', `tiny-llama-${recipe}`);
  if (!existsSync(path.join(baseDir, 'config.json'))) {
    log('building the tiny Llama base model from its config (seeded, no download)…');
    const runner = new LocalJobRunner({ python: path.join(cfg.venv, 'bin', 'python'), recipesDir: path.join(REPO_ROOT, 'workers', 'recipes') });
    await runner.run({ recipe: 'make_tiny_model', input: { size: 'tiny', seed: 0, device: 'cpu' }, outDir: baseDir, gpuIndices: [] });
  }
  const published = await store.publishDirectory(baseDir, `models/tiny-llama/base-${recipe}/`);
  const base = await registry.registerVersion({ model: 'tiny-llama', kind: 'base', prefix: published.prefix, lineage: { recipe: 'make_tiny_model', hyperparameters: { size: 'tiny', seed: 0 } }, createdAt: new Date().toISOString() });
  log(`base      ${base.ref}`);
  return {
    model: 'tiny-demo',
    base: { ref: base.ref },
    dataset: { uri: `artifact://${dataset.prefix}`, sha256: dataset.digest },
    trainer: { steps: 200, checkpointEvery: 50, learningRate: 3e-3, batchSize: 16, seqLength: 64, lora: { r: 16, alpha: 32, dropout: 0, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] } },
    quantization: { method: 'gptq', bits: 4, groupSize: 32, calibrationSamples: 32 },
    evaluation: { suite: 'tiny-instruct', compareTo: 'base', gates: [{ metric: 'exact_match', op: '>', threshold: 0, on: 'delta' }] },
  };
}

/** Print what a finished release left in the registry. */
export async function printRegistry(cfg: ForgelineConfig, model: string, log: Log): Promise<void> {
  const registry = new ModelRegistry(artifactStoreFor(cfg));
  const versions = await registry.listVersions(model);
  if (versions.length === 0) return log(`registry: no versions of ${model}`);
  log(`registry ${model}:`);
  for (const v of versions) {
    const size = v.artifact.sizeBytes !== undefined ? `${(v.artifact.sizeBytes / 1024).toFixed(0)} KiB` : '';
    log(`  ${v.kind.padEnd(12)} ${v.ref}  ${size.padStart(9)}  ${v.artifact.uri}`);
  }
  for (const alias of ['candidate', 'production', 'previous'] as const) {
    const a = await registry.getAlias(model, alias);
    if (a) log(`  alias ${alias} → ${Object.entries(a.versions).map(([k, ver]) => `${k}@${ver}`).join(', ')} (by ${a.by}: ${a.reason})`);
  }
}

/** Start a release and follow it to the end, printing progress; returns the exit code. */
export async function runRelease(client: Client, cfg: ForgelineConfig, input: unknown, log: Log): Promise<number> {
  const handle = await startRelease(client, cfg, input, log);
  await watchRelease(handle, log);
  const status = (await handle.query('status')) as ReleaseStatus;
  try {
    const result = await handle.result();
    log(`release ${status.outcome}: ${JSON.stringify(result.metrics)}`);
  } catch (err) {
    log(`release ${status.outcome}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
  }
  for (const g of status.gates ?? []) log(`  gate ${g.passed ? 'PASS' : 'FAIL'} ${g.reason}`);
  if (status.trackerRunUrl) log(`tracker run: ${status.trackerRunUrl}`);
  await printRegistry(cfg, status.model, log);
  return status.outcome === 'Candidate' ? 0 : 1;
}

export async function decide(client: Client, workflowId: string, kind: 'approve' | 'reject' | 'abort', decision: OperatorDecision, log: Log): Promise<number> {
  const status = (await client.workflow.getHandle(workflowId).executeUpdate(kind, { args: [decision] })) as ReleaseStatus;
  log(`${kind}: ${workflowId} is now ${status.stage}/${status.outcome}`);
  return 0;
}
