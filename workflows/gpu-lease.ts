/**
 * GPU leases around a lifecycle's GPU stages (issue 13), shared by the release and re-embed
 * workflows. Only when the validated spec carries an admission plan (a quota file is configured,
 * activities/admission.ts) and only in executions that took the `gpu-admission` patch; otherwise
 * a stage runs exactly as before.
 *
 * With a plan, each run of a GPU stage:
 * 1. takes a lease from its pool's admission workflow (`acquireGpuLease` on the control queue,
 *    which waits, heartbeating, until the lease is granted), lease ID `<workflowId>/<stage>/<n>`;
 * 2. runs the stage's activity with the team's Temporal priority (fairness key = team) in a
 *    cancellation scope, waiting for the activity to finish cancelling (so the GPUs are free once
 *    the lease is given back);
 * 3. on `yieldGpus` for its lease (a team under its quota needs the GPUs), cancels the activity:
 *    training saves a checkpoint and stops (activities/release/run-recipe.ts), the lease is
 *    released and the stage queues again under a new lease; the new run is a new activity
 *    (attempt 1, its retry budget untouched) that resumes from the checkpoint;
 * 4. always releases its lease, on success, failure and cancellation (an aborted lifecycle).
 */
import {
  ActivityCancellationType,
  CancellationScope,
  condition,
  defineSignal,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import { ErrorType } from '../src/contracts/errors';
import { gpuLeaseId, type GpuAdmissionPlan, type GpuLeaseView, type YieldGpusRequest } from '../src/contracts/gpu-admission';
import type { LeaseGrant, LeaseRequest } from '../src/contracts/quota';

/** The pool admission's lease activities (control queue). */
export interface GpuLeaseActivities {
  acquireGpuLease(req: LeaseRequest): Promise<LeaseGrant>;
  releaseGpuLease(req: { pool: string; leaseId: string }): Promise<unknown>;
}

/** Executions recorded before GPU admission existed replay without leases. */
export const GPU_ADMISSION_PATCH = 'gpu-admission';

/** Sent by a pool's admission workflow to the holder of a lease it preempts. */
export const yieldGpusSignal = defineSignal<[YieldGpusRequest]>('yieldGpus');

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

/** One per workflow run: installs the `yieldGpus` handler and runs GPU stages under leases. */
export class GpuLeases {
  private preemptions = 0;
  private readonly runs = new Map<string, number>();
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
      { description: "From the GPU pool's admission workflow: give back the GPUs of lease `leaseId` (checkpoint, release, queue again)." },
    );
  }

  get count(): number {
    return this.preemptions;
  }

  /**
   * Runs `work` (one GPU stage's activity call) under a lease of `gpus` GPUs, re-running it after
   * each preemption. Without an admission plan (no quota file) or in an execution recorded before
   * the patch: just `work({})`.
   */
  async run<T>(stage: string, gpus: number, work: (options: LeasedActivityOptions, run: number) => Promise<T>): Promise<T> {
    const plan = this.plan;
    if (!plan || !patched(GPU_ADMISSION_PATCH)) return work({}, 1);
    const { workflowId, runId } = workflowInfo();
    for (;;) {
      const n = (this.runs.get(stage) ?? 0) + 1;
      this.runs.set(stage, n);
      const leaseId = gpuLeaseId(workflowId, stage, n);
      const view: GpuLeaseView = { leaseId, stage, gpus, state: 'waiting' };
      this.observer.lease(view);
      const watch = new CancellationScope();
      try {
        await acquiring.acquireGpuLease({
          leaseId,
          team: plan.team,
          pool: plan.pool,
          gpus,
          priority: 0,
          holder: { workflowId, runId, stage },
          preemptible: true,
        });
        // Preempted between the grant and now (the grant was on its way): give it back before starting.
        if (!this.yieldAsked.has(leaseId)) {
          this.observer.lease({ ...view, state: 'held' });
          const yielded = watch.run(() => condition(() => this.yieldAsked.has(leaseId))).then(
            () => true,
            () => false,
          );
          const scope = new CancellationScope();
          const running = scope.run(() => work({ priority: plan.priority, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED }, n));
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
        }
        this.preemptions += 1;
        const reason = this.yieldAsked.get(leaseId) ?? 'preempted';
        log.info(`gpu: ${stage} gave back lease ${leaseId} (${reason}); queueing again`, { preemptions: this.preemptions });
        this.observer.preempted(this.preemptions, stage, reason);
      } finally {
        watch.cancel();
        this.yieldAsked.delete(leaseId);
        await CancellationScope.nonCancellable(() => releasing.releaseGpuLease({ pool: plan.pool, leaseId }));
        this.observer.lease(undefined);
      }
    }
  }
}
