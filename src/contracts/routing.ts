import { z } from 'zod';
import { PROMPT_NAME, PromptExampleSchema, PromptModelBindingSchema, PromptSpecSchema, PromptVariableSchema, type PromptSpec } from './prompt';

/**
 * The gateway's routing table: each public model alias (what clients send as `model`) maps to
 * weighted versions; a version names the served model (base, quantized model or LoRA adapter) on
 * an upstream (a list of vLLM replica base URLs). Each prompt name (`prompts`) maps to weighted
 * prompt versions, each bound to a model alias. Changed only through the admin API, by
 * compare-and-swap on `version`; persisted, so it survives a gateway restart.
 */
export const ROUTE_NAME = /^[a-z0-9][a-z0-9._:@/-]{0,127}$/;

export const RouteTargetSchema = z.object({
  /** The version label metrics are kept under, e.g. `tiny-demo@v3` or `tiny-demo@stable`. */
  version: z.string().regex(ROUTE_NAME, 'version: lowercase letters, digits and . _ : @ / -'),
  /** The upstream (key of `upstreams`) that serves it. */
  upstream: z.string().min(1),
  /** The model name sent upstream (`model` in the request body). */
  model: z.string().min(1),
  /** Relative weight; weights of one alias need not sum to 100, but at least one is > 0. */
  weight: z.number().int().min(0).max(10_000),
});
export type RouteTarget = z.infer<typeof RouteTargetSchema>;

export const RouteTargetsSchema = z
  .array(RouteTargetSchema)
  .min(1, 'targets: at least one version')
  .refine((t) => t.some((x) => x.weight > 0), 'targets: at least one weight must be > 0')
  .refine((t) => new Set(t.map((x) => x.version)).size === t.length, 'targets: each version at most once');
export type RouteTargets = z.infer<typeof RouteTargetsSchema>;

export const UpstreamSchema = z.object({ urls: z.array(z.string().url()).min(1) });

/** A prompt version id: the first 12 hex digits of its content digest (src/registry/prompt-registry.ts). */
export const PROMPT_VERSION = /^[0-9a-f]{12}$/;

/** The metrics label of a prompt version, as prompt routes, traffic samples and the response header carry it. */
export function promptVersionLabel(name: string, version: string): string {
  return `${name}@${version}`;
}

/**
 * What the gateway needs of one prompt version to serve it: the PromptSpec fields that render
 * it (template, variables, few-shot examples) and the model binding it is forwarded through.
 * Checked as a PromptSpec is (every placeholder declared, examples' variables well typed).
 */
export const RoutedPromptSchema = z.object({
  /** The prompt version id (12 hex digits). */
  version: z.string().regex(PROMPT_VERSION, 'expected the 12-hex-digit prompt version id'),
  template: z.string().min(1, 'must not be empty'),
  variables: z.record(z.string(), PromptVariableSchema).default({}),
  model: PromptModelBindingSchema,
  examples: z.array(PromptExampleSchema).default([]),
});
export type RoutedPrompt = z.infer<typeof RoutedPromptSchema>;

export const PromptRouteTargetSchema = z
  .object({
    /** The label metrics are kept under: `<promptName>@<12-hex prompt version>`, e.g. `support-answer@3f2a9c0d1b4e`. */
    version: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}@[0-9a-f]{12}$/, 'expected <promptName>@<12-hex prompt version>, e.g. support-answer@3f2a9c0d1b4e'),
    prompt: RoutedPromptSchema,
    /** Relative weight, as for model routes. */
    weight: z.number().int().min(0).max(10_000),
  })
  .superRefine((t, ctx) => {
    const [name = '', hex] = t.version.split('@');
    if (hex !== undefined && hex !== t.prompt.version) ctx.addIssue({ code: 'custom', path: ['version'], message: `label ends in @${hex} but prompt.version is ${t.prompt.version}: use ${promptVersionLabel(name, t.prompt.version)}` });
    // The prompt must render as its PromptSpec would: every placeholder declared, examples well typed.
    const spec = PromptSpecSchema.safeParse({ name, template: t.prompt.template, variables: t.prompt.variables, model: t.prompt.model, examples: t.prompt.examples });
    if (!spec.success) for (const issue of spec.error.issues) ctx.addIssue({ code: 'custom', path: ['prompt', ...issue.path.map((k) => (typeof k === 'symbol' ? String(k) : k))], message: issue.message });
  });
export type PromptRouteTarget = z.infer<typeof PromptRouteTargetSchema>;

export const PromptRouteTargetsSchema = z
  .array(PromptRouteTargetSchema)
  .min(1, 'targets: at least one prompt version')
  .refine((t) => t.some((x) => x.weight > 0), 'targets: at least one weight must be > 0')
  .refine((t) => new Set(t.map((x) => x.version)).size === t.length, 'targets: each version at most once')
  .refine((t) => new Set(t.map((x) => x.version.split('@')[0])).size <= 1, 'targets: every version label must name the same prompt')
  .refine((t) => new Set(t.map((x) => x.prompt.model.alias)).size <= 1, 'targets: every version of one prompt route must be bound to the same model alias (prompt.model.alias)');
export type PromptRouteTargets = z.infer<typeof PromptRouteTargetsSchema>;

/**
 * One prompt version as a prompt route target, from its PromptSpec (or a registry record's
 * `prompt`) and version id: what a prompt release passes to TrafficRouter.setPromptRoute.
 */
export function promptRouteTarget(spec: Pick<PromptSpec, 'name' | 'template' | 'variables' | 'model' | 'examples'>, version: string, weight: number): PromptRouteTarget {
  return { version: promptVersionLabel(spec.name, version), prompt: { version, template: spec.template, variables: spec.variables, model: spec.model, examples: spec.examples }, weight };
}

export const RoutingTableSchema = z.object({
  /** Increases by one at every change; the compare-and-swap token. */
  version: z.number().int().min(0),
  updatedAt: z.string(),
  updatedBy: z.string(),
  reason: z.string().optional(),
  upstreams: z.record(z.string(), UpstreamSchema),
  routes: z.record(z.string().regex(ROUTE_NAME), z.object({ targets: RouteTargetsSchema })),
  /**
   * Prompt routes: each prompt name maps to weighted prompt versions, served through the model
   * route of their binding's alias (so a prompt canary and a model canary compose). Absent in
   * tables stored before prompt routes existed: read as none.
   */
  prompts: z.record(z.string().regex(PROMPT_NAME), z.object({ targets: PromptRouteTargetsSchema })).default({}),
});
export type RoutingTable = z.infer<typeof RoutingTableSchema>;

/** What the canary analysis compares, per version over a window. */
export interface VersionMetrics {
  version: string;
  requests: number;
  errors: number;
  /** Latency samples in ms (every request, or a uniform sample when there are many). */
  latencyMs: number[];
  /** Feedback scores (POST /v1/feedback) for requests of this version in the window. */
  feedback: number[];
  promptTokens: number;
  completionTokens: number;
}

/** One request's text, for drift checks. */
export interface TrafficSample {
  requestId: string;
  version: string;
  at: number;
  prompt: string;
  completion: string;
  status: number;
  feedback?: number;
}
