/**
 * The GpuAdmission port over Temporal: each pool's `gpuAdmissionWorkflow` (ID
 * `forgeline-admission-<pool>`, on the control queue) is reached with Update-with-Start, so the
 * first acquire (or `forgeline quota apply`) starts it with the quota file and later calls join
 * the running one.
 */
import { WithStartWorkflowOperation, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import {
  ADMISSION_MESSAGES,
  ADMISSION_WORKFLOW_TYPE,
  admissionWorkflowId,
  type AcquireLeaseReply,
  type AdmissionStatus,
  type GpuAdmissionInput,
  type ReleaseLeaseReply,
  type SetQuotasRequest,
} from '../contracts/admission';
import { ErrorType } from '../contracts/errors';
import type { LeaseGrant, LeaseRequest, QuotaFile } from '../contracts/quota';
import { ForgelineError } from '../ports/errors';
import type { GpuAdmission, LeaseHolderState } from '../ports/gpu-admission';
import { loadQuotaFile } from './quota-file';

export interface AdmissionClientOptions {
  client: Client;
  /** The control queue, where admission workflows run. */
  taskQueue: string;
  /** The quota file (FORGELINE_QUOTAS) an admission workflow starts with; read when one is started. */
  quotaFile?: string;
  /** Workflow input defaults (grace for yields, holder checks). */
  workflowDefaults?: Pick<GpuAdmissionInput, 'yieldGrace' | 'holderCheckEvery' | 'maxHistoryEvents'>;
  /** How often `onWait` is called while an acquire waits. Default 10 s. */
  waitTickMs?: number;
}

/** The message of a failure and its causes, for an error that names what the workflow said. */
function causeMessage(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e instanceof Error && parts.length < 4; e = e.cause) parts.push(e.message);
  return parts.join(': ');
}

export function createAdmissionClient(opts: AdmissionClientOptions): GpuAdmission {
  const { client, taskQueue } = opts;
  const tick = opts.waitTickMs ?? 10_000;

  const startOperation = (pool: string, quotas: QuotaFile, source: string | undefined) =>
    new WithStartWorkflowOperation(ADMISSION_WORKFLOW_TYPE, {
      workflowId: admissionWorkflowId(pool),
      taskQueue,
      args: [{ pool, quotas, ...(source ? { source } : {}), ...opts.workflowDefaults } satisfies GpuAdmissionInput],
      workflowIdConflictPolicy: 'USE_EXISTING',
      staticSummary: `GPU admission of pool ${pool}: teams' leases and quotas (query quotaStatus)`,
      // A pool's admission workflow runs until continue-as-new; an earlier closed one may be reused.
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    });

  const configuredQuotas = async (): Promise<QuotaFile> => {
    if (!opts.quotaFile) throw new ForgelineError(ErrorType.InvalidConfig, 'GPU leases need a quota file: set FORGELINE_QUOTAS on the control worker (see README "Teams, quotas and admission")', true);
    return loadQuotaFile(opts.quotaFile);
  };

  /** The update, as a terminal error when the workflow refused it (validator or handler failure). */
  const refused = (err: unknown, what: string): never => {
    if (err instanceof WorkflowUpdateFailedError) {
      const type = (err.cause as { type?: string } | undefined)?.type;
      throw new ForgelineError(type === ErrorType.Aborted ? ErrorType.Aborted : ErrorType.InvalidSpec, `${what} refused: ${causeMessage(err.cause ?? err)}`, true, { cause: err });
    }
    throw err;
  };

  return {
    async acquire(req: LeaseRequest, o = {}): Promise<LeaseGrant> {
      const quotas = await configuredQuotas();
      const timer = o.onWait ? setInterval(o.onWait, tick) : undefined;
      try {
        for (;;) {
          o.signal?.throwIfAborted();
          const call = () =>
            client.workflow.executeUpdateWithStart<Workflow, AcquireLeaseReply, [LeaseRequest]>(ADMISSION_MESSAGES.acquireLease, {
              args: [req],
              startWorkflowOperation: startOperation(req.pool, quotas, opts.quotaFile),
            });
          let reply: AcquireLeaseReply;
          try {
            reply = await (o.signal ? client.withAbortSignal(o.signal, call) : call());
          } catch (err) {
            o.signal?.throwIfAborted();
            return refused(err, `lease ${req.leaseId} (${req.team}, ${req.gpus} GPU(s) of pool ${req.pool})`);
          }
          if ('grant' in reply) return reply.grant;
          // The workflow is continuing as new: ask the next run.
          await new Promise((r) => setTimeout(r, 200));
        }
      } finally {
        if (timer) clearInterval(timer);
      }
    },

    async release(pool, leaseId, reason): Promise<ReleaseLeaseReply> {
      try {
        return await client.workflow.getHandle(admissionWorkflowId(pool)).executeUpdate<ReleaseLeaseReply, [{ leaseId: string; reason?: string }]>(ADMISSION_MESSAGES.releaseLease, { args: [{ leaseId, ...(reason ? { reason } : {}) }] });
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return { leaseId, was: 'none' };
        return refused(err, `release of lease ${leaseId}`);
      }
    },

    async closedHolders(workflowIds): Promise<LeaseHolderState[]> {
      const out: LeaseHolderState[] = [];
      for (const workflowId of workflowIds) {
        try {
          const d = await client.workflow.getHandle(workflowId).describe();
          if (d.status.name !== 'RUNNING') out.push({ workflowId, status: d.status.name });
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) out.push({ workflowId, status: 'NOT_FOUND' });
          else throw err;
        }
      }
      return out;
    },

    async status(pool): Promise<AdmissionStatus | undefined> {
      try {
        return await client.workflow.getHandle(admissionWorkflowId(pool)).query<AdmissionStatus>(ADMISSION_MESSAGES.quotaStatus);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      }
    },

    async apply(file, source): Promise<AdmissionStatus[]> {
      const out: AdmissionStatus[] = [];
      for (const pool of Object.keys(file.pools)) {
        try {
          out.push(
            await client.workflow.executeUpdateWithStart<Workflow, AdmissionStatus, [SetQuotasRequest]>(ADMISSION_MESSAGES.setQuotas, {
              args: [{ quotas: file, source }],
              startWorkflowOperation: startOperation(pool, file, source),
            }),
          );
        } catch (err) {
          refused(err, `quotas of pool ${pool}`);
        }
      }
      return out;
    },
  };
}
