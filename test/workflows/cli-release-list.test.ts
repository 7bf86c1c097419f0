import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { listReleases, type ReleaseListRow } from '../../src/cli/release-list';
import { modelReleaseWorkflow, statusQuery } from '../../workflows';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import { getLocalEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';
import { forgelineProcess } from '../helpers/cli-process';

const forgeline = forgelineProcess;

describe('forgeline release list against the dev server (visibility on search attributes)', function () {
  this.timeout(240_000);

  it('finds a release awaiting approval by model, outcome and --awaiting-approval, as JSON and as a table', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release-list');
    const pool = uniquePool();
    // A model of this test's own, so releases of other tests never match.
    const model = `list-${randomUUID().slice(0, 8)}`;
    const { control, gpu } = split(releaseMocks().mocks);
    const cliEnv = { TEMPORAL_ADDRESS: env.connection.options.address, TEMPORAL_NAMESPACE: 'default' };
    await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ model, gpu: { pool }, approval: { required: true, timeout: '1h' } })] });
      try {
        for (;;) {
          const s = await handle.query(statusQuery).catch(() => undefined);
          if (s?.awaitingApproval) break;
          await sleep(100);
        }
        // Visibility is eventually consistent: wait until the upserted attributes are indexed.
        let rows: ReleaseListRow[] = [];
        for (let i = 0; i < 200 && rows.length === 0; i++) {
          rows = await listReleases(env.client, { model, awaitingApproval: true }, 10);
          if (rows.length === 0) await sleep(100);
        }
        assert.equal(rows.length, 1);

        const json = await forgeline(['release', 'list', '--model', model, '--outcome', 'running', '--awaiting-approval', '--json'], cliEnv);
        assert.equal(json.code, 0, json.stderr);
        const listed = JSON.parse(json.stdout) as ReleaseListRow[];
        assert.equal(listed.length, 1, json.stdout);
        assert.equal(listed[0]!.releaseId, workflowId);
        assert.equal(listed[0]!.model, model);
        assert.equal(listed[0]!.outcome, 'Running');
        assert.equal(listed[0]!.stage, 'approval');
        assert.equal(listed[0]!.awaitingApproval, true);
        assert.equal(listed[0]!.execution, 'RUNNING');
        assert.equal(listed[0]!.closeTime, null);

        const none = await forgeline(['release', 'list', '--model', model, '--outcome', 'Promoted', '--json'], cliEnv);
        assert.equal(none.code, 0, none.stderr);
        assert.deepEqual(JSON.parse(none.stdout), []);

        const table = await forgeline(['release', 'list', '--model', model], cliEnv);
        assert.equal(table.code, 0, table.stderr);
        const lines = table.stdout.trimEnd().split('\n');
        assert.equal(lines.length, 2, table.stdout);
        assert.match(lines[1]!, new RegExp(`^${workflowId.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\s+${model}\\s+Running\\s+approval \\(awaiting approval\\)`));

        const bad = await forgeline(['release', 'list', '--outcome', 'done'], { ...cliEnv, TEMPORAL_ADDRESS: '127.0.0.1:1' });
        assert.equal(bad.code, 2, 'a bad option is refused before any connection');
        assert.match(bad.stderr, /^forgeline: --outcome "done": expected one of /);
      } finally {
        await handle.terminate('test done');
      }
    });
  });
});
