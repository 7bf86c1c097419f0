import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { ErrorType } from '../contracts/errors';
import type { PromptEvalModels } from '../evaluation/prompt-eval';
import type { Judge, JudgeFormat } from '../evaluation/ragas';
import { ForgelineError } from '../ports/errors';

export interface OpenAIEndpointOptions {
  /** Base URL of an OpenAI-compatible server (our gateway, vLLM), e.g. `http://127.0.0.1:8080`; `/v1/...` is appended. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>` when set. */
  apiKey?: string;
  /** Per-request timeout (default 120 s). */
  timeoutMs?: number;
  /**
   * Transient failures (network errors, timeouts, 408, 425, 429, 5xx) are retried this many times (default 2)
   * after 0.5 s, 1 s, ... (or the server's Retry-After, at most 30 s) before the error is thrown.
   */
  retries?: number;
  /** Base of the backoff between retries (default 500 ms). */
  retryDelayMs?: number;
}

export interface OpenAIJudgeOptions extends OpenAIEndpointOptions {
  /** Model name the server routes on, e.g. the gateway alias `tiny-demo`. */
  model: string;
  /** `chat`: POST /v1/chat/completions with one user message (default); `completions`: POST /v1/completions. */
  api?: 'chat' | 'completions';
  maxTokens?: number;
  /** Optional sampling seed, for servers that honour it. */
  seed?: number;
  /**
   * `json_schema` (default): send the answer's schema as `response_format: {type: 'json_schema',
   * json_schema: {name, schema, strict: true}}`, so a server with structured outputs (vLLM, OpenAI)
   * can only decode JSON of that shape; a server that refuses the field (400 naming
   * response_format) is asked again without it, and not sent it again by this judge. `none`:
   * never send it (the prompt alone asks for JSON; askJudge validates and retries).
   */
  structuredOutputs?: 'json_schema' | 'none';
  /**
   * Caps added to the structured-outputs schema where it has none: every string at most
   * `maxStringLength` characters, every list at most `maxItems` items. Keeps a weak judge's
   * constrained decoding from running to max_tokens inside one string or list (then the JSON is
   * cut off); the zod check is unchanged.
   */
  schemaBounds?: { maxStringLength?: number; maxItems?: number };
}

/** One chat message. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** Sampling parameters in our names (a prompt's model binding); sent in the OpenAI ones. */
export interface SamplingParams {
  temperature?: number;
  topP?: number;
  maxTokens?: number;
  stop?: string[];
  seed?: number;
}

/** A request to an OpenAI-compatible generation endpoint: chat messages, or a plain prompt for /v1/completions. */
export type GenerationRequest = { model: string; params?: SamplingParams } & ({ messages: ChatMessage[] } | { prompt: string });

class HttpStatusError extends Error {
  constructor(readonly status: number, readonly body: string, readonly retryAfterMs: number | undefined, message: string) {
    super(message);
  }
}

const TRANSIENT_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const s = Number(header);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

/**
 * A client of an OpenAI-compatible endpoint (our gateway, vLLM): the generation half of prompt
 * evaluation, and the transport of OpenAICompatibleJudge.
 *
 * Errors: a 4xx other than 408/425/429 (wrong model, bad request, bad key) is a terminal
 * ForgelineError naming the status, the server's message and the fix; network errors, timeouts,
 * 408/429/5xx are retried `retries` times, then thrown as plain (transient) errors, so an activity
 * retries them. A 200 whose body lacks the text is a plain error too.
 */
export class OpenAICompatibleClient {
  private readonly base: string;
  constructor(private readonly options: OpenAIEndpointOptions) {
    if (!/^https?:\/\//.test(options.baseUrl)) throw new ForgelineError(ErrorType.InvalidConfig, `OpenAI-compatible baseUrl '${options.baseUrl}': expected an http(s) URL such as http://127.0.0.1:8300`, true);
    this.base = options.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
  }

  get baseUrl(): string {
    return this.base;
  }

  /** The first choice's text of a chat or completions request (temperature etc. from `params`; `extra` is merged into the body). */
  async generate(request: GenerationRequest, extra: Record<string, unknown> = {}): Promise<string> {
    const chat = 'messages' in request;
    const url = `${this.base}/v1/${chat ? 'chat/completions' : 'completions'}`;
    const p = request.params ?? {};
    const body = {
      model: request.model,
      ...(chat ? { messages: request.messages } : { prompt: request.prompt }),
      ...(p.temperature !== undefined ? { temperature: p.temperature } : {}),
      ...(p.topP !== undefined ? { top_p: p.topP } : {}),
      ...(p.maxTokens !== undefined ? { max_tokens: p.maxTokens } : {}),
      ...(p.stop?.length ? { stop: p.stop } : {}),
      ...(p.seed !== undefined ? { seed: p.seed } : {}),
      n: 1,
      stream: false,
      ...extra,
    };
    const text = await this.post(url, body);
    let parsed: { choices?: Array<{ message?: { content?: unknown }; text?: unknown }> };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      throw new Error(`${url} answered 200 with a body that is not JSON: ${text.slice(0, 200)}`);
    }
    const choice = parsed.choices?.[0];
    const content = chat ? choice?.message?.content : choice?.text;
    if (typeof content !== 'string') throw new Error(`${url} answered without ${chat ? 'choices[0].message.content' : 'choices[0].text'}: ${text.slice(0, 200)}`);
    return content;
  }

  private async post(url: string, body: unknown): Promise<string> {
    const retries = this.options.retries ?? 2;
    const delay = this.options.retryDelayMs ?? 500;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.postOnce(url, body);
      } catch (err) {
        const transient = !(err instanceof ForgelineError);
        if (!transient || attempt >= retries) throw err;
        const wait = err instanceof HttpStatusError && err.retryAfterMs !== undefined ? Math.min(err.retryAfterMs, 30_000) : delay * 2 ** attempt;
        await sleep(wait);
      }
    }
  }

  private async postOnce(url: string, body: unknown): Promise<string> {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 120_000),
    });
    const text = await res.text();
    if (res.ok) return text;
    const message = `${url} answered ${res.status}: ${text.slice(0, 300)}`;
    if (!TRANSIENT_STATUS.has(res.status) && res.status >= 400 && res.status < 500) {
      const fix = res.status === 401 || res.status === 403 ? 'check the API key' : 'check the model name and endpoint';
      throw Object.assign(new ForgelineError(ErrorType.InvalidConfig, `${message} (${fix})`, true), { status: res.status, body: text });
    }
    throw new HttpStatusError(res.status, text, retryAfterMs(res.headers.get('retry-after')), message);
  }
}

/** `maxLength` on every string schema and `maxItems` on every array schema that has none, recursively. */
function bound(node: unknown, bounds: NonNullable<OpenAIJudgeOptions['schemaBounds']>): void {
  if (Array.isArray(node)) return node.forEach((n) => bound(n, bounds));
  if (!node || typeof node !== 'object') return;
  const o = node as Record<string, unknown>;
  if (o.type === 'string' && o.maxLength === undefined && bounds.maxStringLength !== undefined) o.maxLength = bounds.maxStringLength;
  if (o.type === 'array' && o.maxItems === undefined && bounds.maxItems !== undefined) o.maxItems = Math.max(bounds.maxItems, typeof o.minItems === 'number' ? o.minItems : 0);
  Object.values(o).forEach((v) => bound(v, bounds));
}

/** The JSON Schema of a judge answer, as structured outputs want it: the input shape, no `$schema` key. */
export function judgeJsonSchema(schema: z.ZodType, bounds: OpenAIJudgeOptions['schemaBounds'] = {}): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete json.$schema;
  bound(json, bounds);
  return json;
}

/** A 400 that says the server does not take `response_format` json_schema (an older or other server). */
function refusesStructuredOutputs(err: unknown): boolean {
  if (!(err instanceof ForgelineError)) return false;
  const e = err as ForgelineError & { status?: number; body?: string };
  return (e.status === 400 || e.status === 422) && /response_format|json_schema|structured/i.test(e.body ?? '');
}

/**
 * A Judge on an OpenAI-compatible endpoint, at temperature 0 (greedy) so a judge's answers are
 * as repeatable as the server allows, and with the answer's JSON Schema as structured outputs (see
 * `structuredOutputs`): a small judge cannot write valid verdicts without it. vLLM applies it on
 * both APIs (xgrammar by default); started with `--structured-outputs-config
 * '{"backend": "xgrammar", "disable_any_whitespace": true}'` it also cannot pad JSON with endless
 * whitespace, which a weak model's greedy decoding otherwise does. Errors as OpenAICompatibleClient's.
 * The text returned is the first choice's, as is: parsing and validating it is the metric's job
 * (askJudge in src/evaluation/ragas.ts).
 */
export class OpenAICompatibleJudge implements Judge {
  private readonly api: 'chat' | 'completions';
  private readonly client: OpenAICompatibleClient;
  private structured: boolean;
  constructor(private readonly options: OpenAIJudgeOptions) {
    if (!/^https?:\/\//.test(options.baseUrl)) throw new ForgelineError(ErrorType.InvalidConfig, `judge baseUrl '${options.baseUrl}': expected an http(s) URL such as http://127.0.0.1:8080`, true);
    if (!options.model) throw new ForgelineError(ErrorType.InvalidConfig, 'judge model: name the model or gateway alias, e.g. tiny-demo', true);
    this.api = options.api ?? 'chat';
    this.client = new OpenAICompatibleClient(options);
    this.structured = (options.structuredOutputs ?? 'json_schema') === 'json_schema';
  }

  /** False once the server refused structured outputs (the judge then relies on the prompt alone). */
  get usesStructuredOutputs(): boolean {
    return this.structured;
  }

  async complete(prompt: string, format?: JudgeFormat): Promise<string> {
    const request: GenerationRequest = {
      model: this.options.model,
      ...(this.api === 'chat' ? { messages: [{ role: 'user' as const, content: prompt }] } : { prompt }),
      params: { temperature: 0, maxTokens: this.options.maxTokens ?? 512, ...(this.options.seed !== undefined ? { seed: this.options.seed } : {}) },
    };
    if (!format || !this.structured) return this.client.generate(request);
    const responseFormat = { type: 'json_schema', json_schema: { name: format.name.slice(0, 64) || 'answer', schema: judgeJsonSchema(format.schema, this.options.schemaBounds), strict: true } };
    try {
      return await this.client.generate(request, { response_format: responseFormat });
    } catch (err) {
      if (!refusesStructuredOutputs(err)) throw err;
      this.structured = false;
      return this.client.generate(request);
    }
  }
}

function origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/**
 * Prompt evaluation's models on our gateway: generation with the prompt's alias and params (chat),
 * judging with OpenAICompatibleJudge. The client key goes only to the configured gateway: a
 * `connect(url)` for another origin (a workflow input naming its own endpoint) gets no key, so a
 * workflow input can never send the worker's key elsewhere.
 */
export function gatewayModels(options: { baseUrl: string; apiKey?: string; timeoutMs?: number; judge?: Pick<OpenAIJudgeOptions, 'api' | 'maxTokens' | 'structuredOutputs' | 'schemaBounds'> }): PromptEvalModels {
  return {
    connect(url?: string) {
      const baseUrl = url ?? options.baseUrl;
      const key = origin(baseUrl) === origin(options.baseUrl) && options.apiKey ? { apiKey: options.apiKey } : {};
      const endpoint = { baseUrl, ...key, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) };
      const client = new OpenAICompatibleClient(endpoint);
      return {
        generate: (request) => client.generate({ model: request.model, messages: request.messages, params: request.params }),
        judge: (model) => new OpenAICompatibleJudge({ ...endpoint, model, ...options.judge }),
      };
    },
  };
}
