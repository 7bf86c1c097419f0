/**
 * JobRunner that runs each recipe as a Kubernetes Job (batch/v1), through @kubernetes/client-node.
 * The recipe protocol (workers/recipes/PROTOCOL.md) is the local runner's: the same output reader
 * and the same exit mapping (src/adapters/recipe-run.ts); only what runs the process differs.
 *
 * What a job becomes:
 * - **A Job** named `fl-<recipe>-<hash>`, the hash of the Temporal activity that asked for it
 *   (workflow ID, activity ID, attempt; outside an activity: recipe, output directory and input),
 *   so a create repeated for the same attempt (a timed-out request, a runner restarted within the
 *   attempt) finds the Job already there and follows it instead of starting a second one.
 *   `backoffLimit: 0` and `restartPolicy: Never`: Temporal retries, not Kubernetes.
 *   `ttlSecondsAfterFinished` removes it after it ends, and an `ownerReference` to the GPU worker's
 *   pod (POD_NAME/POD_UID from the downward API) has the garbage collector delete it, and its pod,
 *   when that worker goes away: no Job outlives its stage.
 * - **Its input in a Secret** of the same name, owned by the Job (deleted with it): `spec.json`,
 *   mounted read-only at /var/run/forgeline/spec.json, and the job's own `env` (W&B keys), which
 *   therefore never appear in the Job's spec. A Secret holds at most 1 MiB; recipe inputs carry
 *   paths, not data, so a larger one is refused as InvalidSpec.
 * - **Its output directory on a shared volume**: `outDir` must lie under `sharedVolume.mountPath`,
 *   a ReadWriteMany PersistentVolumeClaim the GPU worker mounts at the same path (FORGELINE_HOME
 *   lives there), so the worker publishes what the Job wrote and checks checkpoint paths as the
 *   local runner does.
 * - **Its GPUs** as `resources.limits['nvidia.com/gpu']` = the number of GPUs the stage leased
 *   (`gpuIndices.length`; the device plugin picks which, and CUDA_VISIBLE_DEVICES is 0..n-1 in the
 *   container), on the worker pool's nodes (`pools.<pool>`: nodeSelector, tolerations,
 *   runtimeClassName, priorityClassName). With `kueueQueue` the Job carries
 *   `kueue.x-k8s.io/queue-name` and is created suspended, for Kueue to admit.
 * - **Labels** `app.kubernetes.io/managed-by: forgeline`, `forgeline.dev/workflow-id`, `stage`
 *   (the activity type), `pool`, `recipe` and `team` (the activity's fairness key, which GPU
 *   admission sets to the lifecycle's team), in label-safe forms; the full workflow ID and the
 *   attempt are annotations.
 *
 * Following it: pods of the Job are watched; once the container runs, its log is followed line by
 * line through RecipeOutput (the API merges stdout and stderr: lines that are protocol events are
 * events, every other line is a log line on `stderr`). Should the log stream end before the
 * container does, the whole log is read again once it has and the lines not yet seen are taken.
 * The progress clock starts when the container runs (not while the Job waits for a node or for
 * Kueue).
 *
 * Outcomes are the local runner's (recipeOutcome), plus what only a cluster says: `OOMKilled` is a
 * retryable crash that says so; an image that cannot be pulled (`ImagePullBackOff`) a retryable
 * "could not start" (the Job is deleted), an invalid image name a terminal InvalidConfig; an
 * evicted or disrupted pod (node drain, spot reclaim, scheduler preemption) a retryable
 * RecipePreemptedError; a Job deleted by someone else, or failed without a pod, a retryable crash.
 *
 * Stopping: an abort, a hung recipe, a protocol error or a failing `onEvent` delete the Job with
 * `propagationPolicy: Foreground`; the run settles once its pod is gone (at most the pod's grace
 * period plus 30 s later). `checkpointSignal` and `preempt()` (the worker shutting down) delete it
 * too: the pod's SIGTERM reaches a small shell wrapper that turns it into the protocol's SIGUSR1
 * (once a second, until the recipe exits), so a recipe that can checkpoints and exits 75 within
 * `terminationGracePeriodSeconds`, and the job rejects with a retryable RecipePreemptedError.
 */
import { createHash } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as K8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { Context } from '@temporalio/activity';
import { ErrorType } from '../contracts/errors';
import type { KubernetesJobRunnerConfig } from '../config/kubernetes';
import { ForgelineError } from '../ports/errors';
import type { JobRunner, JobSpec } from '../ports/job-runner';
import {
  abortReason,
  EXIT_PREEMPTED,
  readLines,
  RECIPE_NAME,
  RecipeFailedError,
  recipeOutcome,
  RecipeOutput,
  RecipePreemptedError,
  type RecipeEnding,
  type RecipeRunDetails,
} from './recipe-run';

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

export interface KubernetesJobRunnerOptions extends KubernetesJobRunnerConfig {
  /** The GPU pool of the worker this runner belongs to (`gpu.pool`). */
  pool: string;
  /** The worker's own pod (downward API POD_NAME, POD_UID): owner of every Job, so its Jobs go with it. */
  ownerPod?: { name: string; uid: string };
  /** Added to every Job and pod (e.g. forgeline.dev/team). */
  labels?: Record<string, string>;
  /** How often a broken watch is re-established. Default 1 s. */
  rewatchDelayMs?: number;
}

export const KUBE_CONTAINER = 'recipe';
export const SPEC_MOUNT = '/var/run/forgeline';
export const KUEUE_QUEUE_LABEL = 'kueue.x-k8s.io/queue-name';
/** Largest Secret the API server stores (etcd's request limit): specs must fit in it. */
const MAX_SECRET_BYTES = 1024 * 1024;
/** After its Job is gone, how long a run waits for the pod's last word (its watch is a separate stream). */
const JOB_GONE_GRACE_MS = 5_000;
/** Waiting reasons that mean the image will not come (after the kubelet's own retry). */
const IMAGE_PULL_FAILED = new Set(['ImagePullBackOff', 'ErrImageNeverPull']);
/**
 * PID 1 of the recipe container: the recipe as its child, and the pod's SIGTERM turned into the
 * protocol's "checkpoint and stop" (SIGUSR1, again every second until it exits); exits with the
 * recipe's exit code.
 */
export const PREEMPT_WRAPPER = [
  'ask() { while kill -USR1 "$pid" 2>/dev/null; do sleep 1; done & }',
  // A SIGTERM that comes before the recipe's pid is known is remembered and acted on just after.
  'stop() { stopping=1; if [ -n "$pid" ]; then ask; fi; }',
  'pid=; stopping=',
  'trap stop TERM',
  '"$@" & pid=$!',
  'if [ -n "$stopping" ]; then ask; fi',
  'while :; do wait "$pid"; rc=$?; kill -0 "$pid" 2>/dev/null || exit "$rc"; done',
].join('\n');

// ---------------------------------------------------------------------------------------------
// Names and labels
// ---------------------------------------------------------------------------------------------

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

/** A label value for any text: allowed characters kept, at most 63, distinct texts stay distinct. */
export function labelValue(text: string): string {
  const clean = text.replace(/[^A-Za-z0-9._-]+/g, '.').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  if (clean.length <= 63 && clean === text) return clean;
  return `${clean.slice(0, 52).replace(/[^A-Za-z0-9]+$/, '')}-${sha(text).slice(0, 10)}`;
}

interface JobIdentity {
  /** What makes one attempt of one stage unique. */
  key: string;
  workflowId?: string;
  stage: string;
  attempt?: number;
  team?: string;
}

/** The Temporal activity running this job, where there is one. */
function jobIdentity(job: JobSpec): JobIdentity {
  try {
    const info = Context.current().info;
    const workflowId = info.workflowExecution?.workflowId ?? info.activityId;
    // A lifecycle's team is its GPU stages' fairness key (src/contracts/quota.ts, temporalPriority).
    const team = info.priority?.fairnessKey;
    return { key: JSON.stringify([workflowId, info.workflowExecution?.runId, info.activityId, info.attempt, job.recipe]), workflowId, stage: info.activityType, attempt: info.attempt, ...(team ? { team } : {}) };
  } catch {
    return { key: JSON.stringify([job.recipe, job.outDir, job.input]), stage: job.recipe };
  }
}

/** `fl-<recipe>-<hash>`: at most 52 characters, so that pod names (job name + 6) stay valid labels. */
export function kubeJobName(recipe: string, key: string): string {
  const slug = recipe.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 32).replace(/-+$/, '');
  return `fl-${slug || 'recipe'}-${sha(key).slice(0, 16)}`;
}

// ---------------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------------

type K8sModule = typeof K8s;
interface Clients {
  k8s: K8sModule;
  kc: K8s.KubeConfig;
  batch: K8s.BatchV1Api;
  core: K8s.CoreV1Api;
}

/** Retrying cannot help: the runner's configuration is wrong (an image name that cannot be). */
export class KubernetesJobConfigError extends ForgelineError {
  constructor(message: string) {
    super(ErrorType.InvalidConfig, message, true);
  }
}

export class KubernetesJobRunner implements JobRunner {
  private clients: Promise<Clients> | undefined;
  private readonly namespaceValue: string | undefined;
  private preempting = false;
  /** Stops of the runs in progress, for preempt(). */
  private readonly running = new Set<() => void>();

  constructor(private readonly options: KubernetesJobRunnerOptions) {
    this.namespaceValue = options.namespace;
  }

  /** Namespace the Jobs go to. */
  async namespace(): Promise<string> {
    const { kc } = await this.connect();
    return this.namespaceValue ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  }

  private connect(): Promise<Clients> {
    this.clients ??= (async () => {
      const k8s = await import('@kubernetes/client-node');
      const kc = new k8s.KubeConfig();
      if (this.options.kubeconfig) kc.loadFromFile(this.options.kubeconfig);
      else kc.loadFromDefault(); // in a pod: its service account and namespace
      return { k8s, kc, batch: kc.makeApiClient(k8s.BatchV1Api), core: kc.makeApiClient(k8s.CoreV1Api) };
    })();
    return this.clients;
  }

  /**
   * For a worker that is shutting down: every running Job is deleted, its pod gets SIGTERM and
   * the recipe the protocol's SIGUSR1 (checkpoint and exit 75); new jobs are refused.
   */
  preempt(): void {
    if (this.preempting) return;
    this.preempting = true;
    for (const stop of this.running) stop();
  }

  async run(job: JobSpec): Promise<Record<string, unknown>> {
    const { recipe } = job;
    const notStarted: RecipeRunDetails = { recipe, exitCode: null, signal: null, stderrTail: [] };
    if (!RECIPE_NAME.test(recipe)) {
      throw new RecipeFailedError(ErrorType.InvalidSpec, `invalid recipe name ${JSON.stringify(recipe)}: expected the file name of a recipe without .py, e.g. trl-sft-lora`, notStarted);
    }
    const mount = path.resolve(this.options.sharedVolume.mountPath);
    const outDir = path.resolve(job.outDir);
    if (path.relative(mount, outDir).startsWith('..') || outDir === mount) {
      throw new RecipeFailedError(
        ErrorType.InvalidSpec,
        `output directory ${outDir} is not on the shared volume (${mount}, claim ${this.options.sharedVolume.claimName}): a Kubernetes Job can only write there; put FORGELINE_HOME under ${mount}`,
        notStarted,
      );
    }
    const spec = `${JSON.stringify({ device: job.gpuIndices.length ? 'cuda' : 'cpu', ...job.input }, null, 2)}\n`;
    const inputBytes = Buffer.byteLength(spec) + Object.entries(job.env ?? {}).reduce((n, [k, v]) => n + k.length + Buffer.byteLength(v), 0);
    if (inputBytes > MAX_SECRET_BYTES - 4096) {
      throw new RecipeFailedError(ErrorType.InvalidSpec, `recipe ${recipe}: its input is ${inputBytes} bytes, more than a Kubernetes Secret holds (1 MiB): pass large data as files on the shared volume and their paths in the input`, notStarted);
    }
    if (job.signal?.aborted) throw abortReason(job.signal);
    if (this.preempting) throw new RecipePreemptedError(`recipe ${recipe} not started: this worker is shutting down; a retry runs it elsewhere`, notStarted);

    const clients = await this.connect();
    const namespace = await this.namespace();
    const identity = jobIdentity(job);
    const name = kubeJobName(recipe, identity.key);
    const run = new KubeJobRun(clients, this.options, namespace, name, job, identity, spec, () => this.preempting);
    const stop = () => run.preempt('this worker is shutting down');
    this.running.add(stop);
    try {
      return await run.run();
    } finally {
      this.running.delete(stop);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------------------------

interface Terminated {
  exitCode: number;
  reason?: string;
  message?: string;
}

/** The status code of a failed client call (ApiException), if any. */
function statusCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

class KubeJobRun {
  private readonly output: RecipeOutput;
  private readonly details: () => RecipeRunDetails;
  private uid: string | undefined;
  private pod: string | undefined;
  private terminated: Terminated | undefined;
  private logState: 'none' | 'following' | 'ended' | 'done' = 'none';
  private logLines = 0;
  private logEndedEarly = false;
  private hung = false;
  private deleting: Promise<void> | undefined;
  /** Why the pod went away without our asking (eviction, disruption), for RecipePreemptedError. */
  private disrupted: string | undefined;
  private preemptedBecause: string | undefined;
  private startError: { message: string; terminal: boolean } | undefined;
  /** The pod (or the whole Job) went away; nothing more will come. */
  private gone: string | undefined;
  private progressTimer: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private jobGoneTimer: NodeJS.Timeout | undefined;
  private readonly watches: AbortController[] = [];
  private wake: () => void = () => {};
  private closed = false;

  constructor(
    private readonly c: Clients,
    private readonly options: KubernetesJobRunnerOptions,
    private readonly namespace: string,
    private readonly name: string,
    private readonly job: JobSpec,
    private readonly identity: JobIdentity,
    private readonly spec: string,
    private readonly preempting: () => boolean,
  ) {
    this.output = new RecipeOutput(job, { progressed: () => this.progressed(), stop: () => void this.stop() });
    this.details = () => ({ recipe: job.recipe, exitCode: this.terminated?.exitCode ?? null, signal: null, stderrTail: [...this.output.stderrTail] });
  }

  async run(): Promise<Record<string, unknown>> {
    const { signal, checkpointSignal } = this.job;
    const onAbort = () => void this.stop();
    const onCheckpoint = () => this.preempt('its stage asked it to checkpoint and stop');
    signal?.addEventListener('abort', onAbort, { once: true });
    checkpointSignal?.addEventListener('abort', onCheckpoint, { once: true });
    try {
      await this.createOrAdopt();
      if (signal?.aborted) void this.stop();
      if (checkpointSignal?.aborted || this.preempting()) onCheckpoint();
      this.watchJob();
      this.watchPods();
      await new Promise<void>((resolve) => {
        this.wake = () => {
          if (this.finished()) resolve();
        };
        this.wake();
      });
      await this.output.drained();
    } finally {
      this.closed = true;
      signal?.removeEventListener('abort', onAbort);
      checkpointSignal?.removeEventListener('abort', onCheckpoint);
      clearTimeout(this.progressTimer);
      clearTimeout(this.settleTimer);
      clearTimeout(this.jobGoneTimer);
      for (const w of this.watches) w.abort();
    }
    return this.outcome();
  }

  /** True once nothing more can change the outcome. */
  private finished(): boolean {
    if (this.gone) return true;
    if (this.terminated) return this.logState === 'done';
    return false;
  }

  private outcome(): Record<string, unknown> {
    const t = this.terminated;
    const { recipe } = this.job;
    if (this.startError?.terminal && !this.job.signal?.aborted) {
      throw new KubernetesJobConfigError(`recipe ${recipe} could not start: ${this.startError.message}`);
    }
    let exitCode: number | null = t ? t.exitCode : null;
    let sig: NodeJS.Signals | null = null;
    if (exitCode !== null && exitCode > 128 && exitCode <= 128 + 64) {
      const found = Object.entries(osConstants.signals).find(([, n]) => n === exitCode! - 128);
      if (found) {
        sig = found[0] as NodeJS.Signals;
        exitCode = null;
      }
    }
    const stoppedForUs = this.preemptedBecause !== undefined && (!t || (t.exitCode !== 0 && t.exitCode !== 2));
    const disrupted = this.disrupted !== undefined && (!t || (t.exitCode !== 0 && t.exitCode !== 2));
    const end: RecipeEnding = {
      recipe,
      output: this.output,
      exitCode,
      signal: sig,
      aborted: this.job.signal,
      hungAfterMs: this.hung ? this.job.progressTimeoutMs : undefined,
      startError: this.startError ? { message: this.startError.message } : !t && this.gone && !stoppedForUs && !disrupted ? { message: this.gone } : undefined,
      preempted: t?.exitCode === EXIT_PREEMPTED || stoppedForUs || disrupted,
      preemptedBecause: this.preemptedBecause ?? this.disrupted,
      killedHow: t?.reason === 'OOMKilled' ? `was OOMKilled (exit ${t.exitCode}): its container went over its memory limit${this.options.pools[this.options.pool]?.memory ? ` (${this.options.pools[this.options.pool]!.memory})` : ''}` : undefined,
    };
    return recipeOutcome(end);
  }

  // ---- creation ---------------------------------------------------------------------------------

  private labels(): Record<string, string> {
    return {
      ...this.options.labels,
      'app.kubernetes.io/managed-by': 'forgeline',
      'app.kubernetes.io/component': 'recipe-job',
      'forgeline.dev/recipe': labelValue(this.job.recipe),
      'forgeline.dev/stage': labelValue(this.identity.stage),
      'forgeline.dev/pool': labelValue(this.options.pool),
      ...(this.identity.workflowId ? { 'forgeline.dev/workflow-id': labelValue(this.identity.workflowId) } : {}),
      ...(this.identity.team ? { 'forgeline.dev/team': labelValue(this.identity.team) } : {}),
    };
  }

  /** The Job object (batch/v1) this run creates. */
  jobBody(): K8s.V1Job {
    const o = this.options;
    const pool = o.pools[o.pool];
    const gpus = this.job.gpuIndices.length;
    const env: K8s.V1EnvVar[] = [
      ...Object.entries(o.env).map(([name, value]) => ({ name, value })),
      { name: 'HF_HUB_OFFLINE', value: '1' },
      { name: 'TRANSFORMERS_OFFLINE', value: '1' },
      { name: 'HF_DATASETS_OFFLINE', value: '1' },
      { name: 'PYTHONUNBUFFERED', value: '1' },
      // The device plugin exposes the leased GPUs as 0..n-1; none on CPU.
      { name: 'CUDA_VISIBLE_DEVICES', value: Array.from({ length: gpus }, (_, i) => i).join(',') },
      ...Object.keys(this.job.env ?? {}).map((name) => ({ name, valueFrom: { secretKeyRef: { name: this.name, key: `env.${name}` } } })),
    ];
    const resources: K8s.V1ResourceRequirements = {
      limits: { ...(gpus ? { 'nvidia.com/gpu': String(gpus) } : {}), ...(pool?.cpu ? { cpu: pool.cpu } : {}), ...(pool?.memory ? { memory: pool.memory } : {}) },
      ...(pool?.cpu || pool?.memory ? { requests: { ...(pool.cpu ? { cpu: pool.cpu } : {}), ...(pool.memory ? { memory: pool.memory } : {}) } } : {}),
    };
    const labels = this.labels();
    return {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: this.name,
        namespace: this.namespace,
        labels: { ...labels, ...(o.kueueQueue ? { [KUEUE_QUEUE_LABEL]: o.kueueQueue } : {}) },
        annotations: {
          'forgeline.dev/recipe-input-sha256': sha(this.spec),
          ...(this.identity.workflowId ? { 'forgeline.dev/workflow-id': this.identity.workflowId } : {}),
          ...(this.identity.attempt !== undefined ? { 'forgeline.dev/attempt': String(this.identity.attempt) } : {}),
        },
        ...(o.ownerPod ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: o.ownerPod.name, uid: o.ownerPod.uid, controller: false, blockOwnerDeletion: false }] } : {}),
      },
      spec: {
        backoffLimit: 0,
        ttlSecondsAfterFinished: o.ttlSecondsAfterFinished,
        ...(o.activeDeadlineSeconds ? { activeDeadlineSeconds: o.activeDeadlineSeconds } : {}),
        // Kueue admits a Job by unsuspending it.
        ...(o.kueueQueue ? { suspend: true } : {}),
        template: {
          metadata: { labels },
          spec: {
            restartPolicy: 'Never',
            terminationGracePeriodSeconds: o.terminationGracePeriodSeconds,
            enableServiceLinks: false,
            automountServiceAccountToken: false,
            ...(o.serviceAccount ? { serviceAccountName: o.serviceAccount } : {}),
            ...(pool && Object.keys(pool.nodeSelector).length ? { nodeSelector: pool.nodeSelector } : {}),
            ...(pool?.tolerations.length ? { tolerations: pool.tolerations } : {}),
            ...(pool?.runtimeClassName ? { runtimeClassName: pool.runtimeClassName } : {}),
            ...(pool?.priorityClassName ? { priorityClassName: pool.priorityClassName } : {}),
            containers: [
              {
                name: KUBE_CONTAINER,
                image: o.image,
                imagePullPolicy: o.imagePullPolicy,
                command: ['/bin/sh', '-c', PREEMPT_WRAPPER, 'forgeline-recipe'],
                args: [o.python, path.posix.join(o.recipesDir, `${this.job.recipe}.py`), '--spec', `${SPEC_MOUNT}/spec.json`, '--out', path.resolve(this.job.outDir)],
                workingDir: '/tmp',
                env,
                resources,
                volumeMounts: [
                  { name: 'input', mountPath: SPEC_MOUNT, readOnly: true },
                  { name: 'shared', mountPath: o.sharedVolume.mountPath },
                ],
              },
            ],
            volumes: [
              { name: 'input', secret: { secretName: this.name, items: [{ key: 'spec.json', path: 'spec.json' }] } },
              { name: 'shared', persistentVolumeClaim: { claimName: o.sharedVolume.claimName } },
            ],
          },
        },
      },
    };
  }

  private async createOrAdopt(): Promise<void> {
    const body = this.jobBody();
    let created: K8s.V1Job;
    try {
      created = await this.c.batch.createNamespacedJob({ namespace: this.namespace, body });
    } catch (err) {
      if (statusCode(err) !== 409) throw this.apiError('create Job', err);
      // The same attempt created it before (a retried request, a restarted runner): follow it.
      created = await this.c.batch.readNamespacedJob({ name: this.name, namespace: this.namespace });
      const theirs = created.metadata?.annotations?.['forgeline.dev/recipe-input-sha256'];
      if (theirs !== body.metadata!.annotations!['forgeline.dev/recipe-input-sha256']) {
        throw new RecipeFailedError(ErrorType.InvalidSpec, `Job ${this.namespace}/${this.name} exists with another input (sha256 ${String(theirs)}): the same attempt of ${this.job.recipe} was started with a different spec`, this.details());
      }
    }
    this.uid = created.metadata?.uid;
    const secret: K8s.V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: this.name,
        namespace: this.namespace,
        labels: this.labels(),
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: this.name, uid: this.uid!, controller: false, blockOwnerDeletion: false }],
      },
      stringData: { 'spec.json': this.spec, ...Object.fromEntries(Object.entries(this.job.env ?? {}).map(([k, v]) => [`env.${k}`, v])) },
    };
    try {
      await this.c.core.createNamespacedSecret({ namespace: this.namespace, body: secret });
    } catch (err) {
      if (statusCode(err) !== 409) {
        await this.deleteJob();
        throw this.apiError('create the input Secret', err);
      }
    }
  }

  private apiError(what: string, err: unknown): Error {
    const code = statusCode(err);
    const body = (err as { body?: unknown }).body;
    const said = typeof body === 'string' ? body : body ? JSON.stringify(body) : (err as Error).message;
    const message = `Kubernetes: could not ${what} ${this.namespace}/${this.name}${code ? ` (HTTP ${code})` : ''}: ${said}`;
    // Forbidden, not found (namespace), invalid: configuration, not luck.
    if (code === 403 || code === 404 || code === 422 || code === 400) return new KubernetesJobConfigError(message);
    return new Error(message, { cause: err });
  }

  // ---- stopping ---------------------------------------------------------------------------------

  /** Deletes the Job and its pod (Foreground: the Job goes once its pod has). Idempotent. */
  private stop(): Promise<void> {
    this.deleting ??= this.deleteJob();
    // Settle even if the API never tells us the pod is gone.
    this.settleTimer ??= setTimeout(() => {
      this.gone ??= `its Job ${this.namespace}/${this.name} was deleted and its pod did not report how it ended`;
      this.wake();
    }, (this.options.terminationGracePeriodSeconds + 30) * 1000);
    return this.deleting;
  }

  preempt(because: string): void {
    this.preemptedBecause ??= because;
    void this.stop();
  }

  private async deleteJob(): Promise<void> {
    try {
      await this.c.batch.deleteNamespacedJob({ name: this.name, namespace: this.namespace, propagationPolicy: 'Foreground' });
    } catch (err) {
      if (statusCode(err) !== 404) process.emitWarning(`forgeline: could not delete Job ${this.namespace}/${this.name}: ${(err as Error).message}`);
    }
  }

  private progressed(): void {
    const ms = this.job.progressTimeoutMs;
    if (!ms || this.closed) return;
    clearTimeout(this.progressTimer);
    this.progressTimer = setTimeout(() => {
      this.hung = true;
      void this.stop();
    }, ms);
  }

  // ---- watching ---------------------------------------------------------------------------------

  /** Lists, then watches from the list's version; again after the watch ends, until the run is over. */
  private follow(watchPath: string, query: Record<string, string>, list: () => Promise<{ metadata?: { resourceVersion?: string }; items: object[] }>, onObject: (type: string, obj: object) => void): void {
    const loop = async () => {
      while (!this.closed) {
        try {
          const listed = await list();
          for (const item of listed.items) onObject('ADDED', item);
          if (this.closed) return;
          await new Promise<void>((resolve) => {
            const watch = new this.c.k8s.Watch(this.c.kc);
            watch
              .watch(watchPath, { ...query, resourceVersion: listed.metadata?.resourceVersion, allowWatchBookmarks: true }, (type, obj: object) => {
                if (type !== 'BOOKMARK' && type !== 'ERROR') onObject(type, obj);
              }, () => resolve())
              .then((ctl) => (this.closed ? ctl.abort() : this.watches.push(ctl)), () => resolve());
          });
        } catch {
          /* the API server is briefly unreachable: try again */
        }
        if (!this.closed) await sleep(this.options.rewatchDelayMs ?? 1_000);
      }
    };
    void loop();
  }

  private watchJob(): void {
    const fieldSelector = `metadata.name=${this.name}`;
    this.follow(`/apis/batch/v1/namespaces/${this.namespace}/jobs`, { fieldSelector }, () => this.c.batch.listNamespacedJob({ namespace: this.namespace, fieldSelector }), (type, obj) => {
      const job = obj as K8s.V1Job;
      if (job.metadata?.uid !== this.uid) return;
      if (type === 'DELETED') {
        if (this.terminated || this.jobGoneTimer) return;
        // The pod's own stream may still be on its way (a Job removed at once by a TTL of 0 or by
        // the garbage collector): give it a moment to say how the container ended.
        const why = this.deleting ? `its Job ${this.namespace}/${this.name} was deleted` : `its Job ${this.namespace}/${this.name} was deleted by someone else (${job.status?.succeeded ? 'after it succeeded' : 'before its pod reported an end'})`;
        this.jobGoneTimer = setTimeout(() => {
          this.gone ??= why;
          this.wake();
        }, JOB_GONE_GRACE_MS);
        return;
      }
      const failed = job.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
      // A Job that failed before its pod could (activeDeadlineSeconds, a pod that never was): over.
      if (failed && !this.pod && !this.terminated) {
        this.gone ??= `its Job failed before a pod ran: ${failed.reason ?? ''} ${failed.message ?? ''}`.trim();
        this.wake();
      }
    });
  }

  private watchPods(): void {
    const labelSelector = `batch.kubernetes.io/controller-uid=${this.uid}`;
    this.follow(`/api/v1/namespaces/${this.namespace}/pods`, { labelSelector }, () => this.c.core.listNamespacedPod({ namespace: this.namespace, labelSelector }), (type, obj) => this.onPod(type, obj as K8s.V1Pod));
  }

  private onPod(type: string, pod: K8s.V1Pod): void {
    const name = pod.metadata?.name;
    if (!name) return;
    this.pod ??= name;
    if (name !== this.pod) return; // backoffLimit 0: one pod; a stray one is not ours to follow
    const status = pod.status;
    const container = status?.containerStatuses?.find((s) => s.name === KUBE_CONTAINER);
    const disruption = status?.conditions?.find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
    if (disruption) this.disrupted ??= `its pod was disrupted (${disruption.reason ?? 'DisruptionTarget'}${disruption.message ? `: ${disruption.message}` : ''})`;
    if (status?.reason === 'Evicted' || status?.reason === 'Preempting') this.disrupted ??= `its pod was ${status.reason === 'Evicted' ? 'evicted' : 'preempted'}${status.message ? ` (${status.message})` : ''}`;

    const waiting = container?.state?.waiting;
    if (waiting?.reason && !this.startError && !container?.state?.running) {
      if (waiting.reason === 'InvalidImageName') {
        this.startError = { message: `image ${this.options.image}: ${waiting.reason}: ${waiting.message ?? ''}`.trim(), terminal: true };
        void this.stop().then(() => this.wake());
      } else if (IMAGE_PULL_FAILED.has(waiting.reason)) {
        this.startError = { message: `image ${this.options.image} cannot be pulled (${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''})`, terminal: false };
        void this.stop().then(() => this.wake());
      }
    }
    if (container?.state?.running || container?.state?.terminated) this.startLog();
    const term = container?.state?.terminated;
    if (term && !this.terminated) {
      this.terminated = { exitCode: term.exitCode, reason: term.reason, message: term.message };
      clearTimeout(this.progressTimer);
      if (this.logState === 'ended') void this.catchUpLog();
    }
    if (type === 'DELETED' && !this.terminated) {
      this.gone ??= this.disrupted ?? `its pod ${name} was deleted before its container ended`;
    } else if (!this.terminated && status?.phase === 'Failed') {
      this.gone ??= this.disrupted ?? `its pod ${name} failed: ${status.reason ?? ''} ${status.message ?? ''}`.trim();
    }
    this.wake();
  }

  // ---- the log ----------------------------------------------------------------------------------

  private startLog(): void {
    if (this.logState !== 'none' || !this.pod) return;
    this.progressed(); // the clock runs from the container's start
    this.followLog();
  }

  /** Follows the container's log from its start, skipping the lines already taken (after a reconnect). */
  private followLog(): void {
    this.logState = 'following';
    const skip = this.logLines;
    let n = 0;
    const stream = new PassThrough();
    const done = readLines(stream, (line) => {
      if (n++ >= skip) this.line(line);
    });
    const log = new this.c.k8s.Log(this.c.kc);
    log.log(this.namespace, this.pod!, KUBE_CONTAINER, stream, { follow: true }).then(
      (ctl) => {
        if (this.closed) ctl.abort();
        else this.watches.push(ctl);
      },
      () => stream.end(), // not ready (yet): follow again, or read it all once the container ended
    );
    void done.then(async () => {
      this.logState = 'ended';
      if (this.terminated) return void this.catchUpLog();
      // The stream ended while the container runs (an API server restart, a proxy's timeout), or
      // just before its end is reported: follow again from where it broke.
      this.logEndedEarly = true;
      await sleep(this.options.rewatchDelayMs ?? 1_000);
      if (!this.terminated && !this.closed && this.logState === 'ended') this.followLog();
    });
  }

  private line(line: string): void {
    this.logLines++;
    // The API merges stdout and stderr; recipes print only events on stdout.
    if (line.trimStart().startsWith('{')) this.output.stdout(line);
    else this.output.stderr(line);
  }

  /** After the container ended: takes the lines a stream that ended early missed, then settles. */
  private async catchUpLog(): Promise<void> {
    if (this.logState === 'done') return;
    if (this.logEndedEarly || this.logLines === 0) {
      this.logEndedEarly = false;
      try {
        const text = await this.c.core.readNamespacedPodLog({ name: this.pod!, namespace: this.namespace, container: KUBE_CONTAINER });
        const lines = String(text).split('\n');
        if (lines.at(-1) === '') lines.pop();
        const seen = this.logLines;
        for (const l of lines.slice(seen)) this.line(l.replace(/\r$/, ''));
      } catch {
        /* the pod is gone already: what was streamed is all there is */
      }
    }
    this.logState = 'done';
    this.wake();
  }
}
