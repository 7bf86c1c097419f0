/**
 * VectorStore on Qdrant through `@qdrant/js-client-rest` 1.18 (REST).
 *
 * Layout: each version is a collection `<index>__<version>` with one unnamed dense vector (HNSW,
 * distance Cosine / Dot / Euclid); its width and metric are read back from the collection's
 * config, so the catalog is Qdrant's own collection list. To keep `<index>__` an unambiguous
 * prefix, index names may not contain `__` nor end with `_` here.
 *
 * Alias: Qdrant's native alias `<index>__<alias>`, moved with ONE `POST /collections/aliases`
 * request holding delete_alias + create_alias, which Qdrant applies atomically: a query through the
 * alias (Qdrant resolves it server-side) sees the old collection or the new one, never a mix.
 * Qdrant has no conditional alias update, so the compare-and-swap is ours: a swap reads the alias
 * and its generation N (kept in the target collection's metadata, `forgeline_alias_<alias>`),
 * refuses when it points elsewhere, then CLAIMS generation N+1 by creating the marker collection
 * `<index>-alias-<alias>-g<N+1>` (collection creation is atomic in Qdrant: exactly one client gets
 * it, others get 409) with the target in its metadata, and only the winner moves the alias. A
 * loser finishes the winner's move if it is still pending (a winner that died after its claim
 * cannot leave the alias behind) and reports AliasConflictError. Remaining window: a finisher that
 * read the alias just before a newer swap completed could move it back to the claimed version;
 * that needs two swaps of one alias within one request's time, so run one re-embed per index at a
 * time (the workflow does). The previous generation's marker is dropped after each move; one
 * marker per alias stays.
 *
 * Ids: Qdrant takes only unsigned integers or UUIDs as point ids, so a record id maps to a UUID v5
 * (SHA-1 of the id in a fixed namespace) and the id itself is kept in the payload
 * (`{ id, meta: {...metadata}, norm? }`); filters address `meta.<key>`.
 *
 * Cosine: Qdrant normalizes vectors on upsert, so the payload keeps the original length (`norm`)
 * and `fetch` scales the stored unit vector back.
 *
 * Scores: Cosine and Dot come back as similarities; Euclid as the L2 distance, which becomes the
 * port's negative distance.
 */
import { createHash } from 'node:crypto';
import type { QdrantClient as QdrantClientType } from '@qdrant/js-client-rest' with { 'resolution-mode': 'import' };
import {
  AliasConflictError,
  VECTOR_NAME,
  VectorStoreRejectedError,
  type AliasRecord,
  type Metadata,
  type MetadataValue,
  type Metric,
  type QueryMatch,
  type QueryOptions,
  type QueryTarget,
  type VectorRecord,
  type VectorStore,
  type VersionInfo,
  type VersionSpec,
} from '../ports/vector-store';
import {
  batches,
  checkFilter,
  checkIds,
  checkName,
  checkRecords,
  checkSpec,
  checkTopK,
  checkVector,
  chunk,
  forEachLimit,
  negativeDistance,
  withRetries,
  type RetryPolicy,
  type Verdict,
} from './vector-store-common';

export interface QdrantVectorStoreOptions {
  /** e.g. http://127.0.0.1:6333 or https://xyz.cloud.qdrant.io:6333 */
  url: string;
  apiKey?: string;
  /** HNSW build settings for new collections. Default m 16, ef_construct 100 (Qdrant's). */
  hnsw?: { m: number; efConstruct: number };
  /** Upsert batches in flight at once. Default 4. */
  concurrency?: number;
  retry?: Partial<RetryPolicy>;
  /** Per-request timeout, ms. Default 60 s. */
  timeoutMs?: number;
}

// The package is ESM-typed but ships a CommonJS build (its "require" export), which this loads.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { QdrantClient } = require('@qdrant/js-client-rest') as { QdrantClient: typeof QdrantClientType };

export const QDRANT_LIMITS = {
  /** Points per upsert request, and JSON bytes (Qdrant's default max request is 32 MB). */
  upsertPoints: 500,
  upsertBytes: 16 * 1024 * 1024,
  ids: 1000,
  topK: 10_000,
} as const;

const DISTANCE: Record<Metric, 'Cosine' | 'Dot' | 'Euclid'> = { cosine: 'Cosine', dot: 'Dot', euclidean: 'Euclid' };
/** Fixed UUID namespace for our point ids (a random v4, chosen once). */
const ID_NAMESPACE = Buffer.from('6f1d3a52c1e84f0e9d7b2a4c8e5f1b03', 'hex');
const ALIAS_META = 'forgeline_alias_';
const CLAIM_META = 'forgeline_claim';

interface Claim {
  version: string;
  generation: number;
  moved_at: string;
}

/** The marker collection whose creation claims generation `generation` of an alias ('-' never occurs in our names). */
export function claimName(index: string, alias: string, generation: number): string {
  return `${index}-alias-${alias}-g${generation}`;
}

/** The UUID (v5, SHA-1 in our namespace) Qdrant stores for a record id. */
export function qdrantPointId(id: string): string {
  const hash = createHash('sha1').update(ID_NAMESPACE).update(id, 'utf8').digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function collectionName(index: string, version: string): string {
  return `${index}__${version}`;
}

type QdrantCondition = Record<string, unknown>;

/** Our filter as a Qdrant filter on `meta.<key>`: match value / match any, ranges for non-integers. */
export function qdrantFilter(conditions: Array<[string, MetadataValue[]]>): { must: QdrantCondition[] } | undefined {
  if (conditions.length === 0) return undefined;
  const one = (key: string, value: MetadataValue): QdrantCondition =>
    typeof value === 'number' && !Number.isInteger(value) ? { key, range: { gte: value, lte: value } } : { key, match: { value } };
  return {
    must: conditions.map(([field, values]) => {
      const key = `meta.${field}`;
      if (values.length === 1) return one(key, values[0]!);
      if (values.every((v) => typeof v === 'string') || values.every((v) => typeof v === 'number' && Number.isInteger(v))) {
        return { key, match: { any: values } };
      }
      return { should: values.map((v) => one(key, v)) };
    }),
  };
}

interface Payload {
  id: string;
  meta: Metadata;
  norm?: number;
}

export class QdrantVectorStore implements VectorStore {
  readonly label: string;
  private readonly client: QdrantClientType;
  private readonly policy: RetryPolicy;
  private readonly specs = new Map<string, VersionSpec>();
  private closed = false;

  constructor(private readonly options: QdrantVectorStoreOptions) {
    const url = new URL(options.url);
    this.label = `qdrant:${url.host}`;
    this.client = new QdrantClient({
      url: options.url,
      ...(options.apiKey ? { apiKey: options.apiKey } : {}),
      timeout: options.timeoutMs ?? 60_000,
      checkCompatibility: false,
    });
    this.policy = { attempts: options.retry?.attempts ?? 5, baseDelayMs: options.retry?.baseDelayMs ?? 250 };
  }

  async createVersion(index: string, version: string, spec: VersionSpec): Promise<void> {
    this.checkOpen();
    this.checkIndex(index);
    checkName(this.label, 'version', version);
    checkSpec(this.label, index, version, spec);
    const name = collectionName(index, version);
    const existing = await this.describe(name);
    if (!existing) {
      const created = await this.call(`create collection ${name}`, async () => {
        try {
          return await this.client.createCollection(name, {
            vectors: { size: spec.dimensions, distance: DISTANCE[spec.metric] },
            hnsw_config: { m: this.options.hnsw?.m ?? 16, ef_construct: this.options.hnsw?.efConstruct ?? 100 },
          });
        } catch (error) {
          if (alreadyExists(error)) return false; // created meanwhile: compare below
          throw error;
        }
      });
      if (created) {
        this.specs.set(name, { dimensions: spec.dimensions, metric: spec.metric });
        return;
      }
    }
    const actual = existing ?? (await this.describe(name));
    if (actual && (actual.dimensions !== spec.dimensions || actual.metric !== spec.metric)) {
      throw new VectorStoreRejectedError(
        this.label,
        `version ${index}/${version} exists with ${actual.dimensions} dimensions (${actual.metric}), not ${spec.dimensions} (${spec.metric}); create a new version for the new model`,
      );
    }
  }

  async listVersions(index: string): Promise<VersionInfo[]> {
    this.checkOpen();
    this.checkIndex(index);
    const prefix = `${index}__`;
    const { collections } = await this.call('list collections', () => this.client.getCollections());
    const out: VersionInfo[] = [];
    for (const { name } of collections) {
      if (!name.startsWith(prefix) || !VECTOR_NAME.test(name.slice(prefix.length))) continue;
      const spec = await this.describe(name);
      if (spec) out.push({ version: name.slice(prefix.length), ...spec });
    }
    return out.sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
  }

  async dropVersion(index: string, version: string): Promise<void> {
    this.checkOpen();
    this.checkIndex(index);
    checkName(this.label, 'version', version);
    const name = collectionName(index, version);
    const aliases = await this.call(`aliases of ${name}`, async () => {
      try {
        return (await this.client.getCollectionAliases(name)).aliases;
      } catch (error) {
        if (statusOf(error) === 404) return [];
        throw error;
      }
    });
    const ours = aliases.map((a) => a.alias_name).filter((a) => a.startsWith(`${index}__`));
    if (ours.length > 0) {
      throw new VectorStoreRejectedError(
        this.label,
        `version ${index}/${version} is what alias ${ours.map((a) => a.slice(index.length + 2)).join(', ')} points at; swap the alias to another version before dropping it`,
      );
    }
    this.specs.delete(name);
    await this.call(`delete collection ${name}`, async () => {
      try {
        await this.client.deleteCollection(name);
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
      }
    });
  }

  async upsert(index: string, version: string, records: readonly VectorRecord[]): Promise<void> {
    this.checkOpen();
    const { name, spec } = await this.requireVersion(index, version);
    const checked = checkRecords(this.label, `${index}/${version}`, records, spec.dimensions);
    if (checked.length === 0) return;
    const points = checked.map((r) => {
      const payload: Payload = { id: r.id, meta: r.metadata };
      if (spec.metric === 'cosine') {
        const norm = Math.sqrt(r.values.reduce((s, x) => s + x * x, 0));
        if (norm === 0) {
          throw new VectorStoreRejectedError(this.label, `${index}/${version} record ${r.id}: an all-zero vector has no direction for cosine; drop it or embed it again`);
        }
        payload.norm = norm;
      }
      return { id: qdrantPointId(r.id), vector: r.values, payload: payload as unknown as Record<string, unknown> };
    });
    const groups = batches(points, QDRANT_LIMITS.upsertPoints, QDRANT_LIMITS.upsertBytes, (p) => Buffer.byteLength(JSON.stringify(p)) + 1);
    await forEachLimit(groups, this.options.concurrency ?? 4, (group) =>
      this.call(`upsert ${group.length} points into ${name}`, async () => {
        await this.client.upsert(name, { wait: true, points: group });
      }),
    );
  }

  async delete(index: string, version: string, ids: readonly string[]): Promise<void> {
    this.checkOpen();
    this.checkIndex(index);
    checkName(this.label, 'version', version);
    const unique = checkIds(this.label, `${index}/${version}`, ids);
    const name = collectionName(index, version);
    for (const group of chunk(unique, QDRANT_LIMITS.ids)) {
      await this.call(`delete ${group.length} points from ${name}`, async () => {
        try {
          await this.client.delete(name, { wait: true, points: group.map(qdrantPointId) });
        } catch (error) {
          if (statusOf(error) !== 404) throw error;
        }
      });
    }
  }

  async fetch(index: string, version: string, ids: readonly string[]): Promise<VectorRecord[]> {
    this.checkOpen();
    const unique = checkIds(this.label, `${index}/${version}`, ids);
    const { name, spec } = await this.requireVersion(index, version);
    const out: VectorRecord[] = [];
    for (const group of chunk(unique, QDRANT_LIMITS.ids)) {
      const points = await this.call(`retrieve ${group.length} points from ${name}`, () =>
        this.client.retrieve(name, { ids: group.map(qdrantPointId), with_payload: true, with_vector: true }),
      );
      for (const point of points) {
        const payload = point.payload as unknown as Payload | undefined;
        if (!payload || !group.includes(payload.id)) continue;
        const stored = point.vector as number[];
        const scale = spec.metric === 'cosine' ? (payload.norm ?? 1) : 1;
        out.push({ id: payload.id, values: Float32Array.from(stored, (x) => x * scale), metadata: payload.meta ?? {} });
      }
    }
    return out;
  }

  async existingIds(index: string, version: string, ids: readonly string[]): Promise<Set<string>> {
    this.checkOpen();
    const unique = checkIds(this.label, `${index}/${version}`, ids);
    const { name } = await this.requireVersion(index, version);
    const out = new Set<string>();
    for (const group of chunk(unique, QDRANT_LIMITS.ids)) {
      const points = await this.call(`retrieve ${group.length} ids from ${name}`, () =>
        this.client.retrieve(name, { ids: group.map(qdrantPointId), with_payload: ['id'], with_vector: false }),
      );
      for (const point of points) {
        const id = (point.payload as { id?: string } | undefined)?.id;
        if (id !== undefined && group.includes(id)) out.add(id);
      }
    }
    return out;
  }

  async count(index: string, version: string): Promise<number> {
    this.checkOpen();
    const { name } = await this.requireVersion(index, version);
    const { count } = await this.call(`count ${name}`, () => this.client.count(name, { exact: true }));
    return count;
  }

  async query(index: string, target: QueryTarget, vector: Float32Array | number[], options: QueryOptions): Promise<QueryMatch[]> {
    this.checkOpen();
    this.checkIndex(index);
    let collection: string;
    let spec: VersionSpec;
    if ('version' in target) {
      ({ name: collection, spec } = await this.requireVersion(index, target.version));
    } else {
      // Query the Qdrant alias itself: Qdrant resolves it per request, so the whole query runs
      // on one collection even while a swap happens.
      checkName(this.label, 'alias', target.alias);
      collection = collectionName(index, target.alias);
      const current = await this.readAlias(index, target.alias);
      if (!current) throw new VectorStoreRejectedError(this.label, `alias ${index}/${target.alias} is not set; swap it to a version first`);
      spec = (await this.requireVersion(index, current)).spec;
    }
    const where = `query ${collection}`;
    const values = checkVector(this.label, where, vector, spec.dimensions);
    checkTopK(this.label, where, options, QDRANT_LIMITS.topK);
    const filter = qdrantFilter(checkFilter(this.label, where, options.filter));
    const response = await this.call(where, () =>
      this.client.query(collection, { query: values, limit: options.topK, with_payload: true, with_vector: false, ...(filter ? { filter } : {}) }),
    );
    return response.points.map((p) => {
      const payload = p.payload as unknown as Payload;
      return { id: payload.id, score: spec.metric === 'euclidean' ? negativeDistance(p.score) : p.score, metadata: payload.meta ?? {} };
    });
  }

  async getAlias(index: string, alias: string): Promise<AliasRecord | null> {
    this.checkOpen();
    this.checkIndex(index);
    checkName(this.label, 'alias', alias);
    const version = await this.readAlias(index, alias);
    return version === null ? null : this.aliasRecord(index, alias, version);
  }

  async swapAlias(index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord> {
    this.checkOpen();
    this.checkIndex(index);
    checkName(this.label, 'alias', alias);
    if (expected !== null) checkName(this.label, 'version', expected);
    return this.swapNow(index, alias, version, expected);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.specs.clear();
    return Promise.resolve();
  }

  private async swapNow(index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord> {
    await this.requireVersion(index, version);
    const actual = await this.readAlias(index, alias);
    if (actual === version) return this.aliasRecord(index, alias, version);
    if (actual !== expected) throw new AliasConflictError(this.label, index, alias, expected, actual);
    const generation = actual === null ? 1 : (await this.aliasRecord(index, alias, actual)).generation + 1;
    const movedAt = new Date().toISOString();
    // The claim: creating a collection is atomic in Qdrant, so one client wins each generation.
    const claim = claimName(index, alias, generation);
    const won = await this.call(`claim ${claim}`, async () => {
      try {
        // Through the raw API: QdrantClient.createCollection drops `metadata`, and the claim
        // must carry its target from the moment it exists.
        await this.client.api().createCollection({
          collection_name: claim,
          vectors: { size: 1, distance: 'Dot' },
          metadata: { [CLAIM_META]: { version, generation, moved_at: movedAt } },
        });
        return true;
      } catch (error) {
        if (alreadyExists(error)) return false;
        throw error;
      }
    });
    if (!won) {
      // Someone else claimed this generation: finish their move (they may have died after the
      // claim) so the alias never stays behind its claim, then report where it now points.
      const info = await this.call(`read ${claim}`, () => this.client.getCollection(claim));
      const theirs = (info.config.metadata as Record<string, Claim> | null | undefined)?.[CLAIM_META];
      if (!theirs) throw new Error(`${this.label}: claim ${claim} has no ${CLAIM_META} metadata; retry the swap`);
      await this.move(index, alias, theirs, actual);
      if (theirs.version === version) return { alias, version, generation: theirs.generation, movedAt: theirs.moved_at };
      throw new AliasConflictError(this.label, index, alias, expected, theirs.version);
    }
    await this.move(index, alias, { version, generation, moved_at: movedAt }, actual);
    await this.call(`drop ${claimName(index, alias, generation - 1)}`, async () => {
      try {
        await this.client.deleteCollection(claimName(index, alias, generation - 1));
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
      }
    });
    return { alias, version, generation, movedAt };
  }

  /** Applies a won claim: generation into the target's metadata, then the alias in one atomic request. Idempotent. */
  private async move(index: string, alias: string, claim: Claim, from: string | null): Promise<void> {
    const qdrantAlias = collectionName(index, alias);
    const target = collectionName(index, claim.version);
    const now = await this.readAlias(index, alias);
    if (now !== from) return; // already moved (by the claimer or another finisher)
    await this.call(`record generation of ${qdrantAlias} on ${target}`, () =>
      this.client.updateCollection(target, { metadata: { [ALIAS_META + alias]: { generation: claim.generation, moved_at: claim.moved_at } } }),
    );
    await this.call(`move alias ${qdrantAlias} to ${target}`, () =>
      this.client.updateCollectionAliases({
        actions: [...(from === null ? [] : [{ delete_alias: { alias_name: qdrantAlias } }]), { create_alias: { collection_name: target, alias_name: qdrantAlias } }],
      }),
    );
  }

  /** The version the Qdrant alias points at, or null. */
  private async readAlias(index: string, alias: string): Promise<string | null> {
    const qdrantAlias = collectionName(index, alias);
    const { aliases } = await this.call('list aliases', () => this.client.getAliases());
    const found = aliases.find((a) => a.alias_name === qdrantAlias);
    if (!found) return null;
    const prefix = `${index}__`;
    if (!found.collection_name.startsWith(prefix)) {
      throw new VectorStoreRejectedError(this.label, `Qdrant alias ${qdrantAlias} points at ${found.collection_name}, which is not a version of ${index}; fix or delete that alias`);
    }
    return found.collection_name.slice(prefix.length);
  }

  private async aliasRecord(index: string, alias: string, version: string): Promise<AliasRecord> {
    const name = collectionName(index, version);
    const info = await this.call(`describe ${name}`, () => this.client.getCollection(name));
    const meta = (info.config.metadata as Record<string, { generation?: number; moved_at?: string }> | null | undefined)?.[ALIAS_META + alias];
    // An alias moved outside Forgeline has no record of ours: generation 0, time unknown (epoch).
    return { alias, version, generation: meta?.generation ?? 0, movedAt: meta?.moved_at ?? new Date(0).toISOString() };
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`${this.label}: store is closed`);
  }

  private checkIndex(index: string): void {
    checkName(this.label, 'index', index);
    if (index.includes('__') || index.endsWith('_')) {
      throw new VectorStoreRejectedError(this.label, `index name ${JSON.stringify(index)} may not contain "__" or end with "_" on Qdrant (collections are named <index>__<version>)`);
    }
  }

  private async requireVersion(index: string, version: string): Promise<{ name: string; spec: VersionSpec }> {
    this.checkIndex(index);
    checkName(this.label, 'version', version);
    const name = collectionName(index, version);
    const spec = await this.describe(name);
    if (!spec) throw new VectorStoreRejectedError(this.label, `version ${index}/${version} does not exist; create it with createVersion first`);
    return { name, spec };
  }

  /** A collection's width and metric (cached: they never change), or undefined when absent. */
  private async describe(name: string): Promise<VersionSpec | undefined> {
    const cached = this.specs.get(name);
    if (cached) return cached;
    const info = await this.call(`describe ${name}`, async () => {
      try {
        return await this.client.getCollection(name);
      } catch (error) {
        if (statusOf(error) === 404) return undefined;
        throw error;
      }
    });
    if (!info) return undefined;
    const vectors = info.config.params.vectors as { size?: number; distance?: string } | undefined;
    const metric = (Object.keys(DISTANCE) as Metric[]).find((m) => DISTANCE[m] === vectors?.distance);
    if (!vectors?.size || !metric) {
      throw new VectorStoreRejectedError(this.label, `collection ${name} does not hold one unnamed dense vector of a known distance; it was not created by Forgeline`);
    }
    const spec = { dimensions: vectors.size, metric };
    this.specs.set(name, { dimensions: spec.dimensions, metric: spec.metric });
    return spec;
  }

  private call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return withRetries(this.label, operation, this.policy, (error) => this.classify(operation, error), fn);
  }

  private classify(operation: string, error: unknown): Verdict {
    if (error instanceof VectorStoreRejectedError || error instanceof AliasConflictError) return { retry: false, error };
    const status = statusOf(error);
    if (status === undefined || status === 429 || status >= 500) {
      const retryAfter = (error as { retry_after?: number }).retry_after;
      return { retry: true, ...(typeof retryAfter === 'number' ? { afterMs: retryAfter * 1000 } : {}) };
    }
    if (status === 401 || status === 403) {
      return { retry: false, error: new VectorStoreRejectedError(this.label, `${operation}: Qdrant refused the API key (${status}); check FORGELINE_QDRANT_API_KEY`) };
    }
    return { retry: false, error: new VectorStoreRejectedError(this.label, `${operation}: Qdrant answered ${status}: ${qdrantMessage(error)}`) };
  }
}

/** The HTTP status of a Qdrant client error (ApiError or UnexpectedResponse), if it has one. */
function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const status = (error as { status?: unknown }).status;
  if (typeof status === 'number') return status;
  if ((error as Error).name === 'QdrantClientResourceExhaustedError') return 429;
  const match = /Unexpected Response: (\d{3})/.exec((error as Error).message ?? '');
  return match ? Number(match[1]) : undefined;
}

/** Qdrant answers a create of an existing collection with 409 (older servers: 400 "already exists"). */
function alreadyExists(error: unknown): boolean {
  const status = statusOf(error);
  return status === 409 || (status === 400 && /already exists/i.test(qdrantMessage(error)));
}

function qdrantMessage(error: unknown): string {
  const data = (error as { data?: { status?: { error?: string } } }).data;
  return data?.status?.error ?? (error instanceof Error ? error.message : String(error));
}
