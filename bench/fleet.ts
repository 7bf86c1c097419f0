/**
 * Fleet benchmark (npm run bench -- fleet; also `npx tsx bench/fleet.ts`): a simulated day of
 * four teams' GPU work on two pools (src/fleet/sim), under four admission policies on the SAME
 * arrivals and the same spot interruptions:
 *   - fcfs: one shared queue per pool in arrival order, the peer (what a single task queue gives);
 *   - fcfs-backfill: the same queue, but any job that fits the free GPUs starts (a smarter peer);
 *   - fair-share: our admission policy (src/fleet/fair-share.ts) on the scenario's quota file;
 *   - static-partition: the same policy with no borrowing (each team on its nominal GPUs only).
 * Reports per policy: GPU utilisation per pool, each team's GPU-hour share against its nominal
 * share, queueing delay (arrival to first start) p50/p95 per job class and per team, preemptions,
 * spot interruptions, lost GPU-hours, jobs finished. The main seed is reported in full; the same
 * headline numbers over more seeds show how much of a difference is the draw.
 * Results: bench/results/fleet.json.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { runMain } from '../src/cli/run-main';
import { fairShare, fcfs, fcfsBackfill, simulate, staticPartition, summarize } from '../src/fleet/sim/simulator';
import { defaultScenario, generateJobs, JOB_CLASSES } from '../src/fleet/sim/workload';
import { round } from './measure';

const SEED = Number(process.env.FORGELINE_BENCH_FLEET_SEED ?? 13);
const EXTRA_SEEDS = Number(process.env.FORGELINE_BENCH_FLEET_SEEDS ?? 10);

type Summary = ReturnType<typeof summarize>;

function headline(s: Summary) {
  const pools = Object.fromEntries(Object.entries(s.pools).map(([p, v]) => [p, v.utilization]));
  return {
    utilization: pools,
    delayP50Minutes: s.queueingDelay.all.p50Minutes,
    delayP95Minutes: s.queueingDelay.all.p95Minutes,
    evalP95Minutes: s.queueingDelay.byClass.eval?.p95Minutes ?? null,
    trainP95Minutes: s.queueingDelay.byClass.train?.p95Minutes ?? null,
    neverStarted: s.queueingDelay.all.neverStarted,
    quotaShortfallGpuHours: Object.fromEntries(Object.entries(s.pools).map(([p, v]) => [p, v.quotaShortfallGpuHours])),
    preemptions: s.preemptions,
    lostGpuHours: s.lostGpuHours,
    jobsFinished: s.jobsFinished,
  };
}

function runPolicies(seed: number) {
  const scenario = defaultScenario(seed);
  const jobs = generateJobs(scenario);
  const out: Record<string, { summary: Summary; wallMs: number }> = {};
  for (const policy of [fcfs, fcfsBackfill, fairShare(scenario), staticPartition(scenario)]) {
    const t0 = performance.now();
    const result = simulate(scenario, policy, jobs);
    out[policy.name] = { summary: summarize(scenario, result), wallMs: round(performance.now() - t0, 1) };
  }
  return { scenario, jobs, out };
}

export async function fleetBenchmark(): Promise<number> {
  const { scenario, jobs, out } = runPolicies(SEED);
  const policies = [fcfs, fcfsBackfill, fairShare(scenario), staticPartition(scenario)];
  const demand: Record<string, number> = {};
  for (const j of jobs) demand[j.pool] = (demand[j.pool] ?? 0) + (j.work * j.gpus) / 3600;
  const seeds = Array.from({ length: EXTRA_SEEDS }, (_, i) => SEED + 1 + i);
  const bySeed = seeds.map((seed) => {
    const r = runPolicies(seed);
    return { seed, jobs: r.jobs.length, ...Object.fromEntries(Object.entries(r.out).map(([name, v]) => [name, headline(v.summary)])) };
  });
  const result = {
    benchmark: 'fleet',
    what: 'one simulated day of mixed team GPU work (no-op jobs with durations, discrete-event simulation) under four admission policies on the same arrivals and the same spot interruptions; peer: first come, first served (and with backfill)',
    model: [
      'a pool is a count of GPUs (no node packing or topology)',
      'queueing delay = arrival to first start, in minutes; jobs never started within the day count their wait so far (a lower bound) and are counted in neverStarted',
      `a preempted job keeps its GPUs for yieldSeconds (${scenario.yieldSeconds}), then waits again at the back of its queue; preemptions and spot interruptions lose the work since the last periodic checkpoint (all of it for eval/quantize/embed, which do not checkpoint); a job resumed from a checkpoint spends restartSeconds (${scenario.restartSeconds}) loading it`,
      `spot pools: each running job is interrupted at ${scenario.spotInterruptionsPerGpuHour} per GPU-hour, from the job's own seeded stream (the same under every policy); the GPU is replaced at once`,
      'utilisation = GPU-seconds held by jobs (lost work included) / (GPUs × 24 h); share = a team\'s GPU-hours / the pool\'s GPU-hours used',
      'quotaShortfallGpuHours = the integral over the day of the GPUs of a team\'s waiting jobs that fit (in queue order) within its nominal GPUs minus those it holds: nominal quota it wanted and did not get (0 is the guarantee; the yield before a reclaim shows up as a little)',
      'fair-share and static-partition call decide() of src/fleet/fair-share.ts (E1\'s policy, the one the admission workflow runs) at every event; lease priority: eval/quantize 10, embed 5, train 0',
    ],
    scenario: {
      seed: SEED,
      horizonHours: scenario.horizon / 3600,
      quotaFile: scenario.quotas,
      spotPools: scenario.spotPools,
      spotInterruptionsPerGpuHour: scenario.spotInterruptionsPerGpuHour,
      yieldSeconds: scenario.yieldSeconds,
      restartSeconds: scenario.restartSeconds,
      diurnal: 'arrival rate × 1.6 from 09:00 to 18:00, × 0.4 otherwise; embed jobs in bursts (a fan-out within 2 minutes)',
      streams: scenario.streams,
      generator: 'mulberry32 (src/drift/random.ts), one stream per workload stream and per job for spot interruptions',
    },
    jobs: {
      count: jobs.length,
      byClass: Object.fromEntries(JOB_CLASSES.map((c) => [c, jobs.filter((j) => j.kind === c).length])),
      demandGpuHours: Object.fromEntries(Object.entries(demand).map(([p, h]) => [p, round(h, 1)])),
      demandOfCapacity: Object.fromEntries(Object.entries(demand).map(([p, h]) => [p, round(h / (scenario.quotas.pools[p]!.gpus * 24), 3)])),
    },
    peer: 'fcfs',
    otherBaselines: ['fcfs-backfill', 'static-partition'],
    policies: Object.fromEntries(policies.map((p) => [p.name, { describe: p.describe, wallMs: out[p.name]!.wallMs, ...out[p.name]!.summary }])),
    otherSeeds: { seeds, note: 'the same scenario with other seeds: headline numbers only', runs: bySeed },
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    load: { loadavg: os.loadavg().map((x) => round(x, 2)) },
    measuredAt: new Date().toISOString(),
  };
  const file = path.join(__dirname, 'results', 'fleet.json');
  writeFileSync(file, JSON.stringify(result, null, 1) + '\n');
  for (const p of policies) {
    const s = out[p.name]!.summary;
    const util = Object.entries(s.pools).map(([pool, v]) => `${pool} ${(v.utilization * 100).toFixed(1)}%`).join(', ');
    const short = Object.entries(s.pools).map(([pool, v]) => `${pool} ${v.quotaShortfallGpuHours}`).join(', ');
    console.log(`fleet: ${p.name.padEnd(16)} utilisation ${util}; quota shortfall GPU-h ${short}; delay p50/p95 ${s.queueingDelay.all.p50Minutes}/${s.queueingDelay.all.p95Minutes} min (eval p95 ${s.queueingDelay.byClass.eval?.p95Minutes}, train p95 ${s.queueingDelay.byClass.train?.p95Minutes}); ${s.preemptions} preemptions, ${s.spotInterruptions} spot interruptions, ${s.lostGpuHours} GPU-h lost; ${s.jobsFinished}/${s.jobsArrived} finished (${out[p.name]!.wallMs} ms)`);
  }
  console.log(`fleet: wrote ${file}`);
  return 0;
}

if (require.main === module) runMain(fleetBenchmark);
