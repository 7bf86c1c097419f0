import os from 'node:os';
import path from 'node:path';
import { DefaultLogger, type NativeConnection, Runtime, Worker, type LogLevel, type WorkerOptions, type WorkerTuner } from '@temporalio/worker';
import { activitiesFor, type ActivityDeps } from '../activities';
import { GatewayTrafficRouter } from '../src/adapters/gateway-router';
import { gatewayModels } from '../src/adapters/openai-judge';
import { VllmServingBackend } from '../src/adapters/vllm-backend';
import { createArtifactStore } from '../src/adapters/artifact-store';
import { createTracker } from '../src/adapters/tracker';
import { LocalGpuAllocator } from '../src/adapters/gpu-allocator';
import { LocalJobRunner } from '../src/adapters/local-job-runner';
import { KubernetesJobRunner } from '../src/adapters/kubernetes-job-runner';
import type { JobRunner } from '../src/ports/job-runner';
import { SentenceTransformersEmbedder } from '../src/adapters/sentence-transformers-embedder';
import { PersistentSentenceTransformersEmbedder } from '../src/adapters/sentence-transformers-server';
import { createVectorStore } from '../src/adapters/vector-store';
import { repoReaderFor } from '../src/adapters/repo-reader';
import { LazyVectorStore } from '../src/adapters/lazy-vector-store';
import { loadMiniLmTokenizer } from '../src/embeddings/tokenizer';
import type { VectorStore } from '../src/ports/vector-store';
import { REPO_ROOT } from '../src/config/load';
import { ModelRegistry } from '../src/registry/model-registry';
import type { ForgelineConfig } from '../src/config/schema';
import { launchStateDir, LocalModelLauncher } from '../src/adapters/local-model-launcher';
import { durationMs, GPU_HEARTBEAT_THROTTLE_MS } from '../src/contracts/specs/release-spec';
import { secondsLeft, spotShutdownGraceMs, WorkerPreemption, type SpotNotice } from '../src/fleet/spot';
import { gpuTaskQueue } from '../src/contracts/task-queues';
import { instrumentEmbedder, instrumentJobRunner, WorkerMetrics } from '../src/observability/metrics';
import { tracingFromConfig, type Tracing } from '../src/observability/tracing';
import { Client } from '@temporalio/client';
import { createAdmissionClient } from '../src/fleet/admission-client';
import type { GpuAdmission } from '../src/ports/gpu-admission';

export type WorkerKind = 'control' | 'gpu';

const LOG_LEVELS: Record<ForgelineConfig['logLevel'], LogLevel> = { debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR' };

let runtimeInstalled = false;
/**
 * Install the Temporal runtime once per process with our log level and, with
 * FORGELINE_METRICS_PORT, its Prometheus endpoint (the SDK's metrics and ours: WorkerMetrics uses
 * the runtime's meter). It handles no signals: the worker entry does (workers/main.ts), so a GPU
 * worker can ask its recipes to checkpoint first.
 */
export function installRuntime(cfg: ForgelineConfig): void {
  if (runtimeInstalled) return;
  const { metricsPort, metricsHost } = cfg.observability;
  Runtime.install({
    logger: new DefaultLogger(LOG_LEVELS[cfg.logLevel]),
    shutdownSignals: [],
    ...(metricsPort ? { telemetryOptions: { metrics: { prometheus: { bindAddress: `${metricsHost}:${metricsPort}` } } } } : {}),
  });
  runtimeInstalled = true;
}

export function workerIdentity(kind: WorkerKind, cfg: ForgelineConfig): string {
  const what = kind === 'control' ? 'control' : gpuTaskQueue(cfg.gpu.pool);
  return `${process.pid}@${os.hostname()}/${what}`;
}

export function taskQueueFor(kind: WorkerKind, cfg: ForgelineConfig): string {
  return kind === 'control' ? cfg.taskQueues.control : gpuTaskQueue(cfg.gpu.pool);
}

/** What a worker runs recipes with: the job runner and the GPUs it owns (none on pool cpu and on the control worker). */
export interface WorkerResources {
  /** Recipes: local processes, or Kubernetes Jobs on a GPU worker with FORGELINE_JOB_RUNNER=kubernetes. */
  jobs: JobRunner & { preempt(): void };
  gpus: LocalGpuAllocator;
  /** Re-embeds: the pool's long-lived embedding process (GPU workers; started on the first batch). */
  embedder?: PersistentSentenceTransformersEmbedder;
  /** Re-embeds: the vector store (control worker; the embedded PGlite store belongs to one process). */
  vectors?: VectorStore;
  /** GPU leases: the pools' admission workflows (control worker). */
  admission?: GpuAdmission;
}

export function workerResources(kind: WorkerKind, cfg: ForgelineConfig): WorkerResources {
  return {
    jobs: jobRunner(kind, cfg),
    gpus: kind === 'gpu' ? LocalGpuAllocator.forPool(cfg.gpu.pool, cfg.gpu.count, cfg.gpu.visibleDevices) : LocalGpuAllocator.forPool('cpu', 1),
    ...(kind === 'gpu' ? { embedder: new PersistentSentenceTransformersEmbedder({ python: path.join(cfg.venv, 'bin', 'python'), device: cfg.gpu.pool === 'cpu' ? 'cpu' : 'cuda' }) } : {}),
  };
}

/** A GPU worker's recipes run as Kubernetes Jobs with FORGELINE_JOB_RUNNER=kubernetes; every other worker runs them itself. */
function jobRunner(kind: WorkerKind, cfg: ForgelineConfig): JobRunner & { preempt(): void } {
  const { kind: runner, kubernetes, podName, podUid } = cfg.jobRunner;
  if (kind === 'gpu' && runner === 'kubernetes' && kubernetes) {
    return new KubernetesJobRunner({ ...kubernetes, pool: cfg.gpu.pool, ...(podName && podUid ? { ownerPod: { name: podName, uid: podUid } } : {}) });
  }
  return new LocalJobRunner({ python: path.join(cfg.venv, 'bin', 'python'), recipesDir: path.join(REPO_ROOT, 'workers', 'recipes') });
}

/** The embedding model's tokenizer for chunking, or none (re-embeds then fail saying so) when the venv lacks the model. */
function chunkTokenizer(cfg: ForgelineConfig): Pick<ActivityDeps, 'tokenizer'> {
  try {
    return { tokenizer: loadMiniLmTokenizer(cfg.venv) };
  } catch (err) {
    console.warn(`forgeline control worker: no tokenizer for re-embeds: ${(err as Error).message}`);
    return {};
  }
}

/** Adapters from config, then the activity set over them. */
export function buildActivities(kind: WorkerKind, cfg: ForgelineConfig, resources: WorkerResources = workerResources(kind, cfg), metrics?: WorkerMetrics) {
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
    jobs: metrics ? instrumentJobRunner(resources.jobs, metrics) : resources.jobs,
    gpus: resources.gpus,
    workDir: path.join(cfg.home, 'work', kind === 'gpu' ? gpuTaskQueue(cfg.gpu.pool) : 'control'),
    trackerProject: cfg.tracker.wandb.project,
    workerIdentity: workerIdentity(kind, cfg),
    pool: cfg.gpu.pool,
    ...(cfg.tracker.kind === 'wandb' ? { recipeTracking: recipeTracking(cfg) } : {}),
    // The drift monitor's prompt embeddings (all-MiniLM-L6-v2 from the venv; a process per call).
    ...(kind === 'control' ? { embedder: new SentenceTransformersEmbedder({ python: path.join(cfg.venv, 'bin', 'python') }) } : {}),
    // Re-embeds: the control worker chunks and writes the store, the pool's workers embed.
    ...(kind === 'control' ? chunkTokenizer(cfg) : {}),
    ...(resources.vectors ? { vectors: resources.vectors } : {}),
    ...(resources.embedder ? { embedder: metrics ? instrumentEmbedder(resources.embedder, metrics) : resources.embedder } : {}),
    // Serving (releases with spec.serving): vLLM replicas and the gateway's admin API.
    ...(kind === 'control' ? servingDeps(cfg) : {}),
    // Prompt releases from pushes read prompts/<name>/ at the commit, as the webhook receiver reads forgeline.yaml.
    ...(kind === 'control' ? { repos: repoReaderFor(cfg).reader } : {}),
    // Teams' GPU quotas (FORGELINE_QUOTAS): specs get admission plans, GPU stages take leases.
    ...(kind === 'control' && cfg.fleet.quotas ? { quotaFile: cfg.fleet.quotas } : {}),
    ...(resources.admission ? { admission: resources.admission } : {}),
  });
}

/** The control worker's serving ports, where configured (a release that needs a missing one fails with ServingNotConfigured). */
function servingDeps(cfg: ForgelineConfig): Pick<ActivityDeps, 'serving' | 'router' | 'servingDir' | 'launcher' | 'promptModels'> {
  const gatewayUrl = cfg.gateway.url ?? `http://${cfg.gateway.host === '0.0.0.0' ? '127.0.0.1' : cfg.gateway.host}:${cfg.gateway.port}`;
  return {
    servingDir: cfg.serving.dir,
    // Quantized candidates' own vLLM servers; under `forgeline dev` they die with the dev stack.
    launcher: new LocalModelLauncher({ stateDir: launchStateDir(cfg.serving.dir), ...(cfg.worker.parentPid ? { ownerPid: cfg.worker.parentPid } : {}), vllm: { extraArgs: cfg.serving.launchArgs } }),
    ...(cfg.serving.vllmUrls ? { serving: new VllmServingBackend({ urls: cfg.serving.vllmUrls }) } : {}),
    ...(cfg.gateway.adminToken ? { router: new GatewayTrafficRouter({ url: gatewayUrl, adminToken: cfg.gateway.adminToken }) } : {}),
    // Prompt evaluation: generation and judging through the gateway's OpenAI-compatible API.
    promptModels: gatewayModels({ baseUrl: gatewayUrl, apiKey: cfg.gateway.clientKey ?? cfg.gateway.devKey }),
  };
}

/** With the W&B tracker, recipes log their own stage runs: the project, and the only secrets they get. */
export function recipeTracking(cfg: ForgelineConfig): NonNullable<ActivityDeps['recipeTracking']> {
  const w = cfg.tracker.wandb;
  return {
    project: w.project,
    ...(w.entity ? { entity: w.entity } : {}),
    mode: w.mode,
    dir: path.join(cfg.home, 'wandb'),
    env: {
      WANDB_BASE_URL: w.baseUrl,
      WANDB_MODE: w.mode,
      ...(w.apiKey ? { WANDB_API_KEY: w.apiKey } : {}),
      ...(w.entity ? { WANDB_ENTITY: w.entity } : {}),
    },
  };
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
  /** Tracing to use instead of the configured one (tests: an in-memory exporter). A prebuilt bundle must hold its workflowModules. */
  tracing?: Tracing;
}

export interface ForgelineWorker {
  worker: Worker;
  /**
   * Stop gracefully (SIGTERM, SIGINT, the parent gone). The worker stops polling; on a GPU worker
   * running recipes are asked to save a checkpoint and exit, and get FORGELINE_SHUTDOWN_GRACE to
   * do so before they are cancelled. `worker.run()` returns once every task has ended. With a spot
   * `notice`, the attempts this stops fail as `WorkerPreempted`, naming it.
   */
  stop(notice?: SpotNotice): void;
  /** The shutdown grace in force (ms): FORGELINE_SHUTDOWN_GRACE, capped on a spot worker to fit the provider's notice. */
  shutdownGraceMs: number;
  /** Release what the worker holds (the vector store, the embedding process) once `worker.run()` has returned. */
  close(): Promise<void>;
}

/**
 * A control worker polls the control queue and runs workflows plus light activities; a GPU
 * worker polls `gpu-<pool>` and runs heavy activities, taking a task only when it has a GPU free
 * for it (gpuWorkerTuner).
 */
export async function createWorker(kind: WorkerKind, cfg: ForgelineConfig, opts: CreateWorkerOptions): Promise<ForgelineWorker> {
  const resources = workerResources(kind, cfg);
  // Opened on the first re-embed: a store that cannot be opened fails those, not the worker's start.
  if (kind === 'control') resources.vectors = new LazyVectorStore(cfg.vectors.store, () => createVectorStore(cfg.vectors));
  const taskQueue = opts.taskQueue ?? taskQueueFor(kind, cfg);
  // GPU leases and the admission workflows' holder checks, over the worker's own connection.
  if (kind === 'control') {
    const client = new Client({ connection: opts.connection, namespace: cfg.temporal.namespace });
    resources.admission = createAdmissionClient({ client, taskQueue, ...(cfg.fleet.quotas ? { quotaFile: cfg.fleet.quotas } : {}) });
  }
  // On the runtime's meter: exported with the SDK's metrics when FORGELINE_METRICS_PORT is set, dropped otherwise.
  const metrics = new WorkerMetrics(Runtime.instance().metricMeter.withTags({ worker_kind: kind, task_queue: taskQueue }));
  const stopGpuWatch = metrics.watchGpus(resources.gpus);
  // Tracing passed in belongs to the caller; the configured one is this worker's to shut down.
  const ownTracing = opts.tracing ? undefined : tracingFromConfig(cfg, `forgeline-${kind}-worker`);
  const tracing = opts.tracing ?? ownTracing;
  const close = async () => {
    stopGpuWatch();
    await resources.embedder?.close();
    await resources.vectors?.close();
    await ownTracing?.shutdown();
  };
  const common = {
    connection: opts.connection,
    namespace: cfg.temporal.namespace,
    taskQueue,
    identity: workerIdentity(kind, cfg),
    activities: buildActivities(kind, cfg, resources, metrics),
    ...(tracing ? { interceptors: tracing.workerInterceptors, sinks: tracing.sinks } : {}),
  };
  if (kind === 'control') {
    const workflows = opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: require.resolve('../workflows') };
    const worker = await Worker.create({ ...common, ...workflows });
    return { worker, stop: once(() => worker.shutdown()), shutdownGraceMs: 0, close };
  }
  // Spot: the attempts a preemption stops fail as WorkerPreempted, and the grace fits the notice.
  const preemption = new WorkerPreemption();
  const spot = cfg.worker.spot;
  const shutdownGraceMs = spot ? spotShutdownGraceMs(durationMs(cfg.worker.shutdownGrace), spot.provider, spot.pollSeconds * 1000) : durationMs(cfg.worker.shutdownGrace);
  const worker = await Worker.create({
    ...common,
    interceptors: { ...common.interceptors, activity: [...(common.interceptors?.activity ?? []), preemption.interceptor] },
    tuner: gpuWorkerTuner(resources.gpus, cfg.gpu.count),
    // Heartbeats carry training progress (step, loss, latest checkpoint) to operators and to the
    // next attempt: send them every few seconds rather than the SDK's default of up to 60 s.
    maxHeartbeatThrottleInterval: GPU_HEARTBEAT_THROTTLE_MS,
    // Without a grace time the SDK would cancel running training at once on shutdown.
    shutdownGraceTime: shutdownGraceMs,
  });
  const shutdown = once(() => {
    resources.jobs.preempt();
    worker.shutdown();
  });
  return {
    worker,
    // A notice seen after a SIGTERM (the cloud's own, at shutdown) still names the attempts' failures.
    stop: (notice?: SpotNotice) => {
      if (notice && !preemption.notice) {
        preemption.notice = notice;
        const running = preemption.runningAttempts();
        console.log(
          `forgeline gpu worker: ${notice.detail}, ${secondsLeft(notice)} s from now: no new tasks; ${running.length ? `asking ${running.length} running attempt(s) to checkpoint and stop (${running.join('; ')}), grace ${shutdownGraceMs / 1000} s` : 'nothing running'}`,
        );
      }
      shutdown();
    },
    shutdownGraceMs,
    close,
  };
}

/** `fn` on the first call only: a signal, the parent watch and a spot notice may all ask a worker to stop (a second shutdown() throws). */
function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

/**
 * Stop the worker when the process that started us (`forgeline dev`) goes away, so a killed
 * parent never leaves orphan workers behind.
 */
export function shutdownWithParent(worker: { shutdown(): void }, parentPid: number | undefined): void {
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
