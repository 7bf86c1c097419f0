import { isCancellation, log, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { ErrorType } from '../../src/contracts/errors';

/** The activities a prompt release calls (activities/prompt-release/). */
export type PromptReleaseActivities = Pick<
  Activities,
  | 'resolvePromptReleases'
  | 'validatePromptRelease'
  | 'publishPromptVersion'
  | 'readPromptAliases'
  | 'movePromptAlias'
  | 'setPromptTraffic'
  | 'clearPromptTraffic'
  | 'fetchPromptCanaryMetrics'
  | 'logPromptRelease'
  | 'evaluatePromptVersion'
>;

const TERMINAL = [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue, ErrorType.RegistryConflict, ErrorType.ArtifactIntegrity, ErrorType.ServingNotConfigured];

/** Registry and validation steps: quick, retried on transient faults (each is idempotent). */
export const control = proxyActivities<PromptReleaseActivities>({ startToCloseTimeout: '2 minutes', retry: { maximumAttempts: 10, maximumInterval: '30 seconds', nonRetryableErrorTypes: TERMINAL } });

/** Routing and metrics forward: retried on transient faults, then the release fails and rolls back. */
export const traffic = proxyActivities<PromptReleaseActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '1 minute',
  retry: { maximumAttempts: 10, maximumInterval: '30 seconds', nonRetryableErrorTypes: TERMINAL },
});

/** The rollback's steps: idempotent, retried until they succeed (no attempt limit), so a rollback ends consistent once the fault clears. */
export const saga = proxyActivities<PromptReleaseActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { maximumInterval: '1 minute', nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue, ErrorType.RegistryConflict] },
});

/** The evaluation: generation and judging through the gateway, minutes for a large test set; a judge that keeps failing is terminal. */
export const evaluation = proxyActivities<PromptReleaseActivities>({
  startToCloseTimeout: '1 hour',
  retry: { maximumAttempts: 3, initialInterval: '10 seconds', nonRetryableErrorTypes: [...TERMINAL, ErrorType.JudgeFailed] },
});

const tracker = proxyActivities<PromptReleaseActivities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 3, initialInterval: '2 seconds' } });

/** Tracking is best-effort: a failed tracker call is logged and the release goes on. Cancellation still propagates. */
export async function tracked<T>(what: string, call: (a: typeof tracker) => Promise<T>): Promise<T | undefined> {
  try {
    return await call(tracker);
  } catch (err) {
    if (isCancellation(err)) throw err;
    log.warn(`tracker: ${what} failed; the prompt release goes on without it`, { error: String((err as Error)?.cause ?? err) });
    return undefined;
  }
}
