/**
 * Benchmarks (npm run bench). Results go to bench/results/*.json with the peer measured in the
 * same run, so a number is always read against its baseline on the same machine.
 *
 *   orchestration: what Temporal adds around each stage. The release and the stack check, with
 *   no-op activities, run on a real local dev server (control queue + gpu-<pool> queue, as in
 *   production) `FORGELINE_BENCH_RUNS` times (default 50) after 3 warm-ups; for each
 *   activity we take dispatch → start (ActivityTaskScheduled → ActivityTaskStarted, from the
 *   history) and for each lifecycle start → completion. Peer: the same no-op activities called
 *   directly in-process, in the same order, with the same validation.
 *
 *   gpu-recipes / gpu-multi: where the venv's torch sees CUDA, the Python GPU benchmarks run
 *   after it (bench/gpu_recipes.py; bench/gpu_multi.py when there are 2+ GPUs). Elsewhere they
 *   are skipped with a line saying so, and the committed results stay as they are.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import type { temporal } from '@temporalio/proto';
import { createStackCheckActivities } from '../activities/stack-check';
import { loadConfig, REPO_ROOT } from '../src/config/load';
import { FORGELINE_SEARCH_ATTRIBUTES } from '../src/contracts/search-attributes';
import type { StackProbeInput, StackProbeResult } from '../src/contracts/stack-check';
import { gpuTaskQueue } from '../src/contracts/task-queues';
import { runMain } from '../src/cli/run-main';
import { fakeProbe } from '../test/fixtures/stack-probe';
import { releaseMocks, releaseSpec, split } from '../test/fixtures/release';

const RUNS = Number(process.env.FORGELINE_BENCH_RUNS ?? 50);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { n: s.length, p50: round(percentile(s, 50)), p95: round(percentile(s, 95)), max: round(s[s.length - 1] ?? NaN), mean: round(mean) };
}

const round = (x: number) => Math.round(x * 1000) / 1000;

function ms(t: temporal.api.history.v1.IHistoryEvent['eventTime']): number {
  return Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
}

const noopProbe = async (i: StackProbeInput): Promise<StackProbeResult> => fakeProbe(i, 'bench');

interface Lifecycle {
  name: string;
  workflowType: string;
  args: () => unknown[];
  control: Record<string, (...a: never[]) => Promise<unknown>>;
  gpu: Record<string, (...a: never[]) => Promise<unknown>>;
  peer: () => Promise<unknown>;
}

/** Run `RUNS` lifecycles (after 3 warm-ups) on the server and the same calls in-process. */
async function measure(env: TestWorkflowEnvironment, workflowBundle: Awaited<ReturnType<typeof bundleWorkflowCode>>, lc: Lifecycle) {
  const peer: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await lc.peer();
    peer.push(performance.now() - t0);
  }
  const dispatchToStart: number[] = [];
  const lifecycle: number[] = [];
  const taskQueue = `bench-${lc.name}`;
  const control = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle, activities: lc.control });
  const gpu = await Worker.create({ connection: env.nativeConnection, taskQueue: gpuTaskQueue('bench'), activities: lc.gpu });
  await gpu.runUntil(
    control.runUntil(async () => {
      for (let i = 0; i < RUNS + 3; i++) {
        const handle = await env.client.workflow.start(lc.workflowType, { taskQueue, workflowId: `bench/${lc.name}/${Date.now()}-${i}`, args: lc.args() });
        await handle.result();
        if (i < 3) continue; // warm-up: first bundle load, first polls
        const events = (await handle.fetchHistory()).events ?? [];
        const scheduled = new Map<string, number>();
        for (const e of events) {
          if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), ms(e.eventTime));
          if (e.activityTaskStartedEventAttributes) {
            const at = scheduled.get(String(e.activityTaskStartedEventAttributes.scheduledEventId));
            if (at !== undefined) dispatchToStart.push(ms(e.eventTime) - at);
          }
        }
        lifecycle.push(ms(events[events.length - 1]?.eventTime) - ms(events[0]?.eventTime));
      }
    }),
  );
  const peerStats = stats(peer);
  const lifecycleStats = stats(lifecycle);
  return {
    activityDispatchToStartMs: stats(dispatchToStart),
    lifecycleMs: lifecycleStats,
    peer: { what: 'the same no-op activities called directly in-process, in order (no orchestrator)', lifecycleMs: peerStats },
    overheadPerLifecycleMs: { p50: round(lifecycleStats.p50 - peerStats.p50), p95: round(lifecycleStats.p95 - peerStats.p95) },
  };
}

async function orchestration(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const cfg = loadConfig();
  const { validateStackCheckSpec } = createStackCheckActivities({} as never);

  const { mocks } = releaseMocks();
  const { control: releaseControl, gpu: releaseGpu } = split(mocks);
  const spec = releaseSpec({ gpu: { pool: 'bench' } });
  const lifecycles: Lifecycle[] = [
    {
      name: 'release',
      workflowType: 'modelReleaseWorkflow',
      args: () => [spec],
      control: releaseControl as Lifecycle['control'],
      gpu: releaseGpu as Lifecycle['gpu'],
      peer: async () => {
        for (const name of ['validateReleaseSpec', 'openReleaseRun', 'trainAdapter', 'quantizeModel', 'runEvalSuite', 'logGateResults', 'registerRelease', 'promoteCandidate', 'closeReleaseRun'] as const) {
          await (mocks[name] as (x: unknown) => Promise<unknown>)(spec);
        }
      },
    },
    {
      name: 'stack-check',
      workflowType: 'stackCheckWorkflow',
      args: () => [{ pool: 'bench' }],
      control: { validateStackCheckSpec },
      gpu: { runStackProbe: noopProbe },
      peer: async () => noopProbe({ checkId: 'peer', pool: (await validateStackCheckSpec({ pool: 'bench' })).pool, payloadBytes: 1 }),
    },
  ];

  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: path.join(cfg.venv, 'bin', 'temporal') }, searchAttributes: [...FORGELINE_SEARCH_ATTRIBUTES] },
  });
  const results: Record<string, unknown> = {};
  try {
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: new DefaultLogger('ERROR') });
    for (const lc of lifecycles) results[lc.name] = await measure(env, workflowBundle, lc);
  } finally {
    await env.teardown();
  }

  const result = {
    benchmark: 'orchestration',
    what: 'Temporal overhead per lifecycle with no-op activities: release = 9 activities (6 on the control queue, 3 on gpu-<pool>), stack-check = 2',
    server: 'temporal server start-dev (Temporal CLI 1.9.1, SQLite in memory), same machine',
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    runs: RUNS,
    lifecycles: results,
    measuredAt: new Date().toISOString(),
  };
  const out = path.join(REPO_ROOT, 'bench', 'results', 'orchestration.json');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result, null, 2));
  console.log(`wrote ${path.relative(process.cwd(), out)}`);
}

/** The GPU benchmarks, when this machine's torch sees CUDA; returns the exit code. */
function gpuBenchmarks(): number {
  const cfg = loadConfig();
  const python = path.join(cfg.venv, 'bin', 'python');
  const probe = spawnSync(python, ['-c', 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)'], { encoding: 'utf8' });
  const gpus = Number(probe.stdout.trim()) || 0;
  if (gpus === 0) {
    console.log('gpu-recipes, gpu-multi: skipped (torch sees no CUDA device here); committed results kept');
    return 0;
  }
  const work = path.join(os.tmpdir(), `forgeline-gpu-bench-${process.pid}`);
  const env = { ...process.env, NCCL_NVLS_ENABLE: process.env.NCCL_NVLS_ENABLE ?? '0' };
  const scripts: string[][] = [['bench/gpu_recipes.py', '--work', `${work}/recipes`]];
  if (gpus >= 2) scripts.push(['bench/gpu_multi.py', '--work', `${work}/multi`, '--gpus', '2']);
  else console.log('gpu-multi: skipped (one GPU here)');
  for (const args of scripts) {
    const run = spawnSync(python, args, { cwd: REPO_ROOT, env, stdio: 'inherit' });
    if (run.status !== 0) return run.status ?? 1;
  }
  return 0;
}

runMain(async () => {
  await orchestration();
  return gpuBenchmarks();
});
