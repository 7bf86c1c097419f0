import { upsertSearchAttributes } from '@temporalio/workflow';
import type { OperatorDecision, ServingPlan } from '../../src/contracts/release-lifecycle';
import { ForgelineLifecycle, ForgelineModel, Lifecycle } from '../../src/contracts/search-attributes';
import { rollbackServing } from './rollback';

export interface ReleaseRollbackInput extends OperatorDecision {
  /** The finished release's serving plan (its result's `serving`). */
  plan: ServingPlan;
}

/**
 * Roll back a release that has already ended (promoted): the same saga the release runs on a
 * failed canary. Started by `forgeline release rollback <id>` and by the drift monitor, with the
 * workflow ID `rollback/<release>`, so two callers get one rollback.
 */
export async function releaseRollbackWorkflow(input: ReleaseRollbackInput): Promise<{ releaseId: string; restored: string; by: string; reason: string; at: string }> {
  upsertSearchAttributes([
    { key: ForgelineLifecycle, value: Lifecycle.Rollback },
    { key: ForgelineModel, value: input.plan.model },
  ]);
  await rollbackServing(input.plan, input);
  return { releaseId: input.plan.releaseId, restored: input.plan.stable.label, by: input.by, reason: input.reason, at: new Date(Date.now()).toISOString() };
}
