/**
 * The dev stack's autoscaler of GPU worker processes (issue 13, item 4): it reads the backlog of
 * each `gpu-<pool>` activity task queue from Temporal and starts or stops local worker processes,
 * with the formula and the knobs of KEDA's Temporal scaler and the HPA behind it, so a pool scales
 * under `forgeline dev` as it does in a cluster:
 *
 * - desired workers = ceil(backlog / targetQueueSize), clamped to [min, max] (the HPA's formula
 *   for an AverageValue target of targetQueueSize per replica);
 * - a pool at zero is activated only once the backlog is above activationTargetQueueSize, and
 *   scaled back to zero cooldownSeconds after it last was (KEDA's activation and cooldownPeriod);
 *   while active it keeps at least one worker (the HPA's minimum is 1);
 * - scale-up is immediate; scale-down goes to the highest count recommended within the last
 *   stabilizationSeconds (the HPA's scale-down stabilization window), so a backlog that drains
 *   between two polls does not stop a worker that the next burst needs;
 * - optionally, where nvidia-smi answers, no scale-down while the GPUs are busy
 *   (busyUtilizationPercent): the backlog counts tasks not yet started, never running ones, and
 *   GPU utilisation is the signal that sees them. On CPU there is no such signal: running
 *   activities are invisible to the backlog, which is why stopping is always graceful.
 *
 * `decideScale` is pure (table-tested); `Autoscaler` drives it: it reads the signal, logs every
 * change with its reason, and stops a worker with SIGTERM, so its running recipes checkpoint and
 * their retries resume elsewhere; a worker is killed only after the grace time has passed.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { z } from 'zod';
import type { AutoscalePoolSchema } from '../config/schema';
import { gpuTaskQueue } from '../contracts/task-queues';

export type PoolScalePolicy = z.output<typeof AutoscalePoolSchema>;

/** What the autoscaler reads for one pool at one moment. */
export interface PoolSignal {
  /** Activity tasks scheduled on `gpu-<pool>` and not yet started (Temporal's approximate backlog count). */
  backlog: number;
  /** Age of the oldest of them, seconds (0 when none). */
  backlogAgeSeconds: number;
  /** Mean GPU utilisation in percent, where nvidia-smi answers; undefined elsewhere (CPU machines). */
  gpuUtilizationPercent?: number;
}

/** What `decideScale` remembers between calls, per pool. */
export interface PoolScaleState {
  /** When the backlog was last above activationTargetQueueSize (ms since the epoch). */
  lastActiveAt?: number;
  /** Recommendations within the stabilization window, oldest first. */
  recommendations: Array<{ at: number; workers: number }>;
}

export interface ScaleDecision {
  current: number;
  desired: number;
  /** The backlog is above the activation threshold. */
  active: boolean;
  /** One sentence: the signal and the rule that gave `desired`. */
  reason: string;
}

export const initialScaleState = (): PoolScaleState => ({ recommendations: [] });

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/**
 * How many workers a pool should have now, given `current` workers, the signal and the state of
 * earlier calls. Pure: returns the decision and the next state.
 */
export function decideScale(policy: PoolScalePolicy, state: PoolScaleState, current: number, signal: PoolSignal, now: number): { decision: ScaleDecision; state: PoolScaleState } {
  const { min, max, targetQueueSize, activationTargetQueueSize: activation, cooldownSeconds, stabilizationSeconds } = policy;
  const active = signal.backlog > activation;
  const lastActiveAt = active ? now : state.lastActiveAt;
  const seen = `backlog ${signal.backlog}${signal.backlog > 0 ? ` (oldest ${Math.round(signal.backlogAgeSeconds)}s)` : ''}${signal.gpuUtilizationPercent !== undefined ? `, GPU utilisation ${Math.round(signal.gpuUtilizationPercent)}%` : ''}`;
  const decide = (desired: number, reason: string, recommendations = state.recommendations) => ({
    decision: { current, desired, active, reason: `${seen}: ${reason}` },
    state: { ...(lastActiveAt !== undefined ? { lastActiveAt } : {}), recommendations },
  });

  if (min === 0 && !active) {
    const idleFor = lastActiveAt === undefined ? Infinity : (now - lastActiveAt) / 1000;
    if (current === 0) return decide(0, `at most the activation threshold ${activation}: stays at zero`, []);
    if (idleFor >= cooldownSeconds) {
      return decide(0, `at most the activation threshold ${activation} for ${Number.isFinite(idleFor) ? `${Math.round(idleFor)}s` : 'ever'} (cooldown ${cooldownSeconds}s): scale to zero`, []);
    }
  }
  const floor = Math.max(min, 1);
  const raw = Math.ceil(signal.backlog / targetQueueSize);
  const recommended = clamp(raw, floor, max);
  let why = `ceil(${signal.backlog}/${targetQueueSize}) = ${raw}`;
  if (recommended !== raw) why += `, within [${floor}, ${max}]: ${recommended}`;
  const windowStart = now - stabilizationSeconds * 1000;
  const recommendations = [...state.recommendations.filter((r) => r.at > windowStart), { at: now, workers: recommended }];
  if (recommended >= current) return decide(recommended, why, recommendations);
  // Scale down only to the highest recommendation of the window.
  const stabilized = Math.max(...recommendations.map((r) => r.workers));
  if (stabilized > recommended) why += `; the highest within the ${stabilizationSeconds}s stabilization window is ${stabilized}`;
  let desired = Math.min(current, stabilized);
  const busy = policy.busyUtilizationPercent;
  if (desired < current && busy !== undefined && signal.gpuUtilizationPercent !== undefined && signal.gpuUtilizationPercent >= busy) {
    desired = current;
    why += `; GPUs busy (≥ ${busy}%): no scale-down`;
  }
  return decide(desired, why, recommendations);
}

/**
 * The backlog of `gpu-<pool>`'s activity queue: DescribeTaskQueue with report_stats (Temporal
 * Server 1.26+; the dev server of temporal CLI 1.9.1 is 1.32). The server caches these stats for
 * a few seconds, so they lag the queue a little, as they do for KEDA.
 */
export async function readBacklog(client: Client, namespace: string, pool: string): Promise<Omit<PoolSignal, 'gpuUtilizationPercent'>> {
  const res = await client.workflowService.describeTaskQueue({
    namespace,
    taskQueue: { name: gpuTaskQueue(pool), kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    reportStats: true,
  });
  const stats = res.stats;
  const age = stats?.approximateBacklogAge;
  return {
    backlog: Number(stats?.approximateBacklogCount ?? 0),
    backlogAgeSeconds: age ? Number(age.seconds ?? 0) + (age.nanos ?? 0) / 1e9 : 0,
  };
}

/**
 * Mean utilisation (percent) of the GPUs nvidia-smi sees, or undefined where there is none
 * (no nvidia-smi, no GPU, no answer within 5 s): on CPU the autoscaler scales on the backlog alone.
 */
export function nvidiaSmiUtilization(): Promise<number | undefined> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', ['--query-gpu=utilization.gpu', '--format=csv,noheader,nounits'], { timeout: 5000 }, (err, stdout) => {
      resolve(err ? undefined : parseNvidiaSmiUtilization(stdout));
    });
  });
}

/** The mean of nvidia-smi's `utilization.gpu` lines (`csv,noheader,nounits`: one number per GPU); GPUs that say `[N/A]` are left out. */
export function parseNvidiaSmiUtilization(stdout: string): number | undefined {
  const xs = stdout.split('\n').map((l) => l.trim()).filter((l) => /^\d+(\.\d+)?$/.test(l)).map(Number);
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
}

/** A worker process the autoscaler started. */
export interface ScaledWorker {
  readonly pid: number | undefined;
  /** Resolves when the process has exited, however it ended. */
  readonly exited: Promise<number | null>;
  /** Graceful: SIGTERM (running recipes checkpoint), the process group killed only after the grace time. */
  stop(): Promise<void>;
}

/** Starts one GPU worker process for a pool: the dev stack's (src/cli/stack.ts), or a test's. */
export type WorkerStarter = (pool: string, policy: PoolScalePolicy) => ScaledWorker;

/** One pool as `forgeline autoscale status` and the status file show it. */
export interface PoolStatus {
  pool: string;
  taskQueue: string;
  policy: PoolScalePolicy;
  /** Workers running (started, not being stopped). */
  workers: number;
  /** Workers asked to stop and not yet gone. */
  stopping: number;
  signal?: PoolSignal;
  decision?: ScaleDecision;
  /** The last error reading the signal, if the last read failed. */
  error?: string;
  at?: string;
}

export interface AutoscalerOptions {
  client: Client;
  namespace: string;
  pools: Record<string, PoolScalePolicy>;
  start: WorkerStarter;
  log: (line: string) => void;
  intervalMs: number;
  /** Where to write the status (read by `forgeline autoscale status`); none: not written. */
  statusFile?: string;
  /** The GPU utilisation signal; default nvidia-smi. */
  utilization?: () => Promise<number | undefined>;
  /** The backlog signal; default DescribeTaskQueue. */
  backlog?: (pool: string) => Promise<Omit<PoolSignal, 'gpuUtilizationPercent'>>;
  now?: () => number;
}

interface PoolRuntime {
  policy: PoolScalePolicy;
  state: PoolScaleState;
  workers: ScaledWorker[];
  stopping: Set<ScaledWorker>;
  status: PoolStatus;
  /** After a worker exited on its own: no new worker before this time (ms), the wait doubling up to a minute. */
  backoffUntil: number;
  backoffMs: number;
}

const FIRST_BACKOFF_MS = 2000;
const MAX_BACKOFF_MS = 60_000;

/** Drives `decideScale` for every configured pool every `intervalMs`, starting and stopping worker processes. */
export class Autoscaler {
  private readonly pools = new Map<string, PoolRuntime>();
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;
  private closed = false;
  /** Every decision that changed a pool's size, in order (tests and status). */
  readonly events: Array<{ pool: string; at: number; from: number; to: number; reason: string }> = [];

  constructor(private readonly opts: AutoscalerOptions) {
    for (const [pool, policy] of Object.entries(opts.pools)) {
      this.pools.set(pool, { policy, state: initialScaleState(), workers: [], stopping: new Set(), status: { pool, taskQueue: gpuTaskQueue(pool), policy, workers: 0, stopping: 0 }, backoffUntil: 0, backoffMs: FIRST_BACKOFF_MS });
    }
  }

  /** Start polling: one tick at once, then every intervalMs (ticks never overlap). */
  start(): void {
    const { log, intervalMs } = this.opts;
    for (const [pool, { policy }] of this.pools) {
      log(`autoscaler: gpu-${pool} ${policy.min}..${policy.max} workers, ${policy.targetQueueSize} queued task(s) per worker, activation above ${policy.activationTargetQueueSize}, cooldown ${policy.cooldownSeconds}s, scale-down window ${policy.stabilizationSeconds}s`);
    }
    const loop = () => {
      this.ticking = this.tick().finally(() => {
        if (!this.closed) this.timer = setTimeout(loop, intervalMs);
      });
    };
    loop();
  }

  /** One round: read every pool's signal, decide, act. */
  async tick(): Promise<void> {
    const now = this.opts.now ?? Date.now;
    const utilization = await (this.opts.utilization ?? nvidiaSmiUtilization)();
    await Promise.all(
      [...this.pools.entries()].map(async ([pool, rt]) => {
        let signal: PoolSignal;
        try {
          signal = { ...(await (this.opts.backlog ?? ((p: string) => readBacklog(this.opts.client, this.opts.namespace, p)))(pool)), ...(utilization !== undefined ? { gpuUtilizationPercent: utilization } : {}) };
        } catch (err) {
          // No signal, no change: a Temporal hiccup must not stop (or start) workers.
          const message = (err as Error).message;
          if (rt.status.error !== message) this.opts.log(`autoscaler: gpu-${pool}: cannot read the backlog (${message}); keeping ${rt.workers.length} worker(s)`);
          rt.status = { ...rt.status, error: message, at: new Date(now()).toISOString() };
          return;
        }
        if (this.closed) return;
        const current = rt.workers.length;
        const { decision, state } = decideScale(rt.policy, rt.state, current, signal, now());
        rt.state = state;
        if (decision.desired > current && now() < rt.backoffUntil) {
          // A worker of this pool just died on its own (bad config, a crash): no restart loop.
          decision.reason += `; held for ${Math.ceil((rt.backoffUntil - now()) / 1000)}s after a worker exited on its own`;
          decision.desired = current;
        }
        if (decision.desired !== current) {
          this.opts.log(`autoscaler: gpu-${pool} ${current} → ${decision.desired} worker(s): ${decision.reason}`);
          this.events.push({ pool, at: now(), from: current, to: decision.desired, reason: decision.reason });
          this.resize(pool, rt, decision.desired);
        }
        rt.status = { ...rt.status, workers: rt.workers.length, stopping: rt.stopping.size, signal, decision, at: new Date(now()).toISOString() };
        delete rt.status.error;
      }),
    );
    this.writeStatus();
  }

  private resize(pool: string, rt: PoolRuntime, desired: number): void {
    const now = this.opts.now ?? Date.now;
    while (rt.workers.length < desired) {
      const w = this.opts.start(pool, rt.policy);
      const startedAt = now();
      rt.workers.push(w);
      void w.exited.then((code) => {
        const i = rt.workers.indexOf(w);
        if (i < 0 || this.closed) return;
        // Exited without being asked: forget it; a later tick starts another if still needed,
        // after a wait that doubles while workers keep dying young.
        rt.workers.splice(i, 1);
        if (now() - startedAt >= MAX_BACKOFF_MS) rt.backoffMs = FIRST_BACKOFF_MS;
        rt.backoffUntil = now() + rt.backoffMs;
        this.opts.log(`autoscaler: a gpu-${pool} worker (pid ${w.pid}) exited on its own (code ${code}); no new one for ${rt.backoffMs / 1000}s`);
        rt.backoffMs = Math.min(MAX_BACKOFF_MS, rt.backoffMs * 2);
      });
    }
    // The newest first: the oldest are the likeliest to be deep into long work.
    while (rt.workers.length > desired) {
      const w = rt.workers.pop()!;
      rt.stopping.add(w);
      void w.stop().finally(() => rt.stopping.delete(w));
    }
  }

  status(): PoolStatus[] {
    return [...this.pools.values()].map((rt) => ({ ...rt.status, workers: rt.workers.length, stopping: rt.stopping.size }));
  }

  private writeStatus(): void {
    const file = this.opts.statusFile;
    if (!file) return;
    try {
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(`${file}.tmp`, JSON.stringify({ pid: process.pid, pools: this.status() }, null, 1));
      renameSync(`${file}.tmp`, file);
    } catch (err) {
      this.opts.log(`autoscaler: cannot write ${file}: ${(err as Error).message}`);
    }
  }

  /** Stop polling and stop every worker gracefully; resolves when all have exited. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.ticking?.catch(() => undefined);
    const all: ScaledWorker[] = [];
    for (const rt of this.pools.values()) {
      all.push(...rt.workers, ...rt.stopping);
      rt.workers.length = 0;
    }
    await Promise.all(all.map((w) => w.stop()));
    this.writeStatus();
  }
}

/** The status a running autoscaler wrote, or undefined when there is none. */
export function readAutoscalerStatus(file: string): { pid: number; pools: PoolStatus[] } | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as { pid: number; pools: PoolStatus[] };
  } catch {
    return undefined;
  }
}

/** Where `forgeline dev` writes the autoscaler's status. */
export function autoscalerStatusFile(home: string): string {
  return path.join(home, 'autoscale', 'status.json');
}
