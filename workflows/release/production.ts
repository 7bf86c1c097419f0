import { condition, ParentClosePolicy, startChild } from '@temporalio/workflow';
import { ReleaseStage, type ServingPlan } from '../../src/contracts/release-lifecycle';
import type { RouteTargets } from '../../src/contracts/routing';
import { driftMonitorWorkflowId, type DriftMonitorInput } from '../../src/contracts/drift-monitor';
import { launching, serving } from './activities';
import type { CanaryControl } from './canary';
import { workflowNow, type ReleaseContext } from './context';
import { asStage } from './failures';

/**
 * Stage production: all traffic to the candidate, `production` to its versions (`previous` to
 * what it replaced), the drift monitor started, and the replaced version kept loaded for
 * `keepPrevious` (a rollback meanwhile needs no reload), then unloaded (a quantized one: its
 * server stopped and its upstream removed).
 * Returns false when an operator rolled back during `keepPrevious`.
 */
export async function promoteToProduction(ctx: ReleaseContext, plan: ServingPlan, control: CanaryControl, why: string): Promise<boolean> {
  const { spec, state } = ctx;
  const s = spec.serving!;
  state.setStage(ReleaseStage.Production);
  const { candidate, stable } = plan;
  const targets: RouteTargets = [{ version: candidate.label, upstream: candidate.upstream, model: candidate.servedModel, weight: 100 }];
  await asStage('production', () => serving.setTrafficWeights({ alias: plan.alias, targets, by: `release ${ctx.releaseId}`, reason: `promoted: ${why}` }));
  const c = state.status.canary!;
  c.weights = { [candidate.label]: 100 };
  const decider = control.promoteNow ?? state.status.decision;
  await asStage('production', () =>
    serving.promoteProduction({ releaseId: ctx.releaseId, model: spec.model, versions: plan.versions, by: decider?.by ?? 'forgeline', reason: why, at: workflowNow() }),
  );
  state.publish();

  if (s.monitor.enabled) {
    const input: DriftMonitorInput = { plan, monitor: s.monitor, releaseSpec: spec, startedAt: workflowNow() };
    const child = await startChild('driftMonitorWorkflow', {
      workflowId: driftMonitorWorkflowId(plan.alias, ctx.releaseId),
      args: [input],
      // The monitor outlives the release: it watches production until its duration or the next release.
      parentClosePolicy: ParentClosePolicy.ABANDON,
      staticSummary: `drift monitor of ${plan.alias} (${candidate.label})`,
    });
    c.monitorWorkflowId = child.workflowId;
    state.publish();
  }

  const rolledBack = await condition(() => control.rollback !== undefined, s.keepPrevious, { summary: `keep previous version loaded (${s.keepPrevious})` });
  if (rolledBack) return false;
  control.closed = true;
  if (stable.adapter && stable.servedModel !== candidate.servedModel) {
    await asStage('production', () => serving.unloadVersion({ servedModel: stable.servedModel }));
  } else if (stable.quantized && stable.servedModel !== candidate.servedModel) {
    // The replaced production was a quantized model on a server of its own: stop that server.
    await asStage('production', () => launching.stopQuantizedVersion({ servedModel: stable.servedModel, by: `release ${ctx.releaseId}`, reason: `superseded by ${candidate.label}` }));
  }
  return true;
}
