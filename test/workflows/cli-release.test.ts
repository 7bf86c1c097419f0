import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { ReleaseStatus } from '../../src/contracts/release-lifecycle';
import { clientIdentity } from '../../src/temporal/connection';
import { modelReleaseWorkflow, statusQuery } from '../../workflows';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import { getLocalEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';
import { forgelineProcess } from '../helpers/cli-process';

const forgeline = forgelineProcess;

async function until(handle: WorkflowHandle, pred: (s: ReleaseStatus) => boolean): Promise<void> {
  for (;;) {
    const s = await handle.query(statusQuery).catch(() => undefined);
    if (s && pred(s)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('forgeline release CLI against a real release (dev server, typed mocks)', function () {
  this.timeout(240_000);
  let home: string;
  before(() => (home = mkdtempSync(path.join(os.tmpdir(), 'forgeline-cli-release-'))));
  after(() => rmSync(home, { recursive: true, force: true }));

  it('status --json, a refused and an accepted approve (with the state returned and our identity in the history), watch to Candidate, status once closed without workers', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const { control, gpu } = split(releaseMocks().mocks);
    const cliEnv = { TEMPORAL_ADDRESS: env.connection.options.address, TEMPORAL_NAMESPACE: 'default', FORGELINE_HOME: home };
    const t0 = Date.now();
    const step = (what: string) => process.env.FORGELINE_TEST_VERBOSE && console.error(`${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`);
    await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
      step('workers up');
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool }, approval: { required: true, timeout: '1h' } })] });
      await until(handle, (s) => s.awaitingApproval);
      step('awaiting approval');

      const status = await forgeline(['release', 'status', workflowId, '--json'], cliEnv);
      assert.equal(status.code, 0, status.stderr);
      const report = JSON.parse(status.stdout) as { workflowId: string; execution: string; status: ReleaseStatus };
      assert.equal(report.workflowId, workflowId);
      assert.equal(report.execution, 'RUNNING');
      assert.equal(report.status.awaitingApproval, true);
      assert.equal(report.status.stage, 'approval');

      step('status done');
      const refused = await forgeline(['release', 'approve', workflowId, '--by', 'alice@example.com', '--reason', ' '], cliEnv);
      assert.equal(refused.code, 2, 'a refused decision is a usage error');
      assert.equal(refused.stderr.trimEnd().split('\n').length, 1, refused.stderr);
      assert.match(refused.stderr, /^forgeline: refused, nothing changed: .*reason/);

      step('refused done');
      const approved = await forgeline(['release', 'approve', workflowId, '--by', 'alice@example.com', '--reason', 'eval reviewed'], cliEnv);
      assert.equal(approved.code, 0, approved.stderr);
      assert.match(approved.stdout, new RegExp(`^release ${workflowId} is now approved by alice@example.com / Candidate \\(stage \\w+\\)\\n$`));

      const history = (await handle.fetchHistory()).events ?? [];
      const accepted = history.find((e) => e.workflowExecutionUpdateAcceptedEventAttributes)?.workflowExecutionUpdateAcceptedEventAttributes;
      assert.equal(accepted?.acceptedRequest?.meta?.identity, clientIdentity(), 'the history names the CLI user and host');

      step('approved done');
      const watched = await forgeline(['release', 'watch', workflowId], cliEnv);
      assert.equal(watched.code, 0, watched.stdout + watched.stderr);
      assert.match(watched.stdout, /^release Candidate/m);
      assert.match(watched.stdout, /approved by alice@example.com: eval reviewed/);

      // --json: stdout is NDJSON only; the last event is the result with the exit code.
      const asJson = await forgeline(['release', 'watch', workflowId, '--json'], cliEnv);
      assert.equal(asJson.code, 0, asJson.stdout + asJson.stderr);
      const events = asJson.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { event: string; outcome?: string; exitCode?: number; status?: ReleaseStatus });
      const result = events.at(-1);
      assert.equal(result?.event, 'result');
      assert.equal(result?.outcome, 'Candidate');
      assert.equal(result?.exitCode, 0);
      assert.equal(result?.status?.decision?.by, 'alice@example.com');
    });

    // Closed, and no worker runs its queue any more: the status comes from its memo and search attributes.
    const closed = await forgeline(['release', 'status', workflowId, '--json'], cliEnv);
    assert.equal(closed.code, 0, closed.stderr);
    const after = JSON.parse(closed.stdout) as { execution: string; status: ReleaseStatus };
    assert.equal(after.execution, 'COMPLETED');
    assert.equal(after.status.outcome, 'Candidate');
    assert.equal(after.status.decision?.by, 'alice@example.com');
    assert.equal(after.status.versions.adapter, 'aaaaaaaaaaaa');
  });
});
