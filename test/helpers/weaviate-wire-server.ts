/**
 * A local endpoint that speaks Weaviate's wire protocol as the `weaviate-client` 3.12 uses it,
 * for the Weaviate adapter's tests (no Weaviate server can run here: no Docker, and the embedded
 * binary comes from GitHub, which is unreachable). It is not Weaviate: it keeps what it is sent in
 * memory and searches by brute force. What it checks is the protocol:
 *
 * - REST (JSON over HTTP, `/v1/...`): meta, schema (collections and properties), aliases
 *   (Weaviate ≥ 1.32 `/v1/aliases`), single objects. Bodies are validated the way Weaviate does
 *   (class and property names, data types, tokenization, the `none` vectorizer and HNSW
 *   distances, create-if-absent for classes, properties and aliases) and answered with the shapes
 *   Weaviate answers, defaults included, which the client's parsers insist on.
 * - gRPC (`weaviate.v1.Weaviate` Search, BatchObjects, BatchDelete, Aggregate and
 *   `grpc.health.v1.Health` Check), served by @grpc/grpc-js with the client's own generated
 *   protobuf codecs (node_modules/weaviate-client/dist/node/cjs/proto): the bytes on the wire are
 *   the real messages. Vectors travel as little-endian float32 bytes in named `vectors`,
 *   properties as a protobuf Struct; filters are evaluated with Weaviate's semantics (text with
 *   `field` tokenization compares whole values; `word` tokenization is refused rather than
 *   approximated); distances are Weaviate's (cosine 1−cos, dot −a·b, l2-squared ‖a−b‖²).
 *
 * Anything it does not know (an unknown route, a request field it does not implement such as
 * hybrid or group-by) is an error naming the field, so a client change cannot pass silently.
 * `calls` counts requests per route and RPC, so tests can show which protocol carried what.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';

/* The client's generated codecs, loaded by file path: the package exports only its root. */
const PROTO_DIR = path.join(path.dirname(require.resolve('weaviate-client')), 'proto');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const weaviateProto = require(path.join(PROTO_DIR, 'v1/weaviate.js')) as { WeaviateDefinition: ServiceDefinition };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const healthProto = require(path.join(PROTO_DIR, 'google/health/v1/health.js')) as { HealthDefinition: ServiceDefinition };

interface Codec {
  encode(message: unknown): { finish(): Uint8Array };
  decode(input: Uint8Array): unknown;
  fromPartial(message: unknown): unknown;
}
interface ServiceDefinition {
  name: string;
  fullName: string;
  methods: Record<string, { name: string; requestType: Codec; responseType: Codec; requestStream: boolean; responseStream: boolean }>;
}

/* ---- the protobuf messages we read and write (the subset of the generated types we use) ---- */
interface PbVectors {
  name: string;
  vectorBytes: Uint8Array;
  type: number;
}
interface PbFilters {
  operator: number;
  on: string[];
  filters: PbFilters[];
  valueText?: string;
  valueInt?: number;
  valueBoolean?: boolean;
  valueNumber?: number;
  valueTextArray?: { values: string[] };
  valueIntArray?: { values: number[] };
  valueBooleanArray?: { values: boolean[] };
  valueNumberArray?: { values: number[] };
  target?: { property?: string };
}
interface PbBatchObject {
  uuid: string;
  vector: number[];
  vectorBytes: Uint8Array;
  vectors: PbVectors[];
  collection: string;
  tenant: string;
  properties?: {
    nonRefProperties?: Record<string, unknown>;
    singleTargetRefProps: unknown[];
    multiTargetRefProps: unknown[];
    numberArrayProperties: unknown[];
    intArrayProperties: unknown[];
    textArrayProperties: unknown[];
    booleanArrayProperties: unknown[];
    objectProperties: unknown[];
    objectArrayProperties: unknown[];
    emptyListProps: string[];
  };
}
interface PbSearchRequest {
  collection: string;
  tenant: string;
  limit: number;
  offset: number;
  autocut: number;
  after: string;
  sortBy: unknown[];
  filters?: PbFilters;
  nearVector?: { vector: number[]; vectorBytes: Uint8Array; targetVectors: string[]; targets?: { targetVectors: string[] }; vectorPerTarget: Record<string, Uint8Array>; vectorForTargets: { name: string; vectorBytes: Uint8Array; vectors: PbVectors[] }[]; vectors: PbVectors[]; certainty?: number; distance?: number };
  properties?: { nonRefProperties: string[]; refProperties: unknown[]; objectProperties: unknown[]; returnAllNonrefProperties: boolean };
  metadata?: { uuid: boolean; vector: boolean; distance: boolean; vectors: string[]; certainty: boolean; score: boolean; explainScore: boolean; creationTimeUnix: boolean; lastUpdateTimeUnix: boolean; isConsistent: boolean };
  [field: string]: unknown;
}
type PbValue = { textValue?: string; numberValue?: number; intValue?: number; boolValue?: boolean; nullValue?: number };

/* ---- Weaviate's REST shapes ---- */
interface WProperty {
  name: string;
  dataType: string[];
  tokenization?: string;
  indexFilterable?: boolean;
  indexSearchable?: boolean;
  indexRangeFilters?: boolean;
  description?: string;
  [k: string]: unknown;
}
interface WClass {
  class: string;
  description?: string;
  properties: WProperty[];
  vectorConfig?: Record<string, { vectorizer: Record<string, unknown>; vectorIndexType: string; vectorIndexConfig: Record<string, unknown> }>;
  vectorizer?: string;
  vectorIndexType?: string;
  vectorIndexConfig?: Record<string, unknown>;
  [k: string]: unknown;
}
interface StoredObject {
  id: string;
  properties: Record<string, unknown>;
  vectors: Record<string, Float32Array>;
  created: number;
  updated: number;
}

const WEAVIATE_VERSION = '1.32.10';
const CLASS_NAME = /^[A-Z][_0-9A-Za-z]{0,254}$/;
const PROPERTY_NAME = /^[_A-Za-z][_0-9A-Za-z]{0,230}$/;
const RESERVED_PROPERTIES = new Set(['_additional', '_id', 'id']);
const DATA_TYPES = new Set(['text', 'number', 'int', 'boolean', 'date', 'uuid']);
const TOKENIZATIONS = new Set(['word', 'lowercase', 'whitespace', 'field', 'trigram']);
const DISTANCES = new Set(['cosine', 'dot', 'l2-squared', 'hamming', 'manhattan']);
/** What Weaviate 1.32 fills into an HNSW index config it was not given. */
const HNSW_DEFAULTS = {
  cleanupIntervalSeconds: 300,
  distance: 'cosine',
  dynamicEfMin: 100,
  dynamicEfMax: 500,
  dynamicEfFactor: 8,
  ef: -1,
  efConstruction: 128,
  filterStrategy: 'sweeping',
  flatSearchCutoff: 40000,
  maxConnections: 32,
  skip: false,
  vectorCacheMaxObjects: 1000000000000,
  pq: { enabled: false },
  bq: { enabled: false },
  sq: { enabled: false },
  rq: { enabled: false },
  multivector: { enabled: false, aggregation: 'maxSim' },
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const OP = { EQUAL: 1, NOT_EQUAL: 2, AND: 7, OR: 8, CONTAINS_ANY: 12, NOT: 15 } as const;

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}
/** A gRPC status error as grpc-js sends it. */
function grpcError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

export interface WeaviateWireServer {
  /** REST base, e.g. http://127.0.0.1:41234 */
  url: string;
  /** gRPC endpoint, e.g. http://127.0.0.1:41235 */
  grpcUrl: string;
  /** Requests served, by `METHOD /path-pattern` and `grpc Method`. */
  calls: Map<string, number>;
  /** Protocol violations seen (also answered with an error); tests assert there are none. */
  violations: string[];
  /** The raw class definitions, as a client would read them back. */
  classes(): WClass[];
  /**
   * The next `times` (default 1) requests to `key` (as counted in `calls`, e.g.
   * `PUT /v1/aliases/{alias}` or `grpc BatchObjects`) fail: REST with a 500, gRPC with UNAVAILABLE.
   */
  failNext(key: string, times?: number): void;
  stop(): Promise<void>;
}

export interface WeaviateWireServerOptions {
  /** When set, every REST and gRPC request must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** The version `/v1/meta` reports (default 1.32.10, the first minor with aliases is 1.32). */
  version?: string;
}

export async function startWeaviateWireServer(options: WeaviateWireServerOptions = {}): Promise<WeaviateWireServer> {
  const classes = new Map<string, WClass>();
  const objects = new Map<string, Map<string, StoredObject>>();
  const aliases = new Map<string, string>();
  const calls = new Map<string, number>();
  const violations: string[] = [];
  const failing = new Map<string, number>();
  const count = (key: string): void => {
    calls.set(key, (calls.get(key) ?? 0) + 1);
    const left = failing.get(key) ?? 0;
    if (left > 0) {
      failing.set(key, left - 1);
      throw new HttpError(500, `injected failure of ${key}`);
    }
  };

  const violation = (message: string): never => {
    violations.push(message);
    throw new HttpError(422, message);
  };

  const resolveClass = (name: string): WClass | undefined => classes.get(name) ?? classes.get(aliases.get(name) ?? '');

  /* ---------------- REST ---------------- */

  function validateClass(body: unknown): WClass {
    if (typeof body !== 'object' || body === null) violation('class body must be a JSON object');
    const cls = body as WClass;
    if (typeof cls.class !== 'string' || !CLASS_NAME.test(cls.class)) violation(`class name ${JSON.stringify(cls.class)} must match ${CLASS_NAME.source}`);
    if (!Array.isArray(cls.properties ?? [])) violation('properties must be an array');
    const props = (cls.properties ?? []).map(validateProperty);
    const names = new Set<string>();
    for (const p of props) {
      if (names.has(p.name.toLowerCase())) violation(`property ${p.name} is defined twice`);
      names.add(p.name.toLowerCase());
    }
    if (cls.vectorizer !== undefined && cls.vectorConfig !== undefined && cls.vectorizer !== 'none') violation('class has both a legacy vectorizer and vectorConfig');
    for (const [name, vc] of Object.entries(cls.vectorConfig ?? {})) {
      if (!vc || typeof vc !== 'object') violation(`vectorConfig.${name} must be an object`);
      const vectorizers = Object.keys(vc.vectorizer ?? {});
      if (vectorizers.length !== 1 || vectorizers[0] !== 'none') violation(`vectorConfig.${name}.vectorizer must be {none: {}} here (we bring vectors), got ${JSON.stringify(vc.vectorizer)}`);
      if (vc.vectorIndexType !== 'hnsw' && vc.vectorIndexType !== 'flat') violation(`vectorConfig.${name}.vectorIndexType ${JSON.stringify(vc.vectorIndexType)} unknown`);
      const distance = vc.vectorIndexConfig?.distance ?? 'cosine';
      if (typeof distance !== 'string' || !DISTANCES.has(distance)) violation(`vectorConfig.${name}.vectorIndexConfig.distance ${JSON.stringify(distance)} unknown`);
    }
    return withDefaults({ ...cls, properties: props });
  }

  function validateProperty(body: unknown): WProperty {
    const p = body as WProperty;
    if (typeof p?.name !== 'string' || !PROPERTY_NAME.test(p.name)) violation(`property name ${JSON.stringify(p?.name)} must match ${PROPERTY_NAME.source}`);
    if (RESERVED_PROPERTIES.has(p.name)) violation(`property name ${p.name} is reserved`);
    if (!Array.isArray(p.dataType) || p.dataType.length !== 1 || !DATA_TYPES.has(String(p.dataType[0]))) {
      violation(`property ${p.name}: dataType ${JSON.stringify(p.dataType)} must be one of ${[...DATA_TYPES].map((t) => `[${t}]`).join(', ')}`);
    }
    const type = p.dataType[0]!;
    if (p.tokenization !== undefined && p.tokenization !== '') {
      if (type !== 'text') violation(`property ${p.name}: tokenization is only for text, not ${type}`);
      if (!TOKENIZATIONS.has(p.tokenization)) violation(`property ${p.name}: tokenization ${JSON.stringify(p.tokenization)} unknown`);
    }
    return {
      ...p,
      name: p.name.charAt(0).toLowerCase() + p.name.slice(1), // Weaviate lower-cases the first letter
      tokenization: type === 'text' ? p.tokenization || 'word' : undefined,
      indexFilterable: p.indexFilterable ?? true,
      indexSearchable: p.indexSearchable ?? type === 'text',
      indexRangeFilters: p.indexRangeFilters ?? false,
    };
  }

  /** Weaviate fills these in on create; the client's config parser requires them. */
  function withDefaults(cls: WClass): WClass {
    const vectorConfig = Object.fromEntries(
      Object.entries(cls.vectorConfig ?? {}).map(([name, vc]) => [
        name,
        { ...vc, vectorIndexConfig: { ...HNSW_DEFAULTS, ...vc.vectorIndexConfig } },
      ]),
    );
    return {
      ...cls,
      ...(cls.vectorConfig ? { vectorConfig } : { vectorizer: cls.vectorizer ?? 'none', vectorIndexType: cls.vectorIndexType ?? 'hnsw', vectorIndexConfig: { ...HNSW_DEFAULTS, ...cls.vectorIndexConfig } }),
      invertedIndexConfig: {
        bm25: { b: 0.75, k1: 1.2 },
        cleanupIntervalSeconds: 60,
        stopwords: { preset: 'en', additions: null, removals: null },
        indexTimestamps: false,
        indexPropertyLength: false,
        indexNullState: false,
        usingBlockMaxWAND: true,
        ...(cls.invertedIndexConfig as object | undefined),
      },
      multiTenancyConfig: { enabled: false, autoTenantCreation: false, autoTenantActivation: false, ...(cls.multiTenancyConfig as object | undefined) },
      replicationConfig: { factor: 1, asyncEnabled: false, deletionStrategy: 'NoAutomatedResolution', ...(cls.replicationConfig as object | undefined) },
      shardingConfig: {
        actualCount: 1,
        actualVirtualCount: 128,
        desiredCount: 1,
        desiredVirtualCount: 128,
        function: 'murmur3',
        key: '_id',
        strategy: 'hash',
        virtualPerPhysical: 128,
      },
    };
  }

  function aliasView(alias: string): { alias: string; class: string } {
    return { alias, class: aliases.get(alias)! };
  }

  function validateObjectBody(body: unknown, className: string, id: string | undefined): StoredObject {
    const o = body as { class?: string; id?: string; properties?: Record<string, unknown>; vectors?: Record<string, number[]>; vector?: number[] };
    if (!o || typeof o !== 'object') violation('object body must be a JSON object');
    if (o.class !== undefined && o.class !== className) violation(`object class ${o.class} does not match ${className}`);
    const uuid = id ?? o.id ?? randomUUID();
    if (!UUID.test(uuid)) violation(`object id ${JSON.stringify(uuid)} is not a UUID`);
    if (o.id !== undefined && id !== undefined && o.id !== id) violation(`object id ${o.id} does not match the path ${id}`);
    const cls = classes.get(className)!;
    const properties = checkProperties(cls, o.properties ?? {}, (m) => violation(m));
    const vectors: Record<string, Float32Array> = {};
    for (const [name, v] of Object.entries(o.vectors ?? {})) vectors[name] = Float32Array.from(v);
    const now = Date.now();
    return { id: uuid, properties, vectors, created: now, updated: now };
  }

  async function handleRest(method: string, pathname: string, query: URLSearchParams, body: unknown): Promise<[number, unknown]> {
    let m: RegExpExecArray | null;
    const route = (key: string): void => count(`${method} ${key}`);
    if (method === 'GET' && pathname === '/v1/meta') {
      route('/v1/meta');
      return [200, { hostname: 'http://[::]:8080', version: options.version ?? WEAVIATE_VERSION, modules: {}, grpcMaxMessageSize: 104858000 }];
    }
    if (method === 'GET' && pathname === '/v1/.well-known/ready') {
      route('/v1/.well-known/ready');
      return [200, undefined];
    }
    if (method === 'GET' && pathname === '/v1/schema') {
      route('/v1/schema');
      return [200, { classes: [...classes.values()] }];
    }
    if (method === 'POST' && pathname === '/v1/schema') {
      route('/v1/schema');
      const cls = validateClass(body);
      if ([...classes.keys()].some((c) => c.toLowerCase() === cls.class.toLowerCase())) throw new HttpError(422, `class name ${cls.class} already exists`);
      if (aliases.has(cls.class)) throw new HttpError(422, `class name ${cls.class} already exists as an alias`);
      classes.set(cls.class, cls);
      objects.set(cls.class, new Map());
      return [200, cls];
    }
    if ((m = /^\/v1\/schema\/([^/]+)$/.exec(pathname))) {
      route(`/v1/schema/{class}`);
      const name = decodeURIComponent(m[1]!);
      if (method === 'GET') {
        const cls = classes.get(name);
        if (!cls) throw new HttpError(404, `class ${name} not found`);
        return [200, cls];
      }
      if (method === 'DELETE') {
        classes.delete(name);
        objects.delete(name);
        for (const [alias, target] of aliases) if (target === name) aliases.delete(alias);
        return [200, undefined];
      }
    }
    if ((m = /^\/v1\/schema\/([^/]+)\/properties$/.exec(pathname)) && method === 'POST') {
      route('/v1/schema/{class}/properties');
      const cls = classes.get(decodeURIComponent(m[1]!));
      if (!cls) throw new HttpError(404, `class ${m[1]} not found`);
      const prop = validateProperty(body);
      if (cls.properties.some((p) => p.name.toLowerCase() === prop.name.toLowerCase())) throw new HttpError(422, `property ${prop.name} already exists in ${cls.class}`);
      cls.properties.push(prop);
      return [200, prop];
    }
    if (pathname === '/v1/aliases' || pathname === '/v1/aliases/') {
      route('/v1/aliases');
      if (method === 'GET') {
        const forClass = query.get('class');
        const list = [...aliases.keys()].map(aliasView).filter((a) => forClass === null || a.class === forClass);
        return [200, { aliases: list }];
      }
      if (method === 'POST') {
        const b = body as { alias?: unknown; class?: unknown };
        if (typeof b?.alias !== 'string' || !CLASS_NAME.test(b.alias)) violation(`alias ${JSON.stringify(b?.alias)} must match ${CLASS_NAME.source}`);
        if (typeof b.class !== 'string') violation('alias body needs class (the target collection)');
        const alias = b.alias as string;
        const target = b.class as string;
        if (!classes.has(target)) throw new HttpError(404, `class ${target} not found`);
        if (aliases.has(alias)) throw new HttpError(422, `alias ${alias} already exists`);
        if (classes.has(alias)) throw new HttpError(422, `alias ${alias} clashes with the class of that name`);
        aliases.set(alias, target);
        return [200, aliasView(alias)];
      }
    }
    if ((m = /^\/v1\/aliases\/([^/]+)$/.exec(pathname))) {
      route('/v1/aliases/{alias}');
      const alias = decodeURIComponent(m[1]!);
      if (method === 'GET') {
        if (!aliases.has(alias)) throw new HttpError(404, `alias ${alias} not found`);
        return [200, aliasView(alias)];
      }
      if (method === 'PUT') {
        const b = body as { class?: unknown };
        if (typeof b?.class !== 'string') violation('alias update needs class (the new target)');
        if (!aliases.has(alias)) throw new HttpError(404, `alias ${alias} not found`);
        if (!classes.has(b.class as string)) throw new HttpError(404, `class ${String(b.class)} not found`);
        aliases.set(alias, b.class as string);
        return [200, aliasView(alias)];
      }
      if (method === 'DELETE') {
        if (!aliases.has(alias)) throw new HttpError(404, `alias ${alias} not found`);
        aliases.delete(alias);
        return [204, undefined];
      }
    }
    if (pathname === '/v1/objects' && method === 'POST') {
      route('/v1/objects');
      const className = (body as { class?: string })?.class;
      const cls = className ? resolveClass(className) : undefined;
      if (!cls) throw new HttpError(422, `class ${String(className)} not found`);
      const obj = validateObjectBody(body, cls.class, undefined);
      const store = objects.get(cls.class)!;
      if (store.has(obj.id)) throw new HttpError(422, `id '${obj.id}' already exists`);
      store.set(obj.id, obj);
      return [200, restObject(cls.class, obj)];
    }
    if ((m = /^\/v1\/objects\/([^/]+)\/([^/]+)$/.exec(pathname))) {
      route(`${'/v1/objects/{class}/{id}'}`);
      const cls = resolveClass(decodeURIComponent(m[1]!));
      const id = decodeURIComponent(m[2]!);
      if (!UUID.test(id)) violation(`object id ${JSON.stringify(id)} is not a UUID`);
      const store = cls ? objects.get(cls.class)! : undefined;
      if (method === 'HEAD') return [store?.has(id) ? 204 : 404, undefined];
      if (!cls || !store) throw new HttpError(404, `class ${m[1]} not found`);
      if (method === 'GET') {
        const obj = store.get(id);
        if (!obj) throw new HttpError(404, `object ${id} not found`);
        return [200, restObject(cls.class, obj)];
      }
      if (method === 'PUT') {
        const obj = validateObjectBody(body, cls.class, id);
        const old = store.get(id);
        if (!old) throw new HttpError(404, `object ${id} not found: replace needs an existing object`);
        obj.created = old.created;
        store.set(id, obj);
        return [200, restObject(cls.class, obj)];
      }
      if (method === 'DELETE') {
        if (!store.delete(id)) throw new HttpError(404, `object ${id} not found`);
        return [204, undefined];
      }
    }
    const unknown = `no such route: ${method} ${pathname}`;
    violations.push(unknown);
    throw new HttpError(404, unknown);
  }

  function restObject(className: string, obj: StoredObject): unknown {
    return {
      class: className,
      id: obj.id,
      properties: obj.properties,
      creationTimeUnix: obj.created,
      lastUpdateTimeUnix: obj.updated,
      vectors: Object.fromEntries(Object.entries(obj.vectors).map(([k, v]) => [k, Array.from(v)])),
    };
  }

  const authorized = (header: string | undefined): boolean => options.apiKey === undefined || header === `Bearer ${options.apiKey}`;

  const httpServer = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://localhost');
        let status: number;
        let payload: unknown;
        try {
          if (!authorized(req.headers.authorization)) throw new HttpError(401, 'anonymous access not enabled, please provide an auth scheme such as OIDC or API key');
          const raw = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          if (raw.length > 0) {
            if (!String(req.headers['content-type']).startsWith('application/json')) violation(`${req.method} ${url.pathname}: body without content-type application/json`);
            try {
              body = JSON.parse(raw);
            } catch {
              violation(`${req.method} ${url.pathname}: body is not JSON`);
            }
          }
          [status, payload] = await handleRest(req.method ?? 'GET', url.pathname, url.searchParams, body);
        } catch (err) {
          status = err instanceof HttpError ? err.status : 500;
          payload = { error: [{ message: err instanceof Error ? err.message : String(err) }] };
        }
        if (payload === undefined || req.method === 'HEAD') {
          res.writeHead(status).end();
        } else {
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
        }
      })();
    });
  });

  /* ---------------- gRPC ---------------- */

  function requireClass(name: string): WClass {
    const cls = resolveClass(name);
    if (!cls) throw grpcError(grpc.status.NOT_FOUND, `could not find class ${name} in schema`);
    return cls;
  }

  function vectorConfigOf(cls: WClass, target: string): { distance: string } {
    const vc = cls.vectorConfig?.[target];
    if (!vc) throw grpcError(grpc.status.INVALID_ARGUMENT, `class ${cls.class} has no named vector ${JSON.stringify(target)}`);
    return { distance: String(vc.vectorIndexConfig.distance) };
  }

  function float32(bytes: Uint8Array, what: string): Float32Array {
    if (bytes.byteLength % 4 !== 0) throw grpcError(grpc.status.INVALID_ARGUMENT, `${what}: ${bytes.byteLength} bytes is not a whole number of float32`);
    const copy = new Uint8Array(bytes); // aligned copy
    return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  }

  function batchObjects(req: { objects: PbBatchObject[] }): { took: number; errors: { index: number; error: string }[] } {
    const errors: { index: number; error: string }[] = [];
    req.objects.forEach((o, index) => {
      try {
        const cls = requireClass(o.collection);
        if (o.tenant) throw new Error('tenant given for a class without multi-tenancy');
        if (!UUID.test(o.uuid)) throw new Error(`id ${JSON.stringify(o.uuid)} is not a UUID`);
        if (o.vector.length > 0 || o.vectorBytes.length > 0) throw new Error('legacy unnamed vector sent to a class with named vectors; use vectors');
        const vectors: Record<string, Float32Array> = {};
        for (const v of o.vectors) {
          vectorConfigOf(cls, v.name);
          if (v.type !== 0 && v.type !== 1) throw new Error(`vector ${v.name}: only single float32 vectors are supported here, type ${v.type}`);
          vectors[v.name] = float32(v.vectorBytes, `vector ${v.name}`);
        }
        for (const name of Object.keys(cls.vectorConfig ?? {})) {
          const width = widthOf(cls.class, name);
          if (width !== undefined && vectors[name] && vectors[name].length !== width) {
            throw new Error(`new node has a vector with length ${vectors[name].length}. Existing nodes have vectors with length ${width}`);
          }
        }
        const p = o.properties;
        if (p) {
          for (const field of ['singleTargetRefProps', 'multiTargetRefProps', 'numberArrayProperties', 'intArrayProperties', 'textArrayProperties', 'booleanArrayProperties', 'objectProperties', 'objectArrayProperties'] as const) {
            if (p[field].length > 0) throw new Error(`properties.${field} is not supported by this endpoint`);
          }
        }
        const properties = checkProperties(cls, p?.nonRefProperties ?? {}, (m) => {
          throw new Error(m);
        });
        const store = objects.get(cls.class)!;
        const now = Date.now();
        const old = store.get(o.uuid);
        // Batch import replaces the whole object (properties not sent are gone).
        store.set(o.uuid, { id: o.uuid, properties, vectors, created: old?.created ?? now, updated: now });
      } catch (err) {
        errors.push({ index, error: err instanceof Error ? err.message : String(err) });
      }
    });
    return { took: 0, errors };
  }

  function widthOf(className: string, vectorName: string): number | undefined {
    for (const o of objects.get(className)?.values() ?? []) {
      const v = o.vectors[vectorName];
      if (v) return v.length;
    }
    return undefined;
  }

  function matches(cls: WClass, obj: StoredObject, f: PbFilters): boolean {
    switch (f.operator) {
      case OP.AND:
        if (f.filters.length === 0) throw grpcError(grpc.status.INVALID_ARGUMENT, 'AND filter without operands');
        return f.filters.every((x) => matches(cls, obj, x));
      case OP.OR:
        if (f.filters.length === 0) throw grpcError(grpc.status.INVALID_ARGUMENT, 'OR filter without operands');
        return f.filters.some((x) => matches(cls, obj, x));
      case OP.NOT:
        return !matches(cls, obj, f.filters[0]!);
      case OP.EQUAL:
      case OP.NOT_EQUAL:
      case OP.CONTAINS_ANY: {
        const prop = f.target?.property ?? (f.on.length === 1 ? f.on[0] : undefined);
        if (prop === undefined) throw grpcError(grpc.status.INVALID_ARGUMENT, 'filter without a target property');
        const have = prop === '_id' ? obj.id : obj.properties[prop];
        const wanted = filterValues(cls, prop, f);
        const hit = have !== undefined && have !== null && wanted.some((w) => w === have);
        return f.operator === OP.NOT_EQUAL ? !hit : hit;
      }
      default:
        throw grpcError(grpc.status.UNIMPLEMENTED, `filter operator ${f.operator} is not supported by this endpoint`);
    }
  }

  function filterValues(cls: WClass, prop: string, f: PbFilters): unknown[] {
    const many = f.operator === OP.CONTAINS_ANY;
    if (prop === '_id') {
      const values = many ? f.valueTextArray?.values : f.valueText !== undefined ? [f.valueText] : undefined;
      if (!values) throw grpcError(grpc.status.INVALID_ARGUMENT, 'filter on _id needs text values');
      for (const v of values) if (!UUID.test(v)) throw grpcError(grpc.status.INVALID_ARGUMENT, `filter on _id: ${JSON.stringify(v)} is not a UUID`);
      return values;
    }
    const def = cls.properties.find((p) => p.name === prop);
    if (!def) throw grpcError(grpc.status.INVALID_ARGUMENT, `no such prop with name '${prop}' found in class '${cls.class}' in the schema. Check your schema files for which properties in this class are available`);
    if (def.indexFilterable === false) throw grpcError(grpc.status.INVALID_ARGUMENT, `property ${prop} is not filterable`);
    const type = def.dataType[0];
    const pick = (single: unknown, array: { values: unknown[] } | undefined, kind: string): unknown[] => {
      const values = many ? array?.values : single !== undefined ? [single] : undefined;
      if (!values) throw grpcError(grpc.status.INVALID_ARGUMENT, `filter on ${type} property ${prop} needs a ${kind} value${many ? ' array' : ''}`);
      return values;
    };
    if (type === 'text') {
      if (def.tokenization !== 'field') throw grpcError(grpc.status.UNIMPLEMENTED, `filter on text property ${prop} with ${def.tokenization} tokenization: only field tokenization is implemented here`);
      return pick(f.valueText, f.valueTextArray, 'text');
    }
    if (type === 'number') {
      // The clients send a whole number as valueInt (the JS client decides by Number.isInteger);
      // Weaviate compares it with a number property as a float.
      if (f.valueInt !== undefined || f.valueIntArray !== undefined) return pick(f.valueInt, f.valueIntArray, 'int');
      return pick(f.valueNumber, f.valueNumberArray, 'number');
    }
    if (type === 'int') return pick(f.valueInt, f.valueIntArray, 'int');
    if (type === 'boolean') return pick(f.valueBoolean, f.valueBooleanArray, 'boolean');
    throw grpcError(grpc.status.UNIMPLEMENTED, `filters on ${type} are not implemented here`);
  }

  function distance(kind: string, a: Float32Array, b: Float32Array): number {
    let dot = 0;
    let aa = 0;
    let bb = 0;
    let l2 = 0;
    for (let i = 0; i < a.length; i++) {
      dot += a[i]! * b[i]!;
      aa += a[i]! * a[i]!;
      bb += b[i]! * b[i]!;
      l2 += (a[i]! - b[i]!) ** 2;
    }
    if (kind === 'cosine') return 1 - dot / Math.sqrt(aa * bb);
    if (kind === 'dot') return -dot;
    if (kind === 'l2-squared') return l2;
    throw grpcError(grpc.status.UNIMPLEMENTED, `distance ${kind} is not implemented here`);
  }

  const UNSUPPORTED_SEARCH = ['groupBy', 'hybridSearch', 'bm25Search', 'nearObject', 'nearText', 'nearImage', 'nearAudio', 'nearVideo', 'nearDepth', 'nearThermal', 'nearImu', 'generative', 'rerank'];

  function search(req: PbSearchRequest): unknown {
    const cls = requireClass(req.collection);
    for (const field of UNSUPPORTED_SEARCH) if (req[field] !== undefined) throw grpcError(grpc.status.UNIMPLEMENTED, `SearchRequest.${field} is not supported by this endpoint`);
    if (req.sortBy.length > 0 || req.after || req.autocut) throw grpcError(grpc.status.UNIMPLEMENTED, 'sortBy/after/autocut are not supported by this endpoint');
    if (req.tenant) throw grpcError(grpc.status.INVALID_ARGUMENT, 'tenant given for a class without multi-tenancy');
    if (!req.uses123Api || !req.uses125Api || !req.uses127Api) throw grpcError(grpc.status.INVALID_ARGUMENT, 'the 1.27+ search API flags must be set');
    let candidates = [...(objects.get(cls.class)?.values() ?? [])];
    if (req.filters) candidates = candidates.filter((o) => matches(cls, o, req.filters!));
    let ranked: { obj: StoredObject; distance?: number }[];
    let target: string | undefined;
    if (req.nearVector) {
      const nv = req.nearVector;
      if (nv.vector.length > 0 || nv.vectorBytes.length > 0 || Object.keys(nv.vectorPerTarget).length > 0) {
        throw grpcError(grpc.status.INVALID_ARGUMENT, 'nearVector: the 1.27+ API sends vectorForTargets');
      }
      const targets = nv.targets?.targetVectors.length ? nv.targets.targetVectors : nv.targetVectors;
      if (targets.length !== 1) throw grpcError(grpc.status.UNIMPLEMENTED, `nearVector: exactly one target vector is supported here, got ${JSON.stringify(targets)}`);
      target = targets[0]!;
      const { distance: kind } = vectorConfigOf(cls, target);
      // One target: the vector comes in `vectors` (1.29+) or, per target, in `vectorForTargets`.
      let sent: PbVectors[];
      if (nv.vectors.length > 0 && nv.vectorForTargets.length === 0) sent = nv.vectors;
      else if (nv.vectors.length === 0 && nv.vectorForTargets.length === 1 && nv.vectorForTargets[0]!.name === target) {
        const vf = nv.vectorForTargets[0]!;
        sent = vf.vectors.length > 0 ? vf.vectors : [{ name: target, vectorBytes: vf.vectorBytes, type: 1 }];
      } else throw grpcError(grpc.status.INVALID_ARGUMENT, 'nearVector: the query vector must come in vectors or in one vectorForTargets entry for the target');
      if (sent.length !== 1 || (sent[0]!.type !== 1 && sent[0]!.type !== 0)) throw grpcError(grpc.status.UNIMPLEMENTED, 'nearVector: one single float32 query vector is supported here');
      const query = float32(sent[0]!.vectorBytes, 'query vector');
      const width = widthOf(cls.class, target);
      if (width !== undefined && width !== query.length) {
        throw grpcError(grpc.status.UNKNOWN, `vector search: knn search: distance between entrypoint and query node: vector lengths don't match: ${width} vs ${query.length}`);
      }
      ranked = candidates
        .filter((o) => o.vectors[target!])
        .map((obj) => ({ obj, distance: distance(kind, obj.vectors[target!]!, query) }))
        .sort((a, b) => a.distance - b.distance);
      if (nv.distance !== undefined) ranked = ranked.filter((r) => r.distance! <= nv.distance!);
    } else {
      ranked = candidates.sort((a, b) => (a.id < b.id ? -1 : 1)).map((obj) => ({ obj }));
    }
    const limit = req.limit > 0 ? req.limit : 10;
    ranked = ranked.slice(req.offset, req.offset + limit);
    const wantProps = req.properties;
    if (wantProps && (wantProps.refProperties.length > 0 || wantProps.objectProperties.length > 0)) throw grpcError(grpc.status.UNIMPLEMENTED, 'reference/object properties are not supported here');
    const md = req.metadata;
    return {
      took: 0,
      results: ranked.map(({ obj, distance: d }) => {
        // No properties message, or returnAllNonrefProperties: every non-reference property.
        const names = !wantProps || wantProps.returnAllNonrefProperties ? cls.properties.map((p) => p.name) : wantProps.nonRefProperties;
        const fields: Record<string, PbValue> = {};
        for (const name of names) {
          const def = cls.properties.find((p) => p.name === name);
          if (!def) throw grpcError(grpc.status.INVALID_ARGUMENT, `no such property ${name} in ${cls.class}`);
          fields[name] = toValue(def, obj.properties[name]);
        }
        const vectors = (md?.vectors ?? []).map((name) => {
          const v = obj.vectors[name];
          if (!v) throw grpcError(grpc.status.INVALID_ARGUMENT, `no vector ${name} in ${cls.class}`);
          return { name, index: 0, vectorBytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength), type: 1 };
        });
        return {
          properties: { nonRefProps: { fields }, refProps: [], targetCollection: cls.class, refPropsRequested: false },
          metadata: {
            id: md?.uuid ? obj.id : '',
            distance: md?.distance && d !== undefined ? d : 0,
            distancePresent: Boolean(md?.distance && d !== undefined),
            creationTimeUnix: md?.creationTimeUnix ? obj.created : 0,
            creationTimeUnixPresent: Boolean(md?.creationTimeUnix),
            lastUpdateTimeUnix: md?.lastUpdateTimeUnix ? obj.updated : 0,
            lastUpdateTimeUnixPresent: Boolean(md?.lastUpdateTimeUnix),
            isConsistent: md?.isConsistent ? true : undefined,
            isConsistentPresent: Boolean(md?.isConsistent),
            vectors,
          },
        };
      }),
      groupByResults: [],
    };
  }

  function toValue(def: WProperty, value: unknown): PbValue {
    if (value === undefined || value === null) return { nullValue: 0 };
    switch (def.dataType[0]) {
      case 'text':
        return { textValue: String(value) };
      case 'number':
        return { numberValue: Number(value) };
      case 'int':
        return { intValue: Number(value) };
      case 'boolean':
        return { boolValue: Boolean(value) };
      default:
        return { textValue: String(value) };
    }
  }

  function batchDelete(req: { collection: string; filters?: PbFilters; verbose: boolean; dryRun: boolean; tenant?: string }): unknown {
    const cls = requireClass(req.collection);
    if (!req.filters) throw grpcError(grpc.status.INVALID_ARGUMENT, 'batch delete needs filters');
    const store = objects.get(cls.class)!;
    const hit = [...store.values()].filter((o) => matches(cls, o, req.filters!));
    if (!req.dryRun) for (const o of hit) store.delete(o.id);
    return { took: 0, failed: 0, matches: hit.length, successful: req.dryRun ? 0 : hit.length, objects: [] };
  }

  function aggregate(req: { collection: string; objectsCount: boolean; aggregations: unknown[]; groupBy?: unknown; filters?: PbFilters; [k: string]: unknown }): unknown {
    const cls = requireClass(req.collection);
    if (req.aggregations.length > 0 || req.groupBy || req.nearVector || req.hybrid) throw grpcError(grpc.status.UNIMPLEMENTED, 'only objects_count (optionally filtered) is implemented here');
    let all = [...(objects.get(cls.class)?.values() ?? [])];
    if (req.filters) all = all.filter((o) => matches(cls, o, req.filters!));
    return { took: 0, singleResult: { objectsCount: req.objectsCount ? all.length : undefined } };
  }

  const handlers: Record<string, (req: never) => unknown> = {
    Search: search,
    BatchObjects: batchObjects,
    BatchDelete: batchDelete,
    Aggregate: aggregate,
  };

  const grpcServer = new grpc.Server();
  const addService = (def: ServiceDefinition, impl: Record<string, (req: never) => unknown>): void => {
    const service: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const [key, method] of Object.entries(def.methods)) {
      service[key] = {
        path: `/${def.fullName}/${method.name}`,
        requestStream: method.requestStream,
        responseStream: method.responseStream,
        requestSerialize: (m: unknown) => Buffer.from(method.requestType.encode(m).finish()),
        requestDeserialize: (b: Buffer) => method.requestType.decode(b),
        responseSerialize: (m: unknown) => Buffer.from(method.responseType.encode(method.responseType.fromPartial(m)).finish()),
        responseDeserialize: (b: Buffer) => method.responseType.decode(b),
      };
      const fn = impl[method.name];
      implementation[key] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        try {
          count(`grpc ${method.name}`);
        } catch (err) {
          return callback(grpcError(grpc.status.UNAVAILABLE, String(err)));
        }
        const auth = call.metadata.get('authorization')[0];
        // Weaviate answers the gRPC health check without credentials (the client sends none).
        if (def.fullName !== 'grpc.health.v1.Health' && !authorized(typeof auth === 'string' ? auth : undefined)) return callback(grpcError(grpc.status.UNAUTHENTICATED, 'anonymous access not enabled'));
        if (!fn || method.requestStream || method.responseStream) {
          violations.push(`unimplemented RPC ${method.name}`);
          return callback(grpcError(grpc.status.UNIMPLEMENTED, `${method.name} is not implemented by this endpoint`));
        }
        try {
          callback(null, fn(call.request as never));
        } catch (err) {
          const e = err as Partial<grpc.ServiceError>;
          callback(typeof e.code === 'number' ? (err as grpc.ServiceError) : grpcError(grpc.status.INTERNAL, String(err)));
        }
      };
    }
    grpcServer.addService(service, implementation);
  };
  addService(weaviateProto.WeaviateDefinition, handlers);
  addService(healthProto.HealthDefinition, { Check: () => ({ status: 1 /* SERVING */ }) });

  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const httpPort = (httpServer.address() as { port: number }).port;

  return {
    url: `http://127.0.0.1:${httpPort}`,
    grpcUrl: `http://127.0.0.1:${grpcPort}`,
    calls,
    violations,
    classes: () => [...classes.values()],
    failNext: (key, times = 1) => void failing.set(key, times),
    async stop() {
      await new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}

/** Properties of an object checked against the class: known names, values of the declared type. */
function checkProperties(cls: WClass, props: Record<string, unknown>, fail: (message: string) => never): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(props)) {
    const def = cls.properties.find((p) => p.name === name);
    if (!def) fail(`no such prop with name '${name}' found in class '${cls.class}' in the schema (auto-schema is off here)`);
    const type = def.dataType[0];
    const ok =
      value === null ||
      (type === 'text' && typeof value === 'string') ||
      (type === 'number' && typeof value === 'number') ||
      (type === 'int' && typeof value === 'number' && Number.isInteger(value)) ||
      (type === 'boolean' && typeof value === 'boolean');
    if (!ok) fail(`invalid ${type} property '${name}' on class '${cls.class}': requires a ${type}, got ${typeof value}`);
    out[name] = value;
  }
  return out;
}
