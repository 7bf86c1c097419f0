/**
 * The simulated fleet and a day of its teams' work (bench/fleet.ts): GPU pools, teams with quotas
 * (a real quota file, validated by src/contracts/quota.ts), and job arrivals drawn from a seeded
 * generator, so every policy is measured on the same jobs.
 *
 * Job classes: `train` (hours long, several GPUs, a checkpoint every N minutes), `eval` and
 * `quantize` (minutes, one GPU, no checkpoint: an interrupted one starts over) and `embed`
 * (minutes, one GPU, submitted in bursts of tens of jobs, as a re-embed fans out). Arrivals follow
 * a working day: rate × (0.4 off hours, 1.6 from 09:00 to 18:00).
 */
import { mulberry32 } from '../../drift/random';
import { QuotaFileSchema, type QuotaFile } from '../../contracts/quota';

export type JobClass = 'train' | 'eval' | 'quantize' | 'embed';
export const JOB_CLASSES: readonly JobClass[] = ['train', 'eval', 'quantize', 'embed'];

export interface Job {
  id: string;
  team: string;
  kind: JobClass;
  pool: string;
  gpus: number;
  /** Seconds from the start of the day. */
  arrival: number;
  /** Seconds of uninterrupted running it needs. */
  work: number;
  /** Seconds between checkpoints; 0: none (an interruption loses all its progress). */
  checkpointEvery: number;
  /** Within the team: higher is preempted last (lease priority). */
  priority: number;
  /** Seed of the job's own stream of spot interruptions (the same under every policy). */
  spotSeed: number;
}

/** One stream of a team's work: `perDay` jobs (Poisson), or `bursts` a day of `burstSize` jobs each. */
export interface WorkStream {
  team: string;
  kind: JobClass;
  pool: string;
  gpus: number;
  /** Minutes of work, uniform in [lo, hi]. */
  minutes: [number, number];
  perDay?: number;
  bursts?: number;
  burstSize?: [number, number];
  checkpointMinutes?: number;
  priority?: number;
}

export interface FleetScenario {
  seed: number;
  /** Seconds simulated (arrivals over the whole of it). */
  horizon: number;
  quotas: QuotaFile;
  /** Pools whose GPUs are spot: each running job is interrupted at `spotInterruptionsPerGpuHour` per GPU-hour. */
  spotPools: string[];
  spotInterruptionsPerGpuHour: number;
  /** Seconds a preempted job takes to checkpoint and release its GPUs (its GPUs stay busy meanwhile). */
  yieldSeconds: number;
  /** Seconds a resumed job spends loading its checkpoint before it makes progress again. */
  restartSeconds: number;
  streams: WorkStream[];
}

export const DAY = 24 * 3600;

/**
 * The benchmark's fleet: pool `h200` (16 GPUs, on demand) and pool `a10` (32 spot GPUs); four teams
 * of one cohort. `search` and `assistant` ship models (high priority, steady training and
 * evaluation), `research` trains long runs at low priority and borrows what is idle, `platform`
 * re-embeds corpora in bursts.
 */
export function defaultScenario(seed = 13): FleetScenario {
  const quotas = QuotaFileSchema.parse({
    version: 1,
    pools: { h200: { gpus: 16 }, a10: { gpus: 32 } },
    teams: {
      search: { priority: 100, quotas: { h200: { nominal: 6 }, a10: { nominal: 8 } } },
      assistant: { priority: 100, quotas: { h200: { nominal: 6 }, a10: { nominal: 8 } } },
      research: { priority: 0, quotas: { h200: { nominal: 4 }, a10: { nominal: 4 } } },
      platform: { priority: 50, quotas: { a10: { nominal: 8 } } },
    },
  });
  const streams: WorkStream[] = [
    { team: 'search', kind: 'train', pool: 'h200', gpus: 4, minutes: [90, 300], perDay: 5, checkpointMinutes: 30 },
    { team: 'search', kind: 'eval', pool: 'h200', gpus: 1, minutes: [10, 30], perDay: 30, priority: 10 },
    { team: 'search', kind: 'eval', pool: 'a10', gpus: 1, minutes: [5, 20], perDay: 60, priority: 10 },
    { team: 'assistant', kind: 'train', pool: 'h200', gpus: 4, minutes: [120, 420], perDay: 6, checkpointMinutes: 30 },
    { team: 'assistant', kind: 'quantize', pool: 'h200', gpus: 1, minutes: [20, 40], perDay: 10, priority: 10 },
    { team: 'assistant', kind: 'eval', pool: 'a10', gpus: 1, minutes: [5, 20], perDay: 80, priority: 10 },
    { team: 'research', kind: 'train', pool: 'h200', gpus: 4, minutes: [240, 600], perDay: 10, checkpointMinutes: 30 },
    { team: 'research', kind: 'train', pool: 'a10', gpus: 4, minutes: [180, 480], perDay: 6, checkpointMinutes: 20 },
    { team: 'research', kind: 'eval', pool: 'a10', gpus: 2, minutes: [15, 45], perDay: 80, priority: 10 },
    { team: 'platform', kind: 'embed', pool: 'a10', gpus: 1, minutes: [10, 25], bursts: 4, burstSize: [100, 200], priority: 5 },
    { team: 'platform', kind: 'quantize', pool: 'a10', gpus: 2, minutes: [20, 40], perDay: 12, priority: 10 },
  ];
  return { seed, horizon: DAY, quotas, spotPools: ['a10'], spotInterruptionsPerGpuHour: 0.02, yieldSeconds: 60, restartSeconds: 120, streams };
}

/** The working-day rate multiplier at `t` seconds (0.4 off hours, 1.6 from 09:00 to 18:00). */
function diurnal(t: number): number {
  const hour = (t % DAY) / 3600;
  return hour >= 9 && hour < 18 ? 1.6 : 0.4;
}

function poisson(rand: () => number, mean: number): number {
  // Knuth's method; the means here are small (at most a few hundred).
  const l = Math.exp(-mean);
  let k = 0;
  let p = 1;
  for (;;) {
    p *= rand();
    if (p <= l) return k;
    k++;
  }
}

/** A time in [0, horizon) drawn from the diurnal density (rejection sampling). */
function diurnalTime(rand: () => number, horizon: number): number {
  for (;;) {
    const t = rand() * horizon;
    if (rand() * 1.6 < diurnal(t)) return t;
  }
}

/**
 * The jobs of a scenario, sorted by arrival. Deterministic: the same scenario (and seed) gives the
 * same jobs; each stream draws from its own generator, so adding a stream changes no other.
 */
export function generateJobs(s: FleetScenario): Job[] {
  const jobs: Job[] = [];
  s.streams.forEach((w, si) => {
    const rand = mulberry32((s.seed * 1_000_003 + si * 7919) >>> 0);
    const uniform = (lo: number, hi: number) => lo + (hi - lo) * rand();
    const make = (arrival: number, n: number): Job => ({
      id: `${w.team}/${w.kind}/${w.pool}/${si}-${n}`,
      team: w.team,
      kind: w.kind,
      pool: w.pool,
      gpus: w.gpus,
      arrival: Math.floor(arrival),
      work: Math.round(uniform(w.minutes[0], w.minutes[1]) * 60),
      checkpointEvery: (w.checkpointMinutes ?? 0) * 60,
      priority: w.priority ?? 0,
      spotSeed: Math.floor(rand() * 2 ** 32),
    });
    // Days in the horizon, for the per-day rates.
    const days = s.horizon / DAY;
    let n = 0;
    if (w.perDay) {
      const count = poisson(rand, w.perDay * days);
      for (let i = 0; i < count; i++) jobs.push(make(diurnalTime(rand, s.horizon), n++));
    }
    if (w.bursts && w.burstSize) {
      const bursts = poisson(rand, w.bursts * days);
      for (let b = 0; b < bursts; b++) {
        const at = diurnalTime(rand, s.horizon);
        const size = Math.round(uniform(w.burstSize[0], w.burstSize[1]));
        // A fan-out: the burst's jobs within two minutes.
        for (let i = 0; i < size; i++) jobs.push(make(Math.min(s.horizon - 1, at + rand() * 120), n++));
      }
    }
  });
  return jobs.sort((a, b) => a.arrival - b.arrival || (a.id < b.id ? -1 : 1));
}
