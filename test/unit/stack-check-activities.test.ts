import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createStackCheckActivities, runIdFor } from '../../activities/stack-check';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { LocalTracker, readLocalRun } from '../../src/adapters/local-tracker';
import { ErrorType } from '../../src/contracts/errors';
import type { StackProbeResult } from '../../src/contracts/stack-check';

describe('stack-check activities (MockActivityEnvironment, local adapters)', function () {
  let dir: string;
  let acts: ReturnType<typeof createStackCheckActivities>;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-act-'));
    acts = createStackCheckActivities({
      artifacts: new LocalArtifactStore(pathToFileURL(path.join(dir, 'artifacts')).href),
      tracker: new LocalTracker({ home: dir }),
      trackerProject: 'forgeline',
      workerIdentity: 'unit-test',
    });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a content-addressed payload, a report and a tracker run; a retry writes the same payload', async function () {
    const env = new MockActivityEnvironment();
    const input = { checkId: 'stack-check/cpu/1', pool: 'cpu', payloadBytes: 100_000 };
    const first: StackProbeResult = await env.run(acts.runStackProbe, input);
    const second: StackProbeResult = await env.run(acts.runStackProbe, input);
    assert.equal(first.payloadSha256, second.payloadSha256, 'deterministic payload: retries are idempotent');
    assert.equal(readFileSync(fileURLToPath(first.payloadUri)).length, 100_000);
    const report = JSON.parse(readFileSync(fileURLToPath(first.reportUri), 'utf8')) as { worker: string };
    assert.equal(report.worker, 'unit-test');
    const run = await readLocalRun(fileURLToPath(first.trackerRunUrl));
    assert.equal(run.opens, 2, 'the retry resumed the same run');
    assert.ok(run.history.length >= 1);
    assert.equal(path.basename(fileURLToPath(first.trackerRunUrl)), `${runIdFor(input.checkId)}.jsonl`);
  });

  it('rejects a bad spec as non-retryable InvalidSpec naming each field', async function () {
    const env = new MockActivityEnvironment();
    const err = await env.run(acts.validateStackCheckSpec, { pool: '', timeout: '10 minutes' }).catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure);
    assert.equal(err.type, ErrorType.InvalidSpec);
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /pool: expected a pool name/);
    assert.match(err.message, /timeout: expected a duration such as 30s/);
  });
});
