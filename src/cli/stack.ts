import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, type Client, type Connection, type WorkflowHandle, type WorkflowStartOptions } from '@temporalio/client';
import { REPO_ROOT } from '../config/load';
import type { ForgelineConfig } from '../config/schema';
import { gpuTaskQueue } from '../contracts/task-queues';
import { connectClient, temporalAddress } from '../temporal/connection';
import { isListening, pipeLines, startDevServer, stopProcessGroup, type DevServer } from '../temporal/dev-server';
import { ensureSearchAttributes } from '../temporal/search-attributes';
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
      this.spawnWorker(gpuTaskQueue(cfg.gpu.pool), path.join(REPO_ROOT, 'workers', 'gpu-worker.ts'), gpuEnv, opts.onUnexpectedExit);
    }
  }

  private spawnWorker(name: string, entry: string, env: NodeJS.ProcessEnv, onExit?: (name: string, code: number | null) => void): void {
    const child = spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), entry], {
      cwd: process.cwd(),
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    pipeLines(child, (l) => this.stopping || this.log(`[${name}] ${l}`));
    child.once('exit', (code) => {
      if (!this.stopping) onExit?.(name, code);
    });
    this.workers.push({ name, child });
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
