/**
 * Experiment tracking: one run per lifecycle (a release, a re-embedding), possibly written by
 * several activities on several workers. Runs are opened by a caller-chosen id so that a retried
 * or later activity appends to the same run (W&B `resume`, or the same JSONL file locally).
 *
 * Tracking must never fail a pipeline: adapters retry, buffer and warn, but `log` never throws
 * because the tracking backend is down.
 */
export type Scalar = number | string | boolean | null;

export interface TrackerRunInit {
  /** Stable id chosen by the caller (e.g. derived from the workflow ID); same id = same run. */
  runId: string;
  project: string;
  /** Groups runs, e.g. by model alias. */
  group?: string;
  /** Human name, e.g. `release demo-7b@3f2a1c`. */
  name?: string;
  jobType?: string;
  tags?: string[];
  config?: Record<string, unknown>;
}

export interface TrackerRun {
  readonly runId: string;
  /** A link a person can open: `https://wandb.ai/<entity>/<project>/runs/<id>` or a file path. */
  readonly url: string;
  /** Merge keys into the run's config. */
  setConfig(config: Record<string, unknown>): Promise<void>;
  /** Log one row of metrics. `step` must be monotonic within a run when given. */
  log(metrics: Record<string, Scalar>, step?: number): Promise<void>;
  /** A table (e.g. eval results): column names and rows. */
  logTable(name: string, columns: string[], rows: Scalar[][]): Promise<void>;
  /** Merge keys into the run summary (final metrics). */
  setSummary(summary: Record<string, Scalar>): Promise<void>;
  /** Flush buffered data. Safe to call more than once. */
  flush(): Promise<void>;
  /** Flush and mark the run finished with an exit code (0 = success). */
  finish(exitCode?: number): Promise<void>;
}

export interface Tracker {
  readonly kind: 'local' | 'wandb';
  /** Open (create or resume) the run with `init.runId`. */
  openRun(init: TrackerRunInit): Promise<TrackerRun>;
}
