/**
 * GPU lease activities (control queue), called by lifecycles around their GPU stages
 * (workflows/gpu-lease.ts) and by the admission workflow (holder checks). They reach the pools'
 * admission workflows through the GpuAdmission port (src/fleet/admission-client.ts).
 */
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { ReleaseLeaseReply } from '../../src/contracts/admission';
import { ErrorType } from '../../src/contracts/errors';
import { LeaseRequestSchema, type LeaseGrant, type LeaseRequest } from '../../src/contracts/quota';
import type { GpuAdmission, LeaseHolderState } from '../../src/ports/gpu-admission';
import { asActivityFailure, parseSpecOrFail } from '../errors';

export interface AdmissionActivityDeps {
  /** The pools' admission workflows (control worker, with FORGELINE_QUOTAS); absent: leases fail saying so. */
  admission?: GpuAdmission;
}

function admissionOf(deps: AdmissionActivityDeps): GpuAdmission {
  if (!deps.admission) {
    throw ApplicationFailure.nonRetryable('GPU leases need a quota file on the control worker: set FORGELINE_QUOTAS (see README "Teams, quotas and admission")', ErrorType.InvalidConfig);
  }
  return deps.admission;
}

export function createAdmissionActivities(deps: AdmissionActivityDeps) {
  return {
    /**
     * Waits until the pool's admission workflow grants the lease, heartbeating; idempotent by
     * leaseId across retries (a granted lease gets the same grant again). Cancelling the activity
     * stops the wait; the caller then releases the lease (it may still be queued).
     */
    async acquireGpuLease(req: LeaseRequest): Promise<LeaseGrant> {
      const admission = admissionOf(deps);
      const valid = parseSpecOrFail(LeaseRequestSchema, req, 'lease request');
      const ctx = Context.current();
      ctx.heartbeat({ leaseId: valid.leaseId, waiting: true });
      try {
        const grant = await asActivityFailure(() => admission.acquire(valid, { signal: ctx.cancellationSignal, onWait: () => ctx.heartbeat({ leaseId: valid.leaseId, waiting: true }) }));
        ctx.log.info(`lease ${grant.leaseId}: ${grant.gpus} GPU(s) of pool ${grant.pool} for ${grant.team}${grant.borrowed ? ` (${grant.borrowed} borrowed)` : ''}`);
        return grant;
      } catch (err) {
        if (ctx.cancellationSignal.aborted) throw new CancelledFailure(`stopped waiting for lease ${valid.leaseId}: ${String(ctx.cancellationSignal.reason ?? 'cancelled')}`);
        throw err;
      }
    },

    /** Gives a lease back (or stops waiting for it). Idempotent. */
    async releaseGpuLease(req: { pool: string; leaseId: string; reason?: string }): Promise<ReleaseLeaseReply> {
      return asActivityFailure(() => admissionOf(deps).release(req.pool, req.leaseId, req.reason));
    },

    /** For the admission workflow: which lease holders are no longer running. */
    async describeLeaseHolders(req: { workflowIds: string[] }): Promise<{ closed: LeaseHolderState[] }> {
      return { closed: await admissionOf(deps).closedHolders(req.workflowIds) };
    },
  };
}

export type AdmissionActivities = ReturnType<typeof createAdmissionActivities>;
