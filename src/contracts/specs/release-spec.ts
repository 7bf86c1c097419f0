import { z } from 'zod';
import { CanaryAnalysisPolicySchema } from '../canary-analysis';

/**
 * The input of `modelReleaseWorkflow`: one JSON object, validated at the edge (CLI, webhook,
 * schedule) and again as the workflow's first activity. JSON Schema: docs/schemas/release-spec.schema.json.
 */
const duration = z.string().regex(/^[1-9]\d{0,5}(s|m|h|d)$/, 'expected a duration such as 90s, 30m, 24h or 7d');

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** Milliseconds of a spec duration (`90s`, `30m`, `24h`, `7d`). */
export function durationMs(d: string): number {
  return Number(d.slice(0, -1)) * UNIT_MS[d.slice(-1) as keyof typeof UNIT_MS];
}

/** GPU workers send an activity's heartbeats at most this often (workers/build.ts). */
export const GPU_HEARTBEAT_THROTTLE_MS = 3_000;
/** The shortest gpu.heartbeatTimeout: three throttle windows, so one late heartbeat is not a lost worker. */
export const MIN_GPU_HEARTBEAT_TIMEOUT_MS = 10_000;
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex characters (sha256 of the file)');
const positiveInt = (what: string) => z.number().int(`expected a whole number of ${what}`).positive(`expected a positive number of ${what}`);

export const GateSchema = z.strictObject({
  metric: z.string().min(1, 'expected a metric name such as exact_match or perplexity'),
  op: z.enum(['>=', '>', '<=', '<'], { error: 'expected one of >=, >, <=, <' }),
  threshold: z.number({ error: 'expected a number' }),
  /** `value`: the candidate's metric; `delta`: candidate minus comparator. */
  on: z.enum(['value', 'delta'], { error: 'expected value or delta' }).default('value'),
});

/**
 * The team a lifecycle runs for (issue 13): its GPU stages are admitted against the team's quota
 * when a quota file is configured, and scheduled with the team as Temporal fairness key. Without a
 * quota file it only labels the run (search attribute ForgelineTeam).
 */
export const TEAM_FIELD = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'expected a team name like search or ml-platform (lowercase letters, digits, dashes, at most 31), as the quota file names it')
  .default('default')
  .describe('Team whose GPU quota the GPU stages use (the quota file names it). Default: default.');

export const ReleaseSpecSchema = z.strictObject({
  model: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a model alias like support-bot (lowercase letters, digits, dashes)'),
  team: TEAM_FIELD,
  base: z.union(
    [
      z.strictObject({ path: z.string().min(1, 'expected a local directory with a Hugging Face model') }),
      z.strictObject({ ref: z.string().regex(/^registry:\/\/[a-z0-9-]+\/[a-z0-9-]+@[0-9a-f]{12}$/, 'expected registry://<model>/<kind>@<version>') }),
    ],
    { error: 'expected { "path": "/dir/of/model" } or { "ref": "registry://<model>/<kind>@<version>" }' },
  ),
  dataset: z.strictObject({
    uri: z.string().regex(/^(file:\/\/\/|s3:\/\/|artifact:\/\/)/, 'expected file:///..., s3://... or artifact://<key> (a key in the artifact store)'),
    sha256,
  }),
  trainer: z
    .strictObject({
      recipe: z.enum(['trl-sft-lora'], { error: 'expected trl-sft-lora' }).default('trl-sft-lora'),
      lora: z
        .strictObject({
          r: positiveInt('ranks').max(1024, 'expected r <= 1024').default(8),
          alpha: z.number().positive('expected a positive alpha').default(16),
          dropout: z.number().min(0, 'expected 0 <= dropout < 1').lt(1, 'expected 0 <= dropout < 1').default(0.05),
          targetModules: z.array(z.string().min(1)).min(1, 'expected at least one module name, e.g. q_proj').default(['q_proj', 'k_proj', 'v_proj', 'o_proj']),
        })
        .prefault({}),
      qlora: z.boolean().default(false),
      steps: positiveInt('steps').max(1_000_000).optional(),
      epochs: z.number().positive('expected a positive number of epochs').max(1000).optional(),
      learningRate: z.number().positive('expected a positive learning rate').max(1, 'expected a learning rate <= 1').default(2e-4),
      batchSize: positiveInt('examples').max(4096).default(8),
      seqLength: positiveInt('tokens').max(131072).default(128),
      seed: z.number().int('expected a whole-number seed').min(0).default(0),
      checkpointEvery: positiveInt('steps').default(20),
      /** Pack several short examples into each seqLength row (padding-free; examples do not attend to each other). */
      packing: z.boolean().default(false),
      /** Recompute activations in the backward pass: less GPU memory, about a third more compute. */
      gradientCheckpointing: z.boolean().default(false),
      /**
       * Liger's fused Triton kernels (RMSNorm, RoPE, SwiGLU). `auto`: on CUDA workers that have
       * liger-kernel, unless `compile` is on (compile alone measured faster); `on`: required (a CPU
       * worker refuses the stage); `off`: never. 8B on an H200: +17-21% tokens/s, 12 GB less memory.
       */
      liger: z.enum(['auto', 'on', 'off'], { error: 'expected auto, on or off' }).default('auto'),
      /** torch.compile each decoder layer: +21-39% tokens/s at 8B on an H200; the first step of each attempt compiles (10-20 s at 8B). */
      compile: z.boolean({ error: 'expected true or false' }).default(false),
      /** With gpu.count > 1: `ddp` keeps a replica of the model on every GPU; `fsdp` shards the frozen base over them (models that do not fit one GPU). */
      strategy: z.enum(['ddp', 'fsdp'], { error: 'expected ddp or fsdp' }).default('ddp'),
    })
    .prefault({})
    .refine((t) => !(t.steps !== undefined && t.epochs !== undefined), { message: 'set either steps or epochs, not both', path: ['steps'] }),
  gpu: z
    .strictObject({
      pool: z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'expected a pool name like cpu or h200').default('cpu'),
      count: positiveInt('GPUs').max(64).default(1),
      /** How long a silent GPU worker is trusted before its stage moves to another worker. */
      heartbeatTimeout: duration
        .refine((d) => durationMs(d) >= MIN_GPU_HEARTBEAT_TIMEOUT_MS, {
          message: `expected at least ${MIN_GPU_HEARTBEAT_TIMEOUT_MS / 1000}s: GPU workers send heartbeats at most every ${GPU_HEARTBEAT_THROTTLE_MS / 1000}s, so a shorter timeout would fail healthy stages`,
        })
        .default('2m'),
      /** How long a recipe may print no progress (no event) before it is stopped as hung and its attempt retried. */
      progressTimeout: duration.default('30m'),
    })
    .prefault({}),
  quantization: z
    .strictObject({
      method: z.enum(['gptq', 'awq', 'none'], { error: 'expected gptq, awq or none' }).default('gptq'),
      bits: z.union([z.literal(4), z.literal(8)], { error: 'expected 4 or 8' }).default(4),
      groupSize: positiveInt('columns').default(32),
      calibrationSamples: positiveInt('samples').max(100_000).default(32),
    })
    .prefault({}),
  evaluation: z
    .strictObject({
      suite: z.string().min(1).default('heldout'),
      gates: z.array(GateSchema).default([]),
      compareTo: z.enum(['production', 'base'], { error: 'expected production or base' }).default('base'),
    })
    .prefault({}),
  approval: z
    .strictObject({
      required: z.boolean().default(false),
      timeout: duration.default('24h'),
    })
    .prefault({}),
  git: z
    .strictObject({
      repo: z.string().optional(),
      ref: z.string().optional(),
      sha: z.string().regex(/^[0-9a-f]{7,40}$/, 'expected a git commit sha (7-40 hex)').optional(),
    })
    .prefault({}),
  /** Absent: the release ends at the `candidate` alias. Present: canary → production → drift monitor. */
  serving: ServingSchema().optional(),
}).refine((s) => s.serving?.candidate !== 'quantized' || s.quantization.method !== 'none', {
  message: "a quantized candidate needs a quantized model, but quantization.method is none: set quantization.method to gptq or awq, or serve the adapter (serving.candidate: adapter)",
  path: ['serving', 'candidate'],
});

function ServingSchema() {
  const name = z.string().regex(/^[a-z0-9][a-z0-9._:-]{0,127}$/, 'expected a name like tiny-demo (lowercase letters, digits, . _ : -)');
  const canary = z
    .strictObject({
      steps: z
        .array(z.number().int('expected whole percents').min(1, 'expected percents in 1..100').max(100, 'expected percents in 1..100'), { error: 'expected a list of percents such as [5, 25, 50, 100]' })
        .min(1, 'expected at least one step, e.g. [5, 25, 50, 100]')
        .max(20, 'expected at most 20 steps')
        .refine((s) => s.every((x, i) => i === 0 || x > s[i - 1]!), 'expected increasing percents, e.g. [5, 25, 50, 100]')
        .refine((s) => s[s.length - 1] === 100, 'expected the last step to be 100 (all traffic on the candidate)')
        .refine((s) => s[0]! < 100, 'expected a first step below 100: the analysis compares the candidate with stable while both serve, e.g. [10, 100]')
        .default([5, 25, 50, 100]),
      bake: duration.default('10m'),
      maxExtensions: z.number().int().min(0, 'expected 0 or more extensions').max(20).default(2),
      analysis: CanaryAnalysisPolicySchema.prefault({}),
    })
    .prefault({});
  const monitor = z
    .strictObject({
      enabled: z.boolean().default(true),
      every: duration.default('15m'),
      window: duration.default('1h'),
      maxSamples: positiveInt('prompts').max(20_000).default(500),
      minSamples: positiveInt('prompts').default(50),
      method: z.enum(['model', 'mmd', 'ratio', 'distance'], { error: 'expected model, mmd, ratio or distance' }).default('model'),
      maxErrorRate: z.number().min(0).max(1, 'expected a share in 0..1').default(0.05),
      maxEmptyRate: z.number().min(0).max(1, 'expected a share in 0..1').default(0.2),
      minFeedback: z.number().optional(),
      onBreach: z.enum(['rollback', 'retrain', 'alert'], { error: 'expected rollback, retrain or alert' }).default('alert'),
      retrain: z.strictObject({ dataset: z.strictObject({ uri: z.string().regex(/^(file:\/\/\/|s3:\/\/|artifact:\/\/)/, 'expected file:///..., s3://... or artifact://<key>'), sha256 }) }).optional(),
      checksPerRun: positiveInt('checks').max(1000).default(48),
      duration: duration.default('7d'),
    })
    .prefault({})
    .refine((m) => m.onBreach !== 'retrain' || m.retrain !== undefined, { message: 'onBreach retrain needs retrain.dataset: the new dataset snapshot to train on', path: ['retrain'] });
  return z.strictObject({
    alias: name.optional(),
    upstream: name.default('vllm'),
    baseModel: z.string().min(1, 'expected the base model name the upstream serves (vLLM --served-model-name)'),
    candidate: z.enum(['adapter', 'quantized'], { error: "expected adapter (LoRA loaded into the base model's servers) or quantized (the quantize stage's model on a server of its own)" }).default('adapter'),
    canary,
    keepPrevious: duration.default('1h'),
    monitor,
  });
}

export type ReleaseSpecInput = z.input<typeof ReleaseSpecSchema>;
