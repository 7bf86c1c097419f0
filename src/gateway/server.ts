/**
 * The inference gateway: an OpenAI-compatible proxy in front of the serving backends (vLLM).
 *
 *   POST /v1/chat/completions, POST /v1/completions   client key (Bearer); `model` is a public alias
 *   GET  /v1/models                                    the aliases
 *   POST /v1/prompts/<name>/completions, POST /v1/prompts/<name>/chat/completions
 *                                                      client key; {variables, ...OpenAI params}: a prompt route
 *   POST /v1/feedback {request_id, score}               a score for an earlier request (x-request-id)
 *   GET  /admin/routes, PUT /admin/routes/<alias>, DELETE /admin/routes/<alias>,
 *   PUT  /admin/upstreams/<name>, DELETE /admin/upstreams/<name> (refused while a route uses it)
 *   PUT  /admin/prompts/<name>, DELETE /admin/prompts/<name>
 *                                                      admin token; If-Match or expectedVersion: 409 on a mismatch
 *   GET  /admin/metrics?alias&from&to                  VersionMetrics[] over [from, to) (ms since the epoch)
 *   GET  /admin/traffic?alias&from&to&limit            sampled TrafficSample[]
 *   GET  /admin/prompts/<name>/metrics?from&to, GET /admin/prompts/<name>/traffic?from&to&limit
 *                                                      the same per prompt version label
 *   GET  /metrics (Prometheus), GET /health
 *
 * A request picks a version of its alias by weight (sticky per `user` or `x-session-id`), is
 * charged its token budget, has `model` rewritten to the version's served model and goes to one of
 * the upstream's URLs; the response carries `x-forgeline-version` and `x-request-id`. Streams pass
 * through event by event as they arrive. A prompt request first picks a prompt version the same
 * way, renders it, and then goes through the model route of the prompt's model alias as above
 * (so prompt and model canaries compose); its response also carries `x-forgeline-prompt-version`.
 */
import { createHash, randomFillSync, timingSafeEqual } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import { PROMPT_NAME, PromptError, renderPrompt } from '../contracts/prompt';
import type { PromptRouteTarget, RoutingTable, RouteTarget } from '../contracts/routing';
import { ConfigError } from '../ports/errors';
import { completionBudget, estimatePromptTokens, TokenLimiter } from './limits';
import { GatewayMetrics, MemoryWindowStore, promptWindowKey, RedisWindowStore, type RequestRecord, type WindowStore } from './metrics';
import { checkKeys, DEV_KEY_TOKENS_PER_MINUTE, type ApiKey, type GatewayOptions } from './options';
import { checkName, checkTable, InvalidChangeError, parsePromptTargets, parseTargets, parseUpstream, pickTarget } from './routing';
import { FileRoutingStore, RedisRoutingStore, type RoutingStore } from './store';
import { UpstreamAbort, Upstreams } from './upstream';

export const VERSION_HEADER = 'x-forgeline-version';
export const REQUEST_ID_HEADER = 'x-request-id';
/** On a prompt route's response: the prompt version label (`<name>@<12-hex>`) that served it. */
export const PROMPT_VERSION_HEADER = 'x-forgeline-prompt-version';

type Json = Record<string, unknown>;

function openaiError(status: number, message: string, type: string, code: string | null, param: string | null = null) {
  return { status, body: { error: { message, type, param, code } } };
}

function send(reply: FastifyReply, e: ReturnType<typeof openaiError>): FastifyReply {
  return reply.code(e.status).send(e.body);
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(h);
  return m?.[1]?.trim();
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The prompt as text, for traffic samples: chat messages as `role: content` lines. */
function promptText(body: Json, max: number): string {
  let out = '';
  const add = (s: string) => {
    if (out.length < max) out += s.slice(0, max - out.length);
  };
  const content = (c: unknown): string =>
    typeof c === 'string' ? c : Array.isArray(c) ? c.map((p) => (p && typeof p === 'object' && typeof (p as Json).text === 'string' ? ((p as Json).text as string) : '')).join('') : '';
  if (Array.isArray(body.messages)) {
    for (const m of body.messages as Json[]) add(`${out ? '\n' : ''}${String(m?.role ?? '')}: ${content(m?.content)}`);
  } else if (typeof body.prompt === 'string') add(body.prompt);
  else if (Array.isArray(body.prompt)) add(body.prompt.filter((p) => typeof p === 'string').join('\n'));
  return out;
}

function completionOf(payload: Json): string {
  const c = (payload.choices as Json[] | undefined)?.[0];
  if (!c) return '';
  const msg = c.message as Json | undefined;
  const delta = c.delta as Json | undefined;
  const v = msg?.content ?? delta?.content ?? c.text;
  return typeof v === 'string' ? v : '';
}

interface Usage {
  prompt: number;
  completion: number;
}

function usageOf(payload: Json): Usage | undefined {
  const u = payload.usage as Json | null | undefined;
  if (!u || typeof u !== 'object') return undefined;
  const prompt = Number(u.prompt_tokens ?? 0);
  const completion = Number(u.completion_tokens ?? 0);
  return Number.isFinite(prompt) && Number.isFinite(completion) ? { prompt, completion } : undefined;
}

const HAS_USAGE = /"usage"\s*:\s*\{/;

/** Pieces of one request's life that the end of it (recording, settling) needs. */
interface Flight {
  t0: number;
  requestId: string;
  alias: string;
  target: RouteTarget;
  client: ApiKey;
  sample: boolean;
  /** The request's text for the traffic sample ('' when not sampled). */
  text: string;
  /** A prompt route's request: the prompt and the version label it was served with. */
  prompt: { name: string; version: string } | undefined;
}

/** A request on its way through a model route (from a model endpoint or a prompt endpoint). */
interface Forward {
  t0: number;
  client: ApiKey;
  table: RoutingTable;
  alias: string;
  route: RoutingTable['routes'][string];
  /** The body sent upstream (its `model` is replaced by the picked version's). */
  body: Json;
  path: string;
  stickyKey: string | undefined;
  /** The text kept in traffic samples; undefined: the body's prompt or messages. */
  sampleText: string | undefined;
  prompt: { name: string; version: string } | undefined;
}

/** A prompt version's rendered few-shot examples, as a completion prefix and as chat messages. */
interface FewShot {
  prefix: string;
  messages: Json[];
}

/** Fields a prompt endpoint's body may not carry: the prompt route supplies them. */
const PROMPT_SUPPLIED = ['model', 'prompt', 'messages'] as const;

/** The key that makes routing sticky: the x-session-id header, else the body's `user`. */
function stickyKeyOf(req: FastifyRequest, body: Json): string | undefined {
  const session = req.headers['x-session-id'];
  return typeof session === 'string' && session !== '' ? session : typeof body.user === 'string' ? body.user : undefined;
}

function versionHeaders(reply: FastifyReply, f: Flight): FastifyReply {
  reply.header(VERSION_HEADER, f.target.version).header(REQUEST_ID_HEADER, f.requestId);
  if (f.prompt) reply.header(PROMPT_VERSION_HEADER, f.prompt.version);
  return reply;
}

export interface RunningGateway {
  url: string;
  port: number;
  /** The current routing table (as this replica sees it). */
  table(): RoutingTable;
  close(): Promise<void>;
}

class Gateway {
  readonly app: FastifyInstance;
  private tableNow!: RoutingTable;
  private readonly keys = new Map<string, ApiKey>();
  private readonly adminDigest: Buffer | undefined;
  private readonly redis: Redis | undefined;
  private readonly store: RoutingStore;
  private readonly window: WindowStore;
  readonly limiter: TokenLimiter;
  readonly metrics = new GatewayMetrics();
  private readonly upstreams: Upstreams;
  private readonly random: () => number;
  private readonly defaultMaxTokens: number;
  private readonly sampleRate: number;
  private readonly maxTextChars: number;
  private readonly seed: GatewayOptions['seed'];
  /** Rendered few-shot examples per prompt target; a new table's targets are new objects, the old ones' entries go with them. */
  private readonly shots = new WeakMap<PromptRouteTarget, FewShot>();

  constructor(private readonly opts: GatewayOptions) {
    const keys = [...(opts.keys ?? [])];
    if (opts.devKey) keys.push({ key: opts.devKey, tenant: 'dev', tokensPerMinute: opts.devTokensPerMinute ?? DEV_KEY_TOKENS_PER_MINUTE });
    checkKeys(keys);
    for (const k of keys) this.keys.set(k.key, k);
    this.adminDigest = opts.adminToken ? digest(opts.adminToken) : undefined;
    const prefix = opts.redisPrefix ?? 'forgeline:gw:';
    const w = opts.window ?? {};
    const limits = { maxEvents: w.maxEvents ?? 100_000, maxSamples: w.maxSamples ?? 2_000, maxLatencySamples: w.maxLatencySamples ?? 20_000 };
    this.sampleRate = w.sampleRate ?? 1;
    this.maxTextChars = w.maxTextChars ?? 4_000;
    this.defaultMaxTokens = opts.defaultMaxTokens ?? 1024;
    this.random = opts.random ?? Math.random;
    this.seed = opts.seed;
    if (opts.redisUrl) {
      this.redis = new Redis(opts.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
      this.redis.on('error', (err) => this.app?.log.warn({ err }, 'redis'));
      this.store = new RedisRoutingStore(this.redis, prefix, opts.tableRefreshMs);
      this.window = new RedisWindowStore(this.redis, prefix, limits, (err) => this.app.log.warn({ err }, 'recording metrics in redis failed'));
    } else {
      if (!opts.stateDir) throw new ConfigError('the gateway needs a place for its routing table: set FORGELINE_GATEWAY_STATE_DIR (stateDir) or FORGELINE_GATEWAY_REDIS_URL (redisUrl)');
      mkdirSync(opts.stateDir, { recursive: true });
      this.store = new FileRoutingStore(opts.stateDir, opts.tableRefreshMs);
      this.window = new MemoryWindowStore(limits);
    }
    this.limiter = new TokenLimiter(this.redis, prefix);
    const u = opts.upstream ?? {};
    this.upstreams = new Upstreams({ headersTimeoutMs: u.headersTimeoutMs ?? 300_000, bodyTimeoutMs: u.bodyTimeoutMs ?? 60_000, connections: u.connections ?? 256 });
    this.app = Fastify({ logger: opts.logger ?? false, bodyLimit: 32 * 1024 * 1024, return503OnClosing: true });
    this.routes();
  }

  table(): RoutingTable {
    return this.tableNow;
  }

  async start(): Promise<void> {
    if (this.redis) {
      try {
        await this.redis.connect();
      } catch (err) {
        throw new ConfigError(`the gateway cannot reach Redis at ${this.opts.redisUrl}: ${(err as Error).message}; start it (scripts/lib/redis.sh start PORT) or unset FORGELINE_GATEWAY_REDIS_URL`);
      }
    }
    let table = await this.store.load();
    if (!table) {
      const first: RoutingTable = { version: 0, updatedAt: new Date().toISOString(), updatedBy: 'gateway', reason: 'initial table', upstreams: this.seed?.upstreams ?? {}, routes: this.seed?.routes ?? {}, prompts: this.seed?.prompts ?? {} };
      try {
        checkTable(first, 'the seed routing table');
      } catch (err) {
        throw new ConfigError((err as Error).message);
      }
      const r = await this.store.compareAndSet(-1, first);
      table = r.ok ? first : r.current!;
    }
    this.tableNow = table;
    await this.store.watch(() => void this.reload().catch((err: unknown) => this.app.log.error({ err }, 'reloading the routing table failed; keeping the one in use')));
  }

  /** Re-read the stored table; a newer one replaces ours. */
  private async reload(): Promise<RoutingTable> {
    const t = await this.store.load();
    if (t && t.version > this.tableNow.version) this.swap(t);
    return this.tableNow;
  }

  private swap(t: RoutingTable): void {
    this.tableNow = t;
    void this.upstreams.prune(new Set(Object.values(t.upstreams).flatMap((u) => u.urls)));
  }

  async close(): Promise<void> {
    await this.app.close();
    await this.store.close();
    await this.window.close();
    await this.upstreams.close();
    if (this.redis) await this.redis.quit().catch(() => this.redis!.disconnect());
  }

  // ---- auth ------------------------------------------------------------------------------------

  private clientOf(req: FastifyRequest, reply: FastifyReply): ApiKey | undefined {
    const key = bearer(req);
    const client = key === undefined ? undefined : this.keys.get(key);
    if (!client) {
      send(reply, openaiError(401, key === undefined ? 'missing API key: send Authorization: Bearer <key>' : 'invalid API key', 'invalid_request_error', 'invalid_api_key'));
      return undefined;
    }
    return client;
  }

  private adminOk(req: FastifyRequest, reply: FastifyReply): boolean {
    const token = bearer(req);
    if (!this.adminDigest) {
      send(reply, openaiError(401, 'the admin API is disabled: start the gateway with FORGELINE_GATEWAY_ADMIN_TOKEN set', 'authentication_error', 'admin_disabled'));
      return false;
    }
    if (token === undefined || !timingSafeEqual(digest(token), this.adminDigest)) {
      send(reply, openaiError(401, 'bad or missing admin token (Authorization: Bearer <FORGELINE_GATEWAY_ADMIN_TOKEN>)', 'authentication_error', 'invalid_admin_token'));
      return false;
    }
    return true;
  }

  // ---- routes ----------------------------------------------------------------------------------

  private routes(): void {
    const app = this.app;
    app.post('/v1/chat/completions', (req, reply) => this.inference(req, reply, '/v1/chat/completions'));
    app.post('/v1/completions', (req, reply) => this.inference(req, reply, '/v1/completions'));
    app.post('/v1/prompts/:name/chat/completions', (req, reply) => this.promptInference(req, reply, '/v1/chat/completions'));
    app.post('/v1/prompts/:name/completions', (req, reply) => this.promptInference(req, reply, '/v1/completions'));
    app.get('/v1/models', async (req, reply) => {
      if (!this.clientOf(req, reply)) return reply;
      const created = Math.floor(Date.parse(this.tableNow.updatedAt) / 1000) || 0;
      return { object: 'list', data: Object.keys(this.tableNow.routes).map((id) => ({ id, object: 'model', created, owned_by: 'forgeline' })) };
    });
    app.post('/v1/feedback', async (req, reply) => {
      const client = this.clientOf(req, reply);
      if (!client) return reply;
      const body = (req.body ?? {}) as Json;
      if (typeof body.request_id !== 'string' || body.request_id === '') return send(reply, openaiError(400, 'request_id: expected the x-request-id of an earlier response', 'invalid_request_error', 'invalid_field', 'request_id'));
      if (typeof body.score !== 'number' || !Number.isFinite(body.score)) return send(reply, openaiError(400, 'score: expected a number, e.g. 1 for good and 0 for bad', 'invalid_request_error', 'invalid_field', 'score'));
      const outcome = await this.window.feedback(body.request_id, client.tenant, body.score);
      if (outcome === 'unknown') return send(reply, openaiError(404, `request_id: no recent request ${body.request_id} of this key's tenant`, 'invalid_request_error', 'unknown_request', 'request_id'));
      this.metrics.feedback.inc();
      return reply.code(outcome === 'recorded' ? 200 : 202).send({ request_id: body.request_id, recorded: outcome === 'recorded' ? true : 'accepted' });
    });
    app.get('/metrics', async (_req, reply) => reply.header('content-type', this.metrics.registry.contentType).send(await this.metrics.registry.metrics()));
    app.get('/health', async () => ({ status: 'ok', tableVersion: this.tableNow.version, store: this.store.kind }));

    app.get('/admin/routes', async (req, reply) => {
      if (!this.adminOk(req, reply)) return reply;
      return reply.header('etag', `"${this.tableNow.version}"`).send(this.tableNow);
    });
    app.put('/admin/routes/*', (req, reply) => this.adminChange(req, reply, 'route'));
    app.delete('/admin/routes/*', (req, reply) => this.adminChange(req, reply, 'delete-route'));
    app.put('/admin/upstreams/*', (req, reply) => this.adminChange(req, reply, 'upstream'));
    app.delete('/admin/upstreams/*', (req, reply) => this.adminChange(req, reply, 'delete-upstream'));
    app.put('/admin/prompts/:name', (req, reply) => this.adminChange(req, reply, 'prompt'));
    app.delete('/admin/prompts/:name', (req, reply) => this.adminChange(req, reply, 'delete-prompt'));
    for (const prompts of [false, true]) {
      app.get(prompts ? '/admin/prompts/:name/metrics' : '/admin/metrics', async (req, reply) => {
        if (!this.adminOk(req, reply)) return reply;
        const q = this.windowQuery(req, reply, false, prompts);
        if (!q) return reply;
        return this.window.window(q.key, q.from, q.to);
      });
      app.get(prompts ? '/admin/prompts/:name/traffic' : '/admin/traffic', async (req, reply) => {
        if (!this.adminOk(req, reply)) return reply;
        const q = this.windowQuery(req, reply, true, prompts);
        if (!q) return reply;
        return this.window.traffic(q.key, q.from, q.to, q.limit);
      });
    }
  }

  /** The window a metrics or traffic query asks for; `prompt`: of the prompt in the path, else of `?alias`. */
  private windowQuery(req: FastifyRequest, reply: FastifyReply, withLimit: boolean, prompt: boolean): { key: string; from: number; to: number; limit: number } | undefined {
    const q = req.query as Record<string, string | undefined>;
    const bad = (field: string, msg: string) => {
      send(reply, openaiError(400, `${field}: ${msg}`, 'invalid_request_error', 'invalid_field', field));
      return undefined;
    };
    let key: string;
    if (prompt) {
      const name = (req.params as { name: string }).name;
      if (!PROMPT_NAME.test(name)) return bad('name', `'${name}' is not a prompt name: lowercase letters, digits and dashes, e.g. support-answer`);
      key = promptWindowKey(name);
    } else if (!q.alias) return bad('alias', 'expected the public model alias, e.g. ?alias=tiny-demo');
    else key = q.alias;
    const now = Date.now();
    const to = q.to === undefined ? now : Number(q.to);
    const from = q.from === undefined ? to - 5 * 60_000 : Number(q.from);
    if (!Number.isFinite(from) || from < 0) return bad('from', 'expected ms since the epoch');
    if (!Number.isFinite(to) || to < from) return bad('to', 'expected ms since the epoch, not before from');
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (withLimit && (!Number.isInteger(limit) || limit < 1 || limit > 10_000)) return bad('limit', 'expected a whole number in 1..10000');
    return { key, from, to, limit };
  }

  // ---- admin changes: compare-and-swap on the table version --------------------------------------

  private async adminChange(req: FastifyRequest, reply: FastifyReply, kind: 'route' | 'delete-route' | 'upstream' | 'delete-upstream' | 'prompt' | 'delete-prompt'): Promise<FastifyReply> {
    if (!this.adminOk(req, reply)) return reply;
    const params = req.params as Record<string, string>;
    const name = params.name ?? decodeURIComponent(params['*'] ?? '');
    const body = ((req.body ?? {}) as Json) || {};
    const bad = (field: string, msg: string) => send(reply, openaiError(400, `${field}: ${msg}`, 'invalid_request_error', 'invalid_field', field));
    if (typeof body !== 'object' || Array.isArray(body)) return bad('(body)', 'expected a JSON object');
    let expected: number | undefined;
    const ifMatch = req.headers['if-match'];
    if (typeof ifMatch === 'string' && ifMatch !== '*') {
      const m = /^(?:W\/)?"?(\d+)"?$/.exec(ifMatch.trim());
      if (!m) return bad('If-Match', `expected the table version, e.g. "7" (got ${ifMatch})`);
      expected = Number(m[1]);
    }
    if (body.expectedVersion !== undefined) {
      if (typeof body.expectedVersion !== 'number' || !Number.isInteger(body.expectedVersion) || body.expectedVersion < 0) return bad('expectedVersion', 'expected a whole number, the table version the change is based on');
      if (expected !== undefined && expected !== body.expectedVersion) return bad('expectedVersion', `disagrees with If-Match (${expected})`);
      expected = body.expectedVersion;
    }
    for (const f of ['by', 'reason'] as const) if (body[f] !== undefined && typeof body[f] !== 'string') return bad(f, 'expected a string');
    const by = (body.by as string | undefined) ?? 'admin';
    const reason = body.reason as string | undefined;
    try {
      checkName(kind === 'upstream' || kind === 'delete-upstream' ? 'upstream' : kind === 'prompt' || kind === 'delete-prompt' ? 'prompt' : 'alias', name);
      const apply = (t: RoutingTable): Pick<RoutingTable, 'upstreams' | 'routes'> & Partial<Pick<RoutingTable, 'prompts'>> => {
        if (kind === 'route') return { upstreams: t.upstreams, routes: { ...t.routes, [name]: { targets: parseTargets(body.targets, t.upstreams) } } };
        if (kind === 'prompt') return { upstreams: t.upstreams, routes: t.routes, prompts: { ...t.prompts, [name]: { targets: parsePromptTargets(name, body.targets, t.routes) } } };
        if (kind === 'delete-prompt') {
          if (!t.prompts[name]) throw new InvalidChangeError('prompt', `no prompt route '${name}'`);
          const prompts = { ...t.prompts };
          delete prompts[name];
          return { upstreams: t.upstreams, routes: t.routes, prompts };
        }
        if (kind === 'delete-route') {
          if (!t.routes[name]) throw new InvalidChangeError('alias', `no route '${name}'`);
          const bound = Object.entries(t.prompts).filter(([, p]) => p.targets[0]!.prompt.model.alias === name);
          if (bound.length) throw new InvalidChangeError('alias', `'${name}' serves prompt route(s) ${bound.map(([p]) => p).join(', ')}: delete them first (DELETE /admin/prompts/<name>) or bind them to another alias`);
          const routes = { ...t.routes };
          delete routes[name];
          return { upstreams: t.upstreams, routes };
        }
        if (kind === 'delete-upstream') {
          if (!t.upstreams[name]) throw new InvalidChangeError('upstream', `no upstream '${name}'`);
          const users = Object.entries(t.routes).filter(([, r]) => r.targets.some((x) => x.upstream === name));
          if (users.length) throw new InvalidChangeError('upstream', `'${name}' is still used by route(s) ${users.map(([a]) => a).join(', ')}: move their targets off it first`);
          const upstreams = { ...t.upstreams };
          delete upstreams[name];
          return { upstreams, routes: t.routes };
        }
        return { upstreams: { ...t.upstreams, [name]: parseUpstream({ urls: body.urls }) }, routes: t.routes };
      };
      const table = await this.mutate(expected, apply, by, reason);
      return reply.header('etag', `"${table.version}"`).send(table);
    } catch (err) {
      if (err instanceof InvalidChangeError) return bad(err.field, err.message.slice(err.field.length + 2));
      if (err instanceof VersionConflict) {
        const t = err.current;
        return reply.code(409).send({
          error: { message: `the routing table is at version ${t.version}, not ${err.expected} (last changed by ${t.updatedBy} at ${t.updatedAt}${t.reason ? `: ${t.reason}` : ''}); re-read it and retry`, type: 'conflict', param: null, code: 'version_mismatch' },
          table: t,
        });
      }
      throw err;
    }
  }

  /**
   * Apply a change to the table by compare-and-swap. With `expected`, the table must still be at
   * that version; without, a lost race re-applies the change to the winner's table.
   */
  private async mutate(expected: number | undefined, apply: (t: RoutingTable) => Pick<RoutingTable, 'upstreams' | 'routes'> & Partial<Pick<RoutingTable, 'prompts'>>, by: string, reason: string | undefined): Promise<RoutingTable> {
    let cur = this.tableNow;
    for (let attempt = 0; attempt < 20; attempt++) {
      if (expected !== undefined && cur.version !== expected) {
        cur = await this.reload();
        if (cur.version !== expected) throw new VersionConflict(expected, cur);
      }
      const next = checkTable({ prompts: cur.prompts, ...apply(cur), version: cur.version + 1, updatedAt: new Date().toISOString(), updatedBy: by, ...(reason !== undefined ? { reason } : {}) }, 'the changed table');
      const r = await this.store.compareAndSet(cur.version, next);
      if (r.ok) {
        if (next.version > this.tableNow.version) this.swap(next);
        return next;
      }
      if (!r.current) throw new Error('the stored routing table disappeared during a change');
      if (r.current.version > this.tableNow.version) this.swap(r.current);
      cur = r.current;
      if (expected !== undefined && cur.version !== expected) throw new VersionConflict(expected, cur);
    }
    throw new Error('the routing table changed 20 times while this change was retried; try again');
  }

  // ---- the proxy -------------------------------------------------------------------------------

  private async inference(req: FastifyRequest, reply: FastifyReply, path: string): Promise<FastifyReply> {
    const t0 = performance.now();
    const client = this.clientOf(req, reply);
    if (!client) return reply;
    const body = req.body as Json | undefined;
    if (!body || typeof body !== 'object' || Array.isArray(body)) return send(reply, openaiError(400, 'expected a JSON object body', 'invalid_request_error', 'invalid_body'));
    if (typeof body.model !== 'string') return send(reply, openaiError(400, 'model: expected the model name, e.g. "tiny-demo"', 'invalid_request_error', 'invalid_field', 'model'));
    const table = this.tableNow;
    const route = table.routes[body.model];
    if (!route) {
      const known = Object.keys(table.routes).join(', ') || 'none';
      return send(reply, openaiError(404, `The model '${body.model}' does not exist here (served: ${known})`, 'invalid_request_error', 'model_not_found', 'model'));
    }
    return this.forward(req, reply, { t0, client, table, alias: body.model, route, body, path, stickyKey: stickyKeyOf(req, body), sampleText: undefined, prompt: undefined });
  }

  /**
   * A request to a prompt route: pick a prompt version by weight (sticky as model routes are),
   * render it with the request's variables, apply the binding's sampling params as defaults, and
   * forward it through the model route of the binding's alias as a completion (few-shot examples
   * first, each `<rendered example>\n<output>\n\n`, then the rendered request) or as chat (each
   * example a user/assistant pair, then the rendered request as the user message).
   */
  private async promptInference(req: FastifyRequest, reply: FastifyReply, path: '/v1/completions' | '/v1/chat/completions'): Promise<FastifyReply> {
    const t0 = performance.now();
    const client = this.clientOf(req, reply);
    if (!client) return reply;
    const body = req.body as Json | undefined;
    const bad = (field: string, msg: string, code = 'invalid_field') => send(reply, openaiError(400, `${field}: ${msg}`, 'invalid_request_error', code, field));
    if (!body || typeof body !== 'object' || Array.isArray(body)) return send(reply, openaiError(400, 'expected a JSON object body: {"variables": {...}} plus OpenAI parameters (temperature, max_tokens, stream, ...)', 'invalid_request_error', 'invalid_body'));
    for (const field of PROMPT_SUPPLIED) {
      if (body[field] !== undefined) return bad(field, `not allowed on a prompt endpoint: the prompt route supplies ${field === 'model' ? 'the model (its binding\'s alias)' : 'the text'}; send the prompt's variables as {"variables": {...}}, or call ${path} with ${field === 'model' ? 'a model alias' : 'your own text'}`);
    }
    const vars = body.variables ?? {};
    if (typeof vars !== 'object' || vars === null || Array.isArray(vars)) return bad('variables', 'expected an object of the prompt\'s variables, e.g. {"question": "Where is Paris?"}');
    const name = (req.params as { name: string }).name;
    const table = this.tableNow;
    const promptRoute = table.prompts[name];
    if (!promptRoute) {
      const known = Object.keys(table.prompts).join(', ') || 'none';
      return send(reply, openaiError(404, `The prompt '${name}' has no route here (routed prompts: ${known}): release it with \`forgeline prompt release <release.yaml>\`, or route it with PUT /admin/prompts/${name}`, 'invalid_request_error', 'prompt_not_found', null));
    }
    const stickyKey = stickyKeyOf(req, body);
    const target = pickTarget(promptRoute.targets, stickyKey, this.random);
    const prompt = { name, version: target.version };
    let text: string;
    try {
      text = renderPrompt(target.prompt, vars as Json);
    } catch (err) {
      if (!(err instanceof PromptError)) throw err;
      // The version could not serve the request: an error of that version, so a candidate that breaks its callers fails its canary.
      const requestId = newRequestId();
      const r: RequestRecord = { requestId, alias: promptWindowKey(name), version: target.version, tenant: client.tenant, at: Date.now(), status: 400, error: true, latencyMs: performance.now() - t0, promptTokens: 0, completionTokens: 0 };
      this.metrics.observePrompt(name, target.version, r);
      this.window.record(r);
      reply.header(PROMPT_VERSION_HEADER, target.version).header(REQUEST_ID_HEADER, requestId);
      const variable = /variable '([^']+)'/.exec(err.message)?.[1];
      return send(reply, openaiError(400, `${err.message} (prompt ${target.version})`, 'invalid_request_error', 'invalid_variables', variable ? `variables.${variable}` : 'variables'));
    }
    const alias = target.prompt.model.alias;
    const route = table.routes[alias];
    if (!route) return send(reply, openaiError(503, `prompt ${target.version} is bound to model alias '${alias}', which has no route here: route it with PUT /admin/routes/${alias}`, 'server_error', 'prompt_model_unavailable'));

    const forwarded: Json = {};
    const params = target.prompt.model.params;
    if (params.temperature !== undefined) forwarded.temperature = params.temperature;
    if (params.topP !== undefined) forwarded.top_p = params.topP;
    if (params.maxTokens !== undefined && body.max_completion_tokens === undefined) forwarded.max_tokens = params.maxTokens;
    if (params.stop !== undefined) forwarded.stop = params.stop;
    if (params.seed !== undefined) forwarded.seed = params.seed;
    for (const k in body) if (k !== 'variables') forwarded[k] = body[k];
    forwarded.model = alias;
    const shots = this.fewShot(target);
    const chat = path === '/v1/chat/completions';
    if (chat) forwarded.messages = [...shots.messages, { role: 'user', content: text }];
    else forwarded.prompt = shots.prefix + text;
    return this.forward(req, reply, { t0, client, table, alias, route, body: forwarded, path, stickyKey, sampleText: chat ? `user: ${text}` : text, prompt });
  }

  /** A prompt version's few-shot examples, rendered once per target of the table in use. */
  private fewShot(target: PromptRouteTarget): FewShot {
    let f = this.shots.get(target);
    if (!f) {
      const rendered = target.prompt.examples.map((ex) => ({ input: renderPrompt(target.prompt, ex.variables), output: ex.output }));
      f = {
        prefix: rendered.map((ex) => `${ex.input}\n${ex.output}\n\n`).join(''),
        messages: rendered.flatMap((ex) => [
          { role: 'user', content: ex.input },
          { role: 'assistant', content: ex.output },
        ]),
      };
      this.shots.set(target, f);
    }
    return f;
  }

  /** Forward a request through a model route: pick its version, charge its tokens, proxy it, record it. */
  private async forward(req: FastifyRequest, reply: FastifyReply, c: Forward): Promise<FastifyReply> {
    const { t0, client, table, body, path } = c;
    const target = pickTarget(c.route.targets, c.stickyKey, this.random);
    const upstream = table.upstreams[target.upstream]!;
    const stream = body.stream === true;

    const tokens = estimatePromptTokens(body) + completionBudget(body, this.defaultMaxTokens);
    let charge;
    try {
      charge = await this.limiter.charge(client.tenant, client.tokensPerMinute, tokens);
    } catch (err) {
      req.log.error({ err }, 'token limiter failed');
      return send(reply, openaiError(503, 'the token limiter is unavailable; retry shortly', 'server_error', 'limiter_unavailable'));
    }
    if (!charge.ok) {
      this.metrics.rateLimited.inc({ tenant: client.tenant });
      if (charge.reason === 'too-large') {
        return send(reply, openaiError(429, `this request needs up to ${tokens} tokens (prompt estimate + max_tokens) but the key's limit is ${charge.limit} tokens per minute: lower max_tokens or shorten the prompt`, 'tokens', 'request_too_large'));
      }
      reply.header('retry-after', String(charge.retryAfterS)).header('x-ratelimit-limit-tokens', String(charge.limit)).header('x-ratelimit-remaining-tokens', String(charge.remaining));
      return send(reply, openaiError(429, `token limit reached: ${charge.limit} tokens per minute for tenant ${client.tenant}; retry in ${charge.retryAfterS} s`, 'tokens', 'rate_limit_exceeded'));
    }

    const requestId = newRequestId();
    const wantsUsage = stream && (body.stream_options as Json | undefined)?.include_usage === true;
    const forwarded: Json = { ...body, model: target.model };
    if (stream) forwarded.stream_options = { ...((body.stream_options as Json | undefined) ?? {}), include_usage: true };
    const sample = this.sampleRate > 0 && (this.sampleRate >= 1 || Math.random() < this.sampleRate);
    const f: Flight = { t0, requestId, alias: c.alias, target, client, sample, text: sample ? (c.sampleText?.slice(0, this.maxTextChars) ?? promptText(body, this.maxTextChars)) : '', prompt: c.prompt };

    // An EventEmitter as undici's abort signal: the same effect as an AbortController, at a fraction of its cost per request.
    const ac = new UpstreamAbort();
    const onClientGone = () => {
      if (!reply.raw.writableFinished) ac.abort();
    };
    reply.raw.once('close', onClientGone);
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: stream ? 'text/event-stream' : 'application/json', [REQUEST_ID_HEADER]: requestId };
    let res;
    try {
      res = (await this.upstreams.post(target.upstream, upstream.urls, path, headers, JSON.stringify(forwarded), ac)).res;
    } catch (err) {
      void charge.settle(0).catch(() => undefined);
      const msg = `upstream '${target.upstream}' for ${target.version} failed before answering: ${(err as Error).message}${(err as { code?: string }).code ? ` (${(err as { code?: string }).code})` : ''}`;
      this.finish(f, 502, true, undefined, '');
      if (ac.aborted) return reply;
      versionHeaders(reply, f);
      return send(reply, openaiError(502, msg, 'upstream_error', 'upstream_unavailable'));
    }

    const contentType = String(res.headers['content-type'] ?? '');
    if (res.statusCode === 200 && contentType.startsWith('text/event-stream')) {
      reply.hijack();
      await this.pipeStream(f, reply.raw, res.body, wantsUsage, charge.settle);
      return reply;
    }

    // A whole answer (or an upstream error): read it, then send it as it came.
    let buf: Buffer;
    try {
      buf = Buffer.from(await res.body.arrayBuffer());
    } catch (err) {
      this.finish(f, 502, true, undefined, '');
      if (ac.aborted) return reply;
      versionHeaders(reply, f);
      return send(reply, openaiError(502, `upstream '${target.upstream}' for ${target.version} broke off its answer: ${(err as Error).message}`, 'upstream_error', 'upstream_broken'));
    }
    let usage: Usage | undefined;
    let completion = '';
    if (res.statusCode === 200 && contentType.includes('json')) {
      try {
        const payload = JSON.parse(buf.toString('utf8')) as Json;
        usage = usageOf(payload);
        if (f.sample) completion = completionOf(payload).slice(0, this.maxTextChars);
      } catch {
        /* not JSON after all: pass it on as it is */
      }
    }
    void charge.settle(res.statusCode >= 200 && res.statusCode < 300 ? (usage ? usage.prompt + usage.completion : undefined) : 0).catch((err: unknown) => req.log.warn({ err }, 'settling the token charge failed'));
    this.finish(f, res.statusCode, res.statusCode >= 500, usage, completion);
    versionHeaders(reply.code(res.statusCode), f);
    if (contentType) reply.header('content-type', contentType);
    return reply.send(buf);
  }

  /**
   * Pass an SSE stream through event by event. Usage is read from the final chunk (requested with
   * stream_options.include_usage; dropped again when the client did not ask for it). A stream
   * that breaks off (upstream died, or fell silent past the body timeout) ends with an SSE error
   * event the OpenAI clients raise as an error, then the end of the response.
   */
  private async pipeStream(f: Flight, raw: ServerResponse, body: AsyncIterable<Buffer> & { destroy(err?: Error): void }, wantsUsage: boolean, settle: (n: number | undefined) => Promise<void>): Promise<void> {
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      [VERSION_HEADER]: f.target.version,
      [REQUEST_ID_HEADER]: f.requestId,
      ...(f.prompt ? { [PROMPT_VERSION_HEADER]: f.prompt.version } : {}),
    });
    let usage: Usage | undefined;
    let completion = '';
    let done = false;
    let upstreamError = false;
    let out = '';
    let clientClosed = false;
    raw.once('close', () => {
      if (!raw.writableFinished) clientClosed = true;
    });
    const parser = createParser({
      onEvent: (ev: EventSourceMessage) => {
        const data = ev.data;
        if (data === '[DONE]') {
          done = true;
          out += 'data: [DONE]\n\n';
          return;
        }
        if (f.sample || HAS_USAGE.test(data) || data.startsWith('{"error"')) {
          try {
            const payload = JSON.parse(data) as Json;
            if (payload.error) upstreamError = true;
            const u = usageOf(payload);
            if (u) {
              usage = u;
              if (!wantsUsage && Array.isArray(payload.choices) && payload.choices.length === 0) return;
            }
            if (f.sample && completion.length < this.maxTextChars) completion += completionOf(payload).slice(0, this.maxTextChars - completion.length);
          } catch {
            /* not JSON: pass it on */
          }
        }
        out += (ev.event ? `event: ${ev.event}\n` : '') + `data: ${data}\n\n`;
      },
    });
    const decoder = new TextDecoder();
    let failure: string | undefined;
    try {
      for await (const chunk of body) {
        parser.feed(decoder.decode(chunk, { stream: true }));
        if (out) {
          const ok = raw.write(out);
          out = '';
          if (!ok && !clientClosed) await new Promise<void>((resolve) => {
            raw.once('drain', resolve);
            raw.once('close', resolve);
          });
        }
        if (clientClosed) {
          body.destroy();
          break;
        }
      }
      if (!done && !clientClosed) failure = 'the upstream ended the stream without [DONE]';
    } catch (err) {
      failure = `the upstream stream broke off: ${(err as Error).message}`;
    }
    const clientGone = clientClosed || raw.destroyed;
    if (failure && !clientGone) {
      const e = { error: { message: `${failure} (upstream '${f.target.upstream}', version ${f.target.version}, request ${f.requestId})`, type: 'upstream_error', param: null, code: 'upstream_stream_error' } };
      raw.write(`${out}data: ${JSON.stringify(e)}\n\n`);
    } else if (out && !clientGone) raw.write(out);
    if (!clientGone) raw.end();
    const failed = !clientGone && (failure !== undefined || upstreamError);
    // Settle to the real usage when the upstream reported it; a cut stream keeps its whole charge.
    void settle(usage && !failure ? usage.prompt + usage.completion : undefined).catch(() => undefined);
    this.finish(f, clientGone ? 499 : failure ? 502 : 200, failed, usage, completion);
  }

  private finish(f: Flight, status: number, error: boolean, usage: Usage | undefined, completion: string): void {
    const r: RequestRecord = {
      requestId: f.requestId,
      alias: f.alias,
      version: f.target.version,
      tenant: f.client.tenant,
      at: Date.now(),
      status,
      error,
      latencyMs: performance.now() - f.t0,
      promptTokens: usage?.prompt ?? 0,
      completionTokens: usage?.completion ?? 0,
    };
    if (f.prompt) {
      r.promptName = f.prompt.name;
      r.promptVersion = f.prompt.version;
    }
    this.metrics.observe(r);
    this.window.record(r, f.sample ? { prompt: f.text, completion } : undefined);
  }
}

const ID_POOL = Buffer.alloc(16 * 512);
let idOffset = ID_POOL.length;
const ID_TEXT = Buffer.alloc(36);
const HEX = Buffer.from('0123456789abcdef', 'latin1');

/**
 * A random (version 4) UUID as a flat string. crypto.randomUUID() builds its string by
 * concatenation, a tree of about 20 string pieces (~490 bytes of heap), and the metrics window
 * keeps the ids of its newest 100,000 requests: flat, one is ~65 bytes and one object for the GC.
 */
export function newRequestId(): string {
  if (idOffset >= ID_POOL.length) {
    randomFillSync(ID_POOL);
    idOffset = 0;
  }
  const o = idOffset;
  idOffset += 16;
  ID_POOL[o + 6] = (ID_POOL[o + 6]! & 0x0f) | 0x40;
  ID_POOL[o + 8] = (ID_POOL[o + 8]! & 0x3f) | 0x80;
  let j = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) ID_TEXT[j++] = 0x2d;
    const x = ID_POOL[o + i]!;
    ID_TEXT[j++] = HEX[x >> 4]!;
    ID_TEXT[j++] = HEX[x & 15]!;
  }
  return ID_TEXT.toString('latin1', 0, 36);
}

class VersionConflict extends Error {
  constructor(
    readonly expected: number,
    readonly current: RoutingTable,
  ) {
    super(`routing table version ${current.version}, expected ${expected}`);
  }
}

/**
 * Start a gateway; resolves once it listens. `close()` stops it (in-flight streams end) and
 * releases its connections. Throws ConfigError for bad options or an unreachable Redis.
 */
export async function startGateway(opts: GatewayOptions): Promise<RunningGateway> {
  const gw = new Gateway(opts);
  try {
    await gw.start();
    await gw.app.listen({ port: opts.port ?? 8300, host: opts.host ?? '127.0.0.1' });
  } catch (err) {
    await gw.close().catch(() => undefined);
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new ConfigError(`the gateway's port ${opts.port ?? 8300} is in use: stop what listens there or set FORGELINE_GATEWAY_PORT`);
    throw err;
  }
  const addr = gw.app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 8300);
  const host = opts.host && opts.host !== '0.0.0.0' && opts.host !== '::' ? opts.host : '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    table: () => gw.table(),
    close: () => gw.close(),
  };
}
