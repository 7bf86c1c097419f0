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

export const FORGELINE_SEARCH_ATTRIBUTES = [ForgelineModel, ForgelineStage, ForgelineGitSha, ForgelineOutcome] as const;

/** Values of ForgelineOutcome. */
export const Outcome = {
  Running: 'Running',
  Succeeded: 'Succeeded',
  Rejected: 'Rejected',
  Failed: 'Failed',
  Aborted: 'Aborted',
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];
