import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { getWorkflowBundle } from '../helpers/temporal';

const DIR = path.join(__dirname, 'histories');

function histories() {
  return readdirSync(DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ workflowId: f.replace(/\.json$/, ''), history: historyFromJSON(JSON.parse(readFileSync(path.join(DIR, f), 'utf8'))) }));
}

describe('replay: recorded histories against the current workflow code', function () {
  it('has recorded histories to replay (npm run record-history)', function () {
    assert.ok(histories().length >= 4, `expected recorded histories in ${DIR}`);
  });

  it('replays every recorded history without a determinism error', async function () {
    const workflowBundle = await getWorkflowBundle();
    const failures: string[] = [];
    let replayed = 0;
    for await (const r of Worker.runReplayHistories({ workflowBundle }, histories())) {
      replayed++;
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    assert.equal(replayed, histories().length);
    assert.deepEqual(failures, [], 'a workflow change broke replay: guard it with patched() instead of re-recording');
  });

  it('catches a change in command order (negative control)', async function () {
    const workflowBundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../fixtures/workflows/reordered-stack-check'),
      logger: new DefaultLogger('WARN'),
    });
    const succeeded = histories().find((h) => h.workflowId === 'stack-check-succeeded');
    assert.ok(succeeded);
    const results = [];
    for await (const r of Worker.runReplayHistories({ workflowBundle }, [succeeded])) results.push(r);
    assert.equal(results.length, 1);
    assert.ok(results[0]!.error instanceof DeterminismViolationError, `expected a determinism violation, got ${String(results[0]!.error)}`);
  });

  it('catches a release stage removed without patched() (negative control for modelReleaseWorkflow)', async function () {
    const workflowBundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../fixtures/workflows/unpatched-release'),
      logger: new DefaultLogger('WARN'),
    });
    const candidate = histories().find((h) => h.workflowId === 'release-candidate');
    assert.ok(candidate);
    const results = [];
    for await (const r of Worker.runReplayHistories({ workflowBundle }, [candidate])) results.push(r);
    assert.equal(results.length, 1);
    assert.ok(results[0]!.error instanceof DeterminismViolationError, `expected a determinism violation, got ${String(results[0]!.error)}`);
  });
});
