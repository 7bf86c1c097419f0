import type { ActivityDeps } from '../deps';
import { createPromptEvalActivities } from './evaluate';
import { createPromptRegistryActivities } from './registry';
import { createPromptResolveActivities } from './resolve';
import { createPromptTrackingActivities } from './tracking';
import { createPromptTrafficActivities } from './traffic';

/**
 * The prompt release's control activities (promptReleaseWorkflow): resolve and validate the
 * release, publish the version and move aliases in the prompt registry, route the prompt's
 * traffic on the gateway and read its metrics, log to the tracker, and evaluate the version
 * (`evaluatePromptVersion`, ./evaluate.ts).
 */
export function createPromptReleaseControlActivities(deps: ActivityDeps) {
  return {
    ...createPromptResolveActivities(deps),
    ...createPromptRegistryActivities(deps),
    ...createPromptTrafficActivities(deps),
    ...createPromptTrackingActivities(deps),
    ...createPromptEvalActivities(deps),
  };
}
