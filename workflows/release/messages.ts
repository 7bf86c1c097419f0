import type { ReleaseStatus } from '../../src/contracts/release-lifecycle';
import { DECISION_PAYLOAD, operatorMessages } from '../../workflows/operator-messages';

export { refuse, requireWhoAndWhy } from '../../workflows/operator-messages';

/**
 * How operators read and steer a release. Names live in histories and in the Temporal UI:
 * never rename one (they are shared with the prompt release: workflows/operator-messages.ts).
 * Every decision is an Update whose validator refuses a bad request with a reason (and changes
 * nothing); its reply is the release's state after the decision.
 */
export const { statusQuery, approveUpdate, rejectUpdate, abortUpdate, pauseUpdate, resumeUpdate, promoteNowUpdate, rollbackUpdate } = operatorMessages<ReleaseStatus>();

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
