/**
 * The pools' admission workflows as the lease activities and the CLI see them (issue 13). The
 * adapter is src/fleet/admission-client.ts (a Temporal client: Update-with-Start on
 * `forgeline-admission-<pool>`); tests give activities a fake.
 */
import type { AdmissionStatus, ReleaseLeaseReply } from '../contracts/admission';
import type { LeaseGrant, LeaseRequest, QuotaFile } from '../contracts/quota';

export interface LeaseHolderState {
  workflowId: string;
  /** RUNNING, or how it closed (COMPLETED, FAILED, TERMINATED, ...), or NOT_FOUND. */
  status: string;
}

export interface GpuAdmission {
  /**
   * Waits until the pool's admission workflow grants the lease (starting the workflow with the
   * configured quota file when it is not running); idempotent by `req.leaseId`. `onWait` is called
   * every few seconds while it waits (heartbeats); an abort stops waiting (the lease stays queued
   * until released). A refused request (unknown team, more GPUs than the quota allows, a lease
   * that already ended) rejects with a terminal ForgelineError naming the fix.
   */
  acquire(req: LeaseRequest, opts?: { signal?: AbortSignal; onWait?: () => void }): Promise<LeaseGrant>;
  /** Gives a lease back (or stops waiting for it). Idempotent; a pool with no admission workflow answers `none`. */
  release(pool: string, leaseId: string, reason?: string): Promise<ReleaseLeaseReply>;
  /** The holders among `workflowIds` that are no longer running. */
  closedHolders(workflowIds: readonly string[]): Promise<LeaseHolderState[]>;
  /** A pool's status, or undefined when its admission workflow is not running. */
  status(pool: string): Promise<AdmissionStatus | undefined>;
  /** Sends a new quota file to each of its pools' admission workflows (starting those not running). */
  apply(file: QuotaFile, source: string): Promise<AdmissionStatus[]>;
}
