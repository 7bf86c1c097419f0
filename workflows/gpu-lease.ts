/**
 * GPU leases around a lifecycle's GPU stages (issue 13), shared by the release and re-embed
 * workflows. Only when the validated spec carries an admission plan (a quota file is configured,
 * activities/admission.ts) and only in executions that took the `gpu-admission` patch; otherwise
 * a stage runs exactly as before.
 *
 * With a plan, each run of a GPU stage:
 * 1. takes a lease from its pool's admission workflow (`acquireGpuLease` on the control queue,
 *    which waits, heartbeating, until the lease is granted), lease ID `<workflowId>/<stage>/<n>`,
 *    or keeps the one the previous GPU stage held (see GpuLeases);
 * 2. runs the stage's activity with the team's Temporal priority (fairness key = team) in a
 *    cancellation scope, waiting for the activity to finish cancelling (so the GPUs are free once
 *    the lease is given back);
 * 3. on `yieldGpus` for its lease (a team under its quota needs the GPUs), cancels the activity:
 *    training saves a checkpoint and stops (activities/release/run-recipe.ts), the lease is
 *    released and the stage queues again under a new lease; the new run is a new activity
 *    (attempt 1, its retry budget untouched) that resumes from the checkpoint;
 * 4. always releases its lease: after the lifecycle's last GPU stage (`releaseHeld`), and on
 *    failure and cancellation (an aborted lifecycle) of a stage.
 */
import {
  ActivityCancellationType,
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import { ErrorType } from '../src/contracts/errors';
import { gpuLeaseId, type GpuAdmissionPlan, type GpuLeaseView } from '../src/contracts/gpu-admission';
import type { LeaseGrant, LeaseRequest } from '../src/contracts/quota';
import { yieldGpusSignal } from './admission/messages';

/** The pool admission's lease activities (control queue). */
export interface GpuLeaseActivities {
  acquireGpuLease(req: LeaseRequest): Promise<LeaseGrant>;
  releaseGpuLease(req: { pool: string; leaseId: string; reason?: string }): Promise<unknown>;
}

/** Executions recorded before GPU admission existed replay without leases. */
export const GPU_ADMISSION_PATCH = 'gpu-admission';

/** Sent by a pool's admission workflow to the holder of a lease it preempts (defined with the admission workflow's messages). */
export { yieldGpusSignal };

/**
 * Lease calls on the control queue. acquire waits as long as the pool is full (it heartbeats, so a
 * control worker that dies is noticed); release is idempotent and retried until it lands, since a
 * lease never released would hold its GPUs until the admission workflow's own clean-up.
 */
const acquiring = proxyActivities<GpuLeaseActivities>({
  startToCloseTimeout: '30 days',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue] },
});
const releasing = proxyActivities<GpuLeaseActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue] },
});

/** What a GPU stage's activity call gets added to its options when it runs under a lease. */
export type LeasedActivityOptions = Pick<ActivityOptions, 'priority' | 'cancellationType'>;

export interface GpuLeaseObserver {
  /** The lease the running stage waits for or holds changed (undefined: none now). */
  lease(view: GpuLeaseView | undefined): void;
  /** A stage gave its GPUs back and queued again; `count` is the lifecycle's total. */
  preempted(count: number, stage: string, reason: string): void;
}

interface HeldLease {
  leaseId: string;
  stage: string;
  gpus: number;
}

/**
 * One per workflow run: installs the `yieldGpus` handler and runs GPU stages under leases.
 *
 * A lease is held across consecutive GPU stages of the same size (a release's train → quantize →
 * evaluate is one workload, as a Kueue Workload): giving it back between stages would let a
 * waiting borrower in for seconds, only to be preempted again by the next stage. The lifecycle
 * calls `releaseHeld()` after its last GPU stage and when it fails or is cancelled.
 */
export class GpuLeases {
  private preemptions: number;
  /** Leases taken per stage (for lease IDs) and runs per stage (StageInput.run). */
  private readonly leasesTaken = new Map<string, number>();
  private readonly stageRuns = new Map<string, number>();
  private held: HeldLease | undefined;
  /** Leases asked to yield (by ID), with the reason; kept so a request that arrives early is not lost. */
  private readonly yieldAsked = new Map<string, string>();

  constructor(
    private readonly plan: GpuAdmissionPlan | undefined,
    private readonly observer: GpuLeaseObserver,
    initialPreemptions = 0,
  ) {
    this.preemptions = initialPreemptions;
    setHandler(
      yieldGpusSignal,
      (r) => {
        this.yieldAsked.set(r.leaseId, r.reason);
      },
      { description: "From the GPU pool's admission workflow: give back the GPUs of lease `leaseId` (the running GPU stage checkpoints and stops, the lease is released, the stage queues again)." },
    );
  }

  get count(): number {
    return this.preemptions;
  }

  private leasing(): GpuAdmissionPlan | undefined {
    return this.plan && patched(GPU_ADMISSION_PATCH) ? this.plan : undefined;
  }

  /**
   * Runs `work` (one GPU stage's activity call) under a lease of `gpus` GPUs, and again after each
   * preemption (with `run` counting from 1). The lease stays held afterwards for the next GPU
   * stage. Without an admission plan (no quota file) or in an execution recorded before the
   * patch: just `work({}, 1)`.
   */
  async run<T>(stage: string, gpus: number, work: (options: LeasedActivityOptions, run: number) => Promise<T>): Promise<T> {
    const plan = this.leasing();
    if (!plan) return work({}, 1);
    try {
      for (;;) {
        const lease = await this.lease(plan, stage, gpus);
        if (this.yieldAsked.has(lease.leaseId)) {
          // Asked to yield before the stage started (the grant was on its way, or between stages).
          await this.yieldHeld(stage);
          continue;
        }
        const run = (this.stageRuns.get(stage) ?? 0) + 1;
        this.stageRuns.set(stage, run);
        const view: GpuLeaseView = { leaseId: lease.leaseId, stage, gpus, state: 'held' };
        this.observer.lease(view);
        const watch = new CancellationScope();
        const yielded = watch.run(() => condition(() => this.yieldAsked.has(lease.leaseId))).then(
          () => true,
          () => false,
        );
        const scope = new CancellationScope();
        const running = scope.run(() => work({ priority: plan.priority, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED }, run));
        try {
          const first = await Promise.race([running.then((value) => ({ done: true as const, value })), yielded.then(() => ({ done: false as const }))]);
          if (first.done) return first.value;
          this.observer.lease({ ...view, state: 'yielding' });
          scope.cancel();
          try {
            // The activity may have finished before the cancellation reached it: keep its result.
            return await running;
          } catch (err) {
            if (!isCancellation(err) || CancellationScope.current().consideredCancelled) throw err;
          }
        } finally {
          watch.cancel();
        }
        await this.yieldHeld(stage);
      }
    } catch (err) {
      // Failed or cancelled: nothing runs on the lease any more.
      await this.releaseHeld(isCancellation(err) ? 'cancelled' : 'failed');
      throw err;
    }
  }

  /** Gives back the lease held (or waited for), if any; idempotent, never cancelled. */
  async releaseHeld(reason = 'done'): Promise<void> {
    const plan = this.plan;
    const held = this.held;
    if (!plan || !held) return;
    this.held = undefined;
    await CancellationScope.nonCancellable(() => releasing.releaseGpuLease({ pool: plan.pool, leaseId: held.leaseId, reason }));
    this.yieldAsked.delete(held.leaseId);
    this.observer.lease(undefined);
  }

  /** The lease for the next stage: the one held when it has the GPUs asked for, else a new one (queued until granted). */
  private async lease(plan: GpuAdmissionPlan, stage: string, gpus: number): Promise<HeldLease> {
    if (this.held && this.held.gpus === gpus) return this.held;
    await this.releaseHeld('resized');
    const { workflowId, runId } = workflowInfo();
    const n = (this.leasesTaken.get(stage) ?? 0) + 1;
    this.leasesTaken.set(stage, n);
    const held: HeldLease = { leaseId: gpuLeaseId(workflowId, stage, n), stage, gpus };
    // Held from the request on, so a failure or cancellation while waiting withdraws it.
    this.held = held;
    this.observer.lease({ ...held, state: 'waiting' });
    await acquiring.acquireGpuLease({ leaseId: held.leaseId, team: plan.team, pool: plan.pool, gpus, priority: 0, holder: { workflowId, runId, stage }, preemptible: true });
    return held;
  }

  /** The held lease was asked to yield: give it back and count the preemption (the stage queues again). */
  private async yieldHeld(stage: string): Promise<void> {
    const held = this.held!;
    const reason = this.yieldAsked.get(held.leaseId) ?? 'preempted';
    await this.releaseHeld('yielded');
    this.preemptions += 1;
    log.info(`gpu: ${stage} gave back lease ${held.leaseId} (${reason}); queueing again`, { preemptions: this.preemptions });
    this.observer.preempted(this.preemptions, stage, reason);
  }
}
