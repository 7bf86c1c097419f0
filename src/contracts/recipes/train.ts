/**
 * Recipe `train` (workers/recipes/train.py): supervised fine-tuning of a LoRA adapter.
 * JSON Schema: docs/schemas/recipes/train.input.schema.json and train.result.schema.json.
 */
import { z } from 'zod';
import { count, device, localPath, nonNegative, positiveInt, seed } from './common';

export const LR_SCHEDULERS = ['linear', 'cosine', 'constant', 'constant_with_warmup'] as const;
/** `auto` picks the best the device and libraries allow (flash_attention_2, sdpa, eager). */
export const ATTENTION_IMPLEMENTATIONS = ['auto', 'sdpa', 'eager', 'flex_attention', 'flash_attention_2'] as const;
/** `auto`: Liger's Triton kernels wherever they can run (CUDA with liger-kernel installed). */
export const LIGER_MODES = ['auto', 'on', 'off'] as const;
/** Data-parallel replicas of the model, or the frozen base sharded over the ranks. */
export const TRAIN_STRATEGIES = ['ddp', 'fsdp'] as const;

export const LoraInputSchema = z.strictObject({
  r: z.number().int().min(1).max(1024).default(8),
  alpha: z.number().gt(0).default(16),
  dropout: z.number().min(0).lt(1).default(0.05),
  target_modules: z.array(z.string().min(1)).min(1).default(['q_proj', 'k_proj', 'v_proj', 'o_proj']),
});

export const TrainInputSchema = z.strictObject({
  base_model: localPath,
  dataset_dir: localPath,
  lora: LoraInputSchema.default(LoraInputSchema.parse({})),
  /** 4-bit QLoRA base (CUDA with bitsandbytes only). */
  qlora: z.boolean().default(false),
  /** Total optimizer steps; or `epochs`, not both (one epoch when neither is set). */
  steps: positiveInt.nullish(),
  epochs: z.number().gt(0).nullish(),
  learning_rate: z.number().gt(0).max(1).default(2e-4),
  lr_scheduler: z.enum(LR_SCHEDULERS).default('linear'),
  warmup_steps: count.default(0),
  /** Examples per step per process. */
  batch_size: positiveInt.default(8),
  gradient_accumulation_steps: positiveInt.default(1),
  seq_length: z.number().int().min(8).default(128),
  checkpoint_every: positiveInt.default(20),
  log_every: positiveInt.default(1),
  gradient_checkpointing: z.boolean().default(false),
  /** Pack several examples into each seq_length row (each still attends only to itself). */
  packing: z.boolean().default(false),
  attn_implementation: z.enum(ATTENTION_IMPLEMENTATIONS).default('auto'),
  liger: z.enum(LIGER_MODES).default('auto'),
  /** torch.compile each decoder layer. */
  compile: z.boolean().default(false),
  /** Data-parallel processes, one per GPU the activity leased. */
  processes: z.number().int().min(1).max(64).default(1),
  strategy: z.enum(TRAIN_STRATEGIES).default('ddp'),
  /** A checkpoint directory (`checkpoints/step-<n>` of an earlier attempt) to continue from. */
  resume_from: localPath.nullish(),
  device,
  seed,
});

export const TrainResultSchema = z.strictObject({
  /** The step training ended at, counting steps done before a resume. */
  total_steps: count,
  steps_done_this_run: count,
  resumed_from_step: count,
  /** Loss of the last logged step; null when no step was logged (or it was not finite). */
  final_loss: z.number().nullable(),
  /** Mean loss over this run's steps; null when this run did no step. */
  mean_train_loss: z.number().nullable(),
  tokens_this_run: count,
  tokens_per_s: nonNegative,
  /** Tokens/s after this run's first step (CUDA context, compilation); null when it did fewer than two. */
  steady_tokens_per_s: nonNegative.nullable(),
  train_runtime_s: nonNegative,
  parameters: count,
  trainable_parameters: count,
  examples: count,
  packing: z.boolean(),
  attn_implementation: z.string().min(1),
  liger: z.boolean(),
  compile: z.boolean(),
  seq_length: positiveInt,
  batch_size: positiveInt,
  processes: positiveInt,
  strategy: z.enum(['single', ...TRAIN_STRATEGIES]),
  global_batch_size: positiveInt,
  /** The adapter's directory, relative to the recipe's output directory. */
  adapter: z.string().min(1),
  // Only on CUDA:
  peak_memory_bytes: count.optional(),
  peak_memory_bytes_per_process: z.array(count).optional(),
  gpu: z.string().optional(),
  flops_per_token: nonNegative.optional(),
  /** Model FLOPs utilisation of the steady state; null when the GPU's peak FLOPs are unknown. */
  mfu: nonNegative.nullable().optional(),
});

/** What an activity writes into spec.json (fields with defaults may be left out). */
export type TrainRecipeInput = z.input<typeof TrainInputSchema>;
export type TrainRecipeResult = z.infer<typeof TrainResultSchema>;
