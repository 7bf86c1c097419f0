import { setCurrentDetails, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import { PromptReleaseOutcome, type PromptReleaseStatus } from '../../src/contracts/prompt-release';
import { renderPromptReleaseDetails } from '../../src/contracts/prompt-release-details';
import {
  ForgelineAwaitingApproval,
  ForgelineDecidedBy,
  ForgelineGitSha,
  ForgelineLifecycle,
  ForgelineModel,
  ForgelineOutcome,
  ForgelineStage,
  Lifecycle,
} from '../../src/contracts/search-attributes';

/**
 * A prompt release's state as operators see it: the `status` query, the search attributes (the
 * prompt's name in ForgelineModel, ForgelineLifecycle `prompt-release`) and the Markdown "Current
 * Details" in the Temporal UI, kept in step by every change.
 */
export class PromptReleaseState {
  readonly status: PromptReleaseStatus;

  constructor(readonly releaseId: string, prompt: string | undefined, stage: PromptReleaseStatus['stage']) {
    this.status = { kind: 'prompt-release', prompt: prompt ?? 'unknown', stage, outcome: PromptReleaseOutcome.Running, awaitingApproval: false, versions: {} };
    upsertSearchAttributes([
      { key: ForgelineLifecycle, value: Lifecycle.PromptRelease },
      { key: ForgelineStage, value: stage },
      { key: ForgelineOutcome, value: this.status.outcome },
      ...(prompt ? [{ key: ForgelineModel, value: prompt.slice(0, 128) }] : []),
    ]);
    this.publish();
  }

  setPrompt(prompt: string, git?: { repo: string; ref?: string; sha: string }): void {
    this.status.prompt = prompt;
    if (git) this.status.git = git;
    upsertSearchAttributes([{ key: ForgelineModel, value: prompt.slice(0, 128) }, ...(git ? [{ key: ForgelineGitSha, value: git.sha }] : [])]);
    this.publish();
  }

  setStage(stage: PromptReleaseStatus['stage']): void {
    this.status.stage = stage;
    upsertSearchAttributes([{ key: ForgelineStage, value: stage }]);
    this.publish();
  }

  setAwaitingApproval(awaiting: boolean, deadline?: string): void {
    this.status.awaitingApproval = awaiting;
    if (deadline) this.status.approvalDeadline = deadline;
    else delete this.status.approvalDeadline;
    upsertSearchAttributes([{ key: ForgelineAwaitingApproval, value: awaiting }, ...(!awaiting && this.status.decision ? [{ key: ForgelineDecidedBy, value: this.status.decision.by }] : [])]);
    this.publish();
  }

  /** The outcome in the search attributes and the memo (with who decided and the failure headline). */
  setOutcome(outcome: PromptReleaseStatus['outcome'], failure?: string): void {
    const { status } = this;
    status.outcome = outcome;
    if (failure) status.failure = failure;
    upsertSearchAttributes([{ key: ForgelineOutcome, value: outcome }, { key: ForgelineStage, value: status.stage }]);
    upsertMemo({ outcome, versions: status.versions, ...(status.decision ? { decision: status.decision } : {}), ...(failure ? { failure } : {}) });
    this.publish();
  }

  /** Re-render "Current Details" (no command: the UI reads it through the SDK's metadata query). */
  publish(): void {
    setCurrentDetails(renderPromptReleaseDetails(this.status, this.releaseId));
  }
}
