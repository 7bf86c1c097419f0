import assert from 'node:assert/strict';
import { Rng } from '../../src/drift/random';
import { decide, overdueYields, status, unsatisfiable, type AdmissionState, type GrantedLease, type WaitingLease } from '../../src/fleet/fair-share';
import type { PoolQuotas, PoolTeamQuota, ResolvedLeaseRequest } from '../../src/contracts/quota';

type TeamSpec = Partial<Omit<PoolTeamQuota, 'team'>>;
function pool(gpus: number, teams: Record<string, TeamSpec>): PoolQuotas {
  const out: Record<string, PoolTeamQuota> = {};
  for (const [team, t] of Object.entries(teams)) {
    const nominal = t.nominal ?? 0;
    out[team] = { team, cohort: 'default', priority: 0, weight: nominal > 0 ? nominal : 1, nominal, borrowingLimit: null, lendingLimit: null, ...t };
  }
  return { pool: 'h200', gpus, teams: out };
}
function req(leaseId: string, team: string, gpus: number, o: Partial<ResolvedLeaseRequest> = {}): ResolvedLeaseRequest {
  return { leaseId, team, pool: 'h200', gpus, priority: 0, preemptible: true, holder: { workflowId: `wf-${leaseId}`, stage: 'train' }, ...o };
}
function held(leaseId: string, team: string, gpus: number, grantedAt = 0, o: Partial<ResolvedLeaseRequest> & { yieldAt?: number } = {}): GrantedLease {
  const { yieldAt, ...r } = o;
  return {
    request: req(leaseId, team, gpus, r),
    grant: { leaseId, pool: 'h200', team, gpus, borrowed: 0, grantedAt },
    ...(yieldAt !== undefined ? { yieldRequested: { at: yieldAt, reason: 'test' } } : {}),
  };
}
function wait(leaseId: string, team: string, gpus: number, requestedAt = 0, o: Partial<ResolvedLeaseRequest> = {}): WaitingLease {
  return { request: req(leaseId, team, gpus, o), requestedAt };
}
const ids = (xs: Array<{ leaseId: string }>) => xs.map((x) => x.leaseId);

describe('fair share: admission policy (Kueue nominal / borrowing / lending)', function () {
  const cases: Array<{ name: string; state: AdmissionState; admit: string[]; preempt?: string[]; borrowed?: Record<string, number> }> = [
    { name: 'within nominal: admitted at once, nothing borrowed', state: { quotas: pool(8, { a: { nominal: 4 }, b: { nominal: 4 } }), granted: [], waiting: [wait('a1', 'a', 4)] }, admit: ['a1'], borrowed: { a1: 0 } },
    { name: 'borrows a lender’s idle GPUs', state: { quotas: pool(8, { a: { nominal: 4 }, b: { nominal: 4 } }), granted: [held('a0', 'a', 2)], waiting: [wait('a1', 'a', 4)] }, admit: ['a1'], borrowed: { a1: 2 } },
    { name: 'borrowingLimit caps borrowing (what the team holds counts)', state: { quotas: pool(8, { a: { nominal: 4, borrowingLimit: 1 }, b: { nominal: 4 } }), granted: [held('a0', 'a', 4)], waiting: [wait('a1', 'a', 2), wait('a2', 'a', 1, 1)] }, admit: ['a2'], borrowed: { a2: 1 } },
    { name: 'a team’s yielding leases still count against its borrowingLimit', state: { quotas: pool(8, { a: { nominal: 2, borrowingLimit: 1 }, b: { nominal: 4 } }), granted: [held('a0', 'a', 2, 0, { yieldAt: 0 })], waiting: [wait('a1', 'a', 3)] }, admit: [] },
    { name: 'lendingLimit keeps part of an idle quota unlent', state: { quotas: pool(8, { a: { nominal: 4 }, b: { nominal: 4, lendingLimit: 1 } }), granted: [held('a0', 'a', 4)], waiting: [wait('a1', 'a', 2), wait('a2', 'a', 1, 1)] }, admit: ['a2'] },
    { name: 'GPUs that are nobody’s nominal quota are lent to anyone', state: { quotas: pool(6, { a: { nominal: 2, lendingLimit: 0 }, b: { nominal: 2, lendingLimit: 0 } }), granted: [], waiting: [wait('b1', 'b', 4)] }, admit: ['b1'], borrowed: { b1: 2 } },
    { name: 'teams of another cohort do not lend', state: { quotas: pool(8, { a: { nominal: 4, cohort: 'x' }, b: { nominal: 4, cohort: 'y' } }), granted: [], waiting: [wait('a1', 'a', 5), wait('a2', 'a', 4, 1)] }, admit: ['a2'] },
    { name: 'a non-preemptible lease never borrows', state: { quotas: pool(8, { a: { nominal: 4 }, b: { nominal: 4 } }), granted: [held('a0', 'a', 4)], waiting: [wait('a1', 'a', 1, 0, { preemptible: false })] }, admit: [] },
    { name: 'team priority first', state: { quotas: pool(4, { lo: { priority: 1 }, hi: { priority: 10 } }), granted: [], waiting: [wait('lo1', 'lo', 4, 0), wait('hi1', 'hi', 4, 9)] }, admit: ['hi1'] },
    { name: 'then fair share (GPUs in use / weight), recomputed as the pass admits', state: { quotas: pool(4, { a: {}, b: {} }), granted: [held('a0', 'a', 2)], waiting: [wait('a1', 'a', 1, 0), wait('a2', 'a', 1, 1), wait('b1', 'b', 1, 2), wait('b2', 'b', 1, 3)] }, admit: ['b1', 'b2'] },
    { name: 'weights scale the share', state: { quotas: pool(4, { a: { weight: 4 }, b: {} }), granted: [held('a0', 'a', 2)], waiting: [wait('a1', 'a', 1, 0), wait('a2', 'a', 1, 1), wait('b1', 'b', 1, 2), wait('b2', 'b', 1, 3)] }, admit: ['b1', 'a1'] },
    { name: 'then FIFO, then lease ID', state: { quotas: pool(2, { a: {} }), granted: [], waiting: [wait('x', 'a', 1, 5), wait('z', 'a', 1, 3), wait('y', 'a', 1, 3)] }, admit: ['y', 'z'] },
    { name: 'a borrowing request that does not fit does not block smaller ones (BestEffortFIFO)', state: { quotas: pool(4, { a: {} }), granted: [held('a0', 'a', 2)], waiting: [wait('big', 'a', 3, 0), wait('small', 'a', 2, 1)] }, admit: ['small'] },
    { name: 'within-nominal requests go before borrowing ones whatever their priority', state: { quotas: pool(4, { hi: { priority: 9 }, lo: { nominal: 2 } }), granted: [held('h0', 'hi', 2)], waiting: [wait('h1', 'hi', 2, 0), wait('l1', 'lo', 2, 5)] }, admit: ['l1'] },
    {
      name: 'reclaim: the borrowers’ lowest-priority, most recent leases are preempted until the request fits',
      state: { quotas: pool(8, { a: { nominal: 4 }, b: { nominal: 4 } }), granted: [held('b4', 'b', 2, 0), held('b1', 'b', 2, 1), held('b2', 'b', 2, 2), held('b3', 'b', 2, 3, { priority: 5 })], waiting: [wait('a1', 'a', 3, 10)] },
      admit: [],
      preempt: ['b2', 'b1'],
    },
    {
      name: 'reclaim takes only from teams above their nominal quota, and only preemptible leases',
      state: { quotas: pool(8, { a: { nominal: 2 }, b: { nominal: 3 }, c: { nominal: 3 } }), granted: [held('c1', 'c', 3, 9), held('b1', 'b', 2, 1), held('b2', 'b', 2, 2, { preemptible: false }), held('b3', 'b', 1, 3)], waiting: [wait('a1', 'a', 2, 10)] },
      admit: [],
      preempt: ['b3', 'b1'],
    },
    {
      name: 'GPUs pending a yield count before preempting more',
      state: { quotas: pool(8, { a: { nominal: 4 }, b: { nominal: 4 } }), granted: [held('b1', 'b', 2, 1, { yieldAt: 5 }), held('b2', 'b', 2, 2, { yieldAt: 5 }), held('b3', 'b', 2, 3), held('b4', 'b', 2, 4)], waiting: [wait('a1', 'a', 3, 10)] },
      admit: [],
      preempt: [],
    },
    {
      name: 'freed GPUs go to the reclaiming team, not to a borrower that waits too',
      state: { quotas: pool(8, { a: { nominal: 4 }, b: { nominal: 4, priority: 50 } }), granted: [held('b3', 'b', 2, 3), held('b4', 'b', 2, 4)], waiting: [wait('b5', 'b', 4, 1), wait('a1', 'a', 3, 10), wait('b6', 'b', 1, 11)] },
      admit: ['a1', 'b6'],
    },
    {
      name: 'a reservation holds its GPUs while the preempted release them',
      state: { quotas: pool(8, { a: { nominal: 4 }, b: { nominal: 4 } }), granted: [held('b1', 'b', 4, 1), held('b2', 'b', 4, 2)], waiting: [wait('a1', 'a', 2, 10), wait('b3', 'b', 1, 11)] },
      admit: [],
      preempt: ['b2'],
    },
    { name: 'unknown teams and impossible requests are skipped', state: { quotas: pool(4, { a: { nominal: 2, borrowingLimit: 1 } }), granted: [], waiting: [wait('x', 'zz', 1), wait('y', 'a', 4), wait('z', 'a', 3, 1)] }, admit: ['z'] },
  ];
  for (const c of cases) {
    it(c.name, function () {
      const d = decide(c.state, 1000);
      assert.deepEqual(ids(d.admit), c.admit, 'admitted');
      assert.deepEqual(ids(d.preempt), c.preempt ?? [], 'preempted');
      for (const g of d.admit) assert.equal(g.grantedAt, 1000);
      for (const [id, b] of Object.entries(c.borrowed ?? {})) assert.equal(d.admit.find((g) => g.leaseId === id)!.borrowed, b, `${id} borrowed`);
      // Deterministic and independent of the order the state lists things in.
      const shuffled = { ...c.state, granted: [...c.state.granted].reverse(), waiting: [...c.state.waiting].reverse() };
      assert.deepEqual(decide(shuffled, 1000), d);
    });
  }

  it('preemption reasons name who waits and who borrows', function () {
    const d = decide({ quotas: pool(4, { a: { nominal: 2 }, b: { nominal: 2 } }), granted: [held('b1', 'b', 4)], waiting: [wait('a1', 'a', 2)] }, 0);
    assert.deepEqual(d.preempt, [{ leaseId: 'b1', reason: 'team a waits for 2 GPU(s) within its nominal quota of 2 on pool h200 while team b borrows (nominal 2): lease b1 of 4 GPU(s) must checkpoint and yield' }]);
  });

  it('unsatisfiable requests name the fix', function () {
    const q = pool(8, { a: { nominal: 2, borrowingLimit: 3 }, b: { nominal: 2 } });
    assert.equal(unsatisfiable(q, req('x', 'a', 5)), null);
    assert.match(unsatisfiable(q, req('x', 'zz', 1))!, /^team zz has no quota on pool h200 \(teams with one: a, b\): add teams\.zz\.quotas\.h200/);
    assert.match(unsatisfiable(q, req('x', 'a', 9))!, /^9 GPUs asked but pool h200 has 8: lower gpu\.count/);
    assert.match(unsatisfiable(q, req('x', 'a', 6))!, /team a may hold at most 5 on pool h200 \(nominal 2, borrowingLimit 3, 6 lendable in cohort default\)/);
    assert.match(unsatisfiable(q, req('x', 'a', 3, { preemptible: false }))!, /non-preemptible lease but team a's nominal quota on pool h200 is 2/);
    assert.match(unsatisfiable(q, { ...req('x', 'a', 1), pool: 'a100' })!, /lease for pool a100 sent to pool h200/);
  });

  it('overdueYields: preempted leases past their grace', function () {
    const granted = [held('a', 'a', 1, 0, { yieldAt: 100 }), held('b', 'a', 1, 0, { yieldAt: 200 }), held('c', 'a', 1)];
    assert.deepEqual(ids(overdueYields({ granted }, 250, 100).map((g) => g.grant)), ['a']);
    assert.deepEqual(ids(overdueYields({ granted }, 300, 100).map((g) => g.grant)), ['a', 'b']);
  });

  it('status: quota, in use, borrowed, lent, waiting per team', function () {
    const s = status({
      quotas: pool(10, { a: { nominal: 4 }, b: { nominal: 4, lendingLimit: 3 } }),
      granted: [held('a1', 'a', 6), held('a2', 'a', 1, 0, { yieldAt: 1 }), held('b1', 'b', 1)],
      waiting: [wait('b2', 'b', 3), wait('b3', 'b', 1), wait('x1', 'x', 2)],
    });
    assert.deepEqual([s.pool, s.gpus, s.inUse, s.free], ['h200', 10, 8, 2]);
    const row = (t: string) => s.teams.find((r) => r.team === t)!;
    assert.deepEqual(s.teams.map((r) => r.team), ['a', 'b', 'x']);
    assert.deepEqual([row('a').inUse, row('a').borrowed, row('a').lent, row('a').waiting, row('a').yielding], [7, 3, 0, 0, 1]);
    // a borrows 3: 2 from the unassigned GPUs, 1 from b.
    assert.deepEqual([row('b').inUse, row('b').borrowed, row('b').lent, row('b').waiting, row('b').waitingLeases], [1, 0, 1, 4, 2]);
    assert.deepEqual([row('x').nominal, row('x').waiting], [0, 2]);
  });

  describe('property: random workloads (seeded)', function () {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      it(`seed ${seed}: never above the pool or a team's nominal + borrowingLimit; preempts only borrowers; a team within nominal is admitted within the yield delay`, function () {
        simulate(seed);
      });
    }
  });
});

/**
 * A random pool, random teams, 300 steps of random arrivals, then releases until it drains; preempted holders
 * release within YIELD_DELAY steps. Checks the invariants after every decision.
 */
function simulate(seed: number): void {
  const rng = new Rng(seed);
  const YIELD_DELAY = 3;
  const gpus = 4 + rng.int(13);
  const nTeams = 2 + rng.int(3);
  const teams: Record<string, TeamSpec> = {};
  let left = gpus - rng.int(3);
  for (let i = 0; i < nTeams; i++) {
    const nominal = Math.min(left, rng.int(Math.ceil(gpus / nTeams) + 1));
    left -= nominal;
    teams[`t${i}`] = {
      nominal,
      priority: rng.int(3),
      cohort: rng.float() < 0.8 ? 'default' : 'other',
      borrowingLimit: rng.float() < 0.5 ? null : rng.int(gpus - nominal + 1),
      lendingLimit: rng.float() < 0.6 ? null : rng.int(nominal + 1),
      ...(rng.float() < 0.3 ? { weight: 1 + rng.int(5) } : {}),
    };
  }
  const quotas = pool(gpus, teams);
  const state: AdmissionState = { quotas, granted: [], waiting: [] };
  const releaseAt = new Map<string, number>();
  const guaranteedSince = new Map<string, number>();
  let next = 0;
  const ARRIVALS = 300;
  for (let step = 0; step < ARRIVALS || state.waiting.length > 0 || state.granted.length > 0; step++) {
    assert.ok(step < 20_000, `seed ${seed}: the run does not drain: ${state.waiting.length} requests still wait`);
    const now = step * 1000;
    // Arrivals, then none, so the run drains (every admissible request is admitted at last).
    if (step < ARRIVALS) {
      for (let k = rng.float() < 0.5 ? 1 : 0; k > 0; k--) {
        const team = `t${rng.int(nTeams)}`;
        const r = req(`l${next++}`, team, 1 + rng.int(Math.min(4, gpus)), { priority: rng.int(3), preemptible: rng.float() < 0.85 });
        if (unsatisfiable(quotas, r) === null) state.waiting.push({ request: r, requestedAt: now });
      }
    }
    // Releases: jobs that finished, and preempted holders that yielded.
    state.granted = state.granted.filter((g) => (releaseAt.get(g.request.leaseId) ?? Infinity) > step);

    // Requests guaranteed now: the team's held GPUs plus its waiting requests up to this one fit its nominal quota.
    for (const w of state.waiting) {
      const t = w.request.team;
      const mine = state.granted.filter((g) => g.request.team === t).reduce((s, g) => s + g.grant.gpus, 0);
      const ahead = state.waiting.filter((o) => o.request.team === t && (o.requestedAt < w.requestedAt || (o.requestedAt === w.requestedAt && o.request.leaseId <= w.request.leaseId))).reduce((s, o) => s + o.request.gpus, 0);
      if (mine + ahead <= quotas.teams[t]!.nominal) {
        if (!guaranteedSince.has(w.request.leaseId)) guaranteedSince.set(w.request.leaseId, step);
      } else guaranteedSince.delete(w.request.leaseId);
    }

    const d = decide(state, now);
    const usedBefore = new Map<string, number>();
    for (const g of state.granted) if (!g.yieldRequested) usedBefore.set(g.request.team, (usedBefore.get(g.request.team) ?? 0) + g.grant.gpus);
    for (const p of d.preempt) {
      const g = state.granted.find((x) => x.request.leaseId === p.leaseId);
      assert.ok(g && !g.yieldRequested && g.request.preemptible, `seed ${seed} step ${step}: preempted ${p.leaseId} must be a held, preemptible lease not already yielding`);
      assert.ok((usedBefore.get(g.request.team) ?? 0) > quotas.teams[g.request.team]!.nominal, `seed ${seed} step ${step}: ${g.request.team} is not borrowing but ${p.leaseId} was preempted`);
      g.yieldRequested = { at: now, reason: p.reason };
      releaseAt.set(p.leaseId, step + 1 + rng.int(YIELD_DELAY));
    }
    for (const grant of d.admit) {
      const i = state.waiting.findIndex((w) => w.request.leaseId === grant.leaseId);
      assert.ok(i >= 0);
      const [w] = state.waiting.splice(i, 1);
      state.granted.push({ request: w!.request, grant });
      releaseAt.set(grant.leaseId, step + 1 + rng.int(25));
      guaranteedSince.delete(grant.leaseId);
    }
    // Invariants.
    const total = state.granted.reduce((s, g) => s + g.grant.gpus, 0);
    assert.ok(total <= gpus, `seed ${seed} step ${step}: ${total} GPUs granted of ${gpus}`);
    for (const [t, q] of Object.entries(quotas.teams)) {
      const mine = state.granted.filter((g) => g.request.team === t);
      const n = mine.reduce((s, g) => s + g.grant.gpus, 0);
      assert.ok(n <= q.nominal + (q.borrowingLimit ?? Infinity), `seed ${seed} step ${step}: team ${t} holds ${n} > nominal ${q.nominal} + borrowingLimit ${q.borrowingLimit}`);
      const firm = mine.filter((g) => !g.request.preemptible).reduce((s, g) => s + g.grant.gpus, 0);
      assert.ok(firm <= q.nominal, `seed ${seed} step ${step}: team ${t}'s non-preemptible leases hold ${firm} > nominal ${q.nominal}`);
    }
    for (const [id, since] of guaranteedSince) {
      assert.ok(step - since <= YIELD_DELAY + 1, `seed ${seed} step ${step}: ${id} within its team's nominal quota has waited since step ${since}`);
    }
  }
}
