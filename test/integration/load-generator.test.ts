/**
 * The demo's load generator (src/cli/load.ts) against our real gateway in front of the stub
 * OpenAI-compatible upstream (the wire format vLLM speaks; the real vLLM runs in the demo e2e test):
 * requests split by the route, each answer scored and the score posted as feedback, which the
 * gateway's metrics window (what the canary analysis reads) holds per version.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LoadGenerator, sameAnswer, tinyInstructEval } from '../../src/cli/load';
import type { VersionMetrics } from '../../src/contracts/routing';
import type { RunningGateway } from '../../src/gateway/server';
import { admin, eventually, gateway, route } from '../helpers/gateway-harness';
import { startStubUpstream, type StubUpstream } from '../helpers/gateway-upstream';

describe('load generator through the gateway (integration: real gateway, stub OpenAI-compatible upstream)', function () {
  this.timeout(60_000);
  let stub: StubUpstream;
  let gw: RunningGateway;
  let dir: string;

  before(async function () {
    dir = await mkdtemp(path.join(os.tmpdir(), 'forgeline-load-'));
    stub = await startStubUpstream();
    gw = await gateway({ stateDir: dir, devKey: 'forgeline-dev' });
    await route(gw, stub.url, [
      { version: 'tiny-demo@base', weight: 50 },
      { version: 'tiny-demo@aaaaaaaaaaaa', weight: 50 },
    ]);
  });
  after(async function () {
    await gw?.close();
    await stub?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('compares answers as the evaluate recipe does (case-folded whitespace tokens)', function () {
    assert.ok(sameAnswer(' j a k  k l', 'j a k k l'));
    assert.ok(sameAnswer('L B\n', 'l b'));
    assert.ok(!sameAnswer(' l l', 'l b'));
    assert.ok(!sameAnswer('', 'a'));
    const evalSplit = tinyInstructEval();
    assert.equal(evalSplit.length, 100);
    assert.ok(evalSplit.every((e) => e.prompt.endsWith(' =') && e.completion.length > 0));
  });

  it('splits requests by the route, scores each answer and posts it as feedback; the metrics window holds the same scores per version', async function () {
    const from = Date.now() - 1;
    // The stub answers " t0 t1" to every prompt (max_tokens 2): right for the first example, wrong for the second.
    const load = new LoadGenerator({
      url: gw.url,
      key: 'forgeline-dev',
      model: 'tiny-demo',
      examples: [
        { prompt: 'first : a b =', completion: 't0 t1' },
        { prompt: 'last : a b =', completion: 'b' },
      ],
      rate: 100,
      concurrency: 4,
      maxTokens: 2,
    });
    load.start();
    await eventually('60 requests', async () => (load.total().requests >= 60 ? true : undefined));
    await load.stop();

    const stats = load.stats();
    assert.deepEqual([...stats.keys()].sort(), ['tiny-demo@aaaaaaaaaaaa', 'tiny-demo@base']);
    const total = load.total();
    assert.equal(total.errors, 0, load.lastError);
    assert.equal(load.unrouted, 0);
    let correct = 0;
    for (const v of stats.values()) {
      assert.ok(v.requests > 0);
      assert.equal(v.feedbackSent, v.requests, 'every answer got feedback');
      correct += v.correct;
    }
    assert.equal(correct, Math.ceil(total.requests / 2), 'the examples alternate: every other answer is right');

    const res = await admin(gw, 'GET', `/admin/metrics?alias=tiny-demo&from=${from}&to=${Date.now() + 1}`);
    assert.equal(res.status, 200);
    const window = res.json as VersionMetrics[];
    for (const [version, v] of stats) {
      const m = window.find((x) => x.version === version);
      assert.ok(m, `the window has ${version}`);
      assert.equal(m.requests, v.requests);
      assert.equal(m.feedback.length, v.requests);
      assert.equal(m.feedback.reduce((a, b) => a + b, 0), v.correct, 'feedback 1 for each right answer, 0 for each wrong one');
    }
  });

  it('counts requests the gateway refuses before routing (an unknown model) as unrouted errors', async function () {
    const load = new LoadGenerator({ url: gw.url, key: 'forgeline-dev', model: 'no-such-model', examples: [{ prompt: 'x', completion: 'y' }], rate: 50 });
    load.start();
    await eventually('5 refused requests', async () => (load.unrouted >= 5 ? true : undefined));
    await load.stop();
    assert.equal(load.stats().size, 0);
    assert.match(load.lastError ?? '', /^40\d: /);
    assert.equal(load.total().errors, load.total().requests);
  });
});
