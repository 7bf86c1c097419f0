/**
 * The GPUs of the worker an activity runs on. A GPU stage leases the devices its recipe needs
 * (one for most stages, `spec.gpu.count` for data-parallel training) and gives them back when it
 * ends, whatever the outcome. On pool `cpu` there are no devices and every lease is `cpu`.
 */
export interface DeviceLease {
  /** What recipes receive as `device`: `cpu`, or `cuda` (one or more visible GPUs). */
  device: 'cpu' | 'cuda';
  /** Physical GPU indices, for CUDA_VISIBLE_DEVICES (empty on cpu). */
  indices: number[];
  /** Gives the devices back. Idempotent. */
  release(): void;
}

export interface GpuAllocator {
  /** GPUs this worker owns (0 on pool cpu). */
  readonly total: number;
  /**
   * Waits for `count` GPUs (default 1), first come first served. Asking for more than the worker
   * owns rejects at once; an abort while waiting rejects with the signal's reason.
   */
  acquire(count?: number, signal?: AbortSignal): Promise<DeviceLease>;
}
