/**
 * Observability of workers against the real Temporal dev server: the Prometheus endpoint of real
 * worker processes (FORGELINE_METRICS_PORT) serves the SDK's `temporal_*` metrics and Forgeline's
 * `forgeline_*` ones after a stack check, and OpenTelemetry tracing through the SDK interceptors
 * yields one trace from the client's start through the workflow to its activities.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Client } from '@temporalio/client';
import { runStackCheck } from '../../src/cli/check';
import { loadConfig, REPO_ROOT } from '../../src/config/load';
import type { StackCheckResult } from '../../src/contracts/stack-check';
import { createTracing } from '../../src/observability/tracing';
import { createWorker } from '../../workers/build';
import { freePort, tempHome, useWorkerProcesses, workerProcess } from '../helpers/processes';
import { getLocalEnv } from '../helpers/temporal';
import { uniquePool } from '../helpers/workers';

/** `forgeline <args>` as a process, its stdout and stderr apart. */
function forgelineCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(path.join(REPO_ROOT, 'bin', 'forgeline'), args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, timeout: 180_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** The endpoint's text once `ready` accepts it (metrics appear as the worker records them). */
async function scrape(port: number, ready: (text: string) => boolean, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      last = `HTTP ${res.status}\n${await res.text()}`;
      if (res.ok && ready(last)) return last;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`metrics on port ${port} never became ready; last scrape:\n${last.slice(0, 4000)}`);
    await sleep(500);
  }
}

/** The value of the first sample of `metric` whose labels include every `label="value"` given. */
function sample(text: string, metric: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric + '{') && !line.startsWith(metric + ' ')) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('observability (real Temporal dev server)', function () {
  this.timeout(300_000);

  describe('Prometheus endpoint of worker processes', function () {
    const { home, log, procs } = useWorkerProcesses('observability');

    it('serves temporal_* and forgeline_* metrics of a stack check on each worker\'s FORGELINE_METRICS_PORT', async function () {
      const env = await getLocalEnv();
      const pool = uniquePool();
      const [controlPort, gpuPort] = [await freePort(), await freePort()];
      const workerEnv = {
        FORGELINE_HOME: home.dir,
        TEMPORAL_ADDRESS: env.connection.options.address,
        FORGELINE_LOG_LEVEL: 'warn',
        FORGELINE_CONTROL_QUEUE: `observability-${pool}`,
        FORGELINE_GPU_POOL: pool,
        FORGELINE_GPU_COUNT: '1',
        FORGELINE_METRICS_HOST: '127.0.0.1',
        FORGELINE_TRACING: 'off',
        FORGELINE_CONFIG: '',
      };
      procs.push(workerProcess('control', { ...workerEnv, FORGELINE_METRICS_PORT: String(controlPort) }, log));
      procs.push(workerProcess('gpu', { ...workerEnv, FORGELINE_METRICS_PORT: String(gpuPort) }, log));
      const cfg = loadConfig({ env: { ...process.env, ...workerEnv } });
      // Through the CLI: `forgeline check --json` prints the result only, progress on stderr.
      const check = await forgelineCli(['check', '--pool', pool, '--json'], workerEnv);
      assert.equal(check.code, 0, check.stderr);
      const result = JSON.parse(check.stdout) as StackCheckResult;
      assert.equal(result.probe.pool, pool);
      assert.match(check.stderr, /stack check passed/);

      const control = await scrape(controlPort, (t) => /^temporal_workflow_completed\{/m.test(t));
      assert.ok((sample(control, 'temporal_workflow_completed', { workflow_type: 'stackCheckWorkflow', task_queue: cfg.taskQueues.control }) ?? 0) >= 1, control);
      assert.ok((sample(control, 'temporal_activity_execution_latency_count', { activity_type: 'validateStackCheckSpec' }) ?? 0) >= 1, control);
      // Ours, from the same scrape: the control worker owns no GPUs.
      assert.equal(sample(control, 'forgeline_gpus', { worker_kind: 'control' }), 0, control);

      const gpu = await scrape(gpuPort, (t) => /^temporal_activity_execution_latency_count\{/m.test(t));
      assert.ok((sample(gpu, 'temporal_activity_execution_latency_count', { activity_type: 'runStackProbe', task_queue: `gpu-${pool}` }) ?? 0) >= 1, gpu);
      assert.equal(sample(gpu, 'temporal_workflow_completed', { workflow_type: 'stackCheckWorkflow' }), undefined, 'a GPU worker runs no workflows');
      assert.equal(sample(gpu, 'forgeline_gpus', { worker_kind: 'gpu', task_queue: `gpu-${pool}` }), 1, gpu);
      assert.equal(sample(gpu, 'forgeline_gpus_in_use', { worker_kind: 'gpu' }), 0, gpu);
    });
  });

  describe('OpenTelemetry tracing', function () {
    const home = tempHome('tracing');
    after(() => home.cleanup());

    it('one trace: the client\'s start, the workflow, and its activities on the control and GPU workers', async function () {
      const env = await getLocalEnv();
      const pool = uniquePool();
      const cfg = loadConfig({
        env: { ...process.env, FORGELINE_HOME: home.dir, TEMPORAL_ADDRESS: env.connection.options.address, FORGELINE_CONTROL_QUEUE: `tracing-${pool}`, FORGELINE_GPU_POOL: pool, FORGELINE_GPU_COUNT: '1', FORGELINE_CONFIG: '' },
      });
      const exporter = new InMemorySpanExporter();
      const tracing = createTracing({ serviceName: 'forgeline-test', mode: 'console', spanProcessor: new SimpleSpanProcessor(exporter) });
      // The control worker bundles workflows/ itself, with the tracing interceptors in the bundle.
      const control = await createWorker('control', cfg, { connection: env.nativeConnection, tracing });
      const gpu = await createWorker('gpu', cfg, { connection: env.nativeConnection, tracing });
      const client = new Client({ connection: env.connection, namespace: env.namespace ?? 'default', interceptors: tracing.clientInterceptors });
      let spans: ReadableSpan[] = [];
      const names = () => spans.map((s) => s.name);
      try {
        await control.worker.runUntil(() =>
          gpu.worker.runUntil(async () => {
            await runStackCheck(client, cfg, { pool, payloadBytes: 1024 }, () => undefined);
            // Workflow spans leave the sandbox through a sink after the workflow task completes.
            const deadline = Date.now() + 30_000;
            for (;;) {
              spans = exporter.getFinishedSpans();
              if (names().includes('RunWorkflow:stackCheckWorkflow') || Date.now() > deadline) break;
              await sleep(200);
            }
          }),
        );
      } finally {
        await control.close();
        await gpu.close();
      }
      spans = exporter.getFinishedSpans();
      await tracing.shutdown();
      for (const name of ['StartWorkflow:stackCheckWorkflow', 'RunWorkflow:stackCheckWorkflow', 'StartActivity:validateStackCheckSpec', 'RunActivity:validateStackCheckSpec', 'StartActivity:runStackProbe', 'RunActivity:runStackProbe']) {
        assert.ok(names().includes(name), `no ${name} span; got ${names().join(', ')}`);
      }
      const traceIds = new Set(spans.filter((s) => /stackCheckWorkflow|StackCheckSpec|runStackProbe/.test(s.name)).map((s) => s.spanContext().traceId));
      assert.equal(traceIds.size, 1, `expected one trace, got ${traceIds.size}: ${names().join(', ')}`);
      // The chain: client start → workflow run → activity scheduled by it → activity run on the GPU worker.
      const byName = (name: string) => spans.find((s) => s.name === name)!;
      const parentOf = (name: string) => byName(name).parentSpanId;
      assert.equal(parentOf('RunWorkflow:stackCheckWorkflow'), byName('StartWorkflow:stackCheckWorkflow').spanContext().spanId);
      assert.equal(parentOf('StartActivity:runStackProbe'), byName('RunWorkflow:stackCheckWorkflow').spanContext().spanId);
      assert.equal(parentOf('RunActivity:runStackProbe'), byName('StartActivity:runStackProbe').spanContext().spanId);
      const run = byName('RunActivity:runStackProbe');
      assert.equal(run.resource.attributes['service.name'], 'forgeline-test');
    });
  });
});
