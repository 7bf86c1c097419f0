/**
 * Tracker on the local file system: one JSONL file per run at `<home>/runs/<project>/<runId>.jsonl`,
 * one record per line. Opening an existing run id appends to its file (resume).
 *
 * Every record is written with a single O_APPEND write, so activities in several processes can
 * append to the same run without tearing each other's lines. `readLocalRun` folds a file back
 * into config, history, summary and tables (for the CLI and tests).
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
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

export type LocalTrackerRecord =
  | {
      type: 'init';
      ts: string;
      runId: string;
      project: string;
      name?: string;
      group?: string;
      jobType?: string;
      tags?: string[];
      /** True when the file already existed: this open resumed the run. */
      resumed: boolean;
    }
  | { type: 'config'; ts: string; config: Record<string, unknown> }
  | { type: 'log'; ts: string; step: number; metrics: Record<string, Scalar> }
  | { type: 'table'; ts: string; name: string; columns: string[]; rows: Scalar[][] }
  | { type: 'summary'; ts: string; summary: Record<string, Scalar> }
  | { type: 'finish'; ts: string; exitCode: number };

/** Distributes Omit over the union, so each record kind keeps its own fields. */
type RecordBody = LocalTrackerRecord extends infer R ? (R extends LocalTrackerRecord ? Omit<R, 'ts'> : never) : never;

export interface LocalHistoryRow {
  step: number;
  ts: string;
  metrics: Record<string, Scalar>;
}

export interface LocalTable {
  name: string;
  ts: string;
  columns: string[];
  rows: Scalar[][];
}

export interface LocalRunData {
  runId: string;
  project: string;
  name?: string;
  group?: string;
  jobType?: string;
  tags: string[];
  /** Merged config, later keys win. */
  config: Record<string, unknown>;
  history: LocalHistoryRow[];
  /** Last logged value of every metric, overridden by `setSummary` in call order (as on W&B). */
  summary: Record<string, Scalar>;
  /** Every logged table, in order. */
  tables: LocalTable[];
  /** True when the last open of the run was finished. */
  finished: boolean;
  exitCode?: number;
  /** How many times the run was opened (1 + resumes). */
  opens: number;
  /** Lines that were not valid records (e.g. a line torn by a crash mid-write). */
  skippedLines: number;
}

export interface LocalTrackerOptions {
  /** FORGELINE_HOME; runs live under `<home>/runs`. */
  home: string;
  logger?: TrackerLogger;
}

export function localRunPath(home: string, project: string, runId: string): string {
  return path.join(path.resolve(home), 'runs', project, `${runId}.jsonl`);
}

export class LocalTracker implements Tracker {
  readonly kind = 'local' as const;
  private readonly home: string;
  private readonly logger: TrackerLogger;

  constructor(options: LocalTrackerOptions) {
    this.home = options.home;
    this.logger = options.logger ?? consoleTrackerLogger;
  }

  async openRun(init: TrackerRunInit): Promise<TrackerRun> {
    checkRunInit(init);
    const file = localRunPath(this.home, init.project, init.runId);
    let previous: LocalRunData | undefined;
    try {
      previous = await readLocalRunIfExists(file);
      await mkdir(path.dirname(file), { recursive: true });
      // Written directly rather than through the run, so a home we cannot write to fails here.
      await appendRecord(file, {
        type: 'init',
        runId: init.runId,
        project: init.project,
        ...(init.name !== undefined && { name: init.name }),
        ...(init.group !== undefined && { group: init.group }),
        ...(init.jobType !== undefined && { jobType: init.jobType }),
        ...(init.tags !== undefined && { tags: init.tags }),
        resumed: previous !== undefined,
      });
    } catch (err) {
      throw new ConfigError(
        `local tracker cannot write ${file}: ${errorMessage(err)}. Check FORGELINE_HOME (${this.home}).`,
        { cause: err },
      );
    }
    const run = new LocalRun(init.runId, file, new StepSequencer(previous?.history.at(-1)?.step), this.logger);
    if (init.config !== undefined) await run.setConfig(init.config);
    return run;
  }
}

class LocalRun implements TrackerRun {
  readonly url: string;
  /** Appends are chained so one run's records land in call order even when calls are not awaited. */
  private writes: Promise<void> = Promise.resolve();
  private finished = false;
  private readonly warned = new Set<string>();

  constructor(
    readonly runId: string,
    private readonly file: string,
    private readonly steps: StepSequencer,
    private readonly logger: TrackerLogger,
  ) {
    this.url = pathToFileURL(file).href;
  }

  async setConfig(config: Record<string, unknown>): Promise<void> {
    checkConfig(config);
    return this.append({ type: 'config', config });
  }

  async log(metrics: Record<string, Scalar>, step?: number): Promise<void> {
    checkMetrics('metrics', metrics);
    checkStep(step);
    if (this.refuseAfterFinish()) return this.writes;
    const assigned = this.steps.next(step);
    if (assigned === undefined) {
      this.warnOnce('step', `tracker run ${this.runId}: dropped a row logged at step ${step}, below the last step ${this.steps.lastStep} (steps must not decrease)`);
      return this.writes;
    }
    return this.append({ type: 'log', step: assigned, metrics });
  }

  async logTable(name: string, columns: string[], rows: Scalar[][]): Promise<void> {
    checkTable(name, columns, rows);
    return this.append({ type: 'table', name, columns, rows });
  }

  async setSummary(summary: Record<string, Scalar>): Promise<void> {
    checkMetrics('summary', summary);
    return this.append({ type: 'summary', summary });
  }

  flush(): Promise<void> {
    return this.writes;
  }

  finish(exitCode = 0): Promise<void> {
    if (this.finished) return this.writes;
    const done = this.append({ type: 'finish', exitCode });
    this.finished = true;
    return done;
  }

  private refuseAfterFinish(): boolean {
    if (this.finished) this.warnOnce('finished', `tracker run ${this.runId} is finished; open it again to record more`);
    return this.finished;
  }

  private append(body: RecordBody): Promise<void> {
    if (this.refuseAfterFinish()) return this.writes;
    this.writes = this.writes
      .then(() => appendRecord(this.file, body))
      .catch((err: unknown) => {
        this.warnOnce('write', `local tracker could not write to ${this.file}; tracking data is being lost`, { error: errorMessage(err) });
      });
    return this.writes;
  }

  private warnOnce(key: string, message: string, meta?: Record<string, unknown>): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.logger.warn(message, meta);
  }
}

/** JSON cannot hold NaN or ±Infinity (JSON.stringify would write null); keep them as strings. */
function encodeNonFinite(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value;
}

/** One record, one line, one `write(2)` on a file opened with O_APPEND. */
async function appendRecord(file: string, body: RecordBody): Promise<void> {
  const line = JSON.stringify({ ...body, ts: new Date().toISOString() }, encodeNonFinite) + '\n';
  await appendFile(file, line, { flag: 'a' });
}

async function readLocalRunIfExists(file: string): Promise<LocalRunData | undefined> {
  try {
    return await readLocalRun(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Fold a run's JSONL file into its current state. Rejects (ENOENT) when the file is absent. */
export async function readLocalRun(file: string): Promise<LocalRunData> {
  const text = await readFile(file, 'utf8');
  const run: LocalRunData = {
    runId: path.basename(file, '.jsonl'),
    project: path.basename(path.dirname(file)),
    tags: [],
    config: {},
    history: [],
    summary: {},
    tables: [],
    finished: false,
    opens: 0,
    skippedLines: 0,
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const record = parseRecord(line);
    if (record === undefined) {
      run.skippedLines += 1;
      continue;
    }
    applyRecord(run, record);
  }
  return run;
}

function parseRecord(line: string): LocalTrackerRecord | undefined {
  try {
    const value: unknown = JSON.parse(line);
    if (value !== null && typeof value === 'object' && typeof (value as { type?: unknown }).type === 'string') {
      return value as LocalTrackerRecord;
    }
  } catch {
    // A torn or foreign line: counted by the caller.
  }
  return undefined;
}

function applyRecord(run: LocalRunData, record: LocalTrackerRecord): void {
  switch (record.type) {
    case 'init':
      run.runId = record.runId;
      run.project = record.project;
      if (record.name !== undefined) run.name = record.name;
      if (record.group !== undefined) run.group = record.group;
      if (record.jobType !== undefined) run.jobType = record.jobType;
      for (const tag of record.tags ?? []) if (!run.tags.includes(tag)) run.tags.push(tag);
      run.opens += 1;
      run.finished = false;
      delete run.exitCode;
      break;
    case 'config':
      Object.assign(run.config, record.config);
      break;
    case 'log':
      run.history.push({ step: record.step, ts: record.ts, metrics: record.metrics });
      Object.assign(run.summary, record.metrics);
      break;
    case 'table':
      run.tables.push({ name: record.name, ts: record.ts, columns: record.columns, rows: record.rows });
      break;
    case 'summary':
      Object.assign(run.summary, record.summary);
      break;
    case 'finish':
      run.finished = true;
      run.exitCode = record.exitCode;
      break;
    default:
      run.skippedLines += 1;
  }
}
