/**
 * Gateway replicas sharing one real Redis server (started by scripts/lib/redis.sh on a free port):
 * token limits exact across replicas, one routing table (compare-and-swap, change notices), one
 * metrics window, feedback at any replica. Upstream: the stub OpenAI-compatible server.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { GatewayTrafficRouter, RouteConflictError } from '../../src/adapters/gateway-router';
import { estimatePromptTokens } from '../../src/gateway/limits';
import type { RunningGateway } from '../../src/gateway/server';
import { ConfigError, ForgelineError } from '../../src/ports/errors';
import { ADMIN_TOKEN, admin, call, chat, eventually, gateway, route, sseData } from '../helpers/gateway-harness';
import { startStubUpstream, type StubUpstream } from '../helpers/gateway-upstream';
import { freePort } from '../helpers/processes';
import { getRedis, type RedisServer } from '../helpers/redis';

const KEY = 'sk-test-tenant-a';

describe('gateway replicas on one Redis (real redis-server; stub OpenAI-compatible upstream)', function () {
  this.timeout(120_000);
  let redis: RedisServer;
  let stub: StubUpstream;
  let prefix: string;
  const open: RunningGateway[] = [];
  const replica = async (opts: Parameters<typeof gateway>[0] = {}) => {
    const gw = await gateway({ redisUrl: redis.url, redisPrefix: prefix, keys: [{ key: KEY, tenant: 'team-a', tokensPerMinute: 10_000_000 }], tableRefreshMs: 200, ...opts });
    open.push(gw);
    return gw;
  };

  before(async function () {
    redis = await getRedis();
  });
  beforeEach(async function () {
    prefix = `test:${randomBytes(4).toString('hex')}:`;
    stub = await startStubUpstream({ promptTokens: estimatePromptTokens });
  });
  afterEach(async function () {
    for (const gw of open.splice(0)) await gw.close();
    await stub.close();
  });

  it('holds a token limit exactly across two replicas under concurrent load, whole answers and streams', async function () {
    const body = { messages: [{ role: 'user', content: 'x' }], max_tokens: 25 };
    const c = estimatePromptTokens(body) + 25;
    const keys = [{ key: 'sk-shared-tenant', tenant: 'shared', tokensPerMinute: 12 * c + Math.floor(c / 2) }];
    const a = await replica({ keys });
    const b = await replica({ keys });
    await route(a, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
    await eventually('replica b to see the route', async () => ((await admin(b, 'GET', '/admin/routes')).json.routes['tiny-demo'] ? true : undefined));
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => chat(i % 2 ? a : b, 'sk-shared-tenant', body)));
    assert.equal(replies.filter((r) => r.status === 200).length, 12);
    assert.equal(replies.filter((r) => r.status === 429).length, 28);
    assert.ok(replies.filter((r) => r.status === 429).every((r) => Number(r.headers.get('retry-after')) >= 1));
    // Streams, another tenant: each charged its max_tokens up front, so together they never pass the limit.
    const skeys = [{ key: 'sk-stream-tenant', tenant: 'streams', tokensPerMinute: 7 * c + 3 }];
    const sa = await replica({ keys: skeys });
    const sb = await replica({ keys: skeys });
    const streams = await Promise.all(Array.from({ length: 20 }, (_, i) => chat(i % 2 ? sa : sb, 'sk-stream-tenant', { ...body, stream: true, stream_options: { include_usage: true } })));
    const ok = streams.filter((r) => r.status === 200);
    assert.equal(ok.length, 7);
    const used = ok.map((r) => JSON.parse(sseData(r.text).filter((d) => d !== '[DONE]').at(-1)!).usage.total_tokens as number).reduce((x, y) => x + y, 0);
    assert.ok(used <= 7 * c + 3, `used ${used}`);
  });

  it('shares one routing table: a change at one replica reaches the other, and racing writers at two replicas get one 200 and one 409', async function () {
    const a = await replica();
    const b = await replica();
    const t1 = await route(a, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
    await eventually('b to route tiny-demo', async () => ((await chat(b, KEY, {})).headers.get('x-forgeline-version') === 'tiny-demo@v1' ? true : undefined));
    const targets = (v: string) => [{ version: v, upstream: 'stub', model: v, weight: 1 }];
    const race = await Promise.all([
      admin(a, 'PUT', '/admin/routes/tiny-demo', { targets: targets('tiny-demo@from-a') }, { 'if-match': `"${t1.version}"` }),
      admin(b, 'PUT', '/admin/routes/tiny-demo', { targets: targets('tiny-demo@from-b') }, { 'if-match': `"${t1.version}"` }),
    ]);
    assert.deepEqual(race.map((r) => r.status).sort(), [200, 409]);
    const winner = race.find((r) => r.status === 200)!.json;
    const version = winner.routes['tiny-demo'].targets[0].version;
    for (const gw of [a, b]) {
      await eventually(`${gw.url} to serve ${version}`, async () => ((await chat(gw, KEY, {})).headers.get('x-forgeline-version') === version ? true : undefined));
      assert.deepEqual((await admin(gw, 'GET', '/admin/routes')).json, winner);
    }
    // Without If-Match, a replica holding a stale table still applies its change on top of the latest.
    const c = await admin(b, 'PUT', '/admin/upstreams/second', { urls: [stub.url] });
    assert.equal(c.status, 200);
    assert.equal(c.json.version, winner.version + 1);
    assert.deepEqual(c.json.routes, winner.routes);
  });

  it('keeps the table in Redis across restarts of every replica', async function () {
    const a = await replica();
    const table = await route(a, stub.url, [
      { version: 'tiny-demo@v1', weight: 2 },
      { version: 'tiny-demo@v2', weight: 1 },
    ]);
    await a.close();
    open.splice(open.indexOf(a), 1);
    const b = await replica();
    assert.deepEqual((await admin(b, 'GET', '/admin/routes')).json, table);
    assert.equal((await chat(b, KEY, {})).status, 200);
  });

  it('answers a window query with every replica\'s requests, and feedback sent to either replica', async function () {
    const a = await replica();
    const b = await replica();
    await route(a, stub.url, [
      { version: 'tiny-demo@stable', weight: 1 },
      { version: 'tiny-demo@canary', weight: 1 },
    ]);
    // Readiness from b's table, not from a request: a probe request's record may reach Redis after
    // `from` and be counted in the window.
    await eventually('b to route tiny-demo', async () => ((await admin(b, 'GET', '/admin/routes')).json?.routes?.['tiny-demo'] ? true : undefined));
    const from = Date.now();
    const served: Array<{ id: string; version: string }> = [];
    for (let i = 0; i < 20; i++) {
      const r = await chat(i % 2 ? a : b, KEY, { user: `user-${i}`, messages: [{ role: 'user', content: `question ${i}` }] });
      assert.equal(r.status, 200);
      served.push({ id: r.headers.get('x-request-id')!, version: r.headers.get('x-forgeline-version')! });
    }
    const failed = await chat(a, KEY, { user: 'user-0', messages: [{ role: 'user', content: 'x [status:500]' }] });
    assert.equal(failed.status, 500);
    // Feedback for requests served by a, sent to b (and the other way round).
    for (const [i, s] of served.entries()) assert.equal((await call(`${(i % 2 ? b : a).url}/v1/feedback`, 'POST', KEY, { request_id: s.id, score: i })).status, 202);
    const to = Date.now() + 1;
    const metrics = await eventually('all 21 requests in the window', async () => {
      const m = (await admin(b, 'GET', `/admin/metrics?alias=tiny-demo&from=${from}&to=${to}`)).json as any[];
      return m.reduce((n, x) => n + x.requests, 0) === 21 ? m : undefined;
    });
    for (const v of ['tiny-demo@stable', 'tiny-demo@canary']) {
      const m = metrics.find((x) => x.version === v);
      const mine = served.map((s, i) => ({ ...s, i })).filter((s) => s.version === v);
      const failedHere = failed.headers.get('x-forgeline-version') === v ? 1 : 0;
      assert.equal(m.requests, mine.length + failedHere, v);
      assert.equal(m.errors, failedHere, v);
      assert.deepEqual([...m.feedback].sort((x: number, y: number) => x - y), mine.map((s) => s.i), v);
      assert.equal(m.latencyMs.length, m.requests);
    }
    const samples = (await admin(a, 'GET', `/admin/traffic?alias=tiny-demo&from=${from}&to=${to}&limit=5`)).json as any[];
    assert.equal(samples.length, 5);
    assert.ok(samples.every((s) => /^user: (question \d+|x \[status:500\])$/.test(s.prompt)));
    // The streams are bounded: MAXLEN on every stream the gateway writes.
    const r = new Redis(redis.url);
    try {
      const streams = await r.keys(`${prefix}*`);
      assert.ok(streams.some((k) => k.startsWith(`${prefix}ev:`)));
    } finally {
      r.disconnect();
    }
  });

  it('TrafficRouter adapter (src/adapters/gateway-router.ts) drives the admin API: table, CAS conflict, metrics, traffic, refused token', async function () {
    const gw = await replica();
    await route(gw, stub.url, [{ version: 'tiny-demo@v1', weight: 1 }]);
    const router = new GatewayTrafficRouter({ url: gw.url, adminToken: ADMIN_TOKEN });
    const t = await router.getTable();
    const targets = [
      { version: 'tiny-demo@v1', upstream: 'stub', model: 'v1', weight: 95 },
      { version: 'tiny-demo@v2', upstream: 'stub', model: 'v2', weight: 5 },
    ];
    const next = await router.setRoute('tiny-demo', targets, { expectedVersion: t.version, by: 'canary-test', reason: 'step 1: 5%' });
    assert.equal(next.version, t.version + 1);
    assert.equal(next.updatedBy, 'canary-test');
    assert.deepEqual(next.routes['tiny-demo']!.targets, targets);
    await assert.rejects(router.setRoute('tiny-demo', targets, { expectedVersion: t.version }), (err: unknown) => err instanceof RouteConflictError && err.current?.version === next.version && !(err instanceof ForgelineError));
    await assert.rejects(router.setRoute('tiny-demo', [{ ...targets[0]!, weight: -5 }]), (err: unknown) => err instanceof ForgelineError && err.terminal && /targets\[0\]\.weight/.test(err.message));
    const from = Date.now();
    await chat(gw, KEY, { user: 'someone' });
    const m = await eventually('the request in the window', async () => {
      const ms = await router.metrics('tiny-demo', { from, to: Date.now() + 1 });
      return ms.length ? ms : undefined;
    });
    assert.equal(m.reduce((n, x) => n + x.requests, 0), 1);
    assert.equal((await router.traffic('tiny-demo', { from, to: Date.now() + 1, limit: 10 })).length, 1);
    await assert.rejects(new GatewayTrafficRouter({ url: gw.url, adminToken: 'not-the-token' }).getTable(), ConfigError);
    const nowhere = await freePort();
    await assert.rejects(new GatewayTrafficRouter({ url: `http://127.0.0.1:${nowhere}`, adminToken: ADMIN_TOKEN }).getTable(), (err: unknown) => !(err instanceof ForgelineError) && /unreachable/.test(String(err)));
  });

  it('refuses to start when Redis cannot be reached, naming the URL', async function () {
    const nowhere = await freePort();
    await assert.rejects(gateway({ redisUrl: `redis://127.0.0.1:${nowhere}` }), (err: unknown) => err instanceof ConfigError && err.message.includes(`redis://127.0.0.1:${nowhere}`));
  });
});
