import type { ReleaseSpec } from '../../src/contracts/release-spec';
import type { ReleaseState } from './state';

/** What every stage of a release gets from the composition. */
export interface ReleaseContext {
  releaseId: string;
  spec: ReleaseSpec;
  /** The release's tracker run (its ID is derived from the release ID, so it exists even if opening it failed). */
  runId: string;
  state: ReleaseState;
}

/** The input every stage activity takes. */
export function stageInput(ctx: ReleaseContext) {
  return { releaseId: ctx.releaseId, runId: ctx.runId, spec: ctx.spec };
}

/** Workflow time as ISO 8601: audit records carry it, so a retried activity writes the same record. */
export function workflowNow(): string {
  return new Date(Date.now()).toISOString();
}
