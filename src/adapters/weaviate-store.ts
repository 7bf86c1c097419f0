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
 * through one store object are serialized per alias (an in-process lock), so among them the
 * compare-and-swap is exact. A writer in another process that moves the alias between our read
 * and our update is overwritten (last writer wins) instead of getting AliasConflictError. The
 * first creation is a real create-if-absent (Weaviate refuses a second `POST /v1/aliases` for the
 * same name). Keep one writer per alias across processes (the re-embed workflow for that corpus,
 * whose workflow id is unique) and the window never opens.
 *
 * `query` on an alias resolves it (one REST read) and searches the version it points at, so one
 * query always reads one version and its scores use that version's metric.
 */
import weaviate, {
  ApiKey,
  Filters,
  generateUuid5,
  type Collection,
  type CollectionConfig,
  type FilterValue,
  type WeaviateClient,
} from 'weaviate-client';
import {
  AliasConflictError,
  VECTOR_NAME,
  VectorStoreRejectedError,
  type AliasRecord,
  type Metadata,
  type MetadataFilter,
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

export interface WeaviateStoreOptions {
  /** REST endpoint, e.g. `http://localhost:8080`. */
  url: string;
  /** gRPC endpoint, e.g. `http://localhost:50051` (`https:` for TLS). Default: REST host, port 50051. */
  grpcUrl?: string;
  apiKey?: string;
  /** Objects per gRPC batch request. */
  batchSize?: number;
  /** Startup/query/insert timeouts in seconds (client defaults 2/30/90). */
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
const RECORD_ID = /^[A-Za-z0-9_:.-]{1,128}$/;
const METADATA_KEY = /^[A-Za-z0-9_]+$/;

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

export class WeaviateVectorStore implements VectorStore {
  readonly label: string;
  private readonly schemas = new Map<string, VersionSchema>();
  /** Per-alias tail of the in-process swap queue (see the header on the CAS window). */
  private readonly swapQueue = new Map<string, Promise<unknown>>();
  private readonly batchSize: number;

  private constructor(private readonly client: WeaviateClient, url: string, batchSize: number) {
    this.label = `weaviate:${url}`;
    this.batchSize = batchSize;
  }

  static async open(options: WeaviateStoreOptions): Promise<WeaviateVectorStore> {
    const http = parseEndpoint(options.url, 'url', 8080);
    const grpc = options.grpcUrl
      ? parseEndpoint(options.grpcUrl, 'grpcUrl', 50051)
      : { host: http.host, port: 50051, secure: http.secure, path: '' };
    const batchSize = options.batchSize ?? 500;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new VectorStoreRejectedError(`weaviate:${options.url}`, `batchSize must be a positive integer, got ${batchSize}`);
    }
    const client = await weaviate.connectToCustom({
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
    const store = new WeaviateVectorStore(client, options.url.replace(/\/+$/, ''), batchSize);
    try {
      const meta = await client.getMeta();
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
    this.checkName('index', index);
    this.checkName('version', version);
    if (!Number.isInteger(spec.dimensions) || spec.dimensions < 1 || spec.dimensions > 65535) {
      throw this.rejected(`${index}/${version}: dimensions must be an integer in 1..65535, got ${spec.dimensions}`);
    }
    if (!(spec.metric in DISTANCE)) {
      throw this.rejected(`${index}/${version}: metric must be cosine, dot or euclidean, got ${String(spec.metric)}`);
    }
    const name = weaviateClassName(index, version);
    const existing = await this.readSchema(name, true);
    if (existing) return this.sameSpec(index, version, existing.spec, spec);
    try {
      await this.client.collections.create({
        name,
        description: DESCRIPTION_PREFIX + JSON.stringify({ dimensions: spec.dimensions, metric: spec.metric }),
        vectorizers: weaviate.configure.vectors.selfProvided({
          name: VECTOR,
          vectorIndexConfig: weaviate.configure.vectorIndex.hnsw({ distanceMetric: DISTANCE[spec.metric] }),
        }),
        properties: [{ name: ID_PROP, dataType: 'text', tokenization: 'field', indexFilterable: true, indexSearchable: false }],
      });
    } catch (err) {
      // A concurrent create of the same version: fine if it has the same spec.
      const raced = await this.readSchema(name, true);
      if (!raced) throw err;
      return this.sameSpec(index, version, raced.spec, spec);
    }
    this.schemas.set(name, { spec: { ...spec }, props: new Map() });
  }

  async listVersions(index: string): Promise<VersionInfo[]> {
    this.checkName('index', index);
    const all = await this.client.collections.listAll();
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
    this.checkName('index', index);
    this.checkName('version', version);
    const name = weaviateClassName(index, version);
    const aliases = (await this.client.alias.listAll({ collection: name })) ?? [];
    const ours = aliases.filter((a) => a.collection === name).map((a) => a.alias);
    if (ours.length > 0) {
      throw this.rejected(`${index}/${version}: alias ${ours.join(', ')} points at it; swap the alias to another version before dropping this one`);
    }
    try {
      await this.client.collections.delete(name);
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    this.schemas.delete(name);
  }

  async upsert(index: string, version: string, records: readonly VectorRecord[]): Promise<void> {
    if (records.length === 0) return;
    const name = weaviateClassName(index, version);
    const schema = await this.requireVersion(index, version);
    // Validate everything before the first write: width, ids, metadata keys and types.
    const latest = new Map<string, VectorRecord>();
    const newProps = new Map<string, PropType>();
    for (const record of records) {
      this.checkRecordId(record.id);
      if (record.values.length !== schema.spec.dimensions) {
        throw this.rejected(`${index}/${version}: record ${record.id} has ${record.values.length} dimensions, the version holds ${schema.spec.dimensions}`);
      }
      for (const value of record.values) {
        if (!Number.isFinite(value)) throw this.rejected(`${index}/${version}: record ${record.id} has a non-finite vector component`);
      }
      for (const [key, value] of Object.entries(record.metadata ?? {})) {
        this.checkMetadataKey(key);
        const type = propType(value);
        if (type === 'number' && !Number.isFinite(value)) {
          throw this.rejected(`${index}/${version}: record ${record.id} metadata ${key} is not a finite number`);
        }
        const known = schema.props.get(META_PREFIX + key) ?? newProps.get(META_PREFIX + key);
        if (known && known !== type) {
          throw this.rejected(`${index}/${version}: metadata ${key} holds ${known} values, record ${record.id} gives a ${type}; keep one type per key`);
        }
        if (!known) newProps.set(META_PREFIX + key, type);
      }
      latest.delete(record.id); // last write wins, in input order
      latest.set(record.id, record);
    }
    const collection = this.client.collections.use(name);
    for (const [prop, type] of newProps) await this.addProperty(collection, name, prop, type);
    const objects = [...latest.values()].map((record) => ({
      id: weaviateObjectId(record.id),
      properties: {
        [ID_PROP]: record.id,
        ...Object.fromEntries(Object.entries(record.metadata ?? {}).map(([k, v]) => [META_PREFIX + k, v])),
      },
      vectors: { [VECTOR]: Array.from(record.values) },
    }));
    for (let i = 0; i < objects.length; i += this.batchSize) {
      const result = await collection.data.insertMany(objects.slice(i, i + this.batchSize));
      if (result.hasErrors) {
        const first = Object.values(result.errors)[0];
        throw new Error(`${this.label}: ${index}/${version}: ${Object.keys(result.errors).length} of ${Math.min(this.batchSize, objects.length - i)} objects failed: ${first?.message ?? 'unknown error'}`);
      }
    }
  }

  async delete(index: string, version: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    ids.forEach((id) => this.checkRecordId(id));
    const name = weaviateClassName(index, version);
    if (!(await this.readSchema(name, true, index, version))) return;
    const collection = this.client.collections.use(name);
    const uuids = [...new Set(ids)].map(weaviateObjectId);
    for (let i = 0; i < uuids.length; i += this.batchSize) {
      const result = await collection.data.deleteMany(collection.filter.byId().containsAny(uuids.slice(i, i + this.batchSize)));
      if (result.failed > 0) throw new Error(`${this.label}: ${index}/${version}: ${result.failed} deletes failed`);
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
    const name = weaviateClassName(index, version);
    await this.requireVersion(index, version);
    const result = await this.client.collections.use(name).aggregate.overAll();
    return result.totalCount;
  }

  async query(index: string, target: QueryTarget, vector: Float32Array | number[], options: QueryOptions): Promise<QueryMatch[]> {
    this.checkName('index', index);
    if (!Number.isInteger(options.topK) || options.topK < 1) {
      throw this.rejected(`${index}: topK must be a positive integer, got ${options.topK}`);
    }
    let version: string;
    if ('alias' in target) {
      this.checkName('alias', target.alias);
      const resolved = await this.resolveAlias(index, target.alias);
      if (!resolved) throw this.rejected(`${index}: alias ${target.alias} is not set; swap it to a version first`);
      version = resolved;
    } else {
      version = target.version;
    }
    const name = weaviateClassName(index, version);
    const schema = await this.requireVersion(index, version);
    if (vector.length !== schema.spec.dimensions) {
      throw this.rejected(`${index}/${version}: query vector has ${vector.length} dimensions, the version holds ${schema.spec.dimensions}`);
    }
    const collection = this.client.collections.use(name);
    const filters = options.filter ? this.toFilter(collection, schema, options.filter) : undefined;
    if (filters === null) return []; // a clause no record can satisfy
    const result = await collection.query.nearVector(Array.from(vector), {
      targetVector: VECTOR,
      limit: options.topK,
      ...(filters ? { filters } : {}),
      returnMetadata: ['distance'],
      returnProperties: [ID_PROP, ...schema.props.keys()],
    });
    return result.objects.map((o) => ({
      id: String(o.properties[ID_PROP]),
      score: toScore(schema.spec.metric, o.metadata?.distance),
      metadata: toMetadata(o.properties),
    }));
  }

  async getAlias(index: string, alias: string): Promise<AliasRecord | null> {
    this.checkName('index', index);
    this.checkName('alias', alias);
    const [actual, book] = await Promise.all([this.resolveAlias(index, alias), this.readBook(index, alias)]);
    return reconcile(index, alias, actual, book);
  }

  async swapAlias(index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord> {
    this.checkName('index', index);
    this.checkName('alias', alias);
    this.checkName('version', version);
    if (expected !== null) this.checkName('expected', expected);
    const key = `${index}/${alias}`;
    const run = (this.swapQueue.get(key) ?? Promise.resolve()).catch(() => undefined).then(() => this.swapNow(index, alias, version, expected));
    this.swapQueue.set(key, run);
    try {
      return await run;
    } finally {
      if (this.swapQueue.get(key) === run) this.swapQueue.delete(key);
    }
  }

  private async swapNow(index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord> {
    await this.requireVersion(index, version);
    const [actual, book] = await Promise.all([this.resolveAlias(index, alias), this.readBook(index, alias)]);
    const current = reconcile(index, alias, actual, book);
    if (actual === version) return current!;
    if (actual !== expected) throw new AliasConflictError(this.label, index, alias, expected, actual);
    const next: AliasRecord = { alias, version, generation: (current?.generation ?? 0) + 1, movedAt: new Date().toISOString() };
    await this.writeBook(index, alias, next, current);
    const aliasName = weaviateAliasName(index, alias);
    const className = weaviateClassName(index, version);
    if (actual === null) {
      try {
        await this.client.alias.create({ alias: aliasName, collection: className });
      } catch (err) {
        const now = await this.resolveAlias(index, alias);
        if (now === version) return next;
        if (now !== null) throw new AliasConflictError(this.label, index, alias, expected, now);
        throw err;
      }
    } else {
      await this.client.alias.update({ alias: aliasName, newTargetCollection: className });
    }
    return next;
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  // ---- internals ----

  private rejected(message: string): VectorStoreRejectedError {
    return new VectorStoreRejectedError(this.label, message);
  }

  private checkName(what: string, name: string): void {
    if (!VECTOR_NAME.test(name)) {
      throw this.rejected(`${what} ${JSON.stringify(name)} must match ${VECTOR_NAME.source} (lower-case letter first, then lower-case letters, digits or _; at most 48)`);
    }
  }

  private checkRecordId(id: string): void {
    if (typeof id !== 'string' || !RECORD_ID.test(id)) {
      throw this.rejected(`record id ${JSON.stringify(id)} must be 1-128 characters of [A-Za-z0-9_:.-]`);
    }
  }

  private checkMetadataKey(key: string): void {
    if (!METADATA_KEY.test(key)) throw this.rejected(`metadata key ${JSON.stringify(key)} must be letters, digits and _ only`);
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
    const distance = config.vectorizers[VECTOR]?.indexConfig as { distance?: string } | undefined;
    if (!distance || distance.distance !== DISTANCE[spec.metric]) {
      throw this.rejected(`collection ${config.name} says metric ${spec.metric} but its vector index uses ${distance?.distance ?? 'no distance'}; it was changed outside Forgeline`);
    }
    const props = new Map<string, PropType>();
    for (const p of config.properties) {
      if (!p.name.startsWith(META_PREFIX)) continue;
      if (p.dataType === 'text' || p.dataType === 'number' || p.dataType === 'boolean') props.set(p.name, p.dataType);
    }
    return { spec: { dimensions: spec.dimensions, metric: spec.metric }, props };
  }

  /** The schema of a version class, cached; null when absent (with `fresh`, always re-read). */
  private async readSchema(name: string, fresh: boolean, index?: string, version?: string): Promise<VersionSchema | null> {
    if (!fresh) {
      const cached = this.schemas.get(name);
      if (cached) return cached;
    }
    if (index !== undefined) this.checkName('index', index);
    if (version !== undefined) this.checkName('version', version);
    let config: CollectionConfig;
    try {
      config = await this.client.collections.use(name).config.get();
    } catch (err) {
      if (statusOf(err) === 404) {
        this.schemas.delete(name);
        return null;
      }
      throw err;
    }
    const schema = this.toSchema(config);
    if (!schema) throw this.rejected(`collection ${name} exists but was not created by Forgeline (no spec in its description)`);
    this.schemas.set(name, schema);
    return schema;
  }

  private async requireVersion(index: string, version: string): Promise<VersionSchema> {
    this.checkName('index', index);
    this.checkName('version', version);
    const schema = await this.readSchema(weaviateClassName(index, version), false);
    if (!schema) throw this.rejected(`${index}/${version} does not exist; createVersion it first`);
    return schema;
  }

  private async addProperty(collection: Collection, name: string, prop: string, type: PropType): Promise<void> {
    try {
      await collection.config.addProperty({
        name: prop,
        dataType: type,
        indexFilterable: true,
        indexSearchable: false,
        ...(type === 'text' ? { tokenization: 'field' as const } : {}),
      });
    } catch (err) {
      // Someone added it meanwhile: fine if the type agrees.
      const schema = await this.readSchema(name, true);
      const have = schema?.props.get(prop);
      if (have === undefined) throw err;
      if (have !== type) throw this.rejected(`${name}: metadata ${prop.slice(META_PREFIX.length)} holds ${have} values, not ${type}`);
      return;
    }
    this.schemas.get(name)?.props.set(prop, type);
  }

  private async fetchObjects(index: string, version: string, ids: readonly string[], withVectors: boolean) {
    if (ids.length === 0) return [];
    ids.forEach((id) => this.checkRecordId(id));
    const name = weaviateClassName(index, version);
    const schema = await this.requireVersion(index, version);
    const collection = this.client.collections.use(name);
    const unique = [...new Set(ids)];
    const out: { id: string; values?: number[]; metadata: Metadata }[] = [];
    for (let i = 0; i < unique.length; i += this.batchSize) {
      const slice = unique.slice(i, i + this.batchSize);
      const result = await collection.query.fetchObjects({
        filters: collection.filter.byId().containsAny(slice.map(weaviateObjectId)),
        limit: slice.length,
        includeVector: withVectors ? [VECTOR] : false,
        returnProperties: withVectors ? [ID_PROP, ...schema.props.keys()] : [ID_PROP],
      });
      for (const o of result.objects) {
        const values = withVectors ? (o.vectors[VECTOR] as number[] | undefined) : undefined;
        if (withVectors && !values) throw new Error(`${this.label}: ${index}/${version}: object ${o.uuid} came back without its vector`);
        out.push({ id: String(o.properties[ID_PROP]), ...(values ? { values } : {}), metadata: toMetadata(o.properties) });
      }
    }
    return out;
  }

  /** The filter for Weaviate, or null when a clause can match no record (unknown key, other type). */
  private toFilter(collection: Collection, schema: VersionSchema, filter: MetadataFilter): FilterValue | undefined | null {
    const clauses: FilterValue[] = [];
    for (const [key, cond] of Object.entries(filter)) {
      this.checkMetadataKey(key);
      const prop = META_PREFIX + key;
      const type = schema.props.get(prop);
      const wanted: MetadataValue[] = typeof cond === 'object' && cond !== null ? cond.$in : [cond];
      if (!Array.isArray(wanted)) throw this.rejected(`filter ${key}: $in must be an array of values`);
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
    let target: string;
    try {
      target = (await this.client.alias.get(weaviateAliasName(index, alias))).collection;
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
    const parsed = parseVersionClass(target);
    if (!parsed || parsed.index !== index) {
      throw this.rejected(`alias ${weaviateAliasName(index, alias)} points at ${target}, which is not a version of ${index}; it was moved outside Forgeline`);
    }
    return parsed.version;
  }

  private async ensureBookCollection(): Promise<Collection> {
    if (!(await this.client.collections.exists(ALIASES_COLLECTION))) {
      try {
        await this.client.collections.create({
          name: ALIASES_COLLECTION,
          description: 'Forgeline alias bookkeeping: generation and move time of each alias (the alias itself is native)',
          vectorizers: weaviate.configure.vectors.selfProvided(), // no vectors; never a vectorizer module
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
        });
      } catch (err) {
        if (!(await this.client.collections.exists(ALIASES_COLLECTION))) throw err;
      }
    }
    return this.client.collections.use(ALIASES_COLLECTION);
  }

  private async readBook(index: string, alias: string): Promise<AliasBook | null> {
    if (!(await this.client.collections.exists(ALIASES_COLLECTION))) return null;
    const obj = await this.client.collections.use(ALIASES_COLLECTION).query.fetchObjectById(weaviateObjectId(`${index}/${alias}`));
    return obj ? (obj.properties as unknown as AliasBook) : null;
  }

  private async writeBook(index: string, alias: string, next: AliasRecord, current: AliasRecord | null): Promise<void> {
    const collection = await this.ensureBookCollection();
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
    if (await collection.data.exists(id)) await collection.data.replace({ id, properties });
    else await collection.data.insert({ id, properties });
  }
}

/**
 * Where the alias really points (the native alias) with its generation from the intent record:
 * the move it records, or the state before it when the move did not happen.
 */
function reconcile(index: string, alias: string, actual: string | null, book: AliasBook | null): AliasRecord | null {
  if (actual === null) return null;
  if (book?.version === actual) return { alias, version: actual, generation: book.generation, movedAt: book.movedAt };
  if (book && book.previousVersion === actual) {
    return { alias, version: actual, generation: book.previousGeneration, movedAt: book.previousMovedAt };
  }
  // Moved outside Forgeline (or by a racing writer, see the header): the generation is a guess.
  void index;
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

function parseEndpoint(raw: string, field: string, defaultPort: number): { host: string; port: number; secure: boolean; path: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new VectorStoreRejectedError(`weaviate:${raw}`, `${field} ${JSON.stringify(raw)} is not a URL; give e.g. http://localhost:${defaultPort}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new VectorStoreRejectedError(`weaviate:${raw}`, `${field} must be http:// or https://, got ${url.protocol}`);
  }
  const secure = url.protocol === 'https:';
  return {
    host: url.hostname,
    port: url.port ? Number(url.port) : secure ? 443 : defaultPort,
    secure,
    path: url.pathname.replace(/\/+$/, ''),
  };
}
