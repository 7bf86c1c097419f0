/**
 * A local stand-in for Pinecone (serverless, API version 2026-04, what `@pinecone-database/pinecone`
 * 8.2 speaks) that checks the wire format the way Pinecone reads it and really stores and searches
 * vectors (brute force), so the VectorStore conformance suite means something without Pinecone
 * Local (which needs Docker). It is NOT Pinecone: no ANN, no eventual consistency, no quotas.
 *
 * Like Pinecone, the control plane (`/indexes`) answers on one address and every index gets a data
 * plane of its own: a separate listener whose `host` (no scheme, as Pinecone returns it) comes back
 * from `describeIndex`.
 *
 * What it checks (off-spec requests get Pinecone's 400/401 and are recorded in `violations`):
 * - headers: `Api-Key` equal to the key (401 otherwise), `X-Pinecone-Api-Version: 2026-04`,
 *   `Content-Type: application/json` on bodies;
 * - paths, methods and JSON field names of the generated OpenAPI clients (unknown fields refused);
 * - create index: name (lowercase letters, digits, '-', at most 45), dimension, metric
 *   (cosine/euclidean/dotproduct), serverless spec, tags (keys/values charset and length);
 * - upsert: at most 1,000 vectors and 2 MB per request, ids 1-512 chars, dense values of the
 *   index's width with no all-zero vector on cosine, metadata of strings/numbers/booleans/lists of
 *   strings within 40 KB;
 * - query: topK 1-10,000 (1-1,000 with values or metadata), a vector of the index's width, filter
 *   operators ($eq $ne $gt $gte $lt $lte $in $nin $exists $and $or) with their operand types;
 * - fetch/delete: at most 1,000 ids; namespaces: list limit 1-100 with pagination tokens.
 *
 * Scores as Pinecone gives them: cosine similarity, dot product, squared L2 distance for
 * `euclidean` (ascending). `failNext(n, status)` answers the next n data or control requests with
 * a 429/5xx, `requests` counts what was called.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export const PINECONE_API_VERSION = '2026-04';

type PcMetric = 'cosine' | 'euclidean' | 'dotproduct';
type MetaValue = string | number | boolean | string[];

interface StoredVector {
  id: string;
  values: number[];
  metadata?: Record<string, MetaValue>;
}

interface WireIndex {
  name: string;
  dimension: number;
  metric: PcMetric;
  tags: Record<string, string>;
  cloud: string;
  region: string;
  deletionProtection: string;
  ready: boolean;
  server: http.Server;
  host: string;
  namespaces: Map<string, Map<string, StoredVector>>;
}

interface Reply {
  status: number;
  body?: unknown;
}

class WireError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** An off-spec request (recorded), as opposed to a semantic answer like 404/409. */
    readonly violation = status === 400 || status === 415,
  ) {
    super(message);
  }
}

export interface PineconeWireServer {
  controllerUrl: string;
  apiKey: string;
  /** Off-spec requests seen (tests assert it stays empty). */
  violations: string[];
  /** `METHOD path` of every request, in order. */
  requests: string[];
  /** Answers the next `count` requests with `status` (429 or 5xx). */
  failNext(count: number, status?: number): void;
  indexNames(): string[];
  close(): Promise<void>;
}

const CONTROL_CODES: Record<number, string> = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 404: 'NOT_FOUND', 409: 'ALREADY_EXISTS', 429: 'RESOURCE_EXHAUSTED', 500: 'UNKNOWN', 503: 'UNAVAILABLE' };
const GRPC_CODES: Record<number, number> = { 400: 3, 401: 16, 404: 5, 409: 6, 429: 8, 500: 2, 503: 14 };

function expectObject(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new WireError(400, `${where} must be a JSON object`);
  return value as Record<string, unknown>;
}

function onlyFields(body: Record<string, unknown>, allowed: string[], where: string): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw new WireError(400, `${where}: unknown field "${key}"`);
  }
}

function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}

function dot(a: number[], b: number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function checkMetadata(value: unknown, where: string): Record<string, MetaValue> {
  const meta = expectObject(value, `${where}.metadata`);
  if (Buffer.byteLength(JSON.stringify(meta)) > 40_960) throw new WireError(400, `${where}: metadata size exceeds the limit of 40960 bytes per vector`);
  for (const [key, v] of Object.entries(meta)) {
    const ok =
      typeof v === 'string' ||
      typeof v === 'boolean' ||
      (typeof v === 'number' && Number.isFinite(v)) ||
      (Array.isArray(v) && v.every((x) => typeof x === 'string'));
    if (!ok) throw new WireError(400, `${where}: metadata value for "${key}" must be a string, number, boolean or list of strings`);
  }
  return meta as Record<string, MetaValue>;
}

const COMPARISON = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists'];

/** Validates a Pinecone metadata filter and returns its predicate. */
function compileFilter(filter: unknown, where = 'filter'): (meta: Record<string, MetaValue> | undefined) => boolean {
  const f = expectObject(filter, where);
  const keys = Object.keys(f);
  if (keys.length === 0) throw new WireError(400, `${where}: must not be empty`);
  const parts = keys.map((key): ((m: Record<string, MetaValue> | undefined) => boolean) => {
    const operand = f[key];
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(operand) || operand.length === 0) throw new WireError(400, `${where}.${key}: expected a non-empty array of filters`);
      const subs = operand.map((sub, i) => compileFilter(sub, `${where}.${key}[${i}]`));
      return key === '$and' ? (m) => subs.every((s) => s(m)) : (m) => subs.some((s) => s(m));
    }
    if (key.startsWith('$')) throw new WireError(400, `${where}: unknown operator ${key}`);
    // A bare value is shorthand for $eq.
    const ops = typeof operand === 'object' && operand !== null && !Array.isArray(operand) ? (operand as Record<string, unknown>) : { $eq: operand };
    const checks = Object.entries(ops).map(([op, arg]): ((v: MetaValue | undefined) => boolean) => {
      if (!COMPARISON.includes(op)) throw new WireError(400, `${where}.${key}: unknown operator ${op}`);
      const scalar = (x: unknown): boolean => typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x));
      const eq = (v: MetaValue | undefined, x: unknown): boolean => (Array.isArray(v) ? v.includes(x as string) : v === x);
      switch (op) {
        case '$eq':
        case '$ne':
          if (!scalar(arg)) throw new WireError(400, `${where}.${key}.${op}: operand must be a string, number or boolean`);
          return op === '$eq' ? (v) => eq(v, arg) : (v) => !eq(v, arg);
        case '$in':
        case '$nin':
          if (!Array.isArray(arg) || !arg.every((x) => typeof x === 'string' || typeof x === 'number')) {
            throw new WireError(400, `${where}.${key}.${op}: operand must be an array of strings or numbers`);
          }
          return op === '$in' ? (v) => arg.some((x) => eq(v, x)) : (v) => !arg.some((x) => eq(v, x));
        case '$exists':
          if (typeof arg !== 'boolean') throw new WireError(400, `${where}.${key}.$exists: operand must be a boolean`);
          return (v) => (v !== undefined) === arg;
        default: {
          if (typeof arg !== 'number') throw new WireError(400, `${where}.${key}.${op}: operand must be a number`);
          const cmp = { $gt: (a: number) => a > arg, $gte: (a: number) => a >= arg, $lt: (a: number) => a < arg, $lte: (a: number) => a <= arg }[op as '$gt'];
          return (v) => typeof v === 'number' && cmp(v);
        }
      }
    });
    return (m) => checks.every((c) => c(m?.[key]));
  });
  return (m) => parts.every((p) => p(m));
}

export async function startPineconeWireServer(options: { apiKey?: string } = {}): Promise<PineconeWireServer> {
  const apiKey = options.apiKey ?? 'pcsk_local_wire_test_key';
  const violations: string[] = [];
  const requests: string[] = [];
  const indexes = new Map<string, WireIndex>();
  let failures: { count: number; status: number } = { count: 0, status: 503 };

  const readBody = (req: http.IncomingMessage): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => resolve(Buffer.concat(parts)));
      req.on('error', reject);
    });

  /** Shared request handling: headers, failure injection, JSON parsing, error shapes. */
  const serve =
    (
      plane: 'control' | 'data',
      route: (method: string, url: URL, body: unknown, raw: Buffer) => Reply | Promise<Reply>,
    ) =>
    async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
      const method = req.method ?? 'GET';
      const url = new URL(req.url ?? '/', 'http://local');
      requests.push(`${method} ${url.pathname}`);
      const send = (status: number, body?: unknown): void => {
        const text = body === undefined ? '' : JSON.stringify(body);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      };
      const fail = (err: WireError): void => {
        if (err.violation) violations.push(`${method} ${url.pathname}: ${err.message}`);
        if (plane === 'control') send(err.status, { error: { code: CONTROL_CODES[err.status] ?? 'UNKNOWN', message: err.message }, status: err.status });
        else send(err.status, { code: GRPC_CODES[err.status] ?? 2, message: err.message, details: [] });
      };
      try {
        const raw = await readBody(req);
        // A missing header is off-spec; a wrong key is only a wrong key.
        if (req.headers['api-key'] !== apiKey) throw new WireError(401, 'Invalid API Key', req.headers['api-key'] === undefined);
        if (req.headers['x-pinecone-api-version'] !== PINECONE_API_VERSION) {
          throw new WireError(400, `X-Pinecone-Api-Version must be ${PINECONE_API_VERSION}, got ${String(req.headers['x-pinecone-api-version'])}`);
        }
        if (failures.count > 0) {
          failures.count--;
          fail(new WireError(failures.status, failures.status === 429 ? 'Request rate limit exceeded' : 'Service temporarily unavailable', false));
          return;
        }
        let body: unknown;
        if (method === 'POST' || method === 'PATCH') {
          if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) throw new WireError(415, 'Content-Type must be application/json');
          try {
            body = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
          } catch {
            throw new WireError(400, 'request body is not valid JSON');
          }
        }
        const out = await route(method, url, body, raw);
        send(out.status, out.body);
      } catch (err) {
        fail(err instanceof WireError ? err : new WireError(500, String(err), false));
      }
    };

  const indexModel = (ix: WireIndex): unknown => ({
    name: ix.name,
    dimension: ix.dimension,
    metric: ix.metric,
    host: ix.host,
    deletion_protection: ix.deletionProtection,
    tags: ix.tags,
    spec: { serverless: { cloud: ix.cloud, region: ix.region, read_capacity: { mode: 'OnDemand', status: { state: 'Ready' } } } },
    status: { ready: ix.ready, state: ix.ready ? 'Ready' : 'Initializing' },
    vector_type: 'dense',
  });

  const listen = (server: http.Server): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    });

  const dataRoute = (ix: WireIndex) => (method: string, url: URL, body: unknown, raw: Buffer): Reply => {
    const path = url.pathname;
    const namespaceOf = (value: unknown, where: string): string => {
      if (value === undefined) return '';
      if (typeof value !== 'string') throw new WireError(400, `${where}.namespace must be a string`);
      return value;
    };
    if (method === 'POST' && path === '/vectors/upsert') {
      if (raw.length > 2 * 1024 * 1024) throw new WireError(400, `Request size ${raw.length} bytes exceeds the maximum supported size of 2097152 bytes`);
      const b = expectObject(body, 'UpsertRequest');
      onlyFields(b, ['vectors', 'namespace'], 'UpsertRequest');
      if (!Array.isArray(b.vectors) || b.vectors.length === 0) throw new WireError(400, 'vectors must be a non-empty array');
      if (b.vectors.length > 1000) throw new WireError(400, `Upsert batch size ${b.vectors.length} exceeds the maximum of 1000 vectors`);
      const ns = namespaceOf(b.namespace, 'UpsertRequest');
      const checked = b.vectors.map((v, i): StoredVector => {
        const where = `vectors[${i}]`;
        const rec = expectObject(v, where);
        onlyFields(rec, ['id', 'values', 'sparseValues', 'metadata'], where);
        if (typeof rec.id !== 'string' || rec.id.length < 1 || rec.id.length > 512) throw new WireError(400, `${where}.id must be a string of 1-512 characters`);
        if (!Array.isArray(rec.values) || !rec.values.every((x) => typeof x === 'number' && Number.isFinite(x))) {
          throw new WireError(400, `${where}.values must be an array of finite numbers`);
        }
        if (rec.values.length !== ix.dimension) throw new WireError(400, `Vector dimension ${rec.values.length} does not match the dimension of the index ${ix.dimension}`);
        if (ix.metric === 'cosine' && rec.values.every((x) => x === 0)) throw new WireError(400, `${where}: dense vectors must contain at least one non-zero value`);
        const stored: StoredVector = { id: rec.id, values: rec.values as number[] };
        if (rec.metadata !== undefined) stored.metadata = checkMetadata(rec.metadata, where);
        return stored;
      });
      const space = ix.namespaces.get(ns) ?? new Map<string, StoredVector>();
      ix.namespaces.set(ns, space);
      for (const v of checked) space.set(v.id, v);
      return { status: 200, body: { upsertedCount: checked.length } };
    }
    if (method === 'POST' && path === '/query') {
      const b = expectObject(body, 'QueryRequest');
      onlyFields(b, ['namespace', 'topK', 'filter', 'includeValues', 'includeMetadata', 'queries', 'vector', 'sparseVector', 'id', 'scanFactor', 'maxCandidates'], 'QueryRequest');
      const withData = b.includeValues === true || b.includeMetadata === true;
      if (!isInt(b.topK) || b.topK < 1 || b.topK > (withData ? 1000 : 10_000)) {
        throw new WireError(400, `topK must be an integer in 1..${withData ? 1000 : 10000}${withData ? ' when includeValues or includeMetadata is true' : ''}`);
      }
      if (b.queries !== undefined || b.id !== undefined) throw new WireError(400, 'this endpoint is exercised with a query vector only');
      if (!Array.isArray(b.vector) || b.vector.length !== ix.dimension || !b.vector.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw new WireError(400, `Query vector dimension ${Array.isArray(b.vector) ? b.vector.length : 'none'} does not match the dimension of the index ${ix.dimension}`);
      }
      const q = b.vector as number[];
      const keep = b.filter === undefined ? () => true : compileFilter(b.filter);
      const ns = namespaceOf(b.namespace, 'QueryRequest');
      const scored = [...(ix.namespaces.get(ns)?.values() ?? [])]
        .filter((v) => keep(v.metadata))
        .map((v) => {
          let score: number;
          if (ix.metric === 'dotproduct') score = dot(v.values, q);
          else if (ix.metric === 'cosine') score = dot(v.values, q) / Math.sqrt(dot(v.values, v.values) * dot(q, q));
          else score = v.values.reduce((s, x, i) => s + (x - q[i]!) ** 2, 0);
          return { v, score };
        })
        .sort((a, b2) => (ix.metric === 'euclidean' ? a.score - b2.score : b2.score - a.score))
        .slice(0, b.topK);
      const matches = scored.map(({ v, score }) => ({
        id: v.id,
        score,
        values: b.includeValues === true ? v.values : [],
        ...(b.includeMetadata === true && v.metadata ? { metadata: v.metadata } : {}),
      }));
      return { status: 200, body: { results: [], matches, namespace: ns, usage: { readUnits: 1 } } };
    }
    if (method === 'GET' && path === '/vectors/fetch') {
      for (const key of url.searchParams.keys()) if (key !== 'ids' && key !== 'namespace') throw new WireError(400, `fetch: unknown query parameter ${key}`);
      const ids = url.searchParams.getAll('ids');
      if (ids.length === 0) throw new WireError(400, 'fetch: ids is required');
      if (ids.length > 1000) throw new WireError(400, `fetch: ${ids.length} ids exceed the maximum of 1000`);
      const ns = url.searchParams.get('namespace') ?? '';
      const space = ix.namespaces.get(ns);
      const vectors: Record<string, StoredVector> = {};
      for (const id of ids) {
        const v = space?.get(id);
        if (v) vectors[id] = v;
      }
      return { status: 200, body: { vectors, namespace: ns, usage: { readUnits: 1 } } };
    }
    if (method === 'POST' && path === '/vectors/delete') {
      const b = expectObject(body, 'DeleteRequest');
      onlyFields(b, ['ids', 'deleteAll', 'namespace', 'filter'], 'DeleteRequest');
      const ns = namespaceOf(b.namespace, 'DeleteRequest');
      if (b.ids !== undefined) {
        if (!Array.isArray(b.ids) || !b.ids.every((x) => typeof x === 'string')) throw new WireError(400, 'ids must be an array of strings');
        if (b.ids.length > 1000) throw new WireError(400, `delete: ${b.ids.length} ids exceed the maximum of 1000`);
      } else if (b.deleteAll !== true && b.filter === undefined) {
        throw new WireError(400, 'delete: one of ids, deleteAll or filter is required');
      }
      const space = ix.namespaces.get(ns);
      if (!space) throw new WireError(404, `Namespace not found: ${ns}`);
      if (Array.isArray(b.ids)) for (const id of b.ids as string[]) space.delete(id);
      else if (b.deleteAll === true) space.clear();
      else {
        const keep = compileFilter(b.filter);
        for (const [id, v] of space) if (keep(v.metadata)) space.delete(id);
      }
      return { status: 200, body: {} };
    }
    if (method === 'POST' && path === '/describe_index_stats') {
      const b = expectObject(body, 'DescribeIndexStatsRequest');
      onlyFields(b, ['filter'], 'DescribeIndexStatsRequest');
      const keep = b.filter === undefined ? () => true : compileFilter(b.filter);
      const namespaces: Record<string, { vectorCount: number }> = {};
      let total = 0;
      for (const [name, space] of ix.namespaces) {
        const count = [...space.values()].filter((v) => keep(v.metadata)).length;
        namespaces[name] = { vectorCount: count };
        total += count;
      }
      return { status: 200, body: { namespaces, dimension: ix.dimension, indexFullness: 0, totalVectorCount: total, metric: ix.metric, vectorType: 'dense' } };
    }
    if (path === '/namespaces' && method === 'POST') {
      const b = expectObject(body, 'CreateNamespaceRequest');
      onlyFields(b, ['name', 'schema'], 'CreateNamespaceRequest');
      if (typeof b.name !== 'string' || b.name.length === 0 || b.name.length > 512) throw new WireError(400, 'name must be a non-empty string');
      if (ix.namespaces.has(b.name)) throw new WireError(409, `Namespace ${b.name} already exists`);
      ix.namespaces.set(b.name, new Map());
      return { status: 201, body: { name: b.name, record_count: 0 } };
    }
    if (path === '/namespaces' && method === 'GET') {
      for (const key of url.searchParams.keys()) if (!['limit', 'paginationToken', 'prefix'].includes(key)) throw new WireError(400, `list namespaces: unknown query parameter ${key}`);
      const limit = url.searchParams.has('limit') ? Number(url.searchParams.get('limit')) : 100;
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new WireError(400, 'limit must be an integer in 1..100');
      const prefix = url.searchParams.get('prefix') ?? '';
      const names = [...ix.namespaces.keys()].filter((n) => n !== '' && n.startsWith(prefix)).sort();
      const token = url.searchParams.get('paginationToken');
      const start = token === null ? 0 : Number(Buffer.from(token, 'base64url').toString('utf8'));
      if (!Number.isInteger(start) || start < 0) throw new WireError(400, 'invalid paginationToken');
      const page = names.slice(start, start + limit);
      const next = start + limit < names.length ? Buffer.from(String(start + limit)).toString('base64url') : undefined;
      return {
        status: 200,
        body: { namespaces: page.map((n) => ({ name: n, record_count: ix.namespaces.get(n)!.size })), ...(next ? { pagination: { next } } : {}), total_count: names.length },
      };
    }
    const nsPath = /^\/namespaces\/([^/]+)$/.exec(path);
    if (nsPath) {
      const name = decodeURIComponent(nsPath[1]!);
      const space = ix.namespaces.get(name);
      if (!space) throw new WireError(404, `Namespace not found: ${name}`);
      if (method === 'GET') return { status: 200, body: { name, record_count: space.size } };
      if (method === 'DELETE') {
        ix.namespaces.delete(name);
        return { status: 202, body: {} };
      }
    }
    throw new WireError(404, `no route ${method} ${path}`, true);
  };

  const controlRoute = async (method: string, url: URL, body: unknown): Promise<Reply> => {
    const path = url.pathname;
    if (path === '/indexes' && method === 'GET') return { status: 200, body: { indexes: [...indexes.values()].map(indexModel) } };
    if (path === '/indexes' && method === 'POST') {
      const b = expectObject(body, 'CreateIndexRequest');
      onlyFields(b, ['name', 'dimension', 'metric', 'deletion_protection', 'tags', 'spec', 'vector_type'], 'CreateIndexRequest');
      if (typeof b.name !== 'string' || !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(b.name) || b.name.length > 45) {
        throw new WireError(400, 'Name must consist of lower case alphanumeric characters or \'-\', start and end with an alphanumeric character, and be 1-45 characters long');
      }
      if (b.vector_type !== undefined && b.vector_type !== 'dense') throw new WireError(400, 'only dense indexes are supported here');
      if (!isInt(b.dimension) || b.dimension < 1 || b.dimension > 20_000) throw new WireError(400, 'dimension must be an integer in 1..20000 for a dense index');
      if (b.metric !== undefined && !['cosine', 'euclidean', 'dotproduct'].includes(b.metric as string)) throw new WireError(400, 'metric must be one of cosine, euclidean, dotproduct');
      if (b.deletion_protection !== undefined && !['enabled', 'disabled'].includes(b.deletion_protection as string)) throw new WireError(400, 'deletion_protection must be enabled or disabled');
      const tags: Record<string, string> = {};
      if (b.tags !== undefined) {
        for (const [k, v] of Object.entries(expectObject(b.tags, 'tags'))) {
          if (!/^[A-Za-z0-9_-]{1,80}$/.test(k)) throw new WireError(400, `tag key ${k}: 1-80 of letters, digits, _ and -`);
          if (typeof v !== 'string' || !/^[A-Za-z0-9_\-;@.+ ]{0,120}$/.test(v)) throw new WireError(400, `tag ${k}: value must be at most 120 of letters, digits and _ - ; @ . + space`);
          tags[k] = v;
        }
      }
      const spec = expectObject(b.spec, 'spec');
      onlyFields(spec, ['serverless'], 'spec');
      const serverless = expectObject(spec.serverless, 'spec.serverless');
      onlyFields(serverless, ['cloud', 'region', 'read_capacity', 'source_collection', 'schema'], 'spec.serverless');
      if (!['aws', 'gcp', 'azure'].includes(serverless.cloud as string)) throw new WireError(400, 'spec.serverless.cloud must be aws, gcp or azure');
      if (typeof serverless.region !== 'string' || serverless.region.length === 0) throw new WireError(400, 'spec.serverless.region is required');
      if (indexes.has(b.name)) throw new WireError(409, 'Resource already exists');
      const server = http.createServer();
      const ix: WireIndex = {
        name: b.name,
        dimension: b.dimension,
        metric: (b.metric as PcMetric | undefined) ?? 'cosine',
        tags,
        cloud: serverless.cloud as string,
        region: serverless.region,
        deletionProtection: (b.deletion_protection as string | undefined) ?? 'disabled',
        ready: false,
        server,
        host: '',
        namespaces: new Map(),
      };
      const handle = serve('data', dataRoute(ix));
      server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => void handle(req, res));
      ix.host = `127.0.0.1:${await listen(server)}`;
      indexes.set(ix.name, ix);
      return { status: 201, body: indexModel(ix) };
    }
    const one = /^\/indexes\/([^/]+)$/.exec(path);
    if (one) {
      const ix = indexes.get(decodeURIComponent(one[1]!));
      if (!ix) throw new WireError(404, `Resource ${one[1]} not found`);
      if (method === 'GET') {
        const model = indexModel(ix);
        ix.ready = true; // Initializing on the first look, like a fresh serverless index.
        return { status: 200, body: model };
      }
      if (method === 'DELETE') {
        indexes.delete(ix.name);
        await new Promise<void>((resolve) => ix.server.close(() => resolve()));
        return { status: 202 };
      }
    }
    throw new WireError(404, `no route ${method} ${path}`, true);
  };

  const control = http.createServer();
  const handleControl = serve('control', controlRoute);
  control.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => void handleControl(req, res));
  const port = await listen(control);

  return {
    controllerUrl: `http://127.0.0.1:${port}`,
    apiKey,
    violations,
    requests,
    failNext(count, status = 503) {
      failures = { count, status };
    },
    indexNames: () => [...indexes.keys()],
    async close() {
      const servers = [control, ...[...indexes.values()].map((ix) => ix.server)];
      indexes.clear();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}
