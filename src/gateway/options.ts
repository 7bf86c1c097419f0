import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { ForgelineConfig } from '../config/schema';
import type { RoutingTable } from '../contracts/routing';
import { ConfigError } from '../ports/errors';

/** One client API key: who it belongs to and how many tokens a minute that tenant may use. */
export interface ApiKey {
  key: string;
  tenant: string;
  /** Prompt + completion tokens per fixed 60-second window, shared by every key of the tenant. */
  tokensPerMinute: number;
}

/** The dev stack's key gets this many tokens a minute unless told otherwise. */
export const DEV_KEY_TOKENS_PER_MINUTE = 10_000_000;

export interface GatewayOptions {
  /** 0: a free port. Default 8300. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Bearer token of the admin API (/admin/*). Unset: the admin API answers 401 to everyone. */
  adminToken?: string;
  keys?: ApiKey[];
  /** The dev stack's client key, accepted with a generous limit (tenant `dev`). */
  devKey?: string;
  devTokensPerMinute?: number;
  /**
   * Shared state for replicas: token limits, the metrics window, feedback, traffic samples and
   * the routing table live in Redis. Unset: all in this process, the table in `stateDir`.
   */
  redisUrl?: string;
  /** Key prefix in Redis (default `forgeline:gw:`): replicas of one gateway share it. */
  redisPrefix?: string;
  /** Where the routing table is kept without Redis (routes.json, written atomically). */
  stateDir?: string;
  /** Upstreams and routes to start with when no table has been stored yet. */
  seed?: Pick<RoutingTable, 'upstreams' | 'routes'> & { prompts?: RoutingTable['prompts'] };
  /** Completion tokens charged up front for a request without max_tokens (default 1024). */
  defaultMaxTokens?: number;
  window?: {
    /** Request records kept per alias for the metrics window (default 100,000). */
    maxEvents?: number;
    /** Traffic samples (prompt + completion text) kept per alias (default 2,000). */
    maxSamples?: number;
    /** Share of requests whose text is sampled, 0..1 (default 1). */
    sampleRate?: number;
    /** Text kept per prompt or completion, in characters (default 4,000). */
    maxTextChars?: number;
    /** Latency samples returned per version by a window query, at most (default 20,000). */
    maxLatencySamples?: number;
  };
  upstream?: {
    /** Until the upstream's response headers (a non-streamed answer arrives whole). Default 300 s. */
    headersTimeoutMs?: number;
    /** Longest silence inside a response body (between stream chunks). Default 60 s. */
    bodyTimeoutMs?: number;
    /** Connections per upstream URL (default 256). */
    connections?: number;
  };
  /** How often a replica re-reads the stored table in case it missed a change notice (default 2 s). */
  tableRefreshMs?: number;
  /** For tests: the generator that picks a version for requests without a user or session key. */
  random?: () => number;
  /** Fastify's logger (default off). */
  logger?: boolean;
}

const KEY_ENTRY = /^([^=,\s]+)=([A-Za-z0-9._-]+):(\d+)$/;

/** `key=tenant:tokensPerMinute[,key=tenant:tokensPerMinute...]`, as FORGELINE_GATEWAY_KEYS holds it. */
export function parseKeyList(text: string, source = 'FORGELINE_GATEWAY_KEYS'): ApiKey[] {
  const keys: ApiKey[] = [];
  for (const [i, raw] of text.split(',').entries()) {
    const entry = raw.trim();
    if (!entry) continue;
    const m = KEY_ENTRY.exec(entry);
    if (!m) throw new ConfigError(`${source}: entry ${i + 1} is not key=tenant:tokensPerMinute (e.g. sk-team-a=team-a:60000)`);
    keys.push({ key: m[1]!, tenant: m[2]!, tokensPerMinute: Number(m[3]) });
  }
  return keys;
}

const KeysFileSchema = z.object({
  keys: z.array(
    z.object({
      key: z.string().min(8, 'expected at least 8 characters'),
      tenant: z.string().regex(/^[A-Za-z0-9._-]+$/, 'expected letters, digits, dots, dashes or underscores'),
      tokensPerMinute: z.number().int('expected a whole number').positive('expected a positive number'),
    }),
  ),
});

/** A JSON keys file: `{"keys": [{"key": "...", "tenant": "team-a", "tokensPerMinute": 60000}]}`. */
export function readKeysFile(file: string): ApiKey[] {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`FORGELINE_GATEWAY_KEYS_FILE=${file}: cannot read it as JSON (${(err as Error).message})`);
  }
  const parsed = KeysFileSchema.safeParse(data);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`FORGELINE_GATEWAY_KEYS_FILE=${file}: ${issues} (expected {"keys": [{"key", "tenant", "tokensPerMinute"}]})`);
  }
  return parsed.data.keys;
}

/** Every key once; every tenant with one limit. */
export function checkKeys(keys: ApiKey[]): void {
  const seen = new Set<string>();
  const limits = new Map<string, number>();
  for (const k of keys) {
    if (seen.has(k.key)) throw new ConfigError(`gateway keys: a key of tenant ${k.tenant} is listed twice`);
    seen.add(k.key);
    const other = limits.get(k.tenant);
    if (other !== undefined && other !== k.tokensPerMinute) {
      throw new ConfigError(`gateway keys: tenant ${k.tenant} has two limits (${other} and ${k.tokensPerMinute} tokens/min); the limit is per tenant, give its keys one`);
    }
    limits.set(k.tenant, k.tokensPerMinute);
  }
}

/**
 * Gateway options from the Forgeline config. `dev`: the dev stack, which accepts
 * FORGELINE_GATEWAY_DEV_KEY with a generous limit.
 */
export function gatewayOptionsFromConfig(cfg: ForgelineConfig, opts: { dev?: boolean } = {}): GatewayOptions {
  const g = cfg.gateway;
  const keys = [...(g.keys ? parseKeyList(g.keys) : []), ...(g.keysFile ? readKeysFile(path.resolve(g.keysFile)) : [])];
  checkKeys(keys);
  return {
    port: g.port,
    host: g.host,
    adminToken: g.adminToken,
    keys,
    devKey: opts.dev ? g.devKey : undefined,
    redisUrl: g.redisUrl,
    stateDir: g.stateDir,
  };
}
