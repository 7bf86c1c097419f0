/**
 * Recipe `quantize` (workers/recipes/quantize.py): merge a LoRA adapter into its base, then
 * quantize the merged model (GPTQ or AWQ, weight-only, grouped) into compressed-tensors.
 * JSON Schema: docs/schemas/recipes/quantize.input.schema.json and quantize.result.schema.json.
 */
import { z } from 'zod';
import { count, device, localPath, nonNegative, positiveInt, seed } from './common';

/** `none` only merges. AWQ needs a CUDA device. */
export const QUANTIZATION_METHODS = ['gptq', 'awq', 'none'] as const;

const bits = z.union([z.literal(4), z.literal(8)]);

export const QuantizeInputSchema = z.strictObject({
  base_model: localPath,
  /** A PEFT adapter directory to merge first; without it the base alone is quantized. */
  adapter: localPath.nullish(),
  /** Directory holding train.jsonl: the calibration texts (not read when method is none). */
  dataset_dir: localPath,
  method: z.enum(QUANTIZATION_METHODS).default('gptq'),
  bits: bits.default(4),
  /** Must divide the input dimension of every quantized layer. */
  group_size: positiveInt.default(128),
  calibration_samples: positiveInt.default(64),
  calibration_seq_length: z.number().int().min(8).default(256),
  device,
  seed,
});

export const QuantizeResultSchema = z.strictObject({
  method: z.enum(QUANTIZATION_METHODS),
  /** The merged model's directory, relative to the output directory. */
  merged: z.string().min(1),
  adapter_merged: z.boolean(),
  size_before_bytes: count,
  merge_seconds: nonNegative,
  /** The quantized model's directory; null when method is none. */
  quantized: z.string().min(1).nullable(),
  size_after_bytes: count,
  compression_ratio: z.number().gt(0),
  /** Merge plus quantization. */
  seconds: nonNegative,
  /** Null on CPU. */
  peak_memory_bytes: count.nullable(),
  // Unless method is none:
  /** compressed-tensors format, e.g. pack-quantized. */
  format: z.string().min(1).optional(),
  bits: bits.optional(),
  group_size: positiveInt.optional(),
  calibration_samples: positiveInt.optional(),
  quantize_seconds: nonNegative.optional(),
  /** The quantized model reloaded from disk, as a server would load it. */
  verify: z
    .strictObject({
      finite: z.boolean(),
      shape: z.array(count),
      max_abs_logit: nonNegative,
      /** Share of positions where it predicts the same next token as the merged model. */
      top1_agreement_with_merged: z.number().min(0).max(1),
    })
    .optional(),
});

export type QuantizeRecipeInput = z.input<typeof QuantizeInputSchema>;
export type QuantizeRecipeResult = z.infer<typeof QuantizeResultSchema>;
