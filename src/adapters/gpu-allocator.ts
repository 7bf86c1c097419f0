/**
 * Hands out the GPUs a GPU worker owns to the heavy activities it runs. A worker polls its
 * `gpu-<pool>` queue with concurrency equal to its GPU count; each job takes `count` devices
 * (one job per GPU for small jobs, several for a data-parallel job) and gives them back when it
 * ends, whatever the outcome. On pool `cpu` there are no devices: jobs get `cpu`.
 */
export interface DeviceLease {
  /** What recipes receive as `device`: `cpu`, `cuda` (one or more visible GPUs). */
  device: 'cpu' | 'cuda';
  /** Physical GPU indices, for CUDA_VISIBLE_DEVICES (empty on cpu). */
  indices: number[];
  release(): void;
}

export class GpuAllocator {
  private readonly free: number[];
  private readonly waiters: Array<{ count: number; resolve: (indices: number[]) => void }> = [];

  /** Jobs waiting for GPUs right now. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** `gpuIndices` empty (or pool cpu): every lease is `cpu`. */
  constructor(private readonly gpuIndices: number[]) {
    this.free = [...gpuIndices];
  }

  static forPool(pool: string, count: number, visible?: string): GpuAllocator {
    if (pool === 'cpu') return new GpuAllocator([]);
    const indices = visible
      ? visible.split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n >= 0)
      : Array.from({ length: count }, (_, i) => i);
    return new GpuAllocator(indices.slice(0, count));
  }

  get total(): number {
    return this.gpuIndices.length;
  }

  /**
   * Wait for `count` GPUs (default 1). Asking for more than the worker owns fails at once; an
   * abort while waiting rejects with the signal's reason and gives up the place in the queue.
   */
  async acquire(count = 1, signal?: AbortSignal): Promise<DeviceLease> {
    if (this.total === 0) return { device: 'cpu', indices: [], release: () => undefined };
    if (!Number.isInteger(count) || count < 1 || count > this.total) {
      throw new Error(`gpu.count=${count}: this worker owns ${this.total} GPU(s); ask for 1..${this.total} or use a pool with bigger workers`);
    }
    signal?.throwIfAborted();
    const indices = this.free.length >= count && this.waiters.length === 0
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
    let released = false;
    return {
      device: 'cuda',
      indices,
      release: () => {
        if (released) return;
        released = true;
        this.free.push(...indices);
        this.free.sort((a, b) => a - b);
        this.wake();
      },
    };
  }

  /** First come, first served: a waiting big job is not starved by later small ones. */
  private wake(): void {
    while (this.waiters.length && this.free.length >= this.waiters[0]!.count) {
      const w = this.waiters.shift()!;
      w.resolve(this.free.splice(0, w.count));
    }
  }
}
