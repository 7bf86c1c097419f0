/**
 * The recipe protocol's events (workers/recipes/PROTOCOL.md): one JSON object per stdout line.
 * JSON Schema: docs/schemas/recipes/events.schema.json.
 *
 * The fields each event must have are checked; an event may carry more (a runner ignores what it
 * does not know), and the extras the recipes here send are typed as optional. Measurements are
 * nullable: a recipe writes a non-finite number (a diverged loss) as null.
 */
import { z } from 'zod';
import { count } from './common';

const measurement = z.number().nullable();
const cell = z.union([z.number(), z.string(), z.boolean(), z.null()]);

export const StartEventSchema = z.looseObject({
  event: z.literal('start'),
  recipe: z.string().min(1),
  device: z.string().min(1),
  total_steps: count.optional(),
  resumed_from_step: count.optional(),
  trainable_parameters: count.optional(),
  /** quantize */
  method: z.string().optional(),
  /** evaluate: the models it scores, and examples per model */
  models: z.array(z.string()).optional(),
  examples: count.optional(),
  /** make_tiny_model */
  size: z.string().optional(),
});

export const ProgressEventSchema = z.looseObject({
  event: z.literal('progress'),
  step: count,
  total_steps: count,
  loss: measurement.optional(),
  lr: measurement.optional(),
  /** Non-padding tokens per second since the previous progress event. */
  tokens_per_s: measurement.optional(),
  epoch: measurement.optional(),
  /** evaluate: the model being scored */
  model: z.string().optional(),
});

export const MetricEventSchema = z.looseObject({ event: z.literal('metric'), name: z.string().min(1), value: measurement, step: count.optional() });

/** A complete checkpoint; `path` is relative to the output directory. */
export const CheckpointEventSchema = z.looseObject({ event: z.literal('checkpoint'), step: count, path: z.string().min(1) });

export const TableEventSchema = z.looseObject({ event: z.literal('table'), name: z.string().min(1), columns: z.array(z.string()), rows: z.array(z.array(cell)) });

/** The recipe's answer, checked against its own result schema by whoever asked for it. */
export const ResultEventSchema = z.looseObject({ event: z.literal('result'), result: z.record(z.string(), z.unknown()) });

/** `type`: an ErrorType name (InvalidSpec, ArtifactNotFound, RecipeFailed, RecipeContract, …) or RecipeCrashed. */
export const ErrorEventSchema = z.looseObject({ event: z.literal('error'), message: z.string(), type: z.string().min(1), retryable: z.boolean() });

export const RecipeEventSchema = z.discriminatedUnion('event', [
  StartEventSchema,
  ProgressEventSchema,
  MetricEventSchema,
  CheckpointEventSchema,
  TableEventSchema,
  ResultEventSchema,
  ErrorEventSchema,
]);

export type RecipeEvent = z.infer<typeof RecipeEventSchema>;
export type RecipeEventKind = RecipeEvent['event'];
export const RECIPE_EVENT_KINDS: readonly RecipeEventKind[] = ['start', 'progress', 'metric', 'checkpoint', 'table', 'result', 'error'];
