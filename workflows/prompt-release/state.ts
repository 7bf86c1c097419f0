import { setCurrentDetails, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import { PromptReleaseOutcome, type PromptReleaseStatus } from '../../src/contracts/prompt-release';
import {
  ForgelineAwaitingApproval,
  ForgelineDecidedBy,
  ForgelineGitSha,
  ForgelineLifecycle,
  ForgelineModel,
  ForgelineOutcome,
  ForgelineStage,
  Lifecycle,
} from '../../src/contracts/search-attributes';

/**
 * A prompt release's state as operators see it: the `status` query, the search attributes (the
 * prompt's name in ForgelineModel, ForgelineLifecycle `prompt-release`) and the Markdown "Current
 * Details" in the Temporal UI, kept in step by every change.
 */
export class PromptReleaseState {
  readonly status: PromptReleaseStatus;

  constructor(readonly releaseId: string, prompt: string | undefined, stage: PromptReleaseStatus['stage']) {
    this.status = { kind: 'prompt-release', prompt: prompt ?? 'unknown', stage, outcome: PromptReleaseOutcome.Running, awaitingApproval: false, versions: {} };
    upsertSearchAttributes([
      { key: ForgelineLifecycle, value: Lifecycle.PromptRelease },
      { key: ForgelineStage, value: stage },
      { key: ForgelineOutcome, value: this.status.outcome },
      ...(prompt ? [{ key: ForgelineModel, value: prompt.slice(0, 128) }] : []),
    ]);
    this.publish();
  }

  setPrompt(prompt: string, git?: { repo: string; ref?: string; sha: string }): void {
    this.status.prompt = prompt;
    if (git) this.status.git = git;
    upsertSearchAttributes([{ key: ForgelineModel, value: prompt.slice(0, 128) }, ...(git ? [{ key: ForgelineGitSha, value: git.sha }] : [])]);
    this.publish();
  }

  setStage(stage: PromptReleaseStatus['stage']): void {
    this.status.stage = stage;
    upsertSearchAttributes([{ key: ForgelineStage, value: stage }]);
    this.publish();
  }

  setAwaitingApproval(awaiting: boolean, deadline?: string): void {
    this.status.awaitingApproval = awaiting;
    if (deadline) this.status.approvalDeadline = deadline;
    else delete this.status.approvalDeadline;
    upsertSearchAttributes([{ key: ForgelineAwaitingApproval, value: awaiting }, ...(!awaiting && this.status.decision ? [{ key: ForgelineDecidedBy, value: this.status.decision.by }] : [])]);
    this.publish();
  }

  /** The outcome in the search attributes and the memo (with who decided and the failure headline). */
  setOutcome(outcome: PromptReleaseStatus['outcome'], failure?: string): void {
    const { status } = this;
    status.outcome = outcome;
    if (failure) status.failure = failure;
    upsertSearchAttributes([{ key: ForgelineOutcome, value: outcome }, { key: ForgelineStage, value: status.stage }]);
    upsertMemo({ outcome, versions: status.versions, ...(status.decision ? { decision: status.decision } : {}), ...(failure ? { failure } : {}) });
    this.publish();
  }

  /** Re-render "Current Details" (no command: the UI reads it through the SDK's metadata query). */
  publish(): void {
    setCurrentDetails(renderPromptReleaseDetails(this.status, this.releaseId));
  }
}

/** The Markdown of "Current Details": what an operator needs at a glance. */
export function renderPromptReleaseDetails(s: PromptReleaseStatus, releaseId: string): string {
  const lines = [`### Prompt release ${s.prompt}`, '', `**${s.outcome}** · stage \`${s.stage}\` · \`${releaseId}\``];
  const v = s.versions;
  if (v.candidate || v.production) lines.push('', `candidate \`${v.candidate ?? '—'}\` · production before \`${v.production ?? 'none (first release)'}\``);
  if (s.git) lines.push(`git ${s.git.repo}@${s.git.sha.slice(0, 12)}`);
  if (s.evaluation) {
    lines.push('', `**Evaluation** ${s.evaluation.passed ? 'passed' : 'failed'} (${s.evaluation.cases} case(s) × ${s.evaluation.runs} run(s))`);
    for (const g of s.evaluation.gates) lines.push(`- ${g.passed ? '✅' : '❌'} ${g.gate}: ${g.reason}`);
  }
  if (s.awaitingApproval) lines.push('', `**Awaiting approval** until ${s.approvalDeadline ?? '?'}: \`forgeline release approve ${releaseId} --by you --reason ...\``);
  if (s.decision) lines.push('', `${s.decision.kind} by ${s.decision.by} at ${s.decision.at}: ${s.decision.reason}`);
  if (s.canary) {
    const c = s.canary;
    lines.push('', `**Canary** step ${c.step}/${c.steps.length}${c.paused ? ` (paused: ${c.pausedReason ?? ''})` : ''} · weights ${Object.entries(c.weights).map(([k, w]) => `${k} ${w}%`).join(', ') || '—'}`);
    for (const a of c.analyses.slice(-5)) lines.push(`- step ${a.step} (${a.weight}%) bake ${a.bake}: ${a.verdict}: ${a.summary}`);
  }
  if (s.children) for (const c of s.children) lines.push(`- ${c.prompt}: **${c.outcome}** \`${c.workflowId}\`${c.failure ? `: ${c.failure}` : ''}`);
  if (s.failure) lines.push('', `Failure: ${s.failure}`);
  return lines.join('\n');
}
