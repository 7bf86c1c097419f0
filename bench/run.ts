/**
 * Benchmarks (npm run bench). Results go to bench/results/*.json with the peers measured in the
 * same run, so a number is always read against its baselines on the same machine.
 *
 *   orchestration: what an orchestrator adds around each stage. The release, with no-op
 *   activities, runs on a real local dev server (control queue + gpu-<pool> queue, as in
 *   production) `FORGELINE_BENCH_RUNS` times (default 50) after 3 warm-ups. For each run we take
 *   start → completion from the history (and from the client: start call to result), and for each
 *   activity dispatch → start (ActivityTaskScheduled → ActivityTaskStarted). Three sides, run in
 *   interleaved batches of 10 so that the shared machine's load falls on all of them alike:
 *     - temporal: the dev server as `forgeline dev` and the tests start it (DEV_SERVER_DYNAMIC_CONFIG);
 *     - temporal, server defaults: plain `temporal server start-dev`, the configuration before the fix;
 *     - prefect: the same 9-step pipeline of no-op tasks as a Prefect 3 flow against its local
 *       server (bench/peers/prefect.ts), timed from calling the flow to its return.
 *   Plus the in-process peer: the same no-op activities called directly, in order. The stack check
 *   (2 activities) is measured on the first server afterwards.
 *
 *   Run one or some by name: `npm run bench -- orchestration` (names: the BENCHMARKS table below).
 *
 *   gateway: what the inference gateway adds per request against a stub upstream, with LiteLLM's
 *   proxy as the peer and direct calls as the baseline, plus limiter decisions/s (bench/gateway.ts).
 *
 *   serving: output tokens/s of the real vLLM server on CPU (the vLLM venv), base vs one and two
 *   LoRA adapters active, and base vs the W4A16 candidate from our quantize recipe (bench/serving.ts).
 *
 *   vector-stores: upsert rows/s per VectorStore, pgvector HNSW build time and recall@10 on PGlite
 *   and PostgreSQL, alias swaps under query load (bench/vector-stores.ts).
 *
 *   fleet: a simulated day of four teams' GPU work on two pools under first come, first served
 *   (the peer), our fair-share admission policy and static partitioning, on the same arrivals
 *   (bench/fleet.ts, src/fleet/sim).
 *
 *   gpu-recipes / gpu-multi: where the venv's torch sees CUDA, the Python GPU benchmarks run
 *   after it (bench/gpu_recipes.py; bench/gpu_multi.py when there are 2+ GPUs). Elsewhere they
 *   are skipped with a line saying so, and the committed results stay as they are.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import type { temporal } from '@temporalio/proto';
import { createStackCheckActivities } from '../activities/stack-check';
import { loadConfig, REPO_ROOT } from '../src/config/load';
import { FORGELINE_SEARCH_ATTRIBUTES } from '../src/contracts/search-attributes';
import type { StackProbeInput, StackProbeResult } from '../src/contracts/stack-check';
import { gpuTaskQueue } from '../src/contracts/task-queues';
import { runMain } from '../src/cli/run-main';
import { DEV_SERVER_DYNAMIC_CONFIG, devServerDynamicConfigArgs } from '../src/temporal/dev-server';
import { fakeProbe } from '../test/fixtures/stack-probe';
import { releaseMocks, releaseSpec, split } from '../test/fixtures/release';
import { startPrefectPeer, type PrefectPeer } from './peers/prefect';
import { driftBenchmark } from './drift';
import { embeddingsPipelineBenchmark } from './embeddings-pipeline';
import { servingBenchmark } from './serving';
import { gatewayBenchmark } from './gateway';
import { vectorStoresBenchmark } from './vector-stores';
import { chunkingBenchmark } from './chunking';
import { fleetBenchmark } from './fleet';
import { cpuMs, percentile, round } from './measure';

const RUNS = Number(process.env.FORGELINE_BENCH_RUNS ?? 50);
const BATCH = 10;
const WARMUP = 3;
const RELEASE_STAGES = ['validateReleaseSpec', 'openReleaseRun', 'trainAdapter', 'quantizeModel', 'runEvalSuite', 'logGateResults', 'registerRelease', 'promoteCandidate', 'closeReleaseRun'] as const;

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { n: s.length, p50: round(percentile(s, 50)), p95: round(percentile(s, 95)), max: round(s[s.length - 1] ?? NaN), mean: round(mean) };
}

/** p50/p95 of a whole lifecycle divided by its number of stages. */
function perStage(lifecycle: ReturnType<typeof stats>, stages: number) {
  return { p50: round(lifecycle.p50 / stages), p95: round(lifecycle.p95 / stages) };
}

function ms(t: temporal.api.history.v1.IHistoryEvent['eventTime']): number {
  return Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
}

/** The pid of the `temporal server start-dev` listening on `address` (host:port), from /proc. */
function devServerPid(address: string): number | undefined {
  const port = address.split(':').pop();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.includes('start-dev') && args[args.indexOf('--port') + 1] === port) return Number(entry);
    } catch {
      /* gone, or not ours to read */
    }
  }
  return undefined;
}

/** CPU time spent by a side's client process (here: the worker + client, or the flow's process) and its server. */
class CpuMeter {
  client = 0;
  server = 0;
  runs = 0;
  /** `clientPid` undefined: this process. */
  constructor(
    private readonly serverPid: number | undefined,
    private readonly clientPid?: number,
  ) {}
  private clientNow(): number | undefined {
    if (this.clientPid === undefined) {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    }
    return cpuMs(this.clientPid);
  }
  async measure<T>(runs: number, fn: () => Promise<T>): Promise<T> {
    const c0 = this.clientNow();
    const s0 = cpuMs(this.serverPid);
    const out = await fn();
    const c1 = this.clientNow();
    const s1 = cpuMs(this.serverPid);
    if (c0 !== undefined && c1 !== undefined) this.client += c1 - c0;
    if (s0 !== undefined && s1 !== undefined) this.server += s1 - s0;
    this.runs += runs;
    return out;
  }
  perRun() {
    if (this.runs === 0) return undefined;
    return { client: round(this.client / this.runs), server: round(this.server / this.runs), total: round((this.client + this.server) / this.runs) };
  }
}

const noopProbe = async (i: StackProbeInput): Promise<StackProbeResult> => fakeProbe(i, 'bench');

interface Lifecycle {
  name: string;
  workflowType: string;
  stages: number;
  args: () => unknown[];
  control: Record<string, (...a: never[]) => Promise<unknown>>;
  gpu: Record<string, (...a: never[]) => Promise<unknown>>;
  inProcess: () => Promise<unknown>;
}

type Bundle = Awaited<ReturnType<typeof bundleWorkflowCode>>;

/** One lifecycle on one Temporal server: its control and GPU workers and what its runs measured. */
class TemporalSide {
  readonly lifecycle: number[] = [];
  readonly clientWall: number[] = [];
  readonly dispatchToStart = { control: [] as number[], gpu: [] as number[] };
  /** Where a stage's time goes, from the history: the workflow task's dispatch and processing, the activity's run. */
  readonly breakdown = { workflowTaskDispatch: [] as number[], workflowTaskProcessing: [] as number[], activityStartToCompleted: [] as number[] };
  readonly cpu: CpuMeter;
  private constructor(
    private readonly env: TestWorkflowEnvironment,
    private readonly lc: Lifecycle,
    private readonly taskQueue: string,
    readonly workers: Worker[],
  ) {
    this.cpu = new CpuMeter(devServerPid(env.address));
  }

  static async create(env: TestWorkflowEnvironment, workflowBundle: Bundle, lc: Lifecycle): Promise<TemporalSide> {
    const taskQueue = `bench-${lc.name}`;
    const workers = [
      await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle, activities: lc.control }),
      await Worker.create({ connection: env.nativeConnection, taskQueue: gpuTaskQueue('bench'), activities: lc.gpu }),
    ];
    return new TemporalSide(env, lc, taskQueue, workers);
  }

  /**
   * `n` lifecycles one after another; warm-ups (first bundle load, first polls) are not recorded.
   * CPU is metered over the runs only; their histories are read afterwards.
   */
  async runs(n: number, record = true): Promise<void> {
    const handles: WorkflowHandle[] = [];
    const run = async () => {
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const handle = await this.env.client.workflow.start(this.lc.workflowType, { taskQueue: this.taskQueue, workflowId: `bench/${this.lc.name}/${Date.now()}-${i}`, args: this.lc.args() });
        await handle.result();
        if (record) this.clientWall.push(performance.now() - t0);
        handles.push(handle);
      }
    };
    if (!record) return run();
    await this.cpu.measure(n, run);
    for (const handle of handles) {
      const events = (await handle.fetchHistory()).events ?? [];
      const scheduled = new Map<string, { at: number; queue: string }>();
      const at = new Map<string, number>(events.map((e) => [String(e.eventId), ms(e.eventTime)]));
      const since = (id: unknown, e: (typeof events)[number]) => ms(e.eventTime) - (at.get(String(id)) ?? NaN);
      for (const e of events) {
        const s = e.activityTaskScheduledEventAttributes;
        if (s) scheduled.set(String(e.eventId), { at: ms(e.eventTime), queue: s.taskQueue?.name ?? '' });
        const started = e.activityTaskStartedEventAttributes;
        const from = started && scheduled.get(String(started.scheduledEventId));
        if (from) this.dispatchToStart[from.queue === this.taskQueue ? 'control' : 'gpu'].push(ms(e.eventTime) - from.at);
        if (e.activityTaskCompletedEventAttributes) this.breakdown.activityStartToCompleted.push(since(e.activityTaskCompletedEventAttributes.startedEventId, e));
        if (e.workflowTaskStartedEventAttributes) this.breakdown.workflowTaskDispatch.push(since(e.workflowTaskStartedEventAttributes.scheduledEventId, e));
        if (e.workflowTaskCompletedEventAttributes) this.breakdown.workflowTaskProcessing.push(since(e.workflowTaskCompletedEventAttributes.startedEventId, e));
      }
      this.lifecycle.push(ms(events[events.length - 1]?.eventTime) - ms(events[0]?.eventTime));
    }
  }

  results(server: string) {
    const lifecycleMs = stats(this.lifecycle);
    return {
      server,
      lifecycleMs,
      perStageMs: perStage(lifecycleMs, this.lc.stages),
      clientWallMs: stats(this.clientWall),
      cpuMsPerRun: this.cpu.perRun(),
      activityDispatchToStartMs: {
        all: stats([...this.dispatchToStart.control, ...this.dispatchToStart.gpu]),
        controlQueue: stats(this.dispatchToStart.control),
        gpuQueue: stats(this.dispatchToStart.gpu),
      },
      breakdownMs: {
        workflowTaskDispatch: stats(this.breakdown.workflowTaskDispatch),
        workflowTaskProcessing: stats(this.breakdown.workflowTaskProcessing),
        activityStartToCompleted: stats(this.breakdown.activityStartToCompleted),
      },
    };
  }
}

/** Run `fn` while all `workers` poll. */
async function whileRunning<T>(workers: Worker[], fn: () => Promise<T>): Promise<T> {
  const [first, ...rest] = workers;
  return first ? first.runUntil(() => whileRunning(rest, fn)) : fn();
}

async function timedInProcess(lc: Lifecycle, n: number, into: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await lc.inProcess();
    into.push(performance.now() - t0);
  }
}

const load = () => os.loadavg().map(round);

function uptime(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `loadavg ${load().join(' ')}`;
  }
}

function localServer(dynamicConfig: string[]) {
  const cfg = loadConfig();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: path.join(cfg.venv, 'bin', 'temporal') },
      searchAttributes: [...FORGELINE_SEARCH_ATTRIBUTES],
      extraArgs: ['--log-level', 'error', ...dynamicConfig],
    },
  });
}

async function orchestration(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const cfg = loadConfig();
  const { validateStackCheckSpec } = createStackCheckActivities({} as never);
  const log = (line: string) => console.log(`bench: ${line}`);

  const { mocks } = releaseMocks();
  const { control: releaseControl, gpu: releaseGpu } = split(mocks);
  const spec = releaseSpec({ gpu: { pool: 'bench' } });
  const release: Lifecycle = {
    name: 'release',
    workflowType: 'modelReleaseWorkflow',
    stages: RELEASE_STAGES.length,
    args: () => [spec],
    control: releaseControl as Lifecycle['control'],
    gpu: releaseGpu as Lifecycle['gpu'],
    inProcess: async () => {
      for (const name of RELEASE_STAGES) await (mocks[name] as (x: unknown) => Promise<unknown>)(spec);
    },
  };
  const stackCheck: Lifecycle = {
    name: 'stack-check',
    workflowType: 'stackCheckWorkflow',
    stages: 2,
    args: () => [{ pool: 'bench' }],
    control: { validateStackCheckSpec },
    gpu: { runStackProbe: noopProbe },
    inProcess: async () => noopProbe({ checkId: 'peer', pool: (await validateStackCheckSpec({ pool: 'bench' })).pool, payloadBytes: 1 }),
  };

  const loadAtStart = { uptime: uptime(), loadavg: load() };
  const perBatchLoad1m: number[] = [];
  const temporalCli = execFileSync(path.join(cfg.venv, 'bin', 'temporal'), ['--version'], { encoding: 'utf8' }).trim();

  log('starting Temporal dev servers (ours and one with server defaults) and the Prefect server');
  const [ours, defaults] = await Promise.all([localServer(devServerDynamicConfigArgs()), localServer([])]);
  let prefect: PrefectPeer | undefined;
  let prefectError: string | undefined;
  const prefectMs: number[] = [];
  let prefectCpu: CpuMeter | undefined;
  const results: Record<string, unknown> = {};
  try {
    try {
      prefect = await startPrefectPeer(spec, WARMUP, log);
      prefectCpu = new CpuMeter(prefect.pids.server, prefect.pids.client);
    } catch (err) {
      prefectError = String((err as Error).message ?? err);
      log(`Prefect peer unavailable, measured without it: ${prefectError}`);
    }
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: new DefaultLogger('ERROR') });

    const a = await TemporalSide.create(ours, workflowBundle, release);
    const b = await TemporalSide.create(defaults, workflowBundle, release);
    const inProcess: number[] = [];
    await whileRunning([...a.workers, ...b.workers], async () => {
      await a.runs(WARMUP, false);
      await b.runs(WARMUP, false);
      for (let done = 0, batch = 0; done < RUNS; done += BATCH, batch++) {
        const n = Math.min(BATCH, RUNS - done);
        // Rotate who goes first, so no side always runs right after another's burst.
        const sides: Array<() => Promise<unknown>> = [() => a.runs(n), () => b.runs(n), async () => prefect && prefectMs.push(...(await prefectCpu!.measure(n, () => prefect!.runs(n))))];
        for (let k = 0; k < sides.length; k++) await sides[(k + batch) % sides.length]!();
        await timedInProcess(release, n, inProcess);
        perBatchLoad1m.push(round(os.loadavg()[0]!));
        log(`release: ${done + n}/${RUNS} runs per side (load ${os.loadavg()[0]!.toFixed(2)})`);
      }
    });
    const oursResult = a.results(`temporal server start-dev with ${devServerDynamicConfigArgs().join(' ')} (as forgeline dev and the tests start it)`);
    const prefectStats = stats(prefectMs);
    const inProcessStats = stats(inProcess);
    results.release = {
      stages: release.stages,
      temporal: oursResult,
      temporalServerDefaults: b.results('temporal server start-dev with no dynamic config (before the fix: 20 transfer-queue reads/s on its one history shard)'),
      prefect: prefect
        ? {
            what: 'the same 9 steps as one Prefect flow of 9 sequential no-op tasks (bench/peers/prefect_release.py), timed from calling the flow to its return',
            version: prefect.version,
            server: 'prefect server start (SQLite file under a temporary PREFECT_HOME, UI off), same machine; PREFECT_API_URL set, logging WARNING',
            flowRunMs: prefectStats,
            perStageMs: perStage(prefectStats, release.stages),
            cpuMsPerRun: prefectCpu?.perRun(),
          }
        : { skipped: prefectError },
      inProcess: { what: 'the same no-op activities called directly in-process, in order (no orchestrator)', lifecycleMs: inProcessStats },
      overheadPerLifecycleMs: { p50: round(oursResult.lifecycleMs.p50 - inProcessStats.p50), p95: round(oursResult.lifecycleMs.p95 - inProcessStats.p95) },
    };

    const sc = await TemporalSide.create(ours, workflowBundle, stackCheck);
    const scInProcess: number[] = [];
    await whileRunning(sc.workers, async () => {
      await sc.runs(WARMUP, false);
      await sc.runs(RUNS);
    });
    await timedInProcess(stackCheck, RUNS, scInProcess);
    results['stack-check'] = {
      stages: stackCheck.stages,
      temporal: sc.results('the same server as the release'),
      inProcess: { what: 'the same no-op activities called directly in-process, in order (no orchestrator)', lifecycleMs: stats(scInProcess) },
    };
  } finally {
    await prefect?.stop();
    await Promise.all([ours.teardown(), defaults.teardown()]);
  }

  const result = {
    benchmark: 'orchestration',
    what: 'what an orchestrator adds per lifecycle with no-op activities: release = 9 activities (6 light control steps as local activities in the control worker, which runs the workflow; 3 on gpu-<pool>), stack-check = 2; lifecycleMs from the history (start → completion), clientWallMs from start call to result; cpuMsPerRun: CPU time per lifecycle of the client side (Temporal: this process, i.e. workers + client; Prefect: the flow\'s process) and of the server, over the measured runs (load-independent, unlike wall times)',
    temporalCli,
    devServerDynamicConfig: DEV_SERVER_DYNAMIC_CONFIG,
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    runs: RUNS,
    interleaving: `batches of ${BATCH} runs per side, the order rotating each batch (temporal, temporal server defaults, prefect), ${WARMUP} warm-ups each`,
    load: { atStart: loadAtStart, loadavg1mAfterEachBatch: perBatchLoad1m, atEnd: { uptime: uptime(), loadavg: load() } },
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

/**
 * Every benchmark by name, in the order `npm run bench` runs them; `npm run bench -- <name>...`
 * runs only those. Each returns an exit code (or nothing for 0).
 */
const BENCHMARKS: Record<string, () => Promise<number | void> | number | void> = {
  orchestration,
  drift: driftBenchmark,
  serving: servingBenchmark,
  gateway: gatewayBenchmark,
  'vector-stores': vectorStoresBenchmark,
  chunking: chunkingBenchmark,
  'embeddings-pipeline': embeddingsPipelineBenchmark,
  fleet: fleetBenchmark,
  gpu: gpuBenchmarks,
};

runMain(async () => {
  const only = process.argv.slice(2);
  const unknown = only.filter((n) => !(n in BENCHMARKS));
  if (unknown.length) {
    console.error(`bench: unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHMARKS).join(', ')}`);
    return 2;
  }
  for (const [name, run] of Object.entries(BENCHMARKS)) {
    if (only.length && !only.includes(name)) continue;
    const rc = await run();
    if (rc) return rc;
  }
  return 0;
});
