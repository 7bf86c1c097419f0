import type { ReleaseSpec } from '../../src/contracts/release-spec';
import type { GpuLeases } from '../../workflows/gpu-lease';
import type { ReleaseState } from './state';

/** What every stage of a release gets from the composition. */
export interface ReleaseContext {
  releaseId: string;
  spec: ReleaseSpec;
  /** The release's tracker run (its ID is derived from the release ID, so it exists even if opening it failed). */
  runId: string;
  state: ReleaseState;
  /** GPU stages run under leases when a quota file is configured (spec.admission); otherwise as before. */
  leases: GpuLeases;
}

/**
 * The input every stage activity takes. `run` > 1: the stage runs again after a preemption (a new
 * activity, not a retry), so what it publishes per attempt must not collide with the earlier run's.
 */
export function stageInput(ctx: ReleaseContext, run = 1) {
  return { releaseId: ctx.releaseId, runId: ctx.runId, spec: ctx.spec, ...(run > 1 ? { run } : {}) };
}

/** Workflow time as ISO 8601: audit records carry it, so a retried activity writes the same record. */
export function workflowNow(): string {
  return new Date(Date.now()).toISOString();
}
