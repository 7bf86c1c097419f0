import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/activity';
import type { Activities } from '../../activities';
import { checkoutGit, demoReleaseId, startRelease } from '../../src/cli/release';
import { REPO_ROOT } from '../../src/config/load';
import type { ForgelineConfig } from '../../src/config/schema';
import { ErrorType } from '../../src/contracts/errors';
import { ReleaseOutcome } from '../../src/contracts/release-lifecycle';
import { ForgelineLifecycle } from '../../src/contracts/search-attributes';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import { getLocalEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

/** The release spec as a user writes it (JSON), for a unique sha per test. */
function rawSpec(pool: string, sha: string) {
  const spec = releaseSpec({ gpu: { pool }, git: { sha } });
  return JSON.parse(JSON.stringify(spec)) as unknown;
}

describe('starting a release (CLI edge, real dev server): join, never duplicate; restart only a failed one', function () {
  this.timeout(60_000);

  it('joins a running or successful release of the same sha, and starts a failed one again', async function () {
    const env = await getLocalEnv();
    const { taskQueue } = isolate(this, 'release-start');
    const pool = uniquePool();
    const sha = Math.random().toString(16).slice(2, 12).padEnd(10, '0');
    const cfg = { taskQueues: { control: taskQueue }, temporal: { address: 'external:7233', namespace: 'default', uiPort: 0 } } as unknown as ForgelineConfig;
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    const { mocks } = releaseMocks();
    let quantizeCalls = 0;
    const gpu: Partial<Activities> = {
      ...split(mocks).gpu,
      async quantizeModel() {
        // The first release of this sha fails for good in quantize (an infrastructure fault); later ones succeed.
        if (++quantizeCalls === 1) throw ApplicationFailure.nonRetryable('S3 bucket policy denied the upload', ErrorType.InvalidConfig);
        return mocks.quantizeModel.call(undefined);
      },
    };
    await withWorkers(env, { taskQueue, pool, control: split(mocks).control, gpu }, async () => {
      const failed = await startRelease(env.client, cfg, rawSpec(pool, sha), log);
      const failedRun = (await failed.describe()).runId;
      assert.equal(failed.workflowId, `release/demo/${sha}`);
      assert.equal((await failed.describe()).typedSearchAttributes.get(ForgelineLifecycle), 'release');
      await failed.result().catch(() => undefined);

      const retried = await startRelease(env.client, cfg, rawSpec(pool, sha), log);
      const retriedRun = (await retried.describe()).runId;
      assert.notEqual(retriedRun, failedRun, 'a failed release of the same sha starts again');
      // Started again while it runs: the same execution, not a second one.
      const joinedWhileRunning = await startRelease(env.client, cfg, rawSpec(pool, sha), log);
      assert.equal((await joinedWhileRunning.describe()).runId, retriedRun);
      const result = await retried.result();
      assert.equal(result.outcome, ReleaseOutcome.Candidate);

      const joinedAfterSuccess = await startRelease(env.client, cfg, rawSpec(pool, sha), log);
      assert.equal((await joinedAfterSuccess.describe()).runId, retriedRun, 'a successful release is joined, never redone');
      assert.ok(lines.some((l) => /already ran: following it/.test(l)));
    });
    assert.equal(quantizeCalls, 2, 'exactly one release ran after the failed one');
  });

  it('the demo records the checkout sha in its spec and still releases afresh each run', function () {
    const git = checkoutGit(REPO_ROOT);
    if (!git) this.skip(); // not a git checkout (a source tarball)
    const spec = { model: 'tiny-demo', git: { sha: git.sha } } as Parameters<typeof demoReleaseId>[0];
    const a = demoReleaseId(spec);
    const b = demoReleaseId(spec);
    assert.match(a, new RegExp(`^release/tiny-demo/${git.sha.slice(0, 12)}-`));
    assert.notEqual(a, b);
    assert.equal(checkoutGit('/'), undefined);
  });
});
