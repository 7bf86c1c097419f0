/**
 * Recipe `evaluate` (workers/recipes/evaluate.py): score models on a held-out prompt/completion
 * set (loss, perplexity and task metrics with bootstrap CIs; deltas with paired CIs).
 * JSON Schema: docs/schemas/recipes/evaluate.input.schema.json and evaluate.result.schema.json.
 */
import { z } from 'zod';
import { count, device, interval, localPath, nonNegative, positiveInt, seed } from './common';

const modelName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "model names are 1-64 letters, digits, '_', '-' or '.'");

/** Percentile-bootstrap CIs (paired for deltas). */
export const BootstrapInputSchema = z.strictObject({
  resamples: z.number().int().min(100).default(1000),
  confidence: z.number().gt(0).lt(1).default(0.95),
});

export const EvaluateInputSchema = z.strictObject({
  /** name → model directory, or name → { path, adapter } (a LoRA adapter applied unmerged). */
  models: z.record(modelName, z.union([localPath, z.strictObject({ path: localPath, adapter: localPath.nullish() })])),
  /** The model whose metrics the result headlines; default `candidate` if there is one, else the first. */
  candidate: z.string().min(1).nullish(),
  /** The model every other is compared with; default `comparator` if there is one, else none. */
  comparator: z.string().min(1).nullish(),
  /** Directory holding `<split>.jsonl`. */
  dataset_dir: localPath,
  split: z.string().min(1).default('eval'),
  /** A name for the suite, carried into the report. */
  suite: z.string().min(1).default('heldout'),
  /** Task metrics on greedy generations (forgeline_recipes.metrics registers them). */
  metrics: z.array(z.string().min(1)).min(1).default(['exact_match', 'token_f1']),
  /** 0: every example. */
  max_examples: count.default(0),
  batch_size: positiveInt.default(32),
  /** Default: the longest reference completion plus 4. */
  max_new_tokens: positiveInt.nullish(),
  bootstrap: BootstrapInputSchema.default(BootstrapInputSchema.parse({})),
  /** Rows of the `samples` table. */
  sample_rows: count.default(20),
  device,
  seed,
});

const estimate = z.strictObject({ value: z.number(), ci: interval });
const delta = z.strictObject({ delta: z.number(), ci: interval });

export const EvaluateResultSchema = z.strictObject({
  suite: z.string(),
  /** The file the examples came from. */
  dataset: z.string(),
  examples: count,
  candidate: z.string(),
  /** Null when nothing was compared. */
  comparator: z.string().nullable(),
  /** The candidate's estimates, each with its delta against the comparator: what release gates read. */
  metrics: z.record(z.string(), estimate.extend({ delta: z.number().optional(), deltaCi: interval.optional() })),
  /** Metrics where a negative delta is an improvement. */
  lower_is_better: z.array(z.string()),
  models: z.record(
    z.string(),
    z.strictObject({ path: z.string(), adapter: z.string().optional(), metrics: z.record(z.string(), estimate), examples_per_s: nonNegative }),
  ),
  /** Deltas are candidate − comparator. */
  comparisons: z.array(z.strictObject({ candidate: z.string(), comparator: z.string(), metrics: z.record(z.string(), delta) })),
  bootstrap: z.strictObject({ resamples: positiveInt, confidence: z.number(), seed: count, paired: z.boolean() }),
  /** The full report (every example's generations), relative to the output directory. */
  report: z.string().min(1),
  /** Null on CPU. */
  peak_memory_bytes: count.nullable(),
});

export type EvaluateRecipeInput = z.input<typeof EvaluateInputSchema>;
export type EvaluateRecipeResult = z.infer<typeof EvaluateResultSchema>;
