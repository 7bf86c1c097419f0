import assert from 'node:assert/strict';
import path from 'node:path';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import { createAdmissionActivities } from '../../activities/admission/leases';
import { formatQuotaStatus } from '../../src/cli/quota';
import { admissionWorkflowId, type AdmissionStatus } from '../../src/contracts/admission';
import { createAdmissionClient } from '../../src/fleet/admission-client';
import { forgelineProcess } from '../helpers/cli-process';
import { quotaYaml, writeQuotaFile } from '../helpers/quotas';
import { getLocalEnv, isolate } from '../helpers/temporal';
import { uniquePool } from '../helpers/workers';

describe('forgeline quota (real Temporal dev server)', function () {
  this.timeout(180_000);

  it('validate names each problem with its field and line (exit 2) and passes a good file (exit 0)', async function () {
    const bad = writeQuotaFile('version: 1\npools:\n  h200: { gpus: 4 }\nteams:\n  a:\n    quotas:\n      h200: { nominal: 5 }\n      a100: { nominal: 1 }\n');
    const r = await forgelineProcess(['quota', 'validate', bad], {});
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /teams\.a\.quotas\.h200\.nominal \(line 7\): nominal 5 \+ borrowingLimit 0 is more than pool h200's 4 GPUs: lower it/);
    assert.match(r.stderr, /teams\.a\.quotas\.a100 \(line 8\): unknown pool a100: declare it under pools/);
    assert.match(r.stderr, /pools\.h200\.gpus \(line 3\): the teams' nominal quotas of pool h200 add up to 5 GPUs/);
    const good = await forgelineProcess(['quota', 'validate', writeQuotaFile(quotaYaml('h200', 4, 2, 2))], {});
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /valid \(1 pool\(s\), 2 team\(s\)\)/);
  });

  it('apply starts the pool’s admission workflow with the file; status shows quota, in use, borrowed, lent and waiting per team', async function () {
    const env = await getLocalEnv();
    const { taskQueue } = isolate(this, 'quota-cli');
    const pool = uniquePool();
    const file = writeQuotaFile(quotaYaml(pool, 4, 2, 2));
    const admission = createAdmissionClient({ client: env.client, taskQueue, quotaFile: file, waitTickMs: 500 });
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../fixtures/workflows/admission'), logger: new DefaultLogger('WARN') });
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle, activities: createAdmissionActivities({ admission }) });
    const cliEnv = { TEMPORAL_ADDRESS: env.connection.options.address, TEMPORAL_NAMESPACE: 'default', FORGELINE_CONTROL_QUEUE: taskQueue };
    try {
      await worker.runUntil(async () => {
        const applied = await forgelineProcess(['quota', 'apply', file], cliEnv);
        assert.equal(applied.code, 0, applied.stderr);
        assert.match(applied.stdout, new RegExp(`applied .*quotas\\.yaml to ${pool}`));
        await admission.acquire({ leaseId: 'l1', team: 'a', pool, gpus: 3, holder: { workflowId: 'h1', stage: 'train' } });
        void admission.acquire({ leaseId: 'l2', team: 'a', pool, gpus: 2, holder: { workflowId: 'h2', stage: 'train' } }).catch(() => undefined);
        let json: AdmissionStatus[] = [];
        for (let i = 0; json[0]?.waitingLeases.length !== 1; i++) {
          assert.ok(i < 100, 'l2 never waited');
          const st = await forgelineProcess(['quota', 'status', '--pool', pool, '--json'], cliEnv);
          assert.equal(st.code, 0, st.stderr);
          json = JSON.parse(st.stdout) as AdmissionStatus[];
        }
        assert.equal(json[0]!.source, path.resolve(file));
        const a = json[0]!.teams.find((t) => t.team === 'a')!;
        const b = json[0]!.teams.find((t) => t.team === 'b')!;
        assert.deepEqual([a.nominal, a.inUse, a.borrowed, a.waiting, a.waitingLeases], [2, 3, 1, 2, 1]);
        assert.deepEqual([b.nominal, b.inUse, b.lent], [2, 0, 1]);
        const table = await forgelineProcess(['quota', 'status', '--pool', pool], cliEnv);
        assert.equal(table.code, 0, table.stderr);
        assert.deepEqual(table.stdout.trimEnd().split('\n'), formatQuotaStatus(json));
        assert.match(table.stdout, new RegExp(`^${pool}\\s+a\\s+10\\s+2\\s+-\\s+3\\s+1\\s+0\\s+2 \\(1\\)\\s+0$`, 'm'));

        const bad = writeQuotaFile(quotaYaml(pool, 4, 3, 3));
        const refused = await forgelineProcess(['quota', 'apply', bad], cliEnv);
        assert.equal(refused.code, 2, refused.stdout);
        assert.match(refused.stderr, /pools\.\w+\.gpus \(line 3\): the teams' nominal quotas of pool \w+ add up to 6 GPUs \(a 3, b 3\), more than its 4/);
        const none = await forgelineProcess(['quota', 'status', '--pool', 'nosuchpool'], cliEnv);
        assert.match(none.stdout, /pool nosuchpool: no admission workflow yet/);
      });
    } finally {
      await env.client.workflow.getHandle(admissionWorkflowId(pool)).terminate('test over').catch(() => undefined);
    }
  });

  it('formatQuotaStatus: a row per team and one for the pool', function () {
    const s = { pool: 'h200', gpus: 8, inUse: 5, free: 3, teams: [{ team: 'search', cohort: 'default', priority: 100, weight: 4, nominal: 4, borrowingLimit: 2, lendingLimit: null, inUse: 5, borrowed: 1, lent: 0, waiting: 0, waitingLeases: 0, yielding: 1 }], leases: [], waitingLeases: [], recentlyEnded: [], preemptions: 0, revocations: 0 } satisfies AdmissionStatus;
    assert.deepEqual(formatQuotaStatus([s]), [
      'POOL  TEAM    PRIORITY  NOMINAL  BORROW LIMIT  IN USE  BORROWED  LENT  WAITING  YIELDING',
      'h200  search  100       4        2             5       1         0     0        1',
      'h200  (pool)            8                      5                       0',
    ]);
  });
});
