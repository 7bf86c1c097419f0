/**
 * A load generator for the gateway: tiny-instruct prompts at a steady rate, each answer checked
 * against the expected one and scored back through `POST /v1/feedback` (1 when it matches, else
 * 0), so a canary compares the versions' real quality. Used by `forgeline demo` while a release
 * shifts traffic.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../config/load';

export interface Example {
  prompt: string;
  completion: string;
}

export interface LoadOptions {
  /** The gateway's base URL, e.g. http://127.0.0.1:8300. */
  url: string;
  /** Client API key (Bearer). */
  key: string;
  /** The public model alias. */
  model: string;
  examples: Example[];
  /** Requests started per second (default 10). */
  rate?: number;
  /** Requests in flight at most; a tick with all of them busy is skipped (default 4). */
  concurrency?: number;
  /** Default 8: the task's answers are at most 5 tokens. */
  maxTokens?: number;
  /** Post feedback for each answer (default true). */
  feedback?: boolean;
  /** Per request (default 30 s). */
  timeoutMs?: number;
}

/** One version's counts as the load generator saw them. */
export interface VersionLoad {
  requests: number;
  errors: number;
  correct: number;
  feedbackSent: number;
}

/** The eval split of the shipped tiny-instruct dataset (prompts never seen in training). */
export function tinyInstructEval(): Example[] {
  const file = path.join(REPO_ROOT, 'workers', 'recipes', 'data', 'tiny-instruct', 'eval.jsonl');
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Example);
}

/** Case-folded whitespace tokens, as the evaluate recipe's exact match compares them. */
export function sameAnswer(answer: string, expected: string): boolean {
  const norm = (s: string) => s.toLowerCase().split(/\s+/).filter(Boolean).join(' ');
  return norm(answer) === norm(expected);
}

export class LoadGenerator {
  private timer?: NodeJS.Timeout;
  private inFlight = new Set<Promise<void>>();
  private next = 0;
  private readonly byVersion = new Map<string, VersionLoad>();
  /** Requests that got no version (refused by the gateway before routing, or unreachable). */
  unrouted = 0;
  skipped = 0;
  feedbackErrors = 0;
  lastError?: string;

  constructor(private readonly opts: LoadOptions) {
    if (opts.examples.length === 0) throw new Error('load generator: no examples');
  }

  start(): void {
    if (this.timer) return;
    const rate = this.opts.rate ?? 10;
    this.timer = setInterval(() => this.tick(), 1000 / rate);
  }

  /** Stop sending; resolves when the requests in flight have ended. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all([...this.inFlight]);
  }

  /** Counts per version label (x-forgeline-version). */
  stats(): Map<string, VersionLoad> {
    return new Map([...this.byVersion].map(([k, v]) => [k, { ...v }]));
  }

  total(): { requests: number; errors: number } {
    let requests = this.unrouted;
    let errors = this.unrouted;
    for (const v of this.byVersion.values()) {
      requests += v.requests;
      errors += v.errors;
    }
    return { requests, errors };
  }

  private tick(): void {
    if (this.inFlight.size >= (this.opts.concurrency ?? 4)) {
      this.skipped++;
      return;
    }
    const ex = this.opts.examples[this.next++ % this.opts.examples.length]!;
    const p = this.one(ex).catch((err: Error) => {
      this.unrouted++;
      this.lastError = err.message;
    });
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private counts(version: string): VersionLoad {
    let v = this.byVersion.get(version);
    if (!v) this.byVersion.set(version, (v = { requests: 0, errors: 0, correct: 0, feedbackSent: 0 }));
    return v;
  }

  private async one(ex: Example): Promise<void> {
    const { url, key, model } = this.opts;
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ model, prompt: ex.prompt, max_tokens: this.opts.maxTokens ?? 8, temperature: 0 }),
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
    });
    const version = res.headers.get('x-forgeline-version');
    const requestId = res.headers.get('x-request-id');
    const body = (await res.json().catch(() => undefined)) as { choices?: Array<{ text?: string }>; error?: { message?: string } } | undefined;
    if (!version) {
      this.unrouted++;
      this.lastError = `${res.status}: ${body?.error?.message ?? 'no version header'}`;
      return;
    }
    const v = this.counts(version);
    v.requests++;
    if (!res.ok) {
      v.errors++;
      this.lastError = `${version} ${res.status}: ${body?.error?.message ?? ''}`;
      return;
    }
    const correct = sameAnswer(body?.choices?.[0]?.text ?? '', ex.completion);
    if (correct) v.correct++;
    if (this.opts.feedback === false || !requestId) return;
    const fb = await fetch(`${url}/v1/feedback`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ request_id: requestId, score: correct ? 1 : 0 }),
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
    }).catch((err: Error) => ({ ok: false, status: err.message }) as const);
    if (fb.ok) v.feedbackSent++;
    else this.feedbackErrors++;
  }
}

/** One line: totals and, per version, requests and the share answered correctly. */
export function describeLoad(gen: LoadGenerator, since?: { requests: number; at: number }): string {
  const t = gen.total();
  const rate = since ? ` (${((t.requests - since.requests) / ((Date.now() - since.at) / 1000)).toFixed(1)}/s)` : '';
  const versions = [...gen.stats()].map(([name, v]) => `${name} ${v.requests} req, ${v.requests ? Math.round((100 * v.correct) / v.requests) : 0}% correct${v.errors ? `, ${v.errors} errors` : ''}`);
  return `load: ${t.requests} requests${rate}, ${t.errors} errors${versions.length ? `; ${versions.join('; ')}` : ''}`;
}
