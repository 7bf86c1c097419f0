/**
 * The dev stack's autoscaler against the real Temporal dev server: a pool at zero workers, stack
 * checks queued on its `gpu-<pool>` queue, real GPU worker processes (workers/gpu-worker.ts, started
 * the way `forgeline dev` starts them) brought up from the backlog, the backlog drained, then the
 * pool back at zero once the cooldown has passed, every process gone.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from '@temporalio/worker';
import { createStackCheckActivities } from '../../activities/stack-check';
import { startGpuWorkerProcess } from '../../src/cli/stack';
import { AutoscalePoolSchema } from '../../src/config/schema';
import type { StackCheckResult } from '../../src/contracts/stack-check';
import { Autoscaler, autoscalerStatusFile, readBacklog, type ScaledWorker } from '../../src/fleet/autoscaler';
import { forgelineProcess } from '../helpers/cli-process';
import { useWorkerProcesses } from '../helpers/processes';
import { getLocalEnv, getWorkflowBundle, isolate } from '../helpers/temporal';
import { until } from '../helpers/until';
import { uniquePool } from '../helpers/workers';

describe('autoscaler of GPU worker processes (real Temporal dev server, real worker processes)', function () {
  this.timeout(300_000);
  const { home, log } = useWorkerProcesses('autoscaler');

  it('scales a pool from 0 on its backlog, drains it, and back to 0 after the cooldown', async function () {
    const env = await getLocalEnv();
    const pool = uniquePool();
    const { taskQueue, workflowId } = isolate(this);
    const policy = AutoscalePoolSchema.parse({ min: 0, max: 2, targetQueueSize: 1, cooldownSeconds: 4, stabilizationSeconds: 2 });
    const workerEnv: NodeJS.ProcessEnv = {
      ...process.env,
      FORGELINE_HOME: home.dir,
      TEMPORAL_ADDRESS: env.connection.options.address,
      FORGELINE_LOG_LEVEL: 'warn',
      FORGELINE_TRACING: 'off',
      FORGELINE_CONFIG: '',
      FORGELINE_SHUTDOWN_GRACE: '5s',
      FORGELINE_PARENT_PID: String(process.pid),
    };
    const started: ScaledWorker[] = [];
    const exits: Array<number | null> = [];
    const autoscaler = new Autoscaler({
      client: env.client,
      namespace: env.namespace ?? 'default',
      pools: { [pool]: policy },
      intervalMs: 500,
      statusFile: autoscalerStatusFile(home.dir),
      log: (l) => log.push(l),
      start: (p, pol) => {
        const w = startGpuWorkerProcess(p, pol.gpusPerWorker, workerEnv, 5000, (l) => log.push(l));
        started.push(w);
        void w.exited.then((c) => exits.push(c));
        return w;
      },
    });
    const { validateStackCheckSpec } = createStackCheckActivities({} as never);
    const control = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await getWorkflowBundle(), activities: { validateStackCheckSpec } });
    try {
      await control.runUntil(async () => {
        autoscaler.start();
        await sleep(1500);
        assert.equal(started.length, 0, 'an idle pool with min 0 starts no worker');

        const N = 6;
        const handles = await Promise.all(
          Array.from({ length: N }, (_, i) =>
            env.client.workflow.start('stackCheckWorkflow', { taskQueue, workflowId: `${workflowId}/${i}`, args: [{ pool, payloadBytes: 4096, timeout: '3m', note: 'autoscaler test' }] }),
          ),
        );
        await until('the backlog is seen', async () => (await readBacklog(env.client, env.namespace ?? 'default', pool)).backlog > 0 || started.length > 0, 60_000);
        await until('the autoscaler starts a worker', () => started.length > 0, 60_000);

        const results = (await Promise.all(handles.map((h) => h.result()))) as StackCheckResult[];
        assert.equal(results.length, N);
        for (const r of results) assert.equal(r.probe.pool, pool);
        // Every probe ran on a worker the autoscaler started (identity `<pid>@host/gpu-<pool>`).
        const pids = new Set(started.map((w) => w.pid));
        for (const r of results) assert.ok(pids.has(Number(r.probe.workerIdentity.split('@')[0])), `${r.probe.workerIdentity} is not one of ${[...pids].join(', ')}`);
        const peak = Math.max(...autoscaler.events.filter((e) => e.pool === pool).map((e) => e.to));
        assert.ok(peak >= 1 && peak <= policy.max, `peak ${peak} workers, max ${policy.max}`);

        await until('the pool is back at zero workers', () => autoscaler.status()[0]!.workers === 0 && autoscaler.status()[0]!.stopping === 0, 90_000);
        const last = autoscaler.events[autoscaler.events.length - 1]!;
        assert.equal(last.to, 0);
        assert.match(last.reason, /backlog 0: at most the activation threshold 0 for \d+s \(cooldown 4s\): scale to zero/);
        await until('every worker process has exited', () => exits.length === started.length, 30_000);
        // Stopped by SIGTERM: each worker finished its tasks and exited on its own, with status 0.
        assert.deepEqual(exits, started.map(() => 0), log.slice(-40).join('\n'));

        // What `forgeline autoscale status` shows of it: the live backlog, and this autoscaler's workers and last decision.
        const cli = await forgelineProcess(['autoscale', 'status', '--json'], { ...workerEnv, FORGELINE_AUTOSCALE: JSON.stringify({ pools: { [pool]: { max: 2, targetQueueSize: 1, cooldownSeconds: 4, stabilizationSeconds: 2 } } }) });
        assert.equal(cli.code, 0, cli.stderr);
        const status = JSON.parse(cli.stdout) as { autoscaler: { pid: number } | null; pools: Array<{ taskQueue: string; backlog: number; workers: number; lastDecision: { reason: string } | null }> };
        assert.equal(status.autoscaler?.pid, process.pid);
        assert.equal(status.pools[0]!.taskQueue, `gpu-${pool}`);
        assert.equal(status.pools[0]!.backlog, 0);
        assert.equal(status.pools[0]!.workers, 0);
        assert.match(status.pools[0]!.lastDecision?.reason ?? '', /backlog 0: at most the activation threshold 0/);
      });
    } finally {
      await autoscaler.close();
    }
  });
});
