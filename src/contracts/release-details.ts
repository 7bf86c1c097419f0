import { ReleaseOutcome, ReleaseStage, type ReleaseStatus } from './release-lifecycle';

/**
 * The Markdown an operator sees as a release's "Current Details" in the Temporal UI: where it is,
 * what it waits for and until when, how to decide, the gate results, the outcome and who
 * decided. Pure, so the workflow can render it at every step and tests can read it.
 */
export function renderReleaseDetails(s: ReleaseStatus, releaseId: string): string {
  const out: string[] = [`## ${s.model}: ${headline(s)}`, '', `**Stage** \`${s.stage}\` · **Outcome** \`${s.outcome}\` · **Release** \`${releaseId}\``, ''];

  if (s.outcome === ReleaseOutcome.Running) out.push(...runningNote(s, releaseId), '');
  if (s.failure) out.push(`**Why:** ${s.failure}`, '');
  if (s.decision) out.push(`**Decision:** ${s.decision.kind} by ${s.decision.by} at ${s.decision.at}: "${s.decision.reason}"`, '');

  if (s.canary) out.push(...canarySection(s.canary, releaseId, s.outcome === ReleaseOutcome.Running), '');
  if (s.training) {
    const t = s.training;
    out.push(`**Training:** ${t.step}/${t.totalSteps} steps${t.loss !== undefined ? `, final loss ${round(t.loss)}` : ''}`, '');
  }
  if (s.gpuLease || s.preemptions) out.push(`**GPUs:** ${gpuLine(s)}`, '');
  if (s.gates?.length) {
    out.push('### Gates', '', '| gate | passed | result |', '|---|---|---|');
    for (const g of s.gates) out.push(`| \`${g.gate}\` | ${g.passed ? 'yes' : '**no**'} | ${g.reason} |`);
    out.push('');
  }
  const versions = Object.entries(s.versions);
  if (versions.length) {
    out.push('### Registry versions', '');
    for (const [kind, v] of versions) {
      const uri = s.versionUris?.[kind];
      out.push(`- ${kind}: ${uri ? `[\`${v}\`](${uri})` : `\`${v}\``}`);
    }
    out.push('');
  }
  if (s.trackerRunUrl) out.push(`Tracker run: [${s.trackerRunUrl}](${s.trackerRunUrl})`, '');
  return out.join('\n').trimEnd() + '\n';
}

/** The GPU lease (quota file only) and the preemptions: `waiting for 1 GPU (lease …); preempted once, resumed from its checkpoint`. */
function gpuLine(s: ReleaseStatus): string {
  const parts: string[] = [];
  const l = s.gpuLease;
  if (l) {
    const doing = l.state === 'waiting' ? 'waiting for' : l.state === 'yielding' ? 'giving back' : 'holding';
    parts.push(`${doing} ${l.gpus} GPU${l.gpus === 1 ? '' : 's'} for ${l.stage} (lease \`${l.leaseId}\`)`);
  }
  const n = s.preemptions ?? 0;
  if (n) parts.push(`preempted ${n === 1 ? 'once' : `${n} times`} by a team under its quota; each time the stage checkpointed, gave its GPUs back and queued again (no retry spent)`);
  return parts.join('; ');
}

function headline(s: ReleaseStatus): string {
  if (s.outcome !== ReleaseOutcome.Running) {
    if (s.outcome === ReleaseOutcome.Candidate) return `candidate${s.decision ? `, approved by ${s.decision.by}` : ''}`;
    if (s.outcome === ReleaseOutcome.Promoted) return `promoted to production${s.canary?.alias ? ` (serving ${s.canary.alias})` : ''}`;
    return `${s.outcome.toLowerCase()}${s.failure ? `: ${s.failure}` : ''}`;
  }
  if (s.awaitingApproval) return 'awaiting approval';
  if (s.stage === ReleaseStage.Canary && s.canary) {
    const c = s.canary;
    if (c.paused) return `canary paused at step ${c.step}/${c.steps.length} (${c.weights[c.candidate] ?? 0}%)`;
    return `canary step ${c.step}/${c.steps.length}: ${c.weights[c.candidate] ?? 0}% of ${c.alias} on the candidate`;
  }
  return STAGE_SENTENCE[s.stage];
}

const STAGE_SENTENCE: Record<ReleaseStatus['stage'], string> = {
  [ReleaseStage.Validate]: 'validating the spec',
  [ReleaseStage.Train]: 'fine-tuning the adapter',
  [ReleaseStage.Quantize]: 'merging and quantizing',
  [ReleaseStage.Evaluate]: 'evaluating against the gates',
  [ReleaseStage.Register]: 'registering versions',
  [ReleaseStage.Approval]: 'awaiting approval',
  [ReleaseStage.Deploy]: 'loading the candidate on the serving backend',
  [ReleaseStage.Canary]: 'canary',
  [ReleaseStage.Production]: 'promoted; keeping the previous version loaded for fast rollback',
  [ReleaseStage.Rollback]: 'rolling back traffic, adapters and aliases',
  [ReleaseStage.Done]: 'done',
};

function runningNote(s: ReleaseStatus, releaseId: string): string[] {
  if (s.awaitingApproval) {
    return [
      `Waiting for an operator until **${s.approvalDeadline ?? 'the approval timeout'}**; with no decision by then the release is rejected (ApprovalTimeout).`,
      '',
      'Approve or reject with the CLI:',
      '',
      '```',
      `forgeline release approve ${releaseId} --by you@example.com --reason "eval reviewed"`,
      `forgeline release reject  ${releaseId} --by you@example.com --reason "why not"`,
      '```',
      '',
      'or here in the UI: **Send Update** `approve` (or `reject`) with input `{"by": "you@example.com", "reason": "eval reviewed"}`.',
    ];
  }
  if (s.stage === ReleaseStage.Train || s.stage === ReleaseStage.Quantize || s.stage === ReleaseStage.Evaluate) {
    return [
      `Running on a GPU worker. Live step, loss and the newest checkpoint are in the pending activity's heartbeat below, or: \`forgeline release watch ${releaseId}\`.`,
      '',
      `Abort: \`forgeline release abort ${releaseId} --by you@example.com --reason "why"\` (Update \`abort\`).`,
    ];
  }
  return [];
}

function canarySection(c: NonNullable<ReleaseStatus['canary']>, releaseId: string, running: boolean): string[] {
  const weights = Object.entries(c.weights)
    .map(([v, w]) => `\`${v}\` ${w}%`)
    .join(' · ');
  const out = ['### Canary', '', `**Alias** \`${c.alias}\` · **Step** ${c.step}/${c.steps.length} (plan ${c.steps.join(' → ')}%) · **Weights** ${weights || 'none yet'}`, ''];
  if (c.paused) out.push(`**Paused:** ${c.pausedReason ?? 'by an operator'}`, '');
  if (c.analyses.length) {
    out.push('| step | weight | bake | verdict | analysis |', '|---|---|---|---|---|');
    for (const a of c.analyses) out.push(`| ${a.step} | ${a.weight}% | ${a.bake} | ${a.verdict === 'Pass' ? 'Pass' : `**${a.verdict}**`} | ${a.summary} |`);
    out.push('');
  }
  for (const a of c.actions) out.push(`- ${a.kind} by ${a.by} at ${a.at}: "${a.reason}"`);
  if (c.actions.length) out.push('');
  if (running) {
    out.push(
      'Steer it with the CLI (or **Send Update** with input `{"by": "you@example.com", "reason": "why"}`):',
      '',
      '```',
      `forgeline release pause      ${releaseId} --by you@example.com --reason "why"`,
      `forgeline release resume     ${releaseId} --by you@example.com --reason "why"`,
      `forgeline release promote-now ${releaseId} --by you@example.com --reason "why"`,
      `forgeline release rollback   ${releaseId} --by you@example.com --reason "why"`,
      '```',
    );
  }
  if (c.monitorWorkflowId) out.push(`Drift monitor: \`${c.monitorWorkflowId}\``);
  return out;
}

function round(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(4);
}
