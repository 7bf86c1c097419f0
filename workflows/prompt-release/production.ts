import { PromptReleaseStage } from '../../src/contracts/prompt-release';
import { workflowNow } from '../../workflows/release/context';
import { asStage } from '../../workflows/release/failures';
import type { CanaryControl } from '../../workflows/release/canary';
import { control, traffic } from './activities';
import { actor, moveId, type PromptReleaseContext } from './context';

/**
 * Stage production: all the prompt's traffic to the candidate, then `production` moves to it by
 * compare-and-swap on the version the release saw at its start (a production moved meanwhile by
 * someone else is a RegistryConflict: the release fails and its route is restored). The move is
 * recorded in the registry's alias history with who decided and why.
 */
export async function promoteToProduction(ctx: PromptReleaseContext, canary: CanaryControl, why: string): Promise<void> {
  const { state } = ctx;
  state.setStage(PromptReleaseStage.Production);
  canary.closed = true;
  const set = await asStage('production', () => traffic.setPromptTraffic({ name: ctx.prompt.name, targets: [{ version: ctx.version, weight: 100 }], by: actor(ctx), reason: `promoted: ${why}` }));
  state.status.canary!.weights = set.weights;
  state.publish();
  const decider = canary.promoteNow ?? state.status.decision;
  await asStage('production', () =>
    control.movePromptAlias({
      name: ctx.prompt.name,
      alias: 'production',
      version: ctx.version,
      expectedVersion: ctx.production?.version ?? null,
      by: decider?.by ?? actor(ctx),
      reason: why,
      at: workflowNow(),
      moveId: moveId(ctx, 'production'),
      releaseWorkflowId: ctx.releaseId,
    }),
  );
}
