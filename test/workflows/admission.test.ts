import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createAdmissionActivities } from '../../activities/admission/leases';
import { admissionWorkflowId, type AdmissionStatus, type GpuAdmissionInput } from '../../src/contracts/admission';
import type { LeaseRequest } from '../../src/contracts/quota';
import { createAdmissionClient } from '../../src/fleet/admission-client';
import { parseQuotaFile } from '../../src/fleet/quota-file';
import { ForgelineError } from '../../src/ports/errors';
import type { GpuAdmission } from '../../src/ports/gpu-admission';
import { finishSignal, holderGrantQuery, leaseHolderWorkflow, type LeaseHolderInput } from '../fixtures/workflows/admission';
import { quotaYaml, writeQuotaFile } from '../helpers/quotas';
import { getLocalEnv, isolate } from '../helpers/temporal';
import { uniquePool } from '../helpers/workers';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
function admissionBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../fixtures/workflows/admission'), logger: new DefaultLogger('WARN') });
  return bundle;
}

interface Ctx {
  env: TestWorkflowEnvironment;
  admission: GpuAdmission;
  taskQueue: string;
  pool: string;
  status(): Promise<AdmissionStatus>;
  holder(input: Omit<LeaseHolderInput, 'pool'>, id: string): ReturnType<TestWorkflowEnvironment['client']['workflow']['start']>;
}

/** A control worker (admission workflow, holder workflows, the real lease activities) on the test's own queue. */
async function withAdmission<T>(test: Mocha.Context, quotas: (pool: string) => string, defaults: Pick<GpuAdmissionInput, 'yieldGrace' | 'holderCheckEvery' | 'maxHistoryEvents'>, fn: (ctx: Ctx) => Promise<T>): Promise<T> {
  const env = await getLocalEnv();
  const { taskQueue } = isolate(test, 'admission');
  const pool = uniquePool();
  const quotaFile = writeQuotaFile(quotas(pool));
  const admission = createAdmissionClient({ client: env.client, taskQueue, quotaFile, workflowDefaults: defaults, waitTickMs: 500 });
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await admissionBundle(), activities: createAdmissionActivities({ admission }) });
  const ctx: Ctx = {
    env,
    admission,
    taskQueue,
    pool,
    // The admission workflow starts with the first acquire.
    status: () => until('the admission workflow', () => admission.status(pool)),
    holder: (input, id) => env.client.workflow.start(leaseHolderWorkflow, { taskQueue, workflowId: `${taskQueue}/${id}`, args: [{ pool, ...input }] }),
  };
  try {
    return await worker.runUntil(fn(ctx));
  } finally {
    await env.client.workflow.getHandle(admissionWorkflowId(pool)).terminate('test over').catch(() => undefined);
  }
}

function req(pool: string, leaseId: string, team: string, gpus: number, o: Partial<LeaseRequest> = {}): LeaseRequest {
  return { leaseId, team, pool, gpus, holder: { workflowId: `holder-${leaseId}`, stage: 'train' }, ...o };
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
const row = (s: AdmissionStatus, team: string) => s.teams.find((t) => t.team === team)!;

describe('gpuAdmissionWorkflow (real Temporal dev server, real lease activities)', function () {
  this.timeout(120_000);

  it('acquire with Update-with-Start, idempotent by leaseId; release idempotent; refused requests name the fix', async function () {
    await withAdmission(this, (p) => quotaYaml(p, 4, 2, 2), {}, async ({ env, admission, pool, status }) => {
      const g = await admission.acquire(req(pool, 'l1', 'a', 2));
      assert.deepEqual({ ...g, grantedAt: 0 }, { leaseId: 'l1', pool, team: 'a', gpus: 2, borrowed: 0, grantedAt: 0 });
      assert.deepEqual(await admission.acquire(req(pool, 'l1', 'a', 2)), g, 'a repeated acquire gets the same grant');
      let s = await status();
      assert.deepEqual([s.inUse, row(s, 'a').inUse, s.leases.length], [2, 2, 1]);
      assert.match(s.source!, /quotas\.yaml$/);
      const meta = await env.client.workflow.getHandle(admissionWorkflowId(pool)).query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      assert.match(meta.currentDetails ?? '', new RegExp(`^\\*\\*GPU pool ${pool}\\*\\*: 2 of 4 GPUs leased`));
      assert.match(meta.currentDetails ?? '', /\| a \| 10 \| 2 \| 2 \| 0 \| 0 \| 0 \(0\) \| 0 \|/);

      assert.deepEqual(await admission.release(pool, 'l1', 'done'), { leaseId: 'l1', was: 'held' });
      assert.deepEqual(await admission.release(pool, 'l1'), { leaseId: 'l1', was: 'none' });
      s = await status();
      assert.equal(s.inUse, 0);
      assert.deepEqual(s.recentlyEnded.map((e) => [e.leaseId, e.how, e.detail]), [['l1', 'released', 'done']]);

      const refused = async (r: LeaseRequest, re: RegExp) =>
        assert.rejects(admission.acquire(r), (err: unknown) => {
          assert.ok(err instanceof ForgelineError && err.terminal, String(err));
          assert.match(err.message, re);
          return true;
        });
      await refused(req(pool, 'l1', 'a', 2), /lease l1 already ended \(released: done\): acquire a new lease ID/);
      await refused(req(pool, 'l2', 'zz', 1), new RegExp(`team zz has no quota on pool ${pool} \\(teams with one: a, b\\).*\\(quota file .*quotas\\.yaml\\)`));
      await refused(req(pool, 'l3', 'a', 3, { preemptible: false }), /non-preemptible lease but team a's nominal quota .* is 2/);
      await refused({ ...req(pool, 'l4', 'a', 0) }, /invalid lease request: gpus: expected at least 1 GPU/);
      assert.equal((await status()).waitingLeases.length, 0, 'refused requests never queue');
    });
  });

  it('a later run of the holder (same workflow ID, new run ID) may use an ended lease ID again; the same run may not', async function () {
    await withAdmission(this, (p) => quotaYaml(p, 4, 2, 2), {}, async ({ admission, pool }) => {
      const run = (runId: string) => req(pool, 'release/m/abc/train/1', 'a', 1, { holder: { workflowId: 'release/m/abc', runId, stage: 'train' } });
      await admission.acquire(run('r1'));
      await admission.release(pool, 'release/m/abc/train/1');
      await assert.rejects(admission.acquire(run('r1')), /already ended \(released\): acquire a new lease ID/);
      const g = await admission.acquire(run('r2'));
      assert.equal(g.leaseId, 'release/m/abc/train/1');
      assert.deepEqual(await admission.release(pool, g.leaseId), { leaseId: g.leaseId, was: 'held' });
    });
  });

  it('a request waits while the pool is full and is granted when GPUs are released; release of a waiting request stops its wait', async function () {
    await withAdmission(this, (p) => quotaYaml(p, 4, 2, 2), {}, async ({ admission, pool, status }) => {
      await admission.acquire(req(pool, 'l1', 'a', 2));
      const g2 = await admission.acquire(req(pool, 'l2', 'a', 2));
      assert.equal(g2.borrowed, 2);
      let settled = false;
      const waiting = admission.acquire(req(pool, 'l3', 'a', 1)).finally(() => (settled = true));
      const stopped = admission.acquire(req(pool, 'l4', 'a', 1)).catch((e: unknown) => e);
      await until('two waiting requests', async () => (await status()).waitingLeases.length === 2);
      assert.equal(settled, false);
      assert.deepEqual([row(await status(), 'a').waiting, row(await status(), 'a').waitingLeases], [2, 2]);
      assert.deepEqual(await admission.release(pool, 'l4', 'cancelled'), { leaseId: 'l4', was: 'waiting' });
      const err = await stopped;
      assert.ok(err instanceof ForgelineError, String(err));
      assert.match(err.message, /lease l4 ended \(released: cancelled\) before it was granted/);
      await admission.release(pool, 'l1');
      const g3 = await waiting;
      assert.deepEqual([g3.leaseId, g3.gpus], ['l3', 1]);
    });
  });

  it('preemption: a team under its quota waits while another borrows; the borrower’s holder gets yieldGpus, releases, and the waiting team is admitted', async function () {
    await withAdmission(this, (p) => quotaYaml(p, 4, 2, 2), {}, async ({ env, pool, status, holder }) => {
      const low = await holder({ team: 'b', gpus: 2, priority: 1 }, 'b-low');
      const high = await holder({ team: 'b', gpus: 2, priority: 5 }, 'b-high');
      await until('b holds 4 GPUs', async () => (await status()).inUse === 4);
      assert.equal(row(await status(), 'b').borrowed, 2);
      assert.equal(row(await status(), 'a').lent, 2);

      const a = await holder({ team: 'a', gpus: 2 }, 'a');
      const lowResult = await low.result();
      assert.match(lowResult.yielded!, new RegExp(`^team a waits for 2 GPU\\(s\\) within its nominal quota of 2 on pool ${pool} while team b borrows`));
      assert.equal(lowResult.released, 'held');
      const grant = await until('a granted', () => env.client.workflow.getHandle(a.workflowId).query(holderGrantQuery));
      assert.deepEqual([grant.team, grant.gpus, grant.borrowed], ['a', 2, 0]);
      const s = await status();
      assert.equal(s.preemptions, 1);
      assert.deepEqual(s.leases.map((l) => l.team).sort(), ['a', 'b']);
      assert.equal(s.leases.find((l) => l.team === 'b')!.leaseId, `${high.workflowId}/hold/1`, 'the higher-priority borrower keeps its lease');
      await Promise.all([high.signal(finishSignal), a.signal(finishSignal)]);
      await Promise.all([high.result(), a.result()]);
      assert.equal((await status()).inUse, 0);
    });
  });

  it('a holder that does not yield within the grace loses its lease (revoked, logged); a holder that closed frees its lease', async function () {
    await withAdmission(this, (p) => quotaYaml(p, 2, 1, 1), { yieldGrace: '2s', holderCheckEvery: '1s' }, async ({ env, pool, status, holder }) => {
      const stubborn = await holder({ team: 'b', gpus: 2, ignoreYield: true }, 'stubborn');
      await until('b holds 2', async () => (await status()).inUse === 2);
      const a = await holder({ team: 'a', gpus: 1 }, 'a');
      await until('a granted', () => env.client.workflow.getHandle(a.workflowId).query(holderGrantQuery));
      let s = await status();
      assert.equal(s.revocations, 1);
      assert.deepEqual(s.recentlyEnded.map((e) => [e.leaseId, e.how]), [[`${stubborn.workflowId}/hold/1`, 'revoked']]);
      await stubborn.signal(finishSignal);
      assert.equal((await stubborn.result()).released, 'none', 'releasing a revoked lease is a no-op');

      await a.terminate('holder crashed');
      s = await until('the closed holder’s lease freed', async () => ((await status()).inUse === 0 ? status() : undefined));
      assert.deepEqual(s.recentlyEnded[0]!.how, 'holder-closed');
      assert.match(s.recentlyEnded[0]!.detail!, /is TERMINATED/);
      void pool;
    });
  });

  it('setQuotas: a bad file is refused naming the field; a new file applies and refuses waiting requests it makes impossible', async function () {
    await withAdmission(this, (p) => quotaYaml(p, 4, 2, 2), {}, async ({ admission, pool, status }) => {
      await admission.acquire(req(pool, 'l1', 'a', 2));
      await admission.acquire(req(pool, 'l2', 'b', 2));
      const doomed = admission.acquire(req(pool, 'l3', 'b', 1)).catch((e: unknown) => e);
      await until('l3 waits', async () => (await status()).waitingLeases.length === 1);

      const bad = { version: 1, pools: { [pool]: { gpus: 4 } }, teams: { a: { quotas: { [pool]: { nominal: 9 } } } } };
      await assert.rejects(admission.apply(bad as never, 'bad.yaml'), new RegExp(`quotas of pool ${pool} refused: invalid quota file: teams\\.a\\.quotas\\.${pool}\\.nominal: nominal 9 \\+ borrowingLimit 0 is more than pool ${pool}'s 4 GPUs: lower it`));
      assert.equal((await status()).source?.endsWith('quotas.yaml'), true, 'a refused file changes nothing');

      const next = parseQuotaFile(`version: 1\npools:\n  ${pool}: { gpus: 4 }\nteams:\n  a:\n    quotas:\n      ${pool}: { nominal: 4 }\n`, 'next.yaml');
      const [after] = await admission.apply(next, 'next.yaml');
      assert.deepEqual([after!.source, row(after!, 'a').nominal, row(after!, 'b').nominal, row(after!, 'b').inUse], ['next.yaml', 4, 0, 2]);
      const err = await doomed;
      assert.ok(err instanceof ForgelineError, String(err));
      assert.match(err.message, new RegExp(`lease l3 refused: team b has no quota on pool ${pool} \\(teams with one: a\\)`));
      assert.deepEqual(await admission.release(pool, 'l2'), { leaseId: 'l2', was: 'held' }, 'leases of a team the file dropped can still be released');
    });
  });

  it('continue-as-new carries the leases and the waiting requests', async function () {
    await withAdmission(this, (p) => quotaYaml(p, 2, 1, 1), { maxHistoryEvents: 40 }, async ({ env, admission, pool, status }) => {
      const handle = env.client.workflow.getHandle(admissionWorkflowId(pool));
      const held = await admission.acquire(req(pool, 'keep', 'a', 1));
      const firstRun = (await handle.describe()).runId;
      const waiting = admission.acquire(req(pool, 'later', 'a', 2));
      for (let i = 0; i < 12; i++) {
        await admission.acquire(req(pool, `churn-${i}`, 'b', 1));
        await admission.release(pool, `churn-${i}`);
      }
      await until('continued as new', async () => (await handle.describe()).runId !== firstRun);
      const s = await status();
      assert.deepEqual(s.leases.map((l) => l.leaseId), ['keep']);
      assert.deepEqual(s.waitingLeases.map((w) => w.leaseId), ['later']);
      assert.deepEqual(await admission.acquire(req(pool, 'keep', 'a', 1)), held, 'the grant survives continue-as-new');
      await admission.release(pool, 'keep');
      const g = await waiting;
      assert.deepEqual([g.leaseId, g.gpus, g.borrowed], ['later', 2, 1]);
    });
  });
});
