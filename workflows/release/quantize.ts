import type { QuantizeResult, TrainResult } from '../../activities/release';
import { ReleaseStage } from '../../src/contracts/release-lifecycle';
import { gpuActivities, gpuStage } from './activities';
import { stageInput, type ReleaseContext } from './context';
import { asStage } from './failures';

/** Stage quantize: merge the adapter and quantize it (activity quantizeModel, recipe quantize.py). */
export async function quantize(ctx: ReleaseContext, trained: TrainResult): Promise<QuantizeResult> {
  const { spec, state } = ctx;
  state.setStage(ReleaseStage.Quantize);
  return asStage('quantize', () =>
    ctx.leases.run('quantize', 1, (leased, run) =>
      gpuActivities(spec.gpu).quantizeModel.executeWithOptions(
        { ...gpuStage(spec.gpu, `Merge the adapter into the base model and quantize it (${spec.quantization.method}, ${spec.quantization.bits}-bit)`), ...leased },
        [{ ...stageInput(ctx, run), adapter: trained.adapter }],
      ),
    ),
  );
}
