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
    gpuActivities(spec.gpu).quantizeModel.executeWithOptions(
      gpuStage(spec.gpu, `Merge the adapter into the base model and quantize it (${spec.quantization.method}, ${spec.quantization.bits}-bit)`),
      [{ ...stageInput(ctx), adapter: trained.adapter }],
    ),
  );
}
