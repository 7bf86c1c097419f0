import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import {
  ADMISSION_MESSAGES,
  type AcquireLeaseReply,
  type AdmissionStatus,
  type ReleaseLeaseReply,
  type ReleaseLeaseRequest,
  type SetQuotasRequest,
  type YieldGpusSignalArgs,
} from '../../src/contracts/admission';
import type { LeaseRequest } from '../../src/contracts/quota';

/**
 * How GPU stages, the CLI and operators talk to a pool's admission workflow. Names come from
 * src/contracts/admission.ts and live in histories: never rename one.
 */
export const acquireLeaseUpdate = defineUpdate<AcquireLeaseReply, [LeaseRequest]>(ADMISSION_MESSAGES.acquireLease);
export const releaseLeaseUpdate = defineUpdate<ReleaseLeaseReply, [ReleaseLeaseRequest]>(ADMISSION_MESSAGES.releaseLease);
export const setQuotasUpdate = defineUpdate<AdmissionStatus, [SetQuotasRequest]>(ADMISSION_MESSAGES.setQuotas);
export const quotaStatusQuery = defineQuery<AdmissionStatus>(ADMISSION_MESSAGES.quotaStatus);
/** To the holder workflow of a preempted lease. */
export const yieldGpusSignal = defineSignal<[YieldGpusSignalArgs]>(ADMISSION_MESSAGES.yieldGpus);

export const ADMISSION_MESSAGE_DESCRIPTIONS = {
  acquireLease:
    'Wait until a lease of GPUs is granted. Input: {"leaseId", "team", "pool", "gpus", "priority", "holder": {"workflowId", "stage"}, "preemptible"}. Idempotent by leaseId. Returns {"grant"} or {"retry"} (ask again: the workflow continues as new).',
  releaseLease: 'Give a lease back, or stop waiting for it. Input: {"leaseId", "reason"}. Idempotent.',
  setQuotas: 'Replace the quota file. Input: {"quotas": <the quota file as JSON>, "source": "where it came from"}; validated, the pool must be in it. Returns the status after.',
  quotaStatus: 'Per team: quota, GPUs in use, borrowed, lent, waiting; the leases, waiting requests and recently ended leases.',
} as const;
