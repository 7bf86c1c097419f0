/**
 * VectorStore on Milvus (gRPC, `@zilliz/milvus2-sdk-node` 3.0.6). Uses only calls Milvus has had
 * since 2.3 (collections, HNSW, JSON fields and filters, upsert, aliases, collection properties);
 * tested against a real Milvus 2.3.5 standalone server (test/helpers/milvus.ts).
 *
 * Layout in Milvus:
 * - a version is a collection `fl_<index>__<version>`: `id` VARCHAR(128) primary key, `vector`
 *   FLOAT_VECTOR(dimensions), `metadata` JSON; consistency level Strong (a query sees every write
 *   acknowledged before it: read-your-writes for the pipeline's count check and for the tests).
 *   The description holds `{"forgeline":"vector-store","index","version","metric"}`: names may
 *   collide (`a__b`+`c` and `a`+`b__c` make the same collection name), so ownership is checked
 *   there and a collision is refused, never written through.
 * - metrics: cosine -> COSINE, dot -> IP, euclidean -> L2. Milvus' L2 is the *squared* distance;
 *   the port's score is `-sqrt(d)`. Index HNSW (M 16, efConstruction 200) unless told otherwise;
 *   searches use ef = max(64, topK).
 * - an alias is Milvus' native alias `fla_<index>__<alias>` (its own prefix: Milvus aliases and
 *   collections share one namespace). A query by alias resolves it once and searches that one
 *   collection, so it sees exactly one version.
 *
 * Compare-and-swap of an alias. Milvus moves an alias atomically (`alterAlias`) but has no
 * conditional move, so each move first claims a generation: `createAlias` of a marker
 * `flg_<index>__<alias>__<generation>` on the target collection. Milvus creates an alias at most
 * once, so of all swappers that read generation N (in any process) exactly one claims N+1; the
 * others get AliasConflictError. The winner then records `{generation, movedAt}` as a property of
 * the target collection and moves the native alias. A swapper that finds a claim whose move was
 * not applied (its owner crashed, or is still at it) applies it first (roll-forward; the same
 * writes, so racing the owner is harmless), then reads again. The window that remains: a claim's
 * owner stalled between its claim and its `alterAlias` for longer than it takes another client to
 * roll that claim forward and complete a further move would, when it wakes, point the alias back
 * at its (older) target; every later swap still sees a consistent generation. Markers are kept
 * (so a stale generation can never be claimed twice) and dropped with their collection.
 *
 * dropVersion refuses while a native `fla_` alias points at the collection (checked, then
 * dropped: an alias moved onto it in between would go with it).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MilvusClient, DataType, ConsistencyLevelEnum, type ClientConfig } from '@zilliz/milvus2-sdk-node';
import {
  AliasConflictError,
  VectorStoreRejectedError,
  type AliasRecord,
  type MetadataValue,
  type Metric,
  type QueryMatch,
  type QueryOptions,
  type QueryTarget,
  type VectorRecord,
  type VectorStore,
  type VersionInfo,
  type VersionSpec,
  type Metadata,
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

export type MilvusIndexType = 'HNSW' | 'FLAT' | 'IVF_FLAT' | 'AUTOINDEX';

export interface MilvusStoreOptions {
  /** gRPC address, e.g. `127.0.0.1:19530` or `https://in01-xxx.zillizcloud.com:19536`. */
  address: string;
  /** `user:password` or a Zilliz Cloud API key; absent for a server without authentication. */
  token?: string;
  database?: string;
  indexType?: MilvusIndexType;
  /** Rows per upsert request (default 1000; requests also stay under 16 MiB). */
  upsertBatch?: number;
  /** Upsert requests in flight at once (default 2). */
  parallelism?: number;
  retry?: RetryPolicy;
  /** Per-call deadline (default 60 s). */
  timeoutMs?: number;
}

const MAX_TOP_K = 16_384; // Milvus' topk limit
const ID_BATCH = 1_000; // ids per delete/fetch expression
const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
const LOAD_TIMEOUT_MS = 120_000;
const DESCRIPTION_TAG = 'vector-store';
const MILVUS_METRIC: Record<Metric, string> = { cosine: 'COSINE', dot: 'IP', euclidean: 'L2' };

/** Milvus status codes the adapter reads (milvus.proto common.ErrorCode / merr codes). */
const CODE = { collectionNotFound: 100, collectionNotLoaded: 101, indexNotFound: 700, aliasNotFound: 1600, aliasExists: 1602 } as const;

interface Status {
  code: number;
  errorCode: string;
  reason: string;
  retriable: boolean;
}

/** A Milvus call that answered with an error status. Retryable for Temporal unless the adapter knows better. */
export class MilvusStatusError extends Error {
  constructor(
    readonly operation: string,
    readonly status: Status,
  ) {
    super(`milvus ${operation} failed: ${status.errorCode} (code ${status.code}): ${status.reason}`);
    this.name = 'MilvusStatusError';
  }
}

interface RawStatus {
  code?: number | string;
  error_code?: string | number;
  reason?: string;
  retriable?: boolean;
}

function statusOf(response: unknown): Status {
  const r = (response ?? {}) as { status?: RawStatus } & RawStatus;
  const s: RawStatus = r.status && typeof r.status === 'object' ? r.status : r;
  const errorCode = s.error_code === undefined || s.error_code === 0 ? 'Success' : String(s.error_code);
  return { code: Number(s.code ?? 0), errorCode, reason: s.reason ?? '', retriable: s.retriable === true };
}

function failed(status: Status): boolean {
  return status.code !== 0 || status.errorCode !== 'Success';
}

const isCollectionNotFound = (s: Status): boolean =>
  s.code === CODE.collectionNotFound || s.errorCode === 'CollectionNotExists' || /collection not found|can't find collection/i.test(s.reason);
const isAliasNotFound = (s: Status): boolean => s.code === CODE.aliasNotFound || /alias not found/i.test(s.reason);
const isNotLoaded = (s: Status): boolean => s.code === CODE.collectionNotLoaded || /not loaded/i.test(s.reason);

/** gRPC codes worth retrying: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL. */
const TRANSIENT_GRPC = new Set([14, 4, 8, 10, 13]);

function classify(error: unknown): Verdict {
  if (error instanceof VectorStoreRejectedError || error instanceof AliasConflictError) return { retry: false, error };
  if (error instanceof MilvusStatusError) {
    const s = error.status;
    const transient = s.retriable || /rate limit|not ready|timeout|unavailable|too many/i.test(`${s.errorCode} ${s.reason}`);
    return transient ? { retry: true } : { retry: false, error };
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'number' && TRANSIENT_GRPC.has(code)) return { retry: true };
  if (/ECONNRESET|ECONNREFUSED|UNAVAILABLE|DEADLINE_EXCEEDED/.test(String(error))) return { retry: true };
  return { retry: false, error: error instanceof Error ? error : new Error(String(error)) };
}

/** A Milvus boolean expression literal for a metadata value (strings quoted and escaped as JSON does, which Milvus' parser reads). */
function literal(value: MetadataValue): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return String(value);
}

/**
 * The Milvus filter expression for the port's filter conditions (from checkFilter: keys already
 * plain names). Values of each type are matched separately (`in` lists must not mix types).
 */
export function milvusFilter(conditions: ReadonlyArray<readonly [string, readonly MetadataValue[]]>): string {
  return conditions
    .map(([key, values]) => {
      const field = `metadata[${JSON.stringify(key)}]`;
      const parts: string[] = [];
      for (const type of ['string', 'number', 'boolean'] as const) {
        const same = [...new Set(values.filter((v) => typeof v === type))];
        if (same.length === 0) continue;
        if (same.length === 1 || type === 'boolean') parts.push(...same.map((v) => `${field} == ${literal(v)}`));
        else parts.push(`${field} in [${same.map(literal).join(', ')}]`);
      }
      return parts.length === 1 ? parts[0]! : `(${parts.join(' or ')})`;
    })
    .join(' and ');
}

/** The port's score (larger = more similar) for Milvus' raw score. */
export function portScore(metric: Metric, raw: number): number {
  return metric === 'euclidean' ? negativeDistance(Math.sqrt(Math.max(0, raw))) : raw;
}

interface Version {
  collection: string;
  index: string;
  version: string;
  dimensions: number;
  metric: Metric;
  properties: Record<string, string>;
  createdMs: number;
}

type Described = { kind: 'absent' } | { kind: 'foreign'; collection: string; owner: string } | { kind: 'ours'; v: Version };

interface AliasState {
  collection: string;
  version: string;
  generation: number;
  movedAt: string;
}

export class MilvusVectorStore implements VectorStore {
  readonly label: string;
  /** Collections are created with consistency level Strong, and every read asks for it too. */
  readonly consistency = 'strong' as const;
  private readonly config: ClientConfig;
  private client: { milvus: MilvusClient; ready: Promise<MilvusClient> } | undefined;
  private closed = false;
  private readonly indexType: MilvusIndexType;
  private readonly upsertBatch: number;
  private readonly parallelism: number;
  private readonly retry: RetryPolicy;

  constructor(options: MilvusStoreOptions) {
    if (!options.address) throw new VectorStoreRejectedError('milvus', 'address is empty: set FORGELINE_MILVUS_ADDRESS, e.g. 127.0.0.1:19530');
    this.label = `milvus:${options.address}${options.database ? `/${options.database}` : ''}`;
    this.indexType = options.indexType ?? 'HNSW';
    this.upsertBatch = options.upsertBatch ?? 1_000;
    this.parallelism = options.parallelism ?? 2;
    this.retry = options.retry ?? { attempts: 5, baseDelayMs: 200 };
    const config: ClientConfig = { address: options.address, timeout: options.timeoutMs ?? 60_000, logLevel: 'error' };
    if (options.token) config.token = options.token;
    if (options.database) config.database = options.database;
    this.config = config;
  }

  /**
   * The SDK client, connected. The SDK sends Connect when a client is built and every later call
   * awaits that one answer, so a client built while the server was unreachable fails forever (and
   * its rejection would go unhandled): a failed connect drops the client, and the next call (the
   * retry) builds a new one.
   */
  private connect(): Promise<MilvusClient> {
    if (this.closed) return Promise.reject(new Error(`${this.label}: the store is closed`));
    if (!this.client) {
      const milvus = new MilvusClient(this.config);
      const ready = milvus.connectPromise.then(
        () => milvus,
        async (error: unknown) => {
          if (this.client?.milvus === milvus) this.client = undefined;
          await milvus.closeConnection().catch(() => undefined);
          throw error;
        },
      );
      this.client = { milvus, ready };
    }
    return this.client.ready;
  }

  // ---- names -----------------------------------------------------------------------------------

  private collectionName(index: string, version: string): string {
    return `fl_${index}__${version}`;
  }

  private aliasName(index: string, alias: string): string {
    return `fla_${index}__${alias}`;
  }

  private markerName(index: string, alias: string, generation: number): string {
    return `flg_${index}__${alias}__${generation}`;
  }

  private static aliasProperty(alias: string): string {
    return `forgeline.alias.${alias}`;
  }

  // ---- calls -----------------------------------------------------------------------------------

  /** One Milvus call with retries of transient failures; an error status throws unless `accept` takes it. */
  private call<T>(operation: string, fn: (client: MilvusClient) => Promise<T>, accept: (s: Status) => boolean = () => false): Promise<T> {
    return withRetries(this.label, operation, this.retry, classify, async () => {
      const response = await fn(await this.connect());
      const status = statusOf(response);
      if (failed(status) && !accept(status)) throw new MilvusStatusError(operation, status);
      return response;
    });
  }

  private async describe(collection: string): Promise<Described> {
    const res = await this.call(`describeCollection ${collection}`, (c) => c.describeCollection({ collection_name: collection }), isCollectionNotFound);
    if (failed(statusOf(res))) return { kind: 'absent' };
    let tag: { forgeline?: string; index?: string; version?: string; metric?: Metric } = {};
    try {
      tag = JSON.parse(res.schema.description) as typeof tag;
    } catch {
      /* not ours */
    }
    if (tag.forgeline !== DESCRIPTION_TAG || !tag.index || !tag.version || !tag.metric) {
      return { kind: 'foreign', collection, owner: 'not created by Forgeline' };
    }
    const field = res.schema.fields.find((f) => f.name === 'vector');
    const dim = Number(field?.type_params?.find((p) => p.key === 'dim')?.value ?? (field as { dim?: unknown } | undefined)?.dim);
    const properties: Record<string, string> = {};
    for (const p of res.properties ?? []) properties[p.key] = String(p.value);
    return {
      kind: 'ours',
      v: {
        collection,
        index: tag.index,
        version: tag.version,
        dimensions: dim,
        metric: tag.metric,
        properties,
        createdMs: Number(res.created_utc_timestamp ?? 0),
      },
    };
  }

  /** The version if it exists and belongs to (index, version); a colliding foreign collection is refused. */
  private async find(index: string, version: string): Promise<Version | null> {
    const collection = this.collectionName(index, version);
    const d = await this.describe(collection);
    if (d.kind === 'absent') return null;
    if (d.kind === 'ours' && d.v.index === index && d.v.version === version) return d.v;
    const owner = d.kind === 'ours' ? `index ${d.v.index} version ${d.v.version}` : d.owner;
    throw new VectorStoreRejectedError(
      this.label,
      `${index}/${version}: Milvus collection ${collection} already exists and belongs to ${owner}; choose another index or version name`,
    );
  }

  private async require(index: string, version: string): Promise<Version> {
    const v = await this.find(index, version);
    if (!v) throw new VectorStoreRejectedError(this.label, `${index}/${version}: no such version; create it with createVersion first`);
    return v;
  }

  /** Index built and collection loaded (Milvus searches and counts only loaded collections). */
  private async ensureServing(collection: string, metric: Metric): Promise<void> {
    const idx = await this.call(`describeIndex ${collection}`, (c) => c.describeIndex({ collection_name: collection }), (s) =>
      s.code === CODE.indexNotFound || /index not (found|exist)/i.test(s.reason),
    );
    if (failed(statusOf(idx))) {
      const params: Record<string, number> = this.indexType === 'HNSW' ? { M: 16, efConstruction: 200 } : this.indexType === 'IVF_FLAT' ? { nlist: 128 } : {};
      await this.call(`createIndex ${collection}`, (c) =>
        c.createIndex({ collection_name: collection, field_name: 'vector', index_type: this.indexType, metric_type: MILVUS_METRIC[metric], params }),
      );
    }
    await this.call(`loadCollection ${collection}`, (c) => c.loadCollectionAsync({ collection_name: collection }));
    const deadline = Date.now() + LOAD_TIMEOUT_MS;
    for (;;) {
      const res = await this.call(`getLoadState ${collection}`, (c) => c.getLoadState({ collection_name: collection }));
      if (String(res.state) === 'LoadStateLoaded') return;
      if (Date.now() > deadline) throw new Error(`${this.label}: collection ${collection} still ${String(res.state)} after ${LOAD_TIMEOUT_MS / 1000} s (is a query node up?)`);
      await sleep(100);
    }
  }

  /** `fn` on a loaded collection: a "not loaded" answer (e.g. after a server restart) loads it and tries once more. */
  private async loaded<T>(v: Version, operation: string, fn: (client: MilvusClient) => Promise<T>): Promise<T> {
    const first = await this.call(operation, fn, isNotLoaded);
    if (!failed(statusOf(first))) return first;
    await this.ensureServing(v.collection, v.metric);
    return this.call(operation, fn);
  }

  // ---- versions --------------------------------------------------------------------------------

  async createVersion(index: string, version: string, spec: VersionSpec): Promise<void> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    checkSpec(this.label, index, version, spec);
    const collection = this.collectionName(index, version);
    for (let attempt = 0; ; attempt++) {
      const existing = await this.find(index, version);
      if (existing) {
        if (existing.dimensions !== spec.dimensions || existing.metric !== spec.metric) {
          throw new VectorStoreRejectedError(
            this.label,
            `${index}/${version} exists with ${existing.dimensions} dimensions and metric ${existing.metric}, not ${spec.dimensions} / ${spec.metric}; use a new version name for another model or metric`,
          );
        }
        await this.ensureServing(collection, existing.metric); // completes a createVersion cut short
        return;
      }
      const description = JSON.stringify({ forgeline: DESCRIPTION_TAG, index, version, metric: spec.metric });
      const res = await this.call(
        `createCollection ${collection}`,
        (c) =>
          c.createCollection({
            collection_name: collection,
            description,
            consistency_level: 'Strong',
            enable_dynamic_field: false,
            fields: [
              { name: 'id', data_type: DataType.VarChar, is_primary_key: true, max_length: 128 },
              { name: 'vector', data_type: DataType.FloatVector, dim: spec.dimensions },
              { name: 'metadata', data_type: DataType.JSON },
            ],
          }),
        (s) => attempt === 0 && /already exist/i.test(s.reason), // a concurrent createVersion won: compare with it
      );
      if (!failed(statusOf(res))) {
        await this.ensureServing(collection, spec.metric);
        return;
      }
    }
  }

  async listVersions(index: string): Promise<VersionInfo[]> {
    checkName(this.label, 'index', index);
    const prefix = `fl_${index}__`;
    const res = await this.call('showCollections', (c) => c.showCollections());
    const names = res.data.map((c) => c.name).filter((n) => n.startsWith(prefix));
    const found: VersionInfo[] = [];
    await forEachLimit(names, 4, async (name) => {
      const d = await this.describe(name);
      if (d.kind === 'ours' && d.v.index === index) found.push({ version: d.v.version, dimensions: d.v.dimensions, metric: d.v.metric });
    });
    return found.sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
  }

  async dropVersion(index: string, version: string): Promise<void> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const collection = this.collectionName(index, version);
    const d = await this.describe(collection);
    if (d.kind !== 'ours' || d.v.index !== index || d.v.version !== version) return; // absent (or not this version's)
    const res = await this.call(`listAliases ${collection}`, (c) => c.listAliases({ collection_name: collection }), isCollectionNotFound);
    const aliases: string[] = failed(statusOf(res)) ? [] : res.aliases;
    const prefix = `fla_${index}__`;
    const live = aliases.filter((a) => a.startsWith(prefix)).map((a) => a.slice(prefix.length));
    if (live.length > 0) {
      throw new VectorStoreRejectedError(
        this.label,
        `${index}/${version}: alias ${live.join(', ')} points at this version; swap it to another version before dropping this one`,
      );
    }
    for (const marker of aliases.filter((a) => a.startsWith('flg_'))) {
      await this.call(`dropAlias ${marker}`, (c) => c.dropAlias({ alias: marker }), isAliasNotFound);
    }
    await this.call(`dropCollection ${collection}`, (c) => c.dropCollection({ collection_name: collection }), isCollectionNotFound);
  }

  // ---- records ---------------------------------------------------------------------------------

  async upsert(index: string, version: string, records: readonly VectorRecord[]): Promise<void> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const v = await this.require(index, version);
    const rows = checkRecords(this.label, `${index}/${version}`, records, v.dimensions).map((r) => ({ id: r.id, vector: r.values, metadata: r.metadata }));
    if (rows.length === 0) return;
    const groups = batches(rows, this.upsertBatch, MAX_REQUEST_BYTES, (r) => r.id.length + r.vector.length * 20 + JSON.stringify(r.metadata).length + 32);
    await forEachLimit(groups, this.parallelism, async (data) => {
      const res = await this.call(`upsert ${v.collection}`, (c) => c.upsert({ collection_name: v.collection, data }));
      if (res.err_index.length > 0) {
        throw new MilvusStatusError(`upsert ${v.collection}`, { ...statusOf(res), reason: `${res.err_index.length} of ${data.length} rows not written` });
      }
    });
  }

  async delete(index: string, version: string, ids: readonly string[]): Promise<void> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const unique = checkIds(this.label, `${index}/${version}`, ids);
    if (unique.length === 0) return;
    const v = await this.find(index, version);
    if (!v) return; // nothing to delete
    for (const part of chunk(unique, ID_BATCH)) {
      await this.call(`delete ${v.collection}`, (c) => c.delete({ collection_name: v.collection, filter: idFilter(part) }));
    }
  }

  async fetch(index: string, version: string, ids: readonly string[]): Promise<VectorRecord[]> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const unique = checkIds(this.label, `${index}/${version}`, ids);
    if (unique.length === 0) return [];
    const v = await this.require(index, version);
    const out: VectorRecord[] = [];
    for (const part of chunk(unique, ID_BATCH)) {
      const res = await this.loaded(v, `query ${v.collection}`, (c) =>
        c.query({
          collection_name: v.collection,
          filter: idFilter(part),
          output_fields: ['id', 'vector', 'metadata'],
          limit: part.length,
          consistency_level: ConsistencyLevelEnum.Strong,
        }),
      );
      for (const row of res.data) {
        out.push({ id: String(row.id), values: Array.from(row.vector as number[]), metadata: toMetadata(row.metadata) });
      }
    }
    return out;
  }

  async existingIds(index: string, version: string, ids: readonly string[]): Promise<Set<string>> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const unique = checkIds(this.label, `${index}/${version}`, ids);
    const held = new Set<string>();
    if (unique.length === 0) return held;
    const v = await this.require(index, version);
    for (const part of chunk(unique, ID_BATCH)) {
      const res = await this.loaded(v, `query ${v.collection}`, (c) =>
        c.query({ collection_name: v.collection, filter: idFilter(part), output_fields: ['id'], limit: part.length, consistency_level: ConsistencyLevelEnum.Strong }),
      );
      for (const row of res.data) held.add(String(row.id));
    }
    return held;
  }

  async count(index: string, version: string): Promise<number> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const v = await this.require(index, version);
    const res = await this.loaded(v, `count ${v.collection}`, (c) =>
      c.query({ collection_name: v.collection, filter: '', output_fields: ['count(*)'], consistency_level: ConsistencyLevelEnum.Strong }),
    );
    return Number(res.data[0]?.['count(*)'] ?? 0);
  }

  async query(index: string, target: QueryTarget, vector: Float32Array | number[], options: QueryOptions): Promise<QueryMatch[]> {
    checkName(this.label, 'index', index);
    const where = 'alias' in target ? `${index}@${target.alias}` : `${index}/${target.version}`;
    if ('alias' in target) checkName(this.label, 'alias', target.alias);
    else checkName(this.label, 'version', target.version);
    checkTopK(this.label, where, options, MAX_TOP_K);
    const conditions = checkFilter(this.label, where, options.filter);
    const filter = milvusFilter(conditions);
    for (let attempt = 0; ; attempt++) {
      const v = await this.resolve(index, target);
      const values = checkVector(this.label, where, vector, v.dimensions);
      const params: Record<string, number> = this.indexType === 'HNSW' ? { ef: Math.max(64, options.topK) } : this.indexType === 'IVF_FLAT' ? { nprobe: 16 } : {};
      const res = await this.loaded(v, `search ${v.collection}`, (c) =>
        c.search({
          collection_name: v.collection,
          data: values,
          limit: options.topK,
          filter,
          output_fields: ['id', 'metadata'],
          params,
          metric_type: MILVUS_METRIC[v.metric],
          consistency_level: ConsistencyLevelEnum.Strong,
        }),
      ).catch((error: unknown) => {
        // The alias moved and its old version was dropped between resolving and searching: resolve again.
        if ('alias' in target && attempt === 0 && error instanceof MilvusStatusError && isCollectionNotFound(error.status)) return null;
        throw error;
      });
      if (res === null) continue;
      return res.results
        .map((r) => ({ id: String(r.id), score: portScore(v.metric, Number(r.score)), metadata: toMetadata(r.metadata) }))
        .sort((a, b) => b.score - a.score);
    }
  }

  private async resolve(index: string, target: QueryTarget): Promise<Version> {
    if ('version' in target) return this.require(index, target.version);
    for (let attempt = 0; ; attempt++) {
      const state = await this.readAlias(index, target.alias);
      if (!state) throw new VectorStoreRejectedError(this.label, `${index}@${target.alias}: alias is not set; swap it to a version first`);
      const v = await this.find(index, state.version);
      if (v) return v;
      // Dropped between reading the alias and describing it: the alias has moved on, read it again.
      if (attempt >= 2) throw new Error(`${this.label}: ${index}@${target.alias} points at ${state.version}, which keeps disappearing; retry`);
    }
  }

  // ---- aliases ---------------------------------------------------------------------------------

  /** The collection an alias (native or marker) points at, or null. */
  private async aliasTarget(alias: string): Promise<string | null> {
    // The SDK insists on a collection_name for DescribeAlias, which the RPC does not carry.
    const res = await this.call(`describeAlias ${alias}`, (c) => c.describeAlias({ alias, collection_name: alias }), isAliasNotFound);
    return failed(statusOf(res)) ? null : res.collection;
  }

  /** Where the native alias points now (the applied state), with the generation recorded on its target. */
  private async readAlias(index: string, alias: string): Promise<AliasState | null> {
    let collection: string | null;
    let d: Described;
    let attempt = 0;
    do {
      collection = await this.aliasTarget(this.aliasName(index, alias));
      if (collection === null) return null;
      d = await this.describe(collection); // absent: dropped (with its aliases) just now; read again
    } while (d.kind === 'absent' && ++attempt < 3);
    if (d.kind !== 'ours' || d.v.index !== index) {
      throw new VectorStoreRejectedError(
        this.label,
        `${index}@${alias}: Milvus alias ${this.aliasName(index, alias)} points at ${collection}, which is not a version of ${index} (a name collision or an alias made outside Forgeline); use another alias name`,
      );
    }
    let recorded: { generation?: unknown; movedAt?: unknown } = {};
    try {
      recorded = JSON.parse(d.v.properties[MilvusVectorStore.aliasProperty(alias)] ?? '{}') as typeof recorded;
    } catch {
      /* absent or unreadable: an alias set outside Forgeline */
    }
    return {
      collection,
      version: d.v.version,
      generation: typeof recorded.generation === 'number' ? recorded.generation : 0,
      movedAt: typeof recorded.movedAt === 'string' ? recorded.movedAt : new Date(d.v.createdMs).toISOString(),
    };
  }

  /** Records generation and time on the target, then moves (or creates) the native alias there. */
  private async apply(index: string, alias: string, target: Version, generation: number, movedAt: string): Promise<AliasState> {
    const properties = { [MilvusVectorStore.aliasProperty(alias)]: JSON.stringify({ generation, movedAt }) };
    await this.call(`alterCollection ${target.collection}`, (c) => c.alterCollectionProperties({ collection_name: target.collection, properties }));
    const name = this.aliasName(index, alias);
    const moved = await this.call(`alterAlias ${name}`, (c) => c.alterAlias({ alias: name, collection_name: target.collection }), isAliasNotFound);
    if (failed(statusOf(moved))) {
      const created = await this.call(`createAlias ${name}`, (c) => c.createAlias({ alias: name, collection_name: target.collection }), (s) => s.code === CODE.aliasExists);
      if (failed(statusOf(created))) await this.call(`alterAlias ${name}`, (c) => c.alterAlias({ alias: name, collection_name: target.collection }));
    }
    return { collection: target.collection, version: target.version, generation, movedAt };
  }

  /** The applied state after rolling forward any claimed but unapplied moves. */
  private async settle(index: string, alias: string): Promise<AliasState | null> {
    let state = await this.readAlias(index, alias);
    for (;;) {
      const generation = (state?.generation ?? 0) + 1;
      const claimed = await this.aliasTarget(this.markerName(index, alias, generation));
      if (claimed === null) return state;
      const d = await this.describe(claimed);
      if (d.kind !== 'ours' || d.v.index !== index) return state;
      state = await this.apply(index, alias, d.v, generation, new Date().toISOString());
    }
  }

  async getAlias(index: string, alias: string): Promise<AliasRecord | null> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'alias', alias);
    const state = await this.readAlias(index, alias);
    return state && record(alias, state);
  }

  async swapAlias(index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'alias', alias);
    checkName(this.label, 'version', version);
    if (expected !== null) checkName(this.label, 'version', expected);
    const target = await this.find(index, version);
    if (!target) throw new VectorStoreRejectedError(this.label, `${index}@${alias}: cannot point the alias at ${version}: no such version (create and fill it first)`);
    const current = await this.settle(index, alias);
    if (current?.version === version) return record(alias, current); // already there: a retried swap
    if ((current?.version ?? null) !== expected) throw new AliasConflictError(this.label, index, alias, expected, current?.version ?? null);
    const generation = (current?.generation ?? 0) + 1;
    const marker = this.markerName(index, alias, generation);
    const claim = await this.call(`createAlias ${marker}`, (c) => c.createAlias({ alias: marker, collection_name: target.collection }), (s) => s.code === CODE.aliasExists);
    if (failed(statusOf(claim))) {
      // Another swapper claimed this generation first.
      const now = await this.settle(index, alias);
      if (now?.version === version) return record(alias, now);
      throw new AliasConflictError(this.label, index, alias, expected, now?.version ?? null);
    }
    const applied = await this.apply(index, alias, target, generation, new Date().toISOString());
    await this.settle(index, alias); // chase a later claim that a stalled apply may have overwritten
    return record(alias, applied);
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    if (client) await client.milvus.closeConnection();
  }
}

function record(alias: string, state: AliasState): AliasRecord {
  return { alias, version: state.version, generation: state.generation, movedAt: state.movedAt };
}

/** `id in [...]` for ids already checked against the port's id pattern (no quotes or backslashes). */
function idFilter(ids: readonly string[]): string {
  return `id in [${ids.map((id) => JSON.stringify(id)).join(', ')}]`;
}

function toMetadata(raw: unknown): Metadata {
  if (raw === null || raw === undefined) return {};
  const value = typeof raw === 'string' ? (JSON.parse(raw) as unknown) : raw;
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Metadata) : {};
}
