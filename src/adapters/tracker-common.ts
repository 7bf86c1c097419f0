/**
 * Rules shared by the Tracker adapters, so that a pipeline behaves the same against the local
 * JSONL tracker and against W&B: which names are valid, how steps are numbered, which arguments
 * are programming errors (thrown) and which faults are the backend's (warned about, never thrown).
 */
import { ErrorType } from '../contracts/errors';
import { ForgelineError } from '../ports/errors';
import type { Scalar, TrackerRunInit } from '../ports/tracker';

/** Where adapters report degraded tracking. Temporal's `Logger` and `console` both fit. */
export interface TrackerLogger {
  warn(message: string, meta?: Record<string, unknown>): void;
  info?(message: string, meta?: Record<string, unknown>): void;
}

export const consoleTrackerLogger: TrackerLogger = {
  warn: (message, meta) => console.warn(message, ...(meta ? [meta] : [])),
  info: (message, meta) => console.info(message, ...(meta ? [meta] : [])),
};

/**
 * Run ids and project names become a file name locally and a URL path segment on W&B, so both
 * are limited to characters that are safe in either place.
 */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A call the caller got wrong. Terminal: retrying the activity cannot fix it. */
export function invalidTrackerArgument(message: string): ForgelineError {
  return new ForgelineError(ErrorType.InvalidSpec, `tracker: ${message}`, true);
}

export function checkName(what: string, value: string): void {
  if (typeof value !== 'string' || !NAME_PATTERN.test(value)) {
    throw invalidTrackerArgument(
      `${what} ${JSON.stringify(value)} is invalid: use letters, digits, '.', '_' and '-' ` +
        '(starting with a letter or digit, at most 128 characters)',
    );
  }
}

export function checkRunInit(init: TrackerRunInit): void {
  checkName('runId', init.runId);
  checkName('project', init.project);
  if (init.tags !== undefined && (!Array.isArray(init.tags) || init.tags.some((t) => typeof t !== 'string' || t === ''))) {
    throw invalidTrackerArgument('tags must be non-empty strings');
  }
  if (init.config !== undefined) checkConfig(init.config);
}

/** Config must survive a JSON round trip: it is stored as JSON by both backends. */
export function checkConfig(config: Record<string, unknown>): void {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw invalidTrackerArgument('config must be a plain object');
  }
  try {
    JSON.stringify(config);
  } catch (err) {
    throw invalidTrackerArgument(`config is not JSON-serializable: ${(err as Error).message}`);
  }
}

function isScalar(value: unknown): value is Scalar {
  return value === null || typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean';
}

/**
 * Metric keys starting with '_' are reserved: W&B adds `_step`, `_runtime` and `_timestamp` to
 * every history row and would silently overwrite a user's key of the same name.
 */
export function checkMetrics(what: string, metrics: Record<string, Scalar>): void {
  if (metrics === null || typeof metrics !== 'object' || Array.isArray(metrics)) {
    throw invalidTrackerArgument(`${what} must be a plain object of scalars`);
  }
  for (const [key, value] of Object.entries(metrics)) {
    if (key === '' || key.startsWith('_')) {
      throw invalidTrackerArgument(`${what} key ${JSON.stringify(key)} is invalid: keys must be non-empty and not start with '_'`);
    }
    if (!isScalar(value)) {
      throw invalidTrackerArgument(`${what}.${key} must be a number, string, boolean or null`);
    }
  }
}

export function checkStep(step: number | undefined): void {
  if (step !== undefined && !(Number.isSafeInteger(step) && step >= 0)) {
    throw invalidTrackerArgument(`step must be a non-negative integer, got ${String(step)}`);
  }
}

export function checkTable(name: string, columns: string[], rows: Scalar[][]): void {
  if (typeof name !== 'string' || name === '' || name.startsWith('_')) {
    throw invalidTrackerArgument(`table name ${JSON.stringify(name)} is invalid: it must be non-empty and not start with '_'`);
  }
  if (!Array.isArray(columns) || columns.length === 0 || columns.some((c) => typeof c !== 'string' || c === '')) {
    throw invalidTrackerArgument(`table ${name}: columns must be a non-empty list of non-empty strings`);
  }
  if (new Set(columns).size !== columns.length) {
    throw invalidTrackerArgument(`table ${name}: column names must be unique`);
  }
  if (!Array.isArray(rows)) throw invalidTrackerArgument(`table ${name}: rows must be a list`);
  rows.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== columns.length) {
      throw invalidTrackerArgument(`table ${name}: row ${i} has ${Array.isArray(row) ? row.length : 'no'} cells, expected ${columns.length}`);
    }
    if (!row.every(isScalar)) throw invalidTrackerArgument(`table ${name}: row ${i} holds a value that is not a scalar`);
  });
}

/**
 * Step numbering, the same for every adapter and the same as W&B's: a row without a step goes one
 * past the previous row; a row with a step lower than the previous one is refused (W&B drops such
 * rows, so the local tracker does too rather than record what W&B would not show). Equal steps are
 * allowed.
 */
export class StepSequencer {
  constructor(private last?: number) {}

  get lastStep(): number | undefined {
    return this.last;
  }

  /** The step for the next row, or undefined when the row must be dropped. */
  next(requested?: number): number | undefined {
    if (requested === undefined) {
      this.last = this.last === undefined ? 0 : this.last + 1;
      return this.last;
    }
    if (this.last !== undefined && requested < this.last) return undefined;
    this.last = requested;
    return requested;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
