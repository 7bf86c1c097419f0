import { Context } from '@temporalio/activity';
import { ErrorType } from '../../src/contracts/errors';
import { manifestKeys } from '../../src/contracts/reembed-spec';
import type { ArtifactStore } from '../../src/ports/artifact-store';
import type { EmbeddingTokenizer } from '../../src/embeddings/tokenizer';
import type { Embedder } from '../../src/ports/embedder';
import { ForgelineError } from '../../src/ports/errors';
import type { VectorStore } from '../../src/ports/vector-store';
import type { ActivityDeps } from '../deps';

/** One chunk as the manifest holds it (a JSON line of a slice file). */
export interface ManifestChunk {
  id: string;
  text: string;
  document: string;
  section: string;
  /** Character offset of the chunk in its document's text. */
  offset: number;
  tokens: number;
}

/** A labelled query: the documents a good retrieval returns for it. */
export interface LabelledQuery {
  query: string;
  relevant: string[];
}

/** Ids per VectorStore call (fetch, existingIds): small enough for every store's request limits. */
export const ID_BATCH = 500;

/** The vector store this worker was configured with; a worker without one cannot run a re-embed. */
export function requireStore(deps: ActivityDeps): VectorStore {
  if (!deps.vectors) throw new ForgelineError(ErrorType.InvalidConfig, 'this worker has no vector store: re-embeds run on the control worker, which opens FORGELINE_VECTOR_STORE (default: the embedded PGlite store)', true);
  return deps.vectors;
}

/** The embedder of this worker (the pool's workers keep a long-lived one); refuses another model. */
export function requireEmbedder(deps: ActivityDeps, model: string): Embedder {
  const e = deps.embedder;
  if (!e) throw new ForgelineError(ErrorType.InvalidConfig, `this worker (${deps.workerIdentity}) has no embedder: embedding runs on gpu-<pool> workers`, true);
  if (e.model !== model) throw new ForgelineError(ErrorType.InvalidSpec, `embedding.model: ${model} is not served by this worker, which has ${e.model}`, true);
  return e;
}

/** The tokenizer chunks are cut with: the embedding model's own. */
export function requireTokenizer(deps: ActivityDeps, model: string): EmbeddingTokenizer {
  const t = deps.tokenizer;
  if (!t) throw new ForgelineError(ErrorType.InvalidConfig, `this worker (${deps.workerIdentity}) has no tokenizer: chunking runs on the control worker`, true);
  if (t.model !== model) throw new ForgelineError(ErrorType.InvalidSpec, `embedding.model: ${model} has no tokenizer on this worker, which has ${t.model}'s`, true);
  return t;
}

export async function readSlice(artifacts: ArtifactStore, prefix: string, slice: number): Promise<ManifestChunk[]> {
  const text = (await artifacts.getBytes(manifestKeys.slice(prefix, slice))).toString('utf8');
  return text
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l) as ManifestChunk);
}

export async function readJson<T>(artifacts: ArtifactStore, key: string): Promise<T> {
  return JSON.parse((await artifacts.getBytes(key)).toString('utf8')) as T;
}

export function chunked<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Map with at most `limit` calls in flight; results in input order; the first failure rejects. */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  });
  await Promise.all(lanes);
  return results;
}

/** Run `fn` while heartbeating `details()` every few seconds (and when `beat` is called). */
export async function withHeartbeat<T>(details: () => unknown, fn: (beat: () => void) => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const beat = () => ctx.heartbeat(details());
  beat();
  const ticker = setInterval(beat, 3_000);
  try {
    return await fn(beat);
  } finally {
    clearInterval(ticker);
  }
}
