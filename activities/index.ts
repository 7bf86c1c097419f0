import { ApplicationFailure, Context } from '@temporalio/activity';
import { ErrorType } from '../src/contracts/errors';
import type { ActivityDeps } from './deps';
import { createEmbeddingDriftActivities } from './embeddings-drift';
import { createScheduledRetrainActivities } from './schedules/retrain';
import { createMonitorActivities } from './monitor/drift';
import { createPromptReleaseControlActivities } from './prompt-release';
import { createReembedControlActivities, createReembedGpuActivities } from './reembed';
import { createReleaseControlActivities, createReleaseGpuActivities } from './release';
import { createStackCheckActivities } from './stack-check';
import { createAdmissionActivities } from './admission/leases';

export type { ActivityDeps } from './deps';

/** Light activities: the control worker (workflows' own queue) runs them. */
export function createControlActivities(deps: ActivityDeps) {
  const { validateStackCheckSpec } = createStackCheckActivities(deps);
  return { validateStackCheckSpec, ...createReleaseControlActivities(deps), ...createMonitorActivities(deps), ...createReembedControlActivities(deps), ...createEmbeddingDriftActivities(deps), ...createScheduledRetrainActivities(deps), ...createAdmissionActivities(deps), ...createPromptReleaseControlActivities(deps) };
}

/** Heavy activities: a `gpu-<pool>` worker runs them, as many at once as it has GPUs. */
export function createGpuActivities(deps: ActivityDeps) {
  const { runStackProbe } = createStackCheckActivities(deps);
  return { runStackProbe, ...createReleaseGpuActivities(deps), ...createReembedGpuActivities(deps) };
}

/** Both sets in one object: for tests and in-process benchmarks, never for a worker. */
export function createActivities(deps: ActivityDeps) {
  return { ...createControlActivities(deps), ...createGpuActivities(deps) };
}

/**
 * Every activity Forgeline has. Workflows `import type` this so a proxy cannot drift from the real
 * signatures; each worker registers only its own set (`activitiesFor`).
 */
export type Activities = ReturnType<typeof createControlActivities> & ReturnType<typeof createGpuActivities>;
export type ActivityName = keyof Activities;

export type WorkerKind = 'control' | 'gpu';

/**
 * The activities a worker of `kind` registers, plus a `default` handler for any other name: a
 * task sent to the wrong queue (a GPU stage on the control queue, say) fails at once,
 * non-retryable, with a message naming the queue it belongs on, instead of being retried
 * until its attempts run out.
 */
export function activitiesFor(kind: WorkerKind, deps: ActivityDeps): Record<string, (...args: never[]) => Promise<unknown>> {
  const own = kind === 'control' ? createControlActivities(deps) : createGpuActivities(deps);
  const other = kind === 'control' ? 'a gpu-<pool> worker (heavy activities)' : 'the control worker (light activities and workflows)';
  return {
    ...own,
    async default(): Promise<never> {
      const { activityType, taskQueue } = Context.current().info;
      throw ApplicationFailure.nonRetryable(
        `activity ${activityType} is not served on task queue ${taskQueue}, whose ${kind} workers run only ${Object.keys(own).sort().join(', ')}; ` +
          `send it to ${other}`,
        ErrorType.WrongTaskQueue,
      );
    },
  };
}
