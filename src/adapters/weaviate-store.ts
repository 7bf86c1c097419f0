/**
 * VectorStore on Weaviate (client `weaviate-client` 3.12: REST for the schema and aliases, gRPC
 * for batch writes, deletes, searches and counts).
 *
 * Mapping:
 * - A version is a collection (class) of its own, `Fl_<index>_V_<version>`, e.g.
 *   `Fl_docs_V_v20261202t2200`. Weaviate class names must match `[A-Z][_0-9A-Za-z]*`; our names
 *   are lower-case only (VECTOR_NAME), so the upper-case `V` (and `A` for aliases) separates
 *   index from version without ambiguity (`docs` + `a_v1` and `docs_a` + `v1` stay distinct).
 * - Vectors are our own (`vectorizer: none`) in the named vector `default`, HNSW index; the
 *   metric maps to Weaviate's distance: cosine → `cosine` (distance 1 − cos), dot → `dot`
 *   (distance −a·b), euclidean → `l2-squared` (distance ‖a−b‖²). Scores come back as
 *   1 − d, −d and −√d respectively, so larger = more similar as the port says.
 * - The collection's description holds the spec (`forgeline {"dimensions":…,"metric":…}`):
 *   Weaviate learns a vector width only from the first insert, and we must refuse a wrong width
 *   before anything is written.
 * - Record ids become UUIDv5 object ids (Weaviate ids are UUIDs); the original id is the
 *   property `fl_id`. Metadata key `k` is the property `m_k` (so keys may start with a digit and
 *   never clash with Weaviate's reserved names), declared explicitly before the first write that
 *   uses it: text with `field` tokenization (so `equal` is exact, not per word), number or
 *   boolean. Filters: `equal` per key, AND-ed; `$in` becomes `containsAny` on text (exact with
 *   field tokenization) and an OR of `equal` on numbers and booleans.
 * - The alias is Weaviate's native alias (Weaviate ≥ 1.32), `Fl_<index>_A_<alias>`: any
 *   Weaviate client that queries that name follows it. Weaviate keeps no generation or move time,
 *   so a bookkeeping collection `ForgelineAliases` holds one object per alias with the move we
 *   are making and the state before it (an intent record, written before the alias moves); the
 *   native alias decides which of the two is true, so a crash between the two writes reads back
 *   consistently.
 *
 * Compare-and-swap window, honestly: Weaviate's alias update (`PUT /v1/aliases/{name}`) is
 * unconditional. `swapAlias` reads the alias, compares it with `expected`, then updates it. Swaps
 * in one process are serialized per Weaviate URL and alias (an in-process lock), so among them
 * the compare-and-swap is exact. A writer in another process that moves the alias between our read
 * and our update is overwritten (last writer wins) instead of getting AliasConflictError. The
 * first creation is a real create-if-absent (Weaviate refuses a second `POST /v1/aliases` for the
 * same name). Keep one writer per alias across processes (the re-embed workflow for that corpus,
 * whose workflow id is unique) and the window never opens.
 *
 * `dropVersion` refuses while an alias points at the version (`GET /v1/aliases?class=`); an
 * alias created by another process between that check and the delete is not seen.
 *
 * `query` on an alias resolves it (one REST read) and searches the version it points at, so one
 * query always reads one version and its scores use that version's metric.
 *
 * Writes: the client's `insertMany` (gRPC BatchObjects) serializes one object per event-loop turn
 * and polls for the end every 500 ms, so one batch takes at least ~1 ms an object and then up to
 * 500 ms more, whatever the server does. Batches of 400 (serialized within one poll) with 8 in
 * flight overlap those waits; `batchSize`/`concurrency` tune it. Retries: 429, 5xx, transient
 * gRPC codes and transport faults are retried with backoff (the client also retries gRPC
 * UNAVAILABLE itself); other refusals are terminal VectorStoreRejectedErrors quoting Weaviate.
 */
import weaviate, { ApiKey, Filters, generateUuid5, type Collection, type CollectionConfig, type FilterValue, type WeaviateClient } from 'weaviate-client';
import {
  AliasConflictError,
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
  chunk,
  forEachLimit,
  withRetries,
  type RetryPolicy,
  type Verdict,
} from './vector-store-common';

export interface WeaviateStoreOptions {
  /** REST endpoint, e.g. `http://localhost:8080`. */
  url: string;
  /** gRPC endpoint, e.g. `http://localhost:50051` (`https:` for TLS). Default: the REST host, port 50051. */
  grpcUrl?: string;
  apiKey?: string;
  /** Objects per gRPC batch request (also capped at 8 MB a request). Default 400 (see the header). */
  batchSize?: number;
  /** Batch requests in flight during one upsert. Default 8. */
  concurrency?: number;
  /** Transient failures (429, 5xx, gRPC UNAVAILABLE, timeouts, resets): attempts and first backoff. */
  retry?: Partial<RetryPolicy>;
  /** Startup/query/insert timeouts in seconds (defaults 5/30/90). */
  timeoutSeconds?: { init?: number; query?: number; insert?: number };
}

type WeaviateDistance = 'cosine' | 'dot' | 'l2-squared';
const DISTANCE: Record<Metric, WeaviateDistance> = { cosine: 'cosine', dot: 'dot', euclidean: 'l2-squared' };
const VECTOR = 'default';
const ID_PROP = 'fl_id';
const META_PREFIX = 'm_';
const ALIASES_COLLECTION = 'ForgelineAliases';
const DESCRIPTION_PREFIX = 'forgeline ';
/** UUIDv5 namespace of record ids (fixed: changing it orphans every stored object). */
const ID_NAMESPACE = '5b0a3c1e-6f1d-4d7a-9a49-2f4b8f0c7e21';
/** Under the client's and Weaviate's default gRPC message limit (10 MB). */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;
const DEFAULT_BATCH = 400;
/** Weaviate's default QUERY_MAXIMUM_RESULTS. */
const MAX_TOP_K = 10_000;

type PropType = 'text' | 'number' | 'boolean';

interface VersionSchema {
  spec: VersionSpec;
  /** Metadata property name → type. */
  props: Map<string, PropType>;
}

interface AliasBook {
  version: string;
  generation: number;
  movedAt: string;
  previousVersion: string;
  previousGeneration: number;
  previousMovedAt: string;
}

export function weaviateClassName(index: string, version: string): string {
  return `Fl_${index}_V_${version}`;
}

export function weaviateAliasName(index: string, alias: string): string {
  return `Fl_${index}_A_${alias}`;
}

/** UUIDv5 of a record id: the Weaviate object id. */
export function weaviateObjectId(id: string): string {
  return generateUuid5(id, ID_NAMESPACE);
}

function parseVersionClass(className: string): { index: string; version: string } | null {
  const m = /^Fl_([a-z][a-z0-9_]*)_V_([a-z][a-z0-9_]*)$/.exec(className);
  return m ? { index: m[1]!, version: m[2]! } : null;
}

function propType(value: MetadataValue): PropType {
  return typeof value === 'string' ? 'text' : typeof value === 'number' ? 'number' : 'boolean';
}

/** The HTTP status of a failed REST call (the client does not export its error classes). */
function statusOf(err: unknown): number | undefined {
  if (err instanceof Error && err.name === 'WeaviateUnexpectedStatusCodeError') {
    const code = (err as Error & { code?: unknown }).code;
    return typeof code === 'number' ? code : undefined;
  }
  return undefined;
}

/** For reads where absence is an answer: a 404 becomes null, anything else is rethrown. */
function nullOn404(err: unknown): null {
  if (statusOf(err) === 404) return null;
  throw err;
}

/**
 * Per-alias tail of the in-process swap queue (see the header on the CAS window), shared by every
 * store object of this process that talks to the same Weaviate.
 */
const swapQueue = new Map<string, Promise<unknown>>();

const TRANSIENT_GRPC = /\b(UNAVAILABLE|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|ABORTED|INTERNAL|UNKNOWN|CANCELLED)\b/;

export class WeaviateVectorStore implements VectorStore {
  readonly label: string;
  private readonly schemas = new Map<string, VersionSchema>();
  private readonly policy: RetryPolicy;
  private closed = false;

  private constructor(
    private readonly client: WeaviateClient,
    url: string,
    private readonly options: WeaviateStoreOptions,
  ) {
    this.label = `weaviate:${url}`;
    this.policy = { attempts: options.retry?.attempts ?? 5, baseDelayMs: options.retry?.baseDelayMs ?? 250 };
  }

  static async open(options: WeaviateStoreOptions): Promise<WeaviateVectorStore> {
    const label = `weaviate:${options.url}`;
    const http = parseEndpoint(label, options.url, 'url', 8080);
    const grpc = options.grpcUrl ? parseEndpoint(label, options.grpcUrl, 'grpcUrl', 50051) : { ...http, port: 50051, path: '' };
    for (const [field, value] of [['batchSize', options.batchSize], ['concurrency', options.concurrency]] as const) {
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
        throw new VectorStoreRejectedError(label, `${field} must be a positive whole number, got ${value}`);
      }
    }
    let client: WeaviateClient;
    try {
      client = await weaviate.connectToCustom({
        httpHost: http.host,
        httpPort: http.port,
        httpSecure: http.secure,
        httpPath: http.path,
        grpcHost: grpc.host,
        grpcPort: grpc.port,
        grpcSecure: grpc.secure,
        ...(options.apiKey ? { authCredentials: new ApiKey(options.apiKey) } : {}),
        timeout: { init: 5, query: 30, insert: 90, ...options.timeoutSeconds },
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (/UNAUTHENTICATED|401|anonymous access/i.test(message)) {
        throw new VectorStoreRejectedError(label, `Weaviate refused the credentials; check FORGELINE_WEAVIATE_API_KEY (${message})`);
      }
      throw new Error(`${label}: cannot reach Weaviate at ${options.url} (gRPC ${grpc.host}:${grpc.port}): ${message}`, { cause: err });
    }
    const store = new WeaviateVectorStore(client, options.url.replace(/\/+$/, ''), options);
    try {
      const meta = await store.call('read /v1/meta', () => client.getMeta());
      if (!atLeast(meta.version ?? '', 1, 32)) {
        throw new VectorStoreRejectedError(store.label, `Weaviate ${meta.version} has no collection aliases; use Weaviate 1.32 or newer`);
      }
    } catch (err) {
      await client.close();
      throw err;
    }
    return store;
  }

  async createVersion(index: string, version: string, spec: VersionSpec): Promise<void> {
    this.checkOpen();
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    checkSpec(this.label, index, version, spec);
    const name = weaviateClassName(index, version);
    const existing = await this.readSchema(name, true);
    if (existing) return this.sameSpec(index, version, existing.spec, spec);
    try {
      await this.call(`create collection ${name}`, () =>
        this.client.collections.create({
          name,
          description: DESCRIPTION_PREFIX + JSON.stringify({ dimensions: spec.dimensions, metric: spec.metric }),
          vectorizers: weaviate.configure.vectors.selfProvided({
            name: VECTOR,
            vectorIndexConfig: weaviate.configure.vectorIndex.hnsw({ distanceMetric: DISTANCE[spec.metric] }),
          }),
          properties: [{ name: ID_PROP, dataType: 'text', tokenization: 'field', indexFilterable: true, indexSearchable: false }],
        }),
      );
    } catch (err) {
      // A concurrent create of the same version (or our own retried one): fine with the same spec.
      const raced = await this.readSchema(name, true);
      if (!raced) throw err;
      return this.sameSpec(index, version, raced.spec, spec);
    }
    this.schemas.set(name, { spec: { dimensions: spec.dimensions, metric: spec.metric }, props: new Map() });
  }

  async listVersions(index: string): Promise<VersionInfo[]> {
    this.checkOpen();
    checkName(this.label, 'index', index);
    const all = await this.call('list collections', () => this.client.collections.listAll());
    const out: VersionInfo[] = [];
    for (const config of all) {
      const parsed = parseVersionClass(config.name);
      if (!parsed || parsed.index !== index) continue;
      const schema = this.toSchema(config);
      if (schema) out.push({ version: parsed.version, ...schema.spec });
    }
    return out.sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
  }

  async dropVersion(index: string, version: string): Promise<void> {
    this.checkOpen();
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const name = weaviateClassName(index, version);
    const aliases = (await this.call(`list aliases of ${name}`, () => this.client.alias.listAll({ collection: name }))) ?? [];
    const pointing = aliases.filter((a) => a.collection === name).map((a) => a.alias);
    if (pointing.length > 0) {
      throw this.rejected(`${index}/${version}: alias ${pointing.join(', ')} points at it; swap the alias to another version before dropping this one`);
    }
    // Deleting an absent collection succeeds in Weaviate.
    await this.call(`delete collection ${name}`, () => this.client.collections.delete(name));
    this.schemas.delete(name);
  }

  async upsert(index: string, version: string, records: readonly VectorRecord[]): Promise<void> {
    this.checkOpen();
    const target = `${index}/${version}`;
    const name = weaviateClassName(index, version);
    const schema = await this.requireVersion(index, version);
    // Everything is checked before the first write: ids, widths, values, metadata keys and types.
    const checked = checkRecords(this.label, target, records, schema.spec.dimensions);
    if (checked.length === 0) return;
    const newProps = new Map<string, PropType>();
    for (const record of checked) {
      for (const [key, value] of Object.entries(record.metadata)) {
        const type = propType(value);
        const known = schema.props.get(META_PREFIX + key) ?? newProps.get(META_PREFIX + key);
        if (known && known !== type) {
          throw this.rejected(`${target}: metadata ${key} holds ${known} values, record ${record.id} gives a ${type}; keep one type per key`);
        }
        if (!known) newProps.set(META_PREFIX + key, type);
      }
    }
    const collection = this.client.collections.use(name);
    for (const [prop, type] of newProps) await this.addProperty(collection, name, prop, type);
    const objects = checked.map((record) => ({
      id: weaviateObjectId(record.id),
      properties: { [ID_PROP]: record.id, ...Object.fromEntries(Object.entries(record.metadata).map(([k, v]) => [META_PREFIX + k, v])) },
      vectors: { [VECTOR]: record.values },
    }));
    const groups = batches(objects, this.options.batchSize ?? DEFAULT_BATCH, MAX_BATCH_BYTES, (o) => o.vectors[VECTOR].length * 4 + JSON.stringify(o.properties).length + 64);
    await forEachLimit(groups, this.options.concurrency ?? 8, async (group) => {
      const operation = `upsert ${group.length} objects into ${target}`;
      await this.call(operation, async () => {
        const result = await collection.data.insertMany(group);
        if (result.hasErrors) {
          const errors = Object.values(result.errors);
          throw new WeaviateObjectErrors(`${this.label}: ${operation}: ${errors.length} objects failed, e.g. ${errors[0]?.message ?? 'unknown error'}`);
        }
      });
    });
  }

  async delete(index: string, version: string, ids: readonly string[]): Promise<void> {
    this.checkOpen();
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const unique = checkIds(this.label, `${index}/${version}`, ids);
    const name = weaviateClassName(index, version);
    if (unique.length === 0 || !(await this.readSchema(name, false))) return;
    const collection = this.client.collections.use(name);
    for (const group of chunk(unique.map(weaviateObjectId), this.options.batchSize ?? DEFAULT_BATCH)) {
      const result = await this.call(`delete ${group.length} objects from ${index}/${version}`, () =>
        collection.data.deleteMany(collection.filter.byId().containsAny(group)),
      );
      if (result.failed > 0) throw new Error(`${this.label}: ${index}/${version}: ${result.failed} of ${group.length} deletes failed`);
    }
  }

  async fetch(index: string, version: string, ids: readonly string[]): Promise<VectorRecord[]> {
    const found = await this.fetchObjects(index, version, ids, true);
    return found.map((o) => ({ id: o.id, values: o.values!, metadata: o.metadata }));
  }

  async existingIds(index: string, version: string, ids: readonly string[]): Promise<Set<string>> {
    const found = await this.fetchObjects(index, version, ids, false);
    return new Set(found.map((o) => o.id));
  }

  async count(index: string, version: string): Promise<number> {
    this.checkOpen();
    const name = weaviateClassName(index, version);
    await this.requireVersion(index, version);
    const result = await this.call(`count ${index}/${version}`, () => this.client.collections.use(name).aggregate.overAll());
    return result.totalCount;
  }

  async query(index: string, target: QueryTarget, vector: Float32Array | number[], options: QueryOptions): Promise<QueryMatch[]> {
    this.checkOpen();
    checkName(this.label, 'index', index);
    let version: string;
    if ('alias' in target) {
      checkName(this.label, 'alias', target.alias);
      const resolved = await this.resolveAlias(index, target.alias);
      if (!resolved) throw this.rejected(`${index}: alias ${target.alias} is not set; swap it to a version first`);
      version = resolved;
    } else {
      version = target.version;
    }
    const where = `${index}/${version}`;
    checkTopK(this.label, where, options, MAX_TOP_K);
    const conditions = checkFilter(this.label, where, options.filter);
    const name = weaviateClassName(index, version);
    const schema = await this.requireVersion(index, version);
    const [values] = checkRecords(this.label, `${where} query`, [{ id: 'query', values: vector }], schema.spec.dimensions);
    const collection = this.client.collections.use(name);
    const filters = this.toFilter(collection, schema, conditions);
    if (filters === null) return []; // a condition no record can satisfy
    const result = await this.call(`query ${where}`, () =>
      collection.query.nearVector(values!.values, {
        targetVector: VECTOR,
        limit: options.topK,
        ...(filters ? { filters } : {}),
        returnMetadata: ['distance'],
        returnProperties: [ID_PROP, ...schema.props.keys()],
      }),
    );
    return result.objects.map((o) => ({
      id: String(o.properties[ID_PROP]),
      score: toScore(schema.spec.metric, o.metadata?.distance),
      metadata: toMetadata(o.properties),
    }));
  }

  async getAlias(index: string, alias: string): Promise<AliasRecord | null> {
    this.checkOpen();
    checkName(this.label, 'index', index);
    checkName(this.label, 'alias', alias);
    const [actual, book] = await Promise.all([this.resolveAlias(index, alias), this.readBook(index, alias)]);
    return reconcile(alias, actual, book);
  }

  async swapAlias(index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord> {
    this.checkOpen();
    checkName(this.label, 'index', index);
    checkName(this.label, 'alias', alias);
    checkName(this.label, 'version', version);
    if (expected !== null) checkName(this.label, 'version', expected);
    const key = `${this.label} ${index}/${alias}`;
    const run = (swapQueue.get(key) ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => this.swapNow(index, alias, version, expected));
    swapQueue.set(key, run);
    try {
      return await run;
    } finally {
      if (swapQueue.get(key) === run) swapQueue.delete(key);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.close();
  }

  // ---- internals ----

  private async swapNow(index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord> {
    await this.requireVersion(index, version);
    const [actual, book] = await Promise.all([this.resolveAlias(index, alias), this.readBook(index, alias)]);
    const current = reconcile(alias, actual, book);
    if (actual === version) return current!; // a retried swap: already there
    if (actual !== expected) throw new AliasConflictError(this.label, index, alias, expected, actual);
    const next: AliasRecord = { alias, version, generation: (current?.generation ?? 0) + 1, movedAt: new Date().toISOString() };
    // The intent first: if we die before the move, the native alias still names `current`.
    await this.writeBook(index, alias, next, current);
    const aliasName = weaviateAliasName(index, alias);
    const className = weaviateClassName(index, version);
    if (actual === null) {
      try {
        await this.call(`create alias ${aliasName}`, () => this.client.alias.create({ alias: aliasName, collection: className }));
      } catch (err) {
        // Weaviate refuses a second create: someone else set it first (or our retried create landed).
        const now = await this.resolveAlias(index, alias);
        if (now === version) return next;
        if (now !== null) throw new AliasConflictError(this.label, index, alias, expected, now);
        throw err;
      }
    } else {
      await this.call(`move alias ${aliasName}`, () => this.client.alias.update({ alias: aliasName, newTargetCollection: className }));
    }
    return next;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`${this.label}: the store is closed`);
  }

  private rejected(message: string): VectorStoreRejectedError {
    return new VectorStoreRejectedError(this.label, message);
  }

  private call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return withRetries(this.label, operation, this.policy, (error) => this.classify(operation, error), fn);
  }

  /** 429, 5xx, transient gRPC codes, timeouts and transport faults are retried; other refusals are terminal. */
  private classify(operation: string, error: unknown): Verdict {
    if (error instanceof VectorStoreRejectedError || error instanceof AliasConflictError) return { retry: false, error };
    if (error instanceof WeaviateObjectErrors) return { retry: true };
    const name = error instanceof Error ? error.name : '';
    const message = error instanceof Error ? error.message : String(error);
    if (name === 'WeaviateUnauthenticatedError' || /\bUNAUTHENTICATED\b/.test(message)) {
      return { retry: false, error: this.rejected(`${operation}: Weaviate refused the credentials; check FORGELINE_WEAVIATE_API_KEY`) };
    }
    if (name === 'WeaviateInsufficientPermissionsError' || /\bPERMISSION_DENIED\b/.test(message)) {
      return { retry: false, error: this.rejected(`${operation}: the API key lacks a permission: ${message}`) };
    }
    const status = statusOf(error);
    if (status !== undefined) {
      if (status === 429 || status >= 500) return { retry: true };
      return { retry: false, error: this.rejected(`${operation}: Weaviate answered ${status}: ${message}`) };
    }
    if (name === 'WeaviateRequestTimeoutError' || name === 'WeaviateGRPCUnavailableError') return { retry: true };
    if (name.startsWith('Weaviate')) {
      if (TRANSIENT_GRPC.test(message)) return { retry: true };
      return { retry: false, error: this.rejected(`${operation}: ${name}: ${message}`) };
    }
    return { retry: true }; // a socket reset, a fetch TypeError: transport
  }

  private sameSpec(index: string, version: string, have: VersionSpec, want: VersionSpec): void {
    if (have.dimensions !== want.dimensions || have.metric !== want.metric) {
      throw this.rejected(
        `${index}/${version} exists with ${have.dimensions} dimensions (${have.metric}), not ${want.dimensions} (${want.metric}); create a new version for a different model or metric`,
      );
    }
  }

  private toSchema(config: CollectionConfig): VersionSchema | null {
    const description = config.description ?? '';
    if (!description.startsWith(DESCRIPTION_PREFIX)) return null;
    let spec: VersionSpec;
    try {
      spec = JSON.parse(description.slice(DESCRIPTION_PREFIX.length)) as VersionSpec;
    } catch {
      return null;
    }
    const index = config.vectorizers[VECTOR]?.indexConfig as { distance?: string } | undefined;
    if (index?.distance !== DISTANCE[spec.metric]) {
      throw this.rejected(`collection ${config.name} says metric ${spec.metric} but its vector index uses ${index?.distance ?? 'no distance'}; it was changed outside Forgeline`);
    }
    const props = new Map<string, PropType>();
    for (const p of config.properties) {
      if (!p.name.startsWith(META_PREFIX)) continue;
      if (p.dataType === 'text' || p.dataType === 'number' || p.dataType === 'boolean') props.set(p.name, p.dataType);
    }
    return { spec: { dimensions: spec.dimensions, metric: spec.metric }, props };
  }

  /** The schema of a version's collection, null when absent; `fresh` re-reads a cached one. */
  private async readSchema(name: string, fresh: boolean): Promise<VersionSchema | null> {
    if (!fresh) {
      const cached = this.schemas.get(name);
      if (cached) return cached;
    }
    const config = await this.call(`read collection ${name}`, () => this.client.collections.use(name).config.get().catch(nullOn404));
    if (!config) {
      this.schemas.delete(name);
      return null;
    }
    const schema = this.toSchema(config);
    if (!schema) throw this.rejected(`collection ${name} exists but was not created by Forgeline (no spec in its description)`);
    this.schemas.set(name, schema);
    return schema;
  }

  private async requireVersion(index: string, version: string): Promise<VersionSchema> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const schema = await this.readSchema(weaviateClassName(index, version), false);
    if (!schema) throw this.rejected(`${index}/${version} does not exist; createVersion it first`);
    return schema;
  }

  private async addProperty(collection: Collection, name: string, prop: string, type: PropType): Promise<void> {
    try {
      await this.call(`add property ${prop} to ${name}`, () =>
        collection.config.addProperty({
          name: prop,
          dataType: type,
          indexFilterable: true,
          indexSearchable: false,
          ...(type === 'text' ? { tokenization: 'field' as const } : {}),
        }),
      );
    } catch (err) {
      // Someone added it meanwhile (another writer, or our retried request): fine if the type agrees.
      const schema = await this.readSchema(name, true);
      const have = schema?.props.get(prop);
      if (have === undefined) throw err;
      if (have !== type) throw this.rejected(`${name}: metadata ${prop.slice(META_PREFIX.length)} holds ${have} values, not ${type}`);
      return;
    }
    this.schemas.get(name)?.props.set(prop, type);
  }

  private async fetchObjects(index: string, version: string, ids: readonly string[], withVectors: boolean) {
    this.checkOpen();
    const where = `${index}/${version}`;
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const unique = checkIds(this.label, where, ids);
    if (unique.length === 0) return [];
    const schema = await this.requireVersion(index, version);
    const collection = this.client.collections.use(weaviateClassName(index, version));
    const out: { id: string; values?: number[]; metadata: Metadata }[] = [];
    for (const group of chunk(unique, this.options.batchSize ?? DEFAULT_BATCH)) {
      const result = await this.call(`fetch ${group.length} objects from ${where}`, () =>
        collection.query.fetchObjects({
          filters: collection.filter.byId().containsAny(group.map(weaviateObjectId)),
          limit: group.length,
          includeVector: withVectors ? [VECTOR] : false,
          returnProperties: withVectors ? [ID_PROP, ...schema.props.keys()] : [ID_PROP],
        }),
      );
      for (const o of result.objects) {
        const values = withVectors ? (o.vectors[VECTOR] as number[] | undefined) : undefined;
        if (withVectors && !values) throw new Error(`${this.label}: ${where}: object ${o.uuid} came back without its vector`);
        out.push({ id: String(o.properties[ID_PROP]), ...(values ? { values } : {}), metadata: toMetadata(o.properties) });
      }
    }
    return out;
  }

  /**
   * The conditions in Weaviate's filter language, or null when one can match no record (a key no
   * record has, or values of another type than the key holds): equal per key, AND across keys;
   * several values: containsAny on text (exact with field tokenization), an OR of equal otherwise.
   */
  private toFilter(collection: Collection, schema: VersionSchema, conditions: Array<[string, MetadataValue[]]>): FilterValue | undefined | null {
    const clauses: FilterValue[] = [];
    for (const [key, wanted] of conditions) {
      const prop = META_PREFIX + key;
      const type = schema.props.get(prop);
      const values = wanted.filter((v) => type !== undefined && propType(v) === type);
      if (values.length === 0) return null;
      const by = collection.filter.byProperty(prop);
      if (values.length === 1) clauses.push(by.equal(values[0] as never));
      else if (type === 'text') clauses.push(by.containsAny(values as string[]));
      else clauses.push(Filters.or(...values.map((v) => by.equal(v as never))));
    }
    if (clauses.length === 0) return undefined;
    return clauses.length === 1 ? clauses[0] : Filters.and(...clauses);
  }

  private async resolveAlias(index: string, alias: string): Promise<string | null> {
    const name = weaviateAliasName(index, alias);
    const found = await this.call(`read alias ${name}`, () => this.client.alias.get(name).catch(nullOn404));
    if (!found) return null;
    const target = found.collection;
    const parsed = parseVersionClass(target);
    if (!parsed || parsed.index !== index) {
      throw this.rejected(`alias ${name} points at ${target}, which is not a version of ${index}; it was moved outside Forgeline`);
    }
    return parsed.version;
  }

  private async bookCollection(create: boolean): Promise<Collection | null> {
    const exists = () => this.call(`check collection ${ALIASES_COLLECTION}`, () => this.client.collections.exists(ALIASES_COLLECTION));
    if (!(await exists())) {
      if (!create) return null;
      try {
        await this.call(`create collection ${ALIASES_COLLECTION}`, () =>
          this.client.collections.create({
            name: ALIASES_COLLECTION,
            description: 'Forgeline alias bookkeeping: generation and move time of each alias (the alias itself is native)',
            vectorizers: weaviate.configure.vectors.selfProvided(), // no vectors, and never a vectorizer module
            properties: [
              { name: 'index', dataType: 'text', tokenization: 'field' },
              { name: 'alias', dataType: 'text', tokenization: 'field' },
              { name: 'version', dataType: 'text', tokenization: 'field' },
              { name: 'generation', dataType: 'int' },
              { name: 'movedAt', dataType: 'text', tokenization: 'field' },
              { name: 'previousVersion', dataType: 'text', tokenization: 'field' },
              { name: 'previousGeneration', dataType: 'int' },
              { name: 'previousMovedAt', dataType: 'text', tokenization: 'field' },
            ],
          }),
        );
      } catch (err) {
        if (!(await exists())) throw err; // else: created concurrently
      }
    }
    return this.client.collections.use(ALIASES_COLLECTION);
  }

  private async readBook(index: string, alias: string): Promise<AliasBook | null> {
    const collection = await this.bookCollection(false);
    if (!collection) return null;
    const obj = await this.call(`read alias record ${index}/${alias}`, () => collection.query.fetchObjectById(weaviateObjectId(`${index}/${alias}`)));
    return obj ? (obj.properties as unknown as AliasBook) : null;
  }

  private async writeBook(index: string, alias: string, next: AliasRecord, current: AliasRecord | null): Promise<void> {
    const collection = (await this.bookCollection(true))!;
    const properties = {
      index,
      alias,
      version: next.version,
      generation: next.generation,
      movedAt: next.movedAt,
      previousVersion: current?.version ?? '',
      previousGeneration: current?.generation ?? 0,
      previousMovedAt: current?.movedAt ?? '',
    };
    const id = weaviateObjectId(`${index}/${alias}`);
    // Weaviate's PUT (replace) needs the object to exist (404 otherwise); POST creates it.
    await this.call(`write alias record ${index}/${alias}`, async () => {
      if (await collection.data.exists(id)) await collection.data.replace({ id, properties });
      else await collection.data.insert({ id, properties });
    });
  }
}

/** Objects a batch request refused one by one (the request itself succeeded): retried as a whole. */
class WeaviateObjectErrors extends Error {}

/**
 * Where the alias really points (the native alias) with its generation from the intent record:
 * the move it records, or the state before it when the move did not happen.
 */
function reconcile(alias: string, actual: string | null, book: AliasBook | null): AliasRecord | null {
  if (actual === null) return null;
  if (book?.version === actual) return { alias, version: actual, generation: book.generation, movedAt: book.movedAt };
  if (book && book.previousVersion === actual) {
    return { alias, version: actual, generation: book.previousGeneration, movedAt: book.previousMovedAt };
  }
  // Moved outside Forgeline (or by a racing writer, see the header): the generation is a guess.
  return { alias, version: actual, generation: (book?.generation ?? 0) + 1, movedAt: book?.movedAt ?? new Date(0).toISOString() };
}

function toScore(metric: Metric, distance: number | undefined): number {
  if (distance === undefined) throw new Error('Weaviate returned a match without its distance');
  if (metric === 'cosine') return 1 - distance;
  if (metric === 'dot') return -distance;
  return -Math.sqrt(Math.max(0, distance));
}

function toMetadata(properties: Record<string, unknown>): Metadata {
  const out: Metadata = {};
  for (const [k, v] of Object.entries(properties)) {
    if (!k.startsWith(META_PREFIX) || v === null || v === undefined) continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k.slice(META_PREFIX.length)] = v;
  }
  return out;
}

function atLeast(version: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > major || (maj === major && min >= minor);
}

function parseEndpoint(label: string, raw: string, field: string, defaultPort: number): { host: string; port: number; secure: boolean; path: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new VectorStoreRejectedError(label, `${field} ${JSON.stringify(raw)} is not a URL; give e.g. http://localhost:${defaultPort}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new VectorStoreRejectedError(label, `${field} ${JSON.stringify(raw)} must start with http:// or https://, e.g. http://localhost:${defaultPort}`);
  }
  const secure = url.protocol === 'https:';
  return {
    host: url.hostname,
    port: url.port ? Number(url.port) : secure ? 443 : defaultPort,
    secure,
    path: url.pathname.replace(/\/+$/, ''),
  };
}
