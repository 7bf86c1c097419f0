/**
 * The VectorStore contract (src/ports/vector-store.ts), as one suite every adapter must pass.
 * `open` is called once per suite; each test works in an index of its own (a fresh random name),
 * so tests are independent of each other and of their order, and `cleanup` removes whatever the
 * store wrote (a temp directory, a private server...).
 *
 * Vectors are small (8 dimensions) and deterministic (a seeded generator), and every expected
 * ranking and score is computed here by brute force, so a failure names the exact record.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ErrorType } from '../../src/contracts/errors';
import {
  AliasConflictError,
  VECTOR_NAME,
  VectorStoreRejectedError,
  type Metadata,
  type Metric,
  type QueryMatch,
  type VectorRecord,
  type VectorStore,
} from '../../src/ports/vector-store';
import { mulberry32 as prng } from '../../src/drift/random';

export interface VectorStoreUnderTest {
  store: VectorStore;
  /** Removes whatever the store wrote (temp directories, a private server's data...). */
  cleanup(): Promise<void>;
}

const DIMS = 8;


/** `count` vectors of `dims` values in [-1, 1), the same for the same seed. */
export function deterministicVectors(count: number, seed: number, dims = DIMS): Float32Array[] {
  const next = prng(seed);
  return Array.from({ length: count }, () => Float32Array.from({ length: dims }, () => next() * 2 - 1));
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

/** The port's score: larger = more similar, for each metric. */
export function expectedScore(metric: Metric, a: ArrayLike<number>, b: ArrayLike<number>): number {
  switch (metric) {
    case 'cosine':
      return dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));
    case 'dot':
      return dot(a, b);
    case 'euclidean': {
      let sum = 0;
      for (let i = 0; i < a.length; i++) sum += (a[i]! - b[i]!) ** 2;
      return -Math.sqrt(sum);
    }
  }
}

/** Records `<prefix>0`, `<prefix>1`... with metadata `{ n, parity, even, group }`. */
function makeRecords(prefix: string, vectors: Float32Array[]): VectorRecord[] {
  return vectors.map((values, n) => ({
    id: `${prefix}${n}`,
    values,
    metadata: { n, parity: n % 2 === 0 ? 'even' : 'odd', even: n % 2 === 0, group: `g${n % 3}` },
  }));
}

function close(actual: number, expected: number, what: string): void {
  const tolerance = 1e-3 * Math.max(1, Math.abs(expected));
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: got ${actual}, expected ${expected}`);
}

function isRejected(mentions?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof VectorStoreRejectedError, `expected VectorStoreRejectedError, got ${String(err)}`);
    assert.equal(err.terminal, true);
    assert.equal(err.type, ErrorType.VectorStoreRejected);
    if (mentions) assert.match(err.message, mentions);
    return true;
  };
}

function isAliasConflict(expected: string | null, actual: string | null) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AliasConflictError, `expected AliasConflictError, got ${String(err)}`);
    assert.equal(err.terminal, true);
    assert.equal(err.type, ErrorType.AliasConflict);
    assert.equal(err.expected, expected);
    assert.equal(err.actual, actual);
    return true;
  };
}

/** The ids and scores of `records` ranked against `query` by brute force. */
function bruteForce(metric: Metric, records: VectorRecord[], query: ArrayLike<number>, topK: number): Array<{ id: string; score: number }> {
  return records
    .map((r) => ({ id: r.id, score: expectedScore(metric, r.values, query) }))
    .sort((a, b) => b.score - a.score)
    .slice(0, topK);
}

function assertRanking(metric: Metric, got: QueryMatch[], expected: Array<{ id: string; score: number }>): void {
  assert.deepEqual(
    got.map((m) => m.id),
    expected.map((m) => m.id),
    `${metric}: ranking should match brute force`,
  );
  got.forEach((m, i) => close(m.score, expected[i]!.score, `${metric} score of ${m.id}`));
  for (let i = 1; i < got.length; i++) assert.ok(got[i - 1]!.score >= got[i]!.score, `${metric}: scores must not increase`);
}

export function describeVectorStoreConformance(name: string, open: () => Promise<VectorStoreUnderTest>): void {
  describe(`VectorStore conformance: ${name}`, function () {
    this.timeout(120_000);
    let sut: VectorStoreUnderTest | undefined;
    let store: VectorStore;
    /** A fresh index per test. */
    let index: string;

    before(async function () {
      sut = await open();
      store = sut.store;
    });

    after(async function () {
      if (!sut) return;
      await sut.store.close();
      await sut.cleanup();
    });

    beforeEach(function () {
      index = `t${randomBytes(5).toString('hex')}`;
    });

    describe('versions', function () {
      it('createVersion is idempotent and listVersions reports dimensions and metric, oldest first', async function () {
        assert.deepEqual(await store.listVersions(index), []);
        await store.createVersion(index, 'v2', { dimensions: DIMS, metric: 'dot' });
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await store.upsert(index, 'v1', makeRecords('a', deterministicVectors(3, 1)));
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        assert.equal(await store.count(index, 'v1'), 3, 'an idempotent createVersion keeps the records');
        assert.deepEqual(await store.listVersions(index), [
          { version: 'v1', dimensions: DIMS, metric: 'cosine' },
          { version: 'v2', dimensions: DIMS, metric: 'dot' },
        ]);
      });

      it('a version created with deferIndex answers before and after sealVersion, which is idempotent', async function () {
        const records = makeRecords('s', deterministicVectors(12, 7));
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine', deferIndex: true });
        await store.upsert(index, 'v1', records);
        const expected = bruteForce('cosine', records, records[3]!.values, 5);
        assertRanking('cosine', await store.query(index, { version: 'v1' }, records[3]!.values, { topK: 5 }), expected);
        await store.sealVersion?.(index, 'v1');
        await store.sealVersion?.(index, 'v1');
        assertRanking('cosine', await store.query(index, { version: 'v1' }, records[3]!.values, { topK: 5 }), expected);
        assert.deepEqual(await store.listVersions(index), [{ version: 'v1', dimensions: DIMS, metric: 'cosine' }], 'deferIndex is not part of the version');
      });

      it('createVersion with another width or metric for an existing version is refused, naming both', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await assert.rejects(store.createVersion(index, 'v1', { dimensions: 16, metric: 'cosine' }), isRejected(/\b8\b[\s\S]*\b16\b|\b16\b[\s\S]*\b8\b/));
        await assert.rejects(store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'euclidean' }), isRejected(/cosine[\s\S]*euclidean|euclidean[\s\S]*cosine/));
        assert.deepEqual(await store.listVersions(index), [{ version: 'v1', dimensions: DIMS, metric: 'cosine' }]);
      });

      it('indexes are separate: versions of one are not listed under another', async function () {
        const other = `${index}x`;
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await store.createVersion(other, 'v1', { dimensions: 4, metric: 'euclidean' });
        await store.upsert(other, 'v1', [{ id: 'x', values: [1, 2, 3, 4] }]);
        assert.deepEqual(await store.listVersions(index), [{ version: 'v1', dimensions: DIMS, metric: 'cosine' }]);
        assert.equal(await store.count(index, 'v1'), 0);
        assert.equal(await store.count(other, 'v1'), 1);
      });

      it('dropVersion removes the version and its records; dropping an absent one succeeds', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await store.createVersion(index, 'v2', { dimensions: DIMS, metric: 'cosine' });
        await store.upsert(index, 'v1', makeRecords('a', deterministicVectors(5, 2)));
        await store.dropVersion(index, 'v1');
        assert.deepEqual(
          (await store.listVersions(index)).map((v) => v.version),
          ['v2'],
        );
        await store.dropVersion(index, 'v1');
        await store.dropVersion(index, 'never_created');
        await store.dropVersion(`${index}nothing`, 'v1');
        // Re-created under the same name it starts empty.
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        assert.equal(await store.count(index, 'v1'), 0);
      });

      it('dropVersion of the version an alias points at is refused and keeps it; allowed once the alias moves', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await store.createVersion(index, 'v2', { dimensions: DIMS, metric: 'cosine' });
        await store.upsert(index, 'v1', makeRecords('a', deterministicVectors(4, 3)));
        await store.swapAlias(index, 'live', 'v1', null);
        await assert.rejects(store.dropVersion(index, 'v1'), isRejected(/live/));
        assert.equal(await store.count(index, 'v1'), 4);
        assert.deepEqual(
          (await store.listVersions(index)).map((v) => v.version),
          ['v1', 'v2'],
        );
        await store.swapAlias(index, 'live', 'v2', 'v1');
        await store.dropVersion(index, 'v1');
        assert.deepEqual(
          (await store.listVersions(index)).map((v) => v.version),
          ['v2'],
        );
      });
    });

    describe('records', function () {
      it('upsert then fetch round-trips vectors and metadata; count counts; absent ids are left out', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'dot' });
        const records = makeRecords('r', deterministicVectors(10, 4));
        records[0]!.metadata = { title: 'héllo wörld ✓', score: -2.5, flag: false, big: 123456789 };
        records[1]!.values = Array.from(records[1]!.values); // plain number[] too
        await store.upsert(index, 'v1', records);
        assert.equal(await store.count(index, 'v1'), 10);

        const fetched = await store.fetch(index, 'v1', ['r0', 'r1', 'r7', 'absent']);
        const byId = new Map(fetched.map((r) => [r.id, r]));
        assert.deepEqual([...byId.keys()].sort(), ['r0', 'r1', 'r7']);
        for (const id of ['r0', 'r1', 'r7']) {
          const want = records.find((r) => r.id === id)!;
          const got = byId.get(id)!;
          assert.equal(got.values.length, DIMS);
          for (let i = 0; i < DIMS; i++) close(got.values[i]!, want.values[i]!, `${id}[${i}]`);
          assert.deepEqual(got.metadata ?? {}, want.metadata);
        }
        assert.deepEqual(await store.fetch(index, 'v1', []), []);
      });

      it('a record without metadata reads back with empty metadata', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'dot' });
        const [values] = deterministicVectors(1, 5);
        await store.upsert(index, 'v1', [{ id: 'bare', values: values! }]);
        const [fetched] = await store.fetch(index, 'v1', ['bare']);
        assert.deepEqual(fetched?.metadata ?? {}, {});
        const [match] = await store.query(index, { version: 'v1' }, values!, { topK: 1 });
        assert.equal(match?.id, 'bare');
        assert.deepEqual(match.metadata, {});
      });

      it('upsert replaces a record with the same id (last write wins) and is safe to retry', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'euclidean' });
        const first = makeRecords('r', deterministicVectors(6, 6));
        await store.upsert(index, 'v1', first);
        await store.upsert(index, 'v1', first); // a retried batch
        assert.equal(await store.count(index, 'v1'), 6);

        const [replacement] = deterministicVectors(1, 7);
        await store.upsert(index, 'v1', [{ id: 'r2', values: replacement!, metadata: { version: 'second' } }]);
        assert.equal(await store.count(index, 'v1'), 6);
        const [got] = await store.fetch(index, 'v1', ['r2']);
        for (let i = 0; i < DIMS; i++) close(got!.values[i]!, replacement![i]!, `r2[${i}]`);
        assert.deepEqual(got!.metadata, { version: 'second' }, 'metadata is replaced, not merged');
        const [nearest] = await store.query(index, { version: 'v1' }, replacement!, { topK: 1 });
        assert.equal(nearest?.id, 'r2');
        close(nearest.score, 0, 'distance to itself');
      });

      it('a batch with a vector of the wrong width is refused before anything is written', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        const records = makeRecords('r', deterministicVectors(5, 8));
        records[3] = { id: 'r3', values: deterministicVectors(1, 9, DIMS + 1)[0]! };
        await assert.rejects(store.upsert(index, 'v1', records), isRejected(/r3[\s\S]*\b9\b|\b9\b[\s\S]*r3/));
        assert.equal(await store.count(index, 'v1'), 0);
        records[3] = { id: 'r3', values: [] };
        await assert.rejects(store.upsert(index, 'v1', records), isRejected(/r3/));
        assert.equal(await store.count(index, 'v1'), 0);
      });

      it('a batch with a non-finite value or an invalid id is refused before anything is written', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        const records = makeRecords('r', deterministicVectors(4, 10));
        const nan = Array.from(records[2]!.values);
        nan[1] = Number.NaN;
        await assert.rejects(store.upsert(index, 'v1', [records[0]!, { id: 'r2', values: nan }]), isRejected(/r2/));
        for (const id of ['', 'has space', "quote'id", 'x'.repeat(129)]) {
          await assert.rejects(store.upsert(index, 'v1', [records[0]!, { id, values: records[1]!.values }]), isRejected(), `id ${JSON.stringify(id)}`);
        }
        assert.equal(await store.count(index, 'v1'), 0);
      });

      it('upsert of an empty batch is a no-op; a large batch is written completely', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await store.upsert(index, 'v1', []);
        assert.equal(await store.count(index, 'v1'), 0);
        const records = makeRecords('bulk_', deterministicVectors(1_500, 11));
        await store.upsert(index, 'v1', records);
        assert.equal(await store.count(index, 'v1'), 1_500);
        const ids = records.map((r) => r.id);
        assert.equal((await store.existingIds(index, 'v1', ids)).size, 1_500);
      });

      it('delete removes the named records; absent ids and an empty list succeed', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        const records = makeRecords('r', deterministicVectors(8, 12));
        await store.upsert(index, 'v1', records);
        await store.delete(index, 'v1', ['r1', 'r5', 'absent']);
        assert.equal(await store.count(index, 'v1'), 6);
        await store.delete(index, 'v1', ['r1', 'r5']); // retried
        await store.delete(index, 'v1', []);
        assert.equal(await store.count(index, 'v1'), 6);
        assert.deepEqual(await store.fetch(index, 'v1', ['r1', 'r5']), []);
        const matches = await store.query(index, { version: 'v1' }, records[1]!.values, { topK: 8 });
        assert.deepEqual(matches.map((m) => m.id).sort(), ['r0', 'r2', 'r3', 'r4', 'r6', 'r7']);
      });

      it('existingIds reports which ids the version holds', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await store.createVersion(index, 'v2', { dimensions: DIMS, metric: 'cosine' });
        await store.upsert(index, 'v1', makeRecords('r', deterministicVectors(5, 13)));
        const held = await store.existingIds(index, 'v1', ['r0', 'r4', 'r9', 'other']);
        assert.deepEqual([...held].sort(), ['r0', 'r4']);
        assert.equal((await store.existingIds(index, 'v2', ['r0'])).size, 0, 'versions are separate');
        assert.equal((await store.existingIds(index, 'v1', [])).size, 0);
      });
    });

    describe('query', function () {
      for (const metric of ['cosine', 'dot', 'euclidean'] as const) {
        it(`${metric}: top-k best first with the port's score (larger = more similar)`, async function () {
          await store.createVersion(index, 'v1', { dimensions: DIMS, metric });
          const records = makeRecords('r', deterministicVectors(40, 20));
          await store.upsert(index, 'v1', records);
          for (const query of deterministicVectors(3, 21)) {
            const got = await store.query(index, { version: 'v1' }, query, { topK: 5 });
            assert.equal(got.length, 5);
            assertRanking(metric, got, bruteForce(metric, records, query, 5));
          }
          // The record itself is the best match, with the metric's best score.
          const self = records[7]!;
          const [best] = await store.query(index, { version: 'v1' }, Array.from(self.values), { topK: 1 });
          assert.equal(best?.id, 'r7');
          assert.deepEqual(best.metadata, self.metadata);
          if (metric === 'cosine') close(best.score, 1, 'cosine of itself');
          if (metric === 'euclidean') close(best.score, 0, 'distance to itself');
          // topK larger than the version: everything, once.
          const all = await store.query(index, { version: 'v1' }, self.values, { topK: 100 });
          assert.equal(all.length, 40);
          assert.equal(new Set(all.map((m) => m.id)).size, 40);
        });
      }

      it('a metadata filter: equality on strings, numbers and booleans, $in, and AND across fields', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        const records = makeRecords('r', deterministicVectors(30, 30));
        await store.upsert(index, 'v1', records);
        const [query] = deterministicVectors(1, 31);
        const cases: Array<[string, Parameters<VectorStore['query']>[3]['filter'], (m: Metadata) => boolean]> = [
          ['string equality', { parity: 'odd' }, (m) => m.parity === 'odd'],
          ['number equality', { n: 12 }, (m) => m.n === 12],
          ['boolean equality', { even: true }, (m) => m.even === true],
          ['$in on strings', { group: { $in: ['g0', 'g2'] } }, (m) => m.group === 'g0' || m.group === 'g2'],
          ['$in on numbers', { n: { $in: [3, 4, 29, 99] } }, (m) => [3, 4, 29].includes(m.n as number)],
          ['AND of two fields', { parity: 'even', group: 'g1' }, (m) => m.parity === 'even' && m.group === 'g1'],
          ['no match', { group: 'g7' }, () => false],
          ['a key no record has', { missing: 'x' }, () => false],
        ];
        for (const [what, filter, keep] of cases) {
          const eligible = records.filter((r) => keep(r.metadata!));
          const expected = bruteForce('cosine', eligible, query!, 4);
          const got = await store.query(index, { version: 'v1' }, query!, { topK: 4, filter });
          assert.deepEqual(
            got.map((m) => m.id),
            expected.map((m) => m.id),
            what,
          );
          for (const m of got) assert.ok(keep(m.metadata), `${what}: ${m.id} ${JSON.stringify(m.metadata)} should not match`);
        }
      });

      it('a filter key that is not a plain name is refused (no injection through keys)', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await store.upsert(index, 'v1', makeRecords('r', deterministicVectors(3, 32)));
        for (const key of ["n') or true --", 'a.b', 'a-b', '']) {
          await assert.rejects(store.query(index, { version: 'v1' }, deterministicVectors(1, 33)[0]!, { topK: 3, filter: { [key]: 'x' } }), isRejected(), `key ${JSON.stringify(key)}`);
        }
        // Values are data, whatever they contain.
        const got = await store.query(index, { version: 'v1' }, deterministicVectors(1, 33)[0]!, { topK: 3, filter: { parity: "even' OR '1'='1" } });
        assert.deepEqual(got, []);
      });

      it('a query vector of the wrong width is refused', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await store.upsert(index, 'v1', makeRecords('r', deterministicVectors(3, 34)));
        await assert.rejects(store.query(index, { version: 'v1' }, deterministicVectors(1, 35, DIMS - 1)[0]!, { topK: 3 }), isRejected());
      });
    });

    describe('aliases', function () {
      it('getAlias is null until the first swap (expected null); each move adds one to the generation', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await store.createVersion(index, 'v2', { dimensions: DIMS, metric: 'cosine' });
        assert.equal(await store.getAlias(index, 'live'), null);
        const first = await store.swapAlias(index, 'live', 'v1', null);
        assert.equal(first.alias, 'live');
        assert.equal(first.version, 'v1');
        assert.ok(Number.isFinite(Date.parse(first.movedAt)), `movedAt ${first.movedAt} should be an ISO time`);
        assert.deepEqual(await store.getAlias(index, 'live'), first);

        const second = await store.swapAlias(index, 'live', 'v2', 'v1');
        assert.equal(second.version, 'v2');
        assert.equal(second.generation, first.generation + 1);
        const third = await store.swapAlias(index, 'live', 'v1', 'v2');
        assert.equal(third.generation, first.generation + 2);
        assert.deepEqual(await store.getAlias(index, 'live'), third);
        // Aliases are per index and per name.
        assert.equal(await store.getAlias(index, 'staging'), null);
        assert.equal(await store.getAlias(`${index}x`, 'live'), null);
      });

      it('a swap whose expected version is stale is an AliasConflictError and changes nothing', async function () {
        for (const v of ['v1', 'v2', 'v3']) await store.createVersion(index, v, { dimensions: DIMS, metric: 'cosine' });
        await store.swapAlias(index, 'live', 'v1', null);
        const before = await store.getAlias(index, 'live');
        await assert.rejects(store.swapAlias(index, 'live', 'v3', 'v2'), isAliasConflict('v2', 'v1'));
        await assert.rejects(store.swapAlias(index, 'live', 'v3', null), isAliasConflict(null, 'v1'));
        assert.deepEqual(await store.getAlias(index, 'live'), before);
        await assert.rejects(store.swapAlias(index, 'unset', 'v3', 'v1'), isAliasConflict('v1', null));
        assert.equal(await store.getAlias(index, 'unset'), null);
      });

      it('moving the alias where it already points succeeds (a retried swap)', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await store.createVersion(index, 'v2', { dimensions: DIMS, metric: 'cosine' });
        await store.swapAlias(index, 'live', 'v1', null);
        const moved = await store.swapAlias(index, 'live', 'v2', 'v1');
        // The first attempt's answer was lost; the retry carries the same arguments.
        const retried = await store.swapAlias(index, 'live', 'v2', 'v1');
        assert.equal(retried.version, 'v2');
        assert.ok(retried.generation >= moved.generation);
        const again = await store.swapAlias(index, 'live', 'v2', 'v2');
        assert.equal(again.version, 'v2');
        assert.equal((await store.getAlias(index, 'live'))?.version, 'v2');
      });

      it('concurrent swaps from the same expected version: exactly one wins', async function () {
        for (const v of ['v0', 'v1', 'v2', 'v3', 'v4']) await store.createVersion(index, v, { dimensions: DIMS, metric: 'cosine' });
        await store.swapAlias(index, 'live', 'v0', null);
        const results = await Promise.allSettled(['v1', 'v2', 'v3', 'v4'].map((v) => store.swapAlias(index, 'live', v, 'v0')));
        const won = results.filter((r) => r.status === 'fulfilled');
        assert.equal(won.length, 1, `one swap should win: ${results.map((r) => r.status).join(', ')}`);
        for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof AliasConflictError, String(r.reason));
        assert.equal((await store.getAlias(index, 'live'))?.version, won[0]!.value.version);
      });

      it('a swap to a version that does not exist is refused', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        await assert.rejects(store.swapAlias(index, 'live', 'nope', null), isRejected(/nope/));
        assert.equal(await store.getAlias(index, 'live'), null);
      });

      it('queries by alias follow the swap', async function () {
        await store.createVersion(index, 'blue', { dimensions: DIMS, metric: 'cosine' });
        await store.createVersion(index, 'green', { dimensions: DIMS, metric: 'cosine' });
        const vectors = deterministicVectors(6, 40);
        await store.upsert(index, 'blue', makeRecords('blue_', vectors));
        await store.upsert(index, 'green', makeRecords('green_', vectors));
        await store.swapAlias(index, 'live', 'blue', null);
        const ids = async (): Promise<string[]> => (await store.query(index, { alias: 'live' }, vectors[0]!, { topK: 6 })).map((m) => m.id);
        assert.ok((await ids()).every((id) => id.startsWith('blue_')));
        await store.swapAlias(index, 'live', 'green', 'blue');
        const after = await ids();
        assert.equal(after.length, 6);
        assert.ok(after.every((id) => id.startsWith('green_')), after.join(','));
        assert.equal(after[0], 'green_0');
      });

      it('queries running during swaps each see exactly one version, and none fails', async function () {
        const vectors = deterministicVectors(20, 41);
        for (const v of ['blue', 'green']) {
          await store.createVersion(index, v, { dimensions: DIMS, metric: 'cosine' });
          await store.upsert(index, v, makeRecords(`${v}_`, vectors));
        }
        await store.swapAlias(index, 'live', 'blue', null);
        let swapping = true;
        const seen = { blue: 0, green: 0 };
        const failures: string[] = [];
        const reader = async (seed: number): Promise<void> => {
          const queries = deterministicVectors(5, seed);
          for (let i = 0; swapping || i < 3; i++) {
            try {
              const got = await store.query(index, { alias: 'live' }, queries[i % queries.length]!, { topK: 10 });
              const versions = new Set(got.map((m) => m.id.split('_')[0]));
              if (got.length !== 10 || versions.size !== 1) failures.push(`mixed or short: ${got.map((m) => m.id).join(',')}`);
              else seen[[...versions][0] as 'blue' | 'green']++;
            } catch (err) {
              failures.push(String(err));
            }
            // An in-process store (PGlite) answers in microtasks only: let timers and I/O run.
            await new Promise((resolve) => setImmediate(resolve));
          }
        };
        const readers = [1, 2, 3, 4].map((n) => reader(100 + n));
        let current = 'blue';
        // At least 8 swaps, and on until the readers have seen both versions (a loaded machine
        // can finish 8 swaps before a slow store answers one query), at most 200.
        for (let i = 0; i < 8 || ((seen.blue === 0 || seen.green === 0) && i < 200); i++) {
          const next = current === 'blue' ? 'green' : 'blue';
          await store.swapAlias(index, 'live', next, current);
          current = next;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        swapping = false;
        await Promise.all(readers);
        assert.deepEqual(failures, []);
        assert.ok(seen.blue > 0 && seen.green > 0, `queries should have seen both versions: ${JSON.stringify(seen)}`);
      });
    });

    describe('names', function () {
      const bad = ['Docs', '1docs', 'docs-v1', 'docs v1', '', 'a'.repeat(49), 'docs;drop'];

      it('VECTOR_NAME accepts what the suite uses and rejects the bad names', function () {
        for (const good of ['docs', 'v1', 'live', 'a'.repeat(48), 'docs_2026_12']) assert.match(good, VECTOR_NAME);
        for (const name of bad) assert.doesNotMatch(name, VECTOR_NAME);
      });

      it('index, version and alias names outside VECTOR_NAME are refused, naming the name', async function () {
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        for (const name of bad) {
          const named = name === '' ? undefined : new RegExp(name.replace(/[^a-z0-9]/gi, '.'));
          await assert.rejects(store.createVersion(name, 'v1', { dimensions: DIMS, metric: 'cosine' }), isRejected(named), `index ${JSON.stringify(name)}`);
          await assert.rejects(store.createVersion(index, name, { dimensions: DIMS, metric: 'cosine' }), isRejected(named), `version ${JSON.stringify(name)}`);
          await assert.rejects(store.swapAlias(index, name, 'v1', null), isRejected(named), `alias ${JSON.stringify(name)}`);
          await assert.rejects(store.query(index, { alias: name }, deterministicVectors(1, 50)[0]!, { topK: 1 }), isRejected(named), `query alias ${JSON.stringify(name)}`);
        }
        assert.deepEqual(
          (await store.listVersions(index)).map((v) => v.version),
          ['v1'],
        );
      });

      it('bad dimensions or topK are refused', async function () {
        for (const dimensions of [0, -1, 2.5, Number.NaN]) {
          await assert.rejects(store.createVersion(index, 'v1', { dimensions, metric: 'cosine' }), isRejected(), `dimensions ${dimensions}`);
        }
        await assert.rejects(store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'hamming' as Metric }), isRejected(/hamming/));
        await store.createVersion(index, 'v1', { dimensions: DIMS, metric: 'cosine' });
        for (const topK of [0, -1, 1.5]) {
          await assert.rejects(store.query(index, { version: 'v1' }, deterministicVectors(1, 51)[0]!, { topK }), isRejected(), `topK ${topK}`);
        }
      });
    });
  });
}
