/**
 * The stack check: the smallest real end-to-end lifecycle. A workflow on the control queue sends
 * one activity to a GPU pool's queue, which writes an artifact and logs metrics. Operators run it
 * to prove that server, workers, artifact store and tracker are wired (`forgeline check`).
 */
export const STACK_CHECK_WORKFLOW_ID_PREFIX = 'stack-check/';

export interface StackCheckSpec {
  /** GPU pool whose worker must answer, e.g. `cpu`. */
  pool: string;
  /** Bytes of deterministic payload the probe writes and reads back (default 1 MiB). */
  payloadBytes?: number;
  /** Free text recorded with the probe, e.g. who ran it and why. */
  note?: string;
  /** How long to wait for a worker of the pool to run the probe: `30s`, `10m` (default `10m`). */
  timeout?: string;
}

export const DEFAULT_STACK_CHECK_TIMEOUT = '10m';

export interface StackProbeInput {
  checkId: string;
  pool: string;
  payloadBytes: number;
  note?: string;
}

export interface StackProbeResult {
  /** Worker that ran the probe (Temporal identity). */
  workerIdentity: string;
  pool: string;
  /** Content-addressed payload written and read back. */
  payloadUri: string;
  payloadSha256: string;
  /** Published report (manifest-last directory) describing the probe. */
  reportUri: string;
  trackerRunUrl: string;
  metrics: { writeMs: number; readMs: number; payloadBytes: number; throughputMiBps: number };
}

export interface StackCheckResult {
  checkId: string;
  probe: StackProbeResult;
  /** Milliseconds from workflow start to probe completion, measured in workflow time. */
  elapsedMs: number;
}
