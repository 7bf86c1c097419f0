/**
 * What operators and other workflows see of a release: stages, status, decisions and result.
 * Names here live in histories and in the Temporal UI: never rename one.
 */
export const RELEASE_WORKFLOW_ID_PREFIX = 'release/';

/** `release/<model>/<git sha or generated id>`: starting the same release twice yields one execution. */
export function releaseWorkflowId(model: string, shaOrId: string): string {
  return `${RELEASE_WORKFLOW_ID_PREFIX}${model}/${shaOrId}`;
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
  decision?: OperatorDecision & { kind: 'approved' | 'rejected' | 'aborted' };
  rejectReason?: RejectReason;
  trackerRunUrl?: string;
  /** Registry versions this release made, by artifact kind. */
  versions: Record<string, string>;
}
