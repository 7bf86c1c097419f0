/**
 * Prompt routes in the gateway (issue 11): /v1/prompts/<name>/completions and /chat/completions
 * pick a prompt version by weight, render it, and forward it through the model route of the
 * prompt's model alias. Real gateway (table in a file, then replicas on a real redis-server),
 * the stub OpenAI-compatible upstream (test/helpers/gateway-upstream.ts), whose received bodies
 * show what the gateway actually sent.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GatewayTrafficRouter, RouteConflictError } from '../../src/adapters/gateway-router';
import type { PromptSpec } from '../../src/contracts/prompt';
import { promptRouteTarget, type PromptRouteTarget } from '../../src/contracts/routing';
import { estimatePromptTokens } from '../../src/gateway/limits';
import { ForgelineError } from '../../src/ports/errors';
import { ADMIN_TOKEN, admin, call, eventually, gatewaySet, pool, route, seeded, sseData, type Reply } from '../helpers/gateway-harness';
import { startStubUpstream, type StubUpstream } from '../helpers/gateway-upstream';
import { tempHome } from '../helpers/processes';
import { getRedis, type RedisServer } from '../helpers/redis';

const KEY = 'sk-test-tenant-a';
const KEY_B = 'sk-test-tenant-b';
const SMALL = 'sk-test-small-tenant';
const keys = [
  { key: KEY, tenant: 'team-a', tokensPerMinute: 10_000_000 },
  { key: KEY_B, tenant: 'team-b', tokensPerMinute: 10_000_000 },
  { key: SMALL, tenant: 'small', tokensPerMinute: 200 },
];
const V1 = '0123456789ab';
const V2 = 'ba9876543210';
const NAME = 'support-answer';

/** |k - np| within z standard deviations of a binomial(n, p): z = 4.5 fails a correct router about once in 150,000 runs. */
function assertBinomial(k: number, n: number, p: number, what: string, z = 4.5): void {
  const sd = Math.sqrt(n * p * (1 - p));
  assert.ok(Math.abs(k - n * p) <= z * sd, `${what}: ${k} of ${n}, expected ${n * p} ± ${(z * sd).toFixed(1)}`);
}

function spec(template: string, over: Partial<PromptSpec> = {}): PromptSpec {
  return {
    name: NAME,
    template,
    variables: { question: { type: 'string', required: true }, tone: { type: 'string', required: false } },
    model: { alias: 'tiny-demo', params: { temperature: 0.2, maxTokens: 3, stop: ['\n\n'] } },
    examples: [{ variables: { question: 'Where is Paris?' }, output: 'In France.' }],
    ...over,
  };
}

/** Two versions of one prompt: different templates, so the upstream's body shows which one rendered. */
const v1 = (weight: number) => promptRouteTarget(spec('Q: {{question}}'), V1, weight);
const v2 = (weight: number) => promptRouteTarget(spec('Question ({{tone}}): {{question}}\nAnswer:'), V2, weight);

function ask(gw: { url: string }, key: string, body: Record<string, unknown>, form: 'completions' | 'chat/completions' = 'completions', headers: Record<string, string> = {}, name = NAME): Promise<Reply> {
  return call(`${gw.url}/v1/prompts/${name}/${form}`, 'POST', key, body, headers);
}

async function promptRoute(gw: { url: string }, targets: PromptRouteTarget[], headers: Record<string, string> = {}): Promise<Reply> {
  return admin(gw, 'PUT', `/admin/prompts/${NAME}`, { targets, by: 'prompt-test', reason: 'canary' }, headers);
}

describe('gateway prompt routes (stub OpenAI-compatible upstream)', function () {
  this.timeout(120_000);
  let stub: StubUpstream;

  beforeEach(async function () {
    stub = await startStubUpstream({ promptTokens: estimatePromptTokens });
  });
  afterEach(async function () {
    await stub.close();
  });

  describe('one process, table in a file', function () {
    let home: { dir: string; cleanup(): void };
    const { start, stop, closeAll } = gatewaySet(() => ({ keys, stateDir: path.join(home.dir, 'gw') }));
    beforeEach(function () {
      home = tempHome('gateway-prompts');
    });
    afterEach(async function () {
      await closeAll();
      home.cleanup();
    });

    it('splits prompt traffic by weight within a binomial bound, and sends each version\'s rendered text upstream', async function () {
      const gw = await start({ random: seeded(11) });
      await route(gw, stub.url, [{ version: 'tiny-demo@stable', weight: 1 }]);
      assert.equal((await promptRoute(gw, [v1(75), v2(25)])).status, 200);
      const n = 400;
      const replies = await pool(Array.from({ length: n }, (_, i) => i), 16, (i) => ask(gw, KEY, { variables: { question: `Where is city ${i}?`, tone: 'brief' } }));
      assert.ok(replies.every((r) => r.status === 200), replies.find((r) => r.status !== 200)?.text);
      const onV2 = replies.filter((r) => r.headers.get('x-forgeline-prompt-version') === `${NAME}@${V2}`);
      assert.equal(replies.filter((r) => r.headers.get('x-forgeline-prompt-version') === `${NAME}@${V1}`).length + onV2.length, n);
      assertBinomial(onV2.length, n, 0.25, 'requests on prompt version 2');
      assert.ok(replies.every((r) => r.headers.get('x-forgeline-version') === 'tiny-demo@stable'), 'the model version header too');
      // What the upstream received: each version's template, the few-shot example first, the model rewritten.
      const sent = new Map(stub.requests.map((q) => [q.headers['x-request-id'] as string, q.body]));
      for (const [i, r] of replies.entries()) {
        const body = sent.get(r.headers.get('x-request-id')!)!;
        assert.equal(body.model, 'tiny-demo-stable');
        const expected = r.headers.get('x-forgeline-prompt-version') === `${NAME}@${V1}` ? `Q: Where is Paris?\nIn France.\n\nQ: Where is city ${i}?` : `Question (): Where is Paris?\nAnswer:\nIn France.\n\nQuestion (brief): Where is city ${i}?\nAnswer:`;
        assert.equal(body.prompt, expected);
        assert.equal(body.messages, undefined);
        assert.equal(body.variables, undefined, 'variables are not sent upstream');
      }
    });

    it('completions and chat forms: binding params as defaults the request overrides; prompt and model canaries compose; sticky per user', async function () {
      const gw = await start({ random: seeded(3) });
      await route(gw, stub.url, [
        { version: 'tiny-demo@stable', weight: 1 },
        { version: 'tiny-demo@canary', weight: 1 },
      ]);
      assert.equal((await promptRoute(gw, [v1(1), v2(1)])).status, 200);
      const chat = await ask(gw, KEY, { variables: { question: 'Where is Rome?', tone: 'dry' }, temperature: 0.9, user: 'u-chat' }, 'chat/completions');
      assert.equal(chat.status, 200, chat.text);
      assert.equal(chat.json.object, 'chat.completion');
      assert.equal(chat.json.choices[0].message.content, ' t0 t1 t2', 'the binding\'s maxTokens (3) reached the upstream');
      const sentChat = stub.requests.at(-1)!.body;
      const pv = chat.headers.get('x-forgeline-prompt-version');
      const rendered = (q: string, tone: string) => (pv === `${NAME}@${V1}` ? `Q: ${q}` : `Question (${tone}): ${q}\nAnswer:`);
      assert.deepEqual(sentChat.messages, [
        { role: 'user', content: rendered('Where is Paris?', '') },
        { role: 'assistant', content: 'In France.' },
        { role: 'user', content: rendered('Where is Rome?', 'dry') },
      ]);
      assert.equal(sentChat.temperature, 0.9, 'the request overrides the binding');
      assert.equal(sentChat.max_tokens, 3);
      assert.deepEqual(sentChat.stop, ['\n\n']);
      assert.equal(sentChat.user, 'u-chat');
      const comp = await ask(gw, KEY, { variables: { question: 'Where is Oslo?' }, max_tokens: 5, user: 'u-comp' });
      assert.equal(comp.status, 200, comp.text);
      assert.equal(comp.json.object, 'text_completion');
      const sentComp = stub.requests.at(-1)!.body;
      assert.equal(sentComp.max_tokens, 5);
      assert.equal(sentComp.temperature, 0.2);
      // Both dimensions vary independently: all four (prompt version, model version) pairs show up.
      const pairs = new Set<string>();
      const users = Array.from({ length: 60 }, (_, i) => `user-${i}`);
      const first = new Map<string, string>();
      for (const u of users) {
        const r = await ask(gw, KEY, { variables: { question: 'q' }, user: u });
        const pair = `${r.headers.get('x-forgeline-prompt-version')} ${r.headers.get('x-forgeline-version')}`;
        pairs.add(pair);
        first.set(u, pair);
      }
      assert.equal(pairs.size, 4, [...pairs].join('; '));
      // Sticky: the same user gets the same prompt version and model version again, in either form.
      for (const u of users.slice(0, 10)) {
        const r = await ask(gw, KEY, { variables: { question: 'again' }, user: u }, 'chat/completions');
        assert.equal(`${r.headers.get('x-forgeline-prompt-version')} ${r.headers.get('x-forgeline-version')}`, first.get(u), u);
      }
    });

    it('streams as the model endpoints do, with the prompt version header', async function () {
      const gw = await start();
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      assert.equal((await promptRoute(gw, [v1(1)])).status, 200);
      for (const form of ['completions', 'chat/completions'] as const) {
        const r = await ask(gw, KEY, { variables: { question: 'stream?' }, stream: true, max_tokens: 4 }, form);
        assert.equal(r.status, 200);
        assert.match(r.headers.get('content-type')!, /^text\/event-stream/);
        assert.equal(r.headers.get('x-forgeline-prompt-version'), `${NAME}@${V1}`);
        assert.equal(r.headers.get('x-forgeline-version'), 'tiny-demo@v1');
        const data = sseData(r.text);
        assert.equal(data.at(-1), '[DONE]');
        const text = data
          .slice(0, -1)
          .map((d) => JSON.parse(d).choices[0])
          .map((c) => c?.delta?.content ?? c?.text ?? '')
          .join('');
        assert.equal(text, ' t0 t1 t2 t3');
        assert.ok(!data.slice(0, -1).some((d) => JSON.parse(d).usage), 'the usage chunk the gateway asked for is dropped');
        assert.deepEqual(stub.requests.at(-1)!.body.stream_options, { include_usage: true });
      }
    });

    it('refuses bad prompt requests with a 4xx naming the variable or field, and unknown prompts naming how to route one', async function () {
      const gw = await start();
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      assert.equal((await promptRoute(gw, [v1(1)])).status, 200);
      const before = stub.requests.length;
      const from = Date.now() - 1;
      const missing = await ask(gw, KEY, { variables: {} });
      assert.equal(missing.status, 400);
      assert.equal(missing.json.error.param, 'variables.question');
      assert.match(missing.json.error.message, /required variable 'question' is missing/);
      assert.equal(missing.headers.get('x-forgeline-prompt-version'), `${NAME}@${V1}`);
      const undeclared = await ask(gw, KEY, { variables: { question: 'q', mood: 'happy' } }, 'chat/completions');
      assert.equal(undeclared.status, 400);
      assert.equal(undeclared.json.error.param, 'variables.mood');
      assert.match(undeclared.json.error.message, /'mood' is not declared/);
      const mistyped = await ask(gw, KEY, { variables: { question: 42 } });
      assert.equal(mistyped.status, 400);
      assert.match(mistyped.json.error.message, /'question' must be a string, got number/);
      for (const field of ['model', 'prompt', 'messages']) {
        const r = await ask(gw, KEY, { variables: { question: 'q' }, [field]: 'x' });
        assert.equal(r.status, 400, field);
        assert.equal(r.json.error.param, field);
        assert.match(r.json.error.message, /not allowed on a prompt endpoint/);
      }
      const notObject = await ask(gw, KEY, { variables: ['q'] });
      assert.equal(notObject.status, 400);
      assert.equal(notObject.json.error.param, 'variables');
      const unknown = await ask(gw, KEY, { variables: {} }, 'completions', {}, 'no-such-prompt');
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json.error.code, 'prompt_not_found');
      assert.match(unknown.json.error.message, /forgeline prompt release/);
      assert.match(unknown.json.error.message, /PUT \/admin\/prompts\/no-such-prompt/);
      assert.match(unknown.json.error.message, /routed prompts: support-answer/);
      assert.equal(stub.requests.length, before, 'nothing reached the upstream');
      // Auth and token limits exactly as on the model endpoints.
      assert.equal((await ask(gw, undefined as unknown as string, { variables: { question: 'q' } })).status, 401);
      assert.equal((await ask(gw, 'sk-wrong', { variables: { question: 'q' } })).status, 401);
      const tooLarge = await ask(gw, SMALL, { variables: { question: 'q' }, max_tokens: 500 });
      assert.equal(tooLarge.status, 429);
      assert.equal(tooLarge.json.error.code, 'request_too_large');
      const fits = await ask(gw, SMALL, { variables: { question: 'q' } });
      assert.equal(fits.status, 200, 'the binding\'s maxTokens (3) is what is charged');
      // Render failures count as errors of the version that could not serve them.
      const [m] = (await admin(gw, 'GET', `/admin/prompts/${NAME}/metrics?from=${from}&to=${Date.now() + 1}`)).json;
      assert.equal(m.version, `${NAME}@${V1}`);
      assert.equal(m.errors, 3);
      assert.equal(m.requests, 4);
    });

    it('admin API: PUT/DELETE with compare-and-swap and audit fields; refuses a bad route naming the field; keeps prompts across restarts and model route changes', async function () {
      let gw = await start();
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      const noAuth = await call(`${gw.url}/admin/prompts/${NAME}`, 'PUT', 'not-the-token', { targets: [v1(1)] });
      assert.equal(noAuth.status, 401);
      const put = await promptRoute(gw, [v1(9), v2(1)]);
      assert.equal(put.status, 200, put.text);
      assert.equal(put.headers.get('etag'), `"${put.json.version}"`);
      assert.equal(put.json.updatedBy, 'prompt-test');
      assert.equal(put.json.reason, 'canary');
      const t = put.json;
      // Stale If-Match: 409 with the current table; nothing changes.
      const stale = await promptRoute(gw, [v1(1)], { 'if-match': `"${t.version - 1}"` });
      assert.equal(stale.status, 409);
      assert.equal(stale.json.error.code, 'version_mismatch');
      assert.equal(stale.json.table.version, t.version);
      const bad = async (targets: unknown, param: RegExp, name = NAME) => {
        const r = await admin(gw, 'PUT', `/admin/prompts/${name}`, { targets });
        assert.equal(r.status, 400, JSON.stringify(targets));
        assert.match(r.json.error.param, param);
        return r;
      };
      await bad([{ ...v1(1), prompt: { ...v1(1).prompt, model: { alias: 'no-such-model', params: {} } } }], /^targets\[0\]\.prompt\.model\.alias$/);
      await bad([v1(1), { ...v2(1), prompt: { ...v2(1).prompt, model: { alias: 'other', params: {} } } }], /^targets$/);
      await bad([{ ...v1(1), version: `other-prompt@${V1}` }], /^targets\[0\]\.version$/);
      await bad([{ ...v1(1), version: `${NAME}@${V2}` }], /^targets\[0\]\.version$/);
      await bad([{ ...v1(1), prompt: { ...v1(1).prompt, template: 'Q: {{question}} {{context}}' } }], /^targets\[0\]\.prompt\.template$/);
      await bad([v1(0)], /^targets$/);
      await bad([v1(1), v1(2)], /^targets$/);
      await bad([v1(1)], /^prompt$/, 'Bad_Name');
      assert.equal((await admin(gw, 'GET', '/admin/routes')).json.version, t.version, 'refused changes left the table alone');
      // A model route a prompt is bound to cannot be deleted from under it.
      const del = await admin(gw, 'DELETE', '/admin/routes/tiny-demo');
      assert.equal(del.status, 400);
      assert.match(del.json.error.message, /serves prompt route\(s\) support-answer/);
      // Model route changes keep the prompt routes.
      const moved = await route(gw, stub.url, [{ version: 'tiny-demo@v2', weight: 1 }]);
      assert.deepEqual(moved.prompts, t.prompts);
      // Restart: the table, prompts included, is as it was.
      await stop(gw);
      gw = await start();
      assert.deepEqual((await admin(gw, 'GET', '/admin/routes')).json.prompts, t.prompts);
      assert.equal((await ask(gw, KEY, { variables: { question: 'q' } })).status, 200);
      // DELETE with compare-and-swap; then the prompt is unknown again.
      const cur = (await admin(gw, 'GET', '/admin/routes')).json;
      assert.equal((await admin(gw, 'DELETE', `/admin/prompts/${NAME}`, { by: 'ops' }, { 'if-match': `"${cur.version - 1}"` })).status, 409);
      const gone = await admin(gw, 'DELETE', `/admin/prompts/${NAME}`, { by: 'ops', reason: 'rollback' }, { 'if-match': `"${cur.version}"` });
      assert.equal(gone.status, 200);
      assert.deepEqual(gone.json.prompts, {});
      assert.equal(gone.json.updatedBy, 'ops');
      assert.equal((await ask(gw, KEY, { variables: { question: 'q' } })).status, 404);
      assert.equal((await admin(gw, 'DELETE', '/admin/routes/tiny-demo')).status, 200, 'unbound now');
    });

    it('loads a table stored before prompt routes existed (no `prompts` field)', async function () {
      let gw = await start();
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      await stop(gw);
      const file = path.join(home.dir, 'gw', 'routes.json');
      const legacy = JSON.parse(readFileSync(file, 'utf8'));
      delete legacy.prompts;
      writeFileSync(file, JSON.stringify(legacy));
      gw = await start();
      const t = (await admin(gw, 'GET', '/admin/routes')).json;
      assert.deepEqual(t.prompts, {});
      assert.deepEqual(t.routes, legacy.routes);
      assert.equal((await promptRoute(gw, [v1(1)])).status, 200);
    });

    it('keeps metrics and samples per prompt version, attributes feedback to the prompt version and the model version, and counts them in Prometheus', async function () {
      const gw = await start();
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      const router = new GatewayTrafficRouter({ url: gw.url, adminToken: ADMIN_TOKEN });
      const t = await router.getTable();
      const table = await router.setPromptRoute(NAME, [v1(1), v2(1)], { expectedVersion: t.version, by: 'prompt-release', reason: 'step 1: 50%' });
      assert.equal(table.version, t.version + 1);
      assert.equal(table.updatedBy, 'prompt-release');
      await assert.rejects(router.setPromptRoute(NAME, [v1(1)], { expectedVersion: t.version }), (err: unknown) => err instanceof RouteConflictError && err.alias === NAME && err.current?.version === table.version);
      await assert.rejects(router.setPromptRoute(NAME, [v1(-1)]), (err: unknown) => err instanceof ForgelineError && err.terminal && /targets\[0\]\.weight/.test(err.message));
      const from = Date.now() - 1;
      const served: Array<{ id: string; pv: string }> = [];
      for (let i = 0; i < 12; i++) {
        const r = await ask(gw, KEY, { variables: { question: `question ${i}`, tone: 't' }, user: `user-${i}`, max_tokens: 2 }, i % 2 ? 'chat/completions' : 'completions');
        assert.equal(r.status, 200);
        served.push({ id: r.headers.get('x-request-id')!, pv: r.headers.get('x-forgeline-prompt-version')! });
        assert.equal((await call(`${gw.url}/v1/feedback`, 'POST', KEY, { request_id: served[i]!.id, score: i })).status, 200);
      }
      assert.equal((await call(`${gw.url}/v1/feedback`, 'POST', KEY_B, { request_id: served[0]!.id, score: 0 })).status, 404, 'another tenant');
      const to = Date.now() + 1;
      const metrics = await router.promptMetrics(NAME, { from, to });
      assert.deepEqual(metrics.map((m) => m.version).sort(), [`${NAME}@${V1}`, `${NAME}@${V2}`].filter((v) => served.some((s) => s.pv === v)));
      for (const m of metrics) {
        const mine = served.map((s, i) => ({ ...s, i })).filter((s) => s.pv === m.version);
        assert.equal(m.requests, mine.length, m.version);
        assert.equal(m.errors, 0);
        assert.deepEqual([...m.feedback].sort((a, b) => a - b), mine.map((s) => s.i), m.version);
        assert.equal(m.completionTokens, 2 * mine.length);
        assert.equal(m.latencyMs.length, mine.length);
      }
      // The model route's window holds the same requests under the model version, feedback included.
      const [model] = await router.metrics('tiny-demo', { from, to });
      assert.equal(model!.requests, 12);
      assert.equal(model!.feedback.length, 12);
      const samples = await router.promptTraffic(NAME, { from, to, limit: 100 });
      assert.equal(samples.length, 12);
      for (const [i, s] of samples.entries()) {
        assert.equal(s.version, served[i]!.pv);
        assert.equal(s.feedback, i);
        const q = s.version === `${NAME}@${V1}` ? `Q: question ${i}` : `Question (t): question ${i}\nAnswer:`;
        assert.equal(s.prompt, i % 2 ? `user: ${q}` : q, 'the rendered request, without the few-shot examples');
        assert.equal(s.completion, ' t0 t1');
      }
      const prom = await (await fetch(`${gw.url}/metrics`)).text();
      const count = (pv: string) => served.filter((s) => s.pv === `${NAME}@${pv}`).length;
      for (const pv of [V1, V2]) {
        if (count(pv)) assert.match(prom, new RegExp(`forgeline_gateway_prompt_requests_total\\{prompt="${NAME}",prompt_version="${pv}",status="200"\\} ${count(pv)}\\n`));
      }
      assert.match(prom, /forgeline_gateway_requests_total\{alias="tiny-demo",version="tiny-demo@v1",status="200"\} 12\n/);
      // Bad window queries name the field; delete is idempotent through the adapter.
      assert.equal((await admin(gw, 'GET', `/admin/prompts/${NAME}/traffic?limit=0`)).json.error.param, 'limit');
      const after = await router.deletePromptRoute(NAME, { by: 'prompt-release', reason: 'rolled back' });
      assert.deepEqual(after.prompts, {});
      assert.equal((await router.deletePromptRoute(NAME)).version, after.version, 'absent already: no change');
      // The window outlives the route: the canary's numbers are still there after a rollback.
      assert.equal((await router.promptMetrics(NAME, { from, to })).reduce((n, m) => n + m.requests, 0), 12);
    });
  });

  describe('replicas on one Redis (real redis-server)', function () {
    let redis: RedisServer;
    let prefix: string;
    const { start: replica, closeAll } = gatewaySet(() => ({ redisUrl: redis.url, redisPrefix: prefix, keys, tableRefreshMs: 200 }));
    before(async function () {
      redis = await getRedis();
    });
    beforeEach(function () {
      prefix = `test:${randomBytes(4).toString('hex')}:`;
    });
    afterEach(async function () {
      await closeAll();
    });

    it('shares prompt routes, their window and feedback across replicas, and keeps them across restarts', async function () {
      const a = await replica();
      const b = await replica();
      await route(a, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      const router = new GatewayTrafficRouter({ url: a.url, adminToken: ADMIN_TOKEN });
      const table = await router.setPromptRoute(NAME, [v1(1), v2(1)], { by: 'prompt-release' });
      // Wait on b's table, not on requests to b: a probe request's record reaches Redis after its reply and could land in the window below.
      await eventually('replica b to see the prompt route', async () => ((await admin(b, 'GET', '/admin/routes')).json.prompts[NAME] ? true : undefined));
      const from = Date.now();
      const served: Array<{ id: string; pv: string }> = [];
      for (let i = 0; i < 10; i++) {
        const r = await ask(i % 2 ? a : b, KEY, { variables: { question: `question ${i}` }, user: `user-${i}` });
        assert.equal(r.status, 200);
        served.push({ id: r.headers.get('x-request-id')!, pv: r.headers.get('x-forgeline-prompt-version')! });
      }
      // Feedback at the other replica than the one that served.
      for (const [i, s] of served.entries()) assert.equal((await call(`${(i % 2 ? b : a).url}/v1/feedback`, 'POST', KEY, { request_id: s.id, score: i })).status, 202);
      const to = Date.now() + 1;
      const viaB = new GatewayTrafficRouter({ url: b.url, adminToken: ADMIN_TOKEN });
      const metrics = await eventually('all 10 requests in the prompt window', async () => {
        const m = await viaB.promptMetrics(NAME, { from, to });
        return m.reduce((n, x) => n + x.requests, 0) === 10 ? m : undefined;
      });
      for (const m of metrics) {
        const mine = served.map((s, i) => ({ ...s, i })).filter((s) => s.pv === m.version);
        assert.equal(m.requests, mine.length, m.version);
        assert.deepEqual([...m.feedback].sort((x, y) => x - y), mine.map((s) => s.i), m.version);
      }
      assert.equal((await viaB.promptTraffic(NAME, { from, to, limit: 100 })).length, 10);
      // Racing prompt route writers at two replicas: one 200, one 409.
      const race = await Promise.all([
        admin(a, 'PUT', `/admin/prompts/${NAME}`, { targets: [v1(1)] }, { 'if-match': `"${table.version}"` }),
        admin(b, 'PUT', `/admin/prompts/${NAME}`, { targets: [v2(1)] }, { 'if-match': `"${table.version}"` }),
      ]);
      assert.deepEqual(race.map((r) => r.status).sort(), [200, 409]);
      const winner = race.find((r) => r.status === 200)!.json;
      // Every replica restarted: the table in Redis, prompts included.
      await closeAll();
      const c = await replica();
      assert.deepEqual((await admin(c, 'GET', '/admin/routes')).json, winner);
      const r = await ask(c, KEY, { variables: { question: 'after restart' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-forgeline-prompt-version'), winner.prompts[NAME].targets[0].version);
    });
  });
});
