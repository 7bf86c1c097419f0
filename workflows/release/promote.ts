import { control } from './activities';
import { workflowNow, type ReleaseContext } from './context';
import { asStage } from './failures';

/** Stage promote: move the `candidate` alias to this release's versions, recording who, when and why. */
export async function promoteToCandidate(ctx: ReleaseContext, versions: Record<string, string>): Promise<void> {
  const { decision } = ctx.state.status;
  await asStage('promote', () =>
    control().promoteCandidate({
      releaseId: ctx.releaseId,
      model: ctx.spec.model,
      versions,
      by: decision?.by ?? 'forgeline',
      reason: decision?.reason ?? 'gates passed',
      at: decision?.at ?? workflowNow(),
    }),
  );
}
