import type { ActivityDeps } from '../deps';
import { createEvaluateActivities } from './evaluate';
import { createQuantizeActivities } from './quantize';
import { createRegisterActivities } from './register';
import { createRecipeTools } from './run-recipe';
import { createServingActivities } from './serving';
import { createTrackingActivities } from './tracking';
import { createTrainActivities } from './train';
import { createValidateActivities } from './validate';

export type { EvalResult, PublishedRef, QuantizeResult, StageInput, TrainResult } from './types';

/** The release's light activities: the control worker runs them. */
export function createReleaseControlActivities(deps: ActivityDeps) {
  const tools = createRecipeTools(deps);
  return {
    ...createValidateActivities(deps),
    ...createTrackingActivities(tools),
    ...createRegisterActivities(deps),
    ...createServingActivities(deps),
  };
}

/** The release's heavy activities, one per GPU stage: a `gpu-<pool>` worker runs them. */
export function createReleaseGpuActivities(deps: ActivityDeps) {
  const tools = createRecipeTools(deps);
  return {
    ...createTrainActivities(deps, tools),
    ...createQuantizeActivities(deps, tools),
    ...createEvaluateActivities(deps, tools),
  };
}
