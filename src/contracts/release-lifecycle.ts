/**
 * What operators and other workflows see of a release: stages, status, decisions and result.
 * Names here live in histories and in the Temporal UI: never rename one.
 */
import type { GpuLeaseView } from './gpu-admission';

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
  /** Load the candidate's adapter on the serving backend. */
  Deploy: 'deploy',
  /** Traffic moves to the candidate in steps, each analyzed against stable. */
  Canary: 'canary',
  /** `production` moves to the candidate; the old version stays loaded for `keepPrevious`. */
  Production: 'production',
  /** Traffic, adapters and aliases restored to what served before this release. */
  Rollback: 'rollback',
  Done: 'done',
} as const;
export type ReleaseStage = (typeof ReleaseStage)[keyof typeof ReleaseStage];

export const ReleaseOutcome = {
  Running: 'Running',
  /** Trained, quantized, evaluated, gates passed, approved (or no approval needed): a candidate. */
  Candidate: 'Candidate',
  /** Canary passed (or an operator promoted it): `production` points at this release. */
  Promoted: 'Promoted',
  /** The canary failed or an operator rolled it back: traffic, adapters and aliases restored. */
  RolledBack: 'RolledBack',
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

/** A version as the gateway routes it: its label, the served model name, the upstream serving it. */
export interface ServedVersion {
  /** Route label, e.g. `tiny-demo@3f2a1c9d8e7b` (metrics are kept under it). */
  label: string;
  /** The name the upstream serves it under (an adapter name, or the base model). */
  servedModel: string;
  upstream: string;
  /** For an adapter: its registry version, so a rollback can load it again. */
  adapter?: { model: string; version: string };
  /**
   * For a quantized model served on a server of its own (spec.serving.candidate `quantized`): its
   * registry version, so a rollback can launch it again; `upstream` is then that server's own
   * gateway upstream, and `servedModel` both its served name and its launch id.
   */
  quantized?: { model: string; version: string };
}

/**
 * What a serving release changed and how to undo it: the alias's route before the release, the
 * version that served (stable) and the candidate. The rollback saga restores from it, inside the
 * release or later (`forgeline release rollback`, the drift monitor).
 */
export interface ServingPlan {
  releaseId: string;
  model: string;
  alias: string;
  baseModel: string;
  /** The alias's targets before this release (undefined: it had no route; stable is then the base model). */
  before?: Array<{ version: string; upstream: string; model: string; weight: number }>;
  stable: ServedVersion;
  candidate: ServedVersion;
  /** Registry versions of this release (production is moved back only while it points at them). */
  versions: Record<string, string>;
}

/** The route label of the base model served without an adapter. */
export function baseLabel(alias: string): string {
  return `${alias}@base`;
}

/** The version a route label names, when it is an adapter label `<model>@<12 hex>`. */
export function adapterOfLabel(label: string): { model: string; version: string } | undefined {
  const m = /^([a-z0-9][a-z0-9-]{0,62})@([0-9a-f]{12})$/.exec(label);
  return m ? { model: m[1]!, version: m[2]! } : undefined;
}

/** The route label of a quantized model version served on its own server: `<model>@<12 hex>-quantized`. */
export function quantizedLabel(model: string, version: string): string {
  return `${model}@${version}-quantized`;
}

/** The served name, launch id and gateway upstream of a quantized version (one server per version). */
export function quantizedServedName(model: string, version: string): string {
  return `${model}-${version}-quantized`;
}

/** The version a route label names, when it is a quantized label (see `quantizedLabel`). */
export function quantizedOfLabel(label: string): { model: string; version: string } | undefined {
  const m = /^([a-z0-9][a-z0-9-]{0,62})@([0-9a-f]{12})-quantized$/.exec(label);
  return m ? { model: m[1]!, version: m[2]! } : undefined;
}

/** An operator's action on a running canary, as the release records it. */
export type CanaryAction = OperatorDecision & { kind: 'paused' | 'resumed' | 'promotedNow' | 'rolledBack'; at: string };

/** One step's analysis as the release records it (the figures are in the history too). */
export interface CanaryStepAnalysis {
  step: number;
  weight: number;
  verdict: 'Pass' | 'Fail' | 'Inconclusive';
  summary: string;
  /** Window analyzed, ISO 8601. */
  from: string;
  to: string;
  /** Which bake of this step (1 = first; more after Inconclusive extensions). */
  bake: number;
}

/** The canary part of `status`. */
export interface CanaryStatus {
  alias: string;
  /** Version labels routed: stable (what served before) and this release's candidate. */
  stable?: string;
  candidate: string;
  /** 1-based index into the plan; 0 before the first step. */
  step: number;
  steps: number[];
  /** Current traffic weights by version label. */
  weights: Record<string, number>;
  paused: boolean;
  /** Why it paused (operator, or inconclusive analyses). */
  pausedReason?: string;
  lastAnalysis?: CanaryStepAnalysis;
  analyses: CanaryStepAnalysis[];
  actions: CanaryAction[];
  /** Child workflow watching drift after promotion. */
  monitorWorkflowId?: string;
}

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
  /** Once the release serves traffic (spec.serving). */
  canary?: CanaryStatus;
  /** With a GPU quota file: the lease the running GPU stage holds or waits for. */
  gpuLease?: GpuLeaseView;
  /** Times a GPU stage was preempted (checkpointed, gave its GPUs back, queued again); not retries. With a quota file only. */
  preemptions?: number;
}
