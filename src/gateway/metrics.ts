import type { ChainableCommander, Redis } from 'ioredis';
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
  /** A request to a prompt route (/v1/prompts/<name>/...): the prompt's name and the version label it was served with. */
  promptName?: string;
  /** `<promptName>@<12-hex>`. */
  promptVersion?: string;
}

/**
 * The window store's key of a prompt route's records: `#` is never part of a model alias, so a
 * prompt's records never mix with an alias's.
 */
export function promptWindowKey(name: string): string {
  return `#prompt/${name}`;
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
  /*
   * Prompt routes get families of their own, labelled by prompt name and version id, rather than a
   * prompt_version label on the model families above: that label would multiply every alias ×
   * version × status series by the prompt versions served through it. No latency histogram per
   * prompt version (13 buckets each): the per-version latency samples are in the admin metrics
   * window (GET /admin/prompts/<name>/metrics).
   */
  readonly promptRequests = new Counter({ name: 'forgeline_gateway_prompt_requests_total', help: 'Requests to prompt routes by prompt name, prompt version id and HTTP status', labelNames: ['prompt', 'prompt_version', 'status'] as const, registers: [this.registry] });
  readonly promptErrors = new Counter({ name: 'forgeline_gateway_prompt_errors_total', help: 'Failed prompt requests (render errors, 5xx, upstream unreachable, stream cut) by prompt name and version id', labelNames: ['prompt', 'prompt_version'] as const, registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'forgeline_gateway_prompt_tokens_total', help: 'Tokens from the upstream usage of prompt requests, by prompt name, version id and kind (prompt, completion)', labelNames: ['prompt', 'prompt_version', 'kind'] as const, registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'forgeline_gateway_' });
  }

  observe(r: RequestRecord): void {
    this.requests.inc({ alias: r.alias, version: r.version, status: String(r.status) });
    if (r.error) this.errors.inc({ alias: r.alias, version: r.version });
    this.latency.observe({ alias: r.alias, version: r.version }, r.latencyMs / 1000);
    if (r.promptTokens) this.tokens.inc({ alias: r.alias, version: r.version, kind: 'prompt' }, r.promptTokens);
    if (r.completionTokens) this.tokens.inc({ alias: r.alias, version: r.version, kind: 'completion' }, r.completionTokens);
    if (r.promptName !== undefined) this.observePrompt(r.promptName, r.promptVersion!, r);
  }

  /** A prompt request's counters (also one that failed to render and never reached a model). */
  observePrompt(prompt: string, label: string, r: Pick<RequestRecord, 'status' | 'error' | 'promptTokens' | 'completionTokens'>): void {
    const prompt_version = label.slice(label.indexOf('@') + 1);
    this.promptRequests.inc({ prompt, prompt_version, status: String(r.status) });
    if (r.error) this.promptErrors.inc({ prompt, prompt_version });
    if (r.promptTokens) this.promptTokens.inc({ prompt, prompt_version, kind: 'prompt' }, r.promptTokens);
    if (r.completionTokens) this.promptTokens.inc({ prompt, prompt_version, kind: 'completion' }, r.completionTokens);
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
 * `maxSamples` texts per alias. A prompt request (`promptName` set) is kept twice: under its model
 * alias and model version, and under `promptWindowKey(promptName)` and its prompt version label;
 * feedback on its request id reaches both.
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

/** Strings as small integers (versions, tenants): a column stores the index. */
class Interned {
  private readonly ids = new Map<string, number>();
  readonly values: string[] = [];
  id(s: string): number {
    let i = this.ids.get(s);
    if (i === undefined) {
      i = this.values.length;
      this.ids.set(s, i);
      this.values.push(s);
    }
    return i;
  }
}

/**
 * One alias's newest `cap` request records, oldest overwritten first, in columns (typed arrays
 * that grow by doubling up to `cap`): a record costs no heap object but its request id, so a
 * window of 100,000 records is a few MB that the garbage collector never walks, rather than
 * 100,000 objects promoted and traced (what made the gateway's latency tail).
 */
class EventColumns {
  size = 0;
  /** The slot the next record goes to. */
  next = 0;
  private len = 0;
  at = new Float64Array(0);
  latencyMs = new Float64Array(0);
  /** NaN: no feedback. */
  feedback = new Float64Array(0);
  status = new Uint16Array(0);
  error = new Uint8Array(0);
  promptTokens = new Float64Array(0);
  completionTokens = new Float64Array(0);
  version = new Uint32Array(0);
  tenant = new Uint32Array(0);
  requestId: string[] = [];

  constructor(
    readonly cap: number,
    /** Its index in the store's list of columns. */
    readonly index: number,
  ) {}

  private grow(): void {
    const len = Math.min(this.cap, Math.max(1024, this.len * 2));
    const up = <A extends Float64Array | Uint16Array | Uint8Array | Uint32Array>(a: A, make: (n: number) => A): A => {
      const b = make(len);
      b.set(a);
      return b;
    };
    this.at = up(this.at, (n) => new Float64Array(n));
    this.latencyMs = up(this.latencyMs, (n) => new Float64Array(n));
    this.feedback = up(this.feedback, (n) => new Float64Array(n));
    this.status = up(this.status, (n) => new Uint16Array(n));
    this.error = up(this.error, (n) => new Uint8Array(n));
    this.promptTokens = up(this.promptTokens, (n) => new Float64Array(n));
    this.completionTokens = up(this.completionTokens, (n) => new Float64Array(n));
    this.version = up(this.version, (n) => new Uint32Array(n));
    this.tenant = up(this.tenant, (n) => new Uint32Array(n));
    this.len = len;
  }

  /** Store a record; returns its slot and the request id it overwrote (if the ring was full). */
  push(r: RequestRecord, version: number, tenant: number): { slot: number; dropped: string | undefined } {
    if (this.size < this.cap && this.next >= this.len) this.grow();
    const slot = this.next;
    const dropped = this.size === this.cap ? this.requestId[slot] : undefined;
    this.at[slot] = r.at;
    this.latencyMs[slot] = r.latencyMs;
    this.feedback[slot] = NaN;
    this.status[slot] = r.status;
    this.error[slot] = r.error ? 1 : 0;
    this.promptTokens[slot] = r.promptTokens;
    this.completionTokens[slot] = r.completionTokens;
    this.version[slot] = version;
    this.tenant[slot] = tenant;
    this.requestId[slot] = r.requestId;
    this.next = (slot + 1) % this.cap;
    if (this.size < this.cap) this.size++;
    return { slot, dropped };
  }

  /** Slots oldest first. */
  *slots(): Generator<number> {
    const first = this.size === this.cap ? this.next : 0;
    for (let i = 0; i < this.size; i++) yield (first + i) % this.cap;
  }
}

/** In this process: per alias (and per prompt), a columnar ring of records and a ring of sampled texts. */
export class MemoryWindowStore implements WindowStore {
  private readonly events = new Map<string, { cols: EventColumns; versions: Interned }>();
  /** Every alias's columns, by the index request ids point at. */
  private readonly columns: EventColumns[] = [];
  private readonly samples = new Map<string, Ring<TrafficSample>>();
  private readonly tenants = new Interned();
  /** Request id → where its record is: columns index × 2^32 + slot (a number, not an object per record). */
  private readonly byId = new Map<string, number>();
  private readonly sampleById = new Map<string, TrafficSample>();
  /** The same for the second record of prompt requests (under their prompt's key). */
  private readonly promptById = new Map<string, number>();
  private readonly promptSampleById = new Map<string, TrafficSample>();

  constructor(private readonly limits: WindowLimits) {}

  record(r: RequestRecord, text?: { prompt: string; completion: string }): void {
    this.put(r.alias, r.version, r, text, this.byId, this.sampleById);
    if (r.promptName !== undefined) this.put(promptWindowKey(r.promptName), r.promptVersion!, r, text, this.promptById, this.promptSampleById);
  }

  /** Keep `r` under `key` as `version`, indexed by request id in `ids` and `sampleIds`. */
  private put(key: string, version: string, r: RequestRecord, text: { prompt: string; completion: string } | undefined, ids: Map<string, number>, sampleIds: Map<string, TrafficSample>): void {
    let ev = this.events.get(key);
    if (!ev) {
      this.events.set(key, (ev = { cols: new EventColumns(this.limits.maxEvents, this.columns.length), versions: new Interned() }));
      this.columns.push(ev.cols);
    }
    const { slot, dropped } = ev.cols.push(r, ev.versions.id(version), this.tenants.id(r.tenant));
    if (dropped !== undefined) ids.delete(dropped);
    ids.set(r.requestId, ev.cols.index * 2 ** 32 + slot);
    if (text) {
      let sr = this.samples.get(key);
      if (!sr) this.samples.set(key, (sr = new Ring(this.limits.maxSamples)));
      const sample: TrafficSample = { requestId: r.requestId, version, at: r.at, prompt: text.prompt, completion: text.completion, status: r.status };
      const old = sr.push(sample);
      if (old && sampleIds.get(old.requestId) === old) sampleIds.delete(old.requestId);
      sampleIds.set(r.requestId, sample);
    }
  }

  async feedback(requestId: string, tenant: string, score: number): Promise<FeedbackOutcome> {
    const model = this.score(requestId, tenant, score, this.byId, this.sampleById);
    const prompt = this.score(requestId, tenant, score, this.promptById, this.promptSampleById);
    return model || prompt ? 'recorded' : 'unknown';
  }

  private score(requestId: string, tenant: string, score: number, ids: Map<string, number>, sampleIds: Map<string, TrafficSample>): boolean {
    const at = ids.get(requestId);
    if (at === undefined) return false;
    const cols = this.columns[Math.floor(at / 2 ** 32)]!;
    const slot = at % 2 ** 32;
    if (cols.requestId[slot] !== requestId || this.tenants.values[cols.tenant[slot]!] !== tenant) return false;
    cols.feedback[slot] = score;
    const sample = sampleIds.get(requestId);
    if (sample) sample.feedback = score;
    return true;
  }

  async window(alias: string, from: number, to: number): Promise<VersionMetrics[]> {
    const ev = this.events.get(alias);
    if (!ev) return [];
    const { cols, versions } = ev;
    const inWindow = function* () {
      for (const i of cols.slots()) {
        const at = cols.at[i]!;
        if (at < from || at >= to) continue;
        const fb = cols.feedback[i]!;
        const r: RequestRecord = {
          requestId: cols.requestId[i]!,
          alias,
          version: versions.values[cols.version[i]!]!,
          tenant: '',
          at,
          status: cols.status[i]!,
          error: cols.error[i] === 1,
          latencyMs: cols.latencyMs[i]!,
          promptTokens: cols.promptTokens[i]!,
          completionTokens: cols.completionTokens[i]!,
        };
        yield Number.isNaN(fb) ? { r } : { r, feedback: fb };
      }
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
 * In Redis, so a window query sees every replica: per alias (and per prompt, under
 * `promptWindowKey`) a stream of request records (`<prefix>ev:<alias>`, XADD with MAXLEN ~
 * maxEvents) and one of sampled texts (`<prefix>tr:<alias>`, MAXLEN ~ maxSamples), plus one feedback stream (`<prefix>fb`). Stream IDs
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
    this.add(p, r.alias, r.version, r, text);
    if (r.promptName !== undefined) this.add(p, promptWindowKey(r.promptName), r.promptVersion!, r, text);
    p.exec().catch(this.onError);
  }

  private add(p: ChainableCommander, key: string, version: string, r: RequestRecord, text: { prompt: string; completion: string } | undefined): void {
    p.xadd(`${this.prefix}ev:${key}`, 'MAXLEN', '~', String(this.limits.maxEvents), '*', 'r', r.requestId, 'v', version, 't', r.tenant, 's', String(r.status), 'e', r.error ? '1' : '0', 'l', r.latencyMs.toFixed(3), 'p', String(r.promptTokens), 'c', String(r.completionTokens));
    if (text) p.xadd(`${this.prefix}tr:${key}`, 'MAXLEN', '~', String(this.limits.maxSamples), '*', 'r', r.requestId, 'v', version, 't', r.tenant, 's', String(r.status), 'q', text.prompt, 'a', text.completion);
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
