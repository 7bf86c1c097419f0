import path from 'node:path';
import { parseRecipeResult, type QuantizeRecipeInput } from '../../src/contracts/recipes';
import type { ActivityDeps } from '../deps';
import { asActivityFailure } from '../errors';
import { fetchPublished, localBaseModel, localDataset } from './inputs';
import { releasePrefix, type RecipeTools, type StageRecipeInput } from './run-recipe';
import type { PublishedRef, QuantizeResult, StageInput } from './types';

export function createQuantizeActivities(deps: ActivityDeps, tools: RecipeTools) {
  const { artifacts, registry } = deps;
  return {
    /** GPU queue: merge the adapter into the base model, then quantize (GPTQ/AWQ) into compressed-tensors (recipe workers/recipes/quantize.py). */
    async quantizeModel(input: StageInput & { adapter: PublishedRef }): Promise<QuantizeResult> {
      return tools.inAttemptDir('quantize', input.releaseId, (outDir) => asActivityFailure(async () => {
        const { spec, releaseId } = input;
        const cache = path.join(deps.workDir, 'cache');
        const [dataset, base, adapter] = await Promise.all([
          localDataset(artifacts, spec, cache),
          localBaseModel(artifacts, registry, spec, cache),
          fetchPublished(artifacts, input.adapter.prefix, cache),
        ]);
        const q = spec.quantization;
        const result = await tools.runRecipe('quantize', 'quantize', input, {
          base_model: base.dir,
          adapter,
          dataset_dir: dataset,
          method: q.method,
          bits: q.bits,
          group_size: q.groupSize,
          calibration_samples: q.calibrationSamples,
        } satisfies StageRecipeInput<QuantizeRecipeInput>, outDir);
        const reported = parseRecipeResult('quantize', result);
        const merged = await tools.publish(path.join(outDir, 'merged'), releasePrefix(releaseId, 'merged'));
        const quantized = q.method === 'none' ? undefined : await tools.publish(path.join(outDir, 'quantized'), releasePrefix(releaseId, 'quantized'), { method: q.method, bits: q.bits });
        const out: QuantizeResult = { merged, sizeBeforeBytes: reported.size_before_bytes, sizeAfterBytes: reported.size_after_bytes, seconds: reported.seconds };
        if (quantized) out.quantized = quantized;
        const run = await tools.openRun(input);
        await run.setSummary({ 'quantize/size_before_bytes': out.sizeBeforeBytes, 'quantize/size_after_bytes': out.sizeAfterBytes, 'quantize/seconds': out.seconds });
        await run.flush();
        return out;
      }));
    },
  };
}
