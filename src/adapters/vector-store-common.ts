/**
 * Checks and plumbing shared by the remote VectorStore adapters (Pinecone, Qdrant): the port's
 * input rules enforced before anything is sent (so a bad batch never half-lands), batching under a
 * service's request limits, bounded parallelism, and retries of transient faults with backoff.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  VECTOR_NAME,
  VectorStoreRejectedError,
  type Metadata,
  type MetadataFilter,
  type MetadataValue,
  type QueryOptions,
  type VectorRecord,
  type VersionSpec,
} from '../ports/vector-store';

/** Record ids the port allows (see `VectorRecord.id`). */
export const RECORD_ID = /^[A-Za-z0-9_:.-]{1,128}$/;
/** Metadata and filter keys: they become payload keys or metadata fields in the stores. */
export const METADATA_KEY = /^[A-Za-z0-9_]{1,64}$/;
export const METRICS = ['cosine', 'dot', 'euclidean'] as const;

export function checkName(store: string, what: 'index' | 'version' | 'alias', name: string): void {
  if (typeof name !== 'string' || !VECTOR_NAME.test(name)) {
    throw new VectorStoreRejectedError(
      store,
      `${what} name ${JSON.stringify(name)} is not allowed: use 1-48 characters of a-z, 0-9 and _, starting with a letter (e.g. docs, v20261202t2200, live)`,
    );
  }
}

export function checkSpec(store: string, index: string, version: string, spec: VersionSpec): void {
  if (!Number.isInteger(spec.dimensions) || spec.dimensions < 1 || spec.dimensions > 20_000) {
    throw new VectorStoreRejectedError(
      store,
      `${index}/${version}: dimensions ${String(spec.dimensions)} is not a whole number in 1..20000; pass the embedding model's output width`,
    );
  }
  if (!(METRICS as readonly string[]).includes(spec.metric)) {
    throw new VectorStoreRejectedError(store, `${index}/${version}: metric ${JSON.stringify(spec.metric)} is not one of ${METRICS.join(', ')}`);
  }
}

function checkMetadataValue(store: string, where: string, key: string, value: unknown): asserts value is MetadataValue {
  const ok =
    typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
  if (!ok) {
    throw new VectorStoreRejectedError(
      store,
      `${where}: metadata ${key} must be a string, a finite number or a boolean, got ${value === null ? 'null' : typeof value}`,
    );
  }
}

export function checkMetadata(store: string, where: string, metadata: Metadata | undefined): void {
  if (metadata === undefined) return;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new VectorStoreRejectedError(store, `${where}: metadata must be an object of key -> value`);
  }
  for (const [key, value] of Object.entries(metadata)) {
    if (!METADATA_KEY.test(key)) {
      throw new VectorStoreRejectedError(store, `${where}: metadata key ${JSON.stringify(key)} is not allowed: use 1-64 of A-Z, a-z, 0-9 and _`);
    }
    checkMetadataValue(store, where, key, value);
  }
}

/** A vector as plain numbers, refused unless it has `dimensions` finite entries. */
export function checkVector(store: string, where: string, values: Float32Array | number[], dimensions: number): number[] {
  if (!(values instanceof Float32Array) && !Array.isArray(values)) {
    throw new VectorStoreRejectedError(store, `${where}: values must be a Float32Array or an array of numbers`);
  }
  if (values.length !== dimensions) {
    throw new VectorStoreRejectedError(
      store,
      `${where}: vector has ${values.length} dimensions but the version holds ${dimensions}; embed with the model the version was created for, or create a new version`,
    );
  }
  const out = Array.from(values);
  for (let i = 0; i < out.length; i++) {
    if (typeof out[i] !== 'number' || !Number.isFinite(out[i])) {
      throw new VectorStoreRejectedError(store, `${where}: values[${i}] is ${String(out[i])}, not a finite number`);
    }
  }
  return out;
}

export interface CheckedRecord {
  id: string;
  values: number[];
  metadata: Metadata;
}

/** Every record checked (ids, widths, metadata, no duplicate ids) before any of them is written. */
export function checkRecords(store: string, target: string, records: readonly VectorRecord[], dimensions: number): CheckedRecord[] {
  const seen = new Set<string>();
  return records.map((record, i) => {
    const where = `${target} record ${i}`;
    checkId(store, where, record.id);
    if (seen.has(record.id)) {
      throw new VectorStoreRejectedError(store, `${where}: id ${record.id} appears twice in one upsert; send each id once`);
    }
    seen.add(record.id);
    checkMetadata(store, `${where} (${record.id})`, record.metadata);
    return { id: record.id, values: checkVector(store, `${where} (${record.id})`, record.values, dimensions), metadata: { ...(record.metadata ?? {}) } };
  });
}

export function checkId(store: string, where: string, id: unknown): asserts id is string {
  if (typeof id !== 'string' || !RECORD_ID.test(id)) {
    throw new VectorStoreRejectedError(store, `${where}: id ${JSON.stringify(id)} is not allowed: use 1-128 of A-Z, a-z, 0-9, _ : . -`);
  }
}

export function checkIds(store: string, target: string, ids: readonly string[]): string[] {
  ids.forEach((id, i) => checkId(store, `${target} ids[${i}]`, id));
  return [...new Set(ids)];
}

/** The filter's conditions as (key, accepted values) pairs, all of which must hold. */
export function checkFilter(store: string, target: string, filter: MetadataFilter | undefined): Array<[string, MetadataValue[]]> {
  if (filter === undefined) return [];
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    throw new VectorStoreRejectedError(store, `${target}: filter must be an object of field -> value or {$in: [values]}`);
  }
  return Object.entries(filter).map(([key, condition]) => {
    if (!METADATA_KEY.test(key)) {
      throw new VectorStoreRejectedError(store, `${target}: filter key ${JSON.stringify(key)} is not allowed: use 1-64 of A-Z, a-z, 0-9 and _`);
    }
    if (typeof condition === 'object' && condition !== null) {
      const keys = Object.keys(condition);
      if (keys.length !== 1 || keys[0] !== '$in' || !Array.isArray(condition.$in) || condition.$in.length === 0) {
        throw new VectorStoreRejectedError(store, `${target}: filter ${key} must be a value or {$in: [one or more values]}`);
      }
      condition.$in.forEach((v) => checkMetadataValue(store, `${target} filter`, key, v));
      return [key, [...condition.$in]];
    }
    checkMetadataValue(store, `${target} filter`, key, condition);
    return [key, [condition]];
  });
}

export function checkTopK(store: string, target: string, options: QueryOptions, max: number): void {
  if (!Number.isInteger(options.topK) || options.topK < 1 || options.topK > max) {
    throw new VectorStoreRejectedError(store, `${target}: topK ${String(options.topK)} is not a whole number in 1..${max} (the store's limit with metadata)`);
  }
}

/** Splits `items` into batches of at most `maxCount` items and `maxBytes` by `sizeOf`. */
export function batches<T>(items: readonly T[], maxCount: number, maxBytes: number, sizeOf: (item: T) => number): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (current.length > 0 && (current.length >= maxCount || bytes + size > maxBytes)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Runs `fn` over `items` with at most `limit` in flight; the first failure rejects (others finish). */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed) throw failed.error;
}

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** First backoff; doubles each retry, ±25% jitter, capped at 10 s. */
  baseDelayMs: number;
}

/**
 * How an adapter reads a failure: `retry` (429, 5xx, connection reset), or `terminal` with the
 * error to throw (already a VectorStoreRejectedError naming the fix).
 */
export type Verdict = { retry: true; afterMs?: number } | { retry: false; error: Error };

/** Calls `fn` until it succeeds, a failure is terminal, or the attempts are spent (then throws a plain, retryable Error). */
export async function withRetries<T>(
  store: string,
  operation: string,
  policy: RetryPolicy,
  classify: (error: unknown) => Verdict,
  fn: () => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      const verdict = classify(error);
      if (!verdict.retry) throw verdict.error;
      if (attempt >= policy.attempts) {
        const detail = error instanceof Error ? error.message : String(error);
        throw new Error(`${store}: ${operation} still failing after ${attempt} attempts (transient): ${detail}`, { cause: error });
      }
      const backoff = Math.min(10_000, policy.baseDelayMs * 2 ** (attempt - 1));
      await sleep(Math.max(verdict.afterMs ?? 0, backoff * (0.75 + Math.random() * 0.5)));
    }
  }
}

/** The similarity the port promises (`score` larger = closer) for a raw L2 distance. */
export function negativeDistance(distance: number): number {
  return -Math.max(0, distance);
}
