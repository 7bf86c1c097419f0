import { ApplicationFailure, defineQuery, defineUpdate } from '@temporalio/workflow';
import type { OperatorDecision } from '../src/contracts/release-lifecycle';

/**
 * The operator messages every release lifecycle answers (the model release and the prompt
 * release): one set of names, so `forgeline release approve|reject|pause|resume|promote-now|
 * rollback|abort` and the Temporal UI steer either by workflow ID. Names live in histories and in
 * the UI: never rename one. `S` is the lifecycle's status view (the query's value and every
 * Update's reply: the state after the decision took effect).
 */
export function operatorMessages<S>() {
  return {
    statusQuery: defineQuery<S>('status'),
    approveUpdate: defineUpdate<S, [OperatorDecision]>('approve'),
    rejectUpdate: defineUpdate<S, [OperatorDecision]>('reject'),
    abortUpdate: defineUpdate<S, [OperatorDecision]>('abort'),
    /** Canary steering. */
    pauseUpdate: defineUpdate<S, [OperatorDecision]>('pause'),
    resumeUpdate: defineUpdate<S, [OperatorDecision]>('resume'),
    promoteNowUpdate: defineUpdate<S, [OperatorDecision]>('promoteNow'),
    rollbackUpdate: defineUpdate<S, [OperatorDecision]>('rollback'),
  };
}

export const DECISION_PAYLOAD = 'Input: {"by": "you@example.com", "reason": "why, for the audit trail"}.';

/** A refused request: the reason, without a workflow stack trace under it in the UI. */
export function refuse(message: string): never {
  const err = ApplicationFailure.create({ message, type: 'InvalidDecision', nonRetryable: true });
  err.stack = '';
  throw err;
}

/** Validator shared by every decision: who and why go into the audit trail. */
export function requireWhoAndWhy(d: OperatorDecision | undefined): void {
  if (!d || typeof d !== 'object') refuse(`expected ${DECISION_PAYLOAD.replace('Input: ', '')}`);
  if (typeof d.by !== 'string' || !d.by.trim()) refuse('`by` is required: who is deciding (e.g. your email)');
  if (typeof d.reason !== 'string' || !d.reason.trim()) refuse('`reason` is required: it goes into the audit trail');
}
