/**
 * The gateway (src/gateway) as one process keeps it: table in a file, limits and metrics in
 * memory. The upstream is a stub that speaks the OpenAI wire format (test/helpers/gateway-upstream.ts:
 * whole answers, SSE chunks, the usage chunk), not vLLM: these tests are about the gateway.
 * Replicas on a shared Redis: gateway-redis.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { estimatePromptTokens } from '../../src/gateway/limits';
import type { RunningGateway } from '../../src/gateway/server';
import { startGateway } from '../../src/gateway/server';
import { ConfigError } from '../../src/ports/errors';
import { ADMIN_TOKEN, admin, call, chat, eventually, gateway, pool, route, seeded, sseData } from '../helpers/gateway-harness';
import { startStubUpstream, type StubUpstream } from '../helpers/gateway-upstream';
import { freePort, tempHome } from '../helpers/processes';

const KEY = 'sk-test-tenant-a';
const KEY_B = 'sk-test-tenant-b';
const keys = [
  { key: KEY, tenant: 'team-a', tokensPerMinute: 10_000_000 },
  { key: KEY_B, tenant: 'team-b', tokensPerMinute: 10_000_000 },
];

/** |k - np| within z standard deviations of a binomial(n, p): z = 4.5 fails a correct router about once in 150,000 runs. */
function assertBinomial(k: number, n: number, p: number, what: string, z = 4.5): void {
  const sd = Math.sqrt(n * p * (1 - p));
  assert.ok(Math.abs(k - n * p) <= z * sd, `${what}: ${k} of ${n}, expected ${n * p} ± ${(z * sd).toFixed(1)}`);
}

describe('gateway (one process; stub OpenAI-compatible upstream)', function () {
  this.timeout(120_000);
  let stub: StubUpstream;
  let home: { dir: string; cleanup(): void };
  const open: RunningGateway[] = [];
  const start = async (opts: Parameters<typeof gateway>[0] = {}) => {
    const gw = await gateway({ keys, stateDir: path.join(home.dir, 'gw'), ...opts });
    open.push(gw);
    return gw;
  };
  const stop = async (gw: RunningGateway) => {
    open.splice(open.indexOf(gw), 1);
    await gw.close();
  };

  beforeEach(async function () {
    home = tempHome('gateway');
    stub = await startStubUpstream({ promptTokens: estimatePromptTokens });
  });
  afterEach(async function () {
    for (const gw of open.splice(0)) await gw.close();
    await stub.close();
    home.cleanup();
  });

  describe('routing', function () {
    it('splits traffic by weight: per-user keys and keyless requests both land within a binomial bound (seeded)', async function () {
      const gw = await start({ random: seeded(7) });
      await route(gw, stub.url, [
        { version: 'tiny-demo@stable', weight: 80 },
        { version: 'tiny-demo@canary', weight: 20 },
      ]);
      const rng = seeded(42);
      const n = 1000;
      const users = Array.from({ length: n }, () => `user-${Math.floor(rng() * 2 ** 48).toString(36)}`);
      const byUser = await pool(users, 16, async (user) => (await chat(gw, KEY, { user })).headers.get('x-forgeline-version'));
      assertBinomial(byUser.filter((v) => v === 'tiny-demo@canary').length, n, 0.2, 'users on the canary');
      const keyless = await pool(Array.from({ length: n }), 16, async () => (await chat(gw, KEY, {})).headers.get('x-forgeline-version'));
      assertBinomial(keyless.filter((v) => v === 'tiny-demo@canary').length, n, 0.2, 'keyless requests on the canary');
      // The model was rewritten to each version's served model.
      const served = new Set(stub.requests.map((r) => r.body.model));
      assert.deepEqual([...served].sort(), ['tiny-demo-canary', 'tiny-demo-stable']);
    });

    it('never sends traffic to a version of weight 0, and 404s an unknown model naming the served ones', async function () {
      const gw = await start();
      await route(gw, stub.url, [
        { version: 'tiny-demo@stable', weight: 1 },
        { version: 'tiny-demo@off', weight: 0 },
      ]);
      const versions = await pool(Array.from({ length: 200 }, (_, i) => i), 16, async (i) => (await chat(gw, KEY, { user: `u${i}` })).headers.get('x-forgeline-version'));
      assert.deepEqual(new Set(versions), new Set(['tiny-demo@stable']));
      const r = await chat(gw, KEY, { model: 'nope' });
      assert.equal(r.status, 404);
      assert.equal(r.json.error.code, 'model_not_found');
      assert.match(r.json.error.message, /served: tiny-demo/);
    });

    it('sticks a user (or an x-session-id) to one version, across a restart, and a user on the canary stays there as its weight grows', async function () {
      let gw = await start();
      await route(gw, stub.url, [
        { version: 'tiny-demo@stable', weight: 90 },
        { version: 'tiny-demo@canary', weight: 10 },
      ]);
      const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
      const first = new Map<string, string>();
      for (const u of users) first.set(u, (await chat(gw, KEY, { user: u })).headers.get('x-forgeline-version')!);
      assert.ok([...first.values()].includes('tiny-demo@canary') && [...first.values()].includes('tiny-demo@stable'), 'both versions served');
      for (const u of users.slice(0, 20)) {
        for (let k = 0; k < 5; k++) assert.equal((await chat(gw, KEY, { user: u })).headers.get('x-forgeline-version'), first.get(u), `user ${u} moved`);
      }
      // The session header wins over the user field.
      const bySession = new Set<string>();
      for (const u of users.slice(0, 40)) bySession.add((await chat(gw, KEY, { user: u }, { 'x-session-id': 'session-1' })).headers.get('x-forgeline-version')!);
      assert.equal(bySession.size, 1);

      await stop(gw);
      gw = await start();
      for (const u of users) assert.equal((await chat(gw, KEY, { user: u })).headers.get('x-forgeline-version'), first.get(u), `user ${u} moved after a restart`);

      const t = await admin(gw, 'GET', '/admin/routes');
      const grown = t.json.routes['tiny-demo'].targets.map((x: any) => ({ ...x, weight: 50 }));
      assert.equal((await admin(gw, 'PUT', '/admin/routes/tiny-demo', { targets: grown })).status, 200);
      let moved = 0;
      for (const u of users) {
        const v = (await chat(gw, KEY, { user: u })).headers.get('x-forgeline-version');
        if (first.get(u) === 'tiny-demo@canary') assert.equal(v, 'tiny-demo@canary', `user ${u} left the canary when its weight grew`);
        else if (v === 'tiny-demo@canary') moved++;
      }
      assert.ok(moved > 0, 'some stable users moved to the canary at 50%');
    });
  });

  describe('streams', function () {
    it('passes SSE chunks through before the upstream ends the stream', async function () {
      const gw = await start();
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      const ac = new AbortController();
      // The stub sends 3 chunks, then holds the stream open without ending it: a buffering proxy would show nothing.
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny-demo', messages: [{ role: 'user', content: 'hi [hang-after:3]' }], max_tokens: 10, stream: true }),
        signal: ac.signal,
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
      assert.equal(res.headers.get('x-forgeline-version'), 'tiny-demo@v1');
      const reader = res.body!.getReader();
      let text = '';
      const contents = () => sseData(text).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d).choices[0]?.delta?.content ?? '').join('');
      while (contents() !== ' t0 t1 t2') {
        const { value, done } = await reader.read();
        assert.ok(!done, `stream ended early: ${text}`);
        text += new TextDecoder().decode(value);
      }
      // The client hangs up: the gateway drops its upstream request too (so vLLM stops generating).
      assert.equal(stub.cancelled(), 0);
      ac.abort();
      await eventually('the upstream request to be cancelled', async () => (stub.cancelled() === 1 ? true : undefined));
      const req = stub.requests.at(-1)!;
      assert.deepEqual(req.body.stream_options, { include_usage: true }, 'usage requested upstream');
    });

    it('gives the client a clean error when the upstream dies mid-stream, before answering, or falls silent', async function () {
      const gw = await start({ upstream: { bodyTimeoutMs: 300 } });
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      // Dies after 2 chunks: the chunks, then an SSE error event, then the end (no [DONE]).
      const cut = await chat(gw, KEY, { messages: [{ role: 'user', content: 'x [die-after:2]' }], max_tokens: 6, stream: true });
      assert.equal(cut.status, 200);
      const events = sseData(cut.text);
      assert.ok(!events.includes('[DONE]'));
      const last = JSON.parse(events.at(-1)!);
      assert.equal(last.error.code, 'upstream_stream_error');
      assert.match(last.error.message, /broke off/);
      assert.equal(events.filter((d) => JSON.parse(d).choices?.[0]?.delta?.content).length, 2);
      // Falls silent past the body timeout: the same error event, then the end.
      const silent = await chat(gw, KEY, { messages: [{ role: 'user', content: 'x [hang-after:1]' }], max_tokens: 6, stream: true });
      assert.equal(JSON.parse(sseData(silent.text).at(-1)!).error.code, 'upstream_stream_error');
      // Dies before any answer: 502 with an OpenAI-style error.
      const dead = await chat(gw, KEY, { messages: [{ role: 'user', content: 'x [die-after:0]' }] });
      assert.equal(dead.status, 502);
      assert.equal(dead.json.error.type, 'upstream_error');
      assert.equal(dead.headers.get('x-forgeline-version'), 'tiny-demo@v1');
      // Nothing listens: 502.
      const nowhere = await freePort();
      await admin(gw, 'PUT', '/admin/upstreams/stub', { urls: [`http://127.0.0.1:${nowhere}`] });
      const refused = await chat(gw, KEY, { stream: true });
      assert.equal(refused.status, 502);
      assert.match(refused.json.error.message, /ECONNREFUSED/);
      const [m] = (await admin(gw, 'GET', `/admin/metrics?alias=tiny-demo&from=0&to=${Date.now() + 1000}`)).json;
      assert.equal(m.requests, 4);
      assert.equal(m.errors, 4);
    });
  });

  describe('official OpenAI client (openai npm package)', function () {
    it('works unchanged: chat, stream, completions, models, and errors as its own error classes', async function () {
      const gw = await start();
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
      const { data, response } = await client.chat.completions.create({ model: 'tiny-demo', messages: [{ role: 'user', content: 'hello' }], max_tokens: 3 }).withResponse();
      assert.equal(data.choices[0]!.message.content, ' t0 t1 t2');
      assert.equal(response.headers.get('x-forgeline-version'), 'tiny-demo@v1');
      assert.match(response.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/);
      const stream = await client.chat.completions.create({ model: 'tiny-demo', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4, stream: true });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      assert.equal(text, ' t0 t1 t2 t3');
      // Usage the client asked for comes through; without asking, the usage-only chunk is not sent.
      const withUsage = await client.chat.completions.create({ model: 'tiny-demo', messages: [{ role: 'user', content: 'hello' }], max_tokens: 2, stream: true, stream_options: { include_usage: true } });
      let usage: OpenAI.CompletionUsage | undefined | null;
      for await (const chunk of withUsage) usage = chunk.usage ?? usage;
      assert.equal(usage?.completion_tokens, 2);
      const completion = await client.completions.create({ model: 'tiny-demo', prompt: 'once upon', max_tokens: 2 });
      assert.equal(completion.choices[0]!.text, ' t0 t1');
      const models = [];
      for await (const m of client.models.list()) models.push(m.id);
      assert.deepEqual(models, ['tiny-demo']);

      await assert.rejects(new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-wrong-key', maxRetries: 0 }).models.list(), OpenAI.AuthenticationError);
      await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), OpenAI.NotFoundError);
      const broken = await client.chat.completions.create({ model: 'tiny-demo', messages: [{ role: 'user', content: 'x [die-after:1]' }], max_tokens: 4, stream: true });
      await assert.rejects(
        (async () => {
          for await (const _ of broken) {
            /* drain */
          }
        })(),
        (err: unknown) => err instanceof OpenAI.APIError && /broke off/.test(err.message),
      );
    });
  });

  describe('token limits (in memory)', function () {
    const body = (maxTokens: number, content = 'x') => ({ messages: [{ role: 'user', content }], max_tokens: maxTokens });
    const cost = (maxTokens: number, content = 'x') => estimatePromptTokens(body(maxTokens, content)) + maxTokens;

    it('admits exactly as many concurrent requests as the limit holds, 429 + Retry-After for the rest', async function () {
      const c = cost(20);
      const gw = await start({ keys: [...keys, { key: 'sk-small-tenant', tenant: 'small', tokensPerMinute: 10 * c + Math.floor(c / 2) }] });
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      const replies = await Promise.all(Array.from({ length: 30 }, () => chat(gw, 'sk-small-tenant', body(20))));
      assert.equal(replies.filter((r) => r.status === 200).length, 10);
      const refused = replies.filter((r) => r.status === 429);
      assert.equal(refused.length, 20);
      for (const r of refused) {
        assert.ok(Number(r.headers.get('retry-after')) >= 1, 'Retry-After in seconds');
        assert.equal(r.json.error.code, 'rate_limit_exceeded');
      }
      // Another tenant is not affected.
      assert.equal((await chat(gw, KEY, body(20))).status, 200);
    });

    it('refunds to the real usage, does not count refused requests, and refuses a request larger than the limit', async function () {
      const gw = await start({ keys: [...keys, { key: 'sk-hundred', tenant: 'hundred', tokensPerMinute: 100 }] });
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      // Charged prompt estimate + 40 up front; the upstream reports 1 + 40.
      const first = await chat(gw, 'sk-hundred', body(40, 'x [prompt-tokens:1]'));
      assert.equal(first.status, 200);
      assert.equal(first.json.usage.total_tokens, 41);
      // 59 left: a request costing exactly 59 fits only because the estimate was refunded.
      const m = 59 - estimatePromptTokens(body(0));
      assert.equal((await chat(gw, 'sk-hundred', body(m))).status, 200);
      assert.equal((await chat(gw, 'sk-hundred', body(1))).status, 429);
      // A refused request used nothing: in a new tenant of 200, 170 used, 40 refused, 30 still fits.
      const gw2 = await start({ keys: [{ key: 'sk-two-hundred', tenant: 'two-hundred', tokensPerMinute: 200 }], stateDir: path.join(home.dir, 'gw2') });
      await route(gw2, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      const e = estimatePromptTokens(body(0));
      assert.equal((await chat(gw2, 'sk-two-hundred', body(170 - e))).status, 200);
      assert.equal((await chat(gw2, 'sk-two-hundred', body(40 - e))).status, 429);
      assert.equal((await chat(gw2, 'sk-two-hundred', body(30 - e))).status, 200);
      const tooLarge = await chat(gw2, 'sk-two-hundred', body(500));
      assert.equal(tooLarge.status, 429);
      assert.equal(tooLarge.json.error.code, 'request_too_large');
      assert.match(tooLarge.json.error.message, /max_tokens/);
    });

    it('charges a stream its max_tokens up front, so concurrent streams never overshoot the limit', async function () {
      const c = cost(30);
      const limit = 5 * c + 7;
      const gw = await start({ keys: [{ key: 'sk-streamer', tenant: 'streamer', tokensPerMinute: limit }] });
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      const replies = await Promise.all(Array.from({ length: 12 }, () => chat(gw, 'sk-streamer', { ...body(30), stream: true, stream_options: { include_usage: true } })));
      const ok = replies.filter((r) => r.status === 200);
      assert.equal(ok.length, 5);
      const used = ok.map((r) => JSON.parse(sseData(r.text).filter((d) => d !== '[DONE]').at(-1)!).usage.total_tokens as number).reduce((a, b) => a + b, 0);
      assert.ok(used <= limit, `streams used ${used} tokens, limit ${limit}`);
    });
  });

  describe('admin API and routing table', function () {
    it('refuses a bad, missing or unconfigured admin token with 401 and changes nothing', async function () {
      const gw = await start();
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      const before = await admin(gw, 'GET', '/admin/routes');
      const change = { targets: [{ version: 'evil', upstream: 'stub', model: 'x', weight: 1 }] };
      for (const token of ['wrong-token', undefined, KEY]) {
        const r = await call(`${gw.url}/admin/routes/tiny-demo`, 'PUT', token, change);
        assert.equal(r.status, 401, `token ${token}`);
        assert.equal((await call(`${gw.url}/admin/routes`, 'GET', token)).status, 401);
        assert.equal((await call(`${gw.url}/admin/metrics?alias=tiny-demo`, 'GET', token)).status, 401);
      }
      assert.deepEqual((await admin(gw, 'GET', '/admin/routes')).json, before.json);
      const noAdmin = await start({ adminToken: undefined, stateDir: path.join(home.dir, 'gw-no-admin') });
      const r = await call(`${noAdmin.url}/admin/routes`, 'GET', ADMIN_TOKEN);
      assert.equal(r.status, 401);
      assert.match(r.json.error.message, /FORGELINE_GATEWAY_ADMIN_TOKEN/);
      // Client endpoints want a client key.
      assert.equal((await chat(gw, 'sk-nobody', {})).status, 401);
      assert.equal((await chat(gw, ADMIN_TOKEN, {})).status, 401);
    });

    it('refuses a malformed change with 400 naming the field, and keeps the old table', async function () {
      const gw = await start();
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      const before = (await admin(gw, 'GET', '/admin/routes')).json;
      const t = (o: Record<string, unknown>) => ({ version: 'tiny-demo@v2', upstream: 'stub', model: 'm', weight: 5, ...o });
      const cases: Array<[string, string, unknown, RegExp]> = [
        ['/admin/routes/tiny-demo', 'targets[0].weight', { targets: [t({ weight: -1 })] }, /./],
        ['/admin/routes/tiny-demo', 'targets[1].version', { targets: [t({}), t({ version: 'Bad Name' })] }, /lowercase/],
        ['/admin/routes/tiny-demo', 'targets', { targets: [t({ weight: 0 })] }, /at least one weight/],
        ['/admin/routes/tiny-demo', 'targets', { targets: [] }, /at least one version/],
        ['/admin/routes/tiny-demo', 'targets', { targets: [t({}), t({})] }, /at most once/],
        ['/admin/routes/tiny-demo', 'targets[0].upstream', { targets: [t({ upstream: 'ghost' })] }, /unknown upstream 'ghost'.*PUT \/admin\/upstreams\/ghost/],
        ['/admin/routes/tiny-demo', 'targets[0].model', { targets: [t({ model: '' })] }, /./],
        ['/admin/routes/Bad Alias', 'alias', { targets: [t({})] }, /not a valid name/],
        ['/admin/upstreams/stub', 'urls[0]', { urls: ['not a url'] }, /./],
        ['/admin/upstreams/stub', 'urls', { urls: [] }, /./],
        ['/admin/routes/tiny-demo', 'expectedVersion', { targets: [t({})], expectedVersion: 'seven' }, /whole number/],
      ];
      for (const [p, field, body, msg] of cases) {
        const r = await admin(gw, 'PUT', p.replace(' ', '%20'), body);
        assert.equal(r.status, 400, `${p} ${JSON.stringify(body)}: ${r.text}`);
        assert.equal(r.json.error.param, field, r.text);
        assert.match(r.json.error.message, new RegExp(`^${field.replace(/[[\]().]/g, '\\$&')}: `));
        assert.match(r.json.error.message, msg);
      }
      assert.deepEqual((await admin(gw, 'GET', '/admin/routes')).json, before);
      assert.equal((await chat(gw, KEY, {})).headers.get('x-forgeline-version'), 'tiny-demo@v1');
    });

    it('compare-and-swap: a stale If-Match or expectedVersion gets 409 and changes nothing; of two racing writers exactly one wins', async function () {
      const gw = await start();
      const t1 = await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      const targets = (v: string) => [{ version: v, upstream: 'stub', model: v, weight: 1 }];
      const stale = await admin(gw, 'PUT', '/admin/routes/tiny-demo', { targets: targets('tiny-demo@v2') }, { 'if-match': `"${t1.version - 1}"` });
      assert.equal(stale.status, 409);
      assert.equal(stale.json.error.code, 'version_mismatch');
      assert.equal(stale.json.table.version, t1.version);
      assert.equal((await admin(gw, 'PUT', '/admin/routes/tiny-demo', { targets: targets('tiny-demo@v2'), expectedVersion: t1.version - 1 })).status, 409);
      assert.deepEqual((await admin(gw, 'GET', '/admin/routes')).json, t1);
      const ok = await admin(gw, 'PUT', '/admin/routes/tiny-demo', { targets: targets('tiny-demo@v2'), by: 'canary', reason: 'step 1' }, { 'if-match': `"${t1.version}"` });
      assert.equal(ok.status, 200);
      assert.equal(ok.json.version, t1.version + 1);
      assert.equal(ok.headers.get('etag'), `"${t1.version + 1}"`);
      assert.equal(ok.json.updatedBy, 'canary');
      const race = await Promise.all(['tiny-demo@v3', 'tiny-demo@v4'].map((v) => admin(gw, 'PUT', '/admin/routes/tiny-demo', { targets: targets(v), expectedVersion: ok.json.version })));
      assert.deepEqual(race.map((r) => r.status).sort(), [200, 409]);
      const winner = race.find((r) => r.status === 200)!.json;
      assert.deepEqual((await admin(gw, 'GET', '/admin/routes')).json, winner);
    });

    it('keeps the table across a restart, and refuses to start on a malformed stored table (leaving the file as it was)', async function () {
      let gw = await start();
      const table = await route(gw, stub.url, [
        { version: 'tiny-demo@v1', weight: 3 },
        { version: 'tiny-demo@v2', weight: 1 },
      ]);
      await stop(gw);
      gw = await start();
      assert.deepEqual((await admin(gw, 'GET', '/admin/routes')).json, table);
      assert.equal((await chat(gw, KEY, {})).status, 200);
      await stop(gw);
      const file = path.join(home.dir, 'gw', 'routes.json');
      const broken = JSON.parse(readFileSync(file, 'utf8'));
      broken.routes['tiny-demo'].targets[1].weight = 'heavy';
      writeFileSync(file, JSON.stringify(broken));
      await assert.rejects(start(), (err: unknown) => err instanceof ConfigError && /routes\.tiny-demo\.targets\[1\]\.weight/.test(err.message) && err.message.includes(file));
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).routes['tiny-demo'].targets[1].weight, 'heavy');
    });

    it('refuses a startup seed that routes to an unknown upstream', async function () {
      await assert.rejects(
        startGateway({ port: 0, stateDir: path.join(home.dir, 'seeded'), seed: { upstreams: {}, routes: { a: { targets: [{ version: 'a@1', upstream: 'nope', model: 'm', weight: 1 }] } } } }),
        /routes\.a\.targets\[0\]\.upstream: unknown upstream 'nope'/,
      );
    });
  });

  describe('metrics and feedback', function () {
    it('records feedback in the window query and the traffic samples; refuses unknown ids, other tenants and bad scores', async function () {
      const gw = await start();
      await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
      const from = Date.now() - 1;
      const a = await chat(gw, KEY, { messages: [{ role: 'user', content: 'rate me' }], max_tokens: 2 });
      const b = await chat(gw, KEY, { messages: [{ role: 'user', content: 'and me' }], max_tokens: 2, stream: true });
      const idA = a.headers.get('x-request-id')!;
      const idB = b.headers.get('x-request-id')!;
      assert.equal((await call(`${gw.url}/v1/feedback`, 'POST', KEY, { request_id: idA, score: 0.25 })).status, 200);
      assert.equal((await call(`${gw.url}/v1/feedback`, 'POST', KEY, { request_id: idB, score: 1 })).status, 200);
      assert.equal((await call(`${gw.url}/v1/feedback`, 'POST', KEY_B, { request_id: idA, score: 0 })).status, 404, 'another tenant');
      assert.equal((await call(`${gw.url}/v1/feedback`, 'POST', KEY, { request_id: 'no-such-id', score: 0 })).status, 404);
      const bad = await call(`${gw.url}/v1/feedback`, 'POST', KEY, { request_id: idA, score: 'great' });
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error.param, 'score');
      const to = Date.now() + 1;
      const [m] = (await admin(gw, 'GET', `/admin/metrics?alias=tiny-demo&from=${from}&to=${to}`)).json;
      assert.equal(m.version, 'tiny-demo@v1');
      assert.equal(m.requests, 2);
      assert.equal(m.errors, 0);
      assert.deepEqual([...m.feedback].sort(), [0.25, 1]);
      assert.equal(m.latencyMs.length, 2);
      assert.equal(m.completionTokens, 4);
      const samples = (await admin(gw, 'GET', `/admin/traffic?alias=tiny-demo&from=${from}&to=${to}&limit=10`)).json;
      assert.deepEqual(
        samples.map((s: any) => [s.prompt, s.completion, s.feedback]),
        [
          ['user: rate me', ' t0 t1', 0.25],
          ['user: and me', ' t0 t1', 1],
        ],
      );
      // An empty window is empty; a bad window is a 400 naming the field.
      assert.deepEqual((await admin(gw, 'GET', `/admin/metrics?alias=tiny-demo&from=${to}&to=${to + 1000}`)).json, []);
      assert.equal((await admin(gw, 'GET', '/admin/metrics?alias=tiny-demo&from=abc')).json.error.param, 'from');
      assert.equal((await admin(gw, 'GET', '/admin/traffic?alias=tiny-demo&limit=0')).json.error.param, 'limit');
      // Prometheus: per version.
      const prom = await (await fetch(`${gw.url}/metrics`)).text();
      assert.match(prom, /forgeline_gateway_requests_total\{alias="tiny-demo",version="tiny-demo@v1",status="200"\} 2/);
      assert.match(prom, /forgeline_gateway_request_duration_seconds_count\{alias="tiny-demo",version="tiny-demo@v1"\} 2/);
      assert.match(prom, /forgeline_gateway_tokens_total\{alias="tiny-demo",version="tiny-demo@v1",kind="completion"\} 4/);
    });
  });
});
