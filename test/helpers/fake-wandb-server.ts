/**
 * A local stand-in for the W&B backend that checks the wire format the way the real one reads it,
 * so that tests fail when a client sends something W&B would misread or refuse.
 *
 * What it checks:
 * - Auth: every GraphQL and file_stream request carries `Authorization: Basic base64(api:<key>)`
 *   (401 otherwise); run-file uploads to signed URLs carry the upload headers and no API key.
 * - GraphQL: requests are parsed, validated and executed against a schema written from the W&B
 *   operations the official clients send (Viewer, RunResumeStatus, UpsertBucket, CreateRunFiles,
 *   and the public API's RunSampledHistory),
 *   so unknown fields, undeclared or mistyped variables and non-JSON `JSONString`s fail as they
 *   would on W&B. Config must be a JSON object of `{key: {value}}` (what the app and resume read).
 * - file_stream: only known keys and files; offsets continue where the server is (a resent chunk
 *   must repeat the same lines); history lines are JSON objects (NaN/Infinity tokens allowed) with
 *   `_step` (non-decreasing), `_runtime` and `_timestamp`; the summary is one JSON object line;
 *   `complete` comes with an integer `exitcode`; `table-file` values point at uploaded files whose
 *   size, sha256 and shape match.
 *
 * Anything wrong is recorded in `violations` (tests assert it stays empty) and answered with an
 * error status. Failure modes: `failNext(n)` answers the next n requests with a 5xx, `stop()` /
 * `start()` take the server down and bring it back on the same port.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildSchema, graphql, type GraphQLError, type GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { registerTeardown } from '../setup';

const SCHEMA_SDL = /* GraphQL */ `
  scalar JSONString
  scalar JSON
  scalar Int64

  type Query {
    viewer: User
    model(name: String, entityName: String): Project
    project(name: String, entityName: String): Project
    entity(name: String, login: Boolean): Entity
    serverInfo: ServerInfo
  }

  type ServerInfo {
    features: [ServerFeature!]!
  }

  type ServerFeature {
    name: String!
    isEnabled: Boolean!
  }

  type Organization {
    id: ID!
    name: String!
    coreWeaveOrganizationId: String
  }

  type Mutation {
    upsertBucket(input: UpsertBucketInput!): UpsertBucketPayload
    createRunFiles(input: CreateRunFilesInput!): CreateRunFilesPayload
    createArtifact(input: CreateArtifactInput!): CreateArtifactPayload
    createArtifactManifest(input: CreateArtifactManifestInput!): CreateArtifactManifestPayload
    createArtifactFiles(input: CreateArtifactFilesInput!): CreateArtifactFilesPayload
    commitArtifact(input: CommitArtifactInput!): CommitArtifactPayload
    useArtifact(input: UseArtifactInput!): UseArtifactPayload
  }

  type User {
    id: ID!
    entity: String
    username: String
    email: String
    flags: JSONString
    teams: EntityConnection
  }

  type EntityConnection {
    edges: [EntityEdge!]!
  }

  type EntityEdge {
    node: Entity
  }

  type Entity {
    id: ID!
    name: String!
    organization: Organization
  }

  type Project {
    id: ID!
    name: String!
    entity: Entity!
    bucket(name: String!, missingOk: Boolean, desc: String): Run
    run(name: String!): Run
    artifact(name: String!): Artifact
  }

  type Run {
    id: ID!
    name: String!
    displayName: String
    description: String
    notes: String
    group: String
    jobType: String
    state: String
    sweepName: String
    config: JSONString
    summaryMetrics: JSONString
    tags: [String!]!
    historyLineCount: Int
    eventsLineCount: Int
    logLineCount: Int
    historyTail: String
    eventsTail: String
    wandbConfig(keys: [String!]): JSONString
    sampledHistory(specs: [JSONString!]!, packVersion: Int): [JSON]
    project: Project
  }

  input UpsertBucketInput {
    id: String
    name: String
    groupName: String
    modelName: String
    entityName: String
    description: String
    displayName: String
    notes: String
    config: JSONString
    commit: String
    host: String
    debug: Boolean
    jobProgram: String
    jobRepo: String
    jobType: String
    state: String
    sweep: String
    tags: [String!]
    summaryMetrics: JSONString
    clientMutationId: String
  }

  type UpsertBucketPayload {
    bucket: Run
    inserted: Boolean
    clientMutationId: String
  }

  input CreateRunFilesInput {
    entityName: String!
    projectName: String!
    runName: String!
    files: [String!]!
    clientMutationId: String
  }

  type CreateRunFilesPayload {
    runID: ID!
    uploadHeaders: [String!]!
    files: [RunFile!]!
    clientMutationId: String
  }

  type RunFile {
    name: String!
    uploadUrl: String
  }

  enum ArtifactState {
    PENDING
    COMMITTED
    DELETED
  }

  enum ArtifactDigestAlgorithm {
    MANIFEST_MD5
  }

  enum ArtifactManifestType {
    FULL
    PATCH
    INCREMENTAL
  }

  enum ArtifactStorageLayout {
    V1
    V2
  }

  type ArtifactType {
    id: ID!
    name: String!
  }

  type ArtifactSequence {
    id: ID!
    name: String!
    latestArtifact: Artifact
  }

  type Artifact {
    id: ID!
    digest: String!
    state: ArtifactState!
    artifactType: ArtifactType!
    artifactSequence: ArtifactSequence!
    currentManifest: ArtifactManifest
  }

  type ArtifactManifest {
    id: ID!
    file: ManifestFile!
  }

  type ManifestFile {
    id: ID!
    name: String!
    uploadUrl: String
    uploadHeaders: [String!]!
    directUrl: String!
  }

  input ArtifactAliasInput {
    artifactCollectionName: String!
    alias: String!
  }

  input CreateArtifactInput {
    artifactTypeName: String!
    artifactCollectionName: String
    artifactCollectionNames: [String!]
    entityName: String!
    projectName: String!
    runName: String
    description: String
    digest: String!
    digestAlgorithm: ArtifactDigestAlgorithm
    labels: JSONString
    aliases: [ArtifactAliasInput!]
    metadata: JSONString
    historyStep: Int64
    enableDigestDeduplication: Boolean
    distributedID: String
    clientID: ID!
    sequenceClientID: ID!
    ttlDurationSeconds: Int64
    storageRegion: String
    clientMutationId: String
  }

  type CreateArtifactPayload {
    artifact: Artifact!
    clientMutationId: String
  }

  input CreateArtifactManifestInput {
    artifactID: ID!
    baseArtifactID: ID
    name: String!
    digest: String!
    entityName: String!
    projectName: String!
    runName: String!
    type: ArtifactManifestType
    includeUpload: Boolean
    clientMutationId: String
  }

  type CreateArtifactManifestPayload {
    artifactManifest: ArtifactManifest!
    clientMutationId: String
  }

  input CreateArtifactFileSpecInput {
    artifactID: ID!
    name: String!
    md5: String!
    mimetype: String
    artifactManifestID: ID
    uploadPartsInput: [UploadPartsInput!]
  }

  input UploadPartsInput {
    partNumber: Int64!
    hexMD5: String!
  }

  input CreateArtifactFilesInput {
    artifactFiles: [CreateArtifactFileSpecInput!]!
    storageLayout: ArtifactStorageLayout!
    cloudRegionID: ID
    clientMutationId: String
  }

  type CreateArtifactFilesPayload {
    files: FileConnection!
    clientMutationId: String
  }

  type FileConnection {
    edges: [FileEdge!]!
  }

  type FileEdge {
    node: File
  }

  type File {
    id: ID!
    name: String!
    displayName: String!
    uploadUrl: String
    uploadHeaders: [String!]!
    storagePath: String
    uploadMultipartUrls: UploadMultipartUrls
    artifact: Artifact
  }

  type UploadMultipartUrls {
    uploadID: String!
    uploadUrlParts: [UploadUrlPart!]!
  }

  type UploadUrlPart {
    partNumber: Int64!
    uploadUrl: String!
  }

  input CommitArtifactInput {
    artifactID: ID!
    clientMutationId: String
  }

  type CommitArtifactPayload {
    artifact: Artifact!
    clientMutationId: String
  }

  input UseArtifactInput {
    entityName: String!
    projectName: String!
    runName: String!
    artifactID: ID!
    usedAs: String
    artifactEntityName: String
    artifactProjectName: String
    clientMutationId: String
  }

  type UseArtifactPayload {
    artifact: Artifact!
    clientMutationId: String
  }
`;

/** Thrown by resolvers for a request W&B would misread: recorded as a violation. */
class WireViolation extends Error {}

const NON_FINITE_PREFIX = '__fake_wandb_non_finite__:';

/** JSON as W&B stores it: bare NaN, Infinity and -Infinity are allowed outside strings. */
export function parseWandbLine(text: string): unknown {
  const normalized = text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (match) =>
    match.startsWith('"') ? match : JSON.stringify(NON_FINITE_PREFIX + match),
  );
  return JSON.parse(normalized, (_key, value: unknown) =>
    typeof value === 'string' && value.startsWith(NON_FINITE_PREFIX) ? Number(value.slice(NON_FINITE_PREFIX.length)) : value,
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * One `sampledHistory` spec, as W&B answers it: the rows that hold every requested key, only
 * those keys, at most `samples` of them spread evenly over the run (first and last kept).
 */
function sampleHistory(history: Array<Record<string, unknown>>, specJson: string): Array<Record<string, unknown>> {
  const spec = JSON.parse(specJson) as { keys?: unknown; samples?: unknown; minStep?: unknown; maxStep?: unknown };
  if (!Array.isArray(spec.keys) || !spec.keys.every((k) => typeof k === 'string')) throw new WireViolation('sampledHistory spec: keys must be a list of strings');
  if (!Number.isInteger(spec.samples) || (spec.samples as number) < 1) throw new WireViolation('sampledHistory spec: samples must be a positive integer');
  const keys = spec.keys as string[];
  const rows = history
    .filter((r) => keys.every((k) => r[k] !== undefined))
    .filter((r) => (typeof spec.minStep !== 'number' || (r._step as number) >= spec.minStep) && (typeof spec.maxStep !== 'number' || (r._step as number) < spec.maxStep))
    .map((r) => Object.fromEntries(keys.map((k) => [k, r[k]])));
  const n = spec.samples as number;
  if (rows.length <= n) return rows;
  if (n === 1) return [rows.at(-1)!];
  return Array.from({ length: n }, (_, i) => rows[Math.round((i * (rows.length - 1)) / (n - 1))]!);
}

function parseJsonStringLiteral(value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`JSONString must be a string holding JSON, got ${typeof value}`);
  try {
    parseWandbLine(value);
  } catch {
    throw new TypeError(`JSONString holds invalid JSON: ${value.slice(0, 80)}`);
  }
  return value;
}

function buildWandbSchema() {
  const schema = buildSchema(SCHEMA_SDL);
  const jsonString = schema.getType('JSONString') as GraphQLScalarType;
  Object.assign(jsonString, {
    serialize: (value: unknown) => value,
    parseValue: parseJsonStringLiteral,
    parseLiteral: (ast: ValueNode) => {
      if (ast.kind !== Kind.STRING) throw new TypeError('JSONString literal must be a string');
      return parseJsonStringLiteral(ast.value);
    },
  });
  return schema;
}

export interface TableFileRef {
  _type: 'table-file';
  path: string;
  sha256: string;
  size: number;
  ncols: number;
  nrows: number;
}

export interface FakeRun {
  storageId: string;
  entity: string;
  project: string;
  /** The run id (W&B calls it the run's name). */
  name: string;
  displayName?: string;
  group?: string;
  jobType?: string;
  tags: string[];
  /** The config JSON string exactly as last received. */
  configJson?: string;
  /** History lines exactly as received, and parsed. */
  historyLines: string[];
  history: Array<Record<string, unknown>>;
  eventsLines: string[];
  summaryLine?: string;
  summary: Record<string, unknown>;
  /** Run files uploaded to their signed URLs. */
  files: Map<string, Buffer>;
  /** Paths reported back through file_stream `uploaded`. */
  reportedUploads: Set<string>;
  state: 'running' | 'finished';
  exitCode?: number;
  upserts: number;
}

/** An artifact (the SDK logs each `wandb.Table` as a `run_table` artifact too). */
export interface FakeArtifact {
  id: string;
  entity: string;
  project: string;
  /** The run that logged it. */
  runName: string;
  type: string;
  /** The artifact collection (sequence) it is a version of. */
  collection: string;
  aliases: string[];
  /** The manifest digest the client announced in CreateArtifact. */
  digest: string;
  state: 'PENDING' | 'COMMITTED';
  /** The uploaded `wandb_manifest.json`. */
  manifest?: Buffer;
  /** Uploaded file contents by their base64 MD5 (W&B stores artifact files by content). */
  files: Map<string, Buffer>;
}

/** A parsed artifact manifest: entry path → file digest (base64 MD5) and size. */
export interface ArtifactManifestContents {
  contents: Record<string, { digest: string; size: number }>;
}

export interface RecordedRequest {
  method: string;
  /** `graphql`, `file_stream`, `storage`, `telemetry` (the SDK's OTLP usage metrics) or `other`. */
  route: string;
  path: string;
  authorization?: string;
  status: number;
  /** Parsed JSON body (GraphQL and file_stream), else undefined. */
  body?: unknown;
  operationName?: string;
  query?: string;
  variables?: Record<string, unknown>;
}

type Route = 'graphql' | 'file_stream' | 'storage' | 'telemetry' | 'other';

export interface FakeWandbOptions {
  apiKey?: string;
  /** The API key's default entity, answered by Viewer. */
  entity?: string;
}

const KNOWN_FILES = new Set(['wandb-history.jsonl', 'wandb-summary.json', 'wandb-events.jsonl', 'output.log']);
const KNOWN_FILE_STREAM_KEYS = new Set(['files', 'uploaded', 'complete', 'exitcode', 'preempting', 'dropped']);

export class FakeWandbServer {
  /** The key the server accepts; change it to simulate a revoked key. */
  apiKey: string;
  readonly entity: string;
  readonly requests: RecordedRequest[] = [];
  readonly violations: string[] = [];
  private readonly runs = new Map<string, FakeRun>();
  private readonly artifacts = new Map<string, FakeArtifact>();
  /** Signed upload URLs handed out: what they accept and where it goes. */
  private readonly uploadSlots = new Map<string, UploadSlot>();
  private readonly schema = buildWandbSchema();
  private readonly server: http.Server;
  private failures: Array<{ status: number; route?: Route }> = [];
  private port = 0;
  private listening = false;
  private nextId = 1;

  constructor(options: FakeWandbOptions = {}) {
    this.apiKey = options.apiKey ?? 'a'.repeat(40);
    this.entity = options.entity ?? 'forgeline-team';
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.violations.push(`fake server error: ${(err as Error).stack ?? String(err)}`);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Listen (again) on the same port; the first call picks a free loopback port. */
  async start(): Promise<void> {
    if (this.listening) return;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.listening = true;
  }

  /** Go down: refuse connections until `start()`. */
  async stop(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** Answer the next `count` requests (optionally of one route) with `status` (default 503). */
  failNext(count: number, options: { status?: number; route?: Route } = {}): void {
    for (let i = 0; i < count; i += 1) this.failures.push({ status: options.status ?? 503, ...(options.route && { route: options.route }) });
  }

  run(project: string, name: string, entity = this.entity): FakeRun | undefined {
    return this.runs.get(`${entity}/${project}/${name}`);
  }

  /** The config values of a run, unwrapped from W&B's `{key: {value}}`. */
  config(run: FakeRun): Record<string, unknown> {
    if (!run.configJson) return {};
    const wrapped = parseWandbLine(run.configJson) as Record<string, { value: unknown }>;
    return Object.fromEntries(Object.entries(wrapped).map(([k, v]) => [k, v.value]));
  }

  /** Tables referenced from the summary, read back from their uploaded files. */
  tables(run: FakeRun): Array<{ name: string; columns: unknown[]; rows: unknown[][] }> {
    const tables: Array<{ name: string; columns: unknown[]; rows: unknown[][] }> = [];
    for (const [name, value] of Object.entries(run.summary)) {
      if (!isObject(value) || value._type !== 'table-file') continue;
      const file = run.files.get(String(value.path));
      if (!file) continue;
      const content = parseWandbLine(file.toString('utf8')) as { columns: unknown[]; data: unknown[][] };
      tables.push({ name, columns: content.columns, rows: content.data });
    }
    return tables;
  }

  graphqlRequests(operationName?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.route === 'graphql' && r.status === 200 && (!operationName || r.operationName === operationName));
  }

  fileStreamRequests(runName?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.route === 'file_stream' && (!runName || r.path.split('/')[4] === runName));
  }

  // ---- HTTP ------------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const body = await readBody(req);
    const route: Route =
      url.pathname === '/graphql'
        ? 'graphql'
        : /^\/files\/[^/]+\/[^/]+\/[^/]+\/file_stream$/.test(url.pathname)
          ? 'file_stream'
          : url.pathname.startsWith('/storage/')
            ? 'storage'
            : /^\/sdk\/otel\/v1\/(metrics|logs)$/.test(url.pathname)
              ? 'telemetry'
              : 'other';
    const record: RecordedRequest = { method: req.method ?? '', route, path: url.pathname, status: 0 };
    if (req.headers.authorization) record.authorization = req.headers.authorization;
    this.requests.push(record);
    const reply = (status: number, payload: unknown): void => {
      record.status = status;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };

    const failure = this.failures.findIndex((f) => !f.route || f.route === route);
    if (failure >= 0) {
      const [{ status }] = this.failures.splice(failure, 1) as [{ status: number }];
      return reply(status, { error: 'injected failure' });
    }

    if (route === 'storage') return this.handleUpload(req, url, body, reply);
    // The SDK's own usage telemetry (OTLP). A server without the OTel proxy answers 404, and the
    // SDK then drops its telemetry: what a self-hosted server does.
    if (route === 'telemetry') return reply(404, { error: 'not found' });
    if (route === 'other') {
      this.violations.push(`request to unknown endpoint ${req.method} ${url.pathname}`);
      return reply(404, { error: 'not found' });
    }
    if (req.headers.authorization !== `Basic ${Buffer.from(`api:${this.apiKey}`).toString('base64')}`) {
      return reply(401, { errors: [{ message: 'user is not logged in' }] });
    }
    if (req.method !== 'POST' || !String(req.headers['content-type']).startsWith('application/json')) {
      this.violations.push(`${route}: expected POST with application/json, got ${req.method} ${req.headers['content-type']}`);
      return reply(400, { error: 'bad request' });
    }
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      this.violations.push(`${route}: body is not JSON`);
      return reply(400, { error: 'body is not JSON' });
    }
    record.body = json;
    if (route === 'graphql') return this.handleGraphql(json, record, reply);
    return this.handleFileStream(url.pathname, json, reply);
  }

  private async handleGraphql(json: unknown, record: RecordedRequest, reply: (status: number, payload: unknown) => void): Promise<void> {
    if (!isObject(json) || typeof json.query !== 'string' || (json.variables !== undefined && !isObject(json.variables))) {
      this.violations.push('graphql: body must be {query: string, variables?: object, operationName?: string}');
      return reply(400, { errors: [{ message: 'bad request' }] });
    }
    record.query = json.query;
    if (typeof json.operationName === 'string') record.operationName = json.operationName;
    if (isObject(json.variables)) record.variables = json.variables;
    const result = await graphql({
      schema: this.schema,
      source: json.query,
      variableValues: record.variables ?? {},
      operationName: record.operationName || null, // the SDK sends "" for a single named operation
      rootValue: this.rootResolvers(),
    });
    const errors = result.errors ?? [];
    if (errors.length > 0 && !result.data) {
      this.violations.push(`graphql ${record.operationName ?? '(anonymous)'}: ${errors.map((e) => e.message).join('; ')}`);
      return reply(400, { errors: errors.map((e) => ({ message: e.message })) });
    }
    for (const error of errors) {
      if ((error as GraphQLError).originalError instanceof WireViolation) this.violations.push(`graphql ${record.operationName}: ${error.message}`);
    }
    reply(200, { data: result.data, ...(errors.length > 0 && { errors: errors.map((e) => ({ message: e.message, path: e.path })) }) });
  }

  private handleUpload(req: http.IncomingMessage, url: URL, body: Buffer, reply: (status: number, payload: unknown) => void): void {
    const slot = this.uploadSlots.get(url.pathname.slice('/storage/'.length));
    if (!slot || req.method !== 'PUT') {
      this.violations.push(`upload: ${req.method} ${url.pathname} is not a signed upload URL handed out by CreateRunFiles, CreateArtifactFiles or CreateArtifactManifest`);
      return reply(404, { error: 'no such upload' });
    }
    if (req.headers.authorization) this.violations.push('upload: the W&B API key was sent to a storage URL');
    if (req.headers['x-upload-token'] !== slot.token) {
      this.violations.push(`upload ${slot.label}: the uploadHeaders handed out with its URL were not sent`);
      return reply(403, { error: 'signature mismatch' });
    }
    // A URL signed with Content-MD5 (artifact files) takes only those bytes, as a bucket would.
    if (slot.md5 !== undefined) {
      const sent = createHash('md5').update(body).digest('base64');
      if (req.headers['content-md5'] !== slot.md5 || sent !== slot.md5) {
        this.violations.push(`upload ${slot.label}: content MD5 ${sent} (header ${String(req.headers['content-md5'])}) does not match the signed ${slot.md5}`);
        return reply(400, { error: 'BadDigest' });
      }
    }
    slot.store(body);
    reply(200, {});
  }

  /** A signed upload URL, answered by `handleUpload`, with the headers a client must send with it. */
  private signUpload(label: string, store: (body: Buffer) => void, md5?: string): { uploadUrl: string; uploadHeaders: string[] } {
    const id = randomBytes(8).toString('hex');
    const token = randomBytes(8).toString('hex');
    this.uploadSlots.set(id, { label, token, store, ...(md5 !== undefined && { md5 }) });
    return { uploadUrl: `${this.baseUrl}/storage/${id}`, uploadHeaders: [`X-Upload-Token:${token}`, ...(md5 !== undefined ? [`Content-MD5:${md5}`] : [])] };
  }

  // ---- GraphQL resolvers -----------------------------------------------------------------------

  private rootResolvers(): Record<string, unknown> {
    return {
      viewer: () => ({
        id: 'VXNlcjox',
        entity: this.entity,
        username: this.entity,
        email: `${this.entity}@example.com`,
        flags: '{}',
        teams: { edges: [{ node: { id: 'RW50aXR5OjE=', name: this.entity } }] },
      }),
      model: (args: { name?: string | null; entityName?: string | null }) => this.projectView(args.entityName ?? this.entity, args.name ?? 'uncategorized'),
      project: (args: { name?: string | null; entityName?: string | null }) => this.projectView(args.entityName ?? this.entity, args.name ?? 'uncategorized'),
      // A self-hosted server: no organization (so no CoreWeave metadata lookups) and no optional features.
      entity: ({ name }: { name?: string | null }) =>
        (name ?? this.entity) === this.entity ? { id: 'RW50aXR5OjE=', name: this.entity, organization: null } : null,
      serverInfo: () => ({ features: [] }),
      upsertBucket: ({ input }: { input: Record<string, unknown> }) => this.upsertBucket(input),
      createRunFiles: ({ input }: { input: { entityName: string; projectName: string; runName: string; files: string[] } }) =>
        this.createRunFiles(input),
      createArtifact: ({ input }: { input: Record<string, unknown> }) => this.createArtifact(input),
      createArtifactManifest: ({ input }: { input: Record<string, unknown> }) => this.createArtifactManifest(input),
      createArtifactFiles: ({ input }: { input: { artifactFiles: Array<Record<string, unknown>> } }) => this.createArtifactFiles(input),
      commitArtifact: ({ input }: { input: { artifactID: string } }) => this.commitArtifact(input),
      useArtifact: ({ input }: { input: Record<string, unknown> }) => this.useArtifact(input),
    };
  }

  private projectView(entity: string, project: string): unknown {
    const runs = [...this.runs.values()].filter((r) => r.entity === entity && r.project === project);
    if (entity !== this.entity || runs.length === 0) return null;
    return {
      id: `project:${entity}/${project}`,
      name: project,
      entity: { id: `entity:${entity}`, name: entity },
      bucket: ({ name, missingOk }: { name: string; missingOk?: boolean | null }) => {
        const run = this.run(project, name, entity);
        if (!run && !missingOk) throw new Error(`run ${name} not found`);
        return run ? this.runView(run) : null;
      },
      run: ({ name }: { name: string }) => {
        const run = this.run(project, name, entity);
        return run ? this.runView(run) : null;
      },
      artifact: ({ name }: { name: string }) => this.projectArtifact(entity, project, name),
    };
  }

  private runView(run: FakeRun): unknown {
    return {
      id: run.storageId,
      name: run.name,
      displayName: run.displayName ?? null,
      description: null,
      notes: null,
      group: run.group ?? null,
      jobType: run.jobType ?? null,
      state: run.state,
      sweepName: null,
      config: run.configJson ?? null,
      summaryMetrics: run.summaryLine ?? '{}',
      tags: run.tags,
      historyLineCount: run.historyLines.length,
      eventsLineCount: run.eventsLines.length,
      logLineCount: 0,
      historyTail: JSON.stringify(run.historyLines.slice(-10)),
      eventsTail: JSON.stringify(run.eventsLines.slice(-10)),
      wandbConfig: () => '{}',
      sampledHistory: (args: { specs: string[] }) => args.specs.map((spec) => sampleHistory(run.history, spec)),
      project: () => this.projectView(run.entity, run.project),
    };
  }

  private upsertBucket(input: Record<string, unknown>): unknown {
    const entity = (input.entityName as string | null | undefined) ?? this.entity;
    if (entity !== this.entity) throw new Error(`entity ${entity} not found`);
    const project = (input.modelName as string | null | undefined) ?? 'uncategorized';
    let run: FakeRun | undefined;
    if (typeof input.id === 'string') {
      run = [...this.runs.values()].find((r) => r.storageId === input.id);
      if (!run) throw new WireViolation(`upsertBucket: no run has storage id ${input.id}`);
      if (input.name != null && input.name !== run.name) throw new WireViolation(`upsertBucket: id ${input.id} belongs to run ${run.name}, not ${String(input.name)}`);
    } else {
      if (typeof input.name !== 'string' || input.name === '') throw new WireViolation('upsertBucket: name (the run id) is required');
      run = this.run(project, input.name, entity);
    }
    if (typeof input.config === 'string') this.checkConfig(input.config);

    const inserted = !run;
    if (!run) {
      run = {
        storageId: Buffer.from(`Run:v1:${this.nextId++}:${project}:${entity}`).toString('base64'),
        entity,
        project,
        name: input.name as string,
        tags: [],
        historyLines: [],
        history: [],
        eventsLines: [],
        summary: {},
        files: new Map(),
        reportedUploads: new Set(),
        state: 'running',
        upserts: 0,
      };
      this.runs.set(`${entity}/${project}/${run.name}`, run);
    }
    run.upserts += 1;
    run.state = 'running';
    delete run.exitCode;
    if (typeof input.displayName === 'string') run.displayName = input.displayName;
    if (typeof input.groupName === 'string') run.group = input.groupName;
    if (typeof input.jobType === 'string') run.jobType = input.jobType;
    if (Array.isArray(input.tags)) run.tags = input.tags as string[];
    if (typeof input.config === 'string') run.configJson = input.config;
    return { bucket: this.runView(run), inserted };
  }

  private checkConfig(json: string): void {
    const config = parseWandbLine(json);
    if (!isObject(config)) throw new WireViolation('upsertBucket: config must be a JSON object');
    for (const [key, entry] of Object.entries(config)) {
      if (!isObject(entry) || !('value' in entry)) {
        throw new WireViolation(`upsertBucket: config.${key} must be {"value": ...} (W&B stores config as {key: {value}}), got ${JSON.stringify(entry)}`);
      }
    }
  }

  private createRunFiles(input: { entityName: string; projectName: string; runName: string; files: string[] }): unknown {
    const run = this.run(input.projectName, input.runName, input.entityName);
    if (!run) throw new WireViolation(`createRunFiles: run ${input.entityName}/${input.projectName}/${input.runName} does not exist`);
    const token = randomBytes(8).toString('hex');
    const files = input.files.map((path) => {
      if (path.startsWith('/') || path.split('/').includes('..')) throw new WireViolation(`createRunFiles: invalid run file path ${path}`);
      const id = randomBytes(8).toString('hex');
      this.uploadSlots.set(id, { label: path, token, store: (body) => run.files.set(path, body) });
      return { name: path, uploadUrl: `${this.baseUrl}/storage/${id}` };
    });
    return { runID: run.storageId, uploadHeaders: [`X-Upload-Token:${token}`], files };
  }

  // ---- artifacts -------------------------------------------------------------------------------
  // CreateArtifact (PENDING) → CreateArtifactManifest + CreateArtifactFiles (signed URLs, uploads
  // checked against their MD5) → CommitArtifact, which checks the uploaded manifest: its digest is
  // the one announced, and every entry's file was uploaded with its size.

  private artifactById(id: string, where: string): FakeArtifact {
    const artifact = this.artifacts.get(id);
    if (!artifact) throw new WireViolation(`${where}: no artifact has id ${id}`);
    return artifact;
  }

  private artifactView(artifact: FakeArtifact): unknown {
    const latest = [...this.artifacts.values()].filter((a) => a.collection === artifact.collection && a.state === 'COMMITTED').at(-1);
    return {
      id: artifact.id,
      digest: artifact.digest,
      state: artifact.state,
      artifactType: { id: `type:${artifact.type}`, name: artifact.type },
      artifactSequence: { id: `sequence:${artifact.collection}`, name: artifact.collection, latestArtifact: latest ? { id: latest.id } : null },
      currentManifest: null,
    };
  }

  /** The artifact of a project named `collection:alias` (Project.artifact). */
  private projectArtifact(entity: string, project: string, name: string): unknown {
    const [collection, alias = 'latest'] = name.split(':') as [string, string?];
    const found = [...this.artifacts.values()]
      .filter((a) => a.entity === entity && a.project === project && a.collection === collection && a.state === 'COMMITTED' && a.aliases.includes(alias))
      .at(-1);
    return found ? this.artifactView(found) : null;
  }

  private createArtifact(input: Record<string, unknown>): unknown {
    // `wandb sync` sends entityName "" for the key's default entity.
    const entity = (input.entityName as string) || this.entity;
    const run = typeof input.runName === 'string' ? this.run(input.projectName as string, input.runName, entity) : undefined;
    if (typeof input.runName === 'string' && !run) throw new WireViolation(`createArtifact: run ${String(input.runName)} does not exist`);
    const collection = (input.artifactCollectionName as string | null | undefined) ?? (input.artifactCollectionNames as string[] | null | undefined)?.[0];
    if (!collection || !/^[-\w.]+$/.test(collection)) throw new WireViolation(`createArtifact: artifact name ${String(collection)} must be letters, digits, -, _ or .`);
    if (!/^[0-9a-f]{32}$/.test(input.digest as string)) throw new WireViolation('createArtifact: digest must be the manifest MD5 as 32 hex digits');
    const aliases = ((input.aliases as Array<{ alias: string; artifactCollectionName: string }> | null | undefined) ?? []).map((a) => {
      if (a.artifactCollectionName !== collection) throw new WireViolation(`createArtifact: alias ${a.alias} names collection ${a.artifactCollectionName}, not ${collection}`);
      return a.alias;
    });
    if (input.enableDigestDeduplication) {
      const same = [...this.artifacts.values()].find((a) => a.collection === collection && a.digest === input.digest && a.state === 'COMMITTED');
      if (same) return { artifact: this.artifactView(same) };
    }
    const artifact: FakeArtifact = {
      id: Buffer.from(`Artifact:${this.nextId++}`).toString('base64'),
      entity,
      project: input.projectName as string,
      runName: (input.runName as string | undefined) ?? '',
      type: input.artifactTypeName as string,
      collection,
      aliases,
      digest: input.digest as string,
      state: 'PENDING',
      files: new Map(),
    };
    this.artifacts.set(artifact.id, artifact);
    return { artifact: this.artifactView(artifact) };
  }

  /** The manifest is created twice: first with no digest and no upload, then with the base64 MD5
   * of the manifest file, whose upload URL is signed with that MD5. */
  private createArtifactManifest(input: Record<string, unknown>): unknown {
    const artifact = this.artifactById(input.artifactID as string, 'createArtifactManifest');
    if (artifact.state !== 'PENDING') throw new WireViolation('createArtifactManifest: the artifact is already committed');
    if (input.name !== 'wandb_manifest.json') throw new WireViolation(`createArtifactManifest: the manifest is named wandb_manifest.json, got ${String(input.name)}`);
    const digest = input.digest as string;
    if (digest !== '' && !BASE64_MD5.test(digest)) throw new WireViolation(`createArtifactManifest: digest must be the manifest file's base64 MD5, got ${digest}`);
    return { artifactManifest: this.manifestView(artifact, digest || undefined) };
  }

  private manifestView(artifact: FakeArtifact, md5: string | undefined): unknown {
    const signed = this.signUpload(`${artifact.collection}/wandb_manifest.json`, (body) => (artifact.manifest = body), md5);
    return { id: `manifest:${artifact.id}`, file: { id: `manifest-file:${artifact.id}`, name: 'wandb_manifest.json', directUrl: signed.uploadUrl, ...signed } };
  }

  private createArtifactFiles(input: { artifactFiles: Array<Record<string, unknown>> }): unknown {
    const edges = input.artifactFiles.map((spec) => {
      const artifact = this.artifactById(spec.artifactID as string, 'createArtifactFiles');
      const md5 = spec.md5 as string;
      if (!BASE64_MD5.test(md5)) throw new WireViolation(`createArtifactFiles: ${String(spec.name)}: md5 must be base64 of 16 bytes, got ${md5}`);
      if (spec.uploadPartsInput) throw new WireViolation('createArtifactFiles: multipart uploads are not served by this fake');
      const name = spec.name as string;
      const signed = this.signUpload(`${artifact.collection}/${name}`, (body) => artifact.files.set(md5, body), md5);
      return { node: { id: `file:${md5}`, name, displayName: name, storagePath: `wandb_artifacts/${artifact.id}/${md5}`, uploadMultipartUrls: null, artifact: { id: artifact.id }, ...signed } };
    });
    return { files: { edges } };
  }

  private commitArtifact(input: { artifactID: string }): unknown {
    const artifact = this.artifactById(input.artifactID, 'commitArtifact');
    if (artifact.state === 'COMMITTED') return { artifact: this.artifactView(artifact) };
    if (!artifact.manifest) throw new WireViolation(`commitArtifact: ${artifact.collection}: the manifest was never uploaded`);
    const problems = checkArtifactManifest(artifact);
    if (problems.length > 0) throw new WireViolation(`commitArtifact: ${artifact.collection}: ${problems.join('; ')}`);
    artifact.state = 'COMMITTED';
    return { artifact: this.artifactView(artifact) };
  }

  private useArtifact(input: Record<string, unknown>): unknown {
    const artifact = this.artifactById(input.artifactID as string, 'useArtifact');
    if (!this.run(input.projectName as string, input.runName as string, input.entityName as string)) throw new WireViolation(`useArtifact: run ${String(input.runName)} does not exist`);
    return { artifact: this.artifactView(artifact) };
  }

  /** Committed artifacts, optionally of one run. */
  artifactsOf(runName?: string): FakeArtifact[] {
    return [...this.artifacts.values()].filter((a) => a.state === 'COMMITTED' && (!runName || a.runName === runName));
  }

  // ---- file_stream -----------------------------------------------------------------------------

  private handleFileStream(pathname: string, json: unknown, reply: (status: number, payload: unknown) => void): void {
    const [, , entity, project, name] = pathname.split('/').map(decodeURIComponent) as [string, string, string, string, string];
    const run = this.run(project, name, entity);
    if (!run) {
      this.violations.push(`file_stream for ${entity}/${project}/${name}, which was never created with UpsertBucket`);
      return reply(404, { error: 'run not found' });
    }
    const problems = this.applyFileStream(run, json);
    if (problems.length > 0) {
      this.violations.push(...problems.map((p) => `file_stream ${name}: ${p}`));
      return reply(400, { error: problems.join('; ') });
    }
    reply(200, { exitcode: null, limits: {} });
  }

  /** Checks a request and applies it when it is valid. Returns what is wrong with it. */
  private applyFileStream(run: FakeRun, json: unknown): string[] {
    if (!isObject(json)) return ['body must be a JSON object'];
    const problems: string[] = [];
    for (const key of Object.keys(json)) if (!KNOWN_FILE_STREAM_KEYS.has(key)) problems.push(`unknown key ${key}`);
    const files = json.files ?? {};
    if (!isObject(files)) return [...problems, 'files must be an object'];
    if (run.state === 'finished' && Object.keys(files).length > 0) problems.push('data sent after complete without resuming the run (UpsertBucket)');

    const updates: Array<() => void> = [];
    for (const [fileName, chunk] of Object.entries(files)) {
      if (!KNOWN_FILES.has(fileName)) {
        problems.push(`unknown file ${fileName}`);
        continue;
      }
      if (!isObject(chunk) || !Number.isInteger(chunk.offset) || (chunk.offset as number) < 0 || !Array.isArray(chunk.content) || !chunk.content.every((l) => typeof l === 'string')) {
        problems.push(`${fileName}: a chunk must be {offset: non-negative integer, content: string[]}`);
        continue;
      }
      const offset = chunk.offset as number;
      const content = chunk.content as string[];
      if (fileName === 'wandb-history.jsonl') problems.push(...this.checkHistory(run, offset, content, updates));
      else if (fileName === 'wandb-summary.json') problems.push(...this.checkSummary(run, offset, content, updates));
      else if (fileName === 'wandb-events.jsonl') problems.push(...checkAppend(fileName, run.eventsLines, offset, content, updates, true));
    }

    if (json.uploaded !== undefined) {
      if (!Array.isArray(json.uploaded) || !json.uploaded.every((p) => typeof p === 'string')) problems.push('uploaded must be a list of paths');
      else
        for (const path of json.uploaded as string[]) {
          if (!run.files.has(path)) problems.push(`uploaded names ${path}, which was never uploaded`);
          else updates.push(() => run.reportedUploads.add(path));
        }
    }

    if (json.complete !== undefined) {
      if (typeof json.complete !== 'boolean') problems.push('complete must be a boolean');
      else if (json.complete) {
        if (!Number.isInteger(json.exitcode)) problems.push('complete: true needs an integer exitcode');
        updates.push(() => {
          run.state = 'finished';
          run.exitCode = json.exitcode as number;
          for (const ref of tableRefs(run.summary)) if (!run.files.has(ref.path)) this.violations.push(`run ${run.name} completed but table file ${ref.path} was never uploaded`);
        });
      }
    } else if (json.exitcode !== undefined) {
      problems.push('exitcode without complete');
    }

    if (problems.length === 0) for (const update of updates) update();
    return problems;
  }

  private checkHistory(run: FakeRun, offset: number, content: string[], updates: Array<() => void>): string[] {
    const problems = checkAppend('wandb-history.jsonl', run.historyLines, offset, content, updates, false);
    if (problems.length > 0) return problems;
    const rows: Array<Record<string, unknown>> = [];
    let previousStep = offset > 0 ? (run.history[offset - 1]?._step as number | undefined) : undefined;
    content.forEach((line, i) => {
      let row: unknown;
      try {
        row = parseWandbLine(line);
      } catch {
        problems.push(`history line ${offset + i} is not JSON: ${line.slice(0, 80)}`);
        return;
      }
      if (!isObject(row)) return problems.push(`history line ${offset + i} is not a JSON object`);
      if (!Number.isInteger(row._step) || (row._step as number) < 0) problems.push(`history line ${offset + i} has no integer _step`);
      if (typeof row._runtime !== 'number') problems.push(`history line ${offset + i} has no numeric _runtime`);
      if (typeof row._timestamp !== 'number') problems.push(`history line ${offset + i} has no numeric _timestamp`);
      if (previousStep !== undefined && (row._step as number) < previousStep) problems.push(`history line ${offset + i}: _step ${String(row._step)} goes below ${previousStep}`);
      previousStep = row._step as number;
      problems.push(...this.checkTableRefs(run, row, `history line ${offset + i}`));
      rows.push(row);
    });
    updates.push(() => run.history.splice(offset, rows.length, ...rows));
    return problems;
  }

  private checkSummary(run: FakeRun, offset: number, content: string[], updates: Array<() => void>): string[] {
    if (offset !== 0 || content.length !== 1) return ['the summary is sent as exactly one line at offset 0'];
    const line = content[0]!;
    let summary: unknown;
    try {
      summary = parseWandbLine(line);
    } catch {
      return [`summary is not JSON: ${line.slice(0, 80)}`];
    }
    if (!isObject(summary)) return ['summary must be a JSON object'];
    const problems = this.checkTableRefs(run, summary, 'summary');
    updates.push(() => {
      run.summaryLine = line;
      run.summary = summary as Record<string, unknown>;
    });
    return problems;
  }

  /** `table-file` values must be well formed; once their file is uploaded, it must match them. */
  private checkTableRefs(run: FakeRun, values: Record<string, unknown>, where: string): string[] {
    const problems: string[] = [];
    for (const [key, value] of Object.entries(values)) {
      if (!isObject(value) || value._type !== 'table-file') continue;
      const ref = value as unknown as TableFileRef;
      if (typeof ref.path !== 'string' || !/^media\/table\/.+\.table\.json$/.test(ref.path)) problems.push(`${where}.${key}: table path must be media/table/<name>.table.json`);
      if (typeof ref.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(ref.sha256)) problems.push(`${where}.${key}: sha256 must be 64 hex digits`);
      for (const field of ['size', 'ncols', 'nrows'] as const) if (!Number.isInteger(ref[field])) problems.push(`${where}.${key}: ${field} must be an integer`);
      const file = run.files.get(ref.path);
      if (file) problems.push(...checkTableFile(ref, file).map((p) => `${where}.${key}: ${p}`));
    }
    return problems;
  }
}

function checkAppend(fileName: string, lines: string[], offset: number, content: string[], updates: Array<() => void>, parse: boolean): string[] {
  if (offset > lines.length) return [`${fileName}: offset ${offset} leaves a gap (the server holds ${lines.length} lines)`];
  const problems: string[] = [];
  content.forEach((line, i) => {
    const existing = lines[offset + i];
    if (existing !== undefined && existing !== line) problems.push(`${fileName}: line ${offset + i} was resent with different content`);
    if (parse) {
      try {
        if (!isObject(parseWandbLine(line))) problems.push(`${fileName}: line ${offset + i} is not a JSON object`);
      } catch {
        problems.push(`${fileName}: line ${offset + i} is not JSON`);
      }
    }
  });
  updates.push(() => lines.splice(offset, content.length, ...content));
  return problems;
}

const BASE64_MD5 = /^[A-Za-z0-9+/]{22}==$/;

interface UploadSlot {
  /** What is uploaded, for messages. */
  label: string;
  token: string;
  /** Base64 MD5 the URL was signed with, if any. */
  md5?: string;
  store(body: Buffer): void;
}

/** W&B's manifest digest: MD5 over a header line and `path:digest` lines sorted by path. */
export function artifactManifestDigest(contents: Record<string, { digest: string }>): string {
  const hash = createHash('md5').update('wandb-artifact-manifest-v1\n');
  for (const path of Object.keys(contents).sort()) hash.update(`${path}:${contents[path]!.digest}\n`);
  return hash.digest('hex');
}

function checkArtifactManifest(artifact: FakeArtifact): string[] {
  let manifest: unknown;
  try {
    manifest = JSON.parse(artifact.manifest!.toString('utf8'));
  } catch {
    return ['wandb_manifest.json is not JSON'];
  }
  if (!isObject(manifest) || manifest.version !== 1 || typeof manifest.storagePolicy !== 'string' || !isObject(manifest.contents)) {
    return ['wandb_manifest.json must be {version: 1, storagePolicy, contents: {path: entry}}'];
  }
  const problems: string[] = [];
  const contents = manifest.contents as Record<string, unknown>;
  for (const [path, entry] of Object.entries(contents)) {
    if (!isObject(entry) || typeof entry.digest !== 'string' || !Number.isInteger(entry.size)) {
      problems.push(`manifest entry ${path} must have a digest and an integer size`);
      continue;
    }
    const file = artifact.files.get(entry.digest);
    if (!file) problems.push(`manifest entry ${path}: no file with MD5 ${entry.digest} was uploaded`);
    else if (file.length !== entry.size) problems.push(`manifest entry ${path}: size ${String(entry.size)} but ${file.length} bytes were uploaded`);
  }
  const digest = artifactManifestDigest(contents as Record<string, { digest: string }>);
  if (digest !== artifact.digest) problems.push(`the manifest's digest is ${digest}, not the ${artifact.digest} announced in CreateArtifact`);
  return problems;
}

/** A `run_table` artifact's table, read back from its uploaded manifest and files. */
export function artifactTable(artifact: FakeArtifact): { columns: unknown[]; rows: unknown[][] } | undefined {
  if (!artifact.manifest) return undefined;
  const { contents } = JSON.parse(artifact.manifest.toString('utf8')) as ArtifactManifestContents;
  const entry = Object.entries(contents).find(([path]) => path.endsWith('.table.json'));
  const file = entry && artifact.files.get(entry[1].digest);
  if (!file) return undefined;
  const table = parseWandbLine(file.toString('utf8')) as { columns: unknown[]; data: unknown[][] };
  return { columns: table.columns, rows: table.data };
}

function tableRefs(values: Record<string, unknown>): TableFileRef[] {
  return Object.values(values).filter((v): v is TableFileRef => isObject(v) && v._type === 'table-file');
}

function checkTableFile(ref: TableFileRef, file: Buffer): string[] {
  const problems: string[] = [];
  if (file.length !== ref.size) problems.push(`size ${ref.size} but the uploaded file has ${file.length} bytes`);
  if (createHash('sha256').update(file).digest('hex') !== ref.sha256) problems.push('sha256 does not match the uploaded file');
  let table: unknown;
  try {
    table = parseWandbLine(file.toString('utf8'));
  } catch {
    return [...problems, 'the table file is not JSON'];
  }
  if (!isObject(table) || !Array.isArray(table.columns) || !Array.isArray(table.data)) return [...problems, 'the table file must be {columns, data}'];
  const { columns, data } = table as { columns: unknown[]; data: unknown[] };
  if (columns.length !== ref.ncols) problems.push(`ncols ${ref.ncols} but the file has ${columns.length} columns`);
  if (data.length !== ref.nrows) problems.push(`nrows ${ref.nrows} but the file has ${data.length} rows`);
  if (!data.every((row) => Array.isArray(row) && row.length === columns.length)) problems.push('a table row does not have one cell per column');
  return problems;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** A started fake W&B backend, stopped when the test run ends. */
export async function startFakeWandb(options: FakeWandbOptions = {}): Promise<FakeWandbServer> {
  const server = new FakeWandbServer(options);
  await server.start();
  registerTeardown('fake W&B server', () => server.stop());
  return server;
}
