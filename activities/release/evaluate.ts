import path from 'node:path';
import { parseRecipeResult, type EvaluateRecipeInput } from '../../src/contracts/recipes';
import type { ActivityDeps } from '../deps';
import { asActivityFailure } from '../errors';
import { fetchPublished, localBaseModel, localDataset } from './inputs';
import { releasePrefix, type RecipeTools, type StageRecipeInput } from './run-recipe';
import type { EvalResult, PublishedRef, StageInput } from './types';

export function createEvaluateActivities(deps: ActivityDeps, tools: RecipeTools) {
  const { artifacts, registry } = deps;
  return {
    /** GPU queue: score candidate (quantized and merged) and comparator on the held-out set (recipe workers/recipes/evaluate.py). */
    async runEvalSuite(input: StageInput & { merged: PublishedRef; quantized?: PublishedRef }): Promise<EvalResult> {
      return tools.inAttemptDir('eval', input.releaseId, (outDir) => asActivityFailure(async () => {
        const { spec, releaseId } = input;
        const cache = path.join(deps.workDir, 'cache');
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
        const result = await tools.runRecipe('evaluate', 'evaluate', input, { models, dataset_dir: dataset, suite: spec.evaluation.suite } satisfies StageRecipeInput<EvaluateRecipeInput>, outDir);
        const { metrics } = parseRecipeResult('evaluate', result);
        const report = await tools.publish(outDir, releasePrefix(releaseId, 'eval-report'), { comparator });
        const summary: Record<string, number> = {};
        for (const [k, m] of Object.entries(metrics)) {
          summary[k] = m.value;
          if (m.delta !== undefined) summary[`${k}_delta`] = m.delta;
        }
        return { metrics, summary, report, comparator };
      }));
    },
  };
}
