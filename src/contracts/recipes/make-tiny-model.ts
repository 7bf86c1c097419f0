/**
 * Recipe `make_tiny_model` (workers/recipes/make_tiny_model.py): a seeded Llama built from a
 * config, with the tiny-instruct tokenizer; nothing is downloaded.
 * JSON Schema: docs/schemas/recipes/make_tiny_model.input.schema.json and …result.schema.json.
 */
import { z } from 'zod';
import { count, device, positiveInt, seed } from './common';

/** `tiny` (~0.4M parameters, CPU tests and demo); the others have real models' shapes, for GPU benchmarks (forgeline_recipes/tiny.py). */
export const TINY_MODEL_SIZES = ['tiny', '0.5b', '1.5b', '8b'] as const;
export const TINY_MODEL_DTYPES = ['float32', 'bfloat16', 'float16'] as const;

export const MakeTinyModelInputSchema = z.strictObject({
  size: z.enum(TINY_MODEL_SIZES).default('tiny'),
  /** Default: the size's own (float32 for tiny, bfloat16 for 0.5b). */
  dtype: z.enum(TINY_MODEL_DTYPES).nullish(),
  device,
  seed,
});

export const MakeTinyModelResultSchema = z.strictObject({
  size: z.enum(TINY_MODEL_SIZES),
  parameters: positiveInt,
  dtype: z.enum(TINY_MODEL_DTYPES),
  bytes: count,
  /** sha256 over the *.safetensors files: a seed gives the same bytes on any machine. */
  weights_sha256: z.string().regex(/^[0-9a-f]{64}$/),
  vocabulary: positiveInt,
  seed,
});

export type MakeTinyModelRecipeInput = z.input<typeof MakeTinyModelInputSchema>;
export type MakeTinyModelRecipeResult = z.infer<typeof MakeTinyModelResultSchema>;
