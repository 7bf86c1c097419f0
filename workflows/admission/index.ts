/**
 * `gpuAdmissionWorkflow`: one per GPU pool (ID `forgeline-admission-<pool>`), the durable keeper
 * of its leases (issue 13). GPU stages acquire a lease before they run and release it after; the
 * pure policy of src/contracts/fair-share.ts decides who is admitted and who is preempted. Being
 * a workflow, a granted lease survives worker and server restarts; Update-with-Start creates it on
 * the first acquire.
 *
 * - `acquireLease` (Update): validated (schema, team and quota) before it enters history; waits
 *   until the lease is granted; idempotent by leaseId (a repeated acquire of a granted lease gets
 *   the same grant).
 * - `releaseLease` (Update): idempotent; a waiting request stops waiting.
 * - `setQuotas` (Update): a new quota file; waiting requests it makes impossible are refused.
 * - Preemption: the holder workflow gets `yieldGpus` ({leaseId, reason}) and keeps the lease
 *   until it releases it; after `yieldGrace` the lease is revoked (logged).
 * - Leases whose holder workflow closed are reclaimed (checked every `holderCheckEvery` by an
 *   activity that describes the holders).
 * - Continue-as-new with its state when the history grows: waiting acquires are answered
 *   `{retry}` and the caller asks the new run again.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  getCurrentDetails,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { AdmissionActivities } from '../../activities/admission/leases';
import {
  renderAdmissionDetails,
  type AdmissionCarriedState,
  type AdmissionStatus,
  type EndedLease,
  type GpuAdmissionInput,
  type ReleaseLeaseReply,
} from '../../src/contracts/admission';
import { ErrorType } from '../../src/contracts/errors';
import { decide, overdueYields, status, unsatisfiable, type AdmissionState } from '../../src/contracts/fair-share';
import { LeaseRequestSchema, poolQuotas, QuotaFileSchema, type LeaseGrant, type QuotaFile } from '../../src/contracts/quota';
import { acquireLeaseUpdate, ADMISSION_MESSAGE_DESCRIPTIONS, quotaStatusQuery, releaseLeaseUpdate, setQuotasUpdate, yieldGpusSignal } from './messages';

export { acquireLeaseUpdate, releaseLeaseUpdate, setQuotasUpdate, quotaStatusQuery, yieldGpusSignal } from './messages';

const HOLDER_CHECK = { startToCloseTimeout: '1 minute', retry: { maximumAttempts: 3, initialInterval: '2 seconds' } } as const;
const admissionActivities = proxyActivities<AdmissionActivities>(HOLDER_CHECK);
/** describeLeaseHolders with a sentence for the UI. */
function executeWithSummary(summary: string, req: { workflowIds: string[] }) {
  return admissionActivities.describeLeaseHolders.executeWithOptions({ ...HOLDER_CHECK, summary }, [req]);
}

const ENDED_KEPT = 500;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
function ms(d: string | undefined, fallback: number): number {
  if (d === undefined) return fallback;
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(d);
  if (!m) throw ApplicationFailure.nonRetryable(`invalid duration ${d}: expected e.g. 30s, 15m or 1h`, ErrorType.InvalidSpec);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** The quota file for `pool`, or why it cannot be used. */
function checkQuotas(file: unknown, pool: string): { file: QuotaFile } | { problem: string } {
  const parsed = QuotaFileSchema.safeParse(file);
  if (!parsed.success) return { problem: `invalid quota file: ${parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(file)'}: ${i.message}`).join('; ')}` };
  if (!parsed.data.pools[pool]) return { problem: `pool ${pool} is not in the quota file (pools: ${Object.keys(parsed.data.pools).join(', ')}): add pools.${pool}` };
  return { file: parsed.data };
}

export async function gpuAdmissionWorkflow(input: GpuAdmissionInput): Promise<never> {
  const { pool } = input;
  const yieldGraceMs = ms(input.yieldGrace, 15 * 60_000);
  const holderCheckMs = ms(input.holderCheckEvery, 60_000);
  const maxHistory = input.maxHistoryEvents ?? 10_000;

  const initial = checkQuotas(input.carried?.quotas ?? input.quotas, pool);
  if ('problem' in initial) throw ApplicationFailure.nonRetryable(initial.problem, ErrorType.InvalidSpec);
  let quotaFile = initial.file;
  let source = input.carried?.source ?? input.source;
  const state: AdmissionState = {
    quotas: poolQuotas(quotaFile, pool),
    granted: input.carried?.granted ?? [],
    waiting: input.carried?.waiting ?? [],
  };
  const ended: EndedLease[] = input.carried?.ended ?? [];
  let preemptions = input.carried?.preemptions ?? 0;
  let revocations = input.carried?.revocations ?? 0;
  /** Something changed: run the policy again. */
  let dirty = true;
  /** Continuing as new: waiting acquires answer {retry}. */
  let draining = false;
  let lastHolderCheck = Date.now();

  const endedOf = (leaseId: string) => ended.find((e) => e.leaseId === leaseId);
  /** The ended lease that refuses `req`: the same lease ID of the same holder run (a new run of the holder may reuse its lease IDs). */
  const endedFor = (req: { leaseId: string; holder: { runId?: string } }) => {
    const e = endedOf(req.leaseId);
    return e && (e.holderRunId === undefined || req.holder.runId === undefined || e.holderRunId === req.holder.runId) ? e : undefined;
  };
  const end = (e: EndedLease) => {
    ended.unshift(e);
    if (ended.length > ENDED_KEPT) ended.length = ENDED_KEPT;
  };
  /** Remove a lease (held or waiting); what it was, and its holder's run. */
  const drop = (leaseId: string): { was: 'held' | 'waiting' | 'none'; holderRunId?: string } => {
    const g = state.granted.findIndex((x) => x.request.leaseId === leaseId);
    if (g >= 0) {
      const [x] = state.granted.splice(g, 1);
      dirty = true;
      return { was: 'held', ...(x!.request.holder.runId ? { holderRunId: x!.request.holder.runId } : {}) };
    }
    const w = state.waiting.findIndex((x) => x.request.leaseId === leaseId);
    if (w >= 0) {
      const [x] = state.waiting.splice(w, 1);
      dirty = true;
      return { was: 'waiting', ...(x!.request.holder.runId ? { holderRunId: x!.request.holder.runId } : {}) };
    }
    return { was: 'none' };
  };
  const view = (): AdmissionStatus => ({
    ...status(state),
    source,
    leases: state.granted.map((g) => ({
      leaseId: g.grant.leaseId,
      team: g.grant.team,
      gpus: g.grant.gpus,
      borrowed: g.grant.borrowed,
      priority: g.request.priority,
      preemptible: g.request.preemptible,
      holder: g.request.holder,
      grantedAt: g.grant.grantedAt,
      ...(g.yieldRequested ? { yieldRequestedAt: g.yieldRequested.at, yieldReason: g.yieldRequested.reason } : {}),
    })),
    waitingLeases: state.waiting.map((w) => ({ leaseId: w.request.leaseId, team: w.request.team, gpus: w.request.gpus, requestedAt: w.requestedAt, holder: w.request.holder })),
    recentlyEnded: ended.slice(0, 20),
    preemptions,
    revocations,
  });

  setHandler(quotaStatusQuery, view, { description: ADMISSION_MESSAGE_DESCRIPTIONS.quotaStatus });

  setHandler(
    acquireLeaseUpdate,
    async (raw) => {
      const req = LeaseRequestSchema.parse(raw);
      const held = () => state.granted.find((g) => g.request.leaseId === req.leaseId)?.grant;
      const grant0 = held();
      if (grant0) return { grant: grant0 };
      if (draining) return { retry: `the admission workflow of pool ${pool} is continuing as new: ask again` };
      // A new run of the holder reusing a lease ID of an earlier run: forget the earlier one's end.
      const old = endedOf(req.leaseId);
      if (old && !endedFor(req)) ended.splice(ended.indexOf(old), 1);
      if (!state.waiting.some((w) => w.request.leaseId === req.leaseId)) {
        state.waiting.push({ request: req, requestedAt: Date.now() });
        dirty = true;
        log.info(`admission ${pool}: ${req.team} asks for ${req.gpus} GPU(s), lease ${req.leaseId} (${req.holder.workflowId} ${req.holder.stage})`);
      }
      let grant: LeaseGrant | undefined;
      await condition(() => (grant = held()) !== undefined || endedOf(req.leaseId) !== undefined || !state.waiting.some((w) => w.request.leaseId === req.leaseId) || draining);
      if (grant) return { grant };
      const e = endedFor(req);
      if (e?.how === 'refused') throw ApplicationFailure.nonRetryable(`lease ${req.leaseId} refused: ${e.detail}`, ErrorType.InvalidSpec);
      if (e) throw ApplicationFailure.nonRetryable(`lease ${req.leaseId} ended (${e.how}${e.detail ? `: ${e.detail}` : ''}) before it was granted`, ErrorType.Aborted);
      return { retry: `the admission workflow of pool ${pool} is continuing as new: ask again` };
    },
    {
      description: ADMISSION_MESSAGE_DESCRIPTIONS.acquireLease,
      validator: (raw) => {
        const parsed = LeaseRequestSchema.safeParse(raw);
        if (!parsed.success) throw new Error(`invalid lease request: ${parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(request)'}: ${i.message}`).join('; ')}`);
        const req = parsed.data;
        if (state.granted.some((g) => g.request.leaseId === req.leaseId)) return; // idempotent: the same grant
        const e = endedFor(req);
        if (e) throw new Error(`lease ${req.leaseId} already ended (${e.how}${e.detail ? `: ${e.detail}` : ''}): acquire a new lease ID`);
        const why = unsatisfiable(state.quotas, req);
        if (why) throw new Error(source ? `${why} (quota file ${source})` : why);
      },
    },
  );

  setHandler(
    releaseLeaseUpdate,
    (req): ReleaseLeaseReply => {
      const { was, holderRunId } = drop(req.leaseId);
      if (was !== 'none') {
        end({ leaseId: req.leaseId, at: Date.now(), how: 'released', ...(req.reason ? { detail: req.reason } : {}), ...(holderRunId ? { holderRunId } : {}) });
        log.info(`admission ${pool}: lease ${req.leaseId} released (${was}${req.reason ? `: ${req.reason}` : ''})`);
      }
      return { leaseId: req.leaseId, was };
    },
    {
      description: ADMISSION_MESSAGE_DESCRIPTIONS.releaseLease,
      validator: (req) => {
        if (typeof req?.leaseId !== 'string' || req.leaseId === '') throw new Error('invalid release: expected {"leaseId": "..."}');
      },
    },
  );

  setHandler(
    setQuotasUpdate,
    (req) => {
      const checked = checkQuotas(req.quotas, pool);
      if ('problem' in checked) throw ApplicationFailure.nonRetryable(checked.problem, ErrorType.InvalidSpec); // the validator refused it already
      quotaFile = checked.file;
      source = req.source ?? source;
      state.quotas = poolQuotas(quotaFile, pool);
      for (const w of [...state.waiting]) {
        const why = unsatisfiable(state.quotas, w.request);
        if (why) {
          const { holderRunId } = drop(w.request.leaseId);
          end({ leaseId: w.request.leaseId, at: Date.now(), how: 'refused', detail: why, ...(holderRunId ? { holderRunId } : {}) });
        }
      }
      dirty = true;
      log.info(`admission ${pool}: quotas replaced (${Object.keys(state.quotas.teams).length} teams, ${state.quotas.gpus} GPUs)`);
      return view();
    },
    {
      description: ADMISSION_MESSAGE_DESCRIPTIONS.setQuotas,
      validator: (req) => {
        const checked = checkQuotas(req?.quotas, pool);
        if ('problem' in checked) throw new Error(checked.problem);
      },
    },
  );

  /** Ask a preempted lease's holder to yield; a holder that is gone frees its lease at once. */
  const askToYield = (leaseId: string, workflowId: string, reason: string) => {
    getExternalWorkflowHandle(workflowId)
      .signal(yieldGpusSignal, { leaseId, reason })
      .catch((err: unknown) => {
        const { was, holderRunId } = drop(leaseId);
        if (was !== 'none') {
          end({ leaseId, at: Date.now(), how: 'holder-closed', detail: `yieldGpus could not be delivered: ${err instanceof Error ? err.message : String(err)}`, ...(holderRunId ? { holderRunId } : {}) });
          log.warn(`admission ${pool}: holder ${workflowId} of lease ${leaseId} is gone; lease freed`);
        }
      });
  };

  for (;;) {
    if (dirty) {
      dirty = false;
      const now = Date.now();
      const d = decide(state, now);
      for (const grant of d.admit) {
        const i = state.waiting.findIndex((w) => w.request.leaseId === grant.leaseId);
        const [w] = state.waiting.splice(i, 1);
        state.granted.push({ request: w!.request, grant });
        log.info(`admission ${pool}: granted ${grant.gpus} GPU(s) to ${grant.team}, lease ${grant.leaseId}${grant.borrowed ? ` (${grant.borrowed} borrowed)` : ''}`);
      }
      for (const p of d.preempt) {
        const g = state.granted.find((x) => x.request.leaseId === p.leaseId)!;
        g.yieldRequested = { at: now, reason: p.reason };
        preemptions += 1;
        log.info(`admission ${pool}: preempting lease ${p.leaseId} of ${g.request.holder.workflowId}: ${p.reason}`);
        askToYield(p.leaseId, g.request.holder.workflowId, p.reason);
      }
    }

    const details = renderAdmissionDetails(view());
    if (details !== getCurrentDetails()) setCurrentDetails(details);

    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength >= maxHistory) break;

    // Sleep until something changes, a yield's grace runs out, or the holder check is due.
    const now = Date.now();
    const yieldDeadlines = state.granted.flatMap((g) => (g.yieldRequested ? [g.yieldRequested.at + yieldGraceMs] : []));
    const holderDue = state.granted.length > 0 ? lastHolderCheck + holderCheckMs : Number.POSITIVE_INFINITY;
    const wake = Math.min(holderDue, ...yieldDeadlines);
    if (Number.isFinite(wake)) await condition(() => dirty, Math.max(1, wake - now));
    else await condition(() => dirty);

    for (const g of overdueYields(state, Date.now(), yieldGraceMs)) {
      const { holderRunId } = drop(g.request.leaseId);
      revocations += 1;
      end({ leaseId: g.request.leaseId, at: Date.now(), how: 'revoked', ...(holderRunId ? { holderRunId } : {}), detail: `holder ${g.request.holder.workflowId} did not release within ${input.yieldGrace ?? '15m'} of being asked to yield` });
      log.warn(`admission ${pool}: revoked lease ${g.request.leaseId} of ${g.request.holder.workflowId} (${g.request.team}, ${g.grant.gpus} GPU(s)): not released within the yield grace`);
    }
    if (state.granted.length > 0 && Date.now() >= lastHolderCheck + holderCheckMs) {
      lastHolderCheck = Date.now();
      const holders = [...new Set([...state.granted, ...state.waiting].map((g) => g.request.holder.workflowId))];
      try {
        const { closed } = await executeWithSummary(`check whether the ${holders.length} lease holder(s) still run`, { workflowIds: holders });
        for (const c of closed) {
          for (const g of [...state.granted, ...state.waiting].filter((x) => x.request.holder.workflowId === c.workflowId)) {
            const { holderRunId } = drop(g.request.leaseId);
            end({ leaseId: g.request.leaseId, at: Date.now(), how: 'holder-closed', detail: `holder ${c.workflowId} is ${c.status}`, ...(holderRunId ? { holderRunId } : {}) });
            log.warn(`admission ${pool}: lease ${g.request.leaseId} freed: its holder ${c.workflowId} is ${c.status}`);
          }
        }
      } catch (err) {
        log.warn(`admission ${pool}: could not check lease holders (${err instanceof Error ? err.message : String(err)}); trying again in ${input.holderCheckEvery ?? '1m'}`);
      }
    }
  }

  // Continue as new: waiting acquires answer {retry} (their callers ask the new run), the
  // others finish, then the state moves on.
  draining = true;
  await condition(allHandlersFinished);
  const carried: AdmissionCarriedState = { quotas: quotaFile, ...(source !== undefined ? { source } : {}), granted: state.granted, waiting: state.waiting, ended, preemptions, revocations };
  return continueAsNew<typeof gpuAdmissionWorkflow>({ ...input, quotas: quotaFile, carried });
}
