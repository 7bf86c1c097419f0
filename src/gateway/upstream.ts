import { EventEmitter } from 'node:events';
import { Pool, type Dispatcher } from 'undici';

/** Cancels an upstream request (undici takes an EventEmitter that emits 'abort' as its signal). */
export class UpstreamAbort extends EventEmitter {
  aborted = false;
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
}

/** One upstream URL: a keep-alive connection pool to its origin and the path prefix it serves under. */
interface Endpoint {
  url: string;
  pool: Pool;
  basePath: string;
}

export interface UpstreamTimeouts {
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  connections: number;
}

/** Connect-time failures: the request never reached the server, so another URL may take it. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Calls to the upstreams (vLLM replicas) through undici pools, one per URL, reused across requests.
 * A request goes to the next URL of its upstream in turn; when a URL refuses the connection, the
 * next one is tried (each at most once).
 */
export class Upstreams {
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly turn = new Map<string, number>();

  constructor(private readonly timeouts: UpstreamTimeouts) {}

  private endpoint(url: string): Endpoint {
    let e = this.endpoints.get(url);
    if (!e) {
      const u = new URL(url);
      e = {
        url,
        pool: new Pool(u.origin, { connections: this.timeouts.connections, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: this.timeouts.headersTimeoutMs, bodyTimeout: this.timeouts.bodyTimeoutMs }),
        basePath: u.pathname.replace(/\/+$/, ''),
      };
      this.endpoints.set(url, e);
    }
    return e;
  }

  /** POST `body` to `path` on one of `urls`; resolves at the response headers. */
  async post(name: string, urls: readonly string[], path: string, headers: Record<string, string>, body: string, signal: UpstreamAbort): Promise<{ url: string; res: Dispatcher.ResponseData }> {
    const start = this.turn.get(name) ?? 0;
    this.turn.set(name, (start + 1) % urls.length);
    let lastErr: unknown;
    for (let i = 0; i < urls.length; i++) {
      const url = urls[(start + i) % urls.length]!;
      const e = this.endpoint(url);
      try {
        const res = await e.pool.request({ method: 'POST', path: e.basePath + path, headers, body, signal });
        return { url, res };
      } catch (err) {
        lastErr = err;
        const code = (err as { code?: string }).code;
        if (signal.aborted || !code || !CONNECT_ERRORS.has(code)) break;
      }
    }
    throw lastErr;
  }

  /** Close pools of URLs no longer in any upstream. */
  async prune(live: Set<string>): Promise<void> {
    for (const [url, e] of this.endpoints) {
      if (!live.has(url)) {
        this.endpoints.delete(url);
        await e.pool.close().catch(() => undefined);
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.endpoints.values()].map((e) => e.pool.destroy().catch(() => undefined)));
    this.endpoints.clear();
  }
}
