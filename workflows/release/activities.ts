import { isCancellation, log, proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { ErrorType } from '../../src/contracts/errors';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { gpuTaskQueue } from '../../src/contracts/task-queues';

/** Light activities on the workflow's own (control) queue. */
export const control = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 10, nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue] },
});

/** Tracker calls: a few quick tries, then the release goes on without them. */
const trackerActivities = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3, initialInterval: '2 seconds', nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue] },
});

/**
 * Tracking is best-effort: a tracker call that fails is logged and yields `undefined`; it never
 * changes a release's outcome nor hides its real error. Cancellation (an abort) still propagates.
 */
export async function tracked<T>(what: string, call: (a: typeof trackerActivities) => Promise<T>): Promise<T | undefined> {
  try {
    return await call(trackerActivities);
  } catch (err) {
    if (isCancellation(err)) throw err;
    log.warn(`tracker: ${what} failed; the release goes on without it`, { error: String((err as Error)?.cause ?? err) });
    return undefined;
  }
}

/** Heavy stages: long-running, heartbeating, retried after a worker dies (spot preemption). */
export function gpuStage(gpu: ReleaseSpec['gpu'], summary: string): ActivityOptions {
  return {
    taskQueue: gpuTaskQueue(gpu.pool),
    startToCloseTimeout: '12 hours',
    // A worker silent this long is presumed gone (spot preemption): the stage moves to another
    // worker and resumes from the checkpoint named in its last heartbeat.
    heartbeatTimeout: gpu.heartbeatTimeout,
    retry: { initialInterval: '5 seconds', maximumAttempts: 5, nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.RecipeFailed, ErrorType.WrongTaskQueue] },
    summary,
  };
}

/** GPU stage proxies; each call passes its own options (and UI summary) with executeWithOptions. */
export function gpuActivities(gpu: ReleaseSpec['gpu']) {
  return proxyActivities<Activities>(gpuStage(gpu, ''));
}
