import { z } from 'zod';
import { ForgelineError } from '../ports/errors';
import { ErrorType } from './errors';

/**
 * A prompt: what the prompt registry (src/registry/prompt-registry.ts) stores as one immutable
 * version. Its content is the template, the variables it takes, the gateway model it is bound to
 * with its sampling parameters, and few-shot examples. The version id is a digest of exactly
 * that content (canonical JSON), so the same prompt always gets the same id.
 *
 * Templates use `{{name}}` placeholders (whitespace inside the braces allowed). Rendering is
 * strict: a placeholder the variables schema does not declare is an error when the prompt is
 * validated, and a required variable missing, an undeclared variable passed, or a value of the
 * wrong type is an error when it is rendered, each naming the variable. Values are inserted
 * verbatim (prompts are not HTML: nothing is escaped). `{{` without a closing `}}` is an error.
 * Mustache (a transitive dependency only, and lenient: it renders a missing variable as empty
 * text) was not used for that reason.
 */

export const PROMPT_ALIASES = ['candidate', 'production'] as const;
export type PromptAlias = (typeof PROMPT_ALIASES)[number];

export const PROMPT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export const PromptVariableSchema = z.strictObject({
  type: z.enum(['string', 'number', 'boolean'], { error: "type: expected 'string', 'number' or 'boolean'" }),
  required: z.boolean().default(true),
  description: z.string().optional(),
});

export const PromptModelBindingSchema = z.strictObject({
  /** Gateway model alias the prompt is served with, e.g. `tiny-demo`. */
  alias: z.string().regex(PROMPT_NAME, 'model.alias: use the gateway model alias, e.g. tiny-demo (lowercase letters, digits, dashes)'),
  params: z
    .strictObject({
      temperature: z.number().min(0).max(2).optional(),
      topP: z.number().gt(0).max(1).optional(),
      maxTokens: z.number().int().positive().optional(),
      stop: z.array(z.string().min(1)).max(8).optional(),
      seed: z.number().int().nonnegative().optional(),
    })
    .default({}),
});

const VariableValue = z.union([z.string(), z.number(), z.boolean()]);

export const PromptExampleSchema = z.strictObject({
  variables: z.record(z.string(), VariableValue),
  output: z.string(),
});

export const PromptSpecSchema = z
  .strictObject({
    name: z.string().regex(PROMPT_NAME, 'name: use lowercase letters, digits and dashes, e.g. support-answer'),
    template: z.string().min(1, 'template: must not be empty'),
    variables: z.record(z.string().regex(VARIABLE_NAME, 'variable names: letters, digits and _, not starting with a digit'), PromptVariableSchema).default({}),
    model: PromptModelBindingSchema,
    examples: z.array(PromptExampleSchema).default([]),
    description: z.string().optional(),
  })
  .superRefine((spec, ctx) => {
    let names: string[];
    try {
      names = templateVariables(spec.template);
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['template'], message: (err as Error).message });
      return;
    }
    for (const n of names) {
      if (!(n in spec.variables)) {
        ctx.addIssue({ code: 'custom', path: ['template'], message: `placeholder {{${n}}} is not declared: add variables.${n} ({type, required}) or remove the placeholder` });
      }
    }
    spec.examples.forEach((ex, i) => {
      const problems = checkValues(spec.variables, ex.variables);
      for (const p of problems) ctx.addIssue({ code: 'custom', path: ['examples', i, 'variables'], message: p });
    });
  });

export type PromptSpecInput = z.input<typeof PromptSpecSchema>;
export type PromptSpec = z.output<typeof PromptSpecSchema>;
export type PromptVariables = PromptSpec['variables'];
export type VariableValues = Record<string, string | number | boolean>;

/** Bad prompt input (spec, render values): terminal, the message names the field and the fix. */
export class PromptError extends ForgelineError {
  constructor(message: string) {
    super(ErrorType.InvalidSpec, message, true);
  }
}

/** Validate a prompt spec; a PromptError names every bad field. */
export function parsePromptSpec(input: unknown): PromptSpec {
  const parsed = PromptSpecSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(prompt)'}: ${i.message}`).join('; ');
  throw new PromptError(`invalid prompt: ${fields}`);
}

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;

/** The variable names a template's placeholders use, in order of first use. */
export function templateVariables(template: string): string[] {
  const names: string[] = [];
  for (const m of template.matchAll(PLACEHOLDER)) {
    const name = m[1]!;
    if (!VARIABLE_NAME.test(name)) throw new PromptError(`template placeholder {{${name}}} at offset ${m.index}: a name is letters, digits and _ (sections and partials are not supported)`);
    if (!names.includes(name)) names.push(name);
  }
  const rest = template.replace(PLACEHOLDER, '');
  const open = rest.indexOf('{{');
  if (open >= 0) throw new PromptError(`template has an unclosed '{{' (near ${JSON.stringify(rest.slice(open, open + 20))}): close it with '}}'`);
  return names;
}

function checkValues(schema: PromptVariables, values: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const [name, value] of Object.entries(values)) {
    const decl = schema[name];
    if (!decl) problems.push(`variable '${name}' is not declared by the prompt (declared: ${Object.keys(schema).join(', ') || 'none'})`);
    else if (typeof value !== decl.type) problems.push(`variable '${name}' must be a ${decl.type}, got ${value === null ? 'null' : typeof value}`);
  }
  for (const [name, decl] of Object.entries(schema)) {
    if (decl.required && values[name] === undefined) problems.push(`required variable '${name}' is missing`);
  }
  return problems;
}

/** Render the template with `values`; unknown, missing or mistyped variables are a PromptError naming each. */
export function renderPrompt(spec: Pick<PromptSpec, 'template' | 'variables'>, values: Record<string, unknown>): string {
  const problems = checkValues(spec.variables, values);
  if (problems.length) throw new PromptError(`cannot render prompt: ${problems.join('; ')}`);
  templateVariables(spec.template);
  return spec.template.replace(PLACEHOLDER, (_, name: string) => {
    const v = values[name];
    return v === undefined ? '' : String(v);
  });
}

/** JSON with object keys sorted at every level: one byte string per value. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
