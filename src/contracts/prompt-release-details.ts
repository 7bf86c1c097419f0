import type { PromptReleaseStatus } from './prompt-release';

/** A prompt release's status as Markdown: the Temporal UI's "Current Details" and `forgeline prompt status`. */
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
