import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { WorkflowIdConflictPolicy, type Client, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import { createArtifactStore } from '../adapters/artifact-store';
import { LocalJobRunner } from '../adapters/local-job-runner';
import { REPO_ROOT } from '../config/load';
import type { ForgelineConfig } from '../config/schema';
import { parseRecipeResult } from '../contracts/recipes';
import { rollbackWorkflowId } from '../contracts/drift-monitor';
import { releaseWorkflowId, type OperatorDecision, type ReleaseOutcome, type ReleaseStatus, type ServingPlan } from '../contracts/release-lifecycle';
import { ForgelineGitSha, ForgelineLifecycle, ForgelineModel, ForgelineOutcome, ForgelineStage, ForgelineTeam, Lifecycle } from '../contracts/search-attributes';
import type { ReleaseSpec } from '../contracts/release-spec';
import { ReleaseSpecSchema, type ReleaseSpecInput } from '../contracts/specs/release-spec';
import { formatProblems, validateSpec } from '../contracts/validate';
import type { ArtifactStore } from '../ports/artifact-store';
import { ConfigError } from '../ports/errors';
import { ModelRegistry, type AliasName, type AliasRecord, type VersionRecord } from '../registry/model-registry';
import { CliError, ExitCode, exitCodeForOutcome } from './errors';
import type { Output } from './output';
import { startOrFollow, type Log } from './stack';
import { heartbeatOf, watchRelease } from './watch';

export function artifactStoreFor(cfg: ForgelineConfig): ArtifactStore {
  return createArtifactStore({ uri: cfg.artifacts.uri, s3: { endpoint: cfg.artifacts.s3.endpoint, region: cfg.artifacts.s3.region, forcePathStyle: cfg.artifacts.s3.forcePathStyle } });
}

/** Short random id for releases without a git sha. */
function generatedId(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').toLowerCase() + '-' + Math.random().toString(16).slice(2, 8);
}

/** Validate a release spec at the edge; a ConfigError (exit 2) names every bad field. */
export function parseReleaseSpec(input: unknown, source?: string): ReleaseSpec {
  const v = validateSpec(ReleaseSpecSchema, input);
  if (!v.ok) throw new ConfigError(`${source ? `${source}: ` : ''}${formatProblems('release spec', v.problems)}`);
  return v.value;
}

/**
 * Start a release, or join it. Same model and git sha, same workflow ID: a running or successful
 * release is joined (never duplicated), while one that failed (infrastructure, a bad stage) can be
 * started again for the same sha (ALLOW_DUPLICATE_FAILED_ONLY). `opts.workflowId` overrides the
 * derived ID (the demo: a fresh release of the checkout on every run).
 */
export async function startRelease(client: Client, cfg: ForgelineConfig, input: unknown, log: Log, opts: { workflowId?: string } = {}) {
  const spec = parseReleaseSpec(input);
  const workflowId = opts.workflowId ?? releaseWorkflowId(spec.model, spec.git.sha ?? generatedId());
  return startOrFollow(client, cfg, log, 'release', 'modelReleaseWorkflow', {
    workflowId,
    args: [input],
    typedSearchAttributes: [
      { key: ForgelineLifecycle, value: Lifecycle.Release },
      { key: ForgelineModel, value: spec.model },
      { key: ForgelineTeam, value: spec.team },
      ...(spec.git.sha ? [{ key: ForgelineGitSha, value: spec.git.sha }] : []),
    ],
    memo: { summary: `${spec.model} release${spec.git.sha ? ` of ${spec.git.sha}` : ''}` },
    staticSummary: `Release ${spec.model}: fine-tune → quantize (${spec.quantization.method}) → evaluate → register${spec.serving ? ` → canary ${spec.serving.canary.steps.join('/')}% → production` : ''}`,
  });
}

/** The demo releases the checkout afresh on every run: `release/tiny-demo/<sha12>-<time>-<random>`. */
export function demoReleaseId(spec: ReleaseSpecInput): string {
  const sha = spec.git?.sha?.slice(0, 12);
  return releaseWorkflowId(spec.model, sha ? `${sha}-${generatedId()}` : generatedId());
}

/** HEAD of the git checkout at `dir` (and its branch), or undefined outside a git checkout. */
export function checkoutGit(dir: string): { sha: string; ref?: string; dirty: boolean } | undefined {
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const sha = git('rev-parse', 'HEAD');
    if (!/^[0-9a-f]{40}$/.test(sha)) return undefined;
    const ref = git('rev-parse', '--abbrev-ref', 'HEAD');
    const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
    return { sha, ...(ref && ref !== 'HEAD' ? { ref } : {}), dirty };
  } catch {
    return undefined;
  }
}

/** A short digest of the code that builds the tiny model, so a changed recipe never reuses a stale cached model. */
function tinyModelRecipeDigest(): string {
  const hash = createHash('sha256');
  for (const file of ['make_tiny_model.py', 'forgeline_recipes/tiny.py']) hash.update(readFileSync(path.join(REPO_ROOT, 'workers', 'recipes', file)));
  return hash.digest('hex').slice(0, 12);
}

/**
 * The config-built tiny Llama base model under FORGELINE_HOME/models (built once per version of its
 * recipe, seeded, no download): what the demo fine-tunes and what the dev stack's vLLM serves.
 */
export function ensureTinyBaseModel(cfg: ForgelineConfig, log: Log): Promise<{ dir: string; recipe: string }> {
  const recipe = tinyModelRecipeDigest();
  const dir = path.join(cfg.home, 'models', `tiny-llama-${recipe}`);
  // One build per process, however many callers ask (the dev stack's vLLM and the demo's release).
  let building = tinyModelBuilds.get(dir);
  if (!building) {
    building = (async () => {
      if (!existsSync(path.join(dir, 'config.json'))) {
        log('building the tiny Llama base model from its config (seeded, no download)…');
        const runner = new LocalJobRunner({ python: path.join(cfg.venv, 'bin', 'python'), recipesDir: path.join(REPO_ROOT, 'workers', 'recipes') });
        parseRecipeResult('make_tiny_model', await runner.run({ recipe: 'make_tiny_model', input: { size: 'tiny', seed: 0, device: 'cpu' }, outDir: dir, gpuIndices: [] }));
      }
      return { dir, recipe };
    })();
    building.catch(() => tinyModelBuilds.delete(dir));
    tinyModelBuilds.set(dir, building);
  }
  return building;
}
const tinyModelBuilds = new Map<string, Promise<{ dir: string; recipe: string }>>();

/** LoRA rank of the demo's adapters (the dev stack's vLLM is started with --max-lora-rank of at least this). */
export const DEMO_LORA_RANK = 16;

/** Publish the shipped tiny dataset and a config-built tiny base model; returns a release spec. */
export async function prepareDemoRelease(cfg: ForgelineConfig, log: Log): Promise<ReleaseSpecInput> {
  const store = artifactStoreFor(cfg);
  const registry = new ModelRegistry(store);
  const dataset = await store.publishDirectory(path.join(REPO_ROOT, 'workers', 'recipes', 'data', 'tiny-instruct'), 'datasets/tiny-instruct/', { source: 'workers/recipes/data/tiny-instruct' });
  log(`dataset   artifact://${dataset.prefix} (sha256 ${dataset.digest.slice(0, 12)}…)`);

  const { dir: baseDir, recipe } = await ensureTinyBaseModel(cfg, log);
  const published = await store.publishDirectory(baseDir, `models/tiny-llama/base-${recipe}/`);
  const base = await registry.registerVersion({ model: 'tiny-llama', kind: 'base', prefix: published.prefix, lineage: { recipe: 'make_tiny_model', hyperparameters: { size: 'tiny', seed: 0 } }, createdAt: new Date().toISOString() });
  log(`base      ${base.ref}`);
  const git = checkoutGit(REPO_ROOT);
  if (git) log(`git       ${git.sha.slice(0, 12)}${git.ref ? ` (${git.ref})` : ''}${git.dirty ? ', with uncommitted changes' : ''}`);
  return {
    model: 'tiny-demo',
    base: { ref: base.ref },
    dataset: { uri: `artifact://${dataset.prefix}`, sha256: dataset.digest },
    trainer: { steps: 200, checkpointEvery: 50, learningRate: 3e-3, batchSize: 16, seqLength: 64, lora: { r: DEMO_LORA_RANK, alpha: 2 * DEMO_LORA_RANK, dropout: 0, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] } },
    quantization: { method: 'gptq', bits: 4, groupSize: 32, calibrationSamples: 32 },
    evaluation: { suite: 'tiny-instruct', compareTo: 'base', gates: [{ metric: 'exact_match', op: '>', threshold: 0, on: 'delta' }] },
    // The checkout's commit goes into the registry's lineage (the spec gives none).
    ...(git ? { git: { sha: git.sha, ...(git.ref ? { ref: git.ref } : {}) } } : {}),
  };
}

const ALIASES: readonly AliasName[] = ['candidate', 'production', 'previous'];

/** One model's versions and aliases, as `registry MODEL --json` prints them. */
export async function modelReport(cfg: ForgelineConfig, model: string): Promise<{ model: string; versions: VersionRecord[]; aliases: Partial<Record<AliasName, AliasRecord>> }> {
  const registry = new ModelRegistry(artifactStoreFor(cfg));
  const aliases: Partial<Record<AliasName, AliasRecord>> = {};
  for (const alias of ALIASES) {
    const a = await registry.getAlias(model, alias);
    if (a) aliases[alias] = a;
  }
  return { model, versions: await registry.listVersions(model), aliases };
}

/** The models in the registry. */
export function listModels(cfg: ForgelineConfig): Promise<string[]> {
  return new ModelRegistry(artifactStoreFor(cfg)).listModels();
}

/** Print what a finished release left in the registry. */
export async function printRegistry(cfg: ForgelineConfig, model: string, log: Log): Promise<void> {
  const { versions, aliases } = await modelReport(cfg, model);
  if (versions.length === 0) return log(`registry: no versions of ${model}`);
  log(`registry ${model}:`);
  for (const v of versions) {
    const size = v.artifact.sizeBytes !== undefined ? `${(v.artifact.sizeBytes / 1024).toFixed(0)} KiB` : '';
    log(`  ${v.kind.padEnd(12)} ${v.ref}  ${size.padStart(9)}  ${v.artifact.uri}`);
  }
  for (const alias of ALIASES) {
    const a = aliases[alias];
    if (a) log(`  alias ${alias} → ${Object.entries(a.versions).map(([k, ver]) => `${k}@${ver}`).join(', ')} (by ${a.by}: ${a.reason})`);
  }
}

const OUTCOME_FROM_SEARCH_ATTRIBUTE: Record<string, ReleaseOutcome> = { Succeeded: 'Candidate', Candidate: 'Candidate', Promoted: 'Promoted', RolledBack: 'RolledBack', Rejected: 'Rejected', Failed: 'Failed', Aborted: 'Aborted', Running: 'Running' };

/**
 * What a closed release recorded in its memo and search attributes. A closed workflow answers a
 * query only through a worker, so this is the view when no worker of its queue runs.
 */
async function closedStatus(handle: WorkflowHandle, desc: WorkflowExecutionDescription): Promise<ReleaseStatus> {
  const memo = (desc.memo ?? {}) as { model?: string; outcome?: ReleaseOutcome; decision?: ReleaseStatus['decision']; failure?: string; trackerRun?: string | null };
  const sa = desc.typedSearchAttributes;
  const saOutcome = sa.get(ForgelineOutcome);
  const byExecution: ReleaseOutcome = desc.status.name === 'COMPLETED' ? 'Candidate' : desc.status.name === 'CANCELLED' ? 'Aborted' : 'Failed';
  const result = (await handle.result().catch(() => undefined)) as { versions?: Record<string, string> } | undefined;
  return {
    model: memo.model ?? sa.get(ForgelineModel) ?? '?',
    stage: (sa.get(ForgelineStage) as ReleaseStatus['stage'] | undefined) ?? 'done',
    outcome: memo.outcome ?? (saOutcome ? OUTCOME_FROM_SEARCH_ATTRIBUTE[saOutcome] : undefined) ?? byExecution,
    awaitingApproval: false,
    versions: result?.versions ?? {},
    ...(memo.decision ? { decision: memo.decision } : {}),
    ...(memo.failure ? { failure: memo.failure } : {}),
    ...(memo.trackerRun ? { trackerRunUrl: memo.trackerRun } : {}),
  };
}

/**
 * A release's status: the `status` query while it runs; once it closed, the query if a worker
 * answers within `closedQueryMs`, else what its memo and search attributes recorded.
 */
export async function releaseStatus(handle: WorkflowHandle, desc?: WorkflowExecutionDescription, closedQueryMs = 5000): Promise<ReleaseStatus> {
  const d = desc ?? (await handle.describe());
  if (d.status.name === 'RUNNING') return handle.query<ReleaseStatus>('status');
  try {
    return await handle.client.connection.withDeadline(Date.now() + closedQueryMs, () => handle.query<ReleaseStatus>('status'));
  } catch {
    return closedStatus(handle, d);
  }
}

/**
 * Follow a started release to its end (progress in place on a terminal), report it; returns the
 * exit code. With `json`: NDJSON on stdout, `{"event":"progress",...}` lines while it runs and
 * one `{"event":"result", outcome, status}` line at the end; everything else on stderr.
 */
export async function followRelease(handle: WorkflowHandle, cfg: ForgelineConfig, out: Output, json = false): Promise<ExitCode> {
  await watchRelease(handle, out.progress(json));
  let headline: string;
  try {
    const result = (await handle.result()) as { metrics?: unknown };
    headline = JSON.stringify(result.metrics ?? result);
  } catch (err) {
    headline = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
  }
  const status = await releaseStatus(handle);
  const code = exitCodeForOutcome(status.outcome);
  if (json) {
    out.event('result', { workflowId: handle.workflowId, outcome: status.outcome, exitCode: code, status });
    return code;
  }
  out.log(`release ${status.outcome}: ${status.failure ?? headline}`);
  for (const g of status.gates ?? []) out.log(`  gate ${g.passed ? 'PASS' : 'FAIL'} ${g.reason}`);
  if (status.decision) out.log(`  ${status.decision.kind} by ${status.decision.by}: ${status.decision.reason}`);
  if (status.trackerRunUrl) out.log(`tracker run: ${status.trackerRunUrl}`);
  await printRegistry(cfg, status.model, out.log);
  return code;
}

/** Start a release and follow it to the end, printing progress; returns the exit code. */
export async function runRelease(client: Client, cfg: ForgelineConfig, input: unknown, out: Output, opts: { workflowId?: string } = {}): Promise<ExitCode> {
  return followRelease(await startRelease(client, cfg, input, out.log, opts), cfg, out);
}

/** `release status`: the status query, the execution's state and the running activity's progress. */
export async function statusReport(handle: WorkflowHandle) {
  const desc = await handle.describe();
  const status = await releaseStatus(handle, desc);
  const running = heartbeatOf(desc);
  return { workflowId: handle.workflowId, execution: desc.status.name, status, ...(running ? { running } : {}) };
}

/** The human form of `release status`. */
export function printStatus(report: Awaited<ReturnType<typeof statusReport>>, log: Log): void {
  const { status: s, running } = report;
  log(`release ${report.workflowId}: ${s.outcome}, stage ${s.stage} (${report.execution.toLowerCase()})`);
  const b = running?.beat;
  if (running) {
    const steps = b?.step !== undefined && b.totalSteps ? ` step ${b.step}/${b.totalSteps}` : '';
    const loss = b?.loss !== undefined ? `, loss ${b.loss.toFixed(4)}` : '';
    const attempt = running.attempt > 1 ? ` (attempt ${running.attempt})` : '';
    log(`  running:    ${running.activity}${attempt}${steps}${loss}${!steps && b?.message ? `: ${b.message}` : ''}`);
    if (b?.checkpoint) log(`  checkpoint: step ${b.checkpoint.step} at ${b.checkpoint.prefix}`);
  }
  if (s.awaitingApproval) {
    log(`  awaiting approval${s.approvalDeadline ? ` until ${s.approvalDeadline}` : ''}:`);
    log(`    forgeline release approve ${report.workflowId} --by WHO --reason WHY   (or reject)`);
  }
  for (const g of s.gates ?? []) log(`  gate ${g.passed ? 'PASS' : 'FAIL'} ${g.reason}`);
  if (s.decision) log(`  ${s.decision.kind} by ${s.decision.by}${s.decision.at ? ` at ${s.decision.at}` : ''}: ${s.decision.reason}`);
  if (s.failure) log(`  failure:    ${s.failure}`);
  for (const [kind, ref] of Object.entries(s.versions)) log(`  ${kind.padEnd(11)} ${ref}`);
  if (s.trackerRunUrl) log(`  tracker:    ${s.trackerRunUrl}`);
}

export type DecisionKind = 'approve' | 'reject' | 'abort' | 'pause' | 'resume' | 'promote-now' | 'rollback';

const PAST: Record<DecisionKind, string> = {
  approve: 'approved',
  reject: 'rejected',
  abort: 'aborted',
  pause: 'paused',
  resume: 'resumed',
  'promote-now': 'promoted',
  rollback: 'rolled back',
};
/** The Update each CLI decision sends (names live in histories). */
const UPDATE_NAME: Record<DecisionKind, string> = { approve: 'approve', reject: 'reject', abort: 'abort', pause: 'pause', resume: 'resume', 'promote-now': 'promoteNow', rollback: 'rollback' };

/**
 * Send a decision (an Update, recorded in the release's history with our client identity) and
 * print the state the release returns after it, not the one we hoped for.
 */
export async function decide(handle: Pick<WorkflowHandle, 'workflowId' | 'executeUpdate'>, kind: DecisionKind, decision: OperatorDecision, out: Output, json = false): Promise<number> {
  const status = await handle.executeUpdate<ReleaseStatus, [OperatorDecision]>(UPDATE_NAME[kind], { args: [decision] });
  if (json) {
    out.json({ workflowId: handle.workflowId, status });
    return 0;
  }
  const canaryAction = status.canary?.actions.at(-1);
  const decided = ['approve', 'reject', 'abort'].includes(kind) && status.decision ? `${status.decision.kind} by ${status.decision.by}` : canaryAction ? `${PAST[kind]} by ${canaryAction.by}` : PAST[kind];
  out.log(`release ${handle.workflowId} is now ${decided} / ${status.outcome} (stage ${status.stage})`);
  return 0;
}

/**
 * Roll a release back. While it runs: the `rollback` Update (its own saga). Once it has ended
 * Promoted: a `releaseRollbackWorkflow` (ID `rollback/<release>`, so a second call joins the first)
 * runs the same saga from the plan in the release's result.
 */
export async function rollbackRelease(client: Client, cfg: ForgelineConfig, id: string, decision: OperatorDecision, out: Output, json = false): Promise<number> {
  const handle = client.workflow.getHandle(id);
  const desc = await handle.describe();
  if (desc.status.name === 'RUNNING') return decide(handle, 'rollback', decision, out, json);
  const result = (await handle.result().catch(() => undefined)) as { outcome?: string; serving?: ServingPlan } | undefined;
  if (!result?.serving) {
    const status = await releaseStatus(handle, desc).catch(() => undefined);
    if ((status as { kind?: string } | undefined)?.kind === 'prompt-release') {
      throw new CliError(`prompt release ${id} ended ${status?.outcome ?? desc.status.name}: a prompt rolls back while its release runs; once promoted, release the previous version again (forgeline prompt release)`, ExitCode.Usage);
    }
    throw new CliError(`release ${id} ended ${status?.outcome ?? desc.status.name} without serving traffic; there is nothing to roll back`, ExitCode.Usage);
  }
  const workflowId = rollbackWorkflowId(id);
  const rollback = await client.workflow.start('releaseRollbackWorkflow', {
    taskQueue: cfg.taskQueues.control,
    workflowId,
    args: [{ plan: result.serving, ...decision }],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    typedSearchAttributes: [
      { key: ForgelineLifecycle, value: Lifecycle.Rollback },
      { key: ForgelineModel, value: result.serving.model },
    ],
    staticSummary: `Roll back ${id}: ${decision.reason}`.slice(0, 200),
  });
  const done = (await rollback.result()) as { restored: string };
  if (json) out.json({ workflowId, releaseId: id, restored: done.restored });
  else out.log(`release ${id} rolled back by ${decision.by}: ${result.serving.alias} serves ${done.restored} again (${workflowId})`);
  return 0;
}
