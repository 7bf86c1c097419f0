import type { ActivityDeps } from './deps';
import { createReleaseActivities } from './release';
import { createStackCheckActivities } from './stack-check';

export type { ActivityDeps } from './deps';

/**
 * Every activity Forgeline has, built from ports. Workers register this whole object (a worker
 * only receives tasks from its own queue, so an activity is only ever run where workflows send
 * it); workflows `import type` it so a proxy cannot drift from the real signatures.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createStackCheckActivities(deps),
    ...createReleaseActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
