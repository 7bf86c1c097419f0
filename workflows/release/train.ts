import type { TrainResult } from '../../activities/release';
import { ReleaseStage } from '../../src/contracts/release-lifecycle';
import { gpuActivities, gpuStage } from './activities';
import { stageInput, type ReleaseContext } from './context';
import { asStage } from './failures';

/** Stage train: fine-tune a LoRA adapter on `gpu-<pool>` (activity trainAdapter, recipe train.py). */
export async function train(ctx: ReleaseContext): Promise<TrainResult> {
  const { spec, state } = ctx;
  state.setStage(ReleaseStage.Train);
  // Under a lease (quota file): a preempted run checkpoints, and the next run resumes from it.
  const trained = await asStage('train', () =>
    ctx.leases.run('train', spec.gpu.count, (leased, run) =>
      gpuActivities(spec.gpu).trainAdapter.executeWithOptions(
        {
          ...gpuStage(spec.gpu, `Fine-tune a LoRA adapter (r=${spec.trainer.lora.r}) for ${spec.model} on gpu-${spec.gpu.pool}, checkpointing every ${spec.trainer.checkpointEvery} steps`),
          ...leased,
        },
        [stageInput(ctx, run)],
      ),
    ),
  );
  state.status.training = { step: trained.totalSteps, totalSteps: trained.totalSteps, loss: trained.finalLoss, checkpointStep: trained.totalSteps };
  return trained;
}
