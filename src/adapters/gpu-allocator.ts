/**
 * The GPUs a GPU worker owns, handed out to the heavy activities it runs, and the worker's
 * activity slot supplier, so that the worker only takes a task when it has a GPU for it.
 *
 * Scheduling by free GPUs. Temporal reserves a slot before it polls for a task, and the slot's
 * info names the activity type but not its input, so the worker cannot know how many GPUs the
 * next task needs before taking it. The supplier therefore hands out a slot only when
 *
 *   - no other slot is reserved and unused (one poll at a time: a second outstanding poll could
 *     bring a task the first one's job leaves no GPU for),
 *   - every task the worker took has declared what it needs, by calling `acquire` (a task that
 *     has not yet said how many GPUs it takes might take them all),
 *   - no task is waiting for GPUs, and
 *   - at least one GPU is free.
 *
 * So while an 8-GPU job runs on an 8-GPU worker, that worker does not poll, and the next task
 * goes to another worker; a worker with 7 of 8 GPUs busy keeps polling for 1-GPU work. A task
 * that needs more GPUs than are free when it arrives (an 8-GPU job reaching a worker running a
 * 1-GPU job) waits on that worker, first come first served, and the worker takes nothing more
 * until it starts.
 *
 * How a slot and a lease meet without knowing each other: a used slot counts as "undeclared"
 * until its activity calls `acquire`, which turns one undeclared slot into a lease; releasing
 * the lease turns it back, and releasing the slot (after the activity ended) removes it. Every
 * activity runs inside exactly one slot, so the counts add up whichever activity holds which.
 * An `acquire` outside any slot (tests, a worker without this supplier) touches no count.
 *
 * On pool `cpu` there are no devices: every lease is `cpu`, and the worker keeps a fixed number
 * of slots instead (see workers/build.ts).
 */
import type { ActivitySlotInfo, CustomSlotSupplier, SlotMarkUsedContext, SlotPermit, SlotReleaseContext } from '@temporalio/worker';
import type { DeviceLease, GpuAllocator } from '../ports/gpu-allocator';

export type { DeviceLease, GpuAllocator } from '../ports/gpu-allocator';

/**
 * Physical GPU indices from a CUDA_VISIBLE_DEVICES value ("0,1,3"); undefined when it is unset.
 * Throws on anything else (UUIDs, ranges), naming the variable, so a worker never leases a GPU
 * that is not its own.
 */
export function parseVisibleDevices(visible: string | undefined): number[] | undefined {
  if (visible === undefined || visible.trim() === '') return undefined;
  const parts = visible.split(',').map((s) => s.trim());
  if (!parts.every((p) => /^\d+$/.test(p))) {
    throw new Error(`CUDA_VISIBLE_DEVICES=${JSON.stringify(visible)}: expected comma-separated GPU indices such as 0,1,2,3`);
  }
  return parts.map(Number);
}

export class LocalGpuAllocator implements GpuAllocator {
  private readonly free: number[];
  private readonly waiters: Array<{ count: number; resolve: (indices: number[]) => void }> = [];
  /** Slots reserved for a poll whose task has not arrived. */
  private idleSlots = 0;
  /** Slots whose task arrived and has not (or no longer) holds a lease. */
  private undeclared = 0;
  private readonly slotWaiters: Array<() => void> = [];

  /** `gpuIndices` empty (pool cpu): every lease is `cpu`. */
  constructor(private readonly gpuIndices: number[]) {
    this.free = [...gpuIndices];
  }

  /** The first `count` GPUs of CUDA_VISIBLE_DEVICES (or 0..count-1 when unset); none on pool cpu. */
  static forPool(pool: string, count: number, visibleDevices?: string): LocalGpuAllocator {
    if (pool === 'cpu') return new LocalGpuAllocator([]);
    const indices = parseVisibleDevices(visibleDevices) ?? Array.from({ length: count }, (_, i) => i);
    if (indices.length < count) {
      throw new Error(`FORGELINE_GPU_COUNT=${count}, but CUDA_VISIBLE_DEVICES=${visibleDevices} names only ${indices.length} GPU(s): lower the count or list more devices`);
    }
    return new LocalGpuAllocator(indices.slice(0, count));
  }

  get total(): number {
    return this.gpuIndices.length;
  }

  /** Jobs waiting for GPUs right now. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** GPUs no lease holds right now. */
  get freeCount(): number {
    return this.free.length;
  }

  async acquire(count = 1, signal?: AbortSignal): Promise<DeviceLease> {
    if (this.total === 0) return { device: 'cpu', indices: [], release: () => undefined };
    if (!Number.isInteger(count) || count < 1 || count > this.total) {
      throw new Error(`gpu.count=${count}: this worker owns ${this.total} GPU(s); ask for 1..${this.total} or use a pool with bigger workers`);
    }
    signal?.throwIfAborted();
    // The calling task now says what it needs (see the header): its slot is declared.
    const declared = this.undeclared > 0;
    if (declared) this.undeclared--;
    let indices: number[];
    try {
      indices = this.free.length >= count && this.waiters.length === 0
        ? this.free.splice(0, count)
        : await new Promise<number[]>((resolve, reject) => {
            const waiter = {
              count,
              resolve: (granted: number[]) => {
                signal?.removeEventListener('abort', onAbort);
                resolve(granted);
              },
            };
            const onAbort = () => {
              this.waiters.splice(this.waiters.indexOf(waiter), 1);
              this.wake(); // a smaller job behind this one may fit now
              reject(signal!.reason);
            };
            signal?.addEventListener('abort', onAbort, { once: true });
            this.waiters.push(waiter);
          });
    } catch (err) {
      if (declared) this.undeclared++;
      this.pumpSlots();
      throw err;
    }
    this.pumpSlots();
    let released = false;
    return {
      device: 'cuda',
      indices,
      release: () => {
        if (released) return;
        released = true;
        if (declared) this.undeclared++; // the slot is released right after its activity ends
        this.free.push(...indices);
        this.free.sort((a, b) => a - b);
        this.wake();
        this.pumpSlots();
      },
    };
  }

  /**
   * The activity slot supplier of a worker that owns these GPUs (the `tuner` option of
   * Worker.create): it hands out a slot only when the worker can start the task it brings.
   */
  slotSupplier(): CustomSlotSupplier<ActivitySlotInfo> {
    return {
      type: 'custom',
      reserveSlot: (_ctx, abortSignal) =>
        new Promise<SlotPermit>((resolve, reject) => {
          const grant = () => {
            abortSignal.removeEventListener('abort', onAbort);
            this.idleSlots++;
            resolve({});
          };
          const onAbort = () => {
            const i = this.slotWaiters.indexOf(grant);
            if (i >= 0) this.slotWaiters.splice(i, 1);
            reject(abortSignal.reason);
          };
          if (abortSignal.aborted) return reject(abortSignal.reason);
          abortSignal.addEventListener('abort', onAbort, { once: true });
          this.slotWaiters.push(grant);
          this.pumpSlots();
        }),
      tryReserveSlot: () => {
        if (this.slotWaiters.length > 0 || !this.canTakeTask()) return null;
        this.idleSlots++;
        return {};
      },
      markSlotUsed: (_ctx: SlotMarkUsedContext<ActivitySlotInfo>) => {
        this.idleSlots--;
        this.undeclared++;
      },
      releaseSlot: (ctx: SlotReleaseContext<ActivitySlotInfo>) => {
        if (ctx.slotInfo) this.undeclared--;
        else this.idleSlots--;
        this.pumpSlots();
      },
    };
  }

  private canTakeTask(): boolean {
    return this.idleSlots === 0 && this.undeclared === 0 && this.waiters.length === 0 && this.free.length > 0;
  }

  /** Grants the next waiting slot reservation when the worker can take a task. */
  private pumpSlots(): void {
    if (this.slotWaiters.length > 0 && this.canTakeTask()) this.slotWaiters.shift()!();
  }

  /** First come, first served: a waiting big job is not starved by later small ones. */
  private wake(): void {
    while (this.waiters.length && this.free.length >= this.waiters[0]!.count) {
      const w = this.waiters.shift()!;
      w.resolve(this.free.splice(0, w.count));
    }
  }
}
