/**
 * Runs recipes (workers/recipes/PROTOCOL.md): the local subprocess adapter today, a Kubernetes
 * Job later. The activity that asks for a job heartbeats its events and streams them to the Tracker.
 */
export type RecipeEvent =
  | { event: 'start'; recipe: string; total_steps?: number; device?: string }
  | { event: 'progress'; step: number; total_steps: number; loss?: number; lr?: number; tokens_per_s?: number; epoch?: number }
  | { event: 'metric'; name: string; value: number; step?: number }
  | { event: 'checkpoint'; step: number; path: string }
  | { event: 'table'; name: string; columns: string[]; rows: Array<Array<number | string | boolean | null>> }
  | { event: 'result'; result: Record<string, unknown> }
  | { event: 'error'; message: string; type?: string; retryable?: boolean };

export interface JobSpec {
  /** Recipe file name without `.py`, e.g. `train`. */
  recipe: string;
  /** The recipe's JSON input (see each recipe's docstring). */
  input: Record<string, unknown>;
  /** Directory the recipe writes into; created if absent, kept across retries for resume. */
  outDir: string;
  /** Physical GPU indices for CUDA_VISIBLE_DEVICES; empty = CPU. */
  gpuIndices: number[];
  /** Called in order for every protocol event; may be async (the runner awaits it in order). */
  onEvent?: (e: RecipeEvent) => void | Promise<void>;
  /** Non-protocol stdout lines and stderr lines. */
  onLog?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Abort kills the recipe's whole process group. */
  signal?: AbortSignal;
}

export interface JobRunner {
  /** Resolves with the `result` event's payload; rejects as described in PROTOCOL.md. */
  run(job: JobSpec): Promise<Record<string, unknown>>;
}
