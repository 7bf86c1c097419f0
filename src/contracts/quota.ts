/**
 * Teams, GPU quotas and leases (issue 13): the quota file's schema, the lease request and grant
 * that GPU stages exchange with a pool's admission workflow, and the status view.
 *
 * The model is Kueue's (ClusterQueue `nominalQuota` / `borrowingLimit` / `lendingLimit` in a
 * cohort), per GPU pool:
 * - a team's `nominal` GPUs of a pool are guaranteed to it: a request that keeps the team within
 *   its nominal quota is admitted as soon as GPUs are free, preempting borrowers if needed;
 * - idle GPUs (other teams' unused nominal quota, up to their `lendingLimit`, and the pool's GPUs
 *   no team has as nominal quota) are lent to teams of the same `cohort`, each up to its
 *   `borrowingLimit` above its nominal quota;
 * - only preemptible leases may borrow, so a team's nominal quota can always be reclaimed.
 *
 * Pure (zod only): bundled into the admission workflow, which validates `setQuotas` with it.
 * The YAML reader with line numbers is src/fleet/quota-file.ts.
 */
import { z } from 'zod';

const NAME = /^[a-z0-9][a-z0-9-]{0,30}$/;
const POOL_NAME = 'expected a lowercase pool name like cpu, h200 or a100-80g (letters, digits, dashes)';
const TEAM_NAME = 'expected a lowercase team name like search or ml-platform (letters, digits, dashes, at most 31)';
const poolName = z.string().regex(NAME, POOL_NAME);
const teamName = z.string().regex(NAME, TEAM_NAME);
const gpus = (what: string) => z.number({ error: `expected ${what} as a whole number of GPUs` }).int(`expected ${what} as a whole number of GPUs`).min(0, `expected ${what} of 0 or more GPUs`).max(100_000, `expected ${what} of at most 100000 GPUs`);
/** A limit: a whole number of GPUs, or null for none. */
/** A record's error: a bad key gets the key's own fix, anything else `what`. */
const recordError = (what: string, key: string) => (iss: { code: string }) => (iss.code === 'invalid_key' ? key : what);
const limit = (what: string) => gpus(what).nullable().default(null);

export const PoolSchema = z.strictObject({
  /** GPUs the pool has (the sum of its GPU workers' FORGELINE_GPU_COUNT). */
  gpus: gpus('gpus').refine((n) => n > 0, 'expected a pool of at least 1 GPU'),
});

export const TeamQuotaSchema = z.strictObject({
  /** GPUs of the pool guaranteed to the team. */
  nominal: gpus('nominal'),
  /** The most GPUs the team may borrow above `nominal` (null: as many as the cohort lends). */
  borrowingLimit: limit('borrowingLimit'),
  /** The most of the team's unused nominal GPUs lent to others (null: all of them). */
  lendingLimit: limit('lendingLimit'),
});

export const TeamSchema = z.strictObject({
  /** Higher wins: waiting leases of a higher-priority team are admitted first. */
  priority: z.number({ error: 'expected priority as a whole number (higher wins), e.g. 100' }).int('expected priority as a whole number (higher wins), e.g. 100').min(-1_000_000).max(1_000_000).default(0),
  /** Fairness weight (Temporal fairness and admission order). Default: the team's nominal GPUs of the pool (1 when it has none). */
  weight: z.number({ error: 'expected weight as a positive number, e.g. 2' }).positive('expected weight as a positive number, e.g. 2').max(1_000_000).optional(),
  /** Teams of one cohort lend each other idle GPUs; teams of other cohorts do not. */
  cohort: teamName.default('default'),
  /** Per pool. A team with no entry for a pool cannot use it. */
  quotas: z.record(poolName, TeamQuotaSchema, { error: recordError('expected quotas as a mapping of pool name to {nominal, borrowingLimit, lendingLimit}', POOL_NAME) }),
});

export const QuotaFileSchema = z
  .strictObject({
    version: z.literal(1, { error: 'expected version: 1' }),
    pools: z.record(poolName, PoolSchema, { error: recordError('expected pools as a mapping of pool name to {gpus}', POOL_NAME) }).refine((p) => Object.keys(p).length > 0, 'expected at least one pool, e.g. pools: {h200: {gpus: 8}}'),
    teams: z.record(teamName, TeamSchema, { error: recordError('expected teams as a mapping of team name to {priority, quotas}', TEAM_NAME) }).refine((t) => Object.keys(t).length > 0, 'expected at least one team'),
  })
  .superRefine((file, ctx) => {
    const nominal = new Map<string, number>();
    for (const [team, t] of Object.entries(file.teams)) {
      for (const [pool, q] of Object.entries(t.quotas)) {
        const p = file.pools[pool];
        if (!p) {
          ctx.addIssue({ code: 'custom', path: ['teams', team, 'quotas', pool], message: `unknown pool ${pool}: declare it under pools (known: ${Object.keys(file.pools).join(', ')}) or remove this quota` });
          continue;
        }
        nominal.set(pool, (nominal.get(pool) ?? 0) + q.nominal);
        if (q.lendingLimit !== null && q.lendingLimit > q.nominal) {
          ctx.addIssue({ code: 'custom', path: ['teams', team, 'quotas', pool, 'lendingLimit'], message: `lendingLimit ${q.lendingLimit} is above nominal ${q.nominal}: a team lends at most its own nominal GPUs; lower it or set null` });
        }
        if (q.nominal + (q.borrowingLimit ?? 0) > p.gpus) {
          ctx.addIssue({ code: 'custom', path: ['teams', team, 'quotas', pool, q.borrowingLimit === null ? 'nominal' : 'borrowingLimit'], message: `nominal ${q.nominal} + borrowingLimit ${q.borrowingLimit ?? 0} is more than pool ${pool}'s ${p.gpus} GPUs: lower it` });
        }
      }
    }
    for (const [pool, sum] of nominal) {
      const p = file.pools[pool]!;
      if (sum > p.gpus) {
        const parts = Object.entries(file.teams).flatMap(([team, t]) => (t.quotas[pool] ? [`${team} ${t.quotas[pool].nominal}`] : []));
        ctx.addIssue({ code: 'custom', path: ['pools', pool, 'gpus'], message: `the teams' nominal quotas of pool ${pool} add up to ${sum} GPUs (${parts.join(', ')}), more than its ${p.gpus}: lower them or raise gpus` });
      }
    }
  });

export type QuotaFile = z.output<typeof QuotaFileSchema>;
export type TeamQuota = z.output<typeof TeamQuotaSchema>;

/** One team's quota on one pool, resolved from the file (what the admission policy works with). */
export interface PoolTeamQuota {
  team: string;
  cohort: string;
  priority: number;
  weight: number;
  nominal: number;
  /** null: unlimited (within what the cohort lends). */
  borrowingLimit: number | null;
  /** null: all of the unused nominal quota. */
  lendingLimit: number | null;
}

/** One pool's quotas: what its admission workflow enforces. */
export interface PoolQuotas {
  pool: string;
  gpus: number;
  teams: Record<string, PoolTeamQuota>;
}

/** The quotas of `pool`; teams without a quota on it are left out (they cannot use the pool). */
export function poolQuotas(file: QuotaFile, pool: string): PoolQuotas {
  const p = file.pools[pool];
  if (!p) throw new Error(`pool ${pool} is not in the quota file (pools: ${Object.keys(file.pools).join(', ')})`);
  const teams: Record<string, PoolTeamQuota> = {};
  for (const [team, t] of Object.entries(file.teams)) {
    const q = t.quotas[pool];
    if (!q) continue;
    teams[team] = { team, cohort: t.cohort, priority: t.priority, weight: t.weight ?? (q.nominal > 0 ? q.nominal : 1), nominal: q.nominal, borrowingLimit: q.borrowingLimit, lendingLimit: q.lendingLimit };
  }
  return { pool, gpus: p.gpus, teams };
}

/**
 * Temporal task-queue priority of a team's GPU tasks on `pool`: fairness key = team, weight from
 * the quota; priority key 1 (first) to 5 from the rank of the team's priority among the pool's
 * teams (the highest-priority teams get 1; below the fifth distinct priority everyone gets 5).
 */
export function temporalPriority(quotas: PoolQuotas, team: string): { priorityKey: number; fairnessKey: string; fairnessWeight: number } {
  const t = quotas.teams[team];
  if (!t) throw new Error(`team ${team} has no quota on pool ${quotas.pool}`);
  const levels = [...new Set(Object.values(quotas.teams).map((q) => q.priority))].sort((a, b) => b - a);
  return { priorityKey: Math.min(5, levels.indexOf(t.priority) + 1), fairnessKey: team, fairnessWeight: t.weight };
}

/** What a GPU stage asks its pool's admission workflow for. */
export const LeaseRequestSchema = z.strictObject({
  /** Unique per lease and stable across retries (e.g. `<workflowId>/<stage>/<attempt-independent key>`): acquire is idempotent by it. */
  leaseId: z.string().min(1).max(300),
  team: teamName,
  pool: poolName,
  gpus: z.number().int('expected gpus as a whole number').min(1, 'expected at least 1 GPU'),
  /** Job priority within the team (higher wins): a borrower's lowest-priority lease is preempted first. */
  priority: z.number().int().default(0),
  /** Who holds the lease: the workflow that gets `yieldGpus` on preemption and whose close frees it. */
  holder: z.strictObject({ workflowId: z.string().min(1), runId: z.string().min(1).optional(), stage: z.string().min(1) }),
  /** Preemptible leases may borrow and may be asked to yield; others run within the nominal quota only. */
  preemptible: z.boolean().default(true),
});
export type LeaseRequest = z.input<typeof LeaseRequestSchema>;
export type ResolvedLeaseRequest = z.output<typeof LeaseRequestSchema>;

/** The answer to an admitted request. */
export interface LeaseGrant {
  leaseId: string;
  pool: string;
  team: string;
  gpus: number;
  /** GPUs of this lease above the team's nominal quota when it was granted (borrowed from the cohort). */
  borrowed: number;
  /** Epoch milliseconds (workflow time). */
  grantedAt: number;
}

/** Per pool and team: what `forgeline quota status` and the `quotaStatus` query show. */
export interface TeamQuotaStatus extends PoolTeamQuota {
  /** GPUs of granted leases (including those asked to yield and not yet released). */
  inUse: number;
  /** inUse above nominal. */
  borrowed: number;
  /** Of the team's unused nominal GPUs, those other teams use now. */
  lent: number;
  /** GPUs of waiting requests, and how many requests. */
  waiting: number;
  waitingLeases: number;
  /** Leases asked to yield (preempted) and not yet released. */
  yielding: number;
}

export interface PoolQuotaStatus {
  pool: string;
  gpus: number;
  inUse: number;
  free: number;
  teams: TeamQuotaStatus[];
}

export type QuotaStatus = PoolQuotaStatus;
