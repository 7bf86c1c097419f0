import { CancellationScope } from '@temporalio/workflow';
import type { ServingPlan } from '../../src/contracts/release-lifecycle';
import type { RouteTargets } from '../../src/contracts/routing';
import { saga, sagaLaunching } from './activities';
import { workflowNow } from './context';

/**
 * The rollback saga: what served before the release serves again, all of it together.
 *   1. stable is servable: its adapter is loaded again if it had been unloaded (a quantized stable:
 *      its server launched again, or found running);
 *   2. traffic: the alias's route as it was before the release (the base model if it had none);
 *   3. registry: `production` moves back, if it still points at this release;
 *   4. the candidate's adapter is unloaded (a quantized candidate: its upstream removed and its
 *      server stopped), after no traffic reaches it.
 * Every step is idempotent and retried until it succeeds, so the saga can run again at any time
 * (the release's own rollback, `forgeline release rollback`, the drift monitor) and a failure
 * halfway ends consistent once the fault clears. It runs to the end even if its caller is cancelled.
 */
export async function rollbackServing(plan: ServingPlan, who: { by: string; reason: string }): Promise<void> {
  await CancellationScope.nonCancellable(async () => {
    const { stable, candidate } = plan;
    if (stable.adapter) {
      await saga.deployVersion({ model: stable.adapter.model, adapterVersion: stable.adapter.version, baseModel: plan.baseModel, upstream: stable.upstream });
    } else if (stable.quantized) {
      await sagaLaunching.launchQuantizedVersion({ model: stable.quantized.model, quantizedVersion: stable.quantized.version, by: who.by });
    }
    const before: RouteTargets = plan.before?.length ? plan.before : [{ version: stable.label, upstream: stable.upstream, model: stable.servedModel, weight: 100 }];
    await saga.setTrafficWeights({ alias: plan.alias, targets: before, by: who.by, reason: `rollback of ${plan.releaseId}: ${who.reason}` });
    await saga.restoreProduction({ releaseId: plan.releaseId, model: plan.model, versions: plan.versions, by: who.by, reason: who.reason, at: workflowNow() });
    if (candidate.servedModel !== stable.servedModel) {
      if (candidate.quantized) await sagaLaunching.stopQuantizedVersion({ servedModel: candidate.servedModel, by: who.by, reason: `rollback of ${plan.releaseId}: ${who.reason}` });
      else await saga.unloadVersion({ servedModel: candidate.servedModel });
    }
  });
}
