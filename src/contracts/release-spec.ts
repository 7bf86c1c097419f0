/**
 * The validated release spec, as workflows and activities see it. Plain types (the zod schema
 * lives in specs/release-spec.ts and is not bundled into workflow code).
 */
export type GateOp = '>=' | '>' | '<=' | '<';

export interface Gate {
  metric: string;
  op: GateOp;
  threshold: number;
  on: 'value' | 'delta';
}

export interface ReleaseSpec {
  model: string;
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
}
