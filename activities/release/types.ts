import type { GateInput } from '../../src/contracts/release-gates';
import type { ReleaseSpec } from '../../src/contracts/release-spec';

/** A directory published to the ArtifactStore (manifest last). */
export interface PublishedRef {
  prefix: string;
  uri: string;
  digest: string;
}

/** What every stage activity of a release gets. */
export interface StageInput {
  releaseId: string;
  runId: string;
  spec: ReleaseSpec;
  /**
   * The stage's run in this release, from 1 (absent: 1). Above 1 after a preemption: the stage
   * checkpointed and gave its GPUs back, and runs again as a new activity (attempts count from 1
   * again), so per-attempt names (checkpoints, work directories, recipe runs) carry the run too.
   */
  run?: number;
}

export interface TrainResult {
  adapter: PublishedRef;
  totalSteps: number;
  stepsThisRun: number;
  resumedFromStep: number;
  finalLoss?: number;
  tokensPerS?: number;
  recipeResult: Record<string, unknown>;
}

export interface QuantizeResult {
  merged: PublishedRef;
  quantized?: PublishedRef;
  sizeBeforeBytes: number;
  sizeAfterBytes: number;
  seconds: number;
}

export interface EvalResult extends GateInput {
  /** Headline numbers for the workflow result and the memo. */
  summary: Record<string, number>;
  report: PublishedRef;
  comparator: string;
}
