import type { PromptSpec } from '../../src/contracts/prompt';
import type { ValidatedPromptRelease } from '../../src/contracts/prompt-release';
import type { PromptReleaseState } from './state';

/** What every stage of a prompt release gets from the composition. */
export interface PromptReleaseContext {
  releaseId: string;
  spec: ValidatedPromptRelease['spec'];
  prompt: PromptSpec;
  testSet: ValidatedPromptRelease['testSet'];
  git?: ValidatedPromptRelease['git'];
  /** The version this release publishes. */
  version: string;
  /** What `production` and `candidate` pointed at when the release began (its compare-and-swap preconditions). */
  production?: { version: string; spec: PromptSpec };
  previousCandidate?: string;
  state: PromptReleaseState;
}

/** Who a step acts as, in route changes and alias moves. */
export const actor = (ctx: Pick<PromptReleaseContext, 'releaseId'>) => `prompt release ${ctx.releaseId}`;

/** Move IDs are derived from the workflow: stable across retries, unique per move. */
export const moveId = (ctx: Pick<PromptReleaseContext, 'releaseId'>, what: 'candidate' | 'production' | 'candidate-restore') => `${ctx.releaseId}#${what}`;
