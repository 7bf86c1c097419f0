import { PromptReleaseStage } from '../../src/contracts/prompt-release';
import { asStage } from '../../workflows/release/failures';
import { workflowNow } from '../../workflows/release/context';
import { control, tracked } from './activities';
import { actor, moveId, type PromptReleaseContext } from './context';

/**
 * Stage publish: the prompt becomes an immutable registry version (same content: same version),
 * the release notes where `production` and `candidate` point now (its compare-and-swap
 * preconditions), and `candidate` moves to the new version.
 */
export async function publish(ctx: Omit<PromptReleaseContext, 'production' | 'previousCandidate'>): Promise<PromptReleaseContext> {
  const { state, releaseId } = ctx;
  state.setStage(PromptReleaseStage.Publish);
  const published = await asStage('publish', () => control.publishPromptVersion({ releaseId, prompt: ctx.prompt, at: workflowNow(), ...(ctx.git ? { git: ctx.git } : {}) }));
  const aliases = await asStage('publish', () => control.readPromptAliases({ name: ctx.prompt.name }));
  const out: PromptReleaseContext = {
    ...ctx,
    version: published.version,
    ...(aliases.production ? { production: { version: aliases.production.version, spec: aliases.production.spec } } : {}),
    ...(aliases.candidate ? { previousCandidate: aliases.candidate.version } : {}),
  };
  state.status.versions = {
    candidate: published.version,
    ...(out.production ? { production: out.production.version } : {}),
    ...(out.previousCandidate ? { previousCandidate: out.previousCandidate } : {}),
  };
  state.publish();
  if (out.previousCandidate !== published.version) {
    await asStage('publish', () =>
      control.movePromptAlias({
        name: ctx.prompt.name,
        alias: 'candidate',
        version: published.version,
        expectedVersion: out.previousCandidate ?? null,
        by: actor(ctx),
        reason: `published ${published.ref}${ctx.git ? ` from ${ctx.git.repo}@${ctx.git.sha.slice(0, 12)}` : ''}`,
        at: workflowNow(),
        moveId: moveId(ctx, 'candidate'),
        releaseWorkflowId: releaseId,
      }),
    );
  }
  await tracked('logPromptRelease', (a) =>
    a.logPromptRelease({ releaseId, prompt: ctx.prompt.name, event: { kind: 'started', versions: { candidate: published.version, ...(out.production ? { production: out.production.version } : {}) }, ...(ctx.git ? { git: ctx.git } : {}) } }),
  );
  return out;
}
