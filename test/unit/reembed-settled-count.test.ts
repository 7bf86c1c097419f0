import assert from 'node:assert/strict';
import { settledCount } from '../../activities/reembed/validate-index';
import type { VectorStore } from '../../src/ports/vector-store';

/** A store whose count answers from a list, one value per call (the last one repeats). */
function countingStore(consistency: VectorStore['consistency'], counts: number[]): VectorStore & { calls: number } {
  const store = {
    label: 'test',
    consistency,
    calls: 0,
    async count() {
      return counts[Math.min(store.calls++, counts.length - 1)];
    },
  };
  return store as unknown as VectorStore & { calls: number };
}

describe('reembed validation: settledCount', function () {
  it('waits for an eventually consistent store to reach the written count', async function () {
    const store = countingStore('eventual', [3, 7, 10]);
    assert.equal(await settledCount(store, 'docs', 'v1', 10, 10_000), 10);
    assert.equal(store.calls, 3);
  });

  it('reports the lagging count after the settle time, so the gate names the mismatch', async function () {
    const store = countingStore('eventual', [3]);
    assert.equal(await settledCount(store, 'docs', 'v1', 10, 0), 3);
  });

  it('reads a read-after-write store once, even when the count is short', async function () {
    const store = countingStore(undefined, [3, 10]);
    assert.equal(await settledCount(store, 'docs', 'v1', 10, 10_000), 3);
    assert.equal(store.calls, 1);
  });
});
