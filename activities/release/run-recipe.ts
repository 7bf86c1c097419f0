import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { ErrorType } from '../../src/contracts/errors';
import type { RecipeTracking } from '../../src/contracts/recipes';
import { durationMs, GPU_HEARTBEAT_THROTTLE_MS } from '../../src/contracts/specs/release-spec';
import type { StageHeartbeat } from '../../src/contracts/release-lifecycle';
import type { DeviceLease } from '../../src/ports/gpu-allocator';
import { ForgelineError } from '../../src/ports/errors';
import type { RecipeEvent } from '../../src/ports/job-runner';
import type { Scalar, TrackerRun } from '../../src/ports/tracker';
import type { ActivityDeps } from '../deps';
import { runIdFor } from '../stack-check';
import type { PublishedRef, StageInput } from './types';

/** Tracker run ids and store prefixes allow [A-Za-z0-9_-]; workflow IDs carry slashes. */
export const safeId = (id: string) => runIdFor(id);

/** `releases/<release>/<part>/`: where a release keeps its artifacts in the store. */
export function releasePrefix(releaseId: string, part: string): string {
  return `releases/${safeId(releaseId)}/${part}/`;
}

/** `<prefix ending in step-NNNNNNN/>MANIFEST.json`: a published training checkpoint. */
const CHECKPOINT_MANIFEST = /^(.*\/step-(\d+)\/)MANIFEST\.json$/;

/** Published checkpoints a release keeps once its adapter is published (the newest, over all attempts). */
export const KEEP_CHECKPOINTS = 2;

/**
 * Retryable unless the recipe said otherwise; keeps the stage's name in the message. A recipe its
 * worker stopped for shutdown (after checkpointing) is `RecipePreempted`, any other `RecipeCrashed`.
 */
function recipeFailure(stage: string, err: unknown): never {
  if (err instanceof ForgelineError && !err.terminal) {
    throw ApplicationFailure.retryable(`${stage}: ${err.message}`, err.name === 'RecipePreemptedError' ? 'RecipePreempted' : 'RecipeCrashed');
  }
  throw err;
}

/** A recipe's input (src/contracts/recipes) as a stage builds it: runRecipe adds `device`, `seed` and `processes`. */
export type StageRecipeInput<T> = Omit<T, 'device' | 'seed' | 'processes'>;

/**
 * How long a recipe asked to checkpoint and stop (its stage cancelled: preempted by GPU admission,
 * or aborted) gets before it is killed. A step plus a checkpoint save; training of a large model
 * on slow storage may need more, and then the stage resumes from its previous checkpoint.
 */
export const CHECKPOINT_ON_CANCEL_GRACE_MS = 120_000;

/** Per-attempt names (checkpoints, recipe runs): `attempt-<n>`, or `run-<r>-attempt-<n>` after a preemption (StageInput.run). */
export function attemptLabel(input: Pick<StageInput, 'run'>, attempt: number): string {
  return (input.run ?? 1) > 1 ? `run-${input.run}-attempt-${attempt}` : `attempt-${attempt}`;
}

export interface RunRecipeOptions {
  dataParallel?: boolean;
  /**
   * A recipe that checkpoints (train): when the server cancels the stage (GPU admission preempted
   * it, an operator aborted), ask it to save a checkpoint and stop first (SIGUSR1, as a worker's
   * shutdown does), so the next run resumes from it; it is killed after CHECKPOINT_ON_CANCEL_GRACE_MS.
   */
  checkpointOnCancel?: boolean;
  /** The checkpoint this attempt resumes from, carried in every heartbeat until a newer one is published. */
  checkpoint?: { step: number; prefix: string };
  onEvent?: (e: RecipeEvent, beat: StageHeartbeat) => Promise<void> | void;
}

/** What the GPU stages share: publishing, checkpoints, and running a recipe on this worker's GPUs. */
export function createRecipeTools(deps: ActivityDeps) {
  const { artifacts } = deps;

  async function publish(dir: string, prefix: string, metadata?: Record<string, unknown>): Promise<PublishedRef> {
    const m = await artifacts.publishDirectory(dir, prefix, metadata);
    return { prefix: m.prefix, uri: `${artifacts.rootUri.replace(/\/$/, '')}/${m.prefix}`, digest: m.digest };
  }

  /** Opens (or resumes) the release's tracker run. Only callers that know the release ID name it. */
  function openRun(input: { runId: string; spec: StageInput['spec']; releaseId?: string }): Promise<TrackerRun> {
    return deps.tracker.openRun({
      runId: input.runId,
      project: deps.trackerProject,
      // One group per release (its run ID): the lifecycle run beside the recipes' stage runs.
      group: input.runId,
      ...(input.releaseId ? { name: `release ${input.releaseId}` } : {}),
      jobType: 'release',
      tags: [input.spec.model, ...(input.spec.git.sha ? [input.spec.git.sha.slice(0, 12)] : [])],
    });
  }

  /**
   * Runs a stage in this attempt's own work directory, `<workDir>/releases/<release>/<stage>-attempt-<n>`:
   * created first, removed when the stage ends, whatever the outcome. What a retry needs (the
   * checkpoints) is in the store, so a worker's disk does not fill up with old attempts.
   */
  async function inAttemptDir<T>(stage: string, releaseId: string, fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = path.join(deps.workDir, 'releases', safeId(releaseId), `${stage}-attempt-${Context.current().info.attempt}`);
    await mkdir(dir, { recursive: true });
    try {
      return await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Retention: once training has published its adapter, deletes all but the `keep` newest
   * published checkpoints of the release (over every attempt), manifest first so a half-deleted
   * one never reads as complete. Returns the steps it deleted.
   */
  async function pruneCheckpoints(releaseId: string, keep = KEEP_CHECKPOINTS): Promise<number[]> {
    const found: Array<{ step: number; prefix: string }> = [];
    for await (const obj of artifacts.listAll(releasePrefix(releaseId, 'checkpoints'))) {
      const m = CHECKPOINT_MANIFEST.exec(obj.key);
      if (m) found.push({ step: Number(m[2]), prefix: m[1]! });
    }
    // Newest first; of two copies of one step (a redone step), the later attempt's.
    found.sort((a, b) => b.step - a.step || b.prefix.localeCompare(a.prefix, 'en', { numeric: true }));
    const deleted: number[] = [];
    for (const old of found.slice(keep)) {
      await artifacts.delete(`${old.prefix}MANIFEST.json`);
      const keys: string[] = [];
      for await (const obj of artifacts.listAll(old.prefix)) keys.push(obj.key);
      for (const key of keys) await artifacts.delete(key);
      deleted.push(old.step);
    }
    return deleted;
  }

  /**
   * The newest complete checkpoint of a release's training: the later of the one the last
   * heartbeat named and the newest published to the store, because a worker can die after
   * publishing a checkpoint and before the heartbeat naming it got through (heartbeats are
   * throttled). A published manifest means a complete checkpoint.
   */
  async function latestCheckpoint(releaseId: string, fromHeartbeat?: { step: number; prefix: string }): Promise<{ step: number; prefix: string } | undefined> {
    let latest = fromHeartbeat;
    for await (const obj of artifacts.listAll(releasePrefix(releaseId, 'checkpoints'))) {
      const m = CHECKPOINT_MANIFEST.exec(obj.key);
      if (m && (!latest || Number(m[2]) > latest.step)) latest = { step: Number(m[2]), prefix: m[1]! };
    }
    return latest;
  }

  /**
   * The recipe's own W&B run for this stage and attempt (when recipes log to W&B): grouped by
   * release, `job_type` the stage, one run per attempt (a retry never appends to a run's history).
   */
  function recipeTracking(stage: string, input: StageInput, attempt: number): RecipeTracking | undefined {
    const t = deps.recipeTracking;
    if (!t) return undefined;
    return {
      project: t.project,
      ...(t.entity ? { entity: t.entity } : {}),
      group: input.runId,
      job_type: stage,
      run_name: `${stage} ${input.releaseId}`,
      run_id: safeId(`${input.releaseId}-${stage}-${(input.run ?? 1) > 1 ? `r${input.run}` : ''}a${attempt}`),
      mode: t.mode,
      dir: t.dir,
      tags: [input.spec.model, ...(input.spec.git.sha ? [input.spec.git.sha.slice(0, 12)] : [])],
    };
  }

  /**
   * Run one recipe on this worker's GPU(s): heartbeat every event (and every few seconds while the
   * recipe is quiet), stream its metrics and tables to the tracker, kill it on cancellation, and
   * stop it as hung after `spec.gpu.progressTimeout` without an event.
   *
   * A data-parallel stage (training) takes `spec.gpu.count` GPUs and runs one process per GPU
   * (`processes` in the recipe's input); the other stages take one GPU each, so a worker with
   * several GPUs runs several of them side by side.
   */
  async function runRecipe(
    stage: string,
    recipe: string,
    input: StageInput,
    recipeInput: Record<string, unknown>,
    outDir: string,
    options: RunRecipeOptions = {},
  ): Promise<Record<string, unknown>> {
    const { dataParallel = false, checkpoint, onEvent, checkpointOnCancel = false } = options;
    const ctx = Context.current();
    const gpus = dataParallel ? input.spec.gpu.count : 1;
    const beat: StageHeartbeat = { stage, message: `${stage}: waiting for ${gpus} GPU(s) on ${deps.workerIdentity}` };
    if (checkpoint) beat.checkpoint = checkpoint;
    // Heartbeat from the start: a stage queued behind another job's GPUs is waiting, not lost,
    // and must not be timed out and run twice.
    ctx.heartbeat(beat);
    const ticker = setInterval(() => ctx.heartbeat(beat), GPU_HEARTBEAT_THROTTLE_MS);
    // Specs validated before progressTimeout existed (a release started by an older version) have none.
    const progressTimeout = (input.spec.gpu as Partial<StageInput['spec']['gpu']>).progressTimeout;
    let lease: DeviceLease | undefined;
    let run: TrackerRun | undefined;
    // Cancelled by the server ('CANCELLED'; not a worker shutdown, which already asked): checkpoint first, then kill.
    const kill = new AbortController();
    const stopAtCheckpoint = new AbortController();
    let killTimer: NodeJS.Timeout | undefined;
    const onCancel = () => {
      const reason: unknown = ctx.cancellationSignal.reason;
      if (checkpointOnCancel && reason instanceof Error && reason.message === 'CANCELLED') {
        ctx.log.info(`${stage}: cancelled; asking the recipe to save a checkpoint and stop`);
        stopAtCheckpoint.abort(reason);
        killTimer = setTimeout(() => kill.abort(reason), CHECKPOINT_ON_CANCEL_GRACE_MS);
      } else {
        kill.abort(reason);
      }
    };
    ctx.cancellationSignal.addEventListener('abort', onCancel, { once: true });
    if (ctx.cancellationSignal.aborted) onCancel();
    try {
      lease = await deps.gpus.acquire(gpus, ctx.cancellationSignal).catch((err: unknown) => {
        if (ctx.cancellationSignal.aborted) throw err;
        // Every worker of a pool has the same GPUs: no retry can place this stage.
        throw ApplicationFailure.nonRetryable(`${(err as Error).message} (pool ${deps.pool})`, ErrorType.InvalidSpec);
      });
      run = await openRun(input);
      const tracker = run;
      beat.message = `${stage}: starting on ${lease.device}${lease.indices.length ? ` ${lease.indices.join(',')}` : ''}`;
      ctx.heartbeat(beat);
      const tracking = recipeTracking(stage, input, ctx.info.attempt);
      return await deps.jobs.run({
        recipe,
        input: {
          ...recipeInput,
          device: lease.device,
          seed: input.spec.trainer.seed,
          ...(dataParallel ? { processes: Math.max(1, lease.indices.length) } : {}),
          ...(tracking ? { tracking } : {}),
        },
        outDir,
        gpuIndices: lease.indices,
        ...(tracking ? { env: deps.recipeTracking!.env } : {}),
        signal: kill.signal,
        ...(checkpointOnCancel ? { checkpointSignal: stopAtCheckpoint.signal } : {}),
        ...(progressTimeout ? { progressTimeoutMs: durationMs(progressTimeout) } : {}),
        onLog: (line) => ctx.log.debug(`[${recipe}] ${line}`),
        onEvent: async (e) => {
          if (e.event === 'start' && e.total_steps !== undefined) {
            // Live progress from the first beat: where this attempt starts, out of how many steps.
            Object.assign(beat, { step: e.resumed_from_step ?? 0, totalSteps: e.total_steps, message: undefined });
          } else if (e.event === 'progress') {
            Object.assign(beat, { step: e.step, totalSteps: e.total_steps, loss: e.loss, message: undefined });
            const row: Record<string, Scalar> = { [`${stage}/step`]: e.step };
            if (e.loss !== undefined) row[`${stage}/loss`] = e.loss;
            if (e.lr !== undefined) row[`${stage}/lr`] = e.lr;
            if (e.tokens_per_s !== undefined) row[`${stage}/tokens_per_s`] = e.tokens_per_s;
            if (stage === 'train') await tracker.log(row, e.step);
          } else if (e.event === 'metric') {
            await tracker.setSummary({ [`${stage}/${e.name}`]: e.value });
          } else if (e.event === 'table') {
            await tracker.logTable(`${stage}/${e.name}`, e.columns, e.rows);
          }
          await onEvent?.(e, beat);
          ctx.heartbeat(beat);
        },
      });
    } catch (err) {
      // Stopped at a checkpoint because the stage was cancelled: the activity ends cancelled, not failed.
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
      return recipeFailure(stage, err);
    } finally {
      ctx.cancellationSignal.removeEventListener('abort', onCancel);
      clearTimeout(killTimer);
      clearInterval(ticker);
      lease?.release();
      await run?.flush();
    }
  }

  return { publish, openRun, latestCheckpoint, runRecipe, inAttemptDir, pruneCheckpoints };
}

export type RecipeTools = ReturnType<typeof createRecipeTools>;
