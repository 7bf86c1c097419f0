/**
 * Runs recipes (workers/recipes/PROTOCOL.md): a local process group (LocalJobRunner) or a
 * Kubernetes Job (KubernetesJobRunner). The activity that asks for a job heartbeats its events and
 * streams them to the Tracker.
 */
import type { RecipeEvent } from '../contracts/recipes/events';

/** One protocol event; its schema (src/contracts/recipes/events.ts) is the single definition. */
export type { RecipeEvent };

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
  /**
   * Abort asks the recipe to save a checkpoint and stop (PROTOCOL.md, "Preemption"), as a worker's
   * shutdown does: a recipe that did exits 75 and the job rejects with a retryable
   * RecipePreemptedError once its checkpoint event was handled; `signal` still kills it.
   */
  checkpointSignal?: AbortSignal;
  /**
   * Extra environment variables for this job only (e.g. WANDB_* when the job logs to W&B). The
   * recipe otherwise gets an allow-listed environment, never the worker's secrets.
   */
  env?: Record<string, string>;
  /** A recipe that prints no protocol event for this long is killed; the job fails retryably. */
  progressTimeoutMs?: number;
}

export interface JobRunner {
  /**
   * Resolves with the `result` event's payload (check it with parseRecipeResult from
   * src/contracts/recipes); rejects as described in PROTOCOL.md.
   */
  run(job: JobSpec): Promise<Record<string, unknown>>;
}
