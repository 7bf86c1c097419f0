import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { LocalTracker, localRunPath } from '../../src/adapters/local-tracker';
import { driftMonitorWorkflowId } from '../../src/contracts/drift-monitor';
import { trackerRunId, type ReleaseStatus } from '../../src/contracts/release-lifecycle';
import { collectReleaseReport } from '../../src/report/collect';
import { renderReleaseReport } from '../../src/report/render';
import { approveUpdate, modelReleaseWorkflow, statusQuery } from '../../workflows';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import { badCandidateTraffic, servingWorld, type TrafficScript } from '../fixtures/serving';
import { forgelineProcess as forgeline } from '../helpers/cli-process';
import { tempHome } from '../helpers/processes';
import { getLocalEnv, getTimeSkippingEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

async function until(handle: WorkflowHandle, pred: (s: ReleaseStatus) => boolean): Promise<void> {
  for (;;) {
    const s = await handle.query(statusQuery).catch(() => undefined);
    if (s && pred(s)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('release report from a real release run (Temporal dev server, typed mock activities)', function () {
  this.timeout(120_000);

  it('collects loss, eval, quantization and the decision trail naming the approver, and renders them', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this, 'release');
    const pool = uniquePool();
    const home = tempHome('report');
    try {
      // The tracker run is real (local JSONL): the mocked train stage logs its loss as run-recipe does.
      const tracker = new LocalTracker({ home: home.dir });
      const { mocks } = releaseMocks();
      // The run id and project the release's own run has, so `forgeline report` finds it from the config.
      const runOf = () => tracker.openRun({ runId: trackerRunId(workflowId), project: 'forgeline' });
      const withTracker: typeof mocks = {
        ...mocks,
        async openReleaseRun() {
          const run = await runOf();
          await run.flush();
          return { runId: run.runId, url: run.url };
        },
        async trainAdapter(...args) {
          const run = await runOf();
          for (let step = 1; step <= 40; step++) await run.log({ 'train/step': step, 'train/loss': 2 / step + 0.7 }, step);
          await run.flush();
          return mocks.trainAdapter(...args);
        },
      };
      const { control, gpu } = split(withTracker);
      let html = '';
      await withWorkers(env, { taskQueue, pool, control, gpu }, async () => {
        const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [releaseSpec({ gpu: { pool }, approval: { required: true, timeout: '1h' } })] });
        await until(handle, (s) => s.awaitingApproval);
        await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice@example.com', reason: 'eval <table> reviewed & fine' }] });
        await handle.result();

        const data = await collectReleaseReport(env.client, workflowId, { now: () => new Date('2026-12-03T00:00:00Z') });
        assert.equal(data.model, 'demo');
        assert.equal(data.executionStatus, 'COMPLETED');
        assert.equal(data.outcome, 'Candidate');
        assert.equal(data.training.loss.length, 40);
        assert.deepEqual(data.training.loss[0], { step: 1, loss: 2.7 });
        assert.equal(data.training.finalLoss, 0.8, "the train stage's own final loss");
        assert.deepEqual(data.quantization, { method: 'gptq', bits: 4, sizeBeforeBytes: 1000, sizeAfterBytes: 400, seconds: 1 });
        assert.equal(data.evaluation?.comparator, 'base');
        assert.deepEqual(data.evaluation?.gates, [{ gate: 'exact_match >= 0.5', passed: true, reason: 'exact_match 0.7 >= 0.5' }]);
        assert.equal(data.canary, undefined, 'no serving section, no canary');

        // The decision trail, from the history: the approve Update with who and why, after the gates.
        const approve = data.trail.find((t) => t.kind === 'update');
        assert.ok(approve, JSON.stringify(data.trail));
        assert.equal(approve.title, 'Update approve');
        assert.equal(approve.by, 'alice@example.com');
        assert.equal(approve.reason, 'eval <table> reviewed & fine');
        assert.equal(approve.result, 'completed');
        assert.equal(approve.decisive, true);
        const kinds = data.trail.map((t) => t.kind);
        assert.deepEqual(kinds, ['started', 'gates', 'update', 'closed']);
        assert.ok(data.trail.every((t, i) => i === 0 || t.at >= data.trail[i - 1]!.at), 'in history order');

        html = renderReleaseReport(data);
      });
      assert.match(html, /<td class="by">alice@example\.com<\/td>/);
      assert.match(html, /Update approve/);
      assert.match(html, /eval &lt;table&gt; reviewed &amp; fine/, "the operator's text is escaped");
      assert.match(html, /<strong id="size-before">1000 B<\/strong> → <strong id="size-after">400 B<\/strong>/);
      assert.equal(html.match(/<svg class="chart"/g)?.length, 4, 'loss, eval CI, eval Δ, quantization');
      assert.ok(readFileSync(localRunPath(home.dir, 'forgeline', trackerRunId(workflowId)), 'utf8').includes('train/loss'));

      // The command: the same report from the config (Temporal address, FORGELINE_HOME's tracker run).
      const cliEnv = { TEMPORAL_ADDRESS: env.connection.options.address, TEMPORAL_NAMESPACE: 'default', FORGELINE_HOME: home.dir, FORGELINE_TRACKER: 'local', WANDB_PROJECT: 'forgeline' };
      const file = path.join(home.dir, 'report.html');
      const ok = await forgeline(['report', workflowId, '--out', file, '--json'], cliEnv);
      assert.equal(ok.code, 0, ok.stderr);
      assert.deepEqual(JSON.parse(ok.stdout), { releaseId: workflowId, file, outcome: 'Candidate', decisions: 2 });
      const written = readFileSync(file, 'utf8');
      assert.match(written, /<td class="by">alice@example\.com<\/td>/);
      assert.match(written, /source: local tracker run /);
      const unknown = await forgeline(['report', 'release/nope/0000000', '--out', path.join(home.dir, 'x.html')], cliEnv);
      assert.equal(unknown.code, 2, unknown.stderr);
      assert.match(unknown.stderr, /no release release\/nope\/0000000/);
    } finally {
      home.cleanup();
    }
  });

  /** A release with a canary on the time-skipping server; returns its report's data once it ended. */
  async function canaryRelease(ctx: Mocha.Context, opts: { traffic?: TrafficScript; monitor?: boolean } = {}) {
    // With a monitor: the real-time dev server and second-long timers (the monitor's hourly chain on the
    // shared time-skipping server would leave its clock to the tests that follow).
    const env = opts.monitor ? await getLocalEnv() : await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(ctx, 'release');
    const pool = uniquePool();
    const { mocks } = releaseMocks();
    const { control, gpu } = split(mocks);
    const drift = (n: number) => ({ input: { method: 'model', drifted: n === 2, score: [0.51, 0.53, 0.58][n] ?? 0.5, threshold: 0.55 }, errorRate: n / 100 });
    const { mocks: serving } = servingWorld({ ...(opts.traffic ? { traffic: opts.traffic } : {}), drift });
    return withWorkers(env, { taskQueue, pool, control: { ...control, ...serving }, gpu }, async () => {
      // The monitor checks every second for 20 s, one check per run (continue-as-new after each).
      const timing = opts.monitor
        ? { canary: { steps: [50, 100], bake: '1s' }, keepPrevious: '1s', monitor: { enabled: true, every: '1s', checksPerRun: 1, duration: '20s', onBreach: 'alert' as const } }
        : { canary: { steps: [5, 25, 50, 100], bake: '10m' }, keepPrevious: '1h', monitor: { enabled: false } };
      const spec = releaseSpec({ gpu: { pool }, serving: { baseModel: 'tiny-base', ...timing } });
      const handle = await env.client.workflow.start(modelReleaseWorkflow, { taskQueue, workflowId, args: [spec] });
      await handle.result().catch(() => undefined);
      if (opts.monitor) await env.client.workflow.getHandle(driftMonitorWorkflowId('demo', workflowId)).result();
      return collectReleaseReport(env.client, workflowId);
    });
  }

  it("drift over time: every check of the release's drift monitor, across its continue-as-new runs, in order", async function () {
    const data = await canaryRelease(this, { monitor: true });
    assert.equal(data.outcome, 'Promoted');
    assert.equal(data.drift?.monitorWorkflowId, driftMonitorWorkflowId('demo', data.releaseId));
    // Real time: how many checks fit in 20 s depends on the machine's load; at least two runs' worth.
    const checks = data.drift?.checks.map((c) => [c.score, c.threshold, c.errorRate]) ?? [];
    assert.ok(checks.length >= 2, `checks from more than one monitor run: ${JSON.stringify(checks)}`);
    const expected = [0.51, 0.53, 0.58].map((score, n) => [score, 0.55, n / 100]);
    assert.deepEqual(checks.slice(0, 3), expected.slice(0, Math.min(3, checks.length)));
    const html = renderReleaseReport(data);
    assert.match(html, /<section id="drift">[\s\S]*<svg class="chart"[\s\S]*0\.53 \/ 0\.55/);
  });

  it('a canary that passes: every step with its weight, per-metric figures and Pass verdict, recomputed from the recorded windows', async function () {
    const data = await canaryRelease(this);
    assert.equal(data.outcome, 'Promoted');
    assert.equal(data.canary?.stable, 'demo@base');
    assert.equal(data.canary?.candidate, 'demo@aaaaaaaaaaaa');
    assert.deepEqual(
      data.canary?.steps.map((s) => [s.step, s.weight, s.bake, s.verdict]),
      [
        [1, 5, 1, 'Pass'],
        [2, 25, 1, 'Pass'],
        [3, 50, 1, 'Pass'],
        [4, 100, 1, 'Pass'],
      ],
    );
    assert.deepEqual(data.canary?.steps[0]?.metrics.map((m) => m.metric), ['error_rate', 'latency_p95', 'feedback_score']);
    const html = renderReleaseReport(data);
    assert.equal(html.match(/<span class="verdict Pass" style/g)?.length, 4);
  });

  it('a canary that fails: the failing analysis is the decisive entry of the trail, and the release ended RolledBack', async function () {
    const data = await canaryRelease(this, { traffic: badCandidateTraffic });
    assert.equal(data.executionStatus, 'FAILED');
    assert.equal(data.outcome, 'RolledBack');
    assert.match(data.failure ?? '', /^canary failed at step 1 \(5%\)/);
    assert.deepEqual(data.canary?.steps.map((s) => [s.step, s.weight, s.verdict]), [[1, 5, 'Fail']]);
    const decisive = data.trail.filter((t) => t.decisive).map((t) => t.kind);
    assert.deepEqual(decisive, ['canary-analysis', 'closed']);
    assert.match(data.trail.find((t) => t.kind === 'canary-analysis')!.title, /canary step 1 \(5%\), bake 1: Fail/);
  });
});
