import assert from 'node:assert/strict';
import { batches, checkFilter, checkRecords, forEachLimit, withRetries, type Verdict } from '../../src/adapters/vector-store-common';
import { VectorStoreRejectedError } from '../../src/ports/vector-store';

describe('vector-store-common (shared checks of the remote vector stores)', function () {
  describe('batches', function () {
    it('keeps each batch under the count and the byte budget, in order', function () {
      const sizes = [5, 5, 5, 12, 1, 1, 1, 1];
      const out = batches(sizes, 3, 11, (n) => n);
      assert.deepEqual(out, [[5, 5], [5], [12], [1, 1, 1], [1]]);
      assert.deepEqual(out.flat(), sizes);
    });

    it('an item larger than the budget travels alone (the service then names the problem)', function () {
      assert.deepEqual(batches([50], 10, 10, (n) => n), [[50]]);
      assert.deepEqual(batches([], 10, 10, (n: number) => n), []);
    });
  });

  describe('forEachLimit', function () {
    it('never runs more than the limit at once and visits every item', async function () {
      let running = 0;
      let peak = 0;
      const seen: number[] = [];
      await forEachLimit([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setTimeout(resolve, 2));
        seen.push(n);
        running--;
      });
      assert.equal(peak, 3);
      assert.deepEqual(seen.sort(), [1, 2, 3, 4, 5, 6, 7]);
    });

    it('rejects with the first failure and starts nothing new after it', async function () {
      const started: number[] = [];
      await assert.rejects(
        forEachLimit([1, 2, 3, 4, 5], 1, async (n) => {
          started.push(n);
          if (n === 2) throw new Error('boom 2');
          await Promise.resolve();
        }),
        /boom 2/,
      );
      assert.deepEqual(started, [1, 2]);
    });
  });

  describe('withRetries', function () {
    const retryable = (): Verdict => ({ retry: true });

    it('retries transient failures, then returns the result', async function () {
      let calls = 0;
      const result = await withRetries('s', 'op', { attempts: 4, baseDelayMs: 1 }, retryable, async () => {
        calls++;
        if (calls < 3) throw new Error('503');
        return Promise.resolve('ok');
      });
      assert.equal(result, 'ok');
      assert.equal(calls, 3);
    });

    it('stops at once on a terminal verdict, throwing its error', async function () {
      let calls = 0;
      const terminal = new VectorStoreRejectedError('s', 'bad field');
      await assert.rejects(
        withRetries('s', 'op', { attempts: 4, baseDelayMs: 1 }, () => ({ retry: false, error: terminal }), () => {
          calls++;
          return Promise.reject(new Error('400'));
        }),
        (err: unknown) => err === terminal,
      );
      assert.equal(calls, 1);
    });

    it('after the last attempt throws a plain (retryable) error naming the operation and the cause', async function () {
      await assert.rejects(
        withRetries('store-x', 'upsert 5 vectors', { attempts: 2, baseDelayMs: 1 }, retryable, () => Promise.reject(new Error('503 unavailable'))),
        (err: unknown) => {
          assert.ok(err instanceof Error && !(err instanceof VectorStoreRejectedError));
          assert.match(err.message, /store-x: upsert 5 vectors still failing after 2 attempts \(transient\): 503 unavailable/);
          return true;
        },
      );
    });
  });

  describe('checks', function () {
    it('checkRecords refuses duplicate ids in one batch and copies metadata', function () {
      const meta = { a: 1 };
      const [r] = checkRecords('s', 'i/v', [{ id: 'x', values: new Float32Array([1, 2]), metadata: meta }], 2);
      assert.deepEqual(r, { id: 'x', values: [1, 2], metadata: { a: 1 } });
      assert.notEqual(r!.metadata, meta);
      assert.throws(() => checkRecords('s', 'i/v', [{ id: 'x', values: [1, 2] }, { id: 'x', values: [3, 4] }], 2), /appears twice/);
      assert.throws(() => checkRecords('s', 'i/v', [{ id: 'x', values: [1, 2], metadata: { k: null as unknown as string } }], 2), /metadata k/);
    });

    it('checkFilter normalizes values and $in, and refuses other operators', function () {
      assert.deepEqual(checkFilter('s', 'q', { a: 'x', b: { $in: [1, 2] } }), [
        ['a', ['x']],
        ['b', [1, 2]],
      ]);
      assert.throws(() => checkFilter('s', 'q', { a: { $gt: 1 } as unknown as { $in: number[] } }), VectorStoreRejectedError);
      assert.throws(() => checkFilter('s', 'q', { a: { $in: [] } }), /one or more/);
    });
  });
});
