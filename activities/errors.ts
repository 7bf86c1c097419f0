import { ApplicationFailure } from '@temporalio/activity';
import { ErrorType } from '../src/contracts/errors';
import { formatProblems, validateSpec } from '../src/contracts/validate';
import { ForgelineError } from '../src/ports/errors';
import type { z } from 'zod';

/**
 * Turn terminal adapter errors (missing object, integrity, conflict, configuration) into
 * non-retryable failures that keep their type; anything else is rethrown for Temporal to retry.
 */
export async function asActivityFailure<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ForgelineError && err.terminal) throw ApplicationFailure.nonRetryable(err.message, err.type);
    throw err;
  }
}

/** Validate a spec inside an activity; a bad one fails at once, non-retryable, naming each field. */
export function parseSpecOrFail<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const v = validateSpec(schema, input);
  if (!v.ok) throw ApplicationFailure.nonRetryable(formatProblems(what, v.problems), ErrorType.InvalidSpec, { problems: v.problems });
  return v.value;
}
