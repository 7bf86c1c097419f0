/**
 * VectorStore on Pinecone (serverless) through `@pinecone-database/pinecone` 8.x.
 *
 * Layout: a Pinecone index has one width and one metric, so each (our index, metric, dimensions)
 * gets a Pinecone index of its own, named `fl-<index>-<cos|dot|l2>-<dims>` and tagged
 * `forgeline_index/_metric/_dims`; each version is a namespace in it, created explicitly
 * (`POST /namespaces`) so an empty version exists and is listed. The version catalog needs no
 * record of ours: a version's width and metric are those of the Pinecone index holding its
 * namespace, read back from `describeIndex`/`listIndexes` and the namespace listing.
 *
 * Alias: Pinecone has none, so the pointer lives in an injected `AliasRegistry` (the SQL one by
 * default) under the scope `pinecone:<project>`; the store checks the target version exists and
 * the registry moves the pointer by compare-and-swap. Queries through an alias resolve it once per
 * query, so a query sees one version whole.
 *
 * Limits kept on the client: upserts go out in batches of at most 1,000 vectors and under 2 MB of
 * JSON, fetches and deletes at most 1,000 (fetch: 100, to keep the GET URL short) ids, `topK` at
 * most 1,000 (Pinecone's limit when metadata is returned). 429s, 5xx and connection failures are
 * retried with backoff (the SDK's own 5xx retry is off so one policy applies); other 4xx are
 * terminal VectorStoreRejectedErrors that quote Pinecone's message.
 *
 * Scores: Pinecone returns cosine similarity and the dot product as they are, and the squared L2
 * distance for `euclidean`; the latter is turned into the port's negative L2 distance.
 *
 * Consistency: Pinecone serverless is eventually consistent; a read right after a write may miss
 * it for a moment (counts from `describe_index_stats` lag too). Callers that validate counts after
 * an upsert should poll `count` until it settles.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pinecone, type Index, type IndexModel, type RecordMetadata } from '@pinecone-database/pinecone';
import {
  VECTOR_NAME,
  VectorStoreRejectedError,
  type AliasRecord,
  type AliasRegistry,
  type Metadata,
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

export interface PineconeVectorStoreOptions {
  apiKey: string;
  /** Pinecone's control plane; set to a local endpoint in tests (e.g. `http://127.0.0.1:5080`). Default https://api.pinecone.io. */
  controllerHostUrl?: string;
  /** Where the alias pointers live (Pinecone has no aliases). */
  aliases: AliasRegistry;
  /** Close `aliases` in `close()` (when the store was built with a registry of its own). */
  ownsAliases?: boolean;
  /** Scopes the alias records, so several Pinecone projects can share one registry. Default `default`. */
  project?: string;
  /** Serverless placement of new Pinecone indexes. Default aws / us-east-1. */
  cloud?: 'aws' | 'gcp' | 'azure';
  region?: string;
  /** Upsert batches in flight at once. Default 4. */
  concurrency?: number;
  retry?: Partial<RetryPolicy>;
  /** How long `createVersion` waits for a new Pinecone index to become ready. Default 5 min. */
  readyTimeoutMs?: number;
  /** Poll interval while waiting for readiness. Default 2 s. */
  readyPollMs?: number;
}

/** Pinecone's documented request limits. */
export const PINECONE_LIMITS = {
  upsertVectors: 1000,
  upsertBytes: 2 * 1024 * 1024,
  deleteIds: 1000,
  fetchIds: 100,
  topKWithMetadata: 1000,
  indexName: 45,
} as const;

const PC_METRIC: Record<Metric, 'cosine' | 'dotproduct' | 'euclidean'> = { cosine: 'cosine', dot: 'dotproduct', euclidean: 'euclidean' };
const SHORT_METRIC: Record<Metric, string> = { cosine: 'cos', dot: 'dot', euclidean: 'l2' };
const TAG_INDEX = 'forgeline_index';
const TAG_METRIC = 'forgeline_metric';
const TAG_DIMS = 'forgeline_dims';
/** JSON bytes of an upsert request around its vectors, kept free under the 2 MB limit. */
const ENVELOPE_BYTES = 4096;

interface Location {
  pcName: string;
  host: string;
  spec: VersionSpec;
}

/** The Pinecone index name for (our index, metric, dims): lowercase letters, digits and '-', at most 45. */
export function pineconeIndexName(index: string, spec: VersionSpec): string {
  const tail = `-${SHORT_METRIC[spec.metric]}-${spec.dimensions}`;
  const name = `fl-${index.replace(/_/g, '-')}${tail}`;
  if (name.length <= PINECONE_LIMITS.indexName) return name;
  const hash = createHash('sha256').update(index).digest('hex').slice(0, 8);
  const room = PINECONE_LIMITS.indexName - 'fl-'.length - tail.length - hash.length - 1;
  return `fl-${index.slice(0, room).replace(/_/g, '-')}-${hash}${tail}`;
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : '';
}

export class PineconeVectorStore implements VectorStore {
  readonly label: string;
  /** Serverless Pinecone serves reads from replicas that catch up after a write. */
  readonly consistency = 'eventual' as const;
  private readonly client: Pinecone;
  private readonly scope: string;
  private readonly scheme: string;
  private readonly policy: RetryPolicy;
  private readonly locations = new Map<string, Location>();
  private closed = false;

  constructor(private readonly options: PineconeVectorStoreOptions) {
    if (!options.apiKey) {
      throw new VectorStoreRejectedError('pinecone', 'no API key: set FORGELINE_PINECONE_API_KEY (Pinecone console, API keys)');
    }
    const controller = options.controllerHostUrl ?? 'https://api.pinecone.io';
    this.scheme = controller.startsWith('http://') ? 'http://' : 'https://';
    this.client = new Pinecone({ apiKey: options.apiKey, controllerHostUrl: controller, maxRetries: 0, sourceTag: 'forgeline' });
    this.scope = `pinecone:${options.project ?? 'default'}`;
    this.label = `${this.scope}@${new URL(controller).host}`;
    this.policy = { attempts: options.retry?.attempts ?? 5, baseDelayMs: options.retry?.baseDelayMs ?? 250 };
  }

  async createVersion(index: string, version: string, spec: VersionSpec): Promise<void> {
    this.checkOpen();
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    checkSpec(this.label, index, version, spec);
    const existing = await this.findVersion(index, version);
    if (existing) {
      if (existing.spec.dimensions === spec.dimensions && existing.spec.metric === spec.metric) return;
      throw new VectorStoreRejectedError(
        this.label,
        `version ${index}/${version} exists with ${existing.spec.dimensions} dimensions (${existing.spec.metric}), not ${spec.dimensions} (${spec.metric}); create a new version for the new model`,
      );
    }
    const location = await this.ensurePineconeIndex(index, spec);
    const handle = this.handle(location);
    await this.call(`create namespace ${version} in ${location.pcName}`, async () => {
      try {
        await handle.createNamespace({ name: version });
      } catch (error) {
        if (errorName(error) !== 'PineconeConflictError') throw error;
      }
    });
    this.locations.set(`${index}/${version}`, location);
  }

  async listVersions(index: string): Promise<VersionInfo[]> {
    this.checkOpen();
    checkName(this.label, 'index', index);
    const out: VersionInfo[] = [];
    for (const location of await this.pineconeIndexes(index)) {
      for (const name of await this.namespaces(location)) {
        out.push({ version: name, ...location.spec });
        this.locations.set(`${index}/${name}`, location);
      }
    }
    return out.sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
  }

  async dropVersion(index: string, version: string): Promise<void> {
    this.checkOpen();
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const aliases = await this.options.aliases.pointingAt(this.scope, index, version);
    if (aliases.length > 0) {
      throw new VectorStoreRejectedError(
        this.label,
        `version ${index}/${version} is what alias ${aliases.join(', ')} points at; swap the alias to another version before dropping it`,
      );
    }
    this.locations.delete(`${index}/${version}`);
    for (const location of await this.pineconeIndexes(index)) {
      const handle = this.handle(location);
      await this.call(`delete namespace ${version} in ${location.pcName}`, async () => {
        try {
          await handle.deleteNamespace(version);
        } catch (error) {
          if (errorName(error) !== 'PineconeNotFoundError') throw error;
        }
      });
    }
  }

  async upsert(index: string, version: string, records: readonly VectorRecord[]): Promise<void> {
    this.checkOpen();
    const location = await this.requireVersion(index, version);
    const checked = checkRecords(this.label, `${index}/${version}`, records, location.spec.dimensions);
    if (checked.length === 0) return;
    const wire = checked.map((r) => ({ id: r.id, values: r.values, metadata: r.metadata as RecordMetadata }));
    const groups = batches(wire, PINECONE_LIMITS.upsertVectors, PINECONE_LIMITS.upsertBytes - ENVELOPE_BYTES, (r) => Buffer.byteLength(JSON.stringify(r)) + 1);
    const handle = this.handle(location);
    await forEachLimit(groups, this.options.concurrency ?? 4, (group) =>
      this.call(`upsert ${group.length} vectors into ${index}/${version}`, () => handle.upsert({ records: group, namespace: version })),
    );
  }

  async delete(index: string, version: string, ids: readonly string[]): Promise<void> {
    this.checkOpen();
    const unique = checkIds(this.label, `${index}/${version}`, ids);
    const location = await this.findVersion(index, version);
    if (!location || unique.length === 0) return;
    const handle = this.handle(location);
    for (const group of chunk(unique, PINECONE_LIMITS.deleteIds)) {
      await this.call(`delete ${group.length} ids from ${index}/${version}`, async () => {
        try {
          await handle.deleteMany({ ids: group, namespace: version });
        } catch (error) {
          // The namespace went away meanwhile (dropped): nothing left to delete.
          if (errorName(error) !== 'PineconeNotFoundError') throw error;
        }
      });
    }
  }

  async fetch(index: string, version: string, ids: readonly string[]): Promise<VectorRecord[]> {
    this.checkOpen();
    const unique = checkIds(this.label, `${index}/${version}`, ids);
    const location = await this.requireVersion(index, version);
    const handle = this.handle(location);
    const out: VectorRecord[] = [];
    for (const group of chunk(unique, PINECONE_LIMITS.fetchIds)) {
      const response = await this.call(`fetch ${group.length} ids from ${index}/${version}`, () => handle.fetch({ ids: group, namespace: version }));
      for (const id of group) {
        const record = response.records[id];
        if (record) out.push({ id, values: Float32Array.from(record.values ?? []), metadata: (record.metadata ?? {}) as Metadata });
      }
    }
    return out;
  }

  async existingIds(index: string, version: string, ids: readonly string[]): Promise<Set<string>> {
    return new Set((await this.fetch(index, version, ids)).map((r) => r.id));
  }

  async count(index: string, version: string): Promise<number> {
    this.checkOpen();
    const location = await this.requireVersion(index, version);
    const handle = this.handle(location);
    const stats = await this.call(`count ${index}/${version}`, () => handle.describeIndexStats());
    return stats.namespaces?.[version]?.recordCount ?? 0;
  }

  async query(index: string, target: QueryTarget, vector: Float32Array | number[], options: QueryOptions): Promise<QueryMatch[]> {
    this.checkOpen();
    checkName(this.label, 'index', index);
    const version = 'version' in target ? target.version : await this.resolveAlias(index, target.alias);
    const location = await this.requireVersion(index, version);
    const where = `query ${index}/${version}`;
    const values = checkVector(this.label, where, vector, location.spec.dimensions);
    checkTopK(this.label, where, options, PINECONE_LIMITS.topKWithMetadata);
    const filter = pineconeFilter(checkFilter(this.label, where, options.filter));
    const handle = this.handle(location);
    const response = await this.call(where, () =>
      handle.query({ vector: values, topK: options.topK, includeMetadata: true, includeValues: false, namespace: version, ...(filter ? { filter } : {}) }),
    );
    return response.matches.map((m) => ({
      id: m.id,
      score: location.spec.metric === 'euclidean' ? negativeDistance(Math.sqrt(Math.max(0, m.score ?? 0))) : (m.score ?? 0),
      metadata: (m.metadata ?? {}) as Metadata,
    }));
  }

  async getAlias(index: string, alias: string): Promise<AliasRecord | null> {
    this.checkOpen();
    checkName(this.label, 'index', index);
    checkName(this.label, 'alias', alias);
    return this.options.aliases.get(this.scope, index, alias);
  }

  async swapAlias(index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord> {
    this.checkOpen();
    checkName(this.label, 'alias', alias);
    await this.requireVersion(index, version);
    return this.options.aliases.swap(this.scope, index, alias, version, expected);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.locations.clear();
    if (this.options.ownsAliases) await this.options.aliases.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`${this.label}: store is closed`);
  }

  private async resolveAlias(index: string, alias: string): Promise<string> {
    checkName(this.label, 'alias', alias);
    const record = await this.options.aliases.get(this.scope, index, alias);
    if (!record) throw new VectorStoreRejectedError(this.label, `alias ${index}/${alias} is not set; swap it to a version first`);
    return record.version;
  }

  private handle(location: Location): Index {
    return this.client.index({ name: location.pcName, host: location.host });
  }

  private async requireVersion(index: string, version: string): Promise<Location> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const location = await this.findVersion(index, version);
    if (!location) throw new VectorStoreRejectedError(this.label, `version ${index}/${version} does not exist; create it with createVersion first`);
    return location;
  }

  private async findVersion(index: string, version: string): Promise<Location | undefined> {
    const cached = this.locations.get(`${index}/${version}`);
    if (cached) return cached;
    for (const location of await this.pineconeIndexes(index)) {
      if ((await this.namespaces(location)).includes(version)) {
        this.locations.set(`${index}/${version}`, location);
        return location;
      }
    }
    return undefined;
  }

  /** Our Pinecone indexes for `index`, found by their tags. */
  private async pineconeIndexes(index: string): Promise<Location[]> {
    const list = await this.call('list indexes', () => this.client.listIndexes());
    return (list.indexes ?? []).filter((m) => m.tags?.[TAG_INDEX] === index).map((m) => this.location(m));
  }

  private location(model: IndexModel): Location {
    const metric = (Object.keys(PC_METRIC) as Metric[]).find((m) => PC_METRIC[m] === model.metric);
    if (!metric || !model.dimension) {
      throw new VectorStoreRejectedError(this.label, `Pinecone index ${model.name} is tagged ${TAG_INDEX} but is not a dense index of a known metric (${model.metric})`);
    }
    const host = /^https?:\/\//.test(model.host) ? model.host : `${this.scheme}${model.host}`;
    return { pcName: model.name, host, spec: { dimensions: model.dimension, metric } };
  }

  private async namespaces(location: Location): Promise<string[]> {
    const handle = this.handle(location);
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.call(`list namespaces of ${location.pcName}`, () =>
        handle.listNamespaces({ limit: 100, ...(token ? { paginationToken: token } : {}) }),
      );
      // Only our versions: the default namespace (`__default__`) or other names are not ours.
      for (const ns of page.namespaces ?? []) if (ns.name && VECTOR_NAME.test(ns.name)) names.push(ns.name);
      token = page.pagination?.next;
    } while (token);
    return names;
  }

  private async ensurePineconeIndex(index: string, spec: VersionSpec): Promise<Location> {
    const name = pineconeIndexName(index, spec);
    let model = await this.call(`describe index ${name}`, async () => {
      try {
        return await this.client.describeIndex(name);
      } catch (error) {
        if (errorName(error) === 'PineconeNotFoundError') return undefined;
        throw error;
      }
    });
    if (!model) {
      await this.call(`create index ${name}`, () =>
        this.client.createIndex({
          name,
          dimension: spec.dimensions,
          metric: PC_METRIC[spec.metric],
          vectorType: 'dense',
          spec: { serverless: { cloud: this.options.cloud ?? 'aws', region: this.options.region ?? 'us-east-1' } },
          tags: { [TAG_INDEX]: index, [TAG_METRIC]: spec.metric, [TAG_DIMS]: String(spec.dimensions) },
          deletionProtection: 'disabled',
          suppressConflicts: true,
        }),
      );
      model = await this.call(`describe index ${name}`, () => this.client.describeIndex(name));
    }
    if (model.tags?.[TAG_INDEX] !== index) {
      throw new VectorStoreRejectedError(this.label, `Pinecone index ${name} exists but is not tagged ${TAG_INDEX}=${index}; it belongs to something else: delete or rename it`);
    }
    const deadline = Date.now() + (this.options.readyTimeoutMs ?? 300_000);
    while (!model.status?.ready) {
      if (model.status?.state === 'InitializationFailed' || model.status?.state === 'Terminating') {
        throw new VectorStoreRejectedError(this.label, `Pinecone index ${name} is ${model.status.state}; delete it in the Pinecone console and retry`);
      }
      if (Date.now() > deadline) throw new Error(`${this.label}: Pinecone index ${name} not ready after ${this.options.readyTimeoutMs ?? 300_000} ms (state ${model.status?.state})`);
      await sleep(this.options.readyPollMs ?? 2000);
      model = await this.call(`describe index ${name}`, () => this.client.describeIndex(name));
    }
    return this.location(model);
  }

  private call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return withRetries(this.label, operation, this.policy, (error) => this.classify(operation, error), fn);
  }

  private classify(operation: string, error: unknown): Verdict {
    if (error instanceof VectorStoreRejectedError) return { retry: false, error };
    const name = errorName(error);
    const message = error instanceof Error ? error.message : String(error);
    switch (name) {
      case 'PineconeUnavailableError':
      case 'PineconeInternalServerError':
      case 'PineconeMaxRetriesExceededError':
      case 'PineconeConnectionError':
        return { retry: true };
      case 'PineconeUnmappedHttpError':
        if (/Status: (429|5\d\d)/.test(message)) return { retry: true };
        break;
      case 'PineconeAuthorizationError':
        return { retry: false, error: new VectorStoreRejectedError(this.label, `${operation}: Pinecone refused the API key; check FORGELINE_PINECONE_API_KEY`) };
      default:
        break;
    }
    if (name.startsWith('Pinecone')) {
      return { retry: false, error: new VectorStoreRejectedError(this.label, `${operation}: ${name}: ${message}`) };
    }
    // Anything else (a TypeError from fetch, a socket reset) is a transport fault.
    return { retry: true };
  }
}

/** Our filter in Pinecone's language: `$eq`/`$in` per field, `$and` across fields. */
export function pineconeFilter(conditions: Array<[string, Array<string | number | boolean>]>): object | undefined {
  const clauses = conditions.map(([key, values]): object => {
    if (values.length === 1) return { [key]: { $eq: values[0] } };
    // $in takes strings or numbers; booleans become an $or of equalities.
    if (values.every((v) => typeof v !== 'boolean')) return { [key]: { $in: values } };
    return { $or: values.map((v) => ({ [key]: { $eq: v } })) };
  });
  if (clauses.length === 0) return undefined;
  return clauses.length === 1 ? clauses[0] : { $and: clauses };
}

