import type { ServingPlan } from './release-lifecycle';
import type { MonitorSpec, ReleaseSpec } from './release-spec';

/**
 * The drift monitor: a child of a promoted release that watches the production version's traffic
 * (input drift of prompt embeddings against the release's reference, output proxies, errors) and
 * acts on a breach by the spec's policy: roll back, retrain, or alert.
 */
export interface DriftMonitorInput {
  plan: ServingPlan;
  monitor: MonitorSpec;
  /** The release's spec: a retraining release starts from it with the new dataset. */
  releaseSpec: ReleaseSpec;
  /** When monitoring began (ISO 8601, workflow time; default: the first run's start); it stops after `monitor.duration`. */
  startedAt?: string;
  /** Carried across continue-as-new. */
  checksDone?: number;
  breaches?: number;
  lastCheck?: DriftCheck;
  lastAction?: DriftMonitorStatus['lastAction'];
}

/** One check's figures, as the monitor records them. */
export interface DriftCheck {
  at: string;
  /** Prompts sampled from the window. */
  samples: number;
  /** Too few samples: nothing was decided. */
  inconclusive: boolean;
  input?: { method: string; drifted: boolean; score: number; threshold: number };
  errorRate: number;
  emptyRate: number;
  meanFeedback?: number;
  meanCompletionChars: number;
  /** What crossed its threshold; empty: healthy. */
  breaches: string[];
}

export interface DriftMonitorStatus {
  alias: string;
  version: string;
  checks: number;
  lastCheck?: DriftCheck;
  /** The last breach and what was done about it. */
  lastAction?: { at: string; action: 'rollback' | 'retrain' | 'alert'; breaches: string[]; workflowId?: string };
  stopped?: string;
}

export function driftMonitorWorkflowId(alias: string, releaseId: string): string {
  return `drift/${alias}/${releaseId.replace(/^release\//, '')}`;
}

/** The standalone rollback of a finished release (CLI, drift monitor): one per release. */
export function rollbackWorkflowId(releaseId: string): string {
  return `rollback/${releaseId.replace(/^release\//, '')}`;
}

/** The input of the `checkProductionDrift` activity. */
export interface DriftCheckInput {
  plan: ServingPlan;
  monitor: MonitorSpec;
  /** The reference the traffic is compared with: the prompts of the release's training data. */
  reference: { dataset: { uri: string; sha256: string } };
  /** The traffic window, ms since epoch, [from, to). */
  from: number;
  to: number;
  /** Workflow time of the check (ISO 8601), recorded as DriftCheck.at. */
  at: string;
}
