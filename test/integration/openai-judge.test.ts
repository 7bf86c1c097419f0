import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { gatewayModels, judgeJsonSchema, OpenAICompatibleJudge } from '../../src/adapters/openai-judge';
import { faithfulness, FaithfulnessStatements, FaithfulnessVerdicts } from '../../src/evaluation/ragas';
import { ForgelineError } from '../../src/ports/errors';

interface Seen {
  url: string;
  headers: Record<string, unknown>;
  body: Record<string, unknown>;
}

/** An OpenAI-compatible endpoint on a free local port that records requests and answers from `reply`. */
async function startServer(reply: (seen: Seen) => { status: number; body: unknown }): Promise<{ app: FastifyInstance; url: string; seen: Seen[] }> {
  const app = Fastify();
  const seen: Seen[] = [];
  const handler = async (req: { url: string; headers: Record<string, unknown>; body: unknown }, res: { code(n: number): { send(b: unknown): unknown } }) => {
    const s = { url: req.url, headers: req.headers, body: req.body as Record<string, unknown> };
    seen.push(s);
    const r = reply(s);
    return res.code(r.status).send(r.body);
  };
  app.post('/v1/chat/completions', handler);
  app.post('/v1/completions', handler);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, seen };
}

const chat = (content: string) => ({ status: 200, body: { id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] } });

describe('OpenAI-compatible judge adapter (local fastify endpoint)', function () {
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  afterEach(async function () {
    await server?.app.close();
    server = undefined;
  });

  it('POSTs /v1/chat/completions with one user message, temperature 0, the model and the bearer key', async function () {
    server = await startServer(() => chat('{"statements": []}'));
    const judge = new OpenAICompatibleJudge({ baseUrl: `${server.url}/v1/`, model: 'tiny-demo', apiKey: 'sk-test', maxTokens: 64 });
    assert.equal(await judge.complete('judge this'), '{"statements": []}');
    const [req] = server.seen;
    assert.equal(req!.url, '/v1/chat/completions');
    assert.equal(req!.headers.authorization, 'Bearer sk-test');
    assert.deepEqual(req!.body, { model: 'tiny-demo', messages: [{ role: 'user', content: 'judge this' }], temperature: 0, max_tokens: 64, n: 1, stream: false });
  });

  it('POSTs /v1/completions with a prompt in completions mode and returns choices[0].text', async function () {
    server = await startServer(() => ({ status: 200, body: { choices: [{ index: 0, text: ' {"verdict": 1}' }] } }));
    const judge = new OpenAICompatibleJudge({ baseUrl: server.url, model: 'judge', api: 'completions', seed: 7 });
    assert.equal(await judge.complete('p'), ' {"verdict": 1}');
    assert.equal(server.seen[0]!.url, '/v1/completions');
    assert.deepEqual(server.seen[0]!.body, { model: 'judge', prompt: 'p', temperature: 0, max_tokens: 512, n: 1, stream: false, seed: 7 });
    assert.equal(server.seen[0]!.headers.authorization, undefined);
  });

  it('a 4xx is a terminal error naming the status; a 5xx is transient', async function () {
    let status = 404;
    server = await startServer(() => ({ status, body: { error: { message: 'model nope does not exist' } } }));
    const judge = new OpenAICompatibleJudge({ baseUrl: server.url, model: 'nope' });
    await assert.rejects(judge.complete('p'), (e: unknown) => e instanceof ForgelineError && e.terminal && /answered 404: .*model nope does not exist/.test(e.message));
    status = 503;
    const before = server.seen.length;
    await assert.rejects(judge.complete('p'), (e: unknown) => !(e instanceof ForgelineError) && /answered 503/.test((e as Error).message));
    assert.equal(server.seen.length - before, 3, 'a transient status is retried twice before it is thrown');
  });

  it('retries 429 and 5xx (Retry-After honoured) and then answers', async function () {
    const statuses = [429, 502];
    server = await startServer(() => (statuses.length ? { status: statuses.shift()!, body: { error: { message: 'busy' } } } : chat('{"statements": []}')));
    const judge = new OpenAICompatibleJudge({ baseUrl: server.url, model: 'judge', retryDelayMs: 10 });
    assert.equal(await judge.complete('p'), '{"statements": []}');
    assert.equal(server.seen.length, 3);
  });

  it('sends the answer schema as structured outputs (response_format json_schema, strict)', async function () {
    server = await startServer(() => chat('{"statements": ["a"]}'));
    const judge = new OpenAICompatibleJudge({ baseUrl: server.url, model: 'judge' });
    await judge.complete('p', { name: 'faithfulness_statements', schema: FaithfulnessStatements });
    assert.deepEqual(server.seen[0]!.body.response_format, {
      type: 'json_schema',
      json_schema: {
        name: 'faithfulness_statements',
        strict: true,
        schema: { type: 'object', properties: { statements: { type: 'array', items: { type: 'string', minLength: 1 } } }, required: ['statements'], additionalProperties: false },
      },
    });
  });

  it('schemaBounds caps strings and lists that have no cap, keeping exact lengths', function () {
    const schema = judgeJsonSchema(FaithfulnessVerdicts.extend({ verdicts: FaithfulnessVerdicts.shape.verdicts.length(5) }), { maxStringLength: 8, maxItems: 3 }) as {
      properties: { verdicts: { minItems: number; maxItems: number; items: { properties: { statement: { maxLength: number }; verdict: unknown } } } };
    };
    assert.deepEqual([schema.properties.verdicts.minItems, schema.properties.verdicts.maxItems], [5, 5], 'an exact length is kept');
    assert.equal(schema.properties.verdicts.items.properties.statement.maxLength, 8);
    const open = judgeJsonSchema(FaithfulnessStatements, { maxItems: 3 }) as { properties: { statements: { maxItems: number; items: { maxLength?: number } } } };
    assert.equal(open.properties.statements.maxItems, 3);
    assert.equal(open.properties.statements.items.maxLength, undefined);
  });

  it('falls back to the prompt alone when the server refuses response_format, and stops sending it', async function () {
    server = await startServer((s) => (s.body.response_format ? { status: 400, body: { error: { message: "Unrecognized request argument supplied: response_format" } } } : chat('{"statements": []}')));
    const judge = new OpenAICompatibleJudge({ baseUrl: server.url, model: 'judge' });
    assert.equal(await judge.complete('p', { name: 'x', schema: FaithfulnessStatements }), '{"statements": []}');
    assert.equal(judge.usesStructuredOutputs, false);
    await judge.complete('p', { name: 'x', schema: FaithfulnessStatements });
    assert.deepEqual(
      server.seen.map((s) => 'response_format' in s.body),
      [true, false, false],
    );
    const none = new OpenAICompatibleJudge({ baseUrl: server.url, model: 'judge', structuredOutputs: 'none' });
    await none.complete('p', { name: 'x', schema: FaithfulnessStatements });
    assert.equal('response_format' in server.seen.at(-1)!.body, false);
  });

  it('gatewayModels: generation with the bound params; the client key goes only to the configured gateway', async function () {
    server = await startServer(() => chat('Paris.'));
    const models = gatewayModels({ baseUrl: server.url, apiKey: 'sk-worker' });
    const g = models.connect();
    assert.equal(await g.generate({ model: 'tiny-demo', messages: [{ role: 'user', content: 'Where?' }], params: { temperature: 0.5, topP: 0.9, maxTokens: 8, stop: ['\n'], seed: 3 } }), 'Paris.');
    assert.deepEqual(server.seen[0]!.body, { model: 'tiny-demo', messages: [{ role: 'user', content: 'Where?' }], temperature: 0.5, top_p: 0.9, max_tokens: 8, stop: ['\n'], seed: 3, n: 1, stream: false });
    assert.equal(server.seen[0]!.headers.authorization, 'Bearer sk-worker');
    await g.judge('judge').complete('p');
    assert.equal(server.seen[1]!.headers.authorization, 'Bearer sk-worker');
    const elsewhere = models.connect(server.url.replace('127.0.0.1', 'localhost'));
    await elsewhere.generate({ model: 'tiny-demo', messages: [{ role: 'user', content: 'Where?' }], params: {} });
    assert.equal(server.seen[2]!.headers.authorization, undefined, 'another origin gets no key');
  });

  it('drives a metric end to end over HTTP: faithfulness with the judge answering JSON', async function () {
    const answers = ['{"statements": ["Paris is in France."]}', '{"verdicts": [{"statement": "Paris is in France.", "reason": "stated", "verdict": 1}]}'];
    server = await startServer(() => chat(answers.shift()!));
    const judge = new OpenAICompatibleJudge({ baseUrl: server.url, model: 'tiny-demo' });
    const r = await faithfulness(judge, { question: 'Where is Paris?', answer: 'Paris is in France.', contexts: ['Paris is the capital of France.'] });
    assert.equal(r.score, 1);
    assert.equal(server.seen.length, 2);
  });

  it('refuses a base URL that is not http(s)', function () {
    assert.throws(() => new OpenAICompatibleJudge({ baseUrl: 'localhost:8080', model: 'm' }), /expected an http\(s\) URL/);
  });
});
