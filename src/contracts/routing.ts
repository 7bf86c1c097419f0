import { z } from 'zod';

/**
 * The gateway's routing table: each public model alias (what clients send as `model`) maps to
 * weighted versions; a version names the served model (base, quantized model or LoRA adapter) on
 * an upstream (a list of vLLM replica base URLs). Changed only through the admin API, by
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

export const RoutingTableSchema = z.object({
  /** Increases by one at every change; the compare-and-swap token. */
  version: z.number().int().min(0),
  updatedAt: z.string(),
  updatedBy: z.string(),
  reason: z.string().optional(),
  upstreams: z.record(z.string(), UpstreamSchema),
  routes: z.record(z.string().regex(ROUTE_NAME), z.object({ targets: RouteTargetsSchema })),
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
