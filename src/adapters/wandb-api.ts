/**
 * The slice of the W&B backend protocol that a run needs, spoken the way the official clients
 * (@wandb/sdk, the Python SDK and its Go core) speak it:
 *
 * - GraphQL at `POST <baseUrl>/graphql` (`{query, variables, operationName}`), HTTP Basic auth
 *   with user `api` and the API key as password:
 *   `Viewer` (default entity of the key), `RunResumeStatus` (offsets, summary and config of an
 *   existing run), `UpsertBucket` (create or update a run; config is a JSONString of
 *   `{key: {value}}`), `CreateRunFiles` (signed upload URLs for run files).
 * - File stream at `POST <baseUrl>/files/<entity>/<project>/<run>/file_stream` with
 *   `{files: {<name>: {offset, content: [line, ...]}}, uploaded?, complete?, exitcode?}`:
 *   `wandb-history.jsonl` lines are appended at `offset` (the number of lines the server already
 *   holds, so a resent chunk overwrites rather than duplicates), `wandb-summary.json` is one line
 *   holding the whole summary, and `{complete: true, exitcode}` marks the run finished.
 * - Run files are PUT to the signed URL with the returned `uploadHeaders` and no W&B credentials.
 *
 * Failures are classified for the caller: `auth` (401/403), `transient` (network, timeouts,
 * 408/409/425/429/5xx: worth retrying) and `rejected` (anything else: retrying cannot help).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from './tracker-common';

export const HISTORY_FILE = 'wandb-history.jsonl';
export const SUMMARY_FILE = 'wandb-summary.json';

export type WandbFailureKind = 'auth' | 'transient' | 'rejected';

export class WandbRequestError extends Error {
  constructor(
    readonly kind: WandbFailureKind,
    message: string,
    readonly status?: number,
    /** From a Retry-After header, when the server sent one. */
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WandbRequestError';
  }
}

export interface RetryPolicy {
  /** Tries per request, the first included. */
  maxAttempts: number;
  /** Delay before the first retry; it doubles on each further one. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 500, maxDelayMs: 30_000 };

/** Exponential backoff with "equal jitter": between half and all of the capped exponential delay. */
export function backoffDelay(policy: RetryPolicy, failures: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, failures - 1));
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

/** Runs `request` again on transient failures, at most `policy.maxAttempts` times in all. */
export async function withRetry<T>(request: () => Promise<T>, policy: RetryPolicy): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await request();
    } catch (err) {
      const transient = err instanceof WandbRequestError && err.kind === 'transient';
      if (!transient || attempt >= policy.maxAttempts) throw err;
      const hinted = err.retryAfterMs;
      await sleep(hinted !== undefined ? Math.min(hinted, policy.maxDelayMs) : backoffDelay(policy, attempt));
    }
  }
}

// ---- JSON as W&B writes it --------------------------------------------------------------------

const NON_FINITE_MARK = '\u0000wandb-non-finite\u0000';
const NON_FINITE_TOKENS = ['-Infinity', 'Infinity', 'NaN'] as const;

/**
 * JSON with NaN and ±Infinity written as bare tokens, as the Python SDK (json.dumps) and the Go
 * core write history and summary lines and as the W&B backend reads them. Plain JSON.stringify
 * would turn them into null and lose a diverged loss.
 */
export function encodeWandbJson(value: unknown): string {
  const text = JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'number' && !Number.isFinite(v) ? NON_FINITE_MARK + String(v) : v,
  );
  return text.replace(/"\\u0000wandb-non-finite\\u0000(NaN|Infinity|-Infinity)"/g, '$1');
}

/** Parses JSON that may hold the bare NaN / Infinity / -Infinity tokens W&B stores. */
export function decodeWandbJson(text: string): unknown {
  let normalized = '';
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i]!;
    if (inString) {
      normalized += ch;
      if (ch === '\\') {
        normalized += text[i + 1] ?? '';
        i += 1;
      } else if (ch === '"') {
        inString = false;
      }
      continue;
    }
    if (ch === '"') {
      inString = true;
      normalized += ch;
      continue;
    }
    const token = NON_FINITE_TOKENS.find((t) => text.startsWith(t, i));
    if (token) {
      normalized += JSON.stringify(NON_FINITE_MARK + token);
      i += token.length - 1;
      continue;
    }
    normalized += ch;
  }
  return JSON.parse(normalized, (_key, v: unknown) =>
    typeof v === 'string' && v.startsWith(NON_FINITE_MARK) ? Number(v.slice(NON_FINITE_MARK.length)) : v,
  );
}

/** W&B stores run config as `{key: {value}}`; that is what its app shows and its SDKs resume from. */
export function wrapConfig(config: Record<string, unknown>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(config).map(([key, value]) => [key, { value }])));
}

/** The config values of a stored run; entries not in `{value}` form (or unreadable JSON) are skipped. */
export function unwrapConfig(json: string | null | undefined): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(parseObject(json))) {
    if (entry !== null && typeof entry === 'object' && 'value' in entry) config[key] = (entry as { value: unknown }).value;
  }
  return config;
}

// ---- GraphQL documents ------------------------------------------------------------------------

const VIEWER_QUERY = `query Viewer {
  viewer {
    id
    entity
  }
}`;

/** What the public API's `run.history(keys=...)` sends: one spec per list of keys. */
const RUN_SAMPLED_HISTORY_QUERY = `query RunSampledHistory($project: String!, $entity: String!, $name: String!, $specs: [JSONString!]!) {
  project(name: $project, entityName: $entity) {
    run(name: $name) {
      sampledHistory(specs: $specs)
    }
  }
}`;

const RUN_RESUME_STATUS_QUERY = `query RunResumeStatus($project: String, $entity: String, $name: String!) {
  model(name: $project, entityName: $entity) {
    id
    name
    entity {
      id
      name
    }
    bucket(name: $name, missingOk: true) {
      id
      name
      displayName
      config
      summaryMetrics
      historyLineCount
      historyTail
      tags
    }
  }
}`;

const UPSERT_BUCKET_MUTATION = `mutation UpsertBucket(
  $id: String
  $name: String
  $project: String
  $entity: String
  $groupName: String
  $displayName: String
  $jobType: String
  $tags: [String!]
  $config: JSONString
) {
  upsertBucket(
    input: {
      id: $id
      name: $name
      modelName: $project
      entityName: $entity
      groupName: $groupName
      displayName: $displayName
      jobType: $jobType
      tags: $tags
      config: $config
    }
  ) {
    bucket {
      id
      name
      displayName
      project {
        id
        name
        entity {
          id
          name
        }
      }
    }
    inserted
  }
}`;

const CREATE_RUN_FILES_MUTATION = `mutation CreateRunFiles($entity: String!, $project: String!, $run: String!, $files: [String!]!) {
  createRunFiles(input: { entityName: $entity, projectName: $project, runName: $run, files: $files }) {
    runID
    uploadHeaders
    files {
      name
      uploadUrl
    }
  }
}`;

// ---- Shapes -----------------------------------------------------------------------------------

export interface UpsertRunVariables {
  /** The run's storage id, once known (updates). */
  id?: string;
  /** The run id chosen by the caller (W&B calls it the run's name). */
  name: string;
  project: string;
  entity: string;
  groupName?: string;
  displayName?: string;
  jobType?: string;
  tags?: string[];
  /** `wrapConfig(...)` output. */
  config?: string;
}

export interface UpsertedRun {
  storageId: string;
  entity: string;
  project: string;
}

/** What a resumed run continues from. */
export interface RemoteRunState {
  storageId: string;
  historyLineCount: number;
  /** `_step` of the last history line, when there is one. */
  lastStep?: number;
  summary: Record<string, unknown>;
  config: Record<string, unknown>;
  tags: string[];
}

export interface FileStreamChunk {
  offset: number;
  content: string[];
}

export interface FileStreamRequest {
  files?: Record<string, FileStreamChunk>;
  /** Run files uploaded since the last request (for deployments that cannot see uploads). */
  uploaded?: string[];
  complete?: boolean;
  exitcode?: number;
}

export interface UploadGrant {
  /** `Name:Value` strings to send with every upload. */
  uploadHeaders: string[];
  urls: Map<string, string>;
}

export interface WandbApiOptions {
  baseUrl: string;
  apiKey: string;
  requestTimeoutMs: number;
}

// ---- Client -----------------------------------------------------------------------------------

export class WandbApi {
  private readonly baseUrl: string;
  private readonly authorization: string;
  private readonly timeoutMs: number;

  constructor(options: WandbApiOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.authorization = `Basic ${Buffer.from(`api:${options.apiKey}`).toString('base64')}`;
    this.timeoutMs = options.requestTimeoutMs;
  }

  async viewerEntity(): Promise<string | undefined> {
    const data = await this.graphql<{ viewer: { entity?: string | null } | null }>('Viewer', VIEWER_QUERY, {});
    return data.viewer?.entity ?? undefined;
  }

  /**
   * A run's history rows that hold every one of `keys` (with only those keys), down-sampled by W&B
   * to at most `samples` rows; undefined when the run does not exist.
   */
  async sampledHistory(vars: { entity: string; project: string; runId: string; keys: string[]; samples: number }): Promise<Array<Record<string, unknown>> | undefined> {
    const specs = [JSON.stringify({ keys: vars.keys, samples: vars.samples })];
    type Data = { project: { run: { sampledHistory: Array<Array<Record<string, unknown>> | null> | null } | null } | null };
    const data = await this.graphql<Data>('RunSampledHistory', RUN_SAMPLED_HISTORY_QUERY, { project: vars.project, entity: vars.entity, name: vars.runId, specs });
    const run = data.project?.run;
    if (!run) return undefined;
    return run.sampledHistory?.[0] ?? [];
  }

  /** The state of an existing run, or undefined when the run does not exist yet. */
  async runResumeStatus(vars: { entity: string; project: string; runId: string }): Promise<RemoteRunState | undefined> {
    type Bucket = {
      id: string;
      config?: string | null;
      summaryMetrics?: string | null;
      historyLineCount?: number | null;
      historyTail?: string | null;
      tags?: string[] | null;
    };
    const data = await this.graphql<{ model: { bucket: Bucket | null } | null }>('RunResumeStatus', RUN_RESUME_STATUS_QUERY, {
      project: vars.project,
      entity: vars.entity,
      name: vars.runId,
    });
    const bucket = data.model?.bucket;
    if (!bucket) return undefined;
    const summary = parseObject(bucket.summaryMetrics);
    return {
      storageId: bucket.id,
      historyLineCount: bucket.historyLineCount ?? 0,
      lastStep: lastStepOf(bucket.historyTail) ?? (typeof summary._step === 'number' ? summary._step : undefined),
      summary,
      config: unwrapConfig(bucket.config),
      tags: bucket.tags ?? [],
    };
  }

  async upsertRun(vars: UpsertRunVariables): Promise<UpsertedRun> {
    type Payload = {
      upsertBucket: { bucket: { id: string; project?: { name: string; entity?: { name: string } | null } | null } | null } | null;
    };
    const data = await this.graphql<Payload>('UpsertBucket', UPSERT_BUCKET_MUTATION, { ...vars });
    const bucket = data.upsertBucket?.bucket;
    if (!bucket) throw new WandbRequestError('rejected', 'UpsertBucket returned no run');
    return {
      storageId: bucket.id,
      entity: bucket.project?.entity?.name ?? vars.entity,
      project: bucket.project?.name ?? vars.project,
    };
  }

  async createRunFiles(vars: { entity: string; project: string; runId: string; files: string[] }): Promise<UploadGrant> {
    type Payload = { createRunFiles: { uploadHeaders?: string[] | null; files: Array<{ name: string; uploadUrl?: string | null }> } | null };
    const data = await this.graphql<Payload>('CreateRunFiles', CREATE_RUN_FILES_MUTATION, {
      entity: vars.entity,
      project: vars.project,
      run: vars.runId,
      files: vars.files,
    });
    const result = data.createRunFiles;
    if (!result) throw new WandbRequestError('rejected', 'CreateRunFiles returned nothing');
    const urls = new Map<string, string>();
    for (const file of result.files) if (file.uploadUrl) urls.set(file.name, file.uploadUrl);
    return { uploadHeaders: result.uploadHeaders ?? [], urls };
  }

  /** PUT a run file to its signed URL. The URL is the credential: no W&B auth goes along. */
  async uploadFile(url: string, uploadHeaders: string[], body: Buffer): Promise<void> {
    const headers: Record<string, string> = {};
    for (const header of uploadHeaders) {
      const colon = header.indexOf(':');
      if (colon > 0) headers[header.slice(0, colon).trim()] = header.slice(colon + 1).trim();
    }
    const res = await this.send(url, { method: 'PUT', headers, body }, 'run file upload');
    await res.arrayBuffer();
  }

  async fileStream(run: { entity: string; project: string; runId: string }, request: FileStreamRequest): Promise<void> {
    const path = ['files', run.entity, run.project, run.runId, 'file_stream'].map(encodeURIComponent).join('/');
    const res = await this.send(
      `${this.baseUrl}/${path}`,
      { method: 'POST', headers: this.jsonHeaders(), body: JSON.stringify(request) },
      'file_stream',
    );
    await res.arrayBuffer();
  }

  private async graphql<T>(operationName: string, query: string, variables: Record<string, unknown>): Promise<T> {
    const res = await this.send(
      `${this.baseUrl}/graphql`,
      { method: 'POST', headers: this.jsonHeaders(), body: JSON.stringify({ query, variables, operationName }) },
      operationName,
    );
    let payload: { data?: T | null; errors?: Array<{ message?: string }> };
    try {
      payload = (await res.json()) as typeof payload;
    } catch (err) {
      // A proxy or load balancer answering for W&B, typically during an outage.
      throw new WandbRequestError('transient', `${operationName}: response is not JSON`, res.status, undefined, { cause: err });
    }
    if (payload.errors?.length || !payload.data) {
      const messages = (payload.errors ?? []).map((e) => e.message ?? 'unknown error').join('; ');
      throw new WandbRequestError('rejected', `${operationName}: ${messages || 'no data in response'}`, res.status);
    }
    return payload.data;
  }

  private jsonHeaders(): Record<string, string> {
    return {
      authorization: this.authorization,
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': 'forgeline-tracker',
    };
  }

  private async send(url: string, init: { method: string; headers: Record<string, string>; body: string | Buffer }, what: string): Promise<Response> {
    let res: Response;
    try {
      // A Buffer goes as a plain Uint8Array: with the DOM lib in the program (weaviate-client's
      // types pull it in), fetch's BodyInit takes no Buffer<ArrayBufferLike>.
      const body = typeof init.body === 'string' ? init.body : new Uint8Array(init.body);
      res = await fetch(url, { ...init, body, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new WandbRequestError('transient', `${what}: ${describeFetchFailure(err)}`, undefined, undefined, { cause: err });
    }
    if (res.ok) return res;
    const detail = (await res.text().catch(() => '')).slice(0, 300).trim();
    const message = `${what}: HTTP ${res.status}${detail ? ` ${detail}` : ''}`;
    throw new WandbRequestError(classifyStatus(res.status), message, res.status, retryAfterMs(res.headers.get('retry-after')));
  }
}

function classifyStatus(status: number): WandbFailureKind {
  if (status === 401 || status === 403) return 'auth';
  if (status === 408 || status === 409 || status === 425 || status === 429 || status >= 500) return 'transient';
  return 'rejected';
}

function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function describeFetchFailure(err: unknown): string {
  if (err instanceof Error && err.name === 'TimeoutError') return 'request timed out';
  const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  return cause?.code ?? cause?.message ?? errorMessage(err);
}

function parseObject(json: string | null | undefined): Record<string, unknown> {
  if (!json) return {};
  try {
    const value = decodeWandbJson(json);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** `historyTail` is a JSON list of the last history lines, each itself a JSON string. */
function lastStepOf(historyTail: string | null | undefined): number | undefined {
  if (!historyTail) return undefined;
  try {
    const lines = decodeWandbJson(historyTail);
    if (!Array.isArray(lines) || lines.length === 0) return undefined;
    const last = lines[lines.length - 1];
    const row = typeof last === 'string' ? decodeWandbJson(last) : last;
    const step = (row as { _step?: unknown } | null)?._step;
    return typeof step === 'number' ? step : undefined;
  } catch {
    return undefined;
  }
}
