import assert from 'node:assert/strict';
import { QuotaFileSchema } from '../../src/contracts/quota';
import { fairShare, fcfs, fcfsBackfill, simulate, staticPartition, summarize, type Policy } from '../../src/fleet/sim/simulator';
import { defaultScenario, generateJobs, type FleetScenario, type Job } from '../../src/fleet/sim/workload';

/** The benchmark's scenario over 8 hours (fast enough for a unit test, still contended). */
const short = (seed: number): FleetScenario => ({ ...defaultScenario(seed), horizon: 8 * 3600 });

/** `policy`, checking before each of its decisions that the GPUs in use never exceed the pool's. */
function watched(policy: Policy, s: FleetScenario): Policy & { checks: number } {
  const w = {
    ...policy,
    checks: 0,
    decide(view: Parameters<Policy['decide']>[0]) {
      const inUse = view.running.reduce((n, r) => n + r.rec.job.gpus, 0);
      assert.ok(inUse <= s.quotas.pools[view.pool]!.gpus, `${policy.name}: ${inUse} GPUs in use on ${view.pool} at t=${view.now}`);
      w.checks++;
      return policy.decide(view);
    },
  };
  return w;
}

describe('fleet simulator (bench/fleet.ts)', function () {
  this.timeout(60_000);

  for (const make of [() => fcfs, () => fcfsBackfill, fairShare, staticPartition]) {
    const name = make(short(1)).name;
    it(`${name}: capacity never exceeded, every job accounted for, GPU-hours add up`, function () {
      const s = short(3);
      const jobs = generateJobs(s);
      const policy = watched(make(s), s);
      const r = simulate(s, policy, jobs);
      assert.ok(policy.checks > 100, `only ${policy.checks} decisions`);
      for (const [pool, p] of Object.entries(s.quotas.pools)) assert.ok(r.peak[pool]! <= p.gpus);
      const arrived = r.records.filter((x) => x.job.arrival < s.horizon);
      assert.equal(arrived.length, jobs.filter((j) => j.arrival < s.horizon).length);
      for (const x of arrived) {
        assert.ok(['finished', 'running', 'waiting'].includes(x.state), `${x.job.id} is ${x.state}`);
        if (x.state === 'finished') {
          assert.equal(x.progress, x.job.work);
          assert.ok(x.finishedAt! <= s.horizon && x.firstStart! >= x.job.arrival);
        }
        if (x.state === 'waiting' && x.attempts === 0) assert.equal(x.firstStart, undefined);
        assert.ok(x.lostGpuSeconds >= 0 && x.progress <= x.job.work);
      }
      const sum = summarize(s, r);
      assert.equal(sum.jobsFinished + sum.jobsRunningAtEnd + sum.jobsWaitingAtEnd, sum.jobsArrived);
      for (const [pool, p] of Object.entries(sum.pools)) {
        const teams = Object.values(r.busyByTeam[pool]!).reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(teams - r.busy[pool]!) < 1e-6, `${pool}: teams ${teams} vs pool ${r.busy[pool]}`);
        assert.ok(p.utilization >= 0 && p.utilization <= 1, `${pool} utilisation ${p.utilization}`);
      }
      // What finished used at least its work in GPU time; lost work is on top.
      assert.ok(sum.finishedGpuHours <= Object.values(sum.pools).reduce((a, p) => a + p.gpuHours, 0) + 0.1);
    });
  }

  it('is deterministic for a seed, and another seed draws another day', function () {
    const a = summarize(short(5), simulate(short(5), fairShare(short(5))));
    const b = summarize(short(5), simulate(short(5), fairShare(short(5))));
    assert.deepEqual(a, b);
    assert.notDeepEqual(generateJobs(short(5)).map((j) => j.arrival), generateJobs(short(6)).map((j) => j.arrival));
  });

  it('fcfs starts each pool\'s jobs in queue order (head-of-line blocking)', function () {
    const s = short(7);
    const r = simulate(s, fcfs);
    for (const pool of Object.keys(s.quotas.pools)) {
      const first = r.records.filter((x) => x.job.pool === pool && x.firstStart !== undefined && x.preemptions + x.interruptions === 0);
      const byArrival = [...first].sort((x, y) => x.job.arrival - y.job.arrival || (x.job.id < y.job.id ? -1 : 1));
      const starts = byArrival.map((x) => x.firstStart!);
      for (let i = 1; i < starts.length; i++) assert.ok(starts[i]! >= starts[i - 1]!, `${pool}: ${byArrival[i]!.job.id} started before an earlier arrival`);
    }
  });

  it('a preemption loses the work since the last checkpoint, plus the yield; the job resumes from the checkpoint', function () {
    const quotas = QuotaFileSchema.parse({ version: 1, pools: { p: { gpus: 4 } }, teams: { owner: { quotas: { p: { nominal: 4 } } }, borrower: { quotas: { p: { nominal: 0 } } } } });
    const s: FleetScenario = { seed: 1, horizon: 6 * 3600, quotas, spotPools: [], spotInterruptionsPerGpuHour: 0, yieldSeconds: 60, restartSeconds: 120, streams: [] };
    const job = (id: string, team: string, arrival: number, work: number, checkpointEvery: number): Job => ({ id, team, kind: checkpointEvery ? 'train' : 'eval', pool: 'p', gpus: 4, arrival, work, checkpointEvery, priority: 0, spotSeed: 1 });
    const jobs = [job('train', 'borrower', 0, 3600, 600), job('eval', 'owner', 25 * 60, 600, 0)];
    const r = simulate(s, fairShare(s), jobs);
    const [train, evalJob] = r.records;
    // Preempted at 25 min, GPUs released at 26 min: kept 20 min (last checkpoint), lost 6 min × 4 GPUs.
    assert.equal(train!.preemptions, 1);
    assert.equal(train!.lostGpuSeconds, 6 * 60 * 4);
    assert.equal(evalJob!.firstStart, 26 * 60);
    assert.equal(evalJob!.finishedAt, 36 * 60);
    // Resumed at 36 min: 2 min loading the checkpoint, then the 40 min left.
    assert.equal(train!.finishedAt, 36 * 60 + 120 + 40 * 60);
    // The owner went without its nominal GPUs only during the yield: 60 s × 4 GPUs.
    assert.deepEqual(r.shortfall.p, { owner: 60 * 4 });
    // FCFS on the same jobs: no preemption, the eval waits for the whole training.
    const f = simulate(s, fcfs, jobs);
    assert.equal(f.records[0]!.preemptions, 0);
    assert.equal(f.records[1]!.firstStart, 3600);
    assert.deepEqual(f.shortfall.p, { owner: (3600 - 25 * 60) * 4 });
  });

  it('refuses a policy that starts more GPUs than the pool has', function () {
    const greedy: Policy = { name: 'greedy', describe: 'starts everything', decide: (v) => ({ start: [...v.waiting], preempt: [] }) };
    assert.throws(() => simulate(short(2), greedy), /greedy put \d+ GPUs to work on pool \w+, which has \d+/);
  });
});
