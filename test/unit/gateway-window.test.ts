/**
 * The gateway's in-memory metrics window (MemoryWindowStore: per-alias columns in typed arrays)
 * and its request ids: what the canary analysis and feedback read must not change with the layout.
 */
import assert from 'node:assert/strict';
import { MemoryWindowStore, type RequestRecord } from '../../src/gateway/metrics';
import { newRequestId } from '../../src/gateway/server';

const rec = (i: number, over: Partial<RequestRecord> = {}): RequestRecord => ({
  requestId: `req-${i}`,
  alias: 'demo',
  version: i % 3 === 0 ? 'demo@b' : 'demo@a',
  tenant: 'team-a',
  at: 1_000 + i,
  status: i % 5 === 0 ? 502 : 200,
  error: i % 5 === 0,
  latencyMs: i / 10,
  promptTokens: 2,
  completionTokens: 3,
  ...over,
});

describe('gateway metrics window in memory (MemoryWindowStore)', function () {
  it('summarises a window per version (requests, errors, latencies in order, tokens, feedback), across column growth', async function () {
    const w = new MemoryWindowStore({ maxEvents: 5_000, maxSamples: 10, maxLatencySamples: 10_000 });
    for (let i = 0; i < 3_000; i++) w.record(rec(i)); // grows past the first 1,024 slots twice
    assert.equal(await w.feedback('req-3', 'team-a', 0.5), 'recorded');
    assert.equal(await w.feedback('req-4', 'team-a', 1), 'recorded');
    const got = await w.window('demo', 1_000, 1_000 + 3_000);
    const want = (v: string) => {
      const xs = Array.from({ length: 3_000 }, (_, i) => i).filter((i) => rec(i).version === v);
      return { version: v, requests: xs.length, errors: xs.filter((i) => i % 5 === 0).length, latencyMs: xs.map((i) => i / 10), promptTokens: 2 * xs.length, completionTokens: 3 * xs.length };
    };
    assert.deepEqual(
      got.map(({ feedback: _f, ...m }) => m),
      [want('demo@a'), want('demo@b')],
    );
    assert.deepEqual(got.find((m) => m.version === 'demo@b')!.feedback, [0.5]);
    assert.deepEqual(got.find((m) => m.version === 'demo@a')!.feedback, [1]);
    assert.deepEqual((await w.window('demo', 1_010, 1_013)).map((m) => m.requests), [2, 1], '[from, to)');
    assert.deepEqual(await w.window('other', 0, 1e12), []);
  });

  it('keeps the newest maxEvents per alias: the oldest are dropped, and feedback for them is unknown', async function () {
    const w = new MemoryWindowStore({ maxEvents: 100, maxSamples: 10, maxLatencySamples: 1_000 });
    for (let i = 0; i < 250; i++) w.record(rec(i, { version: 'demo@a', status: 200, error: false }));
    w.record(rec(0, { alias: 'other', requestId: 'other-0' }));
    const [m] = await w.window('demo', 0, 1e12);
    assert.equal(m!.requests, 100);
    assert.deepEqual(m!.latencyMs, Array.from({ length: 100 }, (_, k) => (150 + k) / 10), 'the newest 100, oldest first');
    assert.equal(await w.feedback('req-149', 'team-a', 1), 'unknown', 'dropped');
    assert.equal(await w.feedback('req-150', 'team-b', 1), 'unknown', 'another tenant');
    assert.equal(await w.feedback('req-150', 'team-a', 1), 'recorded');
    assert.equal(await w.feedback('other-0', 'team-a', 0.25), 'recorded');
    assert.deepEqual((await w.window('other', 0, 1e12))[0]!.feedback, [0.25]);
  });

  it('keeps sampled texts with their feedback, the newest maxSamples', async function () {
    const w = new MemoryWindowStore({ maxEvents: 100, maxSamples: 2, maxLatencySamples: 100 });
    for (let i = 0; i < 3; i++) w.record(rec(i), { prompt: `p${i}`, completion: `c${i}` });
    assert.equal(await w.feedback('req-2', 'team-a', 0.75), 'recorded');
    assert.deepEqual(
      (await w.traffic('demo', 0, 1e12, 10)).map((s) => [s.prompt, s.feedback]),
      [
        ['p1', undefined],
        ['p2', 0.75],
      ],
    );
  });

  it('request ids are random version-4 UUIDs', function () {
    const ids = Array.from({ length: 2_000 }, newRequestId);
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(new Set(ids).size, ids.length);
  });
});
