import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';

/** The ApplicationFailure of `type` in a workflow failure's cause chain; fails the test if absent. */
export function failureOfType(err: unknown, type: string): ApplicationFailure {
  assert.ok(err instanceof WorkflowFailedError, `expected WorkflowFailedError, got ${String(err)}`);
  let cause: unknown = err.cause;
  while (cause && !(cause instanceof ApplicationFailure && cause.type === type)) cause = (cause as Error).cause;
  assert.ok(cause instanceof ApplicationFailure, `no ApplicationFailure of type ${type} in: ${err.cause?.message}`);
  return cause;
}
