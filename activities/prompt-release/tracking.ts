import type { CanaryMetricResult } from '../../src/contracts/canary-analysis';
import { trackerRunId } from '../../src/contracts/release-lifecycle';
import type { PromptEvalSummary, PromptReleaseOutcome } from '../../src/contracts/prompt-release';
import type { CanaryStepAnalysis } from '../../src/contracts/release-lifecycle';
import type { ActivityDeps } from '../deps';

/** What a prompt release logs: its versions, its evaluation, each canary analysis, its outcome. */
export type PromptReleaseEvent =
  | { kind: 'started'; versions: { candidate: string; production?: string }; git?: { repo: string; sha: string } }
  | { kind: 'evaluated'; evaluation: PromptEvalSummary }
  | { kind: 'canary'; analysis: CanaryStepAnalysis; metrics?: CanaryMetricResult[] }
  | { kind: 'outcome'; outcome: PromptReleaseOutcome; versions: { candidate?: string; production?: string }; decidedBy?: string; failure?: string };

/**
 * Control queue: the prompt release's run in the tracker (one per release, resumed by every call,
 * grouped by prompt). Best-effort: the workflow calls it through `tracked()`, so a tracker outage
 * never changes a release's outcome.
 */
export function createPromptTrackingActivities(deps: Pick<ActivityDeps, 'tracker' | 'trackerProject'>) {
  return {
    async logPromptRelease(input: { releaseId: string; prompt: string; event: PromptReleaseEvent }): Promise<{ runId: string; url: string }> {
      const runId = trackerRunId(input.releaseId);
      const run = await deps.tracker.openRun({ runId, project: deps.trackerProject, group: `prompt/${input.prompt}`, name: `prompt release ${input.prompt}`, jobType: 'prompt-release', tags: ['prompt-release'] });
      const e = input.event;
      switch (e.kind) {
        case 'started':
          await run.setConfig({ releaseId: input.releaseId, prompt: input.prompt, versions: e.versions, ...(e.git ? { git: e.git } : {}) });
          break;
        case 'evaluated':
          await run.setSummary({ 'eval/passed': e.evaluation.passed, 'eval/cases': e.evaluation.cases, 'eval/runs': e.evaluation.runs, 'eval/judge_failures': e.evaluation.judgeFailures });
          await run.logTable('prompt_eval_gates', ['gate', 'metric', 'kind', 'passed', 'reason'], e.evaluation.gates.map((g) => [g.gate, g.metric ?? null, g.kind ?? null, g.passed, g.reason]));
          await run.logTable(
            'prompt_eval_metrics',
            ['metric', 'candidate_mean', 'candidate_lower', 'production_mean'],
            Object.entries(e.evaluation.metrics).map(([m, v]) => [m, v.candidate, v.lower, v.production ?? null]),
          );
          break;
        case 'canary':
          await run.log({ 'canary/step': e.analysis.step, 'canary/weight': e.analysis.weight, 'canary/pass': e.analysis.verdict === 'Pass' ? 1 : 0, 'canary/fail': e.analysis.verdict === 'Fail' ? 1 : 0 });
          if (e.metrics?.length) {
            await run.logTable(
              `canary_step_${e.analysis.step}_bake_${e.analysis.bake}`,
              ['metric', 'verdict', 'stable', 'candidate', 'effect', 'threshold', 'p_value', 'reason'],
              e.metrics.map((m) => [m.metric, m.verdict, m.stable, m.candidate, m.effect, m.threshold, m.pValue, m.reason]),
            );
          }
          break;
        case 'outcome':
          await run.setSummary({
            outcome: e.outcome,
            ...(e.versions.candidate ? { candidate_version: e.versions.candidate } : {}),
            ...(e.versions.production ? { production_version: e.versions.production } : {}),
            ...(e.decidedBy ? { decided_by: e.decidedBy } : {}),
            ...(e.failure ? { failure: e.failure } : {}),
          });
          await run.finish(e.outcome === 'Promoted' ? 0 : 1);
          return { runId, url: run.url };
      }
      await run.flush();
      return { runId, url: run.url };
    },
  };
}
