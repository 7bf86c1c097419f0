import { CancellationScope, isCancellation, log } from '@temporalio/workflow';
import { PromptReleaseStage } from '../../src/contracts/prompt-release';
import { workflowNow } from '../../workflows/release/context';
import { saga } from './activities';
import { moveId, type PromptReleaseContext } from './context';

/**
 * The prompt rollback: the prompt's route serves production alone again (a first release: its
 * route is removed, nothing served it before), and `candidate` moves back to where it pointed
 * before the release, unless someone moved it since (then it is left as it is, and said so).
 * Every step is idempotent and retried until it succeeds; it runs to the end even if the
 * release is being cancelled (an abort).
 */
export async function rollBackPrompt(ctx: PromptReleaseContext, who: { by: string; reason: string }): Promise<void> {
  const { state } = ctx;
  state.setStage(PromptReleaseStage.Rollback);
  const name = ctx.prompt.name;
  const reason = `rollback of ${ctx.releaseId}: ${who.reason}`;
  await CancellationScope.nonCancellable(async () => {
    if (ctx.production) {
      const set = await saga.setPromptTraffic({ name, targets: [{ version: ctx.production.version, weight: 100 }], by: who.by, reason });
      if (state.status.canary) state.status.canary.weights = set.weights;
    } else {
      await saga.clearPromptTraffic({ name, by: who.by, reason });
      if (state.status.canary) state.status.canary.weights = {};
    }
    state.publish();
    if (ctx.previousCandidate && ctx.previousCandidate !== ctx.version) {
      try {
        await saga.movePromptAlias({
          name,
          alias: 'candidate',
          version: ctx.previousCandidate,
          expectedVersion: ctx.version,
          by: who.by,
          reason,
          at: workflowNow(),
          moveId: moveId(ctx, 'candidate-restore'),
          releaseWorkflowId: ctx.releaseId,
        });
      } catch (err) {
        if (isCancellation(err)) throw err;
        // A conflict: someone moved `candidate` after this release did; theirs stands.
        log.warn(`rollback: candidate alias of ${name} left as it is`, { error: String((err as Error)?.cause ?? err) });
      }
    }
  });
}
