/**
 * A fast stub of an OpenAI-compatible server (the wire format vLLM speaks), for the gateway's
 * tests and benchmark: POST /v1/chat/completions and /v1/completions, whole or streamed (SSE,
 * `data: {...}` chunks, `data: [DONE]`, the usage chunk when stream_options.include_usage is
 * set), GET /v1/models. It answers with `max_tokens` (default 16) one-word tokens and echoes the
 * `model` it was sent, so a test sees which version served a request.
 *
 * Behaviour by markers in the prompt text:
 *   [die-after:N]   streamed: N content chunks, then the connection is destroyed (no [DONE]);
 *                   not streamed: the connection is destroyed before any response
 *   [hang-after:N]  streamed: N content chunks, then silence (the connection stays open)
 *   [slow:MS]       MS milliseconds between stream chunks
 *   [status:CODE]   an error response with that status
 *   [prompt-tokens:N] report N prompt tokens in usage
 *
 * Run as a program (`node -r tsx/cjs test/helpers/gateway-upstream.ts [port]`) it prints
 * `listening <url>` and exits when its stdin closes (the benchmark runs it in its own process).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StubRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

export interface StubUpstream {
  url: string;
  /** Requests received, newest last (when `record` is on). */
  requests: StubRequest[];
  /** Connections currently open to the stub. */
  openConnections(): number;
  /** Responses whose connection closed before the stub ended them (the client went away). */
  cancelled(): number;
  close(): Promise<void>;
}

export interface StubOptions {
  port?: number;
  /** Keep every request in `requests` (default true; the benchmark turns it off). */
  record?: boolean;
  /** prompt_tokens reported in usage (default: the prompt's words). */
  promptTokens?: (body: Record<string, unknown>) => number;
}

function promptOf(body: Record<string, unknown>): string {
  if (Array.isArray(body.messages)) return (body.messages as Array<{ content?: unknown }>).map((m) => (typeof m.content === 'string' ? m.content : '')).join('\n');
  return typeof body.prompt === 'string' ? body.prompt : Array.isArray(body.prompt) ? body.prompt.join('\n') : '';
}

function marker(prompt: string, name: string): number | undefined {
  const m = new RegExp(`\\[${name}:(\\d+)\\]`).exec(prompt);
  return m ? Number(m[1]) : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startStubUpstream(opts: StubOptions = {}): Promise<StubUpstream> {
  const requests: StubRequest[] = [];
  const record = opts.record ?? true;
  let counter = 0;
  let cancelled = 0;
  const server = http.createServer((req, res) => {
    res.on('close', () => {
      if (!res.writableFinished) cancelled++;
    });
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'stub', object: 'model', created: 0, owned_by: 'stub' }] }));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'body is not JSON', type: 'invalid_request_error' } }));
        return;
      }
      const path = req.url ?? '';
      if (record) requests.push({ path, headers: req.headers, body });
      void answer(path, body, req, res);
    });
  });

  async function answer(path: string, body: Record<string, unknown>, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chat = path.endsWith('/chat/completions');
    if (!chat && !path.endsWith('/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `no route ${path}`, type: 'invalid_request_error' } }));
      return;
    }
    const prompt = promptOf(body);
    const status = marker(prompt, 'status');
    if (status) {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `stub error ${status}`, type: 'server_error', code: status } }));
      return;
    }
    const n = typeof body.max_tokens === 'number' ? body.max_tokens : 16;
    const id = `stub-${++counter}`;
    const model = String(body.model);
    const created = Math.floor(Date.now() / 1000);
    const promptTokens = marker(prompt, 'prompt-tokens') ?? (opts.promptTokens ? opts.promptTokens(body) : prompt.split(/\s+/).filter(Boolean).length);
    const usage = { prompt_tokens: promptTokens, completion_tokens: n, total_tokens: 0 };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    const dieAfter = marker(prompt, 'die-after');
    if (body.stream !== true) {
      if (dieAfter !== undefined) {
        req.socket.destroy();
        return;
      }
      const text = Array.from({ length: n }, (_, i) => ` t${i}`).join('');
      const choice = chat ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'length' } : { index: 0, text, finish_reason: 'length', logprobs: null };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id, object: chat ? 'chat.completion' : 'text_completion', created, model, choices: [choice], usage }));
      return;
    }
    const slow = marker(prompt, 'slow');
    const hangAfter = marker(prompt, 'hang-after');
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const chunk = (choice: Record<string, unknown>) => `data: ${JSON.stringify({ id, object, created, model, choices: [choice] })}\n\n`;
    if (chat) res.write(chunk({ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }));
    for (let i = 0; i < n; i++) {
      if (dieAfter !== undefined && i === dieAfter) {
        // Let what was written reach the client first, then cut the connection.
        await new Promise<void>((resolve) => res.write('', () => resolve()));
        await sleep(20);
        req.socket.destroy();
        return;
      }
      if (hangAfter !== undefined && i === hangAfter) return; // silence; the connection stays open
      if (slow) await sleep(slow);
      const last = i === n - 1;
      res.write(chunk(chat ? { index: 0, delta: { content: ` t${i}` }, finish_reason: last ? 'length' : null } : { index: 0, text: ` t${i}`, finish_reason: last ? 'length' : null, logprobs: null }));
    }
    const so = body.stream_options as { include_usage?: boolean } | undefined;
    if (so?.include_usage) res.write(`data: ${JSON.stringify({ id, object, created, model, choices: [], usage })}\n\n`);
    res.end('data: [DONE]\n\n');
  }

  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let open = 0;
  server.on('connection', (s) => {
    open++;
    s.on('close', () => open--);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    openConnections: () => open,
    cancelled: () => cancelled,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

if (require.main === module) {
  void startStubUpstream({ port: Number(process.argv[2] ?? 0), record: false }).then((stub) => {
    console.log(`listening ${stub.url}`);
    process.stdin.resume();
    process.stdin.on('end', () => void stub.close().then(() => process.exit(0)));
  });
}
