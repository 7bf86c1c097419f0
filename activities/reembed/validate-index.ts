import { ErrorType } from '../../src/contracts/errors';
import { gateFailures, manifestKeys, type ChunkManifestRef, type PreparedVersion, type ReembedSpec, type ValidationReport } from '../../src/contracts/reembed-spec';
import { parseNpy } from '../../src/drift/npy';
import { meanMrr, meanOverlapAtK, meanRecallAtK } from '../../src/embeddings/retrieval-metrics';
import { ForgelineError } from '../../src/ports/errors';
import type { QueryTarget, VectorStore } from '../../src/ports/vector-store';
import type { ActivityDeps } from '../deps';
import { asActivityFailure } from '../errors';
import { readJson, requireStore, withHeartbeat, type LabelledQuery } from './common';

/** Chunks fetched per query to find `k` distinct documents (several chunks of one document rank together). */
const CHUNKS_PER_DOCUMENT = 4;

/** The first `k` distinct documents of a query's best chunks, best first. */
export async function topDocuments(store: VectorStore, index: string, target: QueryTarget, vector: Float32Array, k: number): Promise<string[]> {
  const matches = await store.query(index, target, vector, { topK: k * CHUNKS_PER_DOCUMENT });
  const docs: string[] = [];
  for (const m of matches) {
    const d = String(m.metadata.document);
    if (!docs.includes(d)) docs.push(d);
    if (docs.length === k) break;
  }
  return docs;
}

/** How long an eventually consistent store's count may take to reach what was written. */
const SETTLE_MS = 60_000;
const SETTLE_POLL_MS = 1_000;

/**
 * The version's count; on an eventually consistent store (Pinecone), read again until it reaches
 * `expected` or SETTLE_MS passes, so a lagging replica is not reported as missing chunks.
 */
export async function settledCount(store: VectorStore, index: string, version: string, expected: number, settleMs = SETTLE_MS): Promise<number> {
  const deadline = Date.now() + settleMs;
  let count = await store.count(index, version);
  while (store.consistency === 'eventual' && count < expected && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, SETTLE_POLL_MS));
    count = await store.count(index, version);
  }
  return count;
}

export function createValidateIndexActivities(deps: ActivityDeps) {
  const { artifacts } = deps;
  return {
    /**
     * Control queue: check the new version before the alias moves. Its count must equal the
     * manifest's chunks; the labelled queries (embedded by embedQueries) give recall@k and MRR
     * of their relevant documents, and overlap@k of the top documents with the previous version.
     * Returns the report with `passed`; the workflow refuses the swap when it failed.
     */
    async validateIndexVersion(input: { spec: ReembedSpec; manifest: ChunkManifestRef; prepared: PreparedVersion }): Promise<ValidationReport> {
      return asActivityFailure(async () => {
        const store = requireStore(deps);
        const { spec, manifest, prepared } = input;
        const { index } = spec.store;
        const { k } = spec.validation;
        const count = await settledCount(store, index, prepared.version, manifest.chunks);
        const base = { expectedCount: manifest.chunks, count, queries: manifest.queries, k };
        let figures: Pick<ValidationReport, 'recallAtK' | 'mrr' | 'overlapAtK'> = {};
        if (manifest.queries > 0) {
          const queries = await readJson<LabelledQuery[]>(artifacts, manifestKeys.queries(manifest.prefix));
          const vectors = parseNpy(await artifacts.getBytes(manifestKeys.queryVectors(manifest.prefix)), 'query vectors');
          if (vectors.rows !== queries.length || vectors.cols !== prepared.dimensions) {
            throw new ForgelineError(ErrorType.RecipeContract, `query vectors are ${vectors.rows} × ${vectors.cols}; expected ${queries.length} × ${prepared.dimensions}`, true);
          }
          const fresh: string[][] = [];
          const old: string[][] = [];
          const compare = prepared.previous?.compatible ? prepared.previous.version : undefined;
          await withHeartbeat(() => ({ queried: fresh.length, of: queries.length }), async () => {
            for (let i = 0; i < queries.length; i++) {
              const v = vectors.data.subarray(i * vectors.cols, (i + 1) * vectors.cols);
              fresh.push(await topDocuments(store, index, { version: prepared.version }, v, k));
              if (compare) old.push(await topDocuments(store, index, { version: compare }, v, k));
            }
          });
          const relevant = queries.map((q) => q.relevant);
          figures = {
            recallAtK: meanRecallAtK(fresh, relevant, k),
            mrr: meanMrr(fresh, relevant),
            ...(compare ? { overlapAtK: meanOverlapAtK(fresh, old, k) } : {}),
          };
        }
        const failures = gateFailures(spec.validation, { ...base, ...figures });
        return { ...base, ...figures, passed: failures.length === 0, failures };
      });
    },
  };
}
