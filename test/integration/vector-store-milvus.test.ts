/**
 * The Milvus adapter against a REAL Milvus server: Milvus 2.3.5 standalone from the PyPI package
 * `milvus` (stores venv), started by test/helpers/milvus.ts on free ports in a temp directory.
 * The shared conformance suite, then what is Milvus-specific: filter literals, the CAS of native
 * aliases across separate clients, rolling forward a move whose swapper died after its claim,
 * colliding collection names, and a store built before its server answers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { MilvusClient } from '@zilliz/milvus2-sdk-node';
import { MilvusVectorStore, milvusFilter, portScore } from '../../src/adapters/milvus-store';
import { AliasConflictError, VectorStoreRejectedError } from '../../src/ports/vector-store';
import { getMilvus } from '../helpers/milvus';
import { freePort } from '../helpers/processes';
import { describeVectorStoreConformance } from './vector-store.conformance';

describeVectorStoreConformance('Milvus 2.3.5 standalone (real server, PyPI milvus)', async () => {
  const server = await getMilvus();
  const store = new MilvusVectorStore({ address: server.address });
  return { store, cleanup: () => store.close() };
});

describe('MilvusVectorStore (real Milvus 2.3.5)', function () {
  this.timeout(120_000);
  let address: string;
  let store: MilvusVectorStore;
  let index: string;

  before(async function () {
    address = (await getMilvus()).address;
    store = new MilvusVectorStore({ address });
  });
  after(async () => store?.close());
  beforeEach(() => {
    index = `m${randomBytes(5).toString('hex')}`;
  });

  it('builds filter expressions with escaped literals, typed $in groups and AND', function () {
    assert.equal(milvusFilter([['k', ['a"b\\c']]]), 'metadata["k"] == "a\\"b\\\\c"');
    assert.equal(milvusFilter([['n', [1, 2]], ['ok', [true]]]), 'metadata["n"] in [1, 2] and metadata["ok"] == true');
    assert.equal(milvusFilter([['x', ['a', 1, false, 'b']]]), '(metadata["x"] in ["a", "b"] or metadata["x"] == 1 or metadata["x"] == false)');
    assert.equal(milvusFilter([]), '');
  });

  it('turns Milvus squared L2 distances into the negative L2 distance', function () {
    assert.equal(portScore('euclidean', 9), -3);
    assert.equal(portScore('euclidean', -1e-7), -0); // rounding below zero
    assert.equal(portScore('dot', -2.5), -2.5);
    assert.equal(portScore('cosine', 0.5), 0.5);
  });

  it('filters on values with quotes, backslashes, newlines and non-ASCII text exactly', async function () {
    await store.createVersion(index, 'v1', { dimensions: 2, metric: 'dot' });
    const tricky = ['say "hi"', 'back\\slash', "it's", 'line\nbreak', 'ünïcødé ✓', 'a" or id != "'];
    await store.upsert(
      index,
      'v1',
      tricky.map((title, i) => ({ id: `t${i}`, values: [1, i], metadata: { title } })),
    );
    for (const [i, title] of tricky.entries()) {
      const got = await store.query(index, { version: 'v1' }, [1, 0], { topK: 10, filter: { title } });
      assert.deepEqual(
        got.map((m) => m.id),
        [`t${i}`],
        JSON.stringify(title),
      );
    }
    const any = await store.query(index, { version: 'v1' }, [1, 0], { topK: 10, filter: { title: { $in: [tricky[0]!, tricky[5]!] } } });
    assert.deepEqual(any.map((m) => m.id).sort(), ['t0', 't5']);
  });

  it('alias CAS holds across separate clients: of concurrent swaps from one generation exactly one wins', async function () {
    const clients = [0, 1, 2, 3].map(() => new MilvusVectorStore({ address }));
    try {
      for (const v of ['v0', 'v1', 'v2', 'v3', 'v4']) await store.createVersion(index, v, { dimensions: 2, metric: 'cosine' });
      const start = await store.swapAlias(index, 'live', 'v0', null);
      const results = await Promise.allSettled(clients.map((c, i) => c.swapAlias(index, 'live', `v${i + 1}`, 'v0')));
      const won = results.filter((r): r is PromiseFulfilledResult<Awaited<ReturnType<MilvusVectorStore['swapAlias']>>> => r.status === 'fulfilled');
      assert.equal(won.length, 1, results.map((r) => (r.status === 'rejected' ? String(r.reason) : r.value.version)).join('; '));
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof AliasConflictError, String(r.reason));
      const now = await store.getAlias(index, 'live');
      assert.equal(now?.version, won[0]!.value.version);
      assert.equal(now?.generation, start.generation + 1);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('a move claimed by a swapper that died before applying it is rolled forward by the next swap', async function () {
    for (const v of ['v1', 'v2', 'v3']) await store.createVersion(index, v, { dimensions: 2, metric: 'cosine' });
    const first = await store.swapAlias(index, 'live', 'v1', null);
    // A swapper from v1 to v2 claimed generation 2 and died before moving the native alias.
    const raw = new MilvusClient({ address });
    try {
      const claim = await raw.createAlias({ alias: `flg_${index}__live__${first.generation + 1}`, collection_name: `fl_${index}__v2` });
      assert.equal(claim.error_code, 'Success', claim.reason);
    } finally {
      await raw.closeConnection();
    }
    assert.equal((await store.getAlias(index, 'live'))?.version, 'v1', 'queries still see v1: the move was never applied');
    // Its claim won generation 2, so a swap from v1 now conflicts, and completes the dead swap first.
    await assert.rejects(store.swapAlias(index, 'live', 'v3', 'v1'), (err: unknown) => err instanceof AliasConflictError && err.actual === 'v2');
    const after = await store.getAlias(index, 'live');
    assert.equal(after?.version, 'v2');
    assert.equal(after?.generation, first.generation + 1);
    const hits = await store.query(index, { alias: 'live' }, [1, 0], { topK: 1 });
    assert.deepEqual(hits, []);
    const next = await store.swapAlias(index, 'live', 'v3', 'v2');
    assert.equal(next.generation, first.generation + 2);
  });

  it('a store built while Milvus is unreachable fails retryably, then works once the server answers', async function () {
    const port = await freePort();
    const early = new MilvusVectorStore({ address: `127.0.0.1:${port}`, retry: { attempts: 2, baseDelayMs: 10 } });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled); // it would end a worker process
    const sockets = new Set<net.Socket>();
    // Stands in for the server coming up at that address: a TCP relay to the real one.
    const relay = net.createServer((inbound) => {
      const outbound = net.connect(Number(address.split(':')[1]), '127.0.0.1');
      for (const s of [inbound, outbound]) {
        sockets.add(s);
        s.on('error', () => s.destroy());
        s.on('close', () => sockets.delete(s));
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    try {
      await assert.rejects(early.listVersions(index), (err: unknown) => {
        assert.ok(!(err instanceof VectorStoreRejectedError), 'unreachable is transient, not terminal');
        assert.match(String(err), /UNAVAILABLE|ECONNREFUSED/);
        return true;
      });
      await new Promise<void>((resolve) => relay.listen(port, '127.0.0.1', resolve));
      await store.createVersion(index, 'v1', { dimensions: 2, metric: 'cosine' });
      assert.deepEqual(
        (await early.listVersions(index)).map((v) => v.version),
        ['v1'],
      );
      assert.deepEqual(unhandled.map(String), [], 'no unhandled rejection from the failed connect');
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await early.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => relay.close(resolve));
    }
  });

  it('refuses a version whose collection name collides with another index\'s version', async function () {
    await store.createVersion(`${index}__b`, 'c', { dimensions: 2, metric: 'cosine' });
    await assert.rejects(
      store.createVersion(index, 'b__c', { dimensions: 2, metric: 'cosine' }),
      (err: unknown) => err instanceof VectorStoreRejectedError && /belongs to index .*__b version c/.test(err.message),
    );
    assert.deepEqual(await store.listVersions(index), []);
    assert.deepEqual(
      (await store.listVersions(`${index}__b`)).map((v) => v.version),
      ['c'],
    );
    await store.dropVersion(index, 'b__c'); // not ours: left alone
    assert.equal((await store.listVersions(`${index}__b`)).length, 1);
  });
});
