/**
 * TrafficRouter over our gateway's admin API (src/gateway): the routing table, per-version
 * metrics over a window and sampled traffic, with the admin token as a Bearer token.
 *
 * Errors: a bad admin token or an unreachable gateway URL that answers something else is a
 * ConfigError (terminal); a refused change (400) is terminal with the gateway's message naming
 * the field; a compare-and-swap conflict (409) is a RouteConflictError, retryable: the caller
 * re-reads the table and decides again. Network faults and 5xx are plain (retryable) errors.
 */
import { request } from 'undici';
import { z } from 'zod';
import { ErrorType } from '../contracts/errors';
import { RoutingTableSchema, type PromptRouteTargets, type RouteTargets, type RoutingTable, type TrafficSample, type VersionMetrics } from '../contracts/routing';
import { ConfigError, ForgelineError } from '../ports/errors';
import { RouteConflictError, type RouteChangeOptions, type TrafficRouter } from '../ports/traffic-router';

export { RouteConflictError };

const VersionMetricsSchema = z.array(
  z.object({
    version: z.string(),
    requests: z.number(),
    errors: z.number(),
    latencyMs: z.array(z.number()),
    feedback: z.array(z.number()),
    promptTokens: z.number(),
    completionTokens: z.number(),
  }),
);

const TrafficSchema = z.array(
  z.object({
    requestId: z.string(),
    version: z.string(),
    at: z.number(),
    prompt: z.string(),
    completion: z.string(),
    status: z.number(),
    feedback: z.number().optional(),
  }),
);

export interface GatewayRouterOptions {
  /** The gateway's base URL, e.g. http://127.0.0.1:8300. */
  url: string;
  adminToken: string;
  /** Per call (default 30 s). */
  timeoutMs?: number;
}

export class GatewayTrafficRouter implements TrafficRouter {
  private readonly base: string;

  constructor(private readonly opts: GatewayRouterOptions) {
    if (!/^https?:\/\//.test(opts.url)) throw new ConfigError(`gateway URL '${opts.url}': expected http://host:port`);
    if (!opts.adminToken) throw new ConfigError('the gateway admin token is empty: set FORGELINE_GATEWAY_ADMIN_TOKEN');
    this.base = opts.url.replace(/\/+$/, '');
  }

  private async call(method: 'GET' | 'PUT' | 'DELETE', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown }> {
    const timeout = this.opts.timeoutMs ?? 30_000;
    let res;
    try {
      res = await request(this.base + path, {
        method,
        headers: { authorization: `Bearer ${this.opts.adminToken}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
    } catch (err) {
      throw new Error(`gateway ${this.base} unreachable (${method} ${path}): ${(err as Error).message}`, { cause: err });
    }
    const text = await res.body.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const message = (json as { error?: { message?: string } } | undefined)?.error?.message ?? text.slice(0, 300);
    if (res.statusCode === 401) throw new ConfigError(`the gateway at ${this.base} refused the admin token: ${message}; check FORGELINE_GATEWAY_ADMIN_TOKEN`);
    if (res.statusCode === 400) throw new ForgelineError(ErrorType.InvalidSpec, `the gateway refused ${method} ${path}: ${message}`, true);
    if (res.statusCode >= 500) throw new Error(`gateway ${this.base} answered ${res.statusCode} to ${method} ${path}: ${message}`);
    if (res.statusCode !== 200 && res.statusCode !== 409) throw new ForgelineError(ErrorType.InvalidConfig, `gateway ${this.base} answered ${res.statusCode} to ${method} ${path}: ${message}`, true);
    return { status: res.statusCode, json };
  }

  async getTable(): Promise<RoutingTable> {
    const { json } = await this.call('GET', '/admin/routes');
    return RoutingTableSchema.parse(json);
  }

  /** A table change (PUT or DELETE) with its audit fields; a 409 becomes a RouteConflictError. */
  private async change(method: 'PUT' | 'DELETE', path: string, what: { kind: 'route' | 'upstream' | 'prompt'; name: string }, payload: Record<string, unknown>, opts: RouteChangeOptions): Promise<RoutingTable> {
    const headers: Record<string, string> = opts.expectedVersion !== undefined ? { 'if-match': `"${opts.expectedVersion}"` } : {};
    const { status, json } = await this.call(method, path, { ...payload, by: opts.by, reason: opts.reason }, headers);
    if (status === 409) {
      const body = json as { error?: { message?: string }; table?: unknown };
      const current = RoutingTableSchema.safeParse(body.table);
      throw new RouteConflictError(what.name, opts.expectedVersion, current.success ? current.data : undefined, `routing table conflict on ${what.kind === 'route' ? '' : `${what.kind} `}${what.name}: ${body.error?.message ?? 'version mismatch'}`);
    }
    return RoutingTableSchema.parse(json);
  }

  async setRoute(alias: string, targets: RouteTargets, opts: RouteChangeOptions = {}): Promise<RoutingTable> {
    return this.change('PUT', `/admin/routes/${alias.split('/').map(encodeURIComponent).join('/')}`, { kind: 'route', name: alias }, { targets }, opts);
  }

  /** Register or change an upstream (the replica URLs a route's versions are served from). */
  async setUpstream(name: string, urls: string[], opts: RouteChangeOptions = {}): Promise<RoutingTable> {
    return this.change('PUT', `/admin/upstreams/${encodeURIComponent(name)}`, { kind: 'upstream', name }, { urls }, opts);
  }

  /**
   * Remove an upstream no route uses any more. Absent already: nothing changes (returns the table).
   * Still used by a route: refused (terminal, the gateway's message names the routes).
   */
  async deleteUpstream(name: string, opts: { by?: string; reason?: string } = {}): Promise<RoutingTable> {
    const table = await this.getTable();
    if (!table.upstreams[name]) return table;
    return this.change('DELETE', `/admin/upstreams/${encodeURIComponent(name)}`, { kind: 'upstream', name }, {}, { ...opts, expectedVersion: table.version });
  }

  /** Set a prompt's weighted prompt versions (PUT /admin/prompts/<name>). */
  async setPromptRoute(name: string, targets: PromptRouteTargets, opts: RouteChangeOptions = {}): Promise<RoutingTable> {
    return this.change('PUT', `/admin/prompts/${encodeURIComponent(name)}`, { kind: 'prompt', name }, { targets }, opts);
  }

  /**
   * Remove a prompt's route (DELETE /admin/prompts/<name>). Absent already: nothing changes
   * (returns the table), so a retried activity succeeds. Without `expectedVersion`, the delete is
   * based on the table just read: a change in between is a RouteConflictError (re-read, decide again).
   */
  async deletePromptRoute(name: string, opts: RouteChangeOptions = {}): Promise<RoutingTable> {
    const table = await this.getTable();
    if (!table.prompts[name]) return table;
    return this.change('DELETE', `/admin/prompts/${encodeURIComponent(name)}`, { kind: 'prompt', name }, {}, { ...opts, expectedVersion: opts.expectedVersion ?? table.version });
  }

  async metrics(alias: string, window: { from: number; to: number }): Promise<VersionMetrics[]> {
    const q = new URLSearchParams({ alias, from: String(window.from), to: String(window.to) });
    const { json } = await this.call('GET', `/admin/metrics?${q}`);
    return VersionMetricsSchema.parse(json);
  }

  async traffic(alias: string, window: { from: number; to: number; limit: number }): Promise<TrafficSample[]> {
    const q = new URLSearchParams({ alias, from: String(window.from), to: String(window.to), limit: String(window.limit) });
    const { json } = await this.call('GET', `/admin/traffic?${q}`);
    return TrafficSchema.parse(json);
  }

  /** Per prompt version label (`<name>@<12-hex>`) over [from, to): GET /admin/prompts/<name>/metrics. */
  async promptMetrics(name: string, window: { from: number; to: number }): Promise<VersionMetrics[]> {
    const q = new URLSearchParams({ from: String(window.from), to: String(window.to) });
    const { json } = await this.call('GET', `/admin/prompts/${encodeURIComponent(name)}/metrics?${q}`);
    return VersionMetricsSchema.parse(json);
  }

  /** Sampled prompt requests (rendered text, answer) per prompt version label: GET /admin/prompts/<name>/traffic. */
  async promptTraffic(name: string, window: { from: number; to: number; limit: number }): Promise<TrafficSample[]> {
    const q = new URLSearchParams({ from: String(window.from), to: String(window.to), limit: String(window.limit) });
    const { json } = await this.call('GET', `/admin/prompts/${encodeURIComponent(name)}/traffic?${q}`);
    return TrafficSchema.parse(json);
  }
}

/** The router workers use, from the config; undefined without an admin token (no gateway configured). */
export function gatewayRouterFromConfig(cfg: { gateway: { url?: string; host: string; port: number; adminToken?: string } }): GatewayTrafficRouter | undefined {
  const g = cfg.gateway;
  if (!g.adminToken) return undefined;
  const host = g.host === '0.0.0.0' || g.host === '::' ? '127.0.0.1' : g.host;
  return new GatewayTrafficRouter({ url: g.url ?? `http://${host.includes(':') ? `[${host}]` : host}:${g.port}`, adminToken: g.adminToken });
}
