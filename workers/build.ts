import os from 'node:os';
import path from 'node:path';
import { DefaultLogger, type NativeConnection, Runtime, Worker, type LogLevel, type WorkerOptions, type WorkerTuner } from '@temporalio/worker';
import { activitiesFor } from '../activities';
import { createArtifactStore } from '../src/adapters/artifact-store';
import { createTracker } from '../src/adapters/tracker';
import { LocalGpuAllocator } from '../src/adapters/gpu-allocator';
import { LocalJobRunner } from '../src/adapters/local-job-runner';
import { REPO_ROOT } from '../src/config/load';
import { ModelRegistry } from '../src/registry/model-registry';
import type { ForgelineConfig } from '../src/config/schema';
import { gpuTaskQueue } from '../src/contracts/task-queues';

export type WorkerKind = 'control' | 'gpu';

const LOG_LEVELS: Record<ForgelineConfig['logLevel'], LogLevel> = { debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR' };

let runtimeInstalled = false;
/** Install the Temporal runtime once per process with our log level. */
export function installRuntime(cfg: ForgelineConfig): void {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new DefaultLogger(LOG_LEVELS[cfg.logLevel]) });
  runtimeInstalled = true;
}

export function workerIdentity(kind: WorkerKind, cfg: ForgelineConfig): string {
  const what = kind === 'control' ? 'control' : gpuTaskQueue(cfg.gpu.pool);
  return `${process.pid}@${os.hostname()}/${what}`;
}

export function taskQueueFor(kind: WorkerKind, cfg: ForgelineConfig): string {
  return kind === 'control' ? cfg.taskQueues.control : gpuTaskQueue(cfg.gpu.pool);
}

/** Adapters from config, then the activity set over them. */
export function buildActivities(kind: WorkerKind, cfg: ForgelineConfig) {
  const artifacts = createArtifactStore({
    uri: cfg.artifacts.uri,
    s3: { endpoint: cfg.artifacts.s3.endpoint, region: cfg.artifacts.s3.region, forcePathStyle: cfg.artifacts.s3.forcePathStyle },
  });
  const tracker = createTracker({
    kind: cfg.tracker.kind,
    home: cfg.home,
    wandb: { apiKey: cfg.tracker.wandb.apiKey, baseUrl: cfg.tracker.wandb.baseUrl, entity: cfg.tracker.wandb.entity },
  });
  return activitiesFor(kind, {
    artifacts,
    tracker,
    registry: new ModelRegistry(artifacts),
    jobs: new LocalJobRunner({ python: path.join(cfg.venv, 'bin', 'python'), recipesDir: path.join(REPO_ROOT, 'workers', 'recipes') }),
    gpus: kind === 'gpu' ? LocalGpuAllocator.forPool(cfg.gpu.pool, cfg.gpu.count, process.env.CUDA_VISIBLE_DEVICES) : LocalGpuAllocator.forPool('cpu', 1),
    workDir: path.join(cfg.home, 'work', kind === 'gpu' ? gpuTaskQueue(cfg.gpu.pool) : 'control'),
    trackerProject: cfg.tracker.wandb.project,
    workerIdentity: workerIdentity(kind, cfg),
    pool: cfg.gpu.pool,
  });
}

/**
 * The slots of a GPU worker. With GPUs, its activity slots come from them: the worker polls for a
 * task only when it can start it (a GPU is free and every task it holds has its GPUs; see
 * LocalGpuAllocator). On pool cpu, `cpuSlots` fixed slots. A GPU worker runs no workflows.
 */
export function gpuWorkerTuner(gpus: LocalGpuAllocator, cpuSlots: number): WorkerTuner {
  const fixed = (numSlots: number) => ({ type: 'fixed-size' as const, numSlots });
  return {
    activityTaskSlotSupplier: gpus.total > 0 ? gpus.slotSupplier() : fixed(cpuSlots),
    workflowTaskSlotSupplier: fixed(2),
    localActivityTaskSlotSupplier: fixed(1),
    nexusTaskSlotSupplier: fixed(1),
  };
}

export interface CreateWorkerOptions {
  connection: NativeConnection;
  /** Prebuilt workflow bundle (tests, production images); default: bundle `workflows/` at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  taskQueue?: string;
}

/**
 * A control worker polls the control queue and runs workflows plus light activities; a GPU
 * worker polls `gpu-<pool>` and runs heavy activities, as many at once as it owns GPUs.
 */
export function createWorker(kind: WorkerKind, cfg: ForgelineConfig, opts: CreateWorkerOptions): Promise<Worker> {
  const common = {
    connection: opts.connection,
    namespace: cfg.temporal.namespace,
    taskQueue: opts.taskQueue ?? taskQueueFor(kind, cfg),
    identity: workerIdentity(kind, cfg),
    activities: buildActivities(kind, cfg),
  };
  if (kind === 'control') {
    const workflows = opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: require.resolve('../workflows') };
    return Worker.create({ ...common, ...workflows });
  }
  // Heartbeats carry training progress (step, loss, latest checkpoint) to operators and to the
  // next attempt: send them every few seconds rather than the SDK's default of up to 60 s.
  return Worker.create({ ...common, maxConcurrentActivityTaskExecutions: cfg.gpu.count, maxHeartbeatThrottleInterval: '3s' });
}

/**
 * Stop the worker when the process that started us (`forgeline dev`) goes away, so a killed
 * parent never leaves orphan workers behind.
 */
export function shutdownWithParent(worker: Worker, parentPid: number | undefined): void {
  if (!parentPid) return;
  const timer = setInterval(() => {
    try {
      process.kill(parentPid, 0);
    } catch {
      clearInterval(timer);
      worker.shutdown();
    }
  }, 1000);
  timer.unref();
}
