import type { PromptReleaseStatus } from '../../src/contracts/prompt-release';
import { DECISION_PAYLOAD, operatorMessages } from '../../workflows/operator-messages';

/**
 * How operators read and steer a prompt release: the model release's messages (same names, so
 * `forgeline release approve|reject|pause|resume|promote-now|rollback|abort <workflow ID>` works on
 * either), typed with the prompt release's status.
 */
export const {
  statusQuery: promptStatusQuery,
  approveUpdate: promptApproveUpdate,
  rejectUpdate: promptRejectUpdate,
  abortUpdate: promptAbortUpdate,
  pauseUpdate: promptPauseUpdate,
  resumeUpdate: promptResumeUpdate,
  promoteNowUpdate: promptPromoteNowUpdate,
  rollbackUpdate: promptRollbackUpdate,
} = operatorMessages<PromptReleaseStatus>();

export const PROMPT_MESSAGE_DESCRIPTIONS = {
  status: 'The prompt release now: stage, outcome, versions (candidate, production), evaluation summary, canary step, weights and verdicts.',
  approve: `Approve the evaluated candidate while the release awaits approval; the canary then starts. ${DECISION_PAYLOAD}`,
  reject: `Reject the prompt release while it awaits approval; it ends Rejected and nothing is routed. ${DECISION_PAYLOAD}`,
  abort: `Stop the prompt release now; if the canary was routing, the prompt's route is restored. ${DECISION_PAYLOAD}`,
  pause: `Hold the canary at its current weights; the step's clock stops until resume. ${DECISION_PAYLOAD}`,
  resume: `Resume a paused canary: the current step serves again for its duration, then is analyzed. ${DECISION_PAYLOAD}`,
  promoteNow: `Skip the remaining canary steps: all the prompt's traffic to the candidate, and production moves to it. ${DECISION_PAYLOAD}`,
  rollback: `Roll back now: the prompt's route returns to production (or is removed for a first release) and candidate moves back; it ends RolledBack. ${DECISION_PAYLOAD}`,
} as const;
