/**
 * Vector stores: versioned indexes of embeddings with an alias that queries follow. An index (a
 * corpus, e.g. `docs`) has versions (one per re-embed, e.g. `v20261202t2200`), each a namespace
 * or table of its own; the alias (e.g. `live`) points at one version and moves by compare-and-swap,
 * so a query sees the old version until the swap and the new one after it, never a mix.
 *
 * Adapters: pgvector on PGlite (embedded default) and on PostgreSQL (`pg`), Pinecone (namespaces),
 * Qdrant, Weaviate and Milvus. Stores without native aliases (Pinecone, pgvector) keep the alias as
 * our own atomic pointer record; stores with them (Qdrant, Weaviate, Milvus) use theirs.
 *
 * Rules every adapter keeps (the conformance suite, test/integration/vector-store.conformance.ts,
 * checks each one):
 * - `createVersion` is idempotent for the same dimensions and metric; a different width or metric
 *   for an existing version is a VectorStoreRejectedError (terminal) naming both.
 * - `upsert` replaces records with the same id (last write wins) and is safe to retry; vectors of
 *   the wrong width are refused before anything is written.
 * - `delete` and `dropVersion` of what does not exist succeed (retries and retirement call them).
 * - `query` returns at most `topK` matches, best first, `score` larger = more similar (cosine
 *   similarity for `cosine`, inner product for `dot`, negative L2 distance for `euclidean`).
 * - `swapAlias` moves the alias only if it still points where the caller read it (`expected`,
 *   null = not set yet); otherwise AliasConflictError and nothing changed. Moving to the version it
 *   already points at succeeds (idempotent retry).
 * - `dropVersion` of the version an alias points at is refused (VectorStoreRejectedError).
 */
import { ErrorType } from '../contracts/errors';
import { ForgelineError } from './errors';

export type Metric = 'cosine' | 'dot' | 'euclidean';

/** Metadata values a filter can match; stored with each record. */
export type MetadataValue = string | number | boolean;
export type Metadata = Record<string, MetadataValue>;

/**
 * Equality on each named field, all must hold (AND); `{ $in: [...] }` matches any of the values.
 * Keys: letters, digits and `_` (they become column or payload keys in the stores).
 */
export type MetadataFilter = Record<string, MetadataValue | { $in: MetadataValue[] }>;

export interface VectorRecord {
  /** Stable id, e.g. a chunk's content hash: 1–128 characters of [A-Za-z0-9_:.-]. */
  id: string;
  values: Float32Array | number[];
  metadata?: Metadata;
}

export interface QueryMatch {
  id: string;
  score: number;
  metadata: Metadata;
}

export interface VersionSpec {
  dimensions: number;
  metric: Metric;
  /**
   * The caller fills the version, then calls `sealVersion`: a store that builds its search index
   * faster once over all rows (pgvector on PostgreSQL: HNSW) may then build it at the seal
   * instead of row by row. Queries work before the seal, only slower. Not stored.
   */
  deferIndex?: boolean;
}

export interface VersionInfo extends VersionSpec {
  version: string;
}

/** Where an alias points, with a generation that grows by one at every move. */
export interface AliasRecord {
  alias: string;
  version: string;
  generation: number;
  movedAt: string;
}

/** A query's target: one version, or whatever an alias points at when the query runs. */
export type QueryTarget = { version: string } | { alias: string };

export interface QueryOptions {
  topK: number;
  filter?: MetadataFilter;
}

export interface VectorStore {
  /** Short label for logs and errors, e.g. `pglite:/home/me/.forgeline/vectors`. */
  readonly label: string;
  /**
   * `eventual` (Pinecone serverless): a count or query right after an upsert may not see it yet,
   * so checks that compare counts wait for them to settle. Absent: read-after-write (`strong`).
   */
  readonly consistency?: 'strong' | 'eventual';
  createVersion(index: string, version: string, spec: VersionSpec): Promise<void>;
  /** Versions of an index, oldest first (by name). */
  listVersions(index: string): Promise<VersionInfo[]>;
  dropVersion(index: string, version: string): Promise<void>;
  upsert(index: string, version: string, records: readonly VectorRecord[]): Promise<void>;
  /**
   * The version is filled: build what a store builds best once (see `VersionSpec.deferIndex`).
   * Idempotent, and a no-op for stores that index as they go. Optional: absent means a no-op.
   */
  sealVersion?(index: string, version: string): Promise<void>;
  delete(index: string, version: string, ids: readonly string[]): Promise<void>;
  /** The records of `ids` the version holds, with their vectors (absent ids are left out). */
  fetch(index: string, version: string, ids: readonly string[]): Promise<VectorRecord[]>;
  /** Which of `ids` the version holds (for skipping unchanged chunks on a re-run). */
  existingIds(index: string, version: string, ids: readonly string[]): Promise<Set<string>>;
  count(index: string, version: string): Promise<number>;
  query(index: string, target: QueryTarget, vector: Float32Array | number[], options: QueryOptions): Promise<QueryMatch[]>;
  getAlias(index: string, alias: string): Promise<AliasRecord | null>;
  /** Points `alias` at `version` if it still points at `expected` (null: unset). */
  swapAlias(index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord>;
  /** Releases connections; the store is unusable after. */
  close(): Promise<void>;
}

/** Names of indexes, versions and aliases: they become table, namespace or collection names. */
export const VECTOR_NAME = /^[a-z][a-z0-9_]{0,47}$/;

/** What retrying cannot fix; the message names the store, the index/version and the fix. */
export class VectorStoreRejectedError extends ForgelineError {
  constructor(readonly store: string, message: string) {
    super(ErrorType.VectorStoreRejected, `${store}: ${message}`, true);
  }
}

export class AliasConflictError extends ForgelineError {
  constructor(
    readonly store: string,
    readonly index: string,
    readonly alias: string,
    readonly expected: string | null,
    readonly actual: string | null,
  ) {
    super(
      ErrorType.AliasConflict,
      `${store}: alias ${index}/${alias} points at ${actual ?? '(nothing)'}, not ${expected ?? '(nothing)'}: someone moved it meanwhile; read it again and retry the swap if still wanted`,
      true,
    );
  }
}

/**
 * Compare-and-swap pointer records for stores without native aliases (pgvector, Pinecone): one
 * row per (store, index, alias), moved with the same rules as `VectorStore.swapAlias`. The SQL
 * implementation (a table in PGlite or PostgreSQL) is the default; `store` scopes the records so
 * several stores can share one registry (e.g. `pinecone:my-project/docs`).
 */
export interface AliasRegistry {
  get(store: string, index: string, alias: string): Promise<AliasRecord | null>;
  /** Moves the alias if it still points at `expected` (null: unset); AliasConflictError otherwise. */
  swap(store: string, index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord>;
  /** Aliases of an index that point at `version` (dropVersion refuses while there are any). */
  pointingAt(store: string, index: string, version: string): Promise<string[]>;
  close(): Promise<void>;
}
