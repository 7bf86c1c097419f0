import { ApplicationFailure, condition } from '@temporalio/workflow';
import { ErrorType } from '../../src/contracts/errors';
import { RejectReason, ReleaseStage, type RecordedDecision } from '../../src/contracts/release-lifecycle';
import { durationMs } from '../../src/contracts/specs/release-spec';

/** What the approval stage needs of a release (the model release's and the prompt release's contexts both fit). */
export interface ApprovalContext {
  spec: { approval: { timeout: string } };
  state: {
    status: { decision?: RecordedDecision; rejectReason?: RejectReason };
    setStage(stage: typeof ReleaseStage.Approval): void;
    setAwaitingApproval(awaiting: boolean, deadline?: string): void;
  };
}

/**
 * Stage approval: wait for an `approve` or `reject` Update until `approval.timeout`. No decision
 * in time, or a rejection, ends the release Rejected with who and why.
 */
export async function awaitApproval(ctx: ApprovalContext): Promise<void> {
  const { spec, state } = ctx;
  const { status } = state;
  state.setStage(ReleaseStage.Approval);
  const deadline = new Date(Date.now() + durationMs(spec.approval.timeout)).toISOString();
  state.setAwaitingApproval(true, deadline);
  const decided = await condition(() => status.decision !== undefined, spec.approval.timeout, { summary: `approval deadline (${spec.approval.timeout})` });
  state.setAwaitingApproval(false);
  if (!decided) {
    status.rejectReason = RejectReason.ApprovalTimeout;
    throw ApplicationFailure.nonRetryable(`release rejected: ApprovalTimeout (no decision within ${spec.approval.timeout})`, ErrorType.Rejected, { reason: RejectReason.ApprovalTimeout });
  }
  if (status.decision?.kind === 'rejected') {
    status.rejectReason = RejectReason.OperatorRejected;
    throw ApplicationFailure.nonRetryable(`release rejected by ${status.decision.by}: ${status.decision.reason}`, ErrorType.Rejected, { reason: RejectReason.OperatorRejected, decision: status.decision });
  }
}
