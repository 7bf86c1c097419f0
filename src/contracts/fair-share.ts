/**
 * The GPU admission policy of one pool: pure (no I/O, no clock: `now` is passed in), so the
 * admission workflow runs it deterministically and benchmarks simulate days with it.
 *
 * Kueue's semantics (ClusterQueue nominalQuota, borrowingLimit, lendingLimit, cohort):
 * - **Within nominal.** A request that keeps its team at or under its nominal quota is admitted
 *   when the GPUs are free; when they are not, borrowers are preempted (reclaim) and the GPUs are
 *   reserved for it, so a team within its nominal quota is never starved.
 * - **Borrowing.** Above nominal, a team borrows idle GPUs: other cohort members' unused nominal
 *   quota (each up to its lendingLimit) and the pool's GPUs that are nobody's nominal quota
 *   (shared by every cohort), up to its own borrowingLimit. Only preemptible requests borrow.
 * - **Order.** Waiting requests are taken within-nominal first (as Kueue's scheduler does, so
 *   GPUs freed for a reclaim go to the team that reclaimed them), then by team priority (higher first), then fair share
 *   (GPUs in use, counting what this pass admits, over the team's weight; lower first), then
 *   arrival (FIFO), then lease ID. A borrowing request that does not fit does not block the ones
 *   after it (Kueue's BestEffortFIFO); a within-nominal one holds its GPUs as a reservation.
 * - **Preemption.** To reclaim, the policy picks preemptible leases of teams that borrow (GPUs in
 *   use above nominal), lowest lease priority first, then most recently granted, until the
 *   waiting request fits once they are released. A preempted lease keeps its GPUs until its
 *   holder releases them (checkpoint and yield); `overdueYields` names those past their grace.
 */
import type { LeaseGrant, PoolQuotas, PoolQuotaStatus, PoolTeamQuota, ResolvedLeaseRequest, TeamQuotaStatus } from './quota';

/** A lease that holds GPUs. */
export interface GrantedLease {
  request: ResolvedLeaseRequest;
  grant: LeaseGrant;
  /** Set once the holder was asked to checkpoint and yield: the GPUs are freed when it releases. */
  yieldRequested?: { at: number; reason: string };
}

/** A request waiting for GPUs. */
export interface WaitingLease {
  request: ResolvedLeaseRequest;
  /** Epoch milliseconds of the first acquire (FIFO order). */
  requestedAt: number;
}

/** What one pool's admission workflow knows. */
export interface AdmissionState {
  quotas: PoolQuotas;
  granted: GrantedLease[];
  waiting: WaitingLease[];
}

export interface Preemption {
  leaseId: string;
  /** Sentence for the holder's log and the UI: who waits, who borrows. */
  reason: string;
}

export interface Decision {
  /** Grants for waiting requests admitted now, in admission order. */
  admit: LeaseGrant[];
  /** Granted leases whose holders must checkpoint and yield. */
  preempt: Preemption[];
}

/** null: unlimited. */
const cap = (n: number | null): number => (n === null ? Number.POSITIVE_INFINITY : n);

/**
 * Why `req` can never be admitted under `quotas` (unknown team, no quota on the pool, more GPUs
 * than the team may ever hold), as a sentence naming the fix; null when it can.
 */
export function unsatisfiable(quotas: PoolQuotas, req: Pick<ResolvedLeaseRequest, 'team' | 'pool' | 'gpus' | 'preemptible'>): string | null {
  if (req.pool !== quotas.pool) return `lease for pool ${req.pool} sent to pool ${quotas.pool}'s admission`;
  const t = quotas.teams[req.team];
  const known = Object.keys(quotas.teams).sort().join(', ') || 'none';
  if (!t) return `team ${req.team} has no quota on pool ${quotas.pool} (teams with one: ${known}): add teams.${req.team}.quotas.${quotas.pool} to the quota file (forgeline quota apply)`;
  if (req.gpus > quotas.gpus) return `${req.gpus} GPUs asked but pool ${quotas.pool} has ${quotas.gpus}: lower gpu.count`;
  // The most the cohort can ever lend: its other members' lendable quota plus the unassigned GPUs.
  const unassigned = quotas.gpus - Object.values(quotas.teams).reduce((s, q) => s + q.nominal, 0);
  const lenders = Object.values(quotas.teams).filter((q) => q.team !== t.team && q.cohort === t.cohort);
  const lendable = unassigned + lenders.reduce((s, q) => s + Math.min(cap(q.lendingLimit), q.nominal), 0);
  const most = req.preemptible ? Math.min(quotas.gpus, t.nominal + Math.min(cap(t.borrowingLimit), lendable)) : t.nominal;
  if (req.gpus > most) {
    return req.preemptible
      ? `${req.gpus} GPUs asked but team ${req.team} may hold at most ${most} on pool ${quotas.pool} (nominal ${t.nominal}, borrowingLimit ${t.borrowingLimit ?? 'none'}, ${lendable} lendable in cohort ${t.cohort}): lower gpu.count or raise the quota`
      : `${req.gpus} GPUs asked by a non-preemptible lease but team ${req.team}'s nominal quota on pool ${quotas.pool} is ${t.nominal} (only preemptible leases borrow): lower gpu.count, raise the nominal quota or make the stage preemptible`;
  }
  return null;
}

/** A working copy of the pool's accounting for one decision pass. */
class Ledger {
  /** GPUs each team will hold once pending yields are released and reservations are taken up. */
  readonly planned = new Map<string, number>();
  /** GPUs held now (yielding leases included) plus those promised to reservations this pass. */
  booked = 0;
  /** GPUs of yielding leases (old and new) not yet claimed by a reservation. */
  unclaimedRelease = 0;
  /** GPUs of each team's leases asked to yield and not yet released. */
  readonly yielding = new Map<string, number>();
  readonly unassigned: number;

  constructor(readonly quotas: PoolQuotas, granted: readonly GrantedLease[]) {
    this.unassigned = quotas.gpus - Object.values(quotas.teams).reduce((s, t) => s + t.nominal, 0);
    for (const g of granted) {
      this.booked += g.grant.gpus;
      if (g.yieldRequested) {
        this.unclaimedRelease += g.grant.gpus;
        this.yielding.set(g.request.team, (this.yielding.get(g.request.team) ?? 0) + g.grant.gpus);
      } else this.add(g.request.team, g.grant.gpus);
    }
  }

  use(team: string): number {
    return this.planned.get(team) ?? 0;
  }
  add(team: string, gpus: number): void {
    this.planned.set(team, this.use(team) + gpus);
  }
  quota(team: string): PoolTeamQuota {
    return this.quotas.teams[team] ?? { team, cohort: '', priority: 0, weight: 1, nominal: 0, borrowingLimit: 0, lendingLimit: 0 };
  }
  borrowed(team: string): number {
    return Math.max(0, this.use(team) - this.quota(team).nominal);
  }
  lendable(team: string): number {
    const q = this.quota(team);
    return Math.min(cap(q.lendingLimit), Math.max(0, q.nominal - this.use(team)));
  }
  plannedTotal(): number {
    let s = 0;
    for (const v of this.planned.values()) s += v;
    return s;
  }
  /** Teams with a quota or planned usage. */
  teams(): string[] {
    return [...new Set([...Object.keys(this.quotas.teams), ...this.planned.keys()])];
  }

  /** Would `team` taking `gpus` more keep every quota rule (ignoring whether the GPUs are free now)? */
  quotaAllows(team: string, gpus: number, preemptible: boolean): boolean {
    const q = this.quotas.teams[team];
    if (!q) return false;
    this.add(team, gpus);
    try {
      // The team's own limits count what it holds now, yielding leases included.
      const held = Math.max(0, this.use(team) + (this.yielding.get(team) ?? 0) - q.nominal);
      if (held > 0 && (!preemptible || held > cap(q.borrowingLimit))) return false;
      if (this.borrowed(team) === 0) return true;
      // Borrowed within the team's cohort must be covered by the cohort's lenders plus the
      // unassigned GPUs; borrowed over the whole pool by all lenders plus the unassigned GPUs.
      let cohortBorrowed = 0;
      let cohortLendable = 0;
      let allBorrowed = 0;
      let allLendable = 0;
      for (const t of this.teams()) {
        const b = this.borrowed(t);
        const l = this.lendable(t);
        allBorrowed += b;
        allLendable += l;
        if (this.quota(t).cohort === q.cohort) {
          cohortBorrowed += b;
          cohortLendable += l;
        }
      }
      return cohortBorrowed <= cohortLendable + this.unassigned && allBorrowed <= allLendable + this.unassigned;
    } finally {
      this.add(team, -gpus);
    }
  }
}

function share(ledger: Ledger, team: string): number {
  return ledger.use(team) / ledger.quota(team).weight;
}

/** Does the request keep its team within its nominal quota (counting what this pass admits)? */
function withinNominal(ledger: Ledger, w: WaitingLease): boolean {
  return ledger.use(w.request.team) + w.request.gpus <= ledger.quota(w.request.team).nominal;
}

/** Waiting order: within nominal first (Kueue), team priority (higher first), fair share (lower first), arrival, lease ID. */
function before(ledger: Ledger, a: WaitingLease, b: WaitingLease): number {
  const na = withinNominal(ledger, a);
  if (na !== withinNominal(ledger, b)) return na ? -1 : 1;
  const pa = ledger.quota(a.request.team).priority;
  const pb = ledger.quota(b.request.team).priority;
  if (pa !== pb) return pb - pa;
  const sa = share(ledger, a.request.team);
  const sb = share(ledger, b.request.team);
  if (sa !== sb) return sa - sb;
  if (a.requestedAt !== b.requestedAt) return a.requestedAt - b.requestedAt;
  return a.request.leaseId < b.request.leaseId ? -1 : a.request.leaseId > b.request.leaseId ? 1 : 0;
}

/** Victim order: lowest lease priority, then most recently granted, then lease ID. */
function victimOrder(a: GrantedLease, b: GrantedLease): number {
  if (a.request.priority !== b.request.priority) return a.request.priority - b.request.priority;
  if (a.grant.grantedAt !== b.grant.grantedAt) return b.grant.grantedAt - a.grant.grantedAt;
  return a.request.leaseId < b.request.leaseId ? -1 : 1;
}

/**
 * Which waiting requests to admit now and which leases to preempt, at time `now` (epoch ms; it
 * becomes each grant's `grantedAt`). Requests `unsatisfiable` names are skipped (the workflow
 * refuses them). Deterministic: the same state and time give the same decision.
 */
export function decide(state: AdmissionState, now: number): Decision {
  const { quotas } = state;
  const ledger = new Ledger(quotas, state.granted);
  const admit: LeaseGrant[] = [];
  const preempt: Preemption[] = [];
  const victims = new Set<string>();
  const pending = state.waiting.filter((w) => unsatisfiable(quotas, w.request) === null);

  while (pending.length > 0) {
    let best = 0;
    for (let i = 1; i < pending.length; i++) if (before(ledger, pending[i]!, pending[best]!) < 0) best = i;
    const [w] = pending.splice(best, 1);
    const { team, gpus, preemptible, leaseId } = w!.request;
    const q = quotas.teams[team]!;

    if (ledger.booked + gpus <= quotas.gpus && ledger.quotaAllows(team, gpus, preemptible)) {
      admit.push({ leaseId, pool: quotas.pool, team, gpus, borrowed: Math.min(gpus, Math.max(0, ledger.use(team) + gpus - q.nominal)), grantedAt: now });
      ledger.booked += gpus;
      ledger.add(team, gpus);
      continue;
    }
    if (ledger.use(team) + gpus > q.nominal) continue; // borrowing is best effort: wait

    // Within nominal: reclaim. GPUs pending yields will free count first; then borrowers are
    // preempted until the request fits once they release.
    const short = ledger.booked + gpus - quotas.gpus; // > 0: the request did not fit physically
    const need = short - ledger.unclaimedRelease;
    ledger.unclaimedRelease = Math.max(0, ledger.unclaimedRelease - short);
    const chosen: GrantedLease[] = [];
    if (need > 0) {
      const candidates = state.granted
        .filter((g) => !g.yieldRequested && !victims.has(g.request.leaseId) && g.request.preemptible && g.request.team !== team)
        .sort(victimOrder);
      let freed = 0;
      for (const c of candidates) {
        if (freed >= need) break;
        if (ledger.borrowed(c.request.team) === 0) continue; // only borrowers are reclaimed from
        chosen.push(c);
        freed += c.grant.gpus;
        ledger.add(c.request.team, -c.grant.gpus);
      }
      if (freed < need) {
        for (const c of chosen) ledger.add(c.request.team, c.grant.gpus); // cannot reclaim enough: wait for releases
        chosen.length = 0;
      } else {
        ledger.unclaimedRelease += freed - need;
      }
    }
    for (const c of chosen) {
      victims.add(c.request.leaseId);
      const u = c.request.team;
      const uq = ledger.quota(u);
      preempt.push({
        leaseId: c.request.leaseId,
        reason: `team ${team} waits for ${gpus} GPU(s) within its nominal quota of ${q.nominal} on pool ${quotas.pool} while team ${u} borrows (nominal ${uq.nominal}): lease ${c.request.leaseId} of ${c.grant.gpus} GPU(s) must checkpoint and yield`,
      });
    }
    // Reserve: the GPUs freed are this request's; nobody else is admitted into them.
    ledger.booked += gpus;
    ledger.add(team, gpus);
  }
  return { admit, preempt };
}

/** Preempted leases whose holders have not released them within `graceMs`: to revoke. */
export function overdueYields(state: Pick<AdmissionState, 'granted'>, now: number, graceMs: number): GrantedLease[] {
  return state.granted.filter((g) => g.yieldRequested !== undefined && g.yieldRequested.at + graceMs <= now);
}

/** The pool's quota, use, borrowing, lending and waiting per team (teams with quotas first, by name). */
export function status(state: AdmissionState): PoolQuotaStatus {
  const { quotas } = state;
  const inUse = new Map<string, number>();
  const yielding = new Map<string, number>();
  const waiting = new Map<string, { gpus: number; n: number }>();
  for (const g of state.granted) {
    inUse.set(g.request.team, (inUse.get(g.request.team) ?? 0) + g.grant.gpus);
    if (g.yieldRequested) yielding.set(g.request.team, (yielding.get(g.request.team) ?? 0) + 1);
  }
  for (const w of state.waiting) {
    const c = waiting.get(w.request.team) ?? { gpus: 0, n: 0 };
    waiting.set(w.request.team, { gpus: c.gpus + w.request.gpus, n: c.n + 1 });
  }
  const teams = [...new Set([...Object.keys(quotas.teams).sort(), ...[...inUse.keys(), ...waiting.keys()].sort()])];
  const quota = (t: string): PoolTeamQuota => quotas.teams[t] ?? { team: t, cohort: '', priority: 0, weight: 1, nominal: 0, borrowingLimit: 0, lendingLimit: 0 };
  const used = (t: string) => inUse.get(t) ?? 0;
  const borrowed = (t: string) => Math.max(0, used(t) - quota(t).nominal);

  // Lent: what borrowers use beyond the unassigned GPUs, attributed to the lenders of their
  // cohort (most idle first, then by name), each up to what it may lend.
  const lent = new Map<string, number>();
  let unassigned = quotas.gpus - Object.values(quotas.teams).reduce((s, t) => s + t.nominal, 0);
  const cohorts = [...new Set(teams.map((t) => quota(t).cohort))].sort();
  for (const c of cohorts) {
    const members = teams.filter((t) => quota(t).cohort === c);
    let rest = members.reduce((s, t) => s + borrowed(t), 0);
    const fromUnassigned = Math.min(rest, Math.max(0, unassigned));
    unassigned -= fromUnassigned;
    rest -= fromUnassigned;
    const lenders = members
      .map((t) => ({ t, can: Math.min(cap(quota(t).lendingLimit), Math.max(0, quota(t).nominal - used(t))) }))
      .sort((a, b) => b.can - a.can || (a.t < b.t ? -1 : 1));
    for (const l of lenders) {
      const n = Math.min(rest, l.can);
      lent.set(l.t, n);
      rest -= n;
    }
  }

  const rows: TeamQuotaStatus[] = teams.map((t) => {
    const q = quota(t);
    return {
      team: t,
      cohort: q.cohort,
      priority: q.priority,
      weight: q.weight,
      nominal: q.nominal,
      borrowingLimit: q.borrowingLimit,
      lendingLimit: q.lendingLimit,
      inUse: used(t),
      borrowed: borrowed(t),
      lent: lent.get(t) ?? 0,
      waiting: waiting.get(t)?.gpus ?? 0,
      waitingLeases: waiting.get(t)?.n ?? 0,
      yielding: yielding.get(t) ?? 0,
    };
  });
  const total = rows.reduce((s, r) => s + r.inUse, 0);
  return { pool: quotas.pool, gpus: quotas.gpus, inUse: total, free: Math.max(0, quotas.gpus - total), teams: rows };
}
