import { isCancellation, log, patched, proxyActivities, proxyLocalActivities, type ActivityInterfaceFor, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { ErrorType } from '../../src/contracts/errors';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { gpuTaskQueue } from '../../src/contracts/task-queues';

/**
 * Workflow versioning: the light control steps (validate, tracker calls, register, promote) run
 * as local activities in executions that carry this marker. A local activity runs in the
 * workflow's own worker inside the current workflow task, so consecutive control steps cost no
 * activity task and no extra workflow-task round trip (bench/results/orchestration.json). Older
 * executions keep the regular activities their histories recorded.
 */
export const LOCAL_CONTROL_PATCH = 'forgeline-release-local-control-v3';

const CONTROL_RETRY = { maximumAttempts: 10, nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue] };
const TRACKER_RETRY = { maximumAttempts: 3, initialInterval: '2 seconds', nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue] };

const remoteControl = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry: CONTROL_RETRY });
const localControl = proxyLocalActivities<Activities>({ startToCloseTimeout: '2 minutes', retry: CONTROL_RETRY });
const remoteTracker = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: TRACKER_RETRY });
const localTracker = proxyLocalActivities<Activities>({ startToCloseTimeout: '1 minute', retry: TRACKER_RETRY });

/** Light activities of the control worker (which also runs this workflow). */
export function control(): ActivityInterfaceFor<Activities> {
  return patched(LOCAL_CONTROL_PATCH) ? localControl : remoteControl;
}

/** Tracker calls: a few quick tries, then the release goes on without them. */
function trackerActivities(): ActivityInterfaceFor<Activities> {
  return patched(LOCAL_CONTROL_PATCH) ? localTracker : remoteTracker;
}

/**
 * Tracking is best-effort: a tracker call that fails is logged and yields `undefined`; it never
 * changes a release's outcome nor hides its real error. Cancellation (an abort) still propagates.
 */
export async function tracked<T>(what: string, call: (a: ActivityInterfaceFor<Activities>) => Promise<T>): Promise<T | undefined> {
  try {
    return await call(trackerActivities());
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

/** Serving steps forward (deploy, traffic, metrics, promotion): retried on transient faults, then the release fails and rolls back. */
export const serving = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '1 minute',
  retry: { maximumAttempts: 10, maximumInterval: '30 seconds', nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue, ErrorType.ServingNotConfigured] },
});

/**
 * The rollback saga's steps: each is idempotent and retried until it succeeds (no attempt limit),
 * so a rollback that fails halfway ends consistent once the fault clears.
 */
export const saga = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '1 minute',
  retry: { maximumInterval: '1 minute', nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue] },
});

/**
 * Launching a model's own server (a quantized candidate): tens of seconds on CPU, minutes for a
 * large model on a GPU node; the activity heartbeats while the server starts.
 */
const LAUNCH_OPTIONS = { startToCloseTimeout: '20 minutes', heartbeatTimeout: '1 minute' } as const;

/** Serving steps that launch or stop a model's own server, forward: retried, then the release fails and rolls back. */
export const launching = proxyActivities<Activities>({
  ...LAUNCH_OPTIONS,
  retry: { maximumAttempts: 5, maximumInterval: '30 seconds', nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue, ErrorType.ServingNotConfigured] },
});

/** The rollback saga's launch and stop steps: idempotent, retried until they succeed (as `saga`). */
export const sagaLaunching = proxyActivities<Activities>({
  ...LAUNCH_OPTIONS,
  retry: { maximumInterval: '1 minute', nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue] },
});
