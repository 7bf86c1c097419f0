import type { ActivityDeps } from '../deps';
import { createAliasActivities } from './alias';
import { createChunkActivities } from './chunk';
import { createEmbedActivities } from './embed';
import { createPrepareActivities } from './prepare';
import { createSliceActivities } from './slice';
import { createValidateIndexActivities } from './validate-index';

/** The re-embed's light activities: the control worker runs them (it owns the vector store). */
export function createReembedControlActivities(deps: ActivityDeps) {
  return {
    ...createPrepareActivities(deps),
    ...createChunkActivities(deps),
    ...createSliceActivities(deps),
    ...createValidateIndexActivities(deps),
    ...createAliasActivities(deps),
  };
}

/** The re-embed's heavy activities: `gpu-<pool>` workers run them with their long-lived embedder. */
export function createReembedGpuActivities(deps: ActivityDeps) {
  return createEmbedActivities(deps);
}
