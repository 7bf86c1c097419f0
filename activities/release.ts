import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { DeviceLease } from '../src/adapters/gpu-allocator';
import { RecipeCrashedError } from '../src/adapters/local-job-runner';
import { ErrorType } from '../src/contracts/errors';
import type { GateInput, MetricEstimate } from '../src/contracts/release-gates';
import type { ReleaseOutcome } from '../src/contracts/release-lifecycle';
import type { ReleaseSpec } from '../src/contracts/release-spec';
import { ReleaseSpecSchema } from '../src/contracts/specs/release-spec';
import type { RecipeEvent } from '../src/ports/job-runner';
import type { Scalar, TrackerRun } from '../src/ports/tracker';
import type { ArtifactKind } from '../src/registry/model-registry';
import type { StageHeartbeat } from '../src/cli/watch';
import type { ActivityDeps } from './deps';
import { asActivityFailure, parseSpecOrFail } from './errors';
import { fetchPublished, localBaseModel, localDataset } from './release-inputs';
import { runIdFor } from './stack-check';

/** A directory published to the ArtifactStore (manifest last). */
export interface PublishedRef {
  prefix: string;
  uri: string;
  digest: string;
}

export interface StageInput {
  releaseId: string;
  runId: string;
  spec: ReleaseSpec;
}

export interface TrainResult {
  adapter: PublishedRef;
  totalSteps: number;
  stepsThisRun: number;
  resumedFromStep: number;
  finalLoss?: number;
  tokensPerS?: number;
  recipeResult: Record<string, unknown>;
}

export interface QuantizeResult {
  merged: PublishedRef;
  quantized?: PublishedRef;
  sizeBeforeBytes: number;
  sizeAfterBytes: number;
  seconds: number;
}

export interface EvalResult extends GateInput {
  /** Headline numbers for the workflow result and the memo. */
  summary: Record<string, number>;
  report: PublishedRef;
  comparator: string;
}

const safe = (id: string) => runIdFor(id);
/** `<prefix ending in step-NNNNNNN/>MANIFEST.json`: a published training checkpoint. */
const CHECKPOINT_MANIFEST = /^(.*\/step-(\d+)\/)MANIFEST\.json$/;

function releasePrefix(releaseId: string, part: string): string {
  return `releases/${safe(releaseId)}/${part}/`;
}

/** Retryable unless the recipe said otherwise; keeps the stage's name in the message. */
function recipeFailure(stage: string, err: unknown): never {
  if (err instanceof RecipeCrashedError) throw ApplicationFailure.retryable(`${stage}: ${err.message}`, 'RecipeCrashed');
  throw err;
}

export function createReleaseActivities(deps: ActivityDeps) {
  const { artifacts, registry } = deps;

  async function publish(dir: string, prefix: string, metadata?: Record<string, unknown>): Promise<PublishedRef> {
    const m = await artifacts.publishDirectory(dir, prefix, metadata);
    return { prefix: m.prefix, uri: `${artifacts.rootUri.replace(/\/$/, '')}/${m.prefix}`, digest: m.digest };
  }

  /** Opens (or resumes) the release's run. Only callers that know the release ID name the run;
   *  the others leave the name as it is. */
  function openRun(input: { runId: string; spec: ReleaseSpec; releaseId?: string }): Promise<TrackerRun> {
    return deps.tracker.openRun({
      runId: input.runId,
      project: deps.trackerProject,
      group: input.spec.model,
      ...(input.releaseId ? { name: `release ${input.releaseId}` } : {}),
      jobType: 'release',
      tags: [input.spec.model, ...(input.spec.git.sha ? [input.spec.git.sha.slice(0, 12)] : [])],
    });
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
   * Run one recipe on this worker's GPU(s): heartbeat every event (and every 10 s while the
   * recipe is quiet), stream its metrics and tables to the tracker, and kill it on cancellation.
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
    options: {
      dataParallel?: boolean;
      /** The checkpoint this attempt resumes from, carried in every heartbeat until a newer one is published. */
      checkpoint?: { step: number; prefix: string };
      onEvent?: (e: RecipeEvent, beat: StageHeartbeat) => Promise<void> | void;
    } = {},
  ): Promise<Record<string, unknown>> {
    const { dataParallel = false, checkpoint, onEvent } = options;
    const ctx = Context.current();
    const gpus = dataParallel ? input.spec.gpu.count : 1;
    const beat: StageHeartbeat = { stage, message: `${stage}: waiting for ${gpus} GPU(s) on ${deps.workerIdentity}` };
    if (checkpoint) beat.checkpoint = checkpoint;
    // Heartbeat from the start: a stage queued behind another job's GPUs is waiting, not lost,
    // and must not be timed out and run twice.
    ctx.heartbeat(beat);
    const ticker = setInterval(() => ctx.heartbeat(beat), 10_000);
    let lease: DeviceLease | undefined;
    let run: TrackerRun | undefined;
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
      return await deps.jobs.run({
        recipe,
        input: {
          ...recipeInput,
          device: lease.device,
          seed: input.spec.trainer.seed,
          ...(dataParallel ? { processes: Math.max(1, lease.indices.length) } : {}),
        },
        outDir,
        gpuIndices: lease.indices,
        signal: ctx.cancellationSignal,
        onLog: (line) => ctx.log.debug(`[${recipe}] ${line}`),
        onEvent: async (e) => {
          if (e.event === 'progress') {
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
      return recipeFailure(stage, err);
    } finally {
      clearInterval(ticker);
      lease?.release();
      await run?.flush();
    }
  }

  return {
    /** Control queue: the CLI's validation again, for releases started by hand in the UI. */
    async validateReleaseSpec(raw: unknown): Promise<ReleaseSpec> {
      return parseSpecOrFail(ReleaseSpecSchema, raw, 'release spec') as ReleaseSpec;
    },

    /** Control queue: one tracker run per release, grouped by model alias. */
    async openReleaseRun(input: { releaseId: string; spec: ReleaseSpec }): Promise<{ runId: string; url: string }> {
      const runId = safe(input.releaseId);
      const run = await openRun({ ...input, runId });
      await run.setConfig({ spec: input.spec, releaseId: input.releaseId });
      await run.flush();
      return { runId, url: run.url };
    },

    /**
     * GPU queue: LoRA fine-tune. Checkpoints are published as they appear and named in the
     * heartbeat, so a retry after the worker died (spot preemption) resumes from the latest one,
     * on this host or another.
     */
    async trainAdapter(input: StageInput): Promise<TrainResult> {
      return asActivityFailure(async () => {
        const { spec, releaseId } = input;
        const attempt = Context.current().info.attempt;
        const cache = path.join(deps.workDir, 'cache');
        const outDir = path.join(deps.workDir, 'releases', safe(releaseId), `train-attempt-${attempt}`);
        mkdirSync(outDir, { recursive: true });
        const [dataset, base] = await Promise.all([localDataset(artifacts, spec, cache), localBaseModel(artifacts, registry, spec, cache)]);
        const prior = Context.current().info.heartbeatDetails as StageHeartbeat | undefined;
        const checkpoint = await latestCheckpoint(releaseId, prior?.checkpoint);
        const resumeFrom = checkpoint ? await fetchPublished(artifacts, checkpoint.prefix, cache) : undefined;
        const t = spec.trainer;
        const result = await runRecipe(
          'train',
          'train',
          input,
          {
            base_model: base.dir,
            dataset_dir: dataset,
            lora: { r: t.lora.r, alpha: t.lora.alpha, dropout: t.lora.dropout, target_modules: t.lora.targetModules },
            qlora: t.qlora,
            ...(t.steps !== undefined ? { steps: t.steps } : {}),
            ...(t.epochs !== undefined ? { epochs: t.epochs } : {}),
            learning_rate: t.learningRate,
            batch_size: t.batchSize,
            seq_length: t.seqLength,
            checkpoint_every: t.checkpointEvery,
            packing: t.packing,
            gradient_checkpointing: t.gradientCheckpointing,
            strategy: t.strategy,
            ...(resumeFrom ? { resume_from: resumeFrom } : {}),
          },
          outDir,
          {
            dataParallel: true,
            ...(checkpoint ? { checkpoint } : {}),
            onEvent: async (e, beat) => {
              if (e.event !== 'checkpoint') return;
              // Per attempt: a retry that redoes a step publishes its own copy, never over another's.
              const ckpt = await publish(path.join(outDir, e.path), releasePrefix(releaseId, `checkpoints/attempt-${attempt}/step-${String(e.step).padStart(7, '0')}`));
              beat.checkpoint = { step: e.step, prefix: ckpt.prefix };
            },
          },
        );
        const adapter = await publish(path.join(outDir, 'adapter'), releasePrefix(releaseId, 'adapter'), { baseModel: base.ref, releaseId });
        const num = (k: string) => (typeof result[k] === 'number' ? (result[k] as number) : undefined);
        return {
          adapter,
          totalSteps: num('total_steps') ?? num('global_step') ?? 0,
          stepsThisRun: num('steps_done_this_run') ?? 0,
          resumedFromStep: num('resumed_from_step') ?? 0,
          finalLoss: num('final_loss'),
          tokensPerS: num('tokens_per_s'),
          recipeResult: result,
        };
      });
    },

    /** GPU queue: merge the adapter into the base model, then quantize (GPTQ/AWQ) into compressed-tensors. */
    async quantizeModel(input: StageInput & { adapter: PublishedRef }): Promise<QuantizeResult> {
      return asActivityFailure(async () => {
        const { spec, releaseId } = input;
        const cache = path.join(deps.workDir, 'cache');
        const outDir = path.join(deps.workDir, 'releases', safe(releaseId), `quantize-attempt-${Context.current().info.attempt}`);
        const [dataset, base, adapter] = await Promise.all([
          localDataset(artifacts, spec, cache),
          localBaseModel(artifacts, registry, spec, cache),
          fetchPublished(artifacts, input.adapter.prefix, cache),
        ]);
        const q = spec.quantization;
        const result = await runRecipe('quantize', 'quantize', input, {
          base_model: base.dir,
          adapter,
          dataset_dir: dataset,
          method: q.method,
          bits: q.bits,
          group_size: q.groupSize,
          calibration_samples: q.calibrationSamples,
        }, outDir);
        const merged = await publish(path.join(outDir, 'merged'), releasePrefix(releaseId, 'merged'));
        const quantized = q.method === 'none' ? undefined : await publish(path.join(outDir, 'quantized'), releasePrefix(releaseId, 'quantized'), { method: q.method, bits: q.bits });
        const num = (k: string) => (typeof result[k] === 'number' ? (result[k] as number) : 0);
        const out: QuantizeResult = { merged, sizeBeforeBytes: num('size_before_bytes'), sizeAfterBytes: num('size_after_bytes'), seconds: num('seconds') };
        if (quantized) out.quantized = quantized;
        const run = await openRun(input);
        await run.setSummary({ 'quantize/size_before_bytes': out.sizeBeforeBytes, 'quantize/size_after_bytes': out.sizeAfterBytes, 'quantize/seconds': out.seconds });
        await run.flush();
        return out;
      });
    },

    /** GPU queue: score candidate (quantized and merged) and comparator on the held-out set. */
    async runEvalSuite(input: StageInput & { merged: PublishedRef; quantized?: PublishedRef }): Promise<EvalResult> {
      return asActivityFailure(async () => {
        const { spec, releaseId } = input;
        const cache = path.join(deps.workDir, 'cache');
        const outDir = path.join(deps.workDir, 'releases', safe(releaseId), `eval-attempt-${Context.current().info.attempt}`);
        const production = spec.evaluation.compareTo === 'production' ? await registry.getAlias(spec.model, 'production') : undefined;
        const comparatorPrefix = production?.versions.merged
          ? (await registry.getVersion(spec.model, 'merged', production.versions.merged))?.artifact.prefix
          : undefined;
        const [dataset, base, merged, quantized, comparatorDir] = await Promise.all([
          localDataset(artifacts, spec, cache),
          localBaseModel(artifacts, registry, spec, cache),
          fetchPublished(artifacts, input.merged.prefix, cache),
          input.quantized ? fetchPublished(artifacts, input.quantized.prefix, cache) : Promise.resolve(undefined),
          comparatorPrefix ? fetchPublished(artifacts, comparatorPrefix, cache) : Promise.resolve(undefined),
        ]);
        // No production model yet: compare with the base, and say so in the report.
        const comparator = comparatorDir ? 'production' : 'base';
        const models: Record<string, string> = { candidate: quantized ?? merged, comparator: comparatorDir ?? base.dir };
        if (quantized) models.candidate_unquantized = merged;
        const result = await runRecipe('evaluate', 'evaluate', input, { models, dataset_dir: dataset, suite: spec.evaluation.suite }, outDir);
        const report = await publish(outDir, releasePrefix(releaseId, 'eval-report'), { comparator });
        const metrics = (result.metrics ?? {}) as Record<string, MetricEstimate>;
        const summary: Record<string, number> = {};
        for (const [k, m] of Object.entries(metrics)) {
          summary[k] = m.value;
          if (m.delta !== undefined) summary[`${k}_delta`] = m.delta;
        }
        return { metrics, summary, report, comparator };
      });
    },

    /** Control queue: the gate verdict into the tracker run, as a table. */
    async logGateResults(input: { runId: string; spec: ReleaseSpec; gates: Array<{ gate: string; passed: boolean; reason: string }> }): Promise<void> {
      const run = await openRun(input);
      await run.logTable('gates', ['gate', 'passed', 'reason'], input.gates.map((g) => [g.gate, g.passed, g.reason]));
      await run.flush();
    },

    /** Control queue: register every artifact of the release as an immutable version with lineage. */
    async registerRelease(input: { releaseId: string; spec: ReleaseSpec; trained: TrainResult; quantized: QuantizeResult; report: EvalResult; gatesPassed: boolean }): Promise<{ versions: Partial<Record<ArtifactKind, string>> }> {
      return asActivityFailure(async () => {
        const { spec, releaseId } = input;
        const createdAt = new Date().toISOString();
        const lineage = {
          baseModel: 'path' in spec.base ? { ref: `path:${spec.base.path}` } : { ref: spec.base.ref },
          datasetSha256: spec.dataset.sha256,
          recipe: spec.trainer.recipe,
          hyperparameters: { ...spec.trainer, quantization: spec.quantization },
          ...(spec.git.sha ? { gitSha: spec.git.sha } : {}),
          releaseWorkflowId: releaseId,
          metrics: input.report.summary,
        };
        const versions: Partial<Record<ArtifactKind, string>> = {};
        const reg = async (kind: ArtifactKind, ref: PublishedRef | undefined) => {
          if (!ref) return;
          const v = await registry.registerVersion({ model: spec.model, kind, prefix: ref.prefix, lineage: { ...lineage, parents: { ...versions } }, createdAt });
          versions[kind] = v.version;
        };
        await reg('adapter', input.trained.adapter);
        await reg('merged', input.quantized.merged);
        await reg('quantized', input.quantized.quantized);
        await reg('eval-report', input.report.report);
        return { versions };
      });
    },

    /** Control queue: point the `candidate` alias at this release, recording who and why. */
    async promoteCandidate(input: { releaseId: string; model: string; versions: Partial<Record<ArtifactKind, string>>; by: string; reason: string }): Promise<void> {
      const info = Context.current().info;
      await registry.moveAlias(input.model, 'candidate', {
        versions: input.versions,
        releaseWorkflowId: input.releaseId,
        by: input.by,
        reason: input.reason,
        at: new Date().toISOString(),
        moveId: `${safe(input.releaseId)}-${info.activityId}`,
      });
    },

    /** Control queue: the run's outcome, then finish it. */
    async closeReleaseRun(input: { runId: string; spec: ReleaseSpec; outcome: ReleaseOutcome }): Promise<void> {
      const run = await openRun(input);
      await run.setSummary({ outcome: input.outcome });
      await run.finish(input.outcome === 'Candidate' ? 0 : 1);
    },
  };
}
