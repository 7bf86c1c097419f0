/**
 * ServingBackend over vLLM's OpenAI-compatible server and its runtime LoRA admin API, for one or
 * several replicas (servers started with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True --enable-lora
 * --max-loras N --max-lora-rank R`; src/adapters/vllm-process.ts starts one locally).
 *
 *   GET  /health                   health()
 *   GET  /v1/models                listModels(): the models every replica serves (intersection)
 *   POST /v1/load_lora_adapter     loadAdapter({name, path, base?}) on every replica
 *   POST /v1/unload_lora_adapter   unloadAdapter(name) on every replica
 *
 * Rules (src/ports/serving-backend.ts):
 * - loadAdapter is idempotent: a replica that already serves `name` from the same `path` is left
 *   alone. A replica that serves `name` from another path (or as a base model) refuses it with a
 *   terminal ServingRejectedError: a name is never reused for other weights (vLLM's prefix cache
 *   could serve the old adapter's blocks). When one replica refuses terminally, the replicas this
 *   call loaded are unloaded again, so the set stays consistent.
 * - unloadAdapter succeeds for a name that is not loaded. Unload before deleting an adapter's
 *   files: vLLM reads them while the adapter is registered, and an engine whose adapter directory
 *   vanished can die.
 * - Transient faults (connection refused or reset, timeouts, 408, 429, 5xx) are retried with
 *   backoff (`attempts`, default 5), then surface as a plain Error, which Temporal retries. Other
 *   4xx answers are terminal ServingRejectedErrors carrying vLLM's message and ours (the replica,
 *   the adapter, the fix).
 *
 * Each base URL is one vLLM server (`http://host:port`, without `/v1`). Behind a Kubernetes Service
 * or a KServe InferenceService URL, a load would reach only one pod: list the pods' URLs (e.g. from
 * a headless Service) instead, or let a LoRA-aware router (llm-d) place adapters; README "Serving
 * on vLLM".
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorType } from '../contracts/errors';
import { ConfigError, ForgelineError } from '../ports/errors';
import { ServingRejectedError, type LoadAdapterRequest, type ReplicaHealth, type ServedModel, type ServingBackend } from '../ports/serving-backend';

export interface VllmBackendOptions {
  /** Base URLs of the replicas, e.g. `['http://127.0.0.1:8000']` (a trailing `/v1` is dropped). */
  urls: string[];
  /** vLLM's `--api-key`, sent as a Bearer token. */
  apiKey?: string;
  /** Per request (default 60 s: loading an adapter reads its weights). */
  requestTimeoutMs?: number;
  /** Tries of one request on a transient fault (default 5). */
  attempts?: number;
  /** First backoff; doubles each try up to 8 s (default 500 ms). */
  retryDelayMs?: number;
}

/** Adapter names: what clients send as `model`, and what metrics and routing tables carry. */
const ADAPTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const TRANSIENT_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

interface Answer {
  status: number;
  body: unknown;
  text: string;
}

/** A transient fault that outlasted the retries (retryable: Temporal tries the activity again). */
export class ServingUnavailableError extends Error {
  constructor(
    readonly replica: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ServingUnavailableError';
  }
}

function normalizeUrl(raw: string, i: number): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`vLLM backend: urls[${i}] '${raw}' is not a URL; expected a base URL like http://127.0.0.1:8000`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`vLLM backend: urls[${i}] '${raw}' must be http:// or https://`);
  if (u.search || u.hash) throw new ConfigError(`vLLM backend: urls[${i}] '${raw}' must not carry a query or fragment`);
  return u.toString().replace(/\/+$/, '').replace(/\/v1$/, '');
}

/** vLLM's error text: `{"error": {"message"}}`, `{"message"}`, `{"detail"}` or the body. */
function messageOf(a: Answer): string {
  const b = a.body as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown } | undefined;
  const m = (typeof b?.error === 'object' ? b.error?.message : b?.error) ?? b?.message ?? b?.detail;
  const text = typeof m === 'string' ? m : m !== undefined ? JSON.stringify(m) : a.text;
  return text.trim().slice(0, 500) || `HTTP ${a.status}`;
}

function toServedModel(m: { id?: unknown; parent?: unknown; root?: unknown }): ServedModel {
  return {
    id: String(m.id),
    ...(typeof m.parent === 'string' && m.parent ? { parent: m.parent } : {}),
    ...(typeof m.root === 'string' && m.root ? { root: m.root } : {}),
  };
}

export class VllmServingBackend implements ServingBackend {
  readonly label: string;
  readonly urls: readonly string[];
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly retryDelayMs: number;
  private readonly headers: Record<string, string>;

  constructor(opts: VllmBackendOptions) {
    if (!Array.isArray(opts.urls) || opts.urls.length === 0) {
      throw new ConfigError('vLLM backend: urls must list at least one replica base URL, e.g. ["http://127.0.0.1:8000"]');
    }
    const urls = opts.urls.map(normalizeUrl);
    const dup = urls.find((u, i) => urls.indexOf(u) !== i);
    if (dup) throw new ConfigError(`vLLM backend: urls lists ${dup} twice; list each replica once`);
    this.urls = urls;
    this.label = `vllm@${urls.join(',')}`;
    this.timeoutMs = opts.requestTimeoutMs ?? 60_000;
    this.attempts = Math.max(1, opts.attempts ?? 5);
    this.retryDelayMs = opts.retryDelayMs ?? 500;
    this.headers = { 'content-type': 'application/json', ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}) };
  }

  async health(): Promise<ReplicaHealth[]> {
    return Promise.all(
      this.urls.map(async (url): Promise<ReplicaHealth> => {
        try {
          const res = await fetch(`${url}/health`, { headers: this.headers, signal: AbortSignal.timeout(Math.min(this.timeoutMs, 5_000)) });
          await res.arrayBuffer();
          return res.ok ? { url, ok: true } : { url, ok: false, error: `GET /health answered ${res.status}` };
        } catch (err) {
          return { url, ok: false, error: describeFault(err) };
        }
      }),
    );
  }

  async listModels(): Promise<ServedModel[]> {
    const perReplica = await Promise.all(this.urls.map((url) => this.modelsOf(url)));
    const [first, ...rest] = perReplica;
    return first!.filter((m) => rest.every((models) => models.some((o) => o.id === m.id)));
  }

  async loadAdapter(req: LoadAdapterRequest): Promise<void> {
    checkName(req?.name, 'name');
    if (typeof req.path !== 'string' || !req.path.startsWith('/')) {
      throw new ForgelineError(ErrorType.InvalidSpec, `loadAdapter: path must be an absolute directory path that every replica can read, got ${JSON.stringify(req.path)}`, true);
    }
    if (req.base !== undefined) checkName(req.base, 'base');
    const outcomes = await Promise.allSettled(this.urls.map((url) => this.loadOn(url, req)));
    const loadedHere = this.urls.filter((_, i) => outcomes[i]!.status === 'fulfilled' && (outcomes[i] as PromiseFulfilledResult<string>).value === 'loaded');
    const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
    if (failures.length === 0) return;
    const terminal = failures.find((e) => e instanceof ServingRejectedError);
    if (terminal) {
      // Keep the replicas alike: take the adapter off those this call put it on (best effort).
      await Promise.allSettled(loadedHere.map((url) => this.unloadOn(url, req.name)));
      throw terminal;
    }
    throw failures[0];
  }

  async unloadAdapter(name: string): Promise<void> {
    checkName(name, 'name');
    const outcomes = await Promise.allSettled(this.urls.map((url) => this.unloadOn(url, name)));
    const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
    if (failures.length) throw failures.find((e) => e instanceof ServingRejectedError) ?? failures[0];
  }

  // ---- one replica ------------------------------------------------------------------------------

  private async modelsOf(url: string): Promise<ServedModel[]> {
    const a = await this.request(url, 'GET', '/v1/models');
    const data = (a.body as { data?: unknown } | undefined)?.data;
    if (a.status !== 200 || !Array.isArray(data)) {
      throw new ServingUnavailableError(url, `${url}: GET /v1/models answered ${a.status}: ${messageOf(a)}`);
    }
    return data.map((m) => toServedModel(m as Record<string, unknown>));
  }

  /** 'present' when the replica already served it from the same path, 'loaded' when this call loaded it. */
  private async loadOn(url: string, req: LoadAdapterRequest): Promise<'present' | 'loaded'> {
    const models = await this.modelsOf(url);
    if (this.alreadyServed(url, req, models)) return 'present';
    if (req.base !== undefined && !models.some((m) => m.id === req.base && m.parent === undefined)) {
      const bases = models.filter((m) => m.parent === undefined).map((m) => m.id);
      throw new ServingRejectedError(url, `adapter ${req.name}: base model ${req.base} is not served by ${url} (it serves ${bases.join(', ') || 'nothing'}); load it on a replica of its base`);
    }
    const a = await this.request(url, 'POST', '/v1/load_lora_adapter', { lora_name: req.name, lora_path: req.path });
    if (a.status === 200) return 'loaded';
    const msg = messageOf(a);
    if (/already been loaded/i.test(msg)) {
      // Loaded meanwhile (a retry whose first try did land, or a concurrent caller): same weights?
      if (this.alreadyServed(url, req, await this.modelsOf(url))) return 'present';
    }
    if (a.status === 404) {
      throw new ServingRejectedError(url, `adapter ${req.name}: ${url} found no LoRA adapter at ${req.path} (vLLM: ${msg}); the path must be a directory with adapter_config.json and the weights, readable by every replica`, a.status);
    }
    throw new ServingRejectedError(url, `adapter ${req.name} from ${req.path}: ${url} refused to load it (HTTP ${a.status}: ${msg})`, a.status);
  }

  /** True when the replica serves `req.name` from `req.path`; throws when the name is taken otherwise. */
  private alreadyServed(url: string, req: LoadAdapterRequest, models: ServedModel[]): boolean {
    const existing = models.find((m) => m.id === req.name);
    if (!existing) return false;
    if (existing.parent === undefined) {
      throw new ServingRejectedError(url, `adapter ${req.name}: ${url} already serves a base model of that name; give the adapter another name`);
    }
    if (existing.root !== undefined && existing.root !== req.path) {
      throw new ServingRejectedError(
        url,
        `adapter ${req.name}: ${url} already serves that name from ${existing.root}, not ${req.path}; a name is never reused for other weights (vLLM could serve cached blocks of the old ones): give each version its own name`,
      );
    }
    if (req.base !== undefined && existing.parent !== req.base) {
      throw new ServingRejectedError(url, `adapter ${req.name}: ${url} serves it on base ${existing.parent}, not ${req.base}`);
    }
    return true;
  }

  private async unloadOn(url: string, name: string): Promise<void> {
    const a = await this.request(url, 'POST', '/v1/unload_lora_adapter', { lora_name: name });
    if (a.status === 200) return;
    const msg = messageOf(a);
    if (a.status === 404 || /cannot be found|not found/i.test(msg)) return; // not loaded: fine
    throw new ServingRejectedError(url, `adapter ${name}: ${url} refused to unload it (HTTP ${a.status}: ${msg})`, a.status);
  }

  /** One HTTP exchange, retried on transient faults; any other answer is returned as it is. */
  private async request(url: string, method: 'GET' | 'POST', route: string, body?: unknown): Promise<Answer> {
    let delay = this.retryDelayMs;
    let last = '';
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetch(url + route, {
          method,
          headers: this.headers,
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        const text = await res.text();
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        const answer = { status: res.status, body: parsed, text };
        if (!TRANSIENT_STATUS.has(res.status)) return answer;
        last = `HTTP ${res.status}: ${messageOf(answer)}`;
      } catch (err) {
        last = describeFault(err);
      }
      if (attempt >= this.attempts) {
        throw new ServingUnavailableError(url, `${method} ${url}${route} failed ${attempt} times; last: ${last}`);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 8_000);
    }
  }
}

function checkName(name: unknown, field: string): asserts name is string {
  if (typeof name !== 'string' || !ADAPTER_NAME.test(name)) {
    throw new ForgelineError(ErrorType.InvalidSpec, `${field} must be 1-128 letters, digits, dots, dashes or underscores, starting with a letter or digit (e.g. tiny-demo-v3), got ${JSON.stringify(name)}`, true);
  }
}

function describeFault(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return 'timed out';
  return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}
