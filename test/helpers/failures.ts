import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { ConfigError } from '../../src/ports/errors';

/** The ApplicationFailure of `type` in a workflow failure's cause chain; fails the test if absent. */
export function failureOfType(err: unknown, type: string): ApplicationFailure {
  assert.ok(err instanceof WorkflowFailedError, `expected WorkflowFailedError, got ${String(err)}`);
  let cause: unknown = err.cause;
  while (cause && !(cause instanceof ApplicationFailure && cause.type === type)) cause = (cause as Error).cause;
  assert.ok(cause instanceof ApplicationFailure, `no ApplicationFailure of type ${type} in: ${err.cause?.message}`);
  return cause;
}

/** The message of the ConfigError `fn` throws; fails the test if it throws nothing or something else. */
export function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('expected a ConfigError');
}
