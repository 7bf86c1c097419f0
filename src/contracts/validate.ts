import type { z } from 'zod';

/** Result of validating an untrusted spec: the typed value, or one readable message per problem. */
export type Validated<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/**
 * Validate `input` against `schema` and describe each problem as `field: what is wrong`, with
 * the field as a dotted path (`trainer.lora.r`), so that a person can fix the spec.
 */
export function validateSpec<T>(schema: z.ZodType<T>, input: unknown): Validated<T> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return { ok: true, value: parsed.data };
  return {
    ok: false,
    problems: parsed.error.issues.map((i) => {
      const field = i.path.length ? i.path.map(String).join('.') : '(spec)';
      return `${field}: ${i.message}`;
    }),
  };
}

/** The fields the problems name, once each, in order: `base, dataset, trainer.steps`. */
export function problemFields(problems: string[]): string[] {
  return [...new Set(problems.map((p) => p.slice(0, Math.max(0, p.indexOf(': '))) || '(spec)'))];
}

/** A headline naming every bad field, then one line per problem: `invalid release spec: base, dataset`. */
export function formatProblems(what: string, problems: string[]): string {
  return `invalid ${what}: ${problemFields(problems).join(', ')}\n${problems.map((p) => `  - ${p}`).join('\n')}`;
}
