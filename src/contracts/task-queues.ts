/** Task queue names. GPU work runs on one queue per GPU pool, so capacity is routed by name. */
export const DEFAULT_CONTROL_TASK_QUEUE = 'forgeline-control';

export const GPU_TASK_QUEUE_PREFIX = 'gpu-';

/** `gpu-<pool>`, e.g. `gpu-cpu`, `gpu-h200`. */
export function gpuTaskQueue(pool: string): string {
  return GPU_TASK_QUEUE_PREFIX + pool;
}
