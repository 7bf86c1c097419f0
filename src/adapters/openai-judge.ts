import { ErrorType } from '../contracts/errors';
import type { Judge } from '../evaluation/ragas';
import { ForgelineError } from '../ports/errors';

export interface OpenAIJudgeOptions {
  /** Base URL of an OpenAI-compatible server (our gateway, vLLM), e.g. `http://127.0.0.1:8080`; `/v1/...` is appended. */
  baseUrl: string;
  /** Model name the server routes on, e.g. the gateway alias `tiny-demo`. */
  model: string;
  /** `chat`: POST /v1/chat/completions with one user message (default); `completions`: POST /v1/completions. */
  api?: 'chat' | 'completions';
  maxTokens?: number;
  /** Sent as `Authorization: Bearer <apiKey>` when set. */
  apiKey?: string;
  /** Per-request timeout (default 120 s). */
  timeoutMs?: number;
  /** Optional sampling seed, for servers that honour it. */
  seed?: number;
}

/**
 * A Judge on an OpenAI-compatible endpoint, at temperature 0 (greedy) so a judge's answers are
 * as repeatable as the server allows. A 4xx answer (wrong model, bad request) is a terminal
 * ForgelineError naming the status and the server's message; 5xx and network errors are plain
 * errors (transient: an activity retries them). The text returned is the first choice's, as is:
 * parsing and validating it is the metric's job (src/evaluation/ragas.ts).
 */
export class OpenAICompatibleJudge implements Judge {
  private readonly api: 'chat' | 'completions';
  constructor(private readonly options: OpenAIJudgeOptions) {
    if (!/^https?:\/\//.test(options.baseUrl)) throw new ForgelineError(ErrorType.InvalidConfig, `judge baseUrl '${options.baseUrl}': expected an http(s) URL such as http://127.0.0.1:8080`, true);
    if (!options.model) throw new ForgelineError(ErrorType.InvalidConfig, 'judge model: name the model or gateway alias, e.g. tiny-demo', true);
    this.api = options.api ?? 'chat';
  }

  async complete(prompt: string): Promise<string> {
    const base = this.options.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
    const url = `${base}/v1/${this.api === 'chat' ? 'chat/completions' : 'completions'}`;
    const body = {
      model: this.options.model,
      ...(this.api === 'chat' ? { messages: [{ role: 'user', content: prompt }] } : { prompt }),
      temperature: 0,
      max_tokens: this.options.maxTokens ?? 512,
      n: 1,
      stream: false,
      ...(this.options.seed !== undefined ? { seed: this.options.seed } : {}),
    };
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 120_000),
    });
    const text = await res.text();
    if (!res.ok) {
      const message = `judge ${url} answered ${res.status}: ${text.slice(0, 300)}`;
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) throw new ForgelineError(ErrorType.InvalidConfig, `${message} (check the judge model name and endpoint)`, true);
      throw new Error(message);
    }
    let parsed: { choices?: Array<{ message?: { content?: unknown }; text?: unknown }> };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      throw new Error(`judge ${url} answered 200 with a body that is not JSON: ${text.slice(0, 200)}`);
    }
    const choice = parsed.choices?.[0];
    const content = this.api === 'chat' ? choice?.message?.content : choice?.text;
    if (typeof content !== 'string') throw new Error(`judge ${url} answered without ${this.api === 'chat' ? 'choices[0].message.content' : 'choices[0].text'}: ${text.slice(0, 200)}`);
    return content;
  }
}
