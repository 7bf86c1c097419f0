import { ActivityFailure, ApplicationFailure, isCancellation } from '@temporalio/workflow';
import { ErrorType } from '../../src/contracts/errors';

const firstLine = (s: string) => s.split('\n', 1)[0]!;

/**
 * A stage's failure with a headline that says what went wrong: `invalid release spec: base,
 * dataset` or `train failed: recipe train exited with 1: CUDA out of memory`, instead of the
 * SDK's "Activity task failed", with the original failure kept as the cause.
 */
export function stageFailure(stage: string, err: unknown): unknown {
  if (isCancellation(err)) return err;
  // A regular activity's failure arrives wrapped in an ActivityFailure; a local activity's may
  // arrive as the activity's own ApplicationFailure.
  const cause = err instanceof ActivityFailure ? err.cause : err instanceof ApplicationFailure ? err : undefined;
  if (!cause) return err;
  const what = cause.message ? firstLine(cause.message) : (err as Error).message;
  const app = cause instanceof ApplicationFailure ? cause : undefined;
  return ApplicationFailure.create({
    message: app?.type === ErrorType.InvalidSpec ? what : `${stage} failed: ${what}`,
    type: app?.type ?? 'StageFailed',
    nonRetryable: true,
    details: app?.details ?? [],
    cause: err as Error,
  });
}

/** Run a stage's activity call; on failure, throw the failure with its readable headline. */
export async function asStage<T>(stage: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw stageFailure(stage, err);
  }
}
