import { proxyActivities, proxyLocalActivities, type ActivityInterfaceFor } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { ErrorType } from '../../src/contracts/errors';
import { embedTaskQueue, type ReembedSpec } from '../../src/contracts/reembed-spec';

/** Terminal for every re-embed activity: retrying the same input cannot help. */
const NON_RETRYABLE = [ErrorType.InvalidSpec, ErrorType.InvalidConfig, ErrorType.WrongTaskQueue, ErrorType.VectorStoreRejected, ErrorType.AliasConflict, ErrorType.RecipeContract];

/** Spec validation: a local activity in the workflow's own task, no round trip. */
export const local = proxyLocalActivities<Activities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE } });

/**
 * Control-queue work over the vector store and the manifest (chunk, plan, upsert, validate, swap,
 * drop): regular activities that heartbeat, so a control worker that dies mid-slice is noticed
 * within a minute and the slice is retried (every step is idempotent).
 */
export const control = proxyActivities<Activities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20, nonRetryableErrorTypes: NON_RETRYABLE },
});

/**
 * Embedding on the pool's queue (`gpu-<pool>`): heartbeats name the next batch, a retry resumes
 * there. With a GPU quota file (spec.admission) its tasks carry the team's Temporal priority
 * (fairness key = team, weight and priority key from the quota file); re-embeds take no leases yet.
 */
export function pool(spec: Pick<ReembedSpec, 'pool' | 'admission'>): ActivityInterfaceFor<Activities> {
  return proxyActivities<Activities>({
    taskQueue: embedTaskQueue(spec),
    ...(spec.admission ? { priority: spec.admission.priority } : {}),
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20, nonRetryableErrorTypes: NON_RETRYABLE },
  });
}
