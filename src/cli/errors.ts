import type { NamespaceNotFoundError, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ReleaseOutcome } from '../contracts/release-lifecycle';
import { ForgelineError } from '../ports/errors';

/** What `forgeline` exits with (documented in README.md, "Exit codes"). */
export const ExitCode = {
  /** Done; for `release start` and `release watch`: the release ended a Candidate. */
  Ok: 0,
  /** Failed at run time: Temporal unreachable, a release that ended Failed, an unexpected error. */
  Failure: 1,
  /** The request was wrong and nothing happened: an option, argument, spec, configuration, release ID, or a decision the release refused. */
  Usage: 2,
  /** The release ended without a candidate (or production) by decision: a gate failed, it was rejected, approval timed out, it was aborted, or its canary was rolled back. */
  NoCandidate: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** How a release's outcome reads to a script. */
export function exitCodeForOutcome(outcome: ReleaseOutcome): ExitCode {
  switch (outcome) {
    case ReleaseOutcome.Candidate:
    case ReleaseOutcome.Promoted:
      return ExitCode.Ok;
    case ReleaseOutcome.RolledBack:
    case ReleaseOutcome.Rejected:
    case ReleaseOutcome.Aborted:
      return ExitCode.NoCandidate;
    case ReleaseOutcome.Failed:
      return ExitCode.Failure;
    case ReleaseOutcome.Running:
      return ExitCode.Failure; // watched to the end, so still Running means we lost track of it
  }
}

/** An error whose message is for the user as it is, with the exit code it means. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
  }
}

/** A request that cannot work as given (exit 2). */
export class UsageError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.Usage, options);
  }
}

/**
 * Temporal's errors by name: they carry it (the SDK makes instanceof work across copies the same
 * way), and checking the name keeps the SDK out of the CLI's start-up.
 */
function isTemporalError<T extends Error>(err: unknown, name: string): err is T {
  return err instanceof Error && err.name === name;
}

/**
 * One message and an exit code for any error a command ends with. Known errors read as one line
 * (the configuration's one line per bad variable); only an unexpected error keeps its stack.
 */
export function describeFailure(err: unknown): { message: string; exitCode: ExitCode; stack?: string } {
  if (err instanceof CliError) return { message: err.message, exitCode: err.exitCode };
  if (err instanceof ForgelineError && err.terminal) return { message: err.message, exitCode: ExitCode.Usage };
  if (isTemporalError<WorkflowNotFoundError>(err, 'WorkflowNotFoundError')) return { message: `no workflow with ID ${err.workflowId}${err.runId ? ` (run ${err.runId})` : ''}: check the ID (forgeline release start prints it)`, exitCode: ExitCode.Usage };
  if (isTemporalError<NamespaceNotFoundError>(err, 'NamespaceNotFoundError')) return { message: `${err.message}: check TEMPORAL_NAMESPACE`, exitCode: ExitCode.Usage };
  if (isTemporalError<WorkflowUpdateFailedError>(err, 'WorkflowUpdateFailedError')) {
    const reason = err.cause?.message ?? err.message;
    return { message: `refused, nothing changed: ${reason}`, exitCode: ExitCode.Usage };
  }
  if (isTemporalError<Error>(err, 'ServiceError')) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return { message: `${err.message}${cause}`, exitCode: ExitCode.Failure };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return { message: e.message, exitCode: ExitCode.Failure, stack: e.stack };
}
