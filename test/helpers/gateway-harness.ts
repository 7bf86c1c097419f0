/** Small helpers for the gateway tests: admin calls, client calls, a seeded generator, SSE reading. */
import type { RouteTarget, RoutingTable } from '../../src/contracts/routing';
import { startGateway, type RunningGateway } from '../../src/gateway/server';
import type { GatewayOptions } from '../../src/gateway/options';
import { mulberry32 } from '../../src/drift/random';

export const ADMIN_TOKEN = 'admin-token-for-tests';

export interface Reply {
  status: number;
  headers: Headers;
  json: any;
  text: string;
}

export async function call(url: string, method: string, token: string | undefined, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(url, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

export const admin = (gw: { url: string }, method: string, path: string, body?: unknown, headers?: Record<string, string>) => call(gw.url + path, method, ADMIN_TOKEN, body, headers);

export async function chat(gw: { url: string }, key: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Reply> {
  return call(`${gw.url}/v1/chat/completions`, 'POST', key, { model: 'tiny-demo', messages: [{ role: 'user', content: 'hello' }], max_tokens: 2, ...body }, headers);
}

/** Put upstream `stub` and the alias's targets; returns the table. */
export async function route(gw: { url: string }, stubUrl: string, targets: Array<Partial<RouteTarget> & { version: string; weight: number }>, alias = 'tiny-demo'): Promise<RoutingTable> {
  const up = await admin(gw, 'PUT', '/admin/upstreams/stub', { urls: [stubUrl] });
  if (up.status !== 200) throw new Error(`PUT upstream: ${up.status} ${up.text}`);
  const r = await admin(gw, 'PUT', `/admin/routes/${alias}`, { targets: targets.map((t) => ({ upstream: 'stub', model: t.version.replace(/[@]/g, '-'), ...t })) });
  if (r.status !== 200) throw new Error(`PUT route: ${r.status} ${r.text}`);
  return r.json as RoutingTable;
}

/** mulberry32: a small seeded generator, so a test's draws are the same every run. */
export const seeded = mulberry32;

/** Run `fn` over `items` with at most `n` at a time. */
export async function pool<T, R>(items: T[], n: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/** Poll `check` until it returns a value (not undefined), or fail after `ms`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** `data:` payloads of an SSE text. */
export function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .map((e) => e.split('\n').find((l) => l.startsWith('data: '))?.slice(6))
    .filter((d): d is string => d !== undefined);
}

export async function gateway(opts: GatewayOptions): Promise<RunningGateway> {
  return startGateway({ port: 0, adminToken: ADMIN_TOKEN, ...opts });
}

/**
 * Gateways a test starts, closed after it: `start(opts)` adds `base()`'s options (a state
 * directory, keys, a Redis prefix), `stop(gw)` closes one early (a restart), `closeAll()` in afterEach.
 */
export function gatewaySet(base: () => GatewayOptions): { start(opts?: GatewayOptions): Promise<RunningGateway>; stop(gw: RunningGateway): Promise<void>; closeAll(): Promise<void> } {
  const open: RunningGateway[] = [];
  return {
    async start(opts = {}) {
      const gw = await gateway({ ...base(), ...opts });
      open.push(gw);
      return gw;
    },
    async stop(gw) {
      open.splice(open.indexOf(gw), 1);
      await gw.close();
    },
    async closeAll() {
      for (const gw of open.splice(0)) await gw.close();
    },
  };
}
