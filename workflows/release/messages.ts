import { ApplicationFailure, defineQuery, defineUpdate } from '@temporalio/workflow';
import type { OperatorDecision, ReleaseStatus } from '../../src/contracts/release-lifecycle';

/**
 * How operators read and steer a release. Names live in histories and in the Temporal UI:
 * never rename one. Every decision is an Update whose validator refuses a bad request with a
 * reason (and changes nothing); its reply is the release's state after the decision.
 */
export const statusQuery = defineQuery<ReleaseStatus>('status');
export const approveUpdate = defineUpdate<ReleaseStatus, [OperatorDecision]>('approve');
export const rejectUpdate = defineUpdate<ReleaseStatus, [OperatorDecision]>('reject');
export const abortUpdate = defineUpdate<ReleaseStatus, [OperatorDecision]>('abort');
/** Canary steering (releases with spec.serving). */
export const pauseUpdate = defineUpdate<ReleaseStatus, [OperatorDecision]>('pause');
export const resumeUpdate = defineUpdate<ReleaseStatus, [OperatorDecision]>('resume');
export const promoteNowUpdate = defineUpdate<ReleaseStatus, [OperatorDecision]>('promoteNow');
export const rollbackUpdate = defineUpdate<ReleaseStatus, [OperatorDecision]>('rollback');

const DECISION_PAYLOAD = 'Input: {"by": "you@example.com", "reason": "why, for the audit trail"}.';

export const MESSAGE_DESCRIPTIONS = {
  status: 'The release now: stage, outcome, training, gate results, registry versions, decision, approval deadline.',
  approve: `Approve the candidate while the release awaits approval; the candidate alias then moves. ${DECISION_PAYLOAD} Returns the state after the decision.`,
  reject: `Reject the release while it awaits approval; it ends Rejected. ${DECISION_PAYLOAD} Returns the state after the decision.`,
  abort: `Stop the release now: the running stage is cancelled and it ends Aborted. ${DECISION_PAYLOAD} Returns the state after the decision.`,
  pause: `Hold the canary at its current weights; its bake clock stops until resume. ${DECISION_PAYLOAD} Returns the state after the decision.`,
  resume: `Resume a paused canary: the current step bakes again, then is analyzed. ${DECISION_PAYLOAD} Returns the state after the decision.`,
  promoteNow: `Skip the remaining canary steps: all traffic to the candidate and production moves to it. ${DECISION_PAYLOAD} Returns the state once production has moved.`,
  rollback: `Roll back now: traffic, adapters and registry aliases return to what served before this release; it ends RolledBack. ${DECISION_PAYLOAD} Returns the state once the rollback is done.`,
} as const;

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
