/**
 * The validated release spec, as workflows and activities see it. Plain types (the zod schema
 * lives in specs/release-spec.ts and is not bundled into workflow code).
 */
import type { CanaryAnalysisPolicy } from './canary-analysis';
import type { GpuAdmissionPlan } from './gpu-admission';

export type GateOp = '>=' | '>' | '<=' | '<';

export interface Gate {
  metric: string;
  op: GateOp;
  threshold: number;
  on: 'value' | 'delta';
}

export interface ReleaseSpec {
  model: string;
  /** Whose GPU quota the GPU stages use (default `default`); the Temporal fairness key of their tasks. */
  team: string;
  base: { path: string } | { ref: string };
  dataset: { uri: string; sha256: string };
  trainer: {
    recipe: 'trl-sft-lora';
    lora: { r: number; alpha: number; dropout: number; targetModules: string[] };
    qlora: boolean;
    steps?: number;
    epochs?: number;
    learningRate: number;
    batchSize: number;
    seqLength: number;
    seed: number;
    checkpointEvery: number;
    packing: boolean;
    gradientCheckpointing: boolean;
    liger: 'auto' | 'on' | 'off';
    compile: boolean;
    strategy: 'ddp' | 'fsdp';
  };
  gpu: { pool: string; count: number; heartbeatTimeout: string; progressTimeout: string };
  quantization: { method: 'gptq' | 'awq' | 'none'; bits: 4 | 8; groupSize: number; calibrationSamples: number };
  evaluation: { suite: string; gates: Gate[]; compareTo: 'production' | 'base' };
  approval: { required: boolean; timeout: string };
  git: { repo?: string; ref?: string; sha?: string };
  /** Absent: the release ends at the `candidate` alias. Present: canary → production → drift monitor. */
  serving?: ServingSpec;
  /**
   * Not part of the input (the schema refuses it): set by the control worker's validation when a
   * GPU quota file is configured, so GPU stages take leases and carry fairness keys. Absent: no quota file.
   */
  admission?: GpuAdmissionPlan;
}

export interface CanarySpec {
  /** Candidate traffic share per step, in percent, ending at 100. */
  steps: number[];
  /** How long each step serves before it is analyzed. */
  bake: string;
  /** Inconclusive analyses that extend a step's bake before the canary pauses for an operator. */
  maxExtensions: number;
  analysis: CanaryAnalysisPolicy;
}

export type DriftMethod = 'model' | 'mmd' | 'ratio' | 'distance';

export interface MonitorSpec {
  enabled: boolean;
  /** Time between checks. */
  every: string;
  /** Traffic window each check samples. */
  window: string;
  /** Most prompts a check embeds. */
  maxSamples: number;
  /** Fewer prompts than this in the window: the check is skipped as Inconclusive. */
  minSamples: number;
  method: DriftMethod;
  /** Output proxies and errors: a breach when the window's value crosses these. */
  maxErrorRate: number;
  maxEmptyRate: number;
  minFeedback?: number;
  /** What a breach does. `retrain` starts a new release on `retrain.dataset`. */
  onBreach: 'rollback' | 'retrain' | 'alert';
  retrain?: { dataset: { uri: string; sha256: string } };
  /** Checks per workflow run before continue-as-new. */
  checksPerRun: number;
  /** Stop monitoring after this long (the next release's monitor takes over earlier). */
  duration: string;
}

export interface ServingSpec {
  /** The public model name clients send (`model`), routed by the gateway. Default: the release's model. */
  alias?: string;
  /** The gateway upstream (a set of vLLM replicas) that serves the base model and the adapters. */
  upstream: string;
  /** The base model's name on that upstream (vLLM's `--served-model-name`); adapters apply to it. */
  baseModel: string;
  /**
   * What the candidate is served as: `adapter` (default): its LoRA adapter, loaded at runtime into
   * the base model's servers; `quantized`: the quantize stage's model (adapter merged, then
   * quantized, e.g. compressed-tensors W4A16) on a server of its own that the release launches.
   * Absent in specs validated before the field existed: `adapter`.
   */
  candidate?: 'adapter' | 'quantized';
  canary: CanarySpec;
  /** How long the replaced production version stays loaded after promotion (fast rollback), then is unloaded. */
  keepPrevious: string;
  monitor: MonitorSpec;
}
