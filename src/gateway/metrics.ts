import type { Redis } from 'ioredis';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TrafficSample, VersionMetrics } from '../contracts/routing';

/** One finished request, as the metrics window keeps it. */
export interface RequestRecord {
  requestId: string;
  alias: string;
  version: string;
  tenant: string;
  /** When it ended, ms since the epoch. */
  at: number;
  status: number;
  error: boolean;
  latencyMs: number;
  promptTokens: number;
  completionTokens: number;
}

/** Prometheus metrics of one gateway, on a registry of its own (so replicas in one process stay apart). */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'forgeline_gateway_requests_total', help: 'Requests by public model alias, version and HTTP status', labelNames: ['alias', 'version', 'status'] as const, registers: [this.registry] });
  readonly errors = new Counter({ name: 'forgeline_gateway_errors_total', help: 'Failed requests (5xx, upstream unreachable, stream cut) by alias and version', labelNames: ['alias', 'version'] as const, registers: [this.registry] });
  readonly latency = new Histogram({
    name: 'forgeline_gateway_request_duration_seconds',
    help: 'Time from request to the end of the response (the whole stream), by alias and version',
    labelNames: ['alias', 'version'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly tokens = new Counter({ name: 'forgeline_gateway_tokens_total', help: 'Tokens from the upstream usage, by alias, version and kind (prompt, completion)', labelNames: ['alias', 'version', 'kind'] as const, registers: [this.registry] });
  readonly rateLimited = new Counter({ name: 'forgeline_gateway_rate_limited_total', help: 'Requests refused by the token limit, by tenant', labelNames: ['tenant'] as const, registers: [this.registry] });
  readonly feedback = new Counter({ name: 'forgeline_gateway_feedback_total', help: 'Feedback scores received', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'forgeline_gateway_' });
  }

  observe(r: RequestRecord): void {
    this.requests.inc({ alias: r.alias, version: r.version, status: String(r.status) });
    if (r.error) this.errors.inc({ alias: r.alias, version: r.version });
    this.latency.observe({ alias: r.alias, version: r.version }, r.latencyMs / 1000);
    if (r.promptTokens) this.tokens.inc({ alias: r.alias, version: r.version, kind: 'prompt' }, r.promptTokens);
    if (r.completionTokens) this.tokens.inc({ alias: r.alias, version: r.version, kind: 'completion' }, r.completionTokens);
  }
}

export interface WindowLimits {
  maxEvents: number;
  maxSamples: number;
  maxLatencySamples: number;
}

export type FeedbackOutcome = 'recorded' | 'unknown' | 'accepted';

/**
 * What the canary analysis and the drift monitor read: per-version request records and feedback
 * over a time window, and sampled request texts. Bounded: the newest `maxEvents` records and
 * `maxSamples` texts per alias.
 */
export interface WindowStore {
  record(r: RequestRecord, text?: { prompt: string; completion: string }): void;
  /** A score for a request of `tenant`. */
  feedback(requestId: string, tenant: string, score: number): Promise<FeedbackOutcome>;
  window(alias: string, from: number, to: number): Promise<VersionMetrics[]>;
  traffic(alias: string, from: number, to: number, limit: number): Promise<TrafficSample[]>;
  close(): Promise<void>;
}

/** Evenly spaced picks, keeping order: a uniform sample of a time-ordered list. */
function spread<T>(xs: T[], limit: number): T[] {
  if (xs.length <= limit) return xs;
  const out: T[] = [];
  for (let i = 0; i < limit; i++) out.push(xs[Math.floor((i * xs.length) / limit)]!);
  return out;
}

function summarize(records: Iterable<{ r: RequestRecord; feedback?: number }>, maxLatencySamples: number): VersionMetrics[] {
  const by = new Map<string, VersionMetrics>();
  for (const { r, feedback } of records) {
    let m = by.get(r.version);
    if (!m) by.set(r.version, (m = { version: r.version, requests: 0, errors: 0, latencyMs: [], feedback: [], promptTokens: 0, completionTokens: 0 }));
    m.requests++;
    if (r.error) m.errors++;
    m.latencyMs.push(r.latencyMs);
    if (feedback !== undefined) m.feedback.push(feedback);
    m.promptTokens += r.promptTokens;
    m.completionTokens += r.completionTokens;
  }
  for (const m of by.values()) m.latencyMs = spread(m.latencyMs, maxLatencySamples);
  return [...by.values()].sort((a, b) => a.version.localeCompare(b.version));
}

/** A fixed-size ring, oldest dropped first. */
class Ring<T> {
  private readonly items: T[] = [];
  private head = 0;
  constructor(private readonly cap: number) {}
  push(x: T): T | undefined {
    if (this.items.length < this.cap) {
      this.items.push(x);
      return undefined;
    }
    const old = this.items[this.head];
    this.items[this.head] = x;
    this.head = (this.head + 1) % this.cap;
    return old;
  }
  *[Symbol.iterator](): Iterator<T> {
    for (let i = 0; i < this.items.length; i++) yield this.items[(this.head + i) % this.items.length]!;
  }
}

interface MemEntry {
  r: RequestRecord;
  feedback?: number;
}

/** In this process: one ring of records and one of samples per alias. */
export class MemoryWindowStore implements WindowStore {
  private readonly events = new Map<string, Ring<MemEntry>>();
  private readonly samples = new Map<string, Ring<TrafficSample>>();
  private readonly byId = new Map<string, { entry: MemEntry; sample?: TrafficSample }>();

  constructor(private readonly limits: WindowLimits) {}

  record(r: RequestRecord, text?: { prompt: string; completion: string }): void {
    let ring = this.events.get(r.alias);
    if (!ring) this.events.set(r.alias, (ring = new Ring(this.limits.maxEvents)));
    const entry: MemEntry = { r };
    const dropped = ring.push(entry);
    if (dropped) this.byId.delete(dropped.r.requestId);
    let sample: TrafficSample | undefined;
    if (text) {
      let sr = this.samples.get(r.alias);
      if (!sr) this.samples.set(r.alias, (sr = new Ring(this.limits.maxSamples)));
      sample = { requestId: r.requestId, version: r.version, at: r.at, prompt: text.prompt, completion: text.completion, status: r.status };
      sr.push(sample);
    }
    this.byId.set(r.requestId, { entry, sample });
  }

  async feedback(requestId: string, tenant: string, score: number): Promise<FeedbackOutcome> {
    const hit = this.byId.get(requestId);
    if (!hit || hit.entry.r.tenant !== tenant) return 'unknown';
    hit.entry.feedback = score;
    if (hit.sample) hit.sample.feedback = score;
    return 'recorded';
  }

  async window(alias: string, from: number, to: number): Promise<VersionMetrics[]> {
    const ring = this.events.get(alias);
    if (!ring) return [];
    const inWindow = function* () {
      for (const e of ring) if (e.r.at >= from && e.r.at < to) yield e;
    };
    return summarize(inWindow(), this.limits.maxLatencySamples);
  }

  async traffic(alias: string, from: number, to: number, limit: number): Promise<TrafficSample[]> {
    const ring = this.samples.get(alias);
    if (!ring) return [];
    return spread(
      [...ring].filter((s) => s.at >= from && s.at < to),
      limit,
    ).map((s) => ({ ...s }));
  }

  async close(): Promise<void> {}
}

/**
 * In Redis, so a window query sees every replica: per alias a stream of request records
 * (`<prefix>ev:<alias>`, XADD with MAXLEN ~ maxEvents) and one of sampled texts
 * (`<prefix>tr:<alias>`, MAXLEN ~ maxSamples), plus one feedback stream (`<prefix>fb`). Stream IDs
 * are Redis's millisecond clock, so a window is one XRANGE. Feedback is matched to requests by id
 * and tenant when a window is read (so a score can arrive at any replica, any time later).
 */
export class RedisWindowStore implements WindowStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly limits: WindowLimits,
    private readonly onError: (err: unknown) => void,
  ) {}

  record(r: RequestRecord, text?: { prompt: string; completion: string }): void {
    const p = this.redis.pipeline();
    p.xadd(`${this.prefix}ev:${r.alias}`, 'MAXLEN', '~', String(this.limits.maxEvents), '*', 'r', r.requestId, 'v', r.version, 't', r.tenant, 's', String(r.status), 'e', r.error ? '1' : '0', 'l', r.latencyMs.toFixed(3), 'p', String(r.promptTokens), 'c', String(r.completionTokens));
    if (text) p.xadd(`${this.prefix}tr:${r.alias}`, 'MAXLEN', '~', String(this.limits.maxSamples), '*', 'r', r.requestId, 'v', r.version, 't', r.tenant, 's', String(r.status), 'q', text.prompt, 'a', text.completion);
    p.exec().catch(this.onError);
  }

  async feedback(requestId: string, tenant: string, score: number): Promise<FeedbackOutcome> {
    await this.redis.xadd(`${this.prefix}fb`, 'MAXLEN', '~', String(this.limits.maxEvents), '*', 'r', requestId, 't', tenant, 's', String(score));
    return 'accepted';
  }

  /** Every entry of a stream in [from, to), in pages. */
  private async range(key: string, from: number | '-', to: number | '+'): Promise<Array<[string, Record<string, string>]>> {
    const out: Array<[string, Record<string, string>]> = [];
    let start = String(from);
    const end = to === '+' ? '+' : `${to - 1}-18446744073709551615`;
    if (to !== '+' && typeof from === 'number' && to <= from) return out;
    for (;;) {
      const page = await this.redis.xrange(key, start, end, 'COUNT', 10_000);
      for (const [id, flat] of page) {
        const f: Record<string, string> = {};
        for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
        out.push([id, f]);
      }
      if (page.length < 10_000) return out;
      start = `(${page[page.length - 1]![0]}`;
    }
  }

  private async feedbackSince(from: number): Promise<Map<string, { tenant: string; score: number }>> {
    const scores = new Map<string, { tenant: string; score: number }>();
    for (const [, f] of await this.range(`${this.prefix}fb`, from, '+')) scores.set(f.r!, { tenant: f.t!, score: Number(f.s) });
    return scores;
  }

  async window(alias: string, from: number, to: number): Promise<VersionMetrics[]> {
    const [events, scores] = await Promise.all([this.range(`${this.prefix}ev:${alias}`, from, to), this.feedbackSince(from)]);
    const records = events.map(([id, f]) => {
      const r: RequestRecord = { requestId: f.r!, alias, version: f.v!, tenant: f.t!, at: Number(id.split('-')[0]), status: Number(f.s), error: f.e === '1', latencyMs: Number(f.l), promptTokens: Number(f.p), completionTokens: Number(f.c) };
      const fb = scores.get(r.requestId);
      return { r, feedback: fb && fb.tenant === r.tenant ? fb.score : undefined };
    });
    return summarize(records, this.limits.maxLatencySamples);
  }

  async traffic(alias: string, from: number, to: number, limit: number): Promise<TrafficSample[]> {
    const [entries, scores] = await Promise.all([this.range(`${this.prefix}tr:${alias}`, from, to), this.feedbackSince(from)]);
    return spread(entries, limit).map(([id, f]) => {
      const fb = scores.get(f.r!);
      const s: TrafficSample = { requestId: f.r!, version: f.v!, at: Number(id.split('-')[0]), prompt: f.q ?? '', completion: f.a ?? '', status: Number(f.s) };
      if (fb && fb.tenant === f.t) s.feedback = fb.score;
      return s;
    });
  }

  async close(): Promise<void> {}
}
