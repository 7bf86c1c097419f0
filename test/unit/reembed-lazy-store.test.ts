import assert from 'node:assert/strict';
import { LazyVectorStore } from '../../src/adapters/lazy-vector-store';
import type { VectorStore } from '../../src/ports/vector-store';

describe('LazyVectorStore (the workers open the vector store on first use)', function () {
  it('opens once on first use, retries a failed open, takes the label of the opened store, closes what it opened', async function () {
    let opens = 0;
    let closed = 0;
    let fail = true;
    const real = {
      label: 'pgvector:pglite:/x',
      count: async () => 7,
      close: async () => void closed++,
    } as unknown as VectorStore;
    const lazy = new LazyVectorStore('pglite', async () => {
      opens++;
      if (fail) throw new Error('directory held by another process');
      return real;
    });
    assert.equal(lazy.label, 'pglite');
    assert.equal(opens, 0, 'nothing opened before the first call');
    await assert.rejects(lazy.count('docs', 'v1'), /held by another process/);
    fail = false;
    const [a, b] = await Promise.all([lazy.count('docs', 'v1'), lazy.count('docs', 'v2')]);
    assert.deepEqual([a, b], [7, 7]);
    assert.equal(opens, 2, 'the failed open was retried once, and the concurrent calls shared one open');
    assert.equal(lazy.label, 'pgvector:pglite:/x');
    await lazy.close();
    assert.equal(closed, 1);
    await new LazyVectorStore('never', async () => real).close();
    assert.equal(closed, 1, 'a store never opened is not opened to be closed');
  });
});
