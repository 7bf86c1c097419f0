/**
 * What operators and other workflows see of a release: stages, status, decisions and result.
 * Names here live in histories and in the Temporal UI: never rename one.
 */
export const RELEASE_WORKFLOW_ID_PREFIX = 'release/';

/** `release/<model>/<git sha or generated id>`: starting the same release twice yields one execution. */
export function releaseWorkflowId(model: string, shaOrId: string): string {
  return `${RELEASE_WORKFLOW_ID_PREFIX}${model}/${shaOrId}`;
}

/** Tracker run IDs (and store prefixes) allow [A-Za-z0-9_-]; workflow IDs carry slashes. */
export function trackerRunId(workflowId: string): string {
  return workflowId.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 120);
}

export const ReleaseStage = {
  Validate: 'validate',
  Train: 'train',
  Quantize: 'quantize',
  Evaluate: 'evaluate',
  Register: 'register',
  Approval: 'approval',
  Done: 'done',
} as const;
export type ReleaseStage = (typeof ReleaseStage)[keyof typeof ReleaseStage];

export const ReleaseOutcome = {
  Running: 'Running',
  /** Trained, quantized, evaluated, gates passed, approved (or no approval needed): a candidate. */
  Candidate: 'Candidate',
  Rejected: 'Rejected',
  Aborted: 'Aborted',
  Failed: 'Failed',
} as const;
export type ReleaseOutcome = (typeof ReleaseOutcome)[keyof typeof ReleaseOutcome];

/** Why a release was rejected. */
export const RejectReason = {
  GateFailed: 'GateFailed',
  OperatorRejected: 'OperatorRejected',
  ApprovalTimeout: 'ApprovalTimeout',
} as const;
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason];

export interface OperatorDecision {
  /** Who decided, e.g. an email or a CI identity. */
  by: string;
  reason: string;
}

/** A decision as the release records it: what, who, why, and when (workflow time, ISO 8601). */
export type RecordedDecision = OperatorDecision & { kind: 'approved' | 'rejected' | 'aborted'; at: string };

/** What the GPU stage activities put in their heartbeats: live progress for operators and the next attempt. */
export interface StageHeartbeat {
  stage?: string;
  step?: number;
  totalSteps?: number;
  loss?: number;
  /** Newest checkpoint published to the ArtifactStore; a retry resumes from it. */
  checkpoint?: { step: number; prefix: string };
  message?: string;
}

export interface TrainingProgress {
  step: number;
  totalSteps: number;
  loss?: number;
  /** Latest checkpoint published to the ArtifactStore. */
  checkpointStep?: number;
}

/** The small typed view returned by `statusQuery`. */
export interface ReleaseStatus {
  model: string;
  stage: ReleaseStage;
  outcome: ReleaseOutcome;
  training?: TrainingProgress;
  gates?: Array<{ gate: string; passed: boolean; reason: string }>;
  awaitingApproval: boolean;
  decision?: RecordedDecision;
  rejectReason?: RejectReason;
  /** While awaiting approval: when the release is rejected if nobody decides (ISO 8601). */
  approvalDeadline?: string;
  /** The failure headline once the release ended Rejected, Failed or Aborted. */
  failure?: string;
  trackerRunUrl?: string;
  /** Registry versions this release made, by artifact kind. */
  versions: Record<string, string>;
  /** Where each registered version's files are (artifact store URIs), by artifact kind. */
  versionUris?: Record<string, string>;
}
