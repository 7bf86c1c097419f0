/**
 * Retrieval quality figures for validating an index version: recall@k and MRR of labelled
 * queries, and the overlap of two versions' top-k results.
 *
 * A result list is the ranked ids a query returned (best first). Ids repeated in a list (several
 * chunks of one document) count once, at their best rank: callers may pass chunk-level results
 * mapped to document ids without deduplicating them first. Pure functions, no I/O.
 */

/** `ranked` without repeats, first occurrence kept (its best rank). */
function distinct(ranked: readonly string[]): string[] {
  return [...new Set(ranked)];
}

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k: expected a whole number >= 1, got ${k}`);
}

function checkPaired(a: readonly unknown[], b: readonly unknown[], what: string): void {
  if (a.length !== b.length) throw new RangeError(`${what}: ${a.length} result lists for ${b.length} queries; pass one per query, in the same order`);
}

const mean = (xs: number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

/**
 * Share of the relevant ids found in the first k distinct results: |top-k ∩ relevant| / |relevant|
 * (1 when every relevant id is in the top k). A query with no relevant ids is an error: it has no
 * recall to measure.
 */
export function recallAtK(ranked: readonly string[], relevant: readonly string[], k: number): number {
  checkK(k);
  const want = new Set(relevant);
  if (want.size === 0) throw new RangeError('recallAtK: the query has no relevant ids; label at least one');
  let hits = 0;
  for (const id of distinct(ranked).slice(0, k)) if (want.has(id)) hits++;
  return hits / want.size;
}

/** Reciprocal rank of the first relevant id among the distinct results (1 for rank 1, 1/2 for rank 2, ...); 0 when none is returned. */
export function reciprocalRank(ranked: readonly string[], relevant: readonly string[]): number {
  const want = new Set(relevant);
  if (want.size === 0) throw new RangeError('reciprocalRank: the query has no relevant ids; label at least one');
  const at = distinct(ranked).findIndex((id) => want.has(id));
  return at < 0 ? 0 : 1 / (at + 1);
}

/**
 * Overlap of two result lists' top k: |top-k(a) ∩ top-k(b)| / k, 1 when both return the same k
 * ids in any order. When a list has fewer than k distinct ids (a small index), the denominator is
 * the larger of the two lists' sizes, so two identical short lists still overlap fully; two empty
 * lists overlap fully (1).
 */
export function overlapAtK(a: readonly string[], b: readonly string[], k: number): number {
  checkK(k);
  const topA = distinct(a).slice(0, k);
  const topB = new Set(distinct(b).slice(0, k));
  const size = Math.max(topA.length, topB.size);
  if (size === 0) return 1;
  let both = 0;
  for (const id of topA) if (topB.has(id)) both++;
  return both / size;
}

/** Mean recall@k over queries: `results[i]` answers the query whose relevant ids are `relevant[i]`. NaN for no queries. */
export function meanRecallAtK(results: readonly (readonly string[])[], relevant: readonly (readonly string[])[], k: number): number {
  checkPaired(results, relevant, 'meanRecallAtK');
  return mean(results.map((r, i) => recallAtK(r, relevant[i]!, k)));
}

/** Mean reciprocal rank over queries. NaN for no queries. */
export function meanMrr(results: readonly (readonly string[])[], relevant: readonly (readonly string[])[]): number {
  checkPaired(results, relevant, 'meanMrr');
  return mean(results.map((r, i) => reciprocalRank(r, relevant[i]!)));
}

/** Mean top-k overlap between two versions' results for the same queries, in the same order. NaN for no queries. */
export function meanOverlapAtK(a: readonly (readonly string[])[], b: readonly (readonly string[])[], k: number): number {
  checkPaired(a, b, 'meanOverlapAtK');
  return mean(a.map((r, i) => overlapAtK(r, b[i]!, k)));
}
