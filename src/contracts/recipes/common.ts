/**
 * Field types and the checking helper shared by the recipe contracts. A recipe contract is what
 * crosses the process boundary between an activity and a Python recipe (workers/recipes/
 * PROTOCOL.md): its input (spec.json), its `result` event and the protocol events. The zod
 * schemas here are the single source: scripts/gen-json-schema.ts publishes them as JSON Schema
 * (docs/schemas/recipes/), and the Python side's pydantic models are tested against those files.
 *
 * Field names are snake_case, as the recipes (Python) spell them. An optional input field may
 * also be null, which the recipes read as not set (`.nullish()`); an optional result field is
 * absent or has its type (`.optional()`), and null only where the schema says `.nullable()`.
 */
import { z } from 'zod';
import type { Validated } from '../validate';

/** The protocol's `device`: `cpu`, `cuda` or `cuda:<index>`. */
export const device = z.string().regex(/^(cpu|cuda(:\d+)?)$/, 'expected cpu, cuda or cuda:<index>');
/** A seed for every random number generator the recipe uses. */
export const seed = z.number().int().min(0);
/** A path on the machine that runs the recipe (the runner has prepared it). */
export const localPath = z.string().min(1);
/** A whole number >= 1. */
export const positiveInt = z.number().int().min(1);
/** A whole number >= 0 (counts, byte sizes, steps). */
export const count = z.number().int().min(0);
/** Seconds, rates, ratios: a number >= 0. */
export const nonNegative = z.number().min(0);
/** A confidence interval: [low, high]. */
export const interval = z.tuple([z.number(), z.number()]);

/**
 * The optional `tracking` block of any recipe input (forgeline_recipes/tracking.py): where the
 * recipe logs its curves and tables with the official W&B SDK. The API key never travels here;
 * it comes in the recipe's environment.
 */
export const RecipeTrackingSchema = z.strictObject({
  project: z.string().min(1).max(128),
  entity: z.string().min(1).nullish(),
  /** The release ID: one W&B group per release. */
  group: z.string().min(1).max(128),
  /** The stage: train, quantize, evaluate. */
  job_type: z.string().min(1).max(64),
  run_name: z.string().min(1).nullish(),
  /** Unique per attempt (a retry is its own run in the group). */
  run_id: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/).nullish(),
  mode: z.enum(['online', 'offline']).nullish(),
  dir: localPath,
  tags: z.array(z.string()).default([]),
  init_timeout_s: z.number().positive().optional(),
  finish_timeout_s: z.number().positive().optional(),
});
export type RecipeTracking = z.input<typeof RecipeTrackingSchema>;

/** `lora.r`, `models[1].path`: the path of a field as recipes and operators write it. */
export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out || '(whole value)';
}

/**
 * Check `raw` against `schema`; each problem reads `field: what is wrong`. A missing field is
 * `field: required`, an unexpected one (a typo, a renamed field) `field: unknown field`.
 */
export function checkContract<T>(schema: z.ZodType<T>, raw: unknown): Validated<T> {
  const parsed = schema.safeParse(raw, {
    error: (issue) => (issue.code === 'invalid_type' && issue.input === undefined ? 'required' : undefined),
  });
  if (parsed.success) return { ok: true, value: parsed.data };
  const problems = parsed.error.issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => `${fieldPath([...issue.path, key])}: unknown field`)
      : [`${fieldPath(issue.path)}: ${issue.message.replace(/^Invalid input: /, '')}`],
  );
  return { ok: false, problems };
}
