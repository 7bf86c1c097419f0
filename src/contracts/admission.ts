/**
 * The GPU admission workflow of a pool (workflows/admission): its ID, its message names and what
 * they carry. Callers (the lease activities, the CLI, the holders) and the workflow import these,
 * so neither side can drift. Names live in histories: never rename one.
 */
import type { QuotaFile, LeaseGrant, PoolQuotaStatus, ResolvedLeaseRequest } from './quota';

export const ADMISSION_WORKFLOW_TYPE = 'gpuAdmissionWorkflow';
export const ADMISSION_WORKFLOW_ID_PREFIX = 'forgeline-admission-';

/** One admission workflow per pool: `forgeline-admission-<pool>`. */
export function admissionWorkflowId(pool: string): string {
  return ADMISSION_WORKFLOW_ID_PREFIX + pool;
}

/** Message names of the admission workflow (and the holder's signal). */
export const ADMISSION_MESSAGES = {
  /** Update: wait until the lease is granted; idempotent by leaseId. */
  acquireLease: 'acquireLease',
  /** Update: give the lease back (or stop waiting for it); idempotent. */
  releaseLease: 'releaseLease',
  /** Update: a new quota file (validated; the pool must be in it). */
  setQuotas: 'setQuotas',
  /** Query: quota, in use, borrowed, lent and waiting per team, and the leases. */
  quotaStatus: 'quotaStatus',
  /** Signal to a lease's holder workflow: checkpoint and give the GPUs of `leaseId` back. */
  yieldGpus: 'yieldGpus',
} as const;

export interface GpuAdmissionInput {
  pool: string;
  /** The quota file the pool starts with (later ones arrive through setQuotas). */
  quotas: QuotaFile;
  /** Where the quota file came from, for messages (a path). */
  source?: string;
  /** How long a preempted holder has to release before its lease is revoked. Default 15m. */
  yieldGrace?: string;
  /** How often leases of holder workflows that closed are looked for. Default 1m. */
  holderCheckEvery?: string;
  /** Continue as new past this many history events (and whenever the server suggests). Default 10000. */
  maxHistoryEvents?: number;
  /** Carried over by continue-as-new. */
  carried?: AdmissionCarriedState;
}

/** What a lease's holder gets when its GPUs are reclaimed. */
export interface YieldGpusSignalArgs {
  leaseId: string;
  reason: string;
}

/** acquireLease's reply: the grant, or "ask again" (the workflow is continuing as new). */
export type AcquireLeaseReply = { grant: LeaseGrant } | { retry: string };

/** setQuotas' input: the new quota file and where it came from. */
export interface SetQuotasRequest {
  quotas: QuotaFile;
  source?: string;
}

export interface ReleaseLeaseRequest {
  leaseId: string;
  /** For the log: why (done, failed, cancelled, yielded). */
  reason?: string;
}

export interface ReleaseLeaseReply {
  leaseId: string;
  /** held: it held GPUs, now freed; waiting: it was still waiting and stops; none: nothing to release (already released, revoked, unknown). */
  was: 'held' | 'waiting' | 'none';
}

/** How a lease ended, remembered (the newest 500) so a late acquire or release is answered. */
export interface EndedLease {
  leaseId: string;
  at: number;
  how: 'released' | 'revoked' | 'holder-closed' | 'refused';
  detail?: string;
  /** The holder's run: a later run of the same workflow ID may use the lease ID again. */
  holderRunId?: string;
}

export interface LeaseView {
  leaseId: string;
  team: string;
  gpus: number;
  borrowed: number;
  priority: number;
  preemptible: boolean;
  holder: ResolvedLeaseRequest['holder'];
  grantedAt: number;
  /** Set once asked to yield. */
  yieldRequestedAt?: number;
  yieldReason?: string;
}

export interface WaitingView {
  leaseId: string;
  team: string;
  gpus: number;
  requestedAt: number;
  holder: ResolvedLeaseRequest['holder'];
}

/** The quotaStatus query's answer. */
export interface AdmissionStatus extends PoolQuotaStatus {
  source?: string;
  leases: LeaseView[];
  waitingLeases: WaitingView[];
  /** The newest leases that ended (released, revoked, holder closed), newest first, at most 20. */
  recentlyEnded: EndedLease[];
  preemptions: number;
  revocations: number;
}

/** The admission workflow's state across continue-as-new. */
export interface AdmissionCarriedState {
  quotas: QuotaFile;
  source?: string;
  granted: Array<{ request: ResolvedLeaseRequest; grant: LeaseGrant; yieldRequested?: { at: number; reason: string } }>;
  waiting: Array<{ request: ResolvedLeaseRequest; requestedAt: number }>;
  ended: EndedLease[];
  preemptions: number;
  revocations: number;
}

/** The admission workflow's "current details" in the Temporal UI: the pool and a row per team (markdown). */
export function renderAdmissionDetails(s: Pick<AdmissionStatus, 'pool' | 'gpus' | 'inUse' | 'teams' | 'preemptions' | 'revocations'>): string {
  const rows = s.teams.map((t) => `| ${t.team} | ${t.priority} | ${t.nominal} | ${t.inUse} | ${t.borrowed} | ${t.lent} | ${t.waiting} (${t.waitingLeases}) | ${t.yielding} |`);
  return [
    `**GPU pool ${s.pool}**: ${s.inUse} of ${s.gpus} GPUs leased; ${s.preemptions} preemption(s), ${s.revocations} revocation(s). Query \`quotaStatus\` for the leases.`,
    '',
    '| team | priority | nominal | in use | borrowed | lent | waiting (requests) | yielding |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}
