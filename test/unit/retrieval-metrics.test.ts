import assert from 'node:assert/strict';
import { meanMrr, meanOverlapAtK, meanRecallAtK, overlapAtK, recallAtK, reciprocalRank } from '../../src/embeddings/retrieval-metrics';

describe('retrieval metrics', () => {
  it('recall@k counts the relevant ids in the top k distinct results', () => {
    assert.equal(recallAtK(['a', 'b', 'c'], ['a'], 1), 1);
    assert.equal(recallAtK(['b', 'a', 'c'], ['a'], 1), 0);
    assert.equal(recallAtK(['b', 'a', 'c'], ['a', 'c', 'z'], 3), 2 / 3);
    // Chunk-level results mapped to documents: repeats count once, at their best rank.
    assert.equal(recallAtK(['b', 'b', 'b', 'a'], ['a'], 2), 1);
    assert.equal(recallAtK([], ['a'], 5), 0);
  });

  it('MRR is the reciprocal rank of the first relevant id', () => {
    assert.equal(reciprocalRank(['a', 'b'], ['a']), 1);
    assert.equal(reciprocalRank(['x', 'x', 'y', 'a'], ['a', 'y']), 1 / 2);
    assert.equal(reciprocalRank(['x', 'y'], ['a']), 0);
    assert.equal(meanMrr([['a'], ['x', 'a'], ['x', 'y', 'z', 'a']], [['a'], ['a'], ['a']]), (1 + 1 / 2 + 1 / 4) / 3);
  });

  it('means over queries pair results and labels by position', () => {
    assert.equal(meanRecallAtK([['a', 'b'], ['c', 'd']], [['b'], ['x']], 2), 0.5);
    assert.ok(Number.isNaN(meanRecallAtK([], [], 5)));
    assert.throws(() => meanRecallAtK([['a']], [], 5), /1 result lists for 0 queries/);
    assert.throws(() => meanMrr([['a']], [['a'], ['b']]), /1 result lists for 2 queries/);
  });

  it('top-k overlap compares two versions in any order', () => {
    assert.equal(overlapAtK(['a', 'b', 'c'], ['c', 'b', 'a'], 3), 1);
    assert.equal(overlapAtK(['a', 'b', 'c', 'd'], ['a', 'x', 'b', 'y'], 4), 0.5);
    assert.equal(overlapAtK(['a', 'b', 'c'], ['a', 'x', 'b'], 2), 0.5);
    assert.equal(overlapAtK(['a'], ['a'], 10), 1, 'identical short lists overlap fully');
    assert.equal(overlapAtK(['a', 'b'], ['a'], 10), 0.5);
    assert.equal(overlapAtK([], [], 10), 1);
    assert.equal(meanOverlapAtK([['a', 'b'], ['c']], [['b', 'a'], ['d']], 2), 0.5);
  });

  it('refuses a bad k and a query without relevant ids', () => {
    assert.throws(() => recallAtK(['a'], ['a'], 0), /k: expected a whole number >= 1, got 0/);
    assert.throws(() => overlapAtK(['a'], ['a'], 1.5), /k: expected a whole number >= 1/);
    assert.throws(() => recallAtK(['a'], [], 3), /no relevant ids; label at least one/);
  });
});
