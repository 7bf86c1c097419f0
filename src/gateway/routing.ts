import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { PROMPT_NAME } from '../contracts/prompt';
import { PromptRouteTargetsSchema, ROUTE_NAME, RouteTargetsSchema, RoutingTableSchema, UpstreamSchema, type PromptRouteTargets, type RouteTargets, type RoutingTable } from '../contracts/routing';

/** A request or table change the gateway refuses; `field` names what is wrong. */
export class InvalidChangeError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** The first zod issue as `field: message`, with the field written as the client sent it (`targets[0].weight`). */
export function fieldOf(prefix: string, issue: z.core.$ZodIssue): string {
  let field = prefix;
  for (const k of issue.path) field += typeof k === 'number' ? `[${k}]` : field ? `.${String(k)}` : String(k);
  return field || '(body)';
}

export function parseTargets(value: unknown, upstreams: RoutingTable['upstreams']): RouteTargets {
  const parsed = RouteTargetsSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidChangeError(fieldOf('targets', issue), issue.message);
  }
  parsed.data.forEach((t, i) => {
    if (!upstreams[t.upstream]) {
      const known = Object.keys(upstreams).join(', ') || 'none yet';
      throw new InvalidChangeError(`targets[${i}].upstream`, `unknown upstream '${t.upstream}' (known: ${known}); add it first with PUT /admin/upstreams/${t.upstream}`);
    }
  });
  return parsed.data;
}

export function parseUpstream(value: unknown): RoutingTable['upstreams'][string] {
  const parsed = UpstreamSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidChangeError(fieldOf('', issue), issue.message);
  }
  for (const [i, u] of parsed.data.urls.entries()) {
    if (!/^https?:\/\//.test(u)) throw new InvalidChangeError(`urls[${i}]`, 'expected an http:// or https:// base URL such as http://127.0.0.1:8000');
  }
  return { urls: parsed.data.urls.map((u) => u.replace(/\/+$/, '')) };
}

export function checkName(kind: 'alias' | 'upstream' | 'prompt', name: string): void {
  if (kind === 'prompt') {
    if (!PROMPT_NAME.test(name)) throw new InvalidChangeError(kind, `'${name}' is not a valid prompt name: lowercase letters, digits and dashes, e.g. support-answer`);
  } else if (!ROUTE_NAME.test(name)) throw new InvalidChangeError(kind, `'${name}' is not a valid name: lowercase letters, digits and . _ : @ / -, starting with a letter or digit`);
}

/**
 * Where a prompt route's targets can be wrong beyond their schema: a label naming another prompt,
 * or a model alias without a model route (prompt requests are forwarded through it). `field` is
 * the prefix of the field names (`targets` for a change, `prompts.<name>.targets` for a stored table).
 */
function checkPromptTargets(name: string, targets: PromptRouteTargets, routes: RoutingTable['routes'], field: string, where = ''): void {
  targets.forEach((t, i) => {
    if (!t.version.startsWith(`${name}@`)) throw new InvalidChangeError(`${field}[${i}].version`, `'${t.version}' names another prompt: expected ${name}@${t.prompt.version}${where}`);
  });
  const alias = targets[0]!.prompt.model.alias;
  if (!routes[alias]) {
    const known = Object.keys(routes).join(', ') || 'none yet';
    throw new InvalidChangeError(`${field}[0].prompt.model.alias`, `no model route '${alias}' (routes: ${known}); prompt requests are forwarded through it: create it first with PUT /admin/routes/${alias}${where}`);
  }
}

export function parsePromptTargets(name: string, value: unknown, routes: RoutingTable['routes']): PromptRouteTargets {
  const parsed = PromptRouteTargetsSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidChangeError(fieldOf('targets', issue), issue.message);
  }
  checkPromptTargets(name, parsed.data, routes, 'targets');
  return parsed.data;
}

/** A whole table, as stored: schema, and every target's upstream present. */
export function checkTable(value: unknown, where: string): RoutingTable {
  const parsed = RoutingTableSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidChangeError(fieldOf('', issue), `${issue.message} (in ${where})`);
  }
  for (const [alias, route] of Object.entries(parsed.data.routes)) {
    route.targets.forEach((t, i) => {
      if (!parsed.data.upstreams[t.upstream]) throw new InvalidChangeError(`routes.${alias}.targets[${i}].upstream`, `unknown upstream '${t.upstream}' (in ${where})`);
    });
  }
  for (const [name, route] of Object.entries(parsed.data.prompts)) checkPromptTargets(name, route.targets, parsed.data.routes, `prompts.${name}.targets`, ` (in ${where})`);
  return parsed.data;
}

/** A uniform number in (0, 1) from the key and the version: the same on every replica and after restarts. */
function unitHash(key: string, version: string): number {
  const h = createHash('sha1').update(key).update('\0').update(version).digest();
  // 52 bits; +0.5 keeps it strictly inside (0, 1).
  return (h.readUInt32BE(0) * 2 ** 20 + (h.readUInt32BE(4) >>> 12) + 0.5) / 2 ** 52;
}

/**
 * The version for one request. With a user or session key: weighted rendezvous hashing (each
 * version scores -ln(u)/weight with u from a hash of key and version; the lowest wins), so a key
 * lands on version i with probability weight_i / sum(weights), always the same one for the same
 * weights, on every replica and after restarts; when a version's weight grows, keys only move to
 * it (a user who saw the candidate at 5% still sees it at 25%). Without a key: a weighted draw.
 * Prompt routes pick their version with the same rules; a prompt version's label differs from
 * every model version's, so a key's prompt pick and its model pick are independent draws.
 */
export function pickTarget<T extends { version: string; weight: number }>(targets: readonly T[], stickyKey: string | undefined, random: () => number): T {
  if (stickyKey !== undefined && stickyKey !== '') {
    let best: T | undefined;
    let bestScore = Infinity;
    for (const t of targets) {
      if (t.weight <= 0) continue;
      const score = -Math.log(unitHash(stickyKey, t.version)) / t.weight;
      if (score < bestScore) {
        bestScore = score;
        best = t;
      }
    }
    return best!;
  }
  let total = 0;
  for (const t of targets) total += t.weight;
  let x = random() * total;
  let last: T | undefined;
  for (const t of targets) {
    if (t.weight <= 0) continue;
    last = t;
    if (x < t.weight) return t;
    x -= t.weight;
  }
  return last!;
}
