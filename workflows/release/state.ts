import type { SearchAttributeUpdatePair } from '@temporalio/common';
import { patched, setCurrentDetails, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import { renderReleaseDetails } from '../../src/contracts/release-details';
import { ReleaseOutcome, ReleaseStage, type ReleaseStatus } from '../../src/contracts/release-lifecycle';
import {
  ForgelineAwaitingApproval,
  ForgelineDecidedBy,
  ForgelineLifecycle,
  ForgelineModel,
  ForgelineOutcome,
  ForgelineStage,
  Lifecycle,
} from '../../src/contracts/search-attributes';

/**
 * Workflow versioning: commands added after the first recorded histories (approval search
 * attributes, the decision memo, Update replies that wait for the decision's effect) run only
 * where this marker is (new executions), so releases started by older code still replay.
 */
export const OPERATOR_VIEW_PATCH = 'forgeline-release-operator-view-v2';

/**
 * The release's state as operators see it: the `status` query, the search attributes and the
 * Markdown "Current Details" in the Temporal UI, kept in step by every change.
 */
export class ReleaseState {
  readonly status: ReleaseStatus;

  constructor(readonly releaseId: string, rawSpec: unknown) {
    const model = (rawSpec as { model?: unknown } | undefined)?.model;
    this.status = {
      model: typeof model === 'string' ? model : 'unknown',
      stage: ReleaseStage.Validate,
      outcome: ReleaseOutcome.Running,
      awaitingApproval: false,
      versions: {},
    };
    // The model comes from the raw spec, so even a release whose spec fails validation is found by it.
    upsertSearchAttributes([
      { key: ForgelineStage, value: this.status.stage },
      { key: ForgelineOutcome, value: this.status.outcome },
      { key: ForgelineLifecycle, value: Lifecycle.Release },
      ...(typeof model === 'string' && model ? [{ key: ForgelineModel, value: model.slice(0, 128) }] : []),
    ]);
    this.publish();
  }

  setStage(stage: ReleaseStatus['stage']): void {
    this.status.stage = stage;
    upsertSearchAttributes([{ key: ForgelineStage, value: stage }]);
    this.publish();
  }

  setOutcome(outcome: ReleaseStatus['outcome'], failure?: string): void {
    this.status.outcome = outcome;
    if (failure) this.status.failure = failure;
    upsertSearchAttributes([{ key: ForgelineOutcome, value: outcome }]);
    this.publish();
  }

  /** Search attributes that only new executions set (see OPERATOR_VIEW_PATCH). */
  upsertPatched(pairs: SearchAttributeUpdatePair[]): void {
    if (patched(OPERATOR_VIEW_PATCH)) upsertSearchAttributes(pairs);
  }

  setAwaitingApproval(awaiting: boolean, deadline?: string): void {
    this.status.awaitingApproval = awaiting;
    if (deadline) this.status.approvalDeadline = deadline;
    else delete this.status.approvalDeadline;
    const pairs: SearchAttributeUpdatePair[] = [{ key: ForgelineAwaitingApproval, value: awaiting }];
    if (!awaiting && this.status.decision) pairs.push({ key: ForgelineDecidedBy, value: this.status.decision.by });
    this.upsertPatched(pairs);
    this.publish();
  }

  /** The memo's record of the outcome: who decided, when and why (new executions only). */
  recordOutcomeInMemo(): void {
    if (!patched(OPERATOR_VIEW_PATCH)) return;
    const { outcome, decision, failure } = this.status;
    upsertMemo({ outcome, ...(decision ? { decision } : {}), ...(failure ? { failure } : {}) });
  }

  /** Re-render "Current Details" (no command: the UI reads it through the SDK's metadata query). */
  publish(): void {
    setCurrentDetails(renderReleaseDetails(this.status, this.releaseId));
  }
}
