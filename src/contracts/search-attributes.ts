import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * Custom search attributes on every Forgeline lifecycle, so operators can filter in the Temporal
 * UI (`ForgelineModel = "demo" AND ForgelineStage = "evaluate"`). Registered by `forgeline dev`
 * and `forgeline setup` on the namespace; the names live in histories: never rename one.
 */
export const ForgelineModel = defineSearchAttributeKey('ForgelineModel', SearchAttributeType.KEYWORD);
export const ForgelineStage = defineSearchAttributeKey('ForgelineStage', SearchAttributeType.KEYWORD);
export const ForgelineGitSha = defineSearchAttributeKey('ForgelineGitSha', SearchAttributeType.KEYWORD);
export const ForgelineOutcome = defineSearchAttributeKey('ForgelineOutcome', SearchAttributeType.KEYWORD);
/** Which lifecycle a workflow is (`release`, `stack-check`), so a stack check never poses as a model. */
export const ForgelineLifecycle = defineSearchAttributeKey('ForgelineLifecycle', SearchAttributeType.KEYWORD);
/** True while a release waits for an operator's approve/reject Update. */
export const ForgelineAwaitingApproval = defineSearchAttributeKey('ForgelineAwaitingApproval', SearchAttributeType.BOOL);
/** Who approved (or rejected, or aborted) the release. */
export const ForgelineDecidedBy = defineSearchAttributeKey('ForgelineDecidedBy', SearchAttributeType.KEYWORD);
/** The team a lifecycle runs for (its spec's `team`): whose GPU quota its GPU stages use. */
export const ForgelineTeam = defineSearchAttributeKey('ForgelineTeam', SearchAttributeType.KEYWORD);

export const FORGELINE_SEARCH_ATTRIBUTES = [
  ForgelineModel,
  ForgelineStage,
  ForgelineGitSha,
  ForgelineOutcome,
  ForgelineLifecycle,
  ForgelineAwaitingApproval,
  ForgelineDecidedBy,
  ForgelineTeam,
] as const;

/** Values of ForgelineLifecycle. */
export const Lifecycle = {
  Release: 'release',
  StackCheck: 'stack-check',
  /** A finished release rolled back (`forgeline release rollback`, the drift monitor). */
  Rollback: 'rollback',
  /** The drift monitor of a promoted release. */
  DriftMonitor: 'drift-monitor',
  /** A corpus re-embedded into a new vector index version (reembedCorpusWorkflow). */
  Reembed: 'reembed',
  /** A scheduled check of a vector index's embedding drift (embeddingDriftWorkflow). */
  EmbeddingDrift: 'embedding-drift',
  /** A Schedule's retraining: resolves the newest dataset snapshot, starts a release on it (scheduledRetrainWorkflow). */
  ScheduledRetrain: 'scheduled-retrain',
  /** A prompt version's release: evaluation, approval, canary through the gateway (promptReleaseWorkflow). */
  PromptRelease: 'prompt-release',
} as const;
export type Lifecycle = (typeof Lifecycle)[keyof typeof Lifecycle];

/** Values of ForgelineOutcome. */
export const Outcome = {
  Running: 'Running',
  Succeeded: 'Succeeded',
  Rejected: 'Rejected',
  Failed: 'Failed',
  Aborted: 'Aborted',
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];
