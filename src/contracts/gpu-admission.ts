/**
 * How a lifecycle's GPU stages are admitted (issue 13), decided once per run by the control
 * worker when it validates the spec, and carried in the validated spec as `admission`:
 *
 * - no quota file configured: no `admission`; GPU stages run exactly as before (no lease, no
 *   fairness key, the same commands in the history);
 * - a quota file: every GPU stage takes a lease from its pool's admission workflow before it runs
 *   and releases it when it ends, and its tasks carry the team as Temporal fairness key with the
 *   quota's weight and the team's priority key.
 *
 * Pure: bundled into workflow code.
 */

/** Temporal task priority of a team's GPU tasks (fairness key = team). */
export interface GpuTaskPriority {
  priorityKey: number;
  fairnessKey: string;
  fairnessWeight: number;
}

/** What the validated spec carries when a quota file is configured. */
export interface GpuAdmissionPlan {
  /** The quota file it was resolved from (for messages). */
  quotaFile: string;
  team: string;
  pool: string;
  priority: GpuTaskPriority;
}

/** Lease IDs are deterministic: `<workflowId>/<stage>/<n>`, n counting the stage's leases in this run from 1. */
export function gpuLeaseId(workflowId: string, stage: string, n: number): string {
  return `${workflowId}/${stage}/${n}`;
}

/** Where a GPU stage's lease stands, for status views. */
export interface GpuLeaseView {
  leaseId: string;
  stage: string;
  gpus: number;
  /** waiting: queued at the pool's admission workflow; held: granted, the stage runs; yielding: asked to give it back. */
  state: 'waiting' | 'held' | 'yielding';
}

