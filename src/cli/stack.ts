import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, type Client, type Connection, type WorkflowHandle, type WorkflowStartOptions } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import { REPO_ROOT } from '../config/load';
import type { ForgelineConfig } from '../config/schema';
import { gpuTaskQueue } from '../contracts/task-queues';
import { connectClient, temporalAddress } from '../temporal/connection';
import { isListening, pipeLines, startDevServer, stopProcessGroup, type DevServer } from '../temporal/dev-server';
import { ensureSearchAttributes } from '../temporal/search-attributes';
import { Autoscaler, autoscalerStatusFile, type ScaledWorker } from '../fleet/autoscaler';
import { ServingStack } from './serving-stack';

export type Log = (line: string) => void;

/** Web UI link for a workflow (local dev server only; a remote cluster has its own UI). */
export function uiUrl(cfg: ForgelineConfig, workflowId?: string): string | undefined {
  if (cfg.temporal.address) return undefined;
  const base = `http://localhost:${cfg.temporal.uiPort}/namespaces/${encodeURIComponent(cfg.temporal.namespace)}/workflows`;
  return workflowId ? `${base}/${encodeURIComponent(workflowId)}` : base;
}

/**
 * Start a lifecycle on the control queue, or follow the one of the same ID: a running or
 * successful execution is joined, never duplicated, while a failed one may start again
 * (ALLOW_DUPLICATE_FAILED_ONLY). Logs `<noun> <id>` and, on the local server, its UI link.
 */
export async function startOrFollow(
  client: Client,
  cfg: ForgelineConfig,
  log: Log,
  noun: string,
  workflowType: string,
  options: Omit<WorkflowStartOptions, 'taskQueue' | 'workflowIdReusePolicy' | 'workflowIdConflictPolicy'>,
): Promise<WorkflowHandle> {
  const { workflowId } = options;
  const handle = await client.workflow
    .start(workflowType, {
      ...options,
      taskQueue: cfg.taskQueues.control,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    } as WorkflowStartOptions)
    .catch((err: Error) => {
      // One of this ID already succeeded (or was rejected, aborted, ...): show it, never redo it.
      if (err.name === 'WorkflowExecutionAlreadyStartedError') {
        log(`${noun} ${workflowId} already ran: following it`);
        return client.workflow.getHandle(workflowId);
      }
      throw err;
    });
  log(`${noun} ${workflowId}`);
  const ui = uiUrl(cfg, workflowId);
  if (ui) log(`  Temporal UI: ${ui}`);
  return handle;
}

/** A worker entry (workers/*.ts) as a child process in its own process group, its output line by line to `log`. */
export function spawnWorkerProcess(entry: string, env: NodeJS.ProcessEnv, log: (line: string) => void): ChildProcess {
  const child = spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), entry], {
    cwd: process.cwd(),
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  pipeLines(child, log);
  return child;
}

/**
 * One GPU worker process for `pool` owning `gpus` GPUs, as the autoscaler starts them: no metrics
 * endpoint of its own (several share the host), stopped by SIGTERM (running recipes checkpoint and
 * exit, within `graceMs`), its process group killed only if it is still there 10 s after that.
 */
export function startGpuWorkerProcess(pool: string, gpus: number, env: NodeJS.ProcessEnv, graceMs: number, log: (line: string) => void): ScaledWorker {
  const workerEnv: NodeJS.ProcessEnv = { ...env, FORGELINE_GPU_POOL: pool, FORGELINE_GPU_COUNT: String(gpus) };
  delete workerEnv.FORGELINE_METRICS_PORT;
  const child: ChildProcess = spawnWorkerProcess(path.join(REPO_ROOT, 'workers', 'gpu-worker.ts'), workerEnv, (l) => log(`[gpu-${pool} ${child.pid}] ${l}`));
  const pid = child.pid;
  const exited = new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
  let stopped: Promise<void> | undefined;
  return { pid, exited, stop: () => (stopped ??= stopProcessGroup(child, graceMs + 10_000)) };
}

interface WorkerProc {
  name: string;
  child: ChildProcess;
}

/**
 * The local stack behind `forgeline dev` and `forgeline demo`: a Temporal dev server (unless
 * TEMPORAL_ADDRESS is set, or one already listens on the port, which is reused), our search
 * attributes, a control worker and one GPU worker for the configured pool, each a child process
 * in its own process group. With `serving`, also the gateway and vLLM (src/cli/serving-stack.ts),
 * which the control worker is pointed at. `down()` stops only what `up()` started.
 */
export class LocalStack {
  private server?: DevServer;
  private workers: WorkerProc[] = [];
  private stopping = false;
  connection!: Connection;
  client!: Client;
  /** 'started' when this stack started the dev server, 'reused' or 'remote' otherwise. */
  serverMode: 'started' | 'reused' | 'remote' = 'remote';
  /** The gateway and vLLM, when `up({ serving: true })`. */
  serving?: ServingStack;
  /** The GPU worker autoscaler, when the config has `autoscale`. */
  autoscaler?: Autoscaler;

  constructor(private readonly cfg: ForgelineConfig, private readonly log: Log) {}

  async up(opts: { workers: boolean; serving?: boolean; workerLogLevel?: string; onUnexpectedExit?: (name: string, code: number | null) => void }): Promise<void> {
    const { cfg, log } = this;
    if (cfg.temporal.address) {
      this.serverMode = 'remote';
      log(`using Temporal at ${cfg.temporal.address} (namespace ${cfg.temporal.namespace}); starting no server`);
    } else if (await isListening(cfg.temporal.devPort)) {
      this.serverMode = 'reused';
      log(`Temporal already listening on 127.0.0.1:${cfg.temporal.devPort}: reusing it`);
    } else {
      this.serverMode = 'started';
      const t0 = Date.now();
      // Once we stop it, the server's goodbyes (dial errors from its own system workers) are noise.
      this.server = await startDevServer(cfg, (l) => this.stopping || log(`[temporal] ${l}`));
      this.server.process.once('exit', (code) => {
        if (!this.stopping) opts.onUnexpectedExit?.('temporal dev server', code);
      });
      log(`Temporal dev server up in ${((Date.now() - t0) / 1000).toFixed(1)}s (SQLite under ${cfg.home}/temporal)`);
    }
    ({ connection: this.connection, client: this.client } = await connectClient(cfg));
    try {
      const created = await ensureSearchAttributes(this.connection, cfg.temporal.namespace);
      if (created.length) log(`created search attributes: ${created.join(', ')}`);
    } catch (err) {
      // Temporal Cloud manages search attributes through its own control plane.
      log(`warning: could not register search attributes on ${temporalAddress(cfg)}: ${(err as Error).message}`);
    }
    const ui = uiUrl(cfg);
    if (ui) log(`Temporal Web UI: http://localhost:${cfg.temporal.uiPort}`);
    if (opts.serving) {
      this.serving = new ServingStack(cfg, log);
      await this.serving.up();
    }
    if (opts.workers) {
      const env: NodeJS.ProcessEnv = { ...process.env, ...this.serving?.workerEnv(), FORGELINE_PARENT_PID: String(process.pid) };
      if (opts.workerLogLevel && !process.env.FORGELINE_LOG_LEVEL) env.FORGELINE_LOG_LEVEL = opts.workerLogLevel;
      this.spawnWorker('control', path.join(REPO_ROOT, 'workers', 'control-worker.ts'), env, opts.onUnexpectedExit);
      // One Prometheus endpoint per process: the GPU worker's is FORGELINE_METRICS_PORT + 1.
      const gpuEnv = cfg.observability.metricsPort ? { ...env, FORGELINE_METRICS_PORT: String(cfg.observability.metricsPort + 1) } : env;
      // A pool the autoscaler owns gets no fixed worker.
      if (!cfg.autoscale?.pools[cfg.gpu.pool]) this.spawnWorker(gpuTaskQueue(cfg.gpu.pool), path.join(REPO_ROOT, 'workers', 'gpu-worker.ts'), gpuEnv, opts.onUnexpectedExit);
      if (cfg.autoscale) this.startAutoscaler(cfg.autoscale, env);
    }
  }

  private spawnWorker(name: string, entry: string, env: NodeJS.ProcessEnv, onExit?: (name: string, code: number | null) => void): void {
    const child = spawnWorkerProcess(entry, env, (l) => this.stopping || this.log(`[${name}] ${l}`));
    child.once('exit', (code) => {
      if (!this.stopping) onExit?.(name, code);
    });
    this.workers.push({ name, child });
  }

  /**
   * Scale the GPU workers of `pools` from their backlog (src/fleet/autoscaler.ts) instead of one
   * fixed worker: each a `workers/gpu-worker.ts` process like the fixed one, with
   * FORGELINE_GPU_POOL=<pool> and FORGELINE_GPU_COUNT=gpusPerWorker, stopped by SIGTERM.
   */
  private startAutoscaler(autoscale: NonNullable<ForgelineConfig['autoscale']>, env: NodeJS.ProcessEnv): void {
    const { cfg, log } = this;
    const grace = msToNumber(cfg.worker.shutdownGrace as Duration);
    this.autoscaler = new Autoscaler({
      client: this.client,
      namespace: cfg.temporal.namespace,
      pools: autoscale.pools,
      intervalMs: autoscale.intervalSeconds * 1000,
      statusFile: autoscalerStatusFile(cfg.home),
      log,
      start: (pool, policy) => startGpuWorkerProcess(pool, policy.gpusPerWorker, env, grace, (l) => this.stopping || log(l)),
    });
    this.autoscaler.start();
  }

  /** Resolves when every worker process has printed that it polls its queue. */
  async workersReady(timeoutMs = 120_000): Promise<void> {
    await Promise.all(
      this.workers.map(
        ({ name, child }) =>
          new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`worker ${name} did not start within ${timeoutMs / 1000}s`)), timeoutMs);
            const onData = (chunk: Buffer | string) => {
              if (String(chunk).includes('worker polling')) {
                clearTimeout(timer);
                child.stdout?.off('data', onData);
                resolve();
              }
            };
            child.stdout?.on('data', onData);
            child.once('exit', (code) => {
              clearTimeout(timer);
              reject(new Error(`worker ${name} exited with code ${code} during start-up (see its output above)`));
            });
          }),
      ),
    );
  }

  async down(): Promise<void> {
    this.stopping = true;
    await this.autoscaler?.close();
    await Promise.all(this.workers.map(({ child }) => stopProcessGroup(child, 20_000)));
    this.workers = [];
    await this.serving?.down();
    await this.connection?.close().catch(() => undefined);
    if (this.server) {
      await this.server.stop();
      this.server = undefined;
    }
  }
}
