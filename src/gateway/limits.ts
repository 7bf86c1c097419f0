import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';

/** Length of a limit window; limits are tokens per minute. */
export const WINDOW_S = 60;

/**
 * An upper bound on a request's prompt tokens without the model's tokenizer: its UTF-8 bytes
 * (byte-level BPE and SentencePiece with byte fallback never make more tokens than bytes) plus a
 * few per chat message for the template's special tokens. Charged up front and refunded to the
 * upstream's real `usage` afterwards, so over-estimating costs nothing but headroom in flight.
 */
export function estimatePromptTokens(body: Record<string, unknown>): number {
  let n = 0;
  const text = (v: unknown): void => {
    if (typeof v === 'string') n += Buffer.byteLength(v, 'utf8');
    else if (Array.isArray(v)) {
      for (const x of v) {
        if (typeof x === 'number') n += 1;
        else text(x);
      }
    }
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o.text === 'string') text(o.text);
      else if (o.image_url || o.input_audio) n += 1024; // multimodal parts: a generous flat charge
    }
  };
  if (Array.isArray(body.messages)) {
    for (const m of body.messages as unknown[]) {
      n += 8;
      if (m && typeof m === 'object') {
        const msg = m as Record<string, unknown>;
        text(msg.content);
        if (typeof msg.name === 'string') text(msg.name);
        if (msg.tool_calls !== undefined) text(JSON.stringify(msg.tool_calls));
      }
    }
    if (body.tools !== undefined) text(JSON.stringify(body.tools));
    n += 8;
  } else {
    text(body.prompt);
    if (typeof body.suffix === 'string') text(body.suffix);
  }
  return Math.max(1, n);
}

/** Completion tokens a request may make: max_tokens (or max_completion_tokens) times n choices. */
export function completionBudget(body: Record<string, unknown>, defaultMaxTokens: number): number {
  const max = body.max_completion_tokens ?? body.max_tokens;
  const perChoice = typeof max === 'number' && Number.isFinite(max) && max >= 0 ? Math.ceil(max) : defaultMaxTokens;
  const n = typeof body.n === 'number' && body.n >= 1 ? Math.ceil(body.n) : 1;
  const bestOf = typeof body.best_of === 'number' && body.best_of > n ? Math.ceil(body.best_of) : n;
  return perChoice * bestOf;
}

export type ChargeResult =
  | { ok: true; charged: number; remaining: number; resetMs: number; settle(actualTokens: number | undefined): Promise<void> }
  | { ok: false; reason: 'limit'; retryAfterS: number; limit: number; remaining: number }
  | { ok: false; reason: 'too-large'; limit: number };

/**
 * Token limits per tenant over fixed 60-second windows, through rate-limiter-flexible:
 * RateLimiterMemory for one gateway, RateLimiterRedis (one atomic Lua increment per charge) for
 * replicas, exact across them. A request is charged its prompt estimate + its completion budget
 * before it is forwarded, and settled to the upstream's real usage when it ends (the difference
 * refunded, or charged when the estimate was short), so a stream cannot run past the limit.
 *
 * The library counts a rejected charge too; we take it back at once, so a request that does not
 * fit does not shrink what is left for smaller ones. A refund whose window has already closed is
 * dropped (it would credit the next window).
 */
export class TokenLimiter {
  private readonly limiters = new Map<number, RateLimiterAbstract>();

  constructor(
    private readonly redis: Redis | undefined,
    private readonly prefix: string,
  ) {}

  private limiterFor(tokensPerMinute: number): RateLimiterAbstract {
    let l = this.limiters.get(tokensPerMinute);
    if (!l) {
      // One limiter per limit size; the tenant is the key, so every limiter shares one key space.
      const opts = { points: tokensPerMinute, duration: WINDOW_S, keyPrefix: `${this.prefix}tpm` };
      l = this.redis
        ? new RateLimiterRedis({ ...opts, storeClient: this.redis, rejectIfRedisNotReady: true, insuranceLimiter: new RateLimiterMemory(opts) })
        : new RateLimiterMemory(opts);
      this.limiters.set(tokensPerMinute, l);
    }
    return l;
  }

  async charge(tenant: string, tokensPerMinute: number, tokens: number): Promise<ChargeResult> {
    if (tokens > tokensPerMinute) return { ok: false, reason: 'too-large', limit: tokensPerMinute };
    const limiter = this.limiterFor(tokensPerMinute);
    let res: RateLimiterRes;
    try {
      res = await limiter.consume(tenant, tokens);
    } catch (rejected) {
      if (!(rejected instanceof RateLimiterRes)) throw rejected;
      await limiter.reward(tenant, tokens);
      return { ok: false, reason: 'limit', retryAfterS: Math.max(1, Math.ceil(rejected.msBeforeNext / 1000)), limit: tokensPerMinute, remaining: Math.max(0, tokensPerMinute - (rejected.consumedPoints - tokens)) };
    }
    const windowEnd = Date.now() + res.msBeforeNext;
    let settled = false;
    return {
      ok: true,
      charged: tokens,
      remaining: res.remainingPoints,
      resetMs: res.msBeforeNext,
      settle: async (actual) => {
        if (settled || actual === undefined) return;
        settled = true;
        const diff = tokens - Math.max(0, Math.round(actual));
        if (diff > 0 && Date.now() < windowEnd - 100) await limiter.reward(tenant, diff);
        else if (diff < 0) await limiter.penalty(tenant, -diff);
      },
    };
  }

  /** Tokens used in the current window (for tests and the admin view). */
  async used(tenant: string, tokensPerMinute: number): Promise<number> {
    const res = await this.limiterFor(tokensPerMinute).get(tenant);
    return res?.consumedPoints ?? 0;
  }
}
