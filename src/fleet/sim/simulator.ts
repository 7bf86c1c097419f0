/**
 * A discrete-event simulation of GPU pools under an admission policy (bench/fleet.ts): jobs arrive,
 * wait, run on a count of GPUs, checkpoint, are preempted by the policy or interrupted on spot
 * pools, and resume from their last checkpoint. Simulated time only: a day runs in about a second.
 *
 * The model, kept small on purpose:
 * - a pool is a number of GPUs (no node packing or topology); the simulator refuses any start that
 *   would exceed it (and checks the total after every step);
 * - a preempted job keeps its GPUs for `yieldSeconds` (checkpoint and exit), then waits again;
 *   preemptions and spot interruptions lose the work since the job's last periodic checkpoint
 *   (all of it for jobs without checkpoints), and a job resumed from a checkpoint first spends
 *   `restartSeconds` loading it;
 * - spot interruptions hit each running job of a spot pool at a rate per GPU-hour, from the job's
 *   own seeded stream, so every policy sees the same interruption process for the same job;
 * - a job that waits again after a preemption or an interruption goes to the back of the queue.
 *
 * Policies decide per pool which waiting jobs start and which running jobs yield; `fcfs` is one
 * shared queue in arrival order (what a single task queue gives), `fcfsBackfill` the same queue
 * letting any job that fits start past a blocked head, `fairShare` is the admission
 * policy of src/fleet/fair-share.ts on the scenario's quota file, and `staticPartition` is the
 * same policy with no borrowing: each team on its nominal GPUs only.
 */
import { decide as fairShareDecide, type AdmissionState } from '../fair-share';
import { poolQuotas, type PoolQuotas, type QuotaFile } from '../../contracts/quota';
import { mulberry32 } from '../../drift/random';
import { generateJobs, JOB_CLASSES, type FleetScenario, type Job, type JobClass } from './workload';

/** A job's life in one simulation. */
export interface JobRecord {
  job: Job;
  /** When it (last) joined the queue, seconds. */
  enqueuedAt: number;
  firstStart?: number;
  finishedAt?: number;
  /** Work kept (checkpointed or finished), seconds. */
  progress: number;
  attempts: number;
  preemptions: number;
  interruptions: number;
  /** GPU-seconds run and then lost (work since the last checkpoint, restart time, the yield). */
  lostGpuSeconds: number;
  /** Seconds spent waiting, over every time it queued. */
  waited: number;
  state: 'waiting' | 'running' | 'finished' | 'pending';
  spot: () => number;
}

export interface Run {
  rec: JobRecord;
  start: number;
  /** Progress when this attempt started. */
  from: number;
  /** Seconds of checkpoint loading before progress resumes. */
  overhead: number;
  /** When it finishes if nothing stops it. */
  end: number;
  /** Set when the policy asked it to yield: when it was asked and when it releases its GPUs. */
  yieldRequestedAt?: number;
  yieldAt?: number;
  token: number;
}

export interface PoolView {
  pool: string;
  capacity: number;
  now: number;
  /** Waiting jobs, in queue order (when they joined the queue). */
  waiting: readonly JobRecord[];
  running: readonly Run[];
}

export interface Policy {
  name: string;
  describe: string;
  decide(view: PoolView): { start: JobRecord[]; preempt: Run[] };
}

/** Jobs in queue order while they fit the free GPUs; with `backfill`, one that does not fit is passed over instead of blocking the rest. */
function arrivalOrder(name: string, describe: string, backfill: boolean): Policy {
  return {
    name,
    describe,
    decide(view) {
      let free = view.capacity - view.running.reduce((s, r) => s + r.rec.job.gpus, 0);
      const start: JobRecord[] = [];
      for (const w of view.waiting) {
        if (w.job.gpus > free) {
          if (backfill) continue;
          break;
        }
        start.push(w);
        free -= w.job.gpus;
      }
      return { start, preempt: [] };
    },
  };
}

/** One shared queue per pool in arrival order: the head starts when its GPUs are free, and everything behind it waits. */
export const fcfs = arrivalOrder('fcfs', 'first come, first served: one queue per pool in arrival order, head-of-line blocking, no quotas, no preemption (one shared task queue)', false);

/** FCFS with backfill: in arrival order, every job that fits the free GPUs starts; a big one at the head does not block smaller ones behind it. */
export const fcfsBackfill = arrivalOrder('fcfs-backfill', 'first come, first served with backfill: in arrival order, any job that fits the free GPUs starts (a big job at the head does not block), no quotas, no preemption', true);

/** The fair-share admission policy (src/fleet/fair-share.ts) on `quotas`, one pool at a time. */
export function quotaPolicy(name: string, describe: string, quotas: QuotaFile): Policy {
  const pools = new Map<string, PoolQuotas>();
  return {
    name,
    describe,
    decide(view) {
      let q = pools.get(view.pool);
      if (!q) pools.set(view.pool, (q = poolQuotas(quotas, view.pool)));
      const byId = new Map<string, JobRecord>(view.waiting.map((w) => [w.job.id, w]));
      const runs = new Map<string, Run>(view.running.map((r) => [r.rec.job.id, r]));
      const request = (j: Job) => ({ leaseId: j.id, team: j.team, pool: j.pool, gpus: j.gpus, priority: j.priority, holder: { workflowId: j.id, stage: j.kind }, preemptible: true });
      const state: AdmissionState = {
        quotas: q,
        granted: view.running.map((r) => ({
          request: request(r.rec.job),
          grant: { leaseId: r.rec.job.id, pool: r.rec.job.pool, team: r.rec.job.team, gpus: r.rec.job.gpus, borrowed: 0, grantedAt: r.start * 1000 },
          ...(r.yieldRequestedAt !== undefined ? { yieldRequested: { at: r.yieldRequestedAt * 1000, reason: 'preempted' } } : {}),
        })),
        waiting: view.waiting.map((w) => ({ request: request(w.job), requestedAt: w.enqueuedAt * 1000 })),
      };
      const d = fairShareDecide(state, view.now * 1000);
      return { start: d.admit.map((g) => byId.get(g.leaseId)!), preempt: d.preempt.map((p) => runs.get(p.leaseId)!) };
    },
  };
}

/** The fair-share policy on the scenario's quotas. */
export const fairShare = (s: FleetScenario): Policy =>
  quotaPolicy('fair-share', 'our admission policy (src/fleet/fair-share.ts): nominal quotas guaranteed, idle GPUs lent within the cohort, borrowers preempted to reclaim', s.quotas);

/** The same policy with every borrowingLimit 0: each team on its own nominal GPUs (static partitioning). */
export const staticPartition = (s: FleetScenario): Policy =>
  quotaPolicy('static-partition', 'static partitioning: each team only on its nominal GPUs (the same policy with borrowingLimit 0), unassigned GPUs idle', {
    ...s.quotas,
    teams: Object.fromEntries(Object.entries(s.quotas.teams).map(([t, team]) => [t, { ...team, quotas: Object.fromEntries(Object.entries(team.quotas).map(([p, q]) => [p, { ...q, borrowingLimit: 0 }])) }])),
  });

interface Event {
  at: number;
  seq: number;
  kind: 'arrive' | 'finish' | 'interrupt' | 'yielded';
  rec?: JobRecord;
  run?: Run;
  token?: number;
}

/** A binary min-heap of events by (time, sequence). */
class EventQueue {
  private heap: Event[] = [];
  private seq = 0;
  get size(): number {
    return this.heap.length;
  }
  push(e: Omit<Event, 'seq'>): void {
    const h = this.heap;
    h.push({ ...e, seq: this.seq++ });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, h[i]!)) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }
  peek(): Event | undefined {
    return this.heap[0];
  }
  pop(): Event | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}
const less = (a: Event, b: Event) => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/** What one simulation leaves: every job's record and the GPU-seconds each pool and team used. */
export interface SimulationResult {
  policy: string;
  horizon: number;
  records: JobRecord[];
  /** GPU-seconds busy within the horizon, per pool and per pool/team. */
  busy: Record<string, number>;
  busyByTeam: Record<string, Record<string, number>>;
  /** The most GPUs in use at once, per pool (never above its GPUs). */
  peak: Record<string, number>;
  /**
   * Per pool and team, GPU-seconds of its nominal quota that it wanted and did not get: at each
   * moment, the GPUs of its waiting jobs that fit, in queue order, within nominal - GPUs it holds.
   */
  shortfall: Record<string, Record<string, number>>;
}

/**
 * Simulate `scenario` under `policy` up to its horizon. Deterministic: the same scenario and
 * policy give the same result. Throws if a policy ever starts more GPUs than a pool has.
 */
export function simulate(scenario: FleetScenario, policy: Policy, jobs: Job[] = generateJobs(scenario)): SimulationResult {
  const { horizon } = scenario;
  const pools = Object.keys(scenario.quotas.pools);
  const capacity = Object.fromEntries(pools.map((p) => [p, scenario.quotas.pools[p]!.gpus]));
  const spot = new Set(scenario.spotPools);
  const events = new EventQueue();
  const waiting = new Map<string, JobRecord[]>(pools.map((p) => [p, []]));
  const running = new Map<string, Run[]>(pools.map((p) => [p, []]));
  const busy: Record<string, number> = Object.fromEntries(pools.map((p) => [p, 0]));
  const busyByTeam: Record<string, Record<string, number>> = Object.fromEntries(pools.map((p) => [p, {}]));
  const peak: Record<string, number> = Object.fromEntries(pools.map((p) => [p, 0]));
  const shortfall: Record<string, Record<string, number>> = Object.fromEntries(pools.map((p) => [p, {}]));
  const nominal = (team: string, pool: string) => scenario.quotas.teams[team]!.quotas[pool]?.nominal ?? 0;
  let token = 0;
  let clock = 0;
  /** Accumulate the quota shortfall of [clock, to): the state is constant between events. */
  const advance = (to: number) => {
    const dt = Math.min(to, horizon) - clock;
    if (dt <= 0) return;
    for (const pool of pools) {
      // Per team: the nominal GPUs it does not hold, filled by its waiting jobs in queue order
      // (a job too big for what is left is skipped: a 4-GPU job cannot use 2 free GPUs of quota).
      const room = new Map<string, number>();
      for (const team of Object.keys(scenario.quotas.teams)) room.set(team, nominal(team, pool));
      for (const r of running.get(pool)!) room.set(r.rec.job.team, (room.get(r.rec.job.team) ?? 0) - r.rec.job.gpus);
      const short = new Map<string, number>();
      for (const w of waiting.get(pool)!) {
        const left = room.get(w.job.team) ?? 0;
        if (w.job.gpus > left) continue;
        room.set(w.job.team, left - w.job.gpus);
        short.set(w.job.team, (short.get(w.job.team) ?? 0) + w.job.gpus);
      }
      for (const [team, gpus] of short) shortfall[pool]![team] = (shortfall[pool]![team] ?? 0) + gpus * dt;
    }
    clock = Math.min(to, horizon);
  };

  const records: JobRecord[] = jobs.map((job) => {
    if (!capacity[job.pool]) throw new Error(`job ${job.id}: pool ${job.pool} is not in the scenario's quota file`);
    const rec: JobRecord = { job, enqueuedAt: job.arrival, progress: 0, attempts: 0, preemptions: 0, interruptions: 0, lostGpuSeconds: 0, waited: 0, state: 'pending', spot: mulberry32(job.spotSeed) };
    if (job.arrival < horizon) events.push({ at: job.arrival, kind: 'arrive', rec });
    return rec;
  });

  /** Account the GPU-seconds of [from, to) within the horizon. */
  const account = (r: Run, from: number, to: number) => {
    const s = Math.max(0, Math.min(from, horizon));
    const e = Math.max(0, Math.min(to, horizon));
    const gpuSeconds = (e - s) * r.rec.job.gpus;
    busy[r.rec.job.pool]! += gpuSeconds;
    const byTeam = busyByTeam[r.rec.job.pool]!;
    byTeam[r.rec.job.team] = (byTeam[r.rec.job.team] ?? 0) + gpuSeconds;
  };

  const enqueue = (rec: JobRecord, now: number) => {
    rec.state = 'waiting';
    rec.enqueuedAt = now;
    waiting.get(rec.job.pool)!.push(rec);
  };

  /** Stop a run at `now` (preempted or interrupted): keep the last checkpoint, lose the rest, queue again. */
  const stop = (r: Run, now: number, why: 'preempted' | 'interrupted') => {
    const list = running.get(r.rec.job.pool)!;
    list.splice(list.indexOf(r), 1);
    r.token = -1;
    const { rec } = r;
    const done = Math.min(rec.job.work, r.from + Math.max(0, now - r.start - r.overhead));
    const ce = rec.job.checkpointEvery;
    const kept = ce > 0 ? Math.max(r.from, Math.floor(done / ce) * ce) : 0;
    rec.progress = kept;
    rec.lostGpuSeconds += (now - r.start - (kept - r.from)) * rec.job.gpus;
    if (why === 'preempted') rec.preemptions++;
    else rec.interruptions++;
    account(r, r.start, now);
    enqueue(rec, now);
  };

  const startRun = (rec: JobRecord, now: number) => {
    const list = waiting.get(rec.job.pool)!;
    list.splice(list.indexOf(rec), 1);
    rec.waited += now - rec.enqueuedAt;
    rec.firstStart ??= now;
    rec.attempts++;
    rec.state = 'running';
    const overhead = rec.progress > 0 ? scenario.restartSeconds : 0;
    const r: Run = { rec, start: now, from: rec.progress, overhead, end: now + overhead + (rec.job.work - rec.progress), token: ++token };
    running.get(rec.job.pool)!.push(r);
    events.push({ at: r.end, kind: 'finish', run: r, token: r.token });
    if (spot.has(rec.job.pool)) {
      // The job's own stream: exponential time to the next interruption at rate λ × its GPUs.
      const hours = -Math.log(1 - rec.spot()) / (scenario.spotInterruptionsPerGpuHour * rec.job.gpus);
      const at = now + Math.max(1, Math.round(hours * 3600));
      if (at < r.end) events.push({ at, kind: 'interrupt', run: r, token: r.token });
    }
  };

  while (events.size > 0 && events.peek()!.at < horizon) {
    const now = events.peek()!.at;
    advance(now);
    while (events.size > 0 && events.peek()!.at === now) {
      const e = events.pop()!;
      if (e.kind === 'arrive') {
        enqueue(e.rec!, now);
        continue;
      }
      const r = e.run!;
      if (r.token !== e.token) continue; // stale: that run already ended
      if (e.kind === 'finish') {
        const list = running.get(r.rec.job.pool)!;
        list.splice(list.indexOf(r), 1);
        r.token = -1;
        account(r, r.start, now);
        r.rec.progress = r.rec.job.work;
        r.rec.finishedAt = now;
        r.rec.state = 'finished';
      } else if (e.kind === 'interrupt') stop(r, now, 'interrupted');
      else stop(r, now, 'preempted');
    }
    for (const pool of pools) {
      const view: PoolView = { pool, capacity: capacity[pool]!, now, waiting: [...waiting.get(pool)!], running: [...running.get(pool)!] };
      const d = policy.decide(view);
      for (const r of d.preempt) {
        if (r.yieldAt !== undefined) continue;
        r.yieldRequestedAt = now;
        r.yieldAt = now + scenario.yieldSeconds;
        events.push({ at: r.yieldAt, kind: 'yielded', run: r, token: r.token });
      }
      for (const rec of d.start) {
        if (rec.state !== 'waiting' || rec.job.pool !== pool) throw new Error(`policy ${policy.name} started ${rec.job.id}, which is not waiting on pool ${pool}`);
        startRun(rec, now);
      }
      const inUse = running.get(pool)!.reduce((s, r) => s + r.rec.job.gpus, 0);
      if (inUse > capacity[pool]!) throw new Error(`policy ${policy.name} put ${inUse} GPUs to work on pool ${pool}, which has ${capacity[pool]} (t=${now}s)`);
      peak[pool] = Math.max(peak[pool]!, inUse);
    }
  }
  // The horizon: account what still runs, and what still waits.
  advance(horizon);
  for (const list of running.values()) for (const r of list) account(r, r.start, horizon);
  for (const list of waiting.values()) for (const rec of list) rec.waited += horizon - rec.enqueuedAt;
  return { policy: policy.name, horizon, records, busy, busyByTeam, peak, shortfall };
}

/** Nearest-rank percentile of an ascending array; null when empty. */
function pct(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

interface DelayStats {
  jobs: number;
  /** Jobs that never started within the day (their wait so far is counted: a lower bound). */
  neverStarted: number;
  p50Minutes: number | null;
  p95Minutes: number | null;
}

function delays(recs: JobRecord[], horizon: number): DelayStats {
  const arrived = recs.filter((r) => r.job.arrival < horizon);
  const xs = arrived.map((r) => ((r.firstStart ?? horizon) - r.job.arrival) / 60).sort((a, b) => a - b);
  const p50 = pct(xs, 50);
  const p95 = pct(xs, 95);
  return { jobs: arrived.length, neverStarted: arrived.filter((r) => r.firstStart === undefined).length, p50Minutes: p50 === null ? null : r1(p50), p95Minutes: p95 === null ? null : r1(p95) };
}

/** The benchmark's view of a simulation: utilisation, shares against quotas, delays, preemptions, losses. */
export function summarize(scenario: FleetScenario, result: SimulationResult) {
  const { horizon, records } = result;
  const pools = Object.keys(scenario.quotas.pools);
  const arrived = records.filter((r) => r.job.arrival < horizon);
  const hours = (s: number) => r1(s / 3600);
  const perPool = Object.fromEntries(
    pools.map((pool) => {
      const gpus = scenario.quotas.pools[pool]!.gpus;
      const used = result.busy[pool]!;
      const teams = Object.fromEntries(
        Object.entries(scenario.quotas.teams)
          .filter(([, t]) => t.quotas[pool])
          .map(([team, t]) => {
            const teamUsed = result.busyByTeam[pool]![team] ?? 0;
            const demand = arrived.filter((r) => r.job.pool === pool && r.job.team === team).reduce((s, r) => s + r.job.work * r.job.gpus, 0);
            return [
              team,
              {
                gpuHours: hours(teamUsed),
                share: used ? r3(teamUsed / used) : 0,
                nominalShare: r3(t.quotas[pool]!.nominal / gpus),
                ofCapacity: r3(teamUsed / (gpus * horizon)),
                demandGpuHours: hours(demand),
                nominalGpuHours: hours(t.quotas[pool]!.nominal * horizon),
                quotaShortfallGpuHours: hours(result.shortfall[pool]![team] ?? 0),
              },
            ];
          }),
      );
      const shortfall = Object.values(result.shortfall[pool]!).reduce((a, b) => a + b, 0);
      return [pool, { gpus, spot: scenario.spotPools.includes(pool), utilization: r3(used / (gpus * horizon)), gpuHours: hours(used), peakGpus: result.peak[pool], quotaShortfallGpuHours: hours(shortfall), teams }];
    }),
  );
  const by = <K extends string>(key: (r: JobRecord) => K, keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, delays(arrived.filter((r) => key(r) === k), horizon)]));
  const lost = arrived.reduce((s, r) => s + r.lostGpuSeconds, 0);
  const classes = JOB_CLASSES.filter((c) => arrived.some((r) => r.job.kind === c));
  return {
    policy: result.policy,
    jobsArrived: arrived.length,
    jobsFinished: arrived.filter((r) => r.state === 'finished').length,
    jobsRunningAtEnd: arrived.filter((r) => r.state === 'running').length,
    jobsWaitingAtEnd: arrived.filter((r) => r.state === 'waiting').length,
    pools: perPool,
    queueingDelay: {
      all: delays(arrived, horizon),
      byClass: by((r) => r.job.kind, classes as JobClass[]),
      byTeam: by((r) => r.job.team, Object.keys(scenario.quotas.teams)),
    },
    preemptions: arrived.reduce((s, r) => s + r.preemptions, 0),
    spotInterruptions: arrived.reduce((s, r) => s + r.interruptions, 0),
    lostGpuHours: hours(lost),
    finishedGpuHours: hours(arrived.filter((r) => r.state === 'finished').reduce((s, r) => s + r.job.work * r.job.gpus, 0)),
  };
}
