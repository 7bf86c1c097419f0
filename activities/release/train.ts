import path from 'node:path';
import { Context } from '@temporalio/activity';
import { parseRecipeResult, type TrainRecipeInput } from '../../src/contracts/recipes';
import type { StageHeartbeat } from '../../src/contracts/release-lifecycle';
import type { ActivityDeps } from '../deps';
import { asActivityFailure } from '../errors';
import { fetchPublished, localBaseModel, localDataset } from './inputs';
import { attemptLabel, releasePrefix, type RecipeTools, type StageRecipeInput } from './run-recipe';
import type { StageInput, TrainResult } from './types';

export function createTrainActivities(deps: ActivityDeps, tools: RecipeTools) {
  const { artifacts, registry } = deps;
  return {
    /**
     * GPU queue: LoRA fine-tune (recipe workers/recipes/train.py). Checkpoints are published as
     * they appear and named in the heartbeat, so a retry after the worker died (spot preemption)
     * resumes from the latest one, on this host or another.
     */
    async trainAdapter(input: StageInput): Promise<TrainResult> {
      return tools.inAttemptDir('train', input.releaseId, (outDir) => asActivityFailure(async () => {
        const { spec, releaseId } = input;
        const attempt = Context.current().info.attempt;
        const cache = path.join(deps.workDir, 'cache');
        const [dataset, base] = await Promise.all([localDataset(artifacts, spec, cache), localBaseModel(artifacts, registry, spec, cache)]);
        const prior = Context.current().info.heartbeatDetails as StageHeartbeat | undefined;
        const checkpoint = await tools.latestCheckpoint(releaseId, prior?.checkpoint);
        const resumeFrom = checkpoint ? await fetchPublished(artifacts, checkpoint.prefix, cache) : undefined;
        const t = spec.trainer;
        const result = await tools.runRecipe(
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
            liger: t.liger,
            compile: t.compile,
            ...(resumeFrom ? { resume_from: resumeFrom } : {}),
          } satisfies StageRecipeInput<TrainRecipeInput>,
          outDir,
          {
            dataParallel: true,
            checkpointOnCancel: true,
            ...(checkpoint ? { checkpoint } : {}),
            onEvent: async (e, beat) => {
              if (e.event !== 'checkpoint') return;
              // Per attempt: a retry that redoes a step publishes its own copy, never over another's.
              const ckpt = await tools.publish(path.join(outDir, e.path), releasePrefix(releaseId, `checkpoints/${attemptLabel(input, attempt)}/step-${String(e.step).padStart(7, '0')}`));
              beat.checkpoint = { step: e.step, prefix: ckpt.prefix };
            },
          },
        );
        const trained = parseRecipeResult('train', result);
        const adapter = await tools.publish(path.join(outDir, 'adapter'), releasePrefix(releaseId, 'adapter'), { baseModel: base.ref, releaseId });
        await tools.pruneCheckpoints(releaseId);
        return {
          adapter,
          totalSteps: trained.total_steps,
          stepsThisRun: trained.steps_done_this_run,
          resumedFromStep: trained.resumed_from_step,
          ...(trained.final_loss !== null ? { finalLoss: trained.final_loss } : {}),
          tokensPerS: trained.tokens_per_s,
          recipeResult: trained,
        };
      }));
    },
  };
}
