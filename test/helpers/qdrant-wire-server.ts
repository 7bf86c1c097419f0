/**
 * A local stand-in for Qdrant's REST API (the 1.18 shapes that `@qdrant/js-client-rest` 1.18
 * sends) that checks the wire format the way Qdrant parses it and really stores and searches points
 * (brute force). No PyPI, npm or Debian package ships a runnable Qdrant server for linux x86_64
 * (qdrant-client's "local mode" is a Python re-implementation without REST, qdrant-edge-py an
 * embedded engine without one), and GitHub releases are not reachable here, hence this endpoint.
 * It is NOT Qdrant: no HNSW, no WAL, no optimizers, no cluster.
 *
 * What it checks (off-spec requests get a 400 like Qdrant's "Format error in JSON body" and are
 * recorded in `violations`):
 * - `api-key` header when a key is configured (401 missing, 403 wrong), JSON content type on bodies;
 * - paths, methods and the query parameters each endpoint takes (`wait`, `ordering`, `timeout`,
 *   `consistency`), unknown body fields refused (Qdrant's serde rejects them);
 * - collection names (1-255 chars, none of < > : " / \ | ? *), vectors config (size >= 1, distance
 *   Cosine/Dot/Euclid/Manhattan), HNSW diff fields;
 * - point ids: unsigned integers or UUIDs only; vectors of the collection's width, finite;
 * - filters: must/should/must_not of field conditions (`match: {value}` with a string, integer or
 *   bool; `match: {any}` with strings or integers; `match: {except}`; `range`) or nested filters;
 * - aliases: create/delete/rename actions applied all-or-nothing in one request.
 *
 * Semantics kept: Cosine vectors are normalized on upsert (Qdrant stores unit vectors), scores are
 * cosine / dot similarity and the L2 distance for Euclid (ascending), deleting a collection drops
 * its aliases, a query or read through an alias resolves it per request. `failNext(n, status)`
 * answers the next n requests with 429/5xx.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export const QDRANT_WIRE_VERSION = '1.18.0';

type Distance = 'Cosine' | 'Dot' | 'Euclid' | 'Manhattan';
type PointId = string | number;

interface Point {
  id: PointId;
  vector: number[];
  payload: Record<string, unknown>;
  version: number;
}

interface Collection {
  size: number;
  distance: Distance;
  hnsw: { m: number; ef_construct: number; full_scan_threshold: number };
  metadata: Record<string, unknown>;
  points: Map<string, Point>;
  operations: number;
}

class WireError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly violation = status === 400 || status === 415 || status === 422,
  ) {
    super(message);
  }
}

export interface QdrantWireServer {
  url: string;
  apiKey: string | undefined;
  violations: string[];
  requests: string[];
  failNext(count: number, status?: number): void;
  collectionNames(): string[];
  close(): Promise<void>;
}

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

function obj(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new WireError(400, `Format error in JSON body: ${where}: expected a map`);
  return value as Record<string, unknown>;
}

function only(body: Record<string, unknown>, allowed: string[], where: string): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw new WireError(400, `Format error in JSON body: ${where}: unknown field \`${key}\`, expected one of ${allowed.map((a) => `\`${a}\``).join(', ')}`);
  }
}

function pointKey(id: unknown, where: string): string {
  if (typeof id === 'number' && Number.isInteger(id) && id >= 0) return `n:${id}`;
  if (typeof id === 'string' && UUID.test(id)) return `u:${id.replace(/-/g, '').toLowerCase()}`;
  throw new WireError(400, `Format error in JSON body: ${where}: value ${JSON.stringify(id)} is not a valid point ID, valid values are either an unsigned integer or a UUID`);
}

function payloadValue(payload: Record<string, unknown>, key: string): unknown {
  let value: unknown = payload;
  for (const part of key.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

type Predicate = (payload: Record<string, unknown>) => boolean;

function conditionList(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

/** Validates a Qdrant filter and returns its predicate. */
function compileFilter(value: unknown, where = 'filter'): Predicate {
  const f = obj(value, where);
  only(f, ['must', 'should', 'must_not', 'min_should'], where);
  if (f.min_should !== undefined && f.min_should !== null) throw new WireError(400, `${where}: min_should is not exercised here`);
  const must = conditionList(f.must).map((c, i) => compileCondition(c, `${where}.must[${i}]`));
  const should = conditionList(f.should).map((c, i) => compileCondition(c, `${where}.should[${i}]`));
  const mustNot = conditionList(f.must_not).map((c, i) => compileCondition(c, `${where}.must_not[${i}]`));
  return (p) => must.every((c) => c(p)) && (should.length === 0 || should.some((c) => c(p))) && !mustNot.some((c) => c(p));
}

function compileCondition(value: unknown, where: string): Predicate {
  const c = obj(value, where);
  if (!('key' in c)) return compileFilter(c, where);
  only(c, ['key', 'match', 'range', 'is_empty', 'is_null', 'values_count', 'geo_bounding_box', 'geo_radius', 'geo_polygon'], where);
  if (typeof c.key !== 'string' || c.key.length === 0) throw new WireError(400, `${where}.key: expected a string`);
  const key = c.key;
  const checks: Array<(v: unknown) => boolean> = [];
  const eq = (stored: unknown, x: unknown): boolean => (Array.isArray(stored) ? stored.includes(x) : stored === x);
  if (c.match !== undefined) {
    const m = obj(c.match, `${where}.match`);
    if ('value' in m) {
      only(m, ['value'], `${where}.match`);
      const v = m.value;
      if (!(typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isInteger(v)))) {
        throw new WireError(400, `Format error in JSON body: ${where}.match.value: expected a string, an integer or a bool, got ${JSON.stringify(v)} (use range for floats)`);
      }
      checks.push((stored) => eq(stored, v));
    } else if ('any' in m || 'except' in m) {
      const op = 'any' in m ? 'any' : 'except';
      only(m, [op], `${where}.match`);
      const list = m[op];
      const homogeneous =
        Array.isArray(list) && (list.every((x) => typeof x === 'string') || list.every((x) => typeof x === 'number' && Number.isInteger(x)));
      if (!homogeneous) throw new WireError(400, `Format error in JSON body: ${where}.match.${op}: expected a list of strings or a list of integers`);
      checks.push(op === 'any' ? (stored) => list.some((x) => eq(stored, x)) : (stored) => stored !== undefined && !list.some((x) => eq(stored, x)));
    } else {
      throw new WireError(400, `Format error in JSON body: ${where}.match: expected value, any or except`);
    }
  }
  if (c.range !== undefined) {
    const r = obj(c.range, `${where}.range`);
    only(r, ['gt', 'gte', 'lt', 'lte'], `${where}.range`);
    for (const [k, v] of Object.entries(r)) if (v !== null && typeof v !== 'number') throw new WireError(400, `${where}.range.${k}: expected a number`);
    const { gt, gte, lt, lte } = r as Record<string, number | null | undefined>;
    checks.push(
      (stored) =>
        typeof stored === 'number' &&
        (gt == null || stored > gt) &&
        (gte == null || stored >= gte) &&
        (lt == null || stored < lt) &&
        (lte == null || stored <= lte),
    );
  }
  if (checks.length === 0) throw new WireError(400, `${where}: a field condition needs match or range here`);
  return (p) => {
    const stored = payloadValue(p, key);
    return checks.every((check) => check(stored));
  };
}

function dot(a: number[], b: number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function normalize(v: number[]): number[] {
  const n = Math.sqrt(dot(v, v));
  return n === 0 ? v : v.map((x) => x / n);
}

const ENDPOINT_QUERY: Record<string, string[]> = {
  upsert: ['wait', 'ordering', 'timeout'],
  delete: ['wait', 'ordering', 'timeout'],
  read: ['consistency', 'timeout'],
  count: ['timeout'],
  admin: ['timeout'],
  none: [],
};

export async function startQdrantWireServer(options: { apiKey?: string } = {}): Promise<QdrantWireServer> {
  const apiKey = options.apiKey;
  const violations: string[] = [];
  const requests: string[] = [];
  const collections = new Map<string, Collection>();
  const aliases = new Map<string, string>();
  let failures = { count: 0, status: 503 };

  const resolve = (name: string): [string, Collection] => {
    const real = collections.has(name) ? name : aliases.get(name);
    const collection = real === undefined ? undefined : collections.get(real);
    if (!collection || real === undefined) throw new WireError(404, `Not found: Collection \`${name}\` doesn't exist!`);
    return [real, collection];
  };

  const checkCollectionName = (name: string): void => {
    if (name.length < 1 || name.length > 255 || /[<>:"/\\|?*\0]/.test(name)) {
      throw new WireError(422, `Validation error in path parameters: [name: collection name must be 1-255 characters without < > : " / \\ | ? *]`);
    }
  };

  const info = (c: Collection): unknown => ({
    status: 'green',
    optimizer_status: 'ok',
    indexed_vectors_count: 0,
    points_count: c.points.size,
    segments_count: 1,
    config: {
      params: { vectors: { size: c.size, distance: c.distance }, shard_number: 1, replication_factor: 1, write_consistency_factor: 1, on_disk_payload: true },
      hnsw_config: { ...c.hnsw, on_disk: false },
      optimizer_config: { deleted_threshold: 0.2, vacuum_min_vector_number: 1000, default_segment_number: 0, max_segment_size: null, memmap_threshold: null, indexing_threshold: 10000, flush_interval_sec: 5, max_optimization_threads: null },
      wal_config: { wal_capacity_mb: 32, wal_segments_ahead: 0 },
      quantization_config: null,
      metadata: c.metadata,
    },
    payload_schema: {},
  });

  const checkQuery = (url: URL, kind: keyof typeof ENDPOINT_QUERY): void => {
    for (const key of url.searchParams.keys()) {
      if (!ENDPOINT_QUERY[kind]!.includes(key)) throw new WireError(400, `Query deserialize error: unknown field \`${key}\``);
    }
    const wait = url.searchParams.get('wait');
    if (wait !== null && wait !== 'true' && wait !== 'false') throw new WireError(400, 'Query deserialize error: wait: expected true or false');
  };

  const route = (method: string, url: URL, body: unknown): unknown => {
    const path = url.pathname;
    if (method === 'GET' && path === '/') return { title: 'qdrant - vector search engine', version: QDRANT_WIRE_VERSION, commit: null };
    if (method === 'GET' && path === '/collections') {
      checkQuery(url, 'none');
      return { collections: [...collections.keys()].map((name) => ({ name })) };
    }
    if (method === 'POST' && path === '/collections/aliases') {
      checkQuery(url, 'admin');
      const b = obj(body, 'ChangeAliasesOperation');
      only(b, ['actions'], 'ChangeAliasesOperation');
      if (!Array.isArray(b.actions)) throw new WireError(400, 'Format error in JSON body: actions: expected a list');
      const next = new Map(aliases);
      b.actions.forEach((action, i) => {
        const a = obj(action, `actions[${i}]`);
        const [op, ...rest] = Object.keys(a);
        if (rest.length > 0 || op === undefined) throw new WireError(400, `Format error in JSON body: actions[${i}]: expected exactly one of create_alias, delete_alias, rename_alias`);
        const args = obj(a[op], `actions[${i}].${op}`);
        if (op === 'create_alias') {
          only(args, ['collection_name', 'alias_name'], `actions[${i}].create_alias`);
          if (typeof args.collection_name !== 'string' || typeof args.alias_name !== 'string') throw new WireError(400, `actions[${i}].create_alias: names must be strings`);
          checkCollectionName(args.alias_name);
          if (!collections.has(args.collection_name)) throw new WireError(404, `Not found: Collection \`${args.collection_name}\` doesn't exist!`);
          if (collections.has(args.alias_name)) throw new WireError(409, `Wrong input: Collection \`${args.alias_name}\` already exists!`, false);
          next.set(args.alias_name, args.collection_name);
        } else if (op === 'delete_alias') {
          only(args, ['alias_name'], `actions[${i}].delete_alias`);
          if (typeof args.alias_name !== 'string') throw new WireError(400, `actions[${i}].delete_alias.alias_name: expected a string`);
          if (!next.delete(args.alias_name)) throw new WireError(404, `Not found: Alias ${args.alias_name} does not exists!`);
        } else if (op === 'rename_alias') {
          only(args, ['old_alias_name', 'new_alias_name'], `actions[${i}].rename_alias`);
          const target = next.get(String(args.old_alias_name));
          if (target === undefined) throw new WireError(404, `Not found: Alias ${String(args.old_alias_name)} does not exists!`);
          next.delete(String(args.old_alias_name));
          next.set(String(args.new_alias_name), target);
        } else {
          throw new WireError(400, `Format error in JSON body: actions[${i}]: unknown variant \`${op}\``);
        }
      });
      // All or nothing: the new table replaces the old only when every action applied.
      aliases.clear();
      for (const [k, v] of next) aliases.set(k, v);
      return true;
    }
    if (method === 'GET' && path === '/aliases') {
      return { aliases: [...aliases].map(([alias_name, collection_name]) => ({ alias_name, collection_name })) };
    }
    const m = /^\/collections\/([^/]+)(\/.*)?$/.exec(path);
    if (!m) throw new WireError(404, `no route ${method} ${path}`, true);
    const name = decodeURIComponent(m[1]!);
    const rest = m[2] ?? '';
    if (rest === '') {
      if (method === 'PUT') {
        checkQuery(url, 'admin');
        checkCollectionName(name);
        const b = obj(body, 'CreateCollection');
        only(b, ['vectors', 'shard_number', 'sharding_method', 'replication_factor', 'write_consistency_factor', 'on_disk_payload', 'hnsw_config', 'wal_config', 'optimizers_config', 'quantization_config', 'sparse_vectors', 'strict_mode_config', 'metadata'], 'CreateCollection');
        const v = obj(b.vectors, 'vectors');
        only(v, ['size', 'distance', 'hnsw_config', 'quantization_config', 'on_disk', 'datatype', 'multivector_config'], 'vectors');
        if (typeof v.size !== 'number' || !Number.isInteger(v.size) || v.size < 1 || v.size > 65_536) throw new WireError(422, 'Validation error in JSON body: [vectors.size: value must be in 1..65536]');
        if (!['Cosine', 'Dot', 'Euclid', 'Manhattan'].includes(v.distance as string)) throw new WireError(400, `Format error in JSON body: vectors.distance: unknown variant \`${String(v.distance)}\`, expected one of \`Cosine\`, \`Euclid\`, \`Dot\`, \`Manhattan\``);
        const hnsw = { m: 16, ef_construct: 100, full_scan_threshold: 10_000 };
        if (b.hnsw_config !== undefined && b.hnsw_config !== null) {
          const h = obj(b.hnsw_config, 'hnsw_config');
          only(h, ['m', 'ef_construct', 'full_scan_threshold', 'max_indexing_threads', 'on_disk', 'payload_m', 'inline_storage'], 'hnsw_config');
          if (h.m !== undefined && (!Number.isInteger(h.m) || (h.m as number) < 0)) throw new WireError(400, 'hnsw_config.m: expected an unsigned integer');
          if (h.ef_construct !== undefined && (!Number.isInteger(h.ef_construct) || (h.ef_construct as number) < 4)) throw new WireError(422, 'Validation error in JSON body: [hnsw_config.ef_construct: value must be >= 4]');
          Object.assign(hnsw, Object.fromEntries(Object.entries(h).filter(([k]) => k in hnsw)));
        }
        if (collections.has(name) || aliases.has(name)) throw new WireError(409, `Wrong input: Collection \`${name}\` already exists!`);
        collections.set(name, { size: v.size, distance: v.distance as Distance, hnsw, metadata: b.metadata ? obj(b.metadata, 'metadata') : {}, points: new Map(), operations: 0 });
        return true;
      }
      if (method === 'GET') return info(resolve(name)[1]);
      if (method === 'PATCH') {
        checkQuery(url, 'admin');
        const b = obj(body, 'UpdateCollection');
        only(b, ['vectors', 'optimizers_config', 'params', 'hnsw_config', 'quantization_config', 'sparse_vectors', 'strict_mode_config', 'metadata'], 'UpdateCollection');
        const [, c] = resolve(name);
        if (b.metadata !== undefined && b.metadata !== null) Object.assign(c.metadata, obj(b.metadata, 'metadata'));
        return true;
      }
      if (method === 'DELETE') {
        checkQuery(url, 'admin');
        if (!collections.delete(name)) return false;
        for (const [alias, target] of [...aliases]) if (target === name) aliases.delete(alias);
        return true;
      }
    }
    if (rest === '/exists' && method === 'GET') return { exists: collections.has(name) };
    if (rest === '/aliases' && method === 'GET') {
      resolve(name);
      return { aliases: [...aliases].filter(([, c]) => c === name).map(([alias_name, collection_name]) => ({ alias_name, collection_name })) };
    }
    const [, c] = resolve(name);
    const ids = (list: unknown, where: string): string[] => {
      if (!Array.isArray(list)) throw new WireError(400, `Format error in JSON body: ${where}: expected a list of point ids`);
      return list.map((id, i) => pointKey(id, `${where}[${i}]`));
    };
    const withPayload = (p: Point, selector: unknown): Record<string, unknown> | undefined => {
      if (selector === undefined || selector === null || selector === false) return undefined;
      if (selector === true) return p.payload;
      if (Array.isArray(selector)) return Object.fromEntries(selector.filter((k) => typeof k === 'string' && k in p.payload).map((k: string) => [k, p.payload[k]]));
      throw new WireError(400, 'Format error in JSON body: with_payload: expected a bool or a list of keys');
    };
    if (rest === '/points' && method === 'PUT') {
      checkQuery(url, 'upsert');
      const b = obj(body, 'PointInsertOperations');
      only(b, ['points', 'shard_key', 'update_filter', 'update_mode'], 'PointsList');
      if (!Array.isArray(b.points)) throw new WireError(400, 'Format error in JSON body: points: expected a list');
      const staged = b.points.map((raw, i) => {
        const p = obj(raw, `points[${i}]`);
        only(p, ['id', 'vector', 'payload'], `points[${i}]`);
        const key = pointKey(p.id, `points[${i}].id`);
        if (!Array.isArray(p.vector) || !p.vector.every((x) => typeof x === 'number' && Number.isFinite(x))) {
          throw new WireError(400, `Format error in JSON body: points[${i}].vector: expected a list of finite numbers`);
        }
        if (p.vector.length !== c.size) throw new WireError(400, `Wrong input: Vector dimension error: expected dim: ${c.size}, got ${p.vector.length}`, false);
        const payload = p.payload === undefined || p.payload === null ? {} : obj(p.payload, `points[${i}].payload`);
        return { key, point: { id: p.id as PointId, vector: c.distance === 'Cosine' ? normalize(p.vector as number[]) : (p.vector as number[]), payload, version: 0 } };
      });
      c.operations++;
      for (const { key, point } of staged) c.points.set(key, { ...point, version: c.operations });
      return { operation_id: c.operations, status: url.searchParams.get('wait') === 'true' ? 'completed' : 'acknowledged' };
    }
    if (rest === '/points/delete' && method === 'POST') {
      checkQuery(url, 'delete');
      const b = obj(body, 'PointsSelector');
      c.operations++;
      if ('points' in b) {
        only(b, ['points', 'shard_key'], 'PointIdsList');
        for (const key of ids(b.points, 'points')) c.points.delete(key);
      } else {
        only(b, ['filter', 'shard_key'], 'FilterSelector');
        const keep = compileFilter(b.filter);
        for (const [key, p] of [...c.points]) if (keep(p.payload)) c.points.delete(key);
      }
      return { operation_id: c.operations, status: url.searchParams.get('wait') === 'true' ? 'completed' : 'acknowledged' };
    }
    if (rest === '/points' && method === 'POST') {
      checkQuery(url, 'read');
      const b = obj(body, 'PointRequest');
      only(b, ['shard_key', 'ids', 'with_payload', 'with_vector'], 'PointRequest');
      if (b.with_vector !== undefined && typeof b.with_vector !== 'boolean') throw new WireError(400, 'with_vector: only true/false are exercised here');
      return ids(b.ids, 'ids')
        .map((key) => c.points.get(key))
        .filter((p): p is Point => p !== undefined)
        .map((p) => ({ id: p.id, payload: withPayload(p, b.with_payload ?? true) ?? null, vector: b.with_vector === true ? p.vector : null }));
    }
    if (rest === '/points/count' && method === 'POST') {
      checkQuery(url, 'count');
      const b = obj(body, 'CountRequest');
      only(b, ['shard_key', 'filter', 'exact'], 'CountRequest');
      const keep = b.filter === undefined || b.filter === null ? () => true : compileFilter(b.filter);
      return { count: [...c.points.values()].filter((p) => keep(p.payload)).length };
    }
    if (rest === '/points/query' && method === 'POST') {
      checkQuery(url, 'read');
      const b = obj(body, 'QueryRequest');
      only(b, ['shard_key', 'prefetch', 'query', 'using', 'filter', 'params', 'score_threshold', 'limit', 'offset', 'with_vector', 'with_payload', 'lookup_from'], 'QueryRequest');
      if (b.prefetch !== undefined || b.using !== undefined || b.lookup_from !== undefined) throw new WireError(400, 'prefetch/using/lookup_from are not exercised here');
      if (!Array.isArray(b.query) || !b.query.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw new WireError(400, 'Format error in JSON body: query: expected a dense vector (list of numbers)');
      }
      if (b.query.length !== c.size) throw new WireError(400, `Wrong input: Vector dimension error: expected dim: ${c.size}, got ${b.query.length}`, false);
      const limit = b.limit === undefined || b.limit === null ? 10 : b.limit;
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) throw new WireError(422, 'Validation error in JSON body: [limit: value must be >= 1]');
      const offset = typeof b.offset === 'number' ? b.offset : 0;
      const q = c.distance === 'Cosine' ? normalize(b.query as number[]) : (b.query as number[]);
      const keep = b.filter === undefined || b.filter === null ? () => true : compileFilter(b.filter);
      const ascending = c.distance === 'Euclid' || c.distance === 'Manhattan';
      const scored = [...c.points.values()]
        .filter((p) => keep(p.payload))
        .map((p) => {
          let score: number;
          if (c.distance === 'Euclid') score = Math.sqrt(p.vector.reduce((s, x, i) => s + (x - q[i]!) ** 2, 0));
          else if (c.distance === 'Manhattan') score = p.vector.reduce((s, x, i) => s + Math.abs(x - q[i]!), 0);
          else score = dot(p.vector, q);
          return { p, score };
        })
        .sort((a, b2) => (ascending ? a.score - b2.score : b2.score - a.score))
        .slice(offset, offset + limit);
      return {
        points: scored.map(({ p, score }) => ({
          id: p.id,
          version: p.version,
          score,
          payload: withPayload(p, b.with_payload) ?? null,
          vector: b.with_vector === true ? p.vector : null,
        })),
      };
    }
    throw new WireError(404, `no route ${method} ${path}`, true);
  };

  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => {
      const t0 = process.hrtime.bigint();
      const method = req.method ?? 'GET';
      const url = new URL(req.url ?? '/', 'http://local');
      requests.push(`${method} ${url.pathname}`);
      const send = (status: number, payload: unknown): void => {
        const text = JSON.stringify(payload);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      };
      const elapsed = (): number => Number(process.hrtime.bigint() - t0) / 1e9;
      try {
        if (apiKey !== undefined) {
          const given = req.headers['api-key'];
          if (given === undefined) throw new WireError(401, 'Must provide an API key or an Authorization bearer token', true);
          if (given !== apiKey) throw new WireError(403, 'Invalid API key or JWT', false);
        }
        if (failures.count > 0) {
          failures.count--;
          throw new WireError(failures.status, failures.status === 429 ? 'Too many requests' : 'Service Unavailable', false);
        }
        const raw = Buffer.concat(parts);
        let body: unknown;
        if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
          if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) throw new WireError(415, 'Content-Type must be application/json');
          try {
            body = JSON.parse(raw.toString('utf8'));
          } catch {
            throw new WireError(400, 'Json deserialize error: invalid JSON body');
          }
        }
        send(200, { result: route(method, url, body), status: 'ok', time: elapsed() });
      } catch (err) {
        const e = err instanceof WireError ? err : new WireError(500, `Service internal error: ${String(err)}`, false);
        if (e.violation) violations.push(`${method} ${url.pathname}: ${e.message}`);
        if (e.status === 429) res.setHeader('retry-after', '0');
        send(e.status, { status: { error: e.message }, time: elapsed() });
      }
    });
  });
  const port = await new Promise<number>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok((server.address() as AddressInfo).port));
  });

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    violations,
    requests,
    failNext(count, status = 503) {
      failures = { count, status };
    },
    collectionNames: () => [...collections.keys()],
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}
