/**
 * Every recipe's contract, by the recipe's name (its file name under workers/recipes/), and the
 * functions that check what a recipe sent against it. A result or event that does not match
 * names each field (`train result: total_steps: required`), never reads as 0.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { z } from 'zod';
import { ErrorType } from '../errors';
import type { Validated } from '../validate';
import { checkContract } from './common';
import { EvaluateInputSchema, EvaluateResultSchema } from './evaluate';
import { RECIPE_EVENT_KINDS, RecipeEventSchema, type RecipeEvent } from './events';
import { MakeTinyModelInputSchema, MakeTinyModelResultSchema } from './make-tiny-model';
import { QuantizeInputSchema, QuantizeResultSchema } from './quantize';
import { TrainInputSchema, TrainResultSchema } from './train';

export * from './evaluate';
export * from './events';
export * from './make-tiny-model';
export * from './quantize';
export * from './train';
export { checkContract, fieldPath, RecipeTrackingSchema, type RecipeTracking } from './common';

export const RECIPE_CONTRACTS = {
  train: { input: TrainInputSchema, result: TrainResultSchema },
  quantize: { input: QuantizeInputSchema, result: QuantizeResultSchema },
  evaluate: { input: EvaluateInputSchema, result: EvaluateResultSchema },
  make_tiny_model: { input: MakeTinyModelInputSchema, result: MakeTinyModelResultSchema },
} as const;

export type RecipeName = keyof typeof RECIPE_CONTRACTS;
export type RecipeInput<R extends RecipeName> = z.input<(typeof RECIPE_CONTRACTS)[R]['input']>;
export type RecipeResult<R extends RecipeName> = z.infer<(typeof RECIPE_CONTRACTS)[R]['result']>;

/** A failure of type RecipeContract: retrying runs the same code, so it is non-retryable. */
function contractFailure(message: string, problems: string[]): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`${message}: ${problems.join('; ')}`, ErrorType.RecipeContract, { problems });
}

/** Check a recipe's `result` payload against the recipe's result schema. */
export function checkRecipeResult<R extends RecipeName>(recipe: R, raw: unknown): Validated<RecipeResult<R>> {
  // TypeScript cannot narrow the map by a generic key; the lookup is by that same key.
  return checkContract(RECIPE_CONTRACTS[recipe].result as unknown as z.ZodType<RecipeResult<R>>, raw);
}

/**
 * The recipe's typed result; throws a non-retryable ApplicationFailure of type RecipeContract
 * naming the recipe and each bad field (`train result: total_steps: required; …`).
 */
export function parseRecipeResult<R extends RecipeName>(recipe: R, raw: unknown): RecipeResult<R> {
  const checked = checkRecipeResult(recipe, raw);
  if (!checked.ok) throw contractFailure(`${recipe} result`, checked.problems);
  return checked.value;
}

/**
 * Check one parsed stdout line. Undefined when it is not an event at all (not an object, or no
 * known `event` kind): such lines are logs. Otherwise the event, or problems such as
 * `progress event: step: expected number, received string`.
 */
export function checkRecipeEvent(raw: unknown): Validated<RecipeEvent> | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const kind = (raw as { event?: unknown }).event;
  if (!RECIPE_EVENT_KINDS.includes(kind as RecipeEvent['event'])) return undefined;
  const checked = checkContract(RecipeEventSchema, raw);
  return checked.ok ? checked : { ok: false, problems: checked.problems.map((p) => `${String(kind)} event: ${p}`) };
}

/** Like checkRecipeEvent, but a malformed event throws (RecipeContract, non-retryable). */
export function parseRecipeEvent(raw: unknown): RecipeEvent | undefined {
  const checked = checkRecipeEvent(raw);
  if (checked && !checked.ok) throw contractFailure('recipe event', checked.problems);
  return checked?.value;
}
