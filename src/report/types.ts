import type { CanaryMetricResult, CanaryVerdict } from '../contracts/canary-analysis';
import type { MetricEstimate } from '../contracts/release-gates';

/**
 * Everything a release report shows, gathered by `collectReleaseReport` (collect.ts) from the
 * release's workflow history, its drift monitor's history and its tracker run, and turned into
 * HTML by `renderReleaseReport` (render.ts, pure). Plain JSON, so a test can write one by hand.
 */
export interface ReleaseReportData {
  releaseId: string;
  model: string;
  /** The Temporal run of the release workflow. */
  runId: string;
  /** Temporal's execution status (`COMPLETED`, `FAILED`, `RUNNING`, ...). */
  executionStatus: string;
  /** The release's outcome when it ended (`Candidate`, `Promoted`, `Rejected`, ...). */
  outcome?: string;
  /** Why it did not end well: the failure message of the closing event. */
  failure?: string;
  startedAt: string;
  closedAt?: string;
  gitSha?: string;
  /** When the report was made (ISO). */
  generatedAt: string;
  training: {
    /** Loss per step, from the tracker run's history (`train/loss`). */
    loss: Array<{ step: number; loss: number }>;
    totalSteps?: number;
    finalLoss?: number;
    /** Where the loss curve came from, or why there is none. */
    source: string;
  };
  evaluation?: {
    /** What the candidate was compared with (spec.evaluation.compareTo: `production`, `base`, ...). */
    comparator: string;
    metrics: Array<{ name: string } & MetricEstimate>;
    gates: Array<{ gate: string; passed: boolean; reason: string }>;
  };
  quantization?: { method: string; bits?: number; sizeBeforeBytes: number; sizeAfterBytes: number; seconds?: number };
  canary?: {
    alias?: string;
    stable: string;
    candidate: string;
    steps: Array<{ step: number; weight: number; bake: number; verdict: CanaryVerdict; summary: string; at: string; metrics: CanaryMetricResult[] }>;
  };
  drift?: {
    monitorWorkflowId: string;
    checks: Array<{ at: string; score?: number; threshold?: number; method?: string; errorRate: number; samples: number; breaches: string[]; inconclusive: boolean }>;
  };
  /** The decision trail, in history order. */
  trail: TrailEntry[];
}

export interface TrailEntry {
  at: string;
  kind: 'started' | 'update' | 'signal' | 'gates' | 'canary-analysis' | 'closed';
  /** One line: what happened. */
  title: string;
  /** Who: an Update's or Signal's `by`, else the client identity that sent it. */
  by?: string;
  reason?: string;
  /** Decided the release's course (a gate failure, an approval, a failed analysis, ...). */
  decisive?: boolean;
  /** For Updates: accepted, then completed or failed; a validator's refusal never enters history. */
  result?: string;
}
