/**
 * Failure types that cross the workflow boundary. Activities throw
 * `ApplicationFailure.nonRetryable(message, ErrorType.X)` for terminal faults; workflows and
 * operators match on `failure.type`. Names are part of histories: never rename one.
 */
export const ErrorType = {
  /** A spec or request failed validation; the message names the field and the fix. */
  InvalidSpec: 'InvalidSpec',
  /** Forgeline configuration is missing or wrong (bucket absent, credentials refused). */
  InvalidConfig: 'InvalidConfig',
  /** An artifact expected to exist is missing. */
  ArtifactNotFound: 'ArtifactNotFound',
  /** Stored bytes do not match the expected sha256. */
  ArtifactIntegrity: 'ArtifactIntegrity',
  /** A published, immutable version would be overwritten with different content. */
  ArtifactConflict: 'ArtifactConflict',
  /** A recipe (Python job) exited with an error that retrying cannot fix. */
  RecipeFailed: 'RecipeFailed',
  /** An evaluation gate failed: the release is rejected. */
  GateFailed: 'GateFailed',
  /** The stack check could not reach a worker of the pool, or its probe failed. */
  StackCheckFailed: 'StackCheckFailed',
  /** An operator rejected the release, or nobody decided before the approval timeout. */
  Rejected: 'Rejected',
  /** An operator aborted the lifecycle; running activities were cancelled. */
  Aborted: 'Aborted',
} as const;

export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];
