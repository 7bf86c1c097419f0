/**
 * Tracker on Weights & Biases.
 *
 * Why not drive @wandb/sdk (0.5.1) directly: its only public surface is a process-wide singleton
 * (`wandb.init/log/finish`) that installs SIGINT/SIGTERM/beforeExit handlers on every init (the
 * SIGINT one calls process.exit(), which would cut a Temporal worker's graceful shutdown short),
 * throws from event listeners when the backend refuses a run (an uncaught exception in a worker),
 * re-awaits the same settled promise when it "retries" (nothing is ever re-sent) and counts a
 * 5xx from file_stream as success, drops `tags`, `job_type` and `resume`, sends config without
 * the `{value}` wrapping the W&B app and resume read, and has no summary or config updates.
 * So this adapter speaks the same wire protocol itself (see ./wandb-api.ts for what goes on the
 * wire) and adds what a control plane needs: per-run instances, resume by run id, bounded
 * buffering, retries with backoff, and degradation that never fails a pipeline.
 *
 * Fault policy:
 * - openRun: a refused API key (401/403) or a run W&B rejects is a configuration error
 *   (ConfigError). W&B unreachable is not: the run opens in degraded mode and connects later.
 * - Everything after openRun never throws because of W&B. Rows, summary, config and tables are
 *   buffered in memory (rows bounded: the oldest are dropped and counted), sent by a background
 *   loop every `flushIntervalMs`, retried with exponential backoff, and one warning per outage
 *   goes to the logger. `flush()` and `finish()` try to deliver now and return either way.
 */
import { createHash } from 'node:crypto';
import { ConfigError } from '../ports/errors';
import type { Scalar, Tracker, TrackerRun, TrackerRunInit } from '../ports/tracker';
import {
  checkConfig,
  checkMetrics,
  checkRunInit,
  checkStep,
  checkTable,
  consoleTrackerLogger,
  errorMessage,
  StepSequencer,
  type TrackerLogger,
} from './tracker-common';
import {
  backoffDelay,
  DEFAULT_RETRY_POLICY,
  encodeWandbJson,
  HISTORY_FILE,
  type RetryPolicy,
  SUMMARY_FILE,
  WandbApi,
  WandbRequestError,
  withRetry,
  wrapConfig,
} from './wandb-api';

export interface WandbTrackerOptions {
  /** WANDB_API_KEY. */
  apiKey: string;
  /** WANDB_BASE_URL, the API server. Default `https://api.wandb.ai`. */
  baseUrl?: string;
  /** Where people open runs. Default: derived from baseUrl (`api.wandb.ai` -> `wandb.ai`). */
  appUrl?: string;
  /** WANDB_ENTITY. Default: the API key's default entity (asked from W&B once). */
  entity?: string;
  /** W&B project for runs opened with an empty `project`. Default `forgeline`. */
  project?: string;
  logger?: TrackerLogger;
  /** Per-request retries of transient failures, and the background loop's backoff. */
  retry?: Partial<RetryPolicy>;
  /** How often buffered data is sent in the background. Default 5000 ms. */
  flushIntervalMs?: number;
  /** History rows kept per run while W&B cannot take them; the oldest go first. Default 10 000. */
  maxBufferedRows?: number;
  /** Tables kept per run awaiting upload; the oldest go first. Default 100. */
  maxBufferedTables?: number;
  /** Per-request timeout. Default 15 000 ms. */
  requestTimeoutMs?: number;
}

/** `https://api.wandb.ai` -> `https://wandb.ai`; a self-hosted server serves the app itself. */
export function wandbAppUrl(baseUrl: string): string {
  const url = new URL(baseUrl);
  if (url.hostname.startsWith('api.wandb.')) url.hostname = url.hostname.slice('api.'.length);
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

/** What a run's buffers hold right now (for operators and tests). */
export interface WandbRunBufferStats {
  connected: boolean;
  pendingRows: number;
  pendingTables: number;
  droppedRows: number;
  droppedTables: number;
  completed: boolean;
}

/**
 * One warning when W&B starts failing, one info line when it answers again, however many runs
 * and calls run into the outage in between.
 */
class OutageReporter {
  private failing = false;

  constructor(private readonly logger: TrackerLogger) {}

  get isFailing(): boolean {
    return this.failing;
  }

  failed(err: unknown): void {
    if (this.failing) return;
    this.failing = true;
    const reason = errorMessage(err);
    this.logger.warn(`W&B is unreachable or failing (${reason}); tracking data is buffered in memory and retried in the background`, {
      error: reason,
    });
  }

  recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    this.logger.info?.('W&B answers again; buffered tracking data is being delivered');
  }
}

interface RunSettings {
  api: WandbApi;
  outage: OutageReporter;
  logger: TrackerLogger;
  retry: RetryPolicy;
  appUrl: string;
  configuredEntity?: string;
  resolveEntity(policy: RetryPolicy): Promise<string>;
  flushIntervalMs: number;
  maxBufferedRows: number;
  maxBufferedTables: number;
}

/** While W&B is known to be failing, calls try once and leave retries to the background loop. */
function currentPolicy(settings: RunSettings): RetryPolicy {
  return settings.outage.isFailing ? { ...settings.retry, maxAttempts: 1 } : settings.retry;
}

export class WandbTracker implements Tracker {
  readonly kind = 'wandb' as const;
  private readonly settings: RunSettings;
  private readonly defaultProject: string;
  private entityLookup?: Promise<string>;

  constructor(options: WandbTrackerOptions) {
    if (!options.apiKey) {
      throw new ConfigError('WANDB_API_KEY is required for the W&B tracker: set it, or use FORGELINE_TRACKER=local.');
    }
    const baseUrl = options.baseUrl ?? 'https://api.wandb.ai';
    const api = new WandbApi({ baseUrl, apiKey: options.apiKey, requestTimeoutMs: options.requestTimeoutMs ?? 15_000 });
    this.defaultProject = options.project ?? 'forgeline';
    const logger = options.logger ?? consoleTrackerLogger;
    this.settings = {
      api,
      outage: new OutageReporter(logger),
      logger,
      retry: { ...DEFAULT_RETRY_POLICY, ...options.retry },
      appUrl: options.appUrl?.replace(/\/+$/, '') ?? wandbAppUrl(baseUrl),
      ...(options.entity && { configuredEntity: options.entity }),
      resolveEntity: (policy) => this.resolveEntity(policy),
      flushIntervalMs: options.flushIntervalMs ?? 5_000,
      maxBufferedRows: Math.max(1, options.maxBufferedRows ?? 10_000),
      maxBufferedTables: Math.max(1, options.maxBufferedTables ?? 100),
    };
  }

  async openRun(init: TrackerRunInit): Promise<TrackerRun> {
    const resolved = { ...init, project: init.project || this.defaultProject };
    checkRunInit(resolved);
    const run = new WandbRun(resolved, this.settings);
    try {
      await run.connect(currentPolicy(this.settings));
    } catch (err) {
      if (err instanceof WandbRequestError && err.kind === 'auth') {
        throw new ConfigError(
          `W&B refused the API key (HTTP ${err.status}) at ${this.settings.appUrl}: check WANDB_API_KEY (and WANDB_BASE_URL for a self-hosted server).`,
          { cause: err },
        );
      }
      if (err instanceof WandbRequestError && err.kind === 'rejected') {
        throw new ConfigError(
          `W&B rejected run ${resolved.project}/${resolved.runId}: ${err.message}. Check WANDB_ENTITY, WANDB_BASE_URL and the project name.`,
          { cause: err },
        );
      }
      // Unreachable or failing: tracking must not fail the pipeline. Connect in the background.
      this.settings.outage.failed(err);
      run.retryLater();
    }
    return run;
  }

  private resolveEntity(policy: RetryPolicy): Promise<string> {
    if (this.settings.configuredEntity) return Promise.resolve(this.settings.configuredEntity);
    this.entityLookup ??= withRetry(() => this.settings.api.viewerEntity(), policy)
      .then((entity) => {
        if (!entity) throw new WandbRequestError('rejected', 'W&B reports no default entity for this API key: set WANDB_ENTITY');
        return entity;
      })
      .catch((err: unknown) => {
        this.entityLookup = undefined;
        throw err;
      });
    return this.entityLookup;
  }
}

interface PendingRow {
  metrics: Record<string, Scalar>;
  step?: number;
  loggedAtMs: number;
  /** Seconds since this handle opened; added to the run's earlier runtime once known. */
  elapsedS: number;
}

/** Before the run is connected, row numbering and summary order wait in one ordered list. */
type PendingOp = { row: PendingRow } | { summary: Record<string, unknown> };

interface QueuedLine {
  seq: number;
  text: string;
}

interface PendingUpload {
  path: string;
  body: Buffer;
}

/** `eval/results` -> `eval/results`: '/' makes folders in the run's files, as on W&B; nothing escapes. */
function tableFileStem(name: string): string {
  return name
    .split('/')
    .filter((segment) => segment !== '' && segment !== '.' && segment !== '..')
    .map((segment) => segment.replace(/[^A-Za-z0-9._-]/g, '_'))
    .join('/') || 'table';
}

/** A file_stream request carries at most this much history. */
const MAX_LINES_PER_REQUEST = 1_000;
const MAX_BYTES_PER_REQUEST = 2 * 1024 * 1024;

export class WandbRun implements TrackerRun {
  readonly runId: string;
  private readonly project: string;
  private entity?: string;
  private storageId?: string;
  private readonly openedAtMs = Date.now();

  // What the server holds, learned at connect time.
  private historyOffset = 0;
  private runtimeBaseS = 0;
  private steps?: StepSequencer;

  // Config and summary: what the server had, plus our changes; versions say what is unsent.
  private baseConfig: Record<string, unknown> = {};
  private readonly configChanges: Record<string, unknown> = {};
  private configVersion = 0;
  private sentConfigVersion = 0;
  private baseSummary: Record<string, unknown> = {};
  private readonly summaryChanges: Record<string, unknown> = {};
  private summaryVersion = 0;
  private sentSummaryVersion = 0;

  // Buffers.
  private pendingOps: PendingOp[] = [];
  private pendingOpRows = 0;
  private lines: QueuedLine[] = [];
  private nextSeq = 0;
  private uploads: PendingUpload[] = [];
  private uploadedUnreported: string[] = [];
  private droppedRows = 0;
  private droppedTables = 0;
  private reportedDrops = 0;

  private exitCode?: number;
  private completed = false;

  // Sync machinery: at most one sync runs and at most one waits behind it.
  private running?: Promise<boolean>;
  private queued?: Promise<boolean>;
  private timer?: NodeJS.Timeout;
  private failures = 0;
  private readonly warned = new Set<string>();

  constructor(
    private readonly init: TrackerRunInit,
    private readonly settings: RunSettings,
  ) {
    this.runId = init.runId;
    this.project = init.project;
    this.entity = settings.configuredEntity;
    if (init.config) this.mergeConfig(init.config);
  }

  /**
   * `<appUrl>/<entity>/<project>/runs/<id>`. Without WANDB_ENTITY the entity is learned from W&B,
   * so a run opened while W&B is unreachable links to `<appUrl>/<project>/runs/<id>` until then.
   */
  get url(): string {
    const path = [this.entity, this.project, 'runs', this.runId].filter((p): p is string => !!p).map(encodeURIComponent);
    return `${this.settings.appUrl}/${path.join('/')}`;
  }

  get bufferStats(): WandbRunBufferStats {
    return {
      connected: this.steps !== undefined,
      pendingRows: this.pendingOpRows + this.lines.length,
      pendingTables: this.uploads.length,
      droppedRows: this.droppedRows,
      droppedTables: this.droppedTables,
      completed: this.completed,
    };
  }

  // ---- TrackerRun --------------------------------------------------------------------------

  async setConfig(config: Record<string, unknown>): Promise<void> {
    checkConfig(config);
    if (this.refuseAfterFinish()) return;
    this.mergeConfig(config);
    this.scheduleSync(this.settings.flushIntervalMs);
  }

  async log(metrics: Record<string, Scalar>, step?: number): Promise<void> {
    checkMetrics('metrics', metrics);
    checkStep(step);
    if (this.refuseAfterFinish()) return;
    const now = Date.now();
    const row: PendingRow = { metrics: { ...metrics }, loggedAtMs: now, elapsedS: (now - this.openedAtMs) / 1000 };
    if (step !== undefined) row.step = step;
    if (this.steps) {
      this.commitRow(row);
    } else {
      this.pendingOps.push({ row });
      this.pendingOpRows += 1;
    }
    this.enforceRowLimit();
    this.scheduleSync(this.settings.flushIntervalMs);
  }

  async logTable(name: string, columns: string[], rows: Scalar[][]): Promise<void> {
    checkTable(name, columns, rows);
    if (this.refuseAfterFinish()) return;
    // A W&B table is a run file `media/table/<key>_<step>_<hash>.table.json` holding
    // {columns, data}, referenced from the summary by a `table-file` value.
    const body = Buffer.from(encodeWandbJson({ columns, data: rows }));
    const sha256 = createHash('sha256').update(body).digest('hex');
    const path = `media/table/${tableFileStem(name)}_${this.steps?.lastStep ?? 0}_${sha256.slice(0, 20)}.table.json`;
    this.uploads.push({ path, body });
    if (this.uploads.length > this.settings.maxBufferedTables) {
      this.uploads.shift();
      this.droppedTables += 1;
    }
    this.updateSummary({ [name]: { _type: 'table-file', path, sha256, size: body.length, ncols: columns.length, nrows: rows.length } });
    this.scheduleSync(this.settings.flushIntervalMs);
  }

  async setSummary(summary: Record<string, Scalar>): Promise<void> {
    checkMetrics('summary', summary);
    if (this.refuseAfterFinish()) return;
    this.updateSummary({ ...summary });
    this.scheduleSync(this.settings.flushIntervalMs);
  }

  async flush(): Promise<void> {
    if (this.completed) return;
    await this.sync();
  }

  async finish(exitCode = 0): Promise<void> {
    if (this.completed) return;
    this.exitCode ??= exitCode;
    await this.sync();
  }

  // ---- Connecting ----------------------------------------------------------------------------

  /** Learn the entity and the run's state, then create or resume the run. Throws on failure. */
  async connect(policy: RetryPolicy): Promise<void> {
    const { api } = this.settings;
    const entity = await this.settings.resolveEntity(policy);
    this.entity = entity;
    const remote = await withRetry(() => api.runResumeStatus({ entity, project: this.project, runId: this.runId }), policy);
    let lastStep: number | undefined;
    let tags = this.init.tags;
    if (remote) {
      this.historyOffset = remote.historyLineCount;
      this.baseConfig = remote.config;
      this.baseSummary = remote.summary;
      this.runtimeBaseS = typeof remote.summary._runtime === 'number' ? remote.summary._runtime : 0;
      lastStep = remote.lastStep;
      tags = [...new Set([...remote.tags, ...(this.init.tags ?? [])])];
    }
    const configVersion = this.configVersion;
    const upserted = await withRetry(
      () =>
        api.upsertRun({
          name: this.runId,
          project: this.project,
          entity,
          ...(this.init.group !== undefined && { groupName: this.init.group }),
          ...(this.init.name !== undefined && { displayName: this.init.name }),
          ...(this.init.jobType !== undefined && { jobType: this.init.jobType }),
          ...(tags !== undefined && { tags }),
          config: wrapConfig(this.fullConfig()),
        }),
      policy,
    );
    this.storageId = upserted.storageId;
    this.entity = upserted.entity;
    this.sentConfigVersion = configVersion;
    this.steps = new StepSequencer(lastStep);
    const ops = this.pendingOps;
    this.pendingOps = [];
    this.pendingOpRows = 0;
    for (const op of ops) {
      if ('row' in op) this.commitRow(op.row);
      else this.applySummary(op.summary);
    }
  }

  /** Called when openRun could not reach W&B: keep trying in the background. */
  retryLater(): void {
    this.failures += 1;
    this.scheduleSync(backoffDelay(this.settings.retry, this.failures), true);
  }

  // ---- Buffers -------------------------------------------------------------------------------

  private fullConfig(): Record<string, unknown> {
    return { ...this.baseConfig, ...this.configChanges };
  }

  private mergeConfig(config: Record<string, unknown>): void {
    Object.assign(this.configChanges, JSON.parse(JSON.stringify(config)) as Record<string, unknown>);
    this.configVersion += 1;
  }

  private updateSummary(values: Record<string, unknown>): void {
    if (this.steps) this.applySummary(values);
    else this.pendingOps.push({ summary: values });
  }

  private applySummary(values: Record<string, unknown>): void {
    Object.assign(this.summaryChanges, values);
    this.summaryVersion += 1;
  }

  /** Number a row and serialize it as a history line; W&B's summary follows the latest row. */
  private commitRow(row: PendingRow): void {
    const step = this.steps!.next(row.step);
    if (step === undefined) {
      this.warnOnce('step', `W&B run ${this.runId}: dropped a row logged at step ${row.step}, below the last step ${this.steps!.lastStep} (steps must not decrease)`);
      return;
    }
    const system = {
      _step: step,
      _runtime: Math.round((this.runtimeBaseS + row.elapsedS) * 1000) / 1000,
      _timestamp: row.loggedAtMs / 1000,
    };
    this.lines.push({ seq: this.nextSeq++, text: encodeWandbJson({ ...row.metrics, ...system }) });
    this.applySummary({ ...row.metrics, ...system });
  }

  private enforceRowLimit(): void {
    while (this.pendingOpRows + this.lines.length > this.settings.maxBufferedRows) {
      if (this.lines.length > 0) {
        this.lines.shift();
      } else {
        const index = this.pendingOps.findIndex((op) => 'row' in op);
        this.pendingOps.splice(index, 1);
        this.pendingOpRows -= 1;
      }
      this.droppedRows += 1;
    }
  }

  private isDrained(): boolean {
    return (
      this.pendingOps.length === 0 &&
      this.lines.length === 0 &&
      this.uploads.length === 0 &&
      this.uploadedUnreported.length === 0 &&
      this.configVersion === this.sentConfigVersion &&
      this.summaryVersion === this.sentSummaryVersion
    );
  }

  private refuseAfterFinish(): boolean {
    if (this.exitCode === undefined) return false;
    this.warnOnce('finished', `W&B run ${this.runId} is finished; open it again to record more`);
    return true;
  }

  private warnOnce(key: string, message: string, meta?: Record<string, unknown>): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.settings.logger.warn(message, meta);
  }

  // ---- Syncing -------------------------------------------------------------------------------

  /** Deliver everything buffered so far. Resolves to false when W&B could not take it. */
  private sync(): Promise<boolean> {
    if (this.queued) return this.queued;
    if (this.running) {
      this.queued = this.running.then(() => {
        this.queued = undefined;
        return this.startSync();
      });
      return this.queued;
    }
    return this.startSync();
  }

  private startSync(): Promise<boolean> {
    this.running = this.syncOnce().then((ok) => {
      this.running = undefined;
      if (this.completed) this.cancelTimer();
      else if (!ok) this.scheduleSync(backoffDelay(this.settings.retry, this.failures), true);
      else if (!this.isDrained()) this.scheduleSync(this.settings.flushIntervalMs);
      return ok;
    });
    return this.running;
  }

  private async syncOnce(): Promise<boolean> {
    const policy = currentPolicy(this.settings);
    try {
      if (!this.steps) await this.connect(policy);
      await this.pushConfig(policy);
      await this.pushUploads(policy);
      await this.pushStream(policy);
      if (this.exitCode !== undefined && this.isDrained()) {
        await withRetry(() => this.settings.api.fileStream(this.runPath(), { complete: true, exitcode: this.exitCode }), policy);
        this.completed = true;
      }
      this.failures = 0;
      this.settings.outage.recovered();
      this.reportDrops();
      return true;
    } catch (err) {
      this.failures += 1;
      if (err instanceof WandbRequestError) this.settings.outage.failed(err);
      else this.warnOnce('bug', `W&B run ${this.runId}: unexpected error while sending tracking data`, { error: errorMessage(err) });
      return false;
    }
  }

  private runPath(): { entity: string; project: string; runId: string } {
    return { entity: this.entity!, project: this.project, runId: this.runId };
  }

  private async pushConfig(policy: RetryPolicy): Promise<void> {
    const version = this.configVersion;
    if (version === this.sentConfigVersion) return;
    await this.dropIfRejected('config', () =>
      withRetry(
        () =>
          this.settings.api.upsertRun({
            id: this.storageId!,
            name: this.runId,
            project: this.project,
            entity: this.entity!,
            config: wrapConfig(this.fullConfig()),
          }),
        policy,
      ),
    );
    this.sentConfigVersion = version;
  }

  private async pushUploads(policy: RetryPolicy): Promise<void> {
    if (this.uploads.length === 0) return;
    const batch = [...this.uploads];
    const { api } = this.settings;
    const granted = await this.dropIfRejected('upload', () =>
      withRetry(() => api.createRunFiles({ ...this.runPath(), files: batch.map((u) => u.path) }), policy),
    );
    for (const upload of batch) {
      const grant = granted?.value;
      const url = grant?.urls.get(upload.path);
      if (grant && url) {
        const put = await this.dropIfRejected('upload', () => withRetry(() => api.uploadFile(url, grant.uploadHeaders, upload.body), policy));
        if (put) this.uploadedUnreported.push(upload.path);
      } else if (granted) {
        this.warnOnce('upload', `W&B run ${this.runId}: W&B gave no upload URL for ${upload.path}; the table is dropped`);
      }
      this.uploads = this.uploads.filter((u) => u !== upload);
    }
  }

  private async pushStream(policy: RetryPolicy): Promise<void> {
    for (;;) {
      const batch = this.nextHistoryBatch();
      const summaryVersion = this.summaryVersion;
      const uploaded = [...this.uploadedUnreported];
      const sendSummary = summaryVersion !== this.sentSummaryVersion;
      if (batch.length === 0 && !sendSummary && uploaded.length === 0) return;

      const request: { files: Record<string, { offset: number; content: string[] }>; uploaded?: string[] } = { files: {} };
      if (batch.length > 0) request.files[HISTORY_FILE] = { offset: this.historyOffset, content: batch.map((l) => l.text) };
      if (sendSummary) request.files[SUMMARY_FILE] = { offset: 0, content: [encodeWandbJson({ ...this.baseSummary, ...this.summaryChanges })] };
      if (uploaded.length > 0) request.uploaded = uploaded;

      const accepted = await this.dropIfRejected('stream', () => withRetry(() => this.settings.api.fileStream(this.runPath(), request), policy));
      if (accepted) this.historyOffset += batch.length;
      const lastSeq = batch.at(-1)?.seq ?? -1;
      while (this.lines.length > 0 && this.lines[0]!.seq <= lastSeq) this.lines.shift();
      this.sentSummaryVersion = summaryVersion;
      this.uploadedUnreported.splice(0, uploaded.length);
    }
  }

  private nextHistoryBatch(): QueuedLine[] {
    const batch: QueuedLine[] = [];
    let bytes = 0;
    for (const line of this.lines) {
      if (batch.length >= MAX_LINES_PER_REQUEST || (batch.length > 0 && bytes + line.text.length > MAX_BYTES_PER_REQUEST)) break;
      batch.push(line);
      bytes += line.text.length;
    }
    return batch;
  }

  /**
   * A request W&B rejects outright (4xx other than auth) will be rejected again: warn, drop that
   * data and go on, rather than block everything behind it. Resolves to undefined when dropped.
   */
  private async dropIfRejected<T>(what: string, send: () => Promise<T>): Promise<{ value: T } | undefined> {
    try {
      return { value: await send() };
    } catch (err) {
      if (!(err instanceof WandbRequestError) || err.kind !== 'rejected') throw err;
      this.warnOnce(`rejected-${what}`, `W&B run ${this.runId}: W&B rejected ${what} data, which is dropped`, { error: err.message });
      return undefined;
    }
  }

  private reportDrops(): void {
    if (this.droppedRows + this.droppedTables === this.reportedDrops) return;
    this.reportedDrops = this.droppedRows + this.droppedTables;
    this.settings.logger.info?.(`W&B run ${this.runId}: buffers overflowed while W&B was unavailable`, {
      droppedRows: this.droppedRows,
      droppedTables: this.droppedTables,
    });
  }

  private scheduleSync(delayMs: number, replace = false): void {
    if (this.completed) return;
    if (this.timer) {
      if (!replace) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sync();
    }, delayMs);
    // Tracking never keeps a process alive; finish() is how a run's data is delivered for sure.
    this.timer.unref();
  }

  private cancelTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
